"""Replay cache cost: per-message insert and lookup at 10k, 100k and 1M entries, and memory.

One :class:`ReplayGuard` is filled through its public ``check`` (T = now, distinct digests) and
measured at each size: *insert* = accepting a fresh message, *lookup* = refusing a replay of a
random cached message (``ReplayError``). The baseline is the same operation on a bare Python
``set`` of the same keys in the same run. Goals: per-op cost flat in the size (1M / 10k <= 2,
cache misses included) and memory per entry within 3x the bare set's.
"""

from __future__ import annotations

import random
import statistics
import time
import tracemalloc
from typing import Any

from mikey.errors import ReplayError
from mikey.replay import ReplayGuard, TimestampPolicy, make_timestamp

NOW = 1704067200.0
FLAT_GOAL = 2.0
MEMORY_GOAL = 3.0
Row = dict[str, Any]


def _digest(i: int) -> bytes:
    return i.to_bytes(20, "big")  # the size of a HMAC-SHA-1 MAC


def _fill(guard: ReplayGuard, start: int, stop: int) -> None:
    t = make_timestamp(NOW)
    for i in range(start, stop):
        guard.check(t, peer="p", csb_id=1, digest=_digest(i), now=NOW)


def _insert_ns(guard: ReplayGuard, first: int, ops: int) -> float:
    t = make_timestamp(NOW)
    digests = [_digest(i) for i in range(first, first + ops)]
    check = guard.check
    start = time.perf_counter()
    for d in digests:
        check(t, peer="p", csb_id=1, digest=d, now=NOW)
    return (time.perf_counter() - start) / ops * 1e9


def _lookup_ns(guard: ReplayGuard, size: int, ops: int, rng: random.Random) -> float:
    t = make_timestamp(NOW)
    digests = [_digest(rng.randrange(size)) for _ in range(ops)]
    check = guard.check
    start = time.perf_counter()
    for d in digests:
        try:
            check(t, peer="p", csb_id=1, digest=d, now=NOW)
        except ReplayError:
            pass
        else:  # pragma: no cover - would mean the cache lost an entry
            raise AssertionError("replay accepted")
    return (time.perf_counter() - start) / ops * 1e9


def _key(i: int) -> bytes:
    return b"\x00\x00\x00\x01\x00" + bytes(8) + _digest(i)


def _set_ns(size: int, ops: int, rng: random.Random) -> tuple[float, float]:
    keys = {_key(i) for i in range(size)}
    new = [_key(i) for i in range(size, size + ops)]
    old = [_key(rng.randrange(size)) for _ in range(ops)]
    start = time.perf_counter()
    for k in new:
        keys.add(k)
    insert = (time.perf_counter() - start) / ops * 1e9
    start = time.perf_counter()
    for k in old:
        if k not in keys:  # pragma: no cover
            raise AssertionError
    return insert, (time.perf_counter() - start) / ops * 1e9


def _bytes_per_entry(n: int) -> tuple[float, float]:
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        guard = ReplayGuard(TimestampPolicy(), max_entries=4 * n)
        _fill(guard, 0, n)
        ours = (tracemalloc.get_traced_memory()[0] - before) / n
        del guard
        before = tracemalloc.get_traced_memory()[0]
        keys = {_key(i) for i in range(n)}
        base = (tracemalloc.get_traced_memory()[0] - before) / n
        del keys
    finally:
        tracemalloc.stop()
    return ours, base


def run(quick: bool) -> list[Row]:
    """Rows: per-op insert/lookup at each size (vs a bare set), flatness 1M/10k, memory."""
    sizes = (10_000, 100_000, 1_000_000)
    ops = 5_000 if quick else 20_000
    trials = 3 if quick else 7
    rng = random.Random(1)
    guard = ReplayGuard(TimestampPolicy(), max_entries=8 * sizes[-1])
    rows: list[Row] = []
    ins: dict[int, float] = {}
    look: dict[int, float] = {}
    filled = 0
    for size in sizes:
        _fill(guard, filled, size)
        filled = size
        ins_trials, look_trials = [], []
        for _ in range(trials):
            ins_trials.append(_insert_ns(guard, filled, ops))
            filled += ops
            look_trials.append(_lookup_ns(guard, size, ops, rng))
        ins[size], look[size] = statistics.median(ins_trials), statistics.median(look_trials)
        base_ins, base_look = _set_ns(size, ops, rng) if size <= 100_000 or not quick else (0, 0)
        for name, ours, base in (
            ("insert", ins[size], base_ins),
            ("lookup (replay refused)", look[size], base_look),
        ):
            rows.append(
                {
                    "metric": f"replay {name} ns/op @ {size:,} entries",
                    "ours": round(ours),
                    "baseline": round(base) if base else None,
                    "ratio": round(ours / base, 2) if base else None,
                    "goal": "info (baseline: bare set)",
                    "passed": None,
                }
            )
    lo, hi = sizes[0], sizes[-1]
    for name, table in (("insert", ins), ("lookup", look)):
        ratio = table[hi] / table[lo]
        rows.append(
            {
                "metric": f"replay {name} cost 1M / 10k entries",
                "ours": round(table[hi]),
                "baseline": round(table[lo]),
                "ratio": round(ratio, 2),
                "goal": f"<= {FLAT_GOAL}",
                "passed": ratio <= FLAT_GOAL,
            }
        )
    del guard
    ours_mem, base_mem = _bytes_per_entry(20_000 if quick else 200_000)
    rows.append(
        {
            "metric": "replay cache bytes/entry (tracemalloc)",
            "ours": round(ours_mem),
            "baseline": round(base_mem),
            "ratio": round(ours_mem / base_mem, 2),
            "goal": f"<= {MEMORY_GOAL}x bare set of keys",
            "passed": ours_mem / base_mem <= MEMORY_GOAL,
        }
    )
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['metric']}: ours {row['ours']}, baseline {row['baseline']}, "
            f"ratio {row['ratio']} (goal {row['goal']}): "
            f"{ {True: 'PASS', False: 'FAIL', None: '-'}[row['passed']] }"
        )
