"""Hostile peers on the in-memory pair: every request gets a final response, and refused
traffic cannot fill the transaction or call tables (RFC 3261 §17.2.1, §8.2.2.2, §21.5.4)."""

from __future__ import annotations

import os

import pytest

from sipglue.core import Effect, OfferReceived, SourceBudget
from sipglue.dialog import Dialog
from sipglue.errors import CallError
from sipglue.message import Request, Response, new_branch, parse_message
from sipglue.sdp import SessionDescription
from sipglue.transaction import TimerConfig
from sipglue.transport import Address
from sipglue.ua import TerminationReason

from .pair import Side, UaPair

T1 = 0.05
TIMERS = TimerConfig(t1=T1, t2=0.4, t4=0.5)
FLOODER: Address = ("127.0.0.9", 5070)


def _idle(side: Side) -> None:
    assert len(side.core.transactions) == 0
    assert side.core.calls == {}


def _outcome(side: Side) -> Response | CallError:
    (outcome,) = side.outcomes.values()
    return outcome


def test_a_raising_hook_gets_500_and_leaves_nothing_behind() -> None:
    pair = UaPair(TIMERS)

    def broken_factory(is_uac: bool, peer: Address, invite: Request) -> object:
        raise ValueError("a bug in the shell's call factory")

    pair.bob.core.call_factory = broken_factory  # type: ignore[assignment]
    pair.invite()
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 500
    assert pair.bob.sent_responses(500) == [0.0]
    assert pair.bob.core.counters["handler_failed"] == 1
    assert pair.bob.core.calls == {}
    pair.advance(70 * T1)
    _idle(pair.bob)
    pair.advance(33.0)  # Timer D: 32 s over UDP, whatever T1 (§17.1.1.2)
    _idle(pair.alice)


def test_dialog_from_uas_value_error_gets_500(monkeypatch: pytest.MonkeyPatch) -> None:
    pair = UaPair(TIMERS)

    def broken(*args: object, **kwargs: object) -> object:
        raise ValueError("from_uas choked")

    monkeypatch.setattr(Dialog, "from_uas", broken)
    pair.invite()
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 500
    pair.advance(70 * T1)
    _idle(pair.bob)


def test_a_raising_answer_step_ends_the_call_with_500(caplog: pytest.LogCaptureFixture) -> None:
    pair = UaPair(TIMERS)

    class Broken(SessionDescription):
        def encode(self) -> bytes:
            raise RuntimeError("secret-key-bytes-here")

    def answer(side: Side, event: OfferReceived) -> list[Effect]:
        broken = Broken(event.offer.session, event.offer.media)
        return side.core.offer_answered(event, broken, pair.clock.now)

    pair._answer = answer  # type: ignore[method-assign]
    pair.invite()
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 500
    (ended,) = pair.bob.terminated
    assert ended[1] == TerminationReason.SETUP_FAILED
    assert pair.bob.core.calls == {}  # never answered: no call slot held
    assert "secret-key-bytes-here" not in caplog.text
    pair.advance(70 * T1)
    _idle(pair.bob)
    pair.advance(33.0)  # Timer D: 32 s over UDP, whatever T1 (§17.1.1.2)
    _idle(pair.alice)


def test_an_unanswered_invite_gets_408_after_the_proceeding_bound() -> None:
    pair = UaPair(TIMERS, incoming_status=None)  # the incoming hook never decides
    call, _ = pair.invite()
    assert len(pair.bob.core.transactions) == 1 and len(pair.bob.core.calls) == 1
    pair.advance(63 * T1)
    assert pair.bob.sent_responses(408) == []
    pair.advance(2 * T1)
    assert pair.bob.sent_responses(408) == [pytest.approx(64 * T1)]
    assert pair.bob.terminated == [(call.call_id, TerminationReason.TIMEOUT)]
    assert pair.bob.core.counters["proceeding_expired"] == 1
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 408
    pair.decide(200)  # the hook wakes up late: nothing more is sent
    assert pair.bob.sent_responses(200) == []
    pair.advance(70 * T1)
    _idle(pair.bob)


def test_proceeding_bound_is_configurable() -> None:
    timers = TimerConfig(t1=T1, t2=0.4, t4=0.5, proceeding=1.0)
    pair = UaPair(timers, incoming_status=None)
    pair.invite()
    pair.advance(1.5)
    assert pair.bob.sent_responses(408) == [pytest.approx(1.0)]


