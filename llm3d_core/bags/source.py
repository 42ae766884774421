"""Raw messages of a recorded bag, in receive order, with damage reported instead of lost reads.

`rosbags` opens rosbag2 folders (metadata.yaml + .mcap/.db3 files) and bare .mcap/.db3 files.
When it cannot (a recorder killed mid-write leaves an MCAP file without footer, or no
metadata.yaml), the MCAP files are scanned by `salvage.McapSalvage` and every message before the
damage is still returned; `damage` then says what was lost. Messages are deserialized with the
rosbags type store, whose CDR matches rclpy's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm3d_core.bags.errors import BagCorruptError
from llm3d_core.bags.salvage import McapSalvage

log = logging.getLogger(__name__)


@dataclass
class TopicSummary:
    msgtype: str  # e.g. sensor_msgs/msg/Image
    count: int  # messages (as the bag's index says; from a salvaged file, -1: unknown until read)


def typestore() -> Any:
    """The rosbags type store of the ROS 2 distro whose wheels this project uses (kilted)."""
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_KILTED)


def normalize_topic(topic: str) -> str:
    """'/a/b' for 'a/b' or '/a/b': bags from the root namespace store absolute names."""
    return "/" + topic.strip().lstrip("/")


class BagSource:
    """One bag: its topics and raw messages. A bag that cannot be opened at all raises BagCorruptError."""

    def __init__(self, path: str | Path) -> None:
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"bag not found: {self.path}")
        self.store = typestore()
        self.damage: str | None = None
        self._reader = None
        self._salvage: list[Path] = []
        try:
            reader = Reader(self.path)
            reader.open()
            self._reader = reader
            self.topics = {normalize_topic(name): TopicSummary(info.msgtype or "", info.msgcount)
                           for name, info in reader.topics.items()}
            self.storage = self._storage_name()
        except Exception as err:  # rosbags raises ReaderError, FileNotFoundError, struct/yaml errors...
            self._open_salvage(err)

    def _storage_name(self) -> str:
        files = [self.path] if self.path.is_file() else sorted(self.path.iterdir())
        return "mcap" if any(f.suffix == ".mcap" for f in files) else "sqlite3"

    def _open_salvage(self, err: Exception) -> None:
        files = [self.path] if self.path.is_file() else sorted(self.path.glob("*.mcap"))
        files = [f for f in files if f.suffix == ".mcap"]
        if not files:
            raise BagCorruptError(f"bag {self.path} cannot be opened ({type(err).__name__}: {err}) and holds no "
                                  ".mcap file to salvage messages from") from err
        self._salvage, self.storage = files, "mcap"
        self.damage = f"{type(err).__name__}: {err}"
        log.warning("bag %s does not open normally (%s); reading what precedes the damage", self.path, self.damage)
        # Topics come from a scan of the channel records (cheap next to reading the messages).
        self.topics = {}
        for f in files:
            try:
                scan = McapSalvage(f)
            except ValueError as bad:
                raise BagCorruptError(f"bag {self.path}: {bad}") from err
            counts: dict[str, int] = {}
            for topic, msgtype, _, _ in scan.messages():
                counts[normalize_topic(topic)] = counts.get(normalize_topic(topic), 0) + 1
                self.topics.setdefault(normalize_topic(topic), TopicSummary(msgtype, 0))
            for topic, n in counts.items():
                self.topics[topic].count += n
            for channel in scan.channels.values():
                self.topics.setdefault(normalize_topic(channel.topic), TopicSummary(channel.msgtype, 0))
            if scan.damage:
                self.damage = f"{f.name}: {scan.damage}"

    @property
    def salvaged(self) -> bool:
        """True when the bag did not open normally and messages come from a scan of its files."""
        return bool(self._salvage)

    def describe_topics(self) -> str:
        return ", ".join(f"{t} ({s.msgtype}, {s.count})" for t, s in sorted(self.topics.items())) or "none"

    def messages(self, topics: set[str] | None = None) -> Iterator[tuple[str, str, int, bytes]]:
        """(topic, msgtype, receive time ns, raw CDR) in the bag's order; damage met while reading
        is recorded in `damage` and ends the stream (everything before it was yielded)."""
        wanted = {normalize_topic(t) for t in topics} if topics is not None else None
        if self._reader is not None:
            conns = [c for c in self._reader.connections if wanted is None or normalize_topic(c.topic) in wanted]
            if not conns:
                return
            try:
                for conn, t_ns, raw in self._reader.messages(connections=conns):
                    yield normalize_topic(conn.topic), conn.msgtype, t_ns, raw
            except Exception as err:  # a damaged chunk or page mid-file: keep what came before
                self.damage = f"{type(err).__name__}: {err}"
            return
        for f in self._salvage:
            scan = McapSalvage(f)
            for topic, msgtype, t_ns, raw in scan.messages():
                topic = normalize_topic(topic)
                if wanted is None or topic in wanted:
                    yield topic, msgtype, t_ns, raw

    def deserialize(self, raw: bytes, msgtype: str) -> Any:
        return self.store.deserialize_cdr(raw, msgtype)

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> BagSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
