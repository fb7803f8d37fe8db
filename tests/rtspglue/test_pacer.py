"""rtspglue.media.Pacer: one timer task pacing many streams (what the RTSP server uses).

Functional checks only (no timing assertions): every stream gets its packets in order, a
cancelled stream stops, a failing stream stops alone, close() stops everything.
"""

from __future__ import annotations

import asyncio
import itertools

from rtspglue.media import Pacer


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


async def test_many_streams_get_their_packets_in_order() -> None:
    pacer = Pacer(0.01)
    got: dict[int, list[int]] = {i: [] for i in range(300)}
    streams = []
    for i in range(300):
        counter = itertools.count()
        streams.append(pacer.add(lambda c=counter, i=i: got[i].append(next(c))))
    await _until(lambda: all(len(v) >= 5 for v in got.values()))
    for v in got.values():
        assert v == list(range(len(v)))  # produced and delivered in order, none skipped
    await pacer.close()
    assert len(pacer) == 0


async def test_cancel_and_failure_stop_only_that_stream() -> None:
    pacer = Pacer(0.01)
    a: list[bytes] = []
    b: list[bytes] = []

    def boom() -> bytes:
        raise RuntimeError("broken source")

    sa = pacer.add(lambda: a.append(b"a"))
    pacer.add(lambda: b.append(boom()))
    sc = pacer.add(lambda: None)
    await _until(lambda: len(a) >= 3)
    sa.cancel()
    stopped_at = len(a)
    await _until(lambda: sc.sent >= stopped_at + 5)  # the others keep going
    assert len(a) == stopped_at and b == []
    await pacer.close()
