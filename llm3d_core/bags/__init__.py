"""Recorded ROS 2 bags (mcap or sqlite3) as a first-class input, read and written without ROS.

`rosbags` reads and writes the bag files; decoding, colour/depth pairing and TF lookups are the
live mapper node's own code (`llm3d_core.messages`, `llm3d_core.sync`, `llm3d_core.tf_tree`),
so a frame read from a bag is the frame the node would have fused.

    config.BagConfig     topics, frames, encodings (the `llm3d_bag: bag:` section of launch/llm3d.yaml)
    source.BagSource     raw messages of a bag, salvaging what precedes damage in a truncated file
    reader.BagFrameReader  posed RGB-D frames out of a bag, with a report of what was skipped and why
    writer.BagWriter     frames, TF and odometry into a new bag
"""
