from __future__ import annotations

import itertools

import pytest

from sipglue.errors import TransactionError
from sipglue.message import Request, Response, make_response, parse_message
from sipglue.transaction import (
    ClientTransaction,
    Input,
    ResponseReceived,
    ServerTransaction,
    State,
    TimerConfig,
    TransactionKey,
    TransactionTable,
    TransactionTerminated,
    TransactionTimedOut,
    Transmit,
    build_cancel,
    cancel_target_key,
    client_key,
    server_key,
)


def request(method: str = "INVITE", branch: str = "z9hG4bKabc") -> Request:
    msg = parse_message(
        f"{method} sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch}\r\n"
        "Route: <sip:proxy;lr>\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: cid\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n".encode()
    )
    assert isinstance(msg, Request)
    return msg


def run_timers(
    tx: ClientTransaction | ServerTransaction, until: float
) -> list[tuple[float, object]]:
    """Advance a fake clock from deadline to deadline; return (time, event) pairs."""
    out: list[tuple[float, object]] = []
    while (deadline := tx.next_deadline()) is not None and deadline <= until:
        out.extend((deadline, e) for e in tx.handle_timer(deadline))
    return out


def sends(events: list[tuple[float, object]]) -> list[float]:
    return [t for t, e in events if isinstance(e, Transmit)]


def test_timer_a_doubles_and_b_times_out() -> None:
    tx = ClientTransaction(request(), reliable=False)
    assert tx.start(0.0) == [Transmit(tx.request)]
    events = run_timers(tx, 100.0)
    # §17.1.1.2: retransmit at T1, 2T1, 4T1, ... (intervals double) until B = 64*T1
    assert sends(events) == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert events[-2] == (32.0, TransactionTimedOut("B"))
    assert isinstance(events[-1][1], TransactionTerminated)
    assert tx.state == State.TERMINATED


