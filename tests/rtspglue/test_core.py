"""The sans-IO RTSP server core (rtspglue.core) on RtspPair's fake clock.

Oracles: RFC 2326 (§12.37 session timeout and 454 for an unknown session, §10.5/§10.6 PLAY and
PAUSE, §12.17 CSeq, §4 framing), RFC 4567 §3.2 (463 on refused keying), the module docstring's
session table and timer rules (slow-drip request bound, idle bound) and session binding (454 on
another connection). Exact times are asserted against the fake clock only, never the wall clock.
The timeout and DESCRIBE-cleanup tests moved here from test_server_client.py and
test_keying_cleanup.py, where they waited with asyncio.sleep.
"""

from __future__ import annotations

import itertools

import pytest

from mikey.keying import Mode
from rtspglue.core import (
    CoreConfig,
    OpenUdp,
    SendResponse,
    SessionInput,
    SessionStateError,
    StartStreaming,
    StopStreaming,
    step,
)
from rtspglue.hooks import SessionState, TeardownReason
from rtspglue.keying import MikeyServerKeying
from rtspglue.keymgmt import KeyMgmtSpec, format_keymgmt, format_mikey_parameter
from rtspglue.message import RtspRequest, SessionHeader
from sdp import SessionDescription
from srtp.gsa import GsaRegistry
from tests.mikey.pair import configs

from .pair import RtspPair
from .test_server_client import I_MESSAGE, R_MESSAGE, ServerHook


def _keyed_setup(hook_pair: RtspPair, tcp: bool = False) -> tuple[str, object]:
    client = hook_pair.connect()
    spec = format_keymgmt([KeyMgmtSpec("mikey", "rtsp://127.0.0.1:554/tone/stream=0", R_MESSAGE)])
    session_id = client.setup(tcp=tcp, headers=(("KeyMgmt", spec),))
    return session_id, client


# -- moved from test_server_client.py (test_session_timeout_reaps) --------------------------------


def test_session_timeout_reaps() -> None:
    hook = ServerHook()
    pair = RtspPair(config=CoreConfig(session_timeout=0.3), keying=hook)
    session_id, client = _keyed_setup(pair)
    setup_response = client.inbox[-1]  # type: ignore[attr-defined]
    assert client.request("PLAY").status == 200  # type: ignore[attr-defined]
    value = setup_response.header("Session")
    assert value is not None and SessionHeader.parse(value).timeout == 1
    pair.advance(0.29)
    assert pair.core.sessions
    pair.advance(0.02)  # RFC 2326 §12.37: gone session_timeout after the last request
    assert not pair.core.sessions
    assert hook.teardowns == [(session_id, TeardownReason.TIMEOUT)]
    assert session_id not in pair.streaming
    assert client.request("GET_PARAMETER").status == 454  # type: ignore[attr-defined]


# -- moved from test_keying_cleanup.py ------------------------------------------------------------


def test_describe_without_setup_is_wiped_when_the_connection_ends() -> None:
    server_cfg, _ = configs(Mode.PSK)
    keying = MikeyServerKeying(server_cfg, registry=GsaRegistry())
    pair = RtspPair(keying=keying)
    for _ in range(3):
        client = pair.connect()
        response = client.request("DESCRIBE", "/tone", (("Accept", "application/sdp"),))
        described = SessionDescription.parse(response.body).effective_key_mgmt(0)
        assert described  # the server made an I_MESSAGE for this connection
        assert keying.pending >= 1
        client.lose()
    assert keying.pending == 0


# -- the session table ----------------------------------------------------------------------------


def test_session_table_every_pair() -> None:
    pair = RtspPair()
    client = pair.connect()
    session = pair.session(client.setup())
    for state, inp in itertools.product(SessionState, SessionInput):
        session.state = state
        if state is SessionState.CLOSED:
            with pytest.raises(SessionStateError):
                step(session, inp)
            assert session.state is SessionState.CLOSED  # never leaves CLOSED
        else:
            expected = {
                SessionInput.PLAY: SessionState.PLAYING,
                SessionInput.PAUSE: SessionState.READY,
                SessionInput.CLOSE: SessionState.CLOSED,
            }[inp]
            assert step(session, inp) is expected


