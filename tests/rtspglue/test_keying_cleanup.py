"""Keying state that must not outlive its owner (issue "nothing is left behind").

A DESCRIBE whose client goes away before SETUP leaves a pending MIKEY exchange (key material);
it is wiped when the connection ends, not 60 s later. Oracle: the server keying's pending count.
That test now runs on the in-memory core (tests/rtspglue/test_core.py, RtspPair) instead of
polling a real server with asyncio.sleep.
"""

from __future__ import annotations

from mikey.keying import DataSaEntry, KeyingResult, Mode, RegistrationSa, Role, SrtpPolicy
from mikey.registry import PrfFunc
from srtp.gsa import MAX_QUEUED_EVENTS, GsaRegistry, GsaTornDown, TeardownReason


def _result(ssrc: int) -> KeyingResult:
    reg = RegistrationSa(
        Mode.PSK, Role.RESPONDER, 1, PrfFunc.MIKEY_1, b"r" * 16, b"t" * 8, None, None, None
    )
    entry = DataSaEntry(1, ssrc, 0, 0, SrtpPolicy(), bytearray(range(16)), bytearray(range(14)))
    return KeyingResult(reg, (entry,))


def test_gsa_event_queue_is_bounded() -> None:
    """A process that never drains GSA events does not grow (the oldest are dropped)."""
    registry = GsaRegistry()
    for i in range(MAX_QUEUED_EVENTS):  # 2 events each: established, torn down
        registry.establish(f"s{i}", _result(i + 1), 0.0, outbound_ssrcs={i + 1})
        registry.teardown(f"s{i}", TeardownReason.TEARDOWN, 0.0)
    events = registry.drain_events()
    assert len(events) == MAX_QUEUED_EVENTS
    assert isinstance(events[-1], GsaTornDown) and events[-1].key == f"s{MAX_QUEUED_EVENTS - 1}"
    assert registry.drain_events() == [] and registry.audit().clean
