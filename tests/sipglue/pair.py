"""Two sans-IO UA cores wired to each other in memory, on a clock the test advances.

:class:`UaPair` is alice (the UAC) and bob (the UAS). Every :class:`~sipglue.core.Send` is
encoded, parsed back and delivered to the core at its destination address at once (or dropped,
when a test's ``drop`` filter says so); hooks are answered synchronously (bob answers offers like
:class:`~tests.sipglue.helpers.Recorder`). ``advance(dt)`` steps the fake clock from deadline to
deadline, so every timer fires at its exact time and a test can assert when each message left.
"""

from __future__ import annotations

import base64
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sipglue.core import (
    AckReceived,
    CallAccepted,
    CallRecord,
    CallTerminated,
    Effect,
    IncomingCall,
    OfferReceived,
    RequestFailed,
    ResponseArrived,
    Send,
    UaCore,
)
from sipglue.errors import CallError
from sipglue.hooks import TerminationReason
from sipglue.message import Message, NameAddr, Request, Response, SipUri, new_branch, parse_message
from sipglue.sdp import KeyMgmtAttr, SessionDescription, build_audio_answer
from sipglue.transaction import ClientTransaction, TimerConfig
from sipglue.transport import Address

from .helpers import offer, response_for


class FakeClock:
    """Seconds since the test began; only the test moves it."""

    def __init__(self) -> None:
        self.now = 0.0


@dataclass(eq=False)
class Side:
    """One core and what happened to it."""

    name: str
    address: Address
    core: UaCore[CallRecord]
    #: (time, message, destination) of every message this side sent, dropped or not
    sent: list[tuple[float, Message, Address]] = field(default_factory=list)
    terminated: list[tuple[str, TerminationReason]] = field(default_factory=list)
    accepted: list[CallRecord] = field(default_factory=list)
    acked: list[CallRecord] = field(default_factory=list)
    outcomes: dict[ClientTransaction, Response | CallError] = field(default_factory=dict)
    offers: list[SessionDescription] = field(default_factory=list)
    #: incoming INVITEs the hook has not decided yet (``incoming_status`` None)
    held: list[IncomingCall] = field(default_factory=list)

    def sent_responses(self, status: int, method: str = "INVITE") -> list[float]:
        """When this side sent responses with ``status`` to ``method`` (retransmissions too)."""
        return [
            t
            for t, m, _ in self.sent
            if isinstance(m, Response) and m.status == status and m.cseq.method == method
        ]

    def sent_requests(self, method: str) -> list[float]:
        return [t for t, m, _ in self.sent if isinstance(m, Request) and m.method == method]

    def only_call(self) -> CallRecord:
        (call,) = self.core.calls.values()
        return call


def _make_core(name: str, address: Address, timers: TimerConfig, reliable: bool) -> Side:
    host, port = address
    transport = "TCP" if reliable else "UDP"

    def via() -> str:
        return f"SIP/2.0/{transport} {host}:{port};branch={new_branch(os.urandom)};rport"

    def contact() -> NameAddr:
        return NameAddr(SipUri(host, name, port))

    core: UaCore[CallRecord] = UaCore(
        call_factory=lambda is_uac, peer, invite: CallRecord(
            is_uac=is_uac, peer=peer, invite=invite
        ),
        contact=contact,
        via=via,
        host=host,
        transport_name=transport,
        reliable=reliable,
        timers=timers,
        rng=os.urandom,
    )
    return Side(name, address, core)