def test_play_pause_teardown_effects() -> None:
    pair = RtspPair()
    client = pair.connect()
    session_id = client.setup()
    assert pair.session(session_id).transport.server_port == (6000, 6001)
    assert client.request("PLAY").status == 200
    assert session_id in pair.streaming
    assert client.request("PLAY").status == 200  # PLAYING --PLAY--> PLAYING: no second stream
    starts = [e for _, e in pair.log if isinstance(e, StartStreaming)]
    assert len(starts) == 1
    assert client.request("PAUSE").status == 200
    assert session_id not in pair.streaming
    assert any(isinstance(e, StopStreaming) for _, e in pair.log)
    assert client.request("PAUSE").status == 200  # RFC 2326 §10.6: PAUSE when READY is fine
    assert client.request("TEARDOWN").status == 200
    assert pair.released == [session_id]
    assert client.request("PLAY").status == 454


# -- timers ---------------------------------------------------------------------------------------


def test_slow_drip_request_is_closed_at_its_deadline() -> None:
    pair = RtspPair(config=CoreConfig(request_timeout=4.0, idle_timeout=30.0))
    client = pair.connect()
    client.send_bytes(b"OPTIONS rtsp://h/tone RTSP/1.0\r\n")
    assert pair.core.next_deadline() == 4.0
    pair.advance(3.0)
    client.send_bytes(b"CSeq: 1\r\n")  # still partial: the bound counts from the first byte
    pair.advance(0.99)
    assert not client.closed
    pair.advance(0.01)
    assert client.closed and pair.core.slow_closed == 1
    assert not client.inbox


def test_idle_connection_closed_and_sessions_hold_it_open() -> None:
    pair = RtspPair(config=CoreConfig(idle_timeout=30.0, session_timeout=60.0))
    idle = pair.connect()
    busy = pair.connect()
    busy.setup()
    pair.advance(29.9)
    assert not idle.closed
    pair.advance(0.1)
    assert idle.closed and not busy.closed
    pair.advance(30.0)  # a connection with a session has no idle bound; the session has its own
    assert not pair.core.sessions and not busy.closed  # reaped at 60 s: idle from then on
    pair.advance(29.9)
    assert not busy.closed
    pair.advance(0.1)
    assert busy.closed and pair.core.slow_closed == 2


def test_session_end_restarts_the_idle_bound() -> None:
    pair = RtspPair(config=CoreConfig(idle_timeout=30.0, session_timeout=60.0))
    client = pair.connect()
    client.setup()
    pair.advance(10.0)
    assert client.request("TEARDOWN").status == 200
    pair.advance(29.0)
    assert not client.closed
    pair.advance(1.0)
    assert client.closed


def test_activity_keeps_a_session() -> None:
    pair = RtspPair(config=CoreConfig(session_timeout=10.0))
    client = pair.connect()
    session_id = client.setup()
    for _ in range(5):
        pair.advance(9.0)
        assert client.request("GET_PARAMETER").status == 200
    pair.core.touch(pair.session(session_id), pair.now + 5.0)  # RTCP counts as activity
    pair.advance(14.0)
    assert session_id in pair.core.sessions
    pair.advance(1.0)
    assert session_id not in pair.core.sessions


# -- dispatch and ordering ------------------------------------------------------------------------


def test_pipelined_requests_wait_for_the_udp_setup() -> None:
    pair = RtspPair()
    client = pair.connect()
    setup = RtspRequest(
        "SETUP",
        "rtsp://127.0.0.1:554/tone/stream=0",
        (("CSeq", "1"), ("Transport", "RTP/AVP;unicast;client_port=5000-5001")),
    )
    options = RtspRequest("OPTIONS", "rtsp://127.0.0.1:554/tone", (("CSeq", "2"),))
    effects = pair.core.receive_data(client.conn_id, setup.encode() + options.encode(), 0.0)
    assert [type(e) for e in effects] == [OpenUdp]  # OPTIONS queues behind the SETUP
    pair.run(effects)
    assert [r.cseq for r in client.inbox] == [1, 2]
    assert [r.status for r in client.inbox] == [200, 200]


def test_udp_failure_is_500_and_no_session() -> None:
    hook = ServerHook()
    pair = RtspPair(keying=hook)
    pair.refuse_udp = True
    client = pair.connect()
    spec = format_keymgmt([KeyMgmtSpec("mikey", "rtsp://127.0.0.1:554/tone/stream=0", R_MESSAGE)])
    response = client.request(
        "SETUP",
        "/tone/stream=0",
        (("Transport", "RTP/SAVP;unicast;client_port=5000-5001"), ("KeyMgmt", spec)),
    )
    assert response.status == 500
    assert not pair.core.sessions
    assert [r for _, r in hook.teardowns] == [TeardownReason.SETUP_FAILED]


