"""A small STDF V4 writer for test files: either byte order, a record at a time.

Semi-ATE-STDF 0.1.28 installs on Python 3.11 but packing a PRR raised TypeError (a B*1
field's default is an int where its packer wants bit strings) and its FAR takes CPU_TYPE
from the host rather than the byte order asked for, so the tests write records themselves.
``offsets`` records where each record starts, to check the offsets errors name.
"""

from __future__ import annotations

import struct
from typing import Any


class StdfWriter:
    """Records appended in order; ``bytes(writer)`` is the file."""

    def __init__(self, order: str = ">") -> None:
        self.order = order
        self.chunks: list[bytes] = []
        self.offsets: list[tuple[str, int]] = []
        self.size = 0

    def __bytes__(self) -> bytes:
        return b"".join(self.chunks)

    def record(self, name: str, typ: int, sub: int, body: bytes) -> StdfWriter:
        self.offsets.append((name, self.size))
        chunk = struct.pack(f"{self.order}HBB", len(body), typ, sub) + body
        self.chunks.append(chunk)
        self.size += len(chunk)
        return self

    def offset_of(self, name: str, nth: int = 0) -> int:
        """Byte offset of the ``nth`` record called ``name``."""
        return [o for n, o in self.offsets if n == name][nth]

    def _pack(self, fields: list[tuple[str, Any]]) -> bytes:
        out = b""
        for kind, value in fields:
            if kind == "Cn":
                text = value.encode("latin-1")
                out += struct.pack("B", len(text)) + text
            elif kind == "B1":
                out += bytes([value])
            else:
                out += struct.pack(self.order + kind, value)
        return out

    def far(self, version: int = 4) -> StdfWriter:
        cpu = 1 if self.order == ">" else 2
        return self.record("FAR", 0, 10, bytes([cpu, version]))

    def mir(self, lot: str = "LOT1", tester: str = "T1") -> StdfWriter:
        body = self._pack([("I", 0), ("I", 0), ("B", 1)]) + b"P  " + self._pack(
            [("H", 65535), ("Cn", " "), ("Cn", lot), ("Cn", "DEV"), ("Cn", "node"),
             ("Cn", tester), ("Cn", "job")]
        )  # fmt: skip
        body = body[:12] + body[13:]  # CMOD_COD is C1, not Cn
        return self.record("MIR", 1, 10, body)

    def wir(self, wafer: str, head: int = 1) -> StdfWriter:
        return self.record("WIR", 2, 10, self._pack(
            [("B", head), ("B", 255), ("I", 0), ("Cn", wafer)]))  # fmt: skip

    def wrr(self, head: int = 1, parts: int = 0) -> StdfWriter:
        return self.record("WRR", 2, 20, self._pack(
            [("B", head), ("B", 255), ("I", 0), ("I", parts)]))  # fmt: skip

    def pir(self, head: int = 1, site: int = 0) -> StdfWriter:
        return self.record("PIR", 5, 10, bytes([head, site]))

    def ptr(
        self, number: int, text: str, result: float, head: int = 1, site: int = 0,
        units: str = "V", flags: int = 0,
    ) -> StdfWriter:  # fmt: skip
        return self.record("PTR", 15, 10, self._pack([
            ("I", number), ("B", head), ("B", site), ("B1", flags), ("B1", 0), ("f", result),
            ("Cn", text), ("Cn", ""), ("B1", 0x0E), ("b", 0), ("b", 0), ("b", 0),
            ("f", -1.0), ("f", 1.0), ("Cn", units),
        ]))  # fmt: skip

    def prr(
        self, part_id: str, x: int = -32768, y: int = -32768, head: int = 1, site: int = 0,
        hard_bin: int = 1, soft_bin: int = 1, failed: bool = False, n_tests: int = 0,
    ) -> StdfWriter:  # fmt: skip
        return self.record("PRR", 5, 20, self._pack([
            ("B", head), ("B", site), ("B1", 0x08 if failed else 0), ("H", n_tests),
            ("H", hard_bin), ("H", soft_bin), ("h", x), ("h", y), ("I", 0), ("Cn", part_id),
            ("Cn", ""), ("B", 0),
        ]))  # fmt: skip

    def mrr(self) -> StdfWriter:
        return self.record("MRR", 1, 20, self._pack([("I", 0)]))

    def vendor(self, typ: int = 180, sub: int = 7, payload: bytes = b"vendor") -> StdfWriter:
        return self.record("vendor", typ, sub, payload)


def wafer_file(
    order: str = ">",
    parts: int = 40,
    tests: int = 5,
    sites: int = 1,
    stop_on_fail: bool = False,
    retest_first: int = 0,
    seed: int = 0,
    lot: str = "LOT1",
    wafer: str = "W01",
    wafers: int = 1,
) -> StdfWriter:
    """A one-wafer file: ``parts`` dies on ``sites`` sites tested in parallel (records of a
    touchdown interleaved site by site), ``tests`` PTRs each (``VDD_<j>``, TEST_NUM 100+j),
    at x = i % 10, y = i // 10.

    A die fails when any result exceeds 1.5; with ``stop_on_fail`` its later tests are not
    run. The first ``retest_first`` dies are tested again at the end (passing the retest).
    ``wafers`` > 1: that many such wafers, ``W01``, ``W02``..., PART_ID ``W01-1``...
    """
    w = StdfWriter(order).far().mir(lot)
    for k in range(wafers):
        name = wafer if wafers == 1 else f"W{k + 1:02d}"
        _wafer(w, name, "" if wafers == 1 else f"{name}-", parts, tests, sites, stop_on_fail,
               retest_first, seed + k)  # fmt: skip
    return w.mrr()


def _wafer(
    w: StdfWriter, wafer: str, prefix: str, parts: int, tests: int, sites: int,
    stop_on_fail: bool, retest_first: int, seed: int,
) -> None:  # fmt: skip
    import numpy as np

    rng = np.random.default_rng(seed)
    w.wir(wafer)
    dies = [(i, i % 10, i // 10) for i in range(parts)]
    dies += [(parts + k, k % 10, k // 10) for k in range(retest_first)]
    for start in range(0, len(dies), sites):
        touchdown = dies[start : start + sites]
        for s, _ in enumerate(touchdown):
            w.pir(site=s)
        results = rng.normal(0.0, 0.8, size=(len(touchdown), tests))
        if retest_first and touchdown[0][0] >= parts:
            results = np.abs(results).clip(max=1.0)
        stopped = [False] * len(touchdown)
        for j in range(tests):
            for s, _ in enumerate(touchdown):
                if stopped[s]:
                    continue
                w.ptr(100 + j, f"VDD_{j}", float(results[s, j]), site=s)
                if stop_on_fail and results[s, j] > 1.5:
                    stopped[s] = True
        for s, (part, x, y) in enumerate(touchdown):
            failed = bool((results[s] > 1.5).any())
            w.prr(f"{prefix}{part + 1}", x, y, site=s, failed=failed,
                  hard_bin=5 if failed else 1)  # fmt: skip
    w.wrr()