class UaPair:
    """alice (UAC, port 5061) and bob (UAS, port 5062) on one fake clock."""

    def __init__(
        self,
        timers: TimerConfig,
        *,
        reliable: bool = False,
        incoming_status: int | None = 200,
        reject_with: int | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.alice = _make_core("alice", ("127.0.0.1", 5061), timers, reliable)
        self.bob = _make_core("bob", ("127.0.0.1", 5062), timers, reliable)
        self.incoming_status = incoming_status
        self.reject_with = reject_with
        #: ``drop(sender, message)`` -> True loses the message on the wire
        self.drop: Callable[[Side, Message], bool] = lambda side, message: False
        self._queue: deque[tuple[Side, Effect]] = deque()

    @property
    def sides(self) -> tuple[Side, Side]:
        return (self.alice, self.bob)

    def _side_at(self, address: Address) -> Side | None:
        return next((s for s in self.sides if s.address == address), None)

    # -- driving ----------------------------------------------------------------------------

    def run(self, side: Side, effects: list[Effect]) -> None:
        """Carry out effects (and everything they cause on either side) until quiet."""
        self._queue.extend((side, e) for e in effects)
        while self._queue:
            owner, effect = self._queue.popleft()
            self._carry_out(owner, effect)

    def _feed(self, side: Side, effects: list[Effect]) -> None:
        self._queue.extend((side, e) for e in effects)

    def _carry_out(self, side: Side, effect: Effect) -> None:
        now = self.clock.now
        core = side.core
        if isinstance(effect, Send):
            message = parse_message(effect.data)
            side.sent.append((now, message, effect.dest))
            peer = self._side_at(effect.dest)
            if peer is not None and not self.drop(side, message):
                self._feed(peer, peer.core.receive(message, side.address, now))
        elif isinstance(effect, ResponseArrived):
            side.outcomes[effect.tx] = effect.response
            for c in list(core.calls.values()):
                if c.invite_tx is effect.tx and c.final_status is None:
                    self._feed(side, core.uac_final(c, effect.response, now))
        elif isinstance(effect, RequestFailed):
            side.outcomes[effect.tx] = effect.error
            for c in list(core.calls.values()):
                if c.invite_tx is effect.tx and c.final_status is None:
                    self._feed(side, core.terminate(c, TerminationReason.TIMEOUT, now))
        elif isinstance(effect, CallTerminated):
            side.terminated.append((effect.call.call_id, effect.reason))
        elif isinstance(effect, AckReceived):
            side.acked.append(effect.call)
        elif isinstance(effect, CallAccepted):
            side.accepted.append(effect.call)
        elif isinstance(effect, IncomingCall):
            if self.incoming_status is None:
                side.held.append(effect)
            else:
                self._feed(
                    side, core.incoming_decided(effect.call, effect.tx, self.incoming_status, now)
                )
        elif isinstance(effect, OfferReceived):
            self._feed(side, self._answer(side, effect))

    def _answer(self, side: Side, event: OfferReceived) -> list[Effect]:
        side.offers.append(event.offer)
        now = self.clock.now
        if self.reject_with is not None:
            warning = "MIKEY: authentication failed"
            return side.core.offer_rejected(event, self.reject_with, warning, None, now)
        (km,) = event.offer.effective_key_mgmt(0)
        answer = build_audio_answer(
            event.offer,
            "127.0.0.1",
            41000,
            session_id=2,
            key_mgmt=KeyMgmtAttr("mikey", response_for(km.data)),
        )
        return side.core.offer_answered(event, answer, now)

    def decide(self, status: int) -> None:
        """Answer bob's held incoming calls' hook with ``status``."""
        for event in self.bob.held:
            self.run(
                self.bob,
                self.bob.core.incoming_decided(event.call, event.tx, status, self.clock.now),
            )
        self.bob.held.clear()

    def advance(self, dt: float) -> None:
        """Move the clock ``dt`` on, firing every deadline on the way at its own time."""
        end = self.clock.now + dt
        while True:
            due = [d for s in self.sides if (d := s.core.next_deadline()) is not None]
            if not due or min(due) > end:
                break
            self.clock.now = max(self.clock.now, min(due))
            for side in self.sides:
                self.run(side, side.core.handle_timer(self.clock.now))
        self.clock.now = end

    # -- calls ------------------------------------------------------------------------------

    def invite(self, blob: bytes = b"I_MESSAGE") -> tuple[CallRecord, ClientTransaction]:
        """alice calls bob with an offer; returns her call and its INVITE transaction."""
        core = self.alice.core
        sdp = offer(blob=blob)
        uri = SipUri("127.0.0.1", "bob", self.bob.address[1])
        request = core.new_invite(uri, sdp.encode(), SipUri("127.0.0.1", "alice", 5061))
        call = CallRecord(is_uac=True, peer=self.bob.address, invite=request)
        call.local_sdp = sdp
        core.add_call(call)
        tx, effects = core.start_request(request, self.bob.address, self.clock.now, call=call)
        self.run(self.alice, effects)
        return call, tx

    def request(self, side: Side, call: CallRecord, method: str) -> ClientTransaction:
        """An in-dialog request from ``side``; its outcome lands in ``side.outcomes``."""
        tx, effects = side.core.request_in_dialog(call, method, self.clock.now)
        self.run(side, effects)
        return tx

    def bye(self, side: Side, call: CallRecord) -> ClientTransaction:
        """``side`` ends ``call`` with BYE (§15.1.1), as ``Call.bye()`` does."""
        tx = self.request(side, call, "BYE")
        self.run(side, side.core.terminate(call, TerminationReason.LOCAL_BYE, self.clock.now))
        return tx


def blob_of(sdp: SessionDescription) -> bytes:
    (km,) = sdp.effective_key_mgmt(0)
    return base64.b64decode(km.data)
