"""Memory of idle Group Security Associations, and how it grows with their number.

An idle GSA is what one keyed PSK session leaves in a :class:`srtp.gsa.GsaRegistry` between
packets: its Registration SA, one Data SA entry and a live libsrtp context pair. Each size is a
fresh registry filled with GSAs from real MIKEY exchanges (each result handed over, so the
registry holds the only reference), measured two ways:

* ``tracemalloc`` growth per GSA: the Python heap only (libsrtp's C allocations are not
  traced). Goal <= 8 KiB at every size.
* Linear growth: the per-GSA figure at 10k and 100k GSAs (quick: 10k) against the one at 1k,
  same run. Goal <= 1.25x (no per-GSA cost that grows with the population).
* RSS growth per GSA (``/proc/self/statm``, a separate fill without tracemalloc): everything,
  libsrtp's contexts included. Information only.

``run(quick)`` returns rows ``{metric, ours, baseline, ratio, goal, passed}``; quick < 10 s.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from mikey.exchange import Endpoint, ExchangeCompleted, ExchangeConfig, Initiator, StreamSpec
from mikey.keying import KeyingResult
from mikey.pki import StaticPskStore
from srtp.gsa import GsaRegistry

Row = dict[str, Any]
GOAL_BYTES = 8192
GOAL_GROWTH = 1.25
_PAGE = os.sysconf("SC_PAGESIZE")


def _results(count: int) -> list[KeyingResult]:
    """Keys for ``count`` sessions from real (PSK, no V) exchanges."""
    party = Endpoint(ExchangeConfig(psk=StaticPskStore({}, default=bytes(range(16)))), os.urandom)
    out = []
    now = time.time()
    for i in range(count):
        initiator = Initiator(party)
        initiator.start(now, [StreamSpec(0x1000 + i, 0, 0)])
        outcome = initiator.finish(None, now)
        assert isinstance(outcome, ExchangeCompleted)
        out.append(outcome.result)
    return out


def _fill(registry: GsaRegistry, count: int) -> None:
    results = _results(count)
    for i, result in enumerate(results):
        registry.establish(f"s{i}", result, 0.0, outbound_ssrcs={0x1000 + i})
    results.clear()  # the registry now holds the only reference to each result
    gc.collect()


def _bytes_per_gsa(count: int, memory: Callable[[], int]) -> float:
    """Growth of ``memory()`` per GSA while ``count`` of them are made and established."""
    registry = GsaRegistry()
    gc.collect()
    try:
        before = memory()
        _fill(registry, count)
        return (memory() - before) / count
    finally:
        registry.teardown_all()


def _traced() -> int:
    return tracemalloc.get_traced_memory()[0]


def _traced_bytes_per_gsa(count: int) -> float:
    # Traced from before the exchanges: a GSA owns its KeyingResult (Registration SA, Data SA
    # entry, key buffers), so that memory counts; the exchanges' garbage is freed by then.
    tracemalloc.start()
    try:
        return _bytes_per_gsa(count, _traced)
    finally:
        tracemalloc.stop()


def _rss() -> int:
    with open("/proc/self/statm", encoding="ascii") as f:
        return int(f.read().split()[1]) * _PAGE


def _row(metric: str, ours: float, baseline: float | None, goal: str, passed: bool | None) -> Row:
    return {
        "metric": metric,
        "ours": round(ours),
        "baseline": None if baseline is None else round(baseline),
        "ratio": None if not baseline else round(ours / baseline, 3),
        "goal": goal,
        "passed": passed,
    }


def run(quick: bool) -> list[Row]:
    """Rows: bytes per idle GSA at each size, growth against 1k, RSS per GSA."""
    sizes = (1_000, 5_000) if quick else (1_000, 10_000, 100_000)
    # RSS first, while the heap has no free arenas left by an earlier fill to hide growth in.
    rss = _bytes_per_gsa(sizes[-1], _rss)
    per = {n: _traced_bytes_per_gsa(n) for n in sizes}
    base = per[sizes[0]]
    rows = [
        _row(
            f"bytes per idle GSA @ {sizes[0]:,} (tracemalloc)",
            base,
            None,
            f"<= {GOAL_BYTES}",
            base <= GOAL_BYTES,
        )
    ]
    for n in sizes[1:]:
        rows.append(
            _row(
                f"bytes per idle GSA @ {n:,} vs @ {sizes[0]:,} (tracemalloc)",
                per[n],
                base,
                f"<= {GOAL_BYTES} and <= {GOAL_GROWTH}x (linear)",
                per[n] <= GOAL_BYTES and per[n] <= GOAL_GROWTH * base,
            )
        )
    rows.append(
        _row(f"RSS bytes per idle GSA @ {sizes[-1]:,} (incl. libsrtp)", rss, None, "info", None)
    )
    return rows


if __name__ == "__main__":
    for r in run(quick=False):
        print(r)
