"""UAS 2xx retransmission until ACK (RFC 3261 §13.3.1.4), on the in-memory pair's fake clock."""

from __future__ import annotations

import itertools

import pytest

from sipglue.message import Message, Request
from sipglue.transaction import TimerConfig
from sipglue.ua import TerminationReason

from .pair import Side, UaPair

T1 = 0.02
TIMERS = TimerConfig(t1=T1, t2=4.0, t4=0.1)


def _no_ack(side: Side, message: Message) -> bool:
    return isinstance(message, Request) and message.method == "ACK"


def test_2xx_resent_with_doubling_gaps_then_call_times_out() -> None:
    pair = UaPair(TIMERS)
    pair.drop = _no_ack
    pair.invite()
    call = pair.bob.only_call()
    pair.advance(70 * T1)
    assert pair.bob.terminated == [(call.call_id, TerminationReason.TIMEOUT)]
    oks = pair.bob.sent_responses(200)
    # sent, then resent after gaps of T1, 2T1, 4T1 ... until 64*T1: 5 resends at T1 = 20 ms
    assert 4 <= len(oks) - 1 <= 6
    gaps = [b - a for a, b in itertools.pairwise(oks)]
    assert all(later > earlier * 1.3 for earlier, later in itertools.pairwise(gaps))
    assert oks[-1] - oks[0] < 64 * T1
    # on the fake clock, exactly: at 0, T1, 3T1, 7T1, 15T1, 31T1, 63T1; the BYE at 64T1
    assert oks == pytest.approx([k * T1 for k in (0, 1, 3, 7, 15, 31, 63)])
    assert pair.bob.sent_requests("BYE") == pytest.approx([64 * T1])
    assert pair.alice.terminated == [(call.call_id, TerminationReason.REMOTE_BYE)]


def test_2xx_gaps_cap_at_t2() -> None:
    pair = UaPair(TimerConfig(t1=T1, t2=4 * T1, t4=0.1))
    pair.drop = _no_ack
    pair.invite()
    pair.advance(70 * T1)
    oks = pair.bob.sent_responses(200)
    gaps = [round((b - a) / T1, 6) for a, b in itertools.pairwise(oks)]
    assert gaps == [1, 2, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]  # then 64*T1
    assert [r for _, r in pair.bob.terminated] == [TerminationReason.TIMEOUT]


def test_ack_stops_2xx_retransmission() -> None:
    pair = UaPair(TIMERS)
    pair.invite()
    call = pair.bob.only_call()
    assert pair.bob.acked == [call]
    sent = len(pair.bob.sent_responses(200))
    pair.advance(70 * T1)  # past every retransmission time and the give-up
    assert len(pair.bob.sent_responses(200)) == sent == 1
    assert not call.ended  # the ACK cancelled the give-up too
    assert pair.bob.core.next_deadline() is None  # and nothing is left armed


def test_late_ack_stops_retransmission_and_give_up() -> None:
    pair = UaPair(TIMERS)
    lost = [0]

    def first_two_acks_lost(side: Side, message: Message) -> bool:
        if _no_ack(side, message) and lost[0] < 2:
            lost[0] += 1
            return True
        return False

    pair.drop = first_two_acks_lost
    pair.invite()
    call = pair.bob.only_call()
    pair.advance(70 * T1)
    # the 2xx at T1 is re-ACKed (lost), the one at 3T1 too (lost), the one at 7T1 gets through
    assert pair.bob.sent_responses(200) == pytest.approx([0, T1, 3 * T1])
    assert pair.bob.acked == [call] and not call.ended


def test_reliable_transport_no_2xx_resends_but_give_up() -> None:
    pair = UaPair(TIMERS, reliable=True)
    pair.drop = _no_ack
    pair.invite()
    call = pair.bob.only_call()
    pair.advance(70 * T1)
    assert pair.bob.sent_responses(200) == [0.0]  # §13.3.1.4: only over unreliable transports
    assert pair.bob.sent_requests("BYE") == pytest.approx([64 * T1])
    assert pair.bob.terminated == [(call.call_id, TerminationReason.TIMEOUT)]


def test_late_invite_retransmission_gets_the_pending_2xx() -> None:
    pair = UaPair(TIMERS)
    pair.drop = _no_ack
    call, _ = pair.invite()
    (_, invite, _), *_ = pair.alice.sent
    pair.advance(0.5 * T1)
    before = len(pair.bob.sent_responses(200))
    # the INVITE again, after bob's server transaction ended on its 2xx: no new call, the 2xx
    assert isinstance(invite, Request)
    pair.run(pair.bob, pair.bob.core.receive(invite, pair.alice.address, pair.clock.now))
    assert len(pair.bob.sent_responses(200)) == before + 1
    assert len(pair.bob.core.calls) == 1 and pair.bob.sent_responses(100) == [0.0]
    assert not call.ended
