"""Glare on the in-memory pair: crossing re-INVITEs get 491 and are retried on the §14.1
timers (the owner of the Call-ID after 2.1-4 s, the other side after 0-2 s)."""

from __future__ import annotations

import pytest

from sipglue.core import CallRecord, Effect, OfferReceived
from sipglue.dialog import Dialog
from sipglue.hooks import TerminationReason
from sipglue.message import Request, Response
from sipglue.transaction import ClientTransaction, TimerConfig

from .helpers import offer
from .pair import Side, UaPair

T1 = 0.05
TIMERS = TimerConfig(t1=T1, t2=0.4, t4=0.5)


def _reinvite(pair: UaPair, side: Side, call: CallRecord) -> tuple[ClientTransaction, list[Effect]]:
    body = offer(blob=side.name.encode()).encode()
    return side.core.request_in_dialog(call, "INVITE", pair.clock.now, body=body)


def _ack_2xx(pair: UaPair, side: Side, call: CallRecord, tx: ClientTransaction) -> None:
    outcome = side.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 200
    side.core.reinvite_answered(call, outcome)
    pair.run(side, side.core.ack_2xx(call))


def _invites_sent(side: Side) -> list[float]:
    return side.sent_requests("INVITE")


def test_crossing_reinvites_get_491_and_retry_on_the_section_14_1_timers() -> None:
    pair = UaPair(TIMERS)
    alice_call, _ = pair.invite()
    bob_call = pair.bob.only_call()
    pair.advance(1.0)
    start = pair.clock.now
    alice_tx, alice_out = _reinvite(pair, pair.alice, alice_call)
    bob_tx, bob_out = _reinvite(pair, pair.bob, bob_call)
    pair._feed(pair.alice, alice_out)  # both on the wire before either arrives: they cross
    pair.run(pair.bob, bob_out)
    assert pair.alice.sent_responses(491) == [start]
    assert pair.bob.sent_responses(491) == [start]
    assert alice_tx not in pair.alice.outcomes and bob_tx not in pair.bob.outcomes  # waiting
    acked: set[ClientTransaction] = set()
    while pair.clock.now < start + 4.5:  # ACK each 2xx as it comes, as Call.reinvite() does
        pair.advance(0.01)
        for side, call, tx in ((pair.alice, alice_call, alice_tx), (pair.bob, bob_call, bob_tx)):
            if tx in side.outcomes and tx not in acked:
                _ack_2xx(pair, side, call, tx)
                acked.add(tx)
    assert acked == {alice_tx, bob_tx}
    # alice owns the Call-ID (she sent the initial INVITE): 2.1-4 s; bob: 0-2 s (§14.1)
    alice_sent, bob_sent = _invites_sent(pair.alice), _invites_sent(pair.bob)
    assert len(alice_sent) == 3 and len(bob_sent) == 2  # alice: initial, crossed, retry
    assert 2.1 <= alice_sent[-1] - start <= 4.0
    assert 0.0 <= bob_sent[-1] - start <= 2.0
    pair.advance(70 * T1)
    assert alice_call.state == bob_call.state  # both still confirmed
    assert not pair.alice.terminated and not pair.bob.terminated
    assert pair.alice.sent_requests("BYE") == [] and pair.bob.sent_requests("BYE") == []


def test_glare_delays_come_from_the_injected_rng() -> None:
    pair = UaPair(TIMERS)
    alice_call, _ = pair.invite()
    bob_call = pair.bob.only_call()
    pair.alice.core.rng = lambda n: b"\x00" * n
    pair.bob.core.rng = lambda n: b"\xff" * n
    assert pair.alice.core.glare_delay(alice_call) == pytest.approx(2.1)
    assert pair.bob.core.glare_delay(bob_call) == pytest.approx((0xFFFF % 201) / 100)
    for k in range(256):
        pair.alice.core.rng = lambda n, k=k: bytes([k]) * n  # type: ignore[misc]
        pair.bob.core.rng = pair.alice.core.rng
        assert 2.1 <= pair.alice.core.glare_delay(alice_call) <= 4.0
        assert 0.0 <= pair.bob.core.glare_delay(bob_call) <= 2.0


def test_glare_retries_are_bounded() -> None:
    pair = UaPair(TimerConfig())  # T1 = 0.5 s: bob's re-INVITE stays in Calling for 32 s
    alice_call, _ = pair.invite()
    bob_call = pair.bob.only_call()
    # bob's re-INVITE is lost on the wire: each of alice's tries meets it in progress (491)
    pair.drop = lambda side, message: side is pair.bob and isinstance(message, Request)
    _, bob_out = _reinvite(pair, pair.bob, bob_call)
    pair.run(pair.bob, bob_out)
    alice_tx, alice_out = _reinvite(pair, pair.alice, alice_call)
    pair.run(pair.alice, alice_out)
    pair.advance(3 * 4.0 + 1.0)
    outcome = pair.alice.outcomes[alice_tx]
    assert isinstance(outcome, Response) and outcome.status == 491
    assert len(pair.bob.sent_responses(491)) == 4  # the first try and three retries


def test_a_second_reinvite_before_the_first_is_answered_gets_500_with_retry_after() -> None:
    pair = UaPair(TIMERS)
    alice_call, _ = pair.invite()
    held: list[OfferReceived] = []

    def hold(side: Side, event: OfferReceived) -> list[Effect]:
        held.append(event)
        return []

    pair._answer = hold  # type: ignore[method-assign]
    _, first = _reinvite(pair, pair.alice, alice_call)
    pair.run(pair.alice, first)
    second_tx, second = _reinvite(pair, pair.alice, alice_call)
    pair.run(pair.alice, second)
    assert len(held) == 1  # the second never reached the binder
    outcome = pair.alice.outcomes[second_tx]
    assert isinstance(outcome, Response) and outcome.status == 500  # §14.2
    retry_after = outcome.get("Retry-After")
    assert retry_after is not None and 0 <= int(retry_after) <= 10


def test_a_failing_in_dialog_request_ends_the_confirmed_call_with_bye(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pair = UaPair(TIMERS)
    alice_call, _ = pair.invite()

    def broken(self: Dialog, request: Request) -> None:
        raise ValueError("a bug in the dialog layer")

    monkeypatch.setattr(Dialog, "receive_request", broken)
    tx = pair.request(pair.alice, alice_call, "OPTIONS")
    outcome = pair.alice.outcomes[tx]
    assert isinstance(outcome, Response) and outcome.status == 500
    assert pair.bob.sent_requests("BYE")  # the confirmed call ends on both sides (§15.1.1)
    pair.advance(70 * T1)
    assert alice_call.ended and pair.bob.terminated[0][1] == TerminationReason.SETUP_FAILED
    assert pair.alice.terminated  # (alice's dialog layer is broken too: her BYE failed as well)