def _raw_invite(n: int, source: Address = FLOODER, *, body: bytes = b"") -> Request:
    host, port = source
    headers = [
        ("Via", f"SIP/2.0/UDP {host}:{port};branch={new_branch(os.urandom)}"),
        ("Max-Forwards", "70"),
        ("From", f"<sip:flood@{host}>;tag=f{n}"),
        ("To", "<sip:bob@127.0.0.1:5062>"),
        ("Call-ID", f"flood-{n}@{host}"),
        ("CSeq", "1 INVITE"),
        ("Contact", f"<sip:flood@{host}:{port}>"),
    ]
    if body:
        headers.append(("Content-Type", "application/sdp"))
    request = Request("INVITE", "sip:bob@127.0.0.1:5062", tuple(headers), body)
    parsed = parse_message(request.encode())  # through the real codec
    assert isinstance(parsed, Request)
    return parsed


def _flood(pair: UaPair, count: int, source: Address = FLOODER) -> list[int]:
    """``count`` INVITEs without an offer from ``source``; the statuses bob answered."""
    statuses: list[int] = []
    for n in range(count):
        effects = pair.bob.core.receive(_raw_invite(n, source), source, pair.clock.now)
        before = len(pair.bob.sent)
        pair.run(pair.bob, effects)
        for _, message, _ in pair.bob.sent[before:]:
            if isinstance(message, Response) and message.status >= 200:
                statuses.append(message.status)
    return statuses


def test_300_refused_invites_hold_no_call_slot_and_a_real_call_succeeds() -> None:
    pair = UaPair(TIMERS)
    statuses = _flood(pair, 300)
    assert statuses == [488] * 300  # no offer (RFC 3264 §5)
    assert pair.bob.core.calls == {}  # refused before a dialog: no call slot
    assert len(pair.bob.core.transactions) == 300  # the server transactions absorb retries
    call, _ = pair.invite()
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 200
    pair.bye(pair.alice, call)
    pair.advance(70 * T1)
    _idle(pair.bob)


def test_the_source_budget_bites_for_one_source_only() -> None:
    pair = UaPair(TIMERS)
    pair.bob.core.source_budget = SourceBudget(rate=1.0, burst=100)
    statuses = _flood(pair, 300)
    assert statuses.count(488) == 100 and statuses.count(503) == 200
    assert pair.bob.core.counters["source_limited"] == 200
    call, _ = pair.invite()  # another source: its own budget
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 200
    pair.bye(pair.alice, call)
    pair.advance(70 * T1)
    _idle(pair.bob)


def test_a_full_table_evicts_completed_server_transactions_first() -> None:
    pair = UaPair(TIMERS)
    pair.bob.core.transactions.max_transactions = 16
    statuses = _flood(pair, 300)
    assert statuses == [488] * 300  # each new one evicted the oldest completed one
    assert len(pair.bob.core.transactions) == 16
    assert pair.bob.core.counters["completed_evicted"] == 300 - 16
    assert pair.bob.core.counters["transactions_full"] == 0
    call, _ = pair.invite()
    outcome = _outcome(pair.alice)
    assert isinstance(outcome, Response) and outcome.status == 200
    pair.bye(pair.alice, call)
    pair.advance(70 * T1)
    _idle(pair.bob)


def test_a_full_table_of_proceeding_invites_refuses_with_503() -> None:
    pair = UaPair(TIMERS, incoming_status=None)  # every INVITE stays in Proceeding
    pair.bob.core.transactions.max_transactions = 4
    pair.bob.core.max_calls = 100
    for n in range(4):
        effects = pair.bob.core.receive(_raw_invite(n), FLOODER, pair.clock.now)
        pair.run(pair.bob, effects)
    assert len(pair.bob.core.transactions) == 4
    effects = pair.bob.core.receive(_raw_invite(99), FLOODER, pair.clock.now)
    pair.run(pair.bob, effects)
    assert pair.bob.sent_responses(503) == [0.0]
    assert pair.bob.core.counters["transactions_full"] == 1
    pair.advance(64 * T1 + 70 * T1)  # the Proceeding bound ends them all
    _idle(pair.bob)


def test_a_merged_invite_gets_482_while_the_first_transaction_lives() -> None:
    pair = UaPair(TIMERS)
    assert _flood(pair, 1) == [488]
    assert pair.bob.core.calls == {}  # the refused call is gone at once ...
    assert _flood(pair, 1) == [482]  # ... but its transaction still detects the merge (§8.2.2.2)
    assert len(pair.bob.core.transactions) == 1  # the 482 is stateless
    pair.advance(70 * T1)
    _idle(pair.bob)
    assert _flood(pair, 1) == [488]  # the first transaction ended: a new request
