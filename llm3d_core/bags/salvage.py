"""Reads the intact part of a truncated or damaged MCAP file.

A recorder that is killed leaves an MCAP file without its summary and footer, and `rosbags`
refuses such a file. Written from the MCAP specification (mcap.dev/spec): after the 8-byte magic,
the file is a sequence of records `opcode (u8) | length (u64 LE) | body`. Schema, Channel and
Message records are read in order, also inside Chunk records; a chunk cut off by truncation still
yields its complete messages when it is uncompressed. Scanning stops at the first record that
does not fit or does not parse, and `damage` says where.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK, OP_DATA_END = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x0F


class _Short(ValueError):
    """A field runs past the end of the available bytes."""


@dataclass
class SalvagedChannel:
    topic: str
    msgtype: str  # from the channel's schema, e.g. sensor_msgs/msg/Image


class _Cursor:
    def __init__(self, data: memoryview) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.data):
            raise _Short(f"needs {n} bytes at offset {self.pos}, {len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u16(self) -> int:
        return struct.unpack("<H", self.take(2))[0]

    def u32(self) -> int:
        return struct.unpack("<I", self.take(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.take(8))[0]

    def string(self) -> str:
        return bytes(self.take(self.u32())).decode("utf-8")

    def left(self) -> int:
        return len(self.data) - self.pos


def _decompress(data: bytes, compression: str, size: int) -> bytes:
    if compression == "":
        return data
    if compression == "zstd":
        try:
            from compression import zstd  # Python 3.14+
        except ImportError:
            from backports import zstd  # what rosbags uses before 3.14
        return zstd.decompress(data)
    if compression == "lz4":
        import lz4.frame

        return lz4.frame.decompress(data)
    raise ValueError(f"unsupported chunk compression {compression!r}")


class McapSalvage:
    """Streams (topic, msgtype, log_time_ns, raw CDR) from the readable part of an MCAP file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data = memoryview(self.path.read_bytes())
        if bytes(self.data[:8]) != MAGIC:
            raise ValueError(f"{self.path} is not an MCAP file (bad magic)")
        self.damage: str | None = None  # where and why scanning stopped early
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, SalvagedChannel] = {}
        self.footer_seen = False

    def messages(self) -> Iterator[tuple[str, str, int, bytes]]:
        cur = _Cursor(self.data)
        cur.take(8)
        yield from self._records(cur, top=True)

    def _records(self, cur: _Cursor, top: bool) -> Iterator[tuple[str, str, int, bytes]]:
        while cur.left() > 0:
            start = cur.pos
            try:
                op = cur.take(1)[0]
                length = cur.u64()
                if top and op == OP_CHUNK and length > cur.left():
                    # A chunk cut off by truncation: its complete inner records are still readable.
                    yield from self._chunk(_Cursor(cur.take(cur.left())), partial=True)
                    self._damaged(f"chunk at byte {start} is cut off ({length} bytes declared)")
                    return
                body = _Cursor(cur.take(length))
            except _Short as err:
                if top:
                    self._damaged(f"record at byte {start}: {err}")
                return  # inside a chunk: the chunk's own truncation was reported by the caller
            try:
                if op == OP_SCHEMA:
                    schema_id, name = body.u16(), body.string()
                    self.schemas[schema_id] = name
                elif op == OP_CHANNEL:
                    channel_id, schema_id, topic = body.u16(), body.u16(), body.string()
                    self.channels[channel_id] = SalvagedChannel(topic, self.schemas.get(schema_id, ""))
                elif op == OP_MESSAGE:
                    channel_id, _seq, log_time, _pub = body.u16(), body.u32(), body.u64(), body.u64()
                    channel = self.channels.get(channel_id)
                    if channel is not None:
                        yield channel.topic, channel.msgtype, log_time, bytes(body.take(body.left()))
                elif op == OP_CHUNK and top:
                    yield from self._chunk(body, partial=False)
                elif op == OP_FOOTER and top:
                    self.footer_seen = True
                    return
            except (_Short, ValueError, UnicodeDecodeError) as err:
                self._damaged(f"record 0x{op:02x} at byte {start} does not parse: {err}")
                return

    def _chunk(self, body: _Cursor, partial: bool) -> Iterator[tuple[str, str, int, bytes]]:
        body.u64(), body.u64()  # message start / end time
        size, _crc = body.u64(), body.u32()
        compression = body.string()
        records_len = body.u64()
        if partial:
            if compression:
                return  # a cut-off compressed chunk cannot be decompressed
            records = body.take(min(records_len, body.left()))
        else:
            records = memoryview(_decompress(bytes(body.take(records_len)), compression, size))
        yield from self._records(_Cursor(records), top=False)

    def _damaged(self, why: str) -> None:
        if self.damage is None:
            self.damage = why
