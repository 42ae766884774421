"""Training of the 3D-LLM, in stages (`train.stage`, `llm3d train --config configs/train_*.yaml`).

`train.train(cfg)` runs the stage named by `cfg.stage` from one table (`train.STAGE_RUNNERS`):
- joint (`train.py`): the scene encoder, projector, location-token rows and LoRA adapters with the
  LLM frozen (3D-LLM, Hong et al. 2023, sec. 3.4), optionally co-trained with single views
  (`cotrain.py`, UniVLG);
- pointer (`pointer.py`): the object pointer alone, on the frozen model's cached LLM states;
- mask (`mask.py`): UniVLG's mask head alone (Jain et al. 2025, sec. 3);
- absent (`llm3d_core.model.absence`): the absence pointer's "none" slot, calibrated on val.
The model itself lives in `llm3d_core.model`; the stages only read and write its checkpoints.
"""