def test_refused_keying_is_463_and_leaves_nothing() -> None:
    hook = ServerHook(refuse=True)
    pair = RtspPair(keying=hook)
    client = pair.connect()
    response = client.request(
        "SETUP", "/tone/stream=0", (("Transport", "RTP/SAVP;unicast;client_port=5000-5001"),)
    )
    assert response.status == 463  # RFC 4567 §3.2
    assert not pair.core.sessions
    assert [r for _, r in hook.teardowns] == [TeardownReason.KEYING_FAILED]
    assert not any(isinstance(e, OpenUdp) for _, e in pair.log)


def test_malformed_stream_gets_400_and_close() -> None:
    pair = RtspPair()
    client = pair.connect()
    session_id = client.setup()
    client.send_bytes(b"\x00\x01garbage\r\n\r\n")
    assert client.inbox[-1].status == 400 and client.closed
    assert pair.core.malformed == 1
    assert session_id not in pair.core.sessions


def test_missing_cseq_version_require_unknown_method() -> None:
    pair = RtspPair()
    client = pair.connect()
    client.send_bytes(b"OPTIONS rtsp://h/tone RTSP/1.0\r\n\r\n")
    assert client.inbox[-1].status == 400
    assert client.request("OPTIONS", headers=(("Require", "x"),)).status == 551
    assert client.request("RECORD").status == 501
    client.send_bytes(b"OPTIONS rtsp://h/tone RTSP/2.0\r\nCSeq: 9\r\n\r\n")
    assert client.inbox[-1].status == 505


def test_connection_limit_and_shutdown() -> None:
    hook = ServerHook()
    pair = RtspPair(config=CoreConfig(max_connections=1), keying=hook)
    session_id, first = _keyed_setup(pair)
    second = pair.connect()
    assert second.closed and second.inbox[0].status == 503
    pair.run(pair.core.close(pair.now))
    assert first.closed  # type: ignore[attr-defined]
    assert hook.teardowns == [(session_id, TeardownReason.SHUTDOWN)]


# -- session binding (454) ------------------------------------------------------------------------


def test_keying_requests_from_another_connection_get_454() -> None:
    hook = ServerHook()
    pair = RtspPair(keying=hook)
    session_id, owner = _keyed_setup(pair)
    other = pair.connect(("127.0.0.1", 40001))
    last = pair.session(session_id).last_activity
    pair.advance(5.0)
    headers = (("Session", session_id),)
    assert other.request("GET_PARAMETER", headers=headers, body=b"mikey\r\n").status == 454
    body = format_mikey_parameter(I_MESSAGE)
    assert other.request("SET_PARAMETER", headers=headers, body=body).status == 454
    assert other.request("SET_PARAMETER", headers=headers, body=b"mikey: ###\r\n").status == 454
    assert pair.session(session_id).last_activity == last  # nothing changed, not even activity
    assert hook.rekeys == []
    assert owner.request("SET_PARAMETER", body=body).status == 200  # type: ignore[attr-defined]
    assert len(hook.rekeys) == 1
    # a plain keep-alive from elsewhere is no keying request
    assert other.request("GET_PARAMETER", headers=headers).status == 200


def test_responses_are_effects_in_request_order() -> None:
    pair = RtspPair()
    client = pair.connect()
    data = b"".join(
        RtspRequest("OPTIONS", "rtsp://h/tone", (("CSeq", str(n)),)).encode() for n in range(5)
    )
    effects = pair.core.receive_data(client.conn_id, data, 0.0)
    assert [e.response.cseq for e in effects if isinstance(e, SendResponse)] == list(range(5))


def test_one_heap_entry_per_timed_object() -> None:
    pair = RtspPair()
    client = pair.connect()
    client.setup()
    idle = pair.connect()
    for _ in range(200):
        pair.advance(0.1)
        assert client.request("GET_PARAMETER").status == 200
        assert idle.request("OPTIONS").status == 200
    assert len(pair.core._heap) <= 4  # touches move deadlines later: no entry per request
