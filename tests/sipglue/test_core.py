"""The sans-IO UA core on the in-memory pair: transaction timers, dispatch rules, call states."""

from __future__ import annotations

import pytest

from sipglue.core import CallInput, CallRecord, CallState, CallStateError
from sipglue.errors import CallError
from sipglue.message import Message, Request, Response, make_response
from sipglue.transaction import TimerConfig, build_cancel
from sipglue.ua import TerminationReason

from .helpers import response_for
from .pair import Side, UaPair, blob_of

T1 = 0.05
TIMERS = TimerConfig(t1=T1, t2=0.4, t4=0.5)


def _everything(side: Side, message: Message) -> bool:
    return True


def test_call_confirmed_then_bye() -> None:
    pair = UaPair(TIMERS)
    call, tx = pair.invite(blob=b"first")
    remote = pair.bob.only_call()
    assert call.state == remote.state == CallState.CONFIRMED
    assert pair.bob.accepted == [remote] and pair.bob.acked == [remote]
    assert isinstance(pair.alice.outcomes[tx], Response) and call.final_status == 200
    assert call.id is not None and remote.id is not None
    cid, ltag, rtag = call.id.split(";")
    assert remote.id == f"{cid};{rtag};{ltag}"
    assert blob_of(pair.bob.offers[0]) == b"first"
    assert remote.local_sdp is not None
    (km,) = remote.local_sdp.effective_key_mgmt(0)
    assert km.data == response_for("Zmlyc3Q=")
    bye = pair.bye(pair.alice, call)
    assert isinstance(pair.alice.outcomes[bye], Response)
    assert pair.alice.terminated == [(call.call_id, TerminationReason.LOCAL_BYE)]
    assert pair.bob.terminated == [(call.call_id, TerminationReason.REMOTE_BYE)]


def test_invite_timer_a_doubles_and_timer_b_times_out() -> None:
    pair = UaPair(TIMERS)
    pair.drop = _everything
    call, tx = pair.invite()
    pair.advance(70 * T1)
    # §17.1.1.2: A at T1, doubling without a cap; B at 64*T1
    sent = pair.alice.sent_requests("INVITE")
    assert sent == pytest.approx([k * T1 for k in (0, 1, 3, 7, 15, 31, 63)])
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, CallError) and outcome.status_code == 408
    assert pair.alice.terminated == [(call.call_id, TerminationReason.TIMEOUT)]
    assert not pair.alice.core.transactions.clients


def test_non_invite_timer_e_caps_at_t2_and_timer_f_times_out() -> None:
    pair = UaPair(TIMERS)
    call, _ = pair.invite()
    pair.drop = _everything
    start = pair.clock.now
    tx = pair.request(pair.alice, call, "OPTIONS")
    pair.advance(70 * T1)
    sent = [round((t - start) / T1, 6) for t in pair.alice.sent_requests("OPTIONS")]
    # §17.1.2.2: E at T1, 2T1, 4T1, then every T2 (= 8 T1); F at 64*T1
    assert sent == [0, 1, 3, 7, 15, 23, 31, 39, 47, 55, 63]
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, CallError) and outcome.status_code == 408
    assert not call.ended  # a failed OPTIONS does not end the call


def test_error_response_timer_g_resends_and_timer_h_ends() -> None:
    pair = UaPair(TIMERS, reject_with=488)
    pair.drop = lambda side, m: isinstance(m, Request) and m.method == "ACK"
    call, tx = pair.invite()
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 488
    assert pair.bob.terminated == [(call.call_id, TerminationReason.REJECTED)]
    pair.advance(70 * T1)
    # §17.2.1: G at T1 doubling to T2 (8 T1), H at 64*T1 ends the transaction
    gaps = [round(t / T1, 6) for t in pair.bob.sent_responses(488)]
    assert gaps == [0, 1, 3, 7, 15, 23, 31, 39, 47, 55, 63]
    assert not pair.bob.core.transactions.servers


def test_terminated_call_is_kept_32_t1_then_forgotten() -> None:
    pair = UaPair(TIMERS)
    call, _ = pair.invite()
    pair.bye(pair.alice, call)
    ended = pair.clock.now
    pair.advance(31.9 * T1)
    assert call.call_id in pair.alice.core.calls and call.call_id in pair.bob.core.calls
    pair.advance(0.2 * T1)
    assert pair.clock.now - ended > 32 * T1
    assert not pair.alice.core.calls and not pair.bob.core.calls


def test_reliable_transport_forgets_at_once() -> None:
    pair = UaPair(TIMERS, reliable=True)
    call, _ = pair.invite()
    pair.bye(pair.alice, call)
    pair.advance(0)
    assert not pair.alice.core.calls and not pair.bob.core.calls
    assert not pair.alice.core.transactions and not pair.bob.core.transactions


def test_cancel_pending_invite() -> None:
    pair = UaPair(TIMERS, incoming_status=None)  # bob's incoming hook has not decided
    call, tx = pair.invite()
    assert call.state == CallState.EARLY  # the 100 Trying arrived
    cancel_tx, effects = pair.alice.core.cancel(call, pair.clock.now)
    pair.run(pair.alice, effects)
    assert cancel_tx is not None
    cancelled = pair.alice.outcomes[cancel_tx]
    assert isinstance(cancelled, Response) and cancelled.status == 200
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 487  # §9.2
    pair.run(pair.alice, pair.alice.core.uac_final(call, outcome, pair.clock.now))
    assert pair.alice.terminated == [(call.call_id, TerminationReason.CANCEL)]
    assert pair.bob.terminated == [(call.call_id, TerminationReason.CANCEL)]
    pair.decide(200)  # the hook answers late: the call stays cancelled, nothing more is sent
    assert pair.bob.sent_responses(200) == []
    assert pair.bob.accepted == []


