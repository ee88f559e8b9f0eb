"""A minimal TensorBoard event-file writer (scalars), with no TensorFlow import.

The JAX path must run where TensorFlow is not installed, so ``logs/`` is written directly
in the TFRecord + ``Event`` protobuf format TensorBoard reads: each record is
``len (u64) | masked crc32c(len) | data | masked crc32c(data)``.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from pathlib import Path


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(num: int, wire: int, payload: bytes) -> bytes:
    return _varint((num << 3) | wire) + payload


def _bytes_field(num: int, data: bytes) -> bytes:
    return _field(num, 2, _varint(len(data)) + data)


def _event(step: int, wall: float, summary: bytes | None = None,
           version: str | None = None) -> bytes:
    msg = _field(1, 1, struct.pack("<d", wall)) + _field(2, 0, _varint(step))
    if version is not None:
        msg += _bytes_field(3, version.encode())
    if summary is not None:
        msg += _bytes_field(5, summary)
    return msg


class ScalarWriter:
    """Append scalar summaries to ``<logdir>/events.out.tfevents.<time>.<host>``."""

    def __init__(self, logdir: str | Path) -> None:
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        name = f"events.out.tfevents.{int(time.time())}.{socket.gethostname()}.{os.getpid()}"
        self.path = self.logdir / name
        self._write(_event(0, time.time(), version="brain.Event:2"))

    def _write(self, data: bytes) -> None:
        header = struct.pack("<Q", len(data))
        record = (header + struct.pack("<I", _masked(header)) + data
                  + struct.pack("<I", _masked(data)))
        with open(self.path, "ab") as fh:
            fh.write(record)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        summary = b""
        for tag, value in values.items():
            if value is None:
                continue
            v = _bytes_field(1, tag.encode()) + _field(2, 5, struct.pack("<f", float(value)))
            summary += _bytes_field(1, v)
        if summary:
            self._write(_event(int(step), time.time(), summary=summary))
