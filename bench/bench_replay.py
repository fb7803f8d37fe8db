"""Replay cache cost: per-message insert and lookup at 10k, 100k and 1M entries, and memory.

One :class:`ReplayGuard` per size is filled through its public ``check`` (T = now, distinct
digests); trials alternate across the sizes and the least disturbed trial is kept. *insert* =
accepting a fresh message, *lookup* = refusing a replay of a random cached message
(``ReplayError``). The baseline is the same operation on a bare Python ``set`` of the same keys
in the same run. Goals: per-op cost flat in the size (1M / 10k <= 2, cache misses included) and
memory per entry within 3x the bare set's.
"""

from __future__ import annotations

import random
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
    ops = 4_000 if quick else 20_000
    trials = 5 if quick else 9
    rng = random.Random(1)
    guards = {}
    filled = {}
    for size in sizes:
        # Room for every insert of every trial, filled below half (no shrinking of the window).
        guards[size] = ReplayGuard(TimestampPolicy(), max_entries=4 * (size + trials * ops))
        _fill(guards[size], 0, size)
        filled[size] = size
    ins_trials: dict[int, list[float]] = {size: [] for size in sizes}
    look_trials: dict[int, list[float]] = {size: [] for size in sizes}
    for _ in range(trials):  # interleaved, so machine noise hits every size alike
        for size in sizes:
            ins_trials[size].append(_insert_ns(guards[size], filled[size], ops))
            filled[size] += ops
            look_trials[size].append(_lookup_ns(guards[size], filled[size], ops, rng))
    del guards
    rows: list[Row] = []
    ins = {size: min(v) for size, v in ins_trials.items()}  # min: the least disturbed trial
    look = {size: min(v) for size, v in look_trials.items()}
    for size in sizes:
        base_ins, base_look = _set_ns(size, ops, rng)
        for name, ours, base in (
            ("insert", ins[size], base_ins),
            ("lookup (replay refused)", look[size], base_look),
        ):
            rows.append(
                {
                    "metric": f"replay {name} ns/op @ {size:,} entries",
                    "ours": round(ours),
                    "baseline": round(base),
                    "ratio": round(ours / base, 2),
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