def test_cancel_before_provisional_waits_for_it() -> None:
    pair = UaPair(TIMERS, incoming_status=None)
    trying = [0]

    def first_trying_lost(side: Side, m: Message) -> bool:
        if isinstance(m, Response) and m.status == 100:
            trying[0] += 1
            return trying[0] == 1
        return False

    pair.drop = first_trying_lost
    call, tx = pair.invite()
    assert call.state == CallState.CALLING
    pair.run(pair.alice, pair.alice.core.cancel(call, pair.clock.now)[1])
    assert pair.alice.sent_requests("CANCEL") == []  # §9.1: not before a provisional
    pair.advance(T1)  # the INVITE is resent, bob resends its 100 Trying
    assert pair.alice.sent_requests("CANCEL") == pytest.approx([T1])
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 487


def test_cancel_without_pending_invite_gets_481() -> None:
    pair = UaPair(TIMERS)
    call, _ = pair.invite()
    cancel = build_cancel(call.invite)
    tx, effects = pair.alice.core.start_request(cancel, pair.bob.address, pair.clock.now)
    pair.run(pair.alice, effects)
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 481
    assert not call.ended


@pytest.mark.parametrize(("method", "status"), [("MESSAGE", 405), ("BYE", 481), ("OPTIONS", 200)])
def test_out_of_dialog_requests(method: str, status: int) -> None:
    pair = UaPair(TIMERS)
    pair.invite()
    request = Request(
        method,
        "sip:bob@127.0.0.1:5062",
        (
            ("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKood"),
            ("From", "<sip:alice@127.0.0.1>;tag=x1"),
            ("To", "<sip:bob@127.0.0.1>"),
            ("Call-ID", "ood@127.0.0.1"),
            ("CSeq", f"1 {method}"),
        ),
    )
    tx, effects = pair.alice.core.start_request(request, pair.bob.address, pair.clock.now)
    pair.run(pair.alice, effects)
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == status
    if status != 481:
        assert "INVITE" in (outcome.get("Allow") or "")


def test_in_dialog_unknown_tag_gets_481_and_unknown_method_405() -> None:
    pair = UaPair(TIMERS)
    call, _ = pair.invite()
    assert call.dialog is not None
    tx = pair.request(pair.alice, call, "MESSAGE")
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 405
    call.dialog.remote_tag = "not-bobs"
    tx = pair.request(pair.alice, call, "BYE")
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 481  # §12.2.2
    assert not pair.bob.only_call().ended


def test_in_dialog_request_from_another_address_gets_403() -> None:
    pair = UaPair(TIMERS)
    call, _ = pair.invite()
    assert call.dialog is not None
    bye = call.dialog.create_request("BYE", "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKspoof")
    effects = pair.bob.core.receive(bye, ("127.0.0.1", 9), pair.clock.now)
    pair.run(pair.bob, effects)
    (_, reply, dest) = pair.bob.sent[-1]
    assert isinstance(reply, Response) and reply.status == 403 and dest == ("127.0.0.1", 9)
    assert not pair.bob.only_call().ended


def test_malformed_request_gets_stateless_400() -> None:
    pair = UaPair(TIMERS)
    bad = Request(
        "INVITE",
        "sip:bob@127.0.0.1",
        (
            ("Via", "SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKq"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>"),
            ("Call-ID", "x"),
            ("CSeq", "1 OPTIONS"),
        ),
    )
    pair.run(pair.bob, pair.bob.core.receive(bad, pair.alice.address, 0.0))
    (_, reply, _) = pair.bob.sent[-1]
    assert isinstance(reply, Response) and reply.status == 400
    assert not pair.bob.core.transactions and not pair.bob.core.calls


def test_retransmitted_2xx_is_re_acked() -> None:
    pair = UaPair(TIMERS)
    pair.invite()
    remote = pair.bob.only_call()
    assert remote.dialog is not None and remote.invite.body
    ok = make_response(remote.invite, 200, to_tag=remote.dialog.local_tag)
    ok = Response(200, "OK", (*ok.headers, ("Contact", "<sip:bob@127.0.0.1:5062>")), b"")
    acks = len(pair.alice.sent_requests("ACK"))
    pair.run(pair.alice, pair.alice.core.receive(ok, pair.bob.address, pair.clock.now))
    assert len(pair.alice.sent_requests("ACK")) == acks + 1  # §13.2.2.4


def test_connection_lost_ends_calls_and_fails_requests() -> None:
    pair = UaPair(TIMERS, reliable=True)
    call, _ = pair.invite()
    pair.drop = _everything
    tx = pair.request(pair.alice, call, "OPTIONS")
    pair.run(pair.alice, pair.alice.core.connection_lost(pair.bob.address, pair.clock.now))
    assert pair.alice.terminated == [(call.call_id, TerminationReason.CONNECTION_LOST)]
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, CallError) and outcome.status_code == 503


def test_call_state_table() -> None:
    call = CallRecord(is_uac=True, peer=("127.0.0.1", 1), invite=_dummy_invite())
    assert call.step(CallInput.PROVISIONAL) == CallState.EARLY
    assert call.step(CallInput.ANSWERED) == CallState.CONFIRMED
    with pytest.raises(CallStateError):
        call.step(CallInput.PROVISIONAL)
    assert call.state == CallState.CONFIRMED
    assert call.step(CallInput.TERMINATE) == CallState.TERMINATED
    for inp in CallInput:
        with pytest.raises(CallStateError):
            call.step(inp)
    assert call.ended


def _dummy_invite() -> Request:
    return Request(
        "INVITE",
        "sip:b@h",
        (
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bKd"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>"),
            ("Call-ID", "d"),
            ("CSeq", "1 INVITE"),
        ),
    )