def test_timer_e_caps_at_t2_and_f_times_out() -> None:
    tx = ClientTransaction(request("OPTIONS"), reliable=False, timers=TimerConfig(t1=0.25))
    tx.start(0.0)
    events = run_timers(tx, 100.0)
    times = sends(events)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise([0.0, *times])]
    assert gaps[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert all(g == 4.0 for g in gaps[4:])
    assert (16.0, TransactionTimedOut("F")) in events


def test_timer_e_in_proceeding_uses_t2() -> None:
    tx = ClientTransaction(request("BYE"), reliable=False)
    tx.start(0.0)
    tx.handle_timer(0.5)
    trying = make_response(tx.request, 100)
    assert tx.receive_response(trying, 0.6) == [ResponseReceived(trying)]
    assert tx.state == State.PROCEEDING
    events = run_timers(tx, 20.0)
    assert sends(events)[:3] == [1.5, 5.5, 9.5]


def test_reliable_has_no_retransmissions() -> None:
    tx = ClientTransaction(request(), reliable=True)
    tx.start(0.0)
    events = run_timers(tx, 100.0)
    assert sends(events) == [] and events[0] == (32.0, TransactionTimedOut("B"))


def test_invite_client_non2xx_acks_and_absorbs() -> None:
    tx = ClientTransaction(request(), reliable=False)
    tx.start(0.0)
    busy = make_response(tx.request, 486, to_tag="b1")
    out = tx.receive_response(busy, 1.0)
    ack = out[0]
    assert isinstance(ack, Transmit) and isinstance(ack.message, Request)
    assert ack.message.method == "ACK"
    assert ack.message.uri == tx.request.uri
    assert ack.message.to.tag == "b1"
    assert ack.message.cseq.seq == 1 and ack.message.cseq.method == "ACK"
    assert ack.message.get_all("Via") == tx.request.get_all("Via")
    assert ack.message.get_all("Route") == ["<sip:proxy;lr>"]
    assert out[1] == ResponseReceived(busy)
    assert tx.state == State.COMPLETED
    # retransmitted final -> re-ACK, not passed up (§17.1.1.2)
    again = tx.receive_response(busy, 2.0)
    assert again == [ack]
    events = run_timers(tx, 100.0)
    assert events[-1] == (33.0, TransactionTerminated())  # Timer D = 32 s on UDP


def test_invite_client_2xx_terminates() -> None:
    tx = ClientTransaction(request(), reliable=False)
    tx.start(0.0)
    tx.receive_response(make_response(tx.request, 180, to_tag="x"), 0.1)
    assert tx.next_deadline() is None  # A and B stop in Proceeding
    ok = make_response(tx.request, 200, to_tag="x")
    assert tx.receive_response(ok, 0.2) == [ResponseReceived(ok), TransactionTerminated()]


def test_invite_server_100_and_error_retransmission_until_ack() -> None:
    tx = ServerTransaction(request(), reliable=False)
    start = tx.start(0.0)
    assert isinstance(start[0], Transmit) and isinstance(start[0].message, Response)
    assert start[0].message.status == 100
    # retransmitted INVITE -> last response re-sent (§17.2.1)
    assert tx.receive_request(tx.request, 0.1) == start
    err = make_response(tx.request, 488, to_tag="s")
    assert tx.send_response(err, 0.2) == [Transmit(err)]
    events = run_timers(tx, 2.0)
    assert [round(t, 6) for t in sends(events)] == [0.7, 1.7]
    ack = Request("ACK", tx.request.uri, (*tx.request.headers[:1], ("CSeq", "1 ACK")))
    assert tx.receive_request(ack, 2.0) == []
    assert tx.state == State.CONFIRMED
    assert tx.receive_request(ack, 2.1) == []  # absorbed
    assert run_timers(tx, 100.0) == [(7.0, TransactionTerminated())]  # Timer I = T4


def test_invite_server_h_timeout() -> None:
    tx = ServerTransaction(request(), reliable=False)
    tx.start(0.0)
    tx.send_response(make_response(tx.request, 500, to_tag="s"), 0.0)
    events = run_timers(tx, 100.0)
    times = sends(events)
    assert times[:4] == [0.5, 1.5, 3.5, 7.5] and times[4] == 11.5  # capped at T2
    assert (32.0, TransactionTimedOut("H")) in events


def test_non_invite_server_timer_j() -> None:
    tx = ServerTransaction(request("BYE"), reliable=False)
    assert tx.start(0.0) == []
    assert tx.receive_request(tx.request, 0.1) == []  # Trying: absorbed
    ok = make_response(tx.request, 200, to_tag="t")
    tx.send_response(ok, 0.2)
    assert tx.receive_request(tx.request, 1.0) == [Transmit(ok)]
    assert run_timers(tx, 100.0) == [(32.2, TransactionTerminated())]


def test_invite_server_2xx_terminates() -> None:
    tx = ServerTransaction(request(), reliable=True)
    tx.start(0.0)
    ok = make_response(tx.request, 200, to_tag="t")
    assert tx.send_response(ok, 0.1) == [Transmit(ok), TransactionTerminated()]
    with pytest.raises(TransactionError):
        tx.send_response(ok, 0.2)


def _drive(tx: ClientTransaction | ServerTransaction, inp: Input) -> None:
    """Feed any input through the machine's dispatcher (with a fitting message)."""
    req = tx.request
    statuses = {
        Input.RECV_1XX: 180,
        Input.RECV_2XX: 200,
        Input.RECV_FINAL_ERROR: 404,
        Input.TU_1XX: 180,
        Input.TU_2XX: 200,
        Input.TU_FINAL_ERROR: 404,
    }
    message: Request | Response | None = None
    if inp in statuses:
        message = make_response(req, statuses[inp], to_tag="z")
    elif inp == Input.RECV_REQUEST:
        message = req
    elif inp == Input.RECV_ACK:
        message = Request("ACK", req.uri, req.headers)
    elif inp.name.startswith("TIMER"):
        tx._intervals.setdefault(inp, 0.5)
    tx._dispatch(inp, 1.0, message)


SETUPS = {
    # (kind, state) -> list of inputs that reach it from a fresh transaction
    ("client", "INVITE", State.CALLING): [],
    ("client", "INVITE", State.PROCEEDING): [Input.RECV_1XX],
    ("client", "INVITE", State.COMPLETED): [Input.RECV_FINAL_ERROR],
    ("client", "INVITE", State.TERMINATED): [Input.RECV_2XX],
    ("client", "BYE", State.TRYING): [],
    ("client", "BYE", State.PROCEEDING): [Input.RECV_1XX],
    ("client", "BYE", State.COMPLETED): [Input.RECV_2XX],
    ("server", "INVITE", State.PROCEEDING): [],
    ("server", "INVITE", State.COMPLETED): [Input.TU_FINAL_ERROR],
    ("server", "INVITE", State.CONFIRMED): [Input.TU_FINAL_ERROR, Input.RECV_ACK],
    ("server", "INVITE", State.TERMINATED): [Input.TU_2XX],
    ("server", "BYE", State.TRYING): [],
    ("server", "BYE", State.PROCEEDING): [Input.TU_1XX],
    ("server", "BYE", State.COMPLETED): [Input.TU_2XX],
}


@pytest.mark.parametrize(("setup", "inp"), list(itertools.product(SETUPS, list(Input))))
def test_every_state_input_pair(setup: tuple[str, str, State], inp: Input) -> None:
    role, method, state = setup
    tx: ClientTransaction | ServerTransaction
    if role == "client":
        tx = ClientTransaction(request(method), reliable=False)
        tx.start(0.0)
        valid = {Input.RECV_1XX, Input.RECV_2XX, Input.RECV_FINAL_ERROR, Input.TRANSPORT_ERROR}
        valid |= {
            Input.TIMER_A,
            Input.TIMER_B,
            Input.TIMER_D,
            Input.TIMER_E,
            Input.TIMER_F,
            Input.TIMER_K,
        }
    else:
        tx = ServerTransaction(request(method), reliable=False)
        tx.start(0.0)
        valid = {
            Input.TU_1XX,
            Input.TU_2XX,
            Input.TU_FINAL_ERROR,
            Input.RECV_REQUEST,
            Input.TRANSPORT_ERROR,
        }
        valid |= {Input.TIMER_G, Input.TIMER_H, Input.TIMER_I, Input.TIMER_J}
        if method == "INVITE":
            valid |= {Input.RECV_ACK, Input.TIMER_PROCEEDING}
    for step in SETUPS[setup]:
        _drive(tx, step)
    assert tx.state == state
    try:
        _drive(tx, inp)
    except TransactionError:
        assert tx.state == State.TERMINATED and tx.failed
        return
    assert inp in valid
    assert tx.state in State


def test_keys_and_cancel_matching() -> None:
    invite = request()
    cancel = build_cancel(invite)
    assert cancel.method == "CANCEL" and cancel.cseq.seq == 1 and cancel.cseq.method == "CANCEL"
    assert cancel.get_all("Via") == invite.get_all("Via")
    assert cancel.get_all("Route") == invite.get_all("Route")
    assert cancel_target_key(cancel) == server_key(invite)
    assert server_key(cancel) != server_key(invite)
    ack = Request("ACK", invite.uri, invite.headers)
    assert server_key(ack) == server_key(invite)
    table = TransactionTable(max_transactions=2)
    srv = ServerTransaction(invite, reliable=False)
    cli = ClientTransaction(request("BYE", "z9hG4bKbye"), reliable=False)
    table.add(srv)
    table.add(cli)
    with pytest.raises(TransactionError):
        table.add(ServerTransaction(request("OPTIONS"), reliable=False))
    assert table.match_request(invite) is srv
    assert table.match_response(make_response(cli.request, 200)) is cli
    assert client_key(make_response(cli.request, 200)) == TransactionKey("z9hG4bKbye", "BYE")
    # same branch, other method: no match (§17.1.3)
    assert table.match_response(make_response(request("OPTIONS", "z9hG4bKbye"), 200)) is None
    table.discard(cli)
    assert table.match_response(make_response(cli.request, 200)) is None
