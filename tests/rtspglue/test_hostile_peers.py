"""Hostile peers on the in-memory RTSP pair: every request gets a final response (a raising
hook answers 500 and ends its own session only), and one source cannot take every connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from rtspglue.core import CoreConfig, Effect, OpenUdp
from rtspglue.hooks import SessionContext, TeardownReason
from rtspglue.keymgmt import KeyMgmtSpec, format_keymgmt
from rtspglue.message import RtspRequest

from .pair import Client, RtspPair
from .test_server_client import R_MESSAGE, ServerHook

KEYMGMT = format_keymgmt([KeyMgmtSpec("mikey", "rtsp://127.0.0.1:554/tone/stream=0", R_MESSAGE)])


@dataclass
class RaisingHook(ServerHook):
    """A keying hook whose protector raises (a bug in the binder)."""

    def protector(self, session: SessionContext, ssrc: int) -> Callable[[bytes], bytes]:
        raise ValueError("secret-key-bytes-in-the-message")


def test_a_raising_hook_answers_500_and_closes_its_session(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = RaisingHook()
    pair = RtspPair(keying=hook)
    client = pair.connect()
    session_id = client.setup(headers=(("KeyMgmt", KEYMGMT),))
    assert client.request("PLAY").status == 500
    assert hook.teardowns == [(session_id, TeardownReason.SETUP_FAILED)]
    assert pair.core.sessions == {}
    assert pair.core.counters["handler_failed"] == 1
    assert "secret-key-bytes" not in caplog.text
    assert client.request("OPTIONS", session=False).status == 200  # the connection goes on
    client.lose()
    assert pair.core.connections == {}


def test_a_failing_request_cannot_end_another_connections_session() -> None:
    hook = RaisingHook()
    pair = RtspPair(keying=hook)
    owner = pair.connect()
    session_id = owner.setup(headers=(("KeyMgmt", KEYMGMT),))
    other = pair.connect(("127.0.0.1", 40001))
    other.session_id = session_id
    assert other.request("PLAY").status == 500  # the hook raised on this request ...
    assert hook.teardowns == []  # ... but the session is not the requester's
    assert session_id in pair.core.sessions


def test_a_setup_whose_ports_never_come_is_answered_500() -> None:
    hook = ServerHook()
    pair = RtspPair(config=CoreConfig(setup_timeout=2.0), keying=hook)
    held: list[OpenUdp] = []

    def never(effect: OpenUdp) -> list[Effect]:
        held.append(effect)
        return []

    pair._open = never  # type: ignore[method-assign]
    client = pair.connect()
    transport = "RTP/SAVP;unicast;client_port=5000-5001"
    request = RtspRequest(
        "SETUP",
        "rtsp://127.0.0.1:554/tone/stream=0",
        (("CSeq", "1"), ("Transport", transport), ("KeyMgmt", KEYMGMT)),
    )
    client.send_bytes(request.encode())
    assert client.inbox == [] and len(held) == 1
    pair.advance(1.9)
    assert client.inbox == []
    pair.advance(0.2)
    assert [r.status for r in client.inbox] == [500]
    assert pair.core.counters["setup_expired"] == 1
    assert pair.core.sessions == {}
    assert [reason for _, reason in hook.teardowns] == [TeardownReason.SETUP_FAILED]
    late = pair.core.udp_opened(held[0].session, (7000, 7001), pair.now)  # the ports, late
    assert [type(e).__name__ for e in late] == ["ReleaseMedia"]


def _connect_many(pair: RtspPair, host: str, count: int) -> list[Client]:
    return [pair.connect((host, 30000 + n)) for n in range(count)]


def test_one_source_cannot_take_every_connection() -> None:
    pair = RtspPair(config=CoreConfig(max_connections=256))
    flood = _connect_many(pair, "10.0.0.9", 300)
    accepted = [c for c in flood if not c.closed]
    assert len(accepted) == 128  # half the table (max_connections_per_source)
    assert all(c.inbox[0].status == 503 for c in flood if c.closed)
    assert pair.core.counters["source_full"] == 300 - 128
    real = pair.connect(("10.0.0.1", 40000))
    assert not real.closed
    assert real.request("OPTIONS", session=False).status == 200
    for client in [*accepted, real]:
        client.lose()
    assert pair.core.connections == {}


def test_the_connection_budget_refills_over_time() -> None:
    config = CoreConfig(source_burst=4, source_rate=1.0, max_connections_per_source=100)
    pair = RtspPair(config=config)
    first = _connect_many(pair, "10.0.0.9", 10)
    assert sum(not c.closed for c in first) == 4
    assert pair.core.counters["source_limited"] == 6
    assert not pair.connect(("10.0.0.1", 40000)).closed  # another source: its own bucket
    pair.advance(2.0)
    again = _connect_many(pair, "10.0.0.9", 3)
    assert sum(not c.closed for c in again) == 2
