"""The sans-IO transaction-user core of the SIP user agent (RFC 3261 §8, §9, §12-§15, §17).

:class:`UaCore` owns the transaction table, the calls and their dialogs, and every timer. It
never touches a socket, a task or the clock: each input (``receive``, ``handle_timer``,
``connection_lost``, ``transport_error`` and the UAC/UAS calls below) takes the caller's ``now``
and returns a list of effects for the shell to carry out, in order: :class:`Send` bytes to an
address, resolve a client request (:class:`ResponseArrived` / :class:`RequestFailed`), or run a
binder hook (:class:`IncomingCall`, :class:`OfferReceived`, :class:`CallTerminated`). A hook's
result comes back as an input (``incoming_decided``, ``offer_answered``, ``offer_rejected``,
``offer_failed``), so the core stays synchronous while the binder stays async.

Timers: every timed object (a transaction, a UAS 2xx retransmitter, a terminated call's
forget-after delay) is pushed on one heap with its deadline whenever an input may have moved it;
an entry whose deadline is no longer the object's current one is stale and skipped. Invariants:
``next_deadline()`` is the earliest live deadline; ``handle_timer(now)`` fires every deadline
``<= now``; a call moves only through ``_CALL_TABLE`` (anything else is :class:`CallStateError`);
a TERMINATED call never leaves TERMINATED.

Hostile peers: every server transaction ends with a final response. Any exception in a
request's handling (or in a hook result's) answers 500 and ends the call it belongs to; an
INVITE the TU does not answer within ``TimerConfig.proceeding_limit`` gets 408. A UAS call
refused before its 2xx leaves the call table at once; a full transaction table evicts its
oldest completed server transaction; each source has a token bucket for new server
transactions. Every limit is counted in ``counters`` and logged once per episode.

Glare (§14.1, §14.2): an in-dialog INVITE that arrives while our own re-INVITE on that dialog
waits for its final response gets 491 (one while we have not answered the peer's previous
re-INVITE gets 500 with Retry-After). Our re-INVITE refused with 491 is sent again after
``glare_delay`` (the Call-ID's owner 2.1-4 s, the other side 0-2 s, from the injected RNG), at
most ``GLARE_RETRIES`` times; the caller sees the last try's outcome under its first transaction.
"""

from __future__ import annotations

import contextlib
import enum
import heapq
import itertools
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mikey.ratelimit import SourceRateLimiter

from .dialog import Dialog, DialogState
from .errors import CallError, DialogError, SdpError, SipError, SipParseError
from .hooks import TerminationReason
from .message import (
    CSeq,
    Message,
    NameAddr,
    Request,
    Response,
    SipUri,
    make_response,
    new_call_id,
    new_tag,
)
from .sdp import SessionDescription
from .transaction import (
    ClientTransaction,
    Event,
    ResponseReceived,
    ServerTransaction,
    State,
    TimerConfig,
    TransactionTable,
    TransactionTerminated,
    TransactionTimedOut,
    Transmit,
    TransportFailed,
    build_cancel,
    cancel_target_key,
)
from .transport import Address

__all__ = [
    "ALLOW",
    "AckReceived",
    "CallAccepted",
    "CallInput",
    "CallRecord",
    "CallState",
    "CallStateError",
    "CallTerminated",
    "Effect",
    "IncomingCall",
    "OfferReceived",
    "RequestFailed",
    "ResponseArrived",
    "Send",
    "UaCore",
    "address_of",
]

log = logging.getLogger("sipglue.ua")
Rng = Callable[[int], bytes]
Tx = ClientTransaction | ServerTransaction
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
#: how much of a peer-supplied method or error text a log line carries
_EXCERPT = 32


def _excerpt(text: str) -> str:
    """A bounded, printable excerpt of peer-supplied text for a log line."""
    clean = "".join(c if c.isprintable() and c != "\\" else "?" for c in text[:_EXCERPT])
    return clean + ("..." if len(text) > _EXCERPT else "")


class CallState(enum.IntEnum):
    CALLING = 1
    EARLY = 2
    CONFIRMED = 3
    TERMINATED = 4


class CallInput(enum.IntEnum):
    PROVISIONAL = 1  # UAC: a 1xx to the initial INVITE
    ANSWERED = 2  # a 2xx to an INVITE, sent (UAS) or received (UAC); re-INVITEs too
    TERMINATE = 3


class CallStateError(SipError):
    """A call input that ``_CALL_TABLE`` does not allow in the call's state."""


_CALL_TABLE: dict[tuple[CallState, CallInput], CallState] = {
    (CallState.CALLING, CallInput.PROVISIONAL): CallState.EARLY,
    (CallState.EARLY, CallInput.PROVISIONAL): CallState.EARLY,
    (CallState.CALLING, CallInput.ANSWERED): CallState.CONFIRMED,
    (CallState.EARLY, CallInput.ANSWERED): CallState.CONFIRMED,
    (CallState.CONFIRMED, CallInput.ANSWERED): CallState.CONFIRMED,
    (CallState.CALLING, CallInput.TERMINATE): CallState.TERMINATED,
    (CallState.EARLY, CallInput.TERMINATE): CallState.TERMINATED,
    (CallState.CONFIRMED, CallInput.TERMINATE): CallState.TERMINATED,
}


class CallRecord:
    """One INVITE dialog's state as the core keeps it (the shell's ``Call`` extends it)."""

    def __init__(self, *, is_uac: bool, peer: Address, invite: Request) -> None:
        self.is_uac = is_uac
        self.peer = peer
        self.invite = invite
        self.dialog: Dialog | None = None
        self.state = CallState.CALLING
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self.reason: TerminationReason | None = None
        self.final_status: int | None = None
        self.invite_tx: ClientTransaction | None = None
        self.cancel_requested = False
        self.cancel_sent = False
        self.last_ack: Request | None = None
        self.retransmitter: _Retransmitter | None = None
        #: our re-INVITE on this dialog, and the peer's we have not answered yet (§14.1, §14.2)
        self.reinvite_tx: ClientTransaction | None = None
        self.reinvite_server: ServerTransaction | None = None

    @property
    def call_id(self) -> str:
        return self.invite.call_id

    @property
    def ended(self) -> bool:
        return self.state == CallState.TERMINATED

    @property
    def id(self) -> str | None:
        """The dialog id (registry key), once the dialog exists."""
        return self.dialog.id if self.dialog else None

    def step(self, inp: CallInput) -> CallState:
        """Apply one input through ``_CALL_TABLE``; a missing row raises :class:`CallStateError`."""
        nxt = _CALL_TABLE.get((self.state, inp))
        if nxt is None:
            raise CallStateError(f"call input {inp.name} in state {self.state.name}")
        self.state = nxt
        return nxt


C = TypeVar("C", bound=CallRecord)


# -- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``data`` to ``dest``; a failure is reported back with ``transport_error(tx)``.

    Without a transaction a failure is the caller's error, unless ``best_effort`` (a stateless
    reply or a retransmission: dropped, as a lost datagram would be).
    """

    data: bytes
    dest: Address
    tx: Tx | None = None
    best_effort: bool = False


@dataclass(frozen=True, slots=True)
class ResponseArrived:
    """A client transaction's final response (its request's outcome)."""

    tx: ClientTransaction
    response: Response


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """A client transaction ended without a final response (timeout 408, transport 503)."""

    tx: ClientTransaction
    error: CallError


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A new INVITE made a call: ask the incoming-call hook, then ``incoming_decided``."""

    call: CallRecord
    tx: ServerTransaction


@dataclass(frozen=True, slots=True)
class OfferReceived:
    """An INVITE carries a valid SDP offer: answer it with ``offer_answered`` (or refuse)."""

    call: CallRecord
    tx: ServerTransaction
    request: Request
    offer: SessionDescription
    source: Address
    initial: bool  # not yet confirmed: a refusal ends the call
    new_call: bool  # the initial INVITE: an answer queues the call as incoming


@dataclass(frozen=True, slots=True)
class CallAccepted:
    """UAS: a new call was answered with 2xx (the shell queues it as incoming)."""

    call: CallRecord


@dataclass(frozen=True, slots=True)
class AckReceived:
    """UAS: the ACK for a 2xx arrived (§13.3.1.4)."""

    call: CallRecord


@dataclass(frozen=True, slots=True)
class CallTerminated:
    """The call ended, once, with ``reason`` (the shell runs ``on_terminated``)."""

    call: CallRecord
    reason: TerminationReason


Effect = (
    Send
    | ResponseArrived
    | RequestFailed
    | IncomingCall
    | OfferReceived
    | CallAccepted
    | AckReceived
    | CallTerminated
)


# -- timed objects ------------------------------------------------------------------------------


class _Retransmitter:
    """UAS 2xx retransmission until ACK (§13.3.1.4): T1 doubling to T2, give up at 64*T1.

    ``due`` is the next retransmission, or the give-up when that comes first (over a reliable
    transport only the give-up); ``None`` once stopped.
    """

    def __init__(
        self,
        call: CallRecord,
        data: bytes,
        dest: Address,
        now: float,
        timers: TimerConfig,
        *,
        reliable: bool,
    ) -> None:
        self.call, self.data, self.dest, self.timers = call, data, dest, timers
        #: the CSeq number of the INVITE this 2xx answers (its ACK carries the same, §13.2.2.4)
        self.seq = 0
        self.interval = timers.t1
        self.give_up = now + 64 * timers.t1
        self.due: float | None = self.give_up if reliable else self._next(now + self.interval)

    def _next(self, due: float) -> float:
        return due if due < self.give_up else self.give_up

    def fire(self, now: float) -> bool:
        """True: resend the 2xx (and rearm); False: the give-up came (no ACK)."""
        if self.due is None or self.due >= self.give_up:
            self.due = None
            return False
        self.interval = min(self.interval * 2, self.timers.t2)
        self.due = self._next(now + self.interval)
        return True

    def stop(self) -> None:
        self.due = None


@dataclass(eq=False)
class _Forget:
    """Drop a terminated call from the table at ``at`` (it answers retransmissions until then)."""

    call: CallRecord
    at: float | None


@dataclass(eq=False)
class _GlareRetry:
    """Re-send a re-INVITE refused with 491 at ``at`` (§14.1); ``origin`` is the transaction
    whose outcome the caller waits for (the retry's outcome is reported under it)."""

    call: CallRecord
    body: bytes
    origin: ClientTransaction
    retries: int
    at: float | None


_Timed = ClientTransaction | ServerTransaction | _Retransmitter | _Forget | _GlareRetry
#: what §8.2.2.2 compares to find a merged request: Call-ID, From tag, CSeq number, method
_MergeKey = tuple[str, str | None, int, str]
#: re-INVITEs refused with 491 are sent again at most this often, then the 491 is the outcome
GLARE_RETRIES = 3


@dataclass(eq=False)
class _ClientCtx:
    dest: Address
    call: CallRecord | None = None
    then: TerminationReason | None = None  # end ``call`` with this once the request is over
    done: bool = False
    origin: ClientTransaction | None = None  # a glare retry: report under this transaction
    retries: int = 0


def address_of(uri: SipUri) -> Address:
    """The transport address a SIP URI names (default port 5060)."""
    host = uri.host.strip("[]")
    return (host, uri.port or 5060)


@dataclass(eq=False)
class _Heap:
    entries: list[tuple[float, int, _Timed]] = field(default_factory=list)
    counter: itertools.count[int] = field(default_factory=itertools.count)


class SourceBudget(SourceRateLimiter):
    """A token bucket per source address for new server transactions (``burst``, refilled at
    ``rate``/s; the shared :class:`mikey.ratelimit.SourceRateLimiter`)."""

    def __init__(self, rate: float, burst: int, max_sources: int = 4096) -> None:
        super().__init__(rate, burst, max_sources)


class UaCore(Generic[C]):
    """The UA core: request dispatch, calls, dialogs, transactions and timers, no I/O.

    ``contact`` and ``via`` build our Contact and a fresh top Via (they depend on the bound
    port and the AOR, which the shell knows); ``call_factory`` makes the record of a new UAS call.
    """

    def __init__(
        self,
        *,
        call_factory: Callable[[bool, Address, Request], C],
        contact: Callable[[], NameAddr],
        via: Callable[[], str],
        host: str = "127.0.0.1",
        transport_name: str = "UDP",
        reliable: bool = False,
        timers: TimerConfig | None = None,
        rng: Rng,
        max_transactions: int = 1024,
        max_calls: int = 256,
        check_dialog_source: bool = True,
        source_burst: int | None = None,
        source_rate: float | None = None,
    ) -> None:
        self.call_factory = call_factory
        self.contact = contact
        self.via = via
        self.host = host
        self.transport_name = transport_name
        self.reliable = reliable
        self.timers = timers or TimerConfig()
        self.rng = rng
        self.max_calls = max_calls
        #: refuse in-dialog requests from other transport addresses than the dialog's peer
        self.check_dialog_source = check_dialog_source
        self.transactions = TransactionTable(max_transactions=max_transactions)
        # one source may start at most half the table's transactions at once, and refill at
        # the pace slots free up (a final response holds its slot 64*T1 over UDP)
        burst = source_burst if source_burst is not None else max(1, max_transactions // 2)
        rate = source_rate if source_rate is not None else burst / (64 * self.timers.t1)
        #: the per-source budget for new server transactions
        self.source_budget = SourceBudget(rate, burst)
        #: how often each limit bit, and other refusals users may want to watch
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "source_limited",  # a new request over its source's budget: stateless 503
                "transactions_full",  # the table full, nothing to evict: stateless 503
                "completed_evicted",  # a completed server transaction evicted for a new one
                "calls_full",  # an INVITE over max_calls: 486
                "handler_failed",  # a request's handling raised: 500
                "proceeding_expired",  # an INVITE got no final response in time
            ),
            0,
        )
        self._biting: set[str] = set()
        #: live server transactions of requests without a To tag, by what §8.2.2.2 compares
        self._merged: dict[_MergeKey, ServerTransaction] = {}
        self._merge_keys: dict[ServerTransaction, _MergeKey] = {}  # its key, computed once
        self.calls: dict[str, C] = {}  # by Call-ID
        self._clients: dict[ClientTransaction, _ClientCtx] = {}
        self._dest: dict[Tx, Address] = {}
        self._heap = _Heap()

    # -- timers -----------------------------------------------------------------------------

    @staticmethod
    def _deadline_of(target: _Timed) -> float | None:
        if isinstance(target, _Retransmitter):
            return target.due
        if isinstance(target, _Forget | _GlareRetry):
            return target.at
        return None if target.state == State.TERMINATED else target.next_deadline()

    def _watch(self, target: _Timed) -> None:
        due = self._deadline_of(target)
        if due is not None:
            heapq.heappush(self._heap.entries, (due, next(self._heap.counter), target))

    def next_deadline(self) -> float | None:
        """The earliest time ``handle_timer`` has something to do, or ``None``."""
        entries = self._heap.entries
        while entries and self._deadline_of(entries[0][2]) != entries[0][0]:
            heapq.heappop(entries)
        return entries[0][0] if entries else None

    def handle_timer(self, now: float) -> list[Effect]:
        """Fire every deadline ``<= now``, earliest first."""
        out: list[Effect] = []
        entries = self._heap.entries
        while entries and entries[0][0] <= now:
            due, _, target = heapq.heappop(entries)
            if self._deadline_of(target) != due:
                continue
            if isinstance(target, _Retransmitter):
                out += self._retransmitter_due(target, now)
            elif isinstance(target, _Forget):
                target.at = None
                if self.calls.get(target.call.call_id) is target.call:
                    del self.calls[target.call.call_id]
            elif isinstance(target, _GlareRetry):
                target.at = None
                out += self._glare_retry(target, now)
            else:
                try:
                    events = target.handle_timer(now)
                except SipError as exc:
                    log.warning("transaction timer failed: %s", exc)
                    self._drop(target)
                    continue
                out += self._process(target, events, now)
        return out

    def _retransmitter_due(self, rt: _Retransmitter, now: float) -> list[Effect]:
        if rt.fire(now):
            self._watch(rt)
            return [Send(rt.data, rt.dest, best_effort=True)]
        if rt.call.retransmitter is rt:
            rt.call.retransmitter = None
        return self._bye_then_terminate(rt.call, TerminationReason.TIMEOUT, now)  # §13.3.1.4

    # -- transactions -----------------------------------------------------------------------

    def _drop(self, tx: Tx) -> None:
        self.transactions.discard(tx)
        self._dest.pop(tx, None)
        if isinstance(tx, ClientTransaction):
            self._clients.pop(tx, None)
        else:
            key = self._merge_keys.pop(tx, None)
            if key is not None and self._merged.get(key) is tx:
                del self._merged[key]

    @staticmethod
    def _merge_key(request: Request) -> _MergeKey | None:
        """What §8.2.2.2 compares to find a merged request (none with a To tag, or CANCEL)."""
        if request.to.tag is not None or request.method == "CANCEL":
            return None
        return (request.call_id, request.from_.tag, request.cseq.seq, request.method)

    def _process(self, tx: Tx, events: list[Event], now: float) -> list[Effect]:
        """Turn a transaction's outputs into effects; rewatch its timers."""
        dest = self._dest[tx]  # every admitted or started transaction has its peer's address
        out: list[Effect] = []
        for event in events:
            if isinstance(event, Transmit):
                out.append(Send(event.message.encode(), dest, tx))
            elif isinstance(tx, ClientTransaction):
                out += self._client_event(tx, event, now)
            elif isinstance(event, TransactionTimedOut) and event.timer == "proceeding":
                out += self._proceeding_expired(tx, dest, now)
            if isinstance(event, TransactionTerminated):
                self._drop(tx)
        self._watch(tx)
        return out

    def _client_event(self, tx: ClientTransaction, event: Event, now: float) -> list[Effect]:
        ctx = self._clients.get(tx)
        if ctx is None:
            return []
        outcome: ResponseArrived | RequestFailed | None = None
        if isinstance(event, ResponseReceived):
            if event.response.status < 200:
                return self._provisional(ctx.call, now) if ctx.call is not None else []
            outcome = ResponseArrived(tx, event.response)
        elif isinstance(event, TransactionTimedOut):
            outcome = RequestFailed(tx, CallError("request timed out", status_code=408))
        elif isinstance(event, TransportFailed):
            outcome = RequestFailed(tx, CallError("transport failed", status_code=503))
        if outcome is None or ctx.done:
            return []
        ctx.done = True
        if isinstance(outcome, ResponseArrived) and self._glare(tx, ctx, outcome.response, now):
            return []  # sent again later (§14.1); the outcome is the retry's
        if ctx.origin is not None:
            outcome = (
                ResponseArrived(ctx.origin, outcome.response)
                if isinstance(outcome, ResponseArrived)
                else RequestFailed(ctx.origin, outcome.error)
            )
        out: list[Effect] = []
        if ctx.then is not None and ctx.call is not None:
            out += self.terminate(ctx.call, ctx.then, now)
        out.append(outcome)
        return out

    def _proceeding_expired(
        self, tx: ServerTransaction, source: Address, now: float
    ) -> list[Effect]:
        """An INVITE got no final response within the Proceeding bound: the TU is stuck.

        A new call is answered 408 and ends (TIMEOUT); a re-INVITE gets 500 and the session
        stays as it was (§14.2). The transaction then runs Timer G/H as any final would.
        """
        request = tx.request
        self._bite("proceeding_expired", "sipglue: an INVITE had no final response in time")
        call = self._call_of(request, source)
        tag = call.dialog.local_tag if call is not None and call.dialog else new_tag(self.rng)
        if call is not None and call.invite is request:
            out = self.respond(tx, make_response(request, 408, to_tag=tag), now)
            return out + self.terminate(call, TerminationReason.TIMEOUT, now)
        return self.respond(tx, make_response(request, 500, to_tag=tag), now)

    # -- glare (§14.1) ------------------------------------------------------------------------

    def glare_delay(self, call: CallRecord) -> float:
        """§14.1: how long to wait before re-sending a re-INVITE refused with 491.

        The UAC that owns the Call-ID (it sent the initial INVITE) waits 2.1-4 s, the other
        0-2 s, in units of 10 ms, drawn from the injected RNG.
        """
        n = int.from_bytes(self.rng(2), "big")
        if call.is_uac:
            return 2.1 + (n % 191) / 100
        return (n % 201) / 100

    def _glare(
        self, tx: ClientTransaction, ctx: _ClientCtx, response: Response, now: float
    ) -> bool:
        """A 491 to our re-INVITE: arm its retry (True), unless retried enough or the call ended."""
        request = tx.request
        if response.status != 491 or request.method != "INVITE" or request.to.tag is None:
            return False
        call = self.calls.get(request.call_id)
        if call is None or call.state != CallState.CONFIRMED or ctx.retries >= GLARE_RETRIES:
            return False
        origin = ctx.origin or tx
        retry = _GlareRetry(
            call, request.body, origin, ctx.retries + 1, now + self.glare_delay(call)
        )
        self._watch(retry)
        return True

    def _glare_retry(self, retry: _GlareRetry, now: float) -> list[Effect]:
        call = retry.call
        if call.state != CallState.CONFIRMED or call.dialog is None:
            return [
                RequestFailed(
                    retry.origin,
                    CallError("call ended before the re-INVITE retry", status_code=491),
                )
            ]
        try:
            tx, out = self.request_in_dialog(call, "INVITE", now, body=retry.body)
        except SipError as exc:
            return [
                RequestFailed(
                    retry.origin,
                    CallError(f"re-INVITE retry failed: {type(exc).__name__}", status_code=491),
                )
            ]
        ctx = self._clients.get(tx)
        if ctx is not None:
            ctx.origin, ctx.retries = retry.origin, retry.retries
        return out

    def transport_error(self, tx: Tx, now: float) -> list[Effect]:
        """Sending one of ``tx``'s messages failed (§17.1.4, §17.2.4)."""
        if tx.state == State.TERMINATED:
            return []
        return self._process(tx, tx.transport_error(now), now)

    def start_request(
        self,
        request: Request,
        dest: Address,
        now: float,
        *,
        call: CallRecord | None = None,
        then: TerminationReason | None = None,
    ) -> tuple[ClientTransaction, list[Effect]]:
        """Send ``request`` in a new client transaction; its outcome comes as an effect."""
        tx = ClientTransaction(request, reliable=self.reliable, timers=self.timers)
        self.transactions.add(tx)
        self._clients[tx] = _ClientCtx(dest, call, then)
        self._dest[tx] = dest
        if call is not None and request.method == "INVITE" and call.dialog is None:
            call.invite_tx = tx
        return tx, self._process(tx, tx.start(now), now)

    def respond(self, tx: ServerTransaction, response: Response, now: float) -> list[Effect]:
        """Send a response from the TU through its server transaction."""
        if tx.state == State.TERMINATED:
            return []
        return self._process(tx, tx.send_response(response, now), now)

    # -- UAC --------------------------------------------------------------------------------

    def add_call(self, call: C) -> None:
        """Register a UAC call (the shell made it) under its Call-ID."""
        if len(self.calls) >= self.max_calls:
            raise CallError("too many calls")
        self.calls[call.call_id] = call

    def new_invite(
        self,
        uri: SipUri,
        body: bytes,
        from_uri: SipUri,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Request:
        """An initial INVITE from ``from_uri`` to ``uri`` with an SDP offer (§8.1.1)."""
        local = NameAddr(from_uri, params=(("tag", new_tag(self.rng)),))
        return Request(
            "INVITE",
            str(uri),
            (
                ("Via", self.via()),
                ("Max-Forwards", "70"),
                ("From", str(local)),
                ("To", f"<{uri}>"),
                ("Call-ID", new_call_id(self.rng, self.host)),
                ("CSeq", str(CSeq(1, "INVITE"))),
                ("Contact", str(self.contact())),
                *headers,
                ("Content-Type", "application/sdp"),
            ),
            body,
        )

    def uac_final(self, call: CallRecord, response: Response, now: float) -> list[Effect]:
        """The final response to a UAC call's INVITE: >= 300 ends it; a 2xx confirms and ACKs.

        Raises :class:`DialogError` / :class:`SipParseError` for a 2xx that cannot make a dialog
        (§12.1.2); the shell then ends the call with ``terminate``.
        """
        call.final_status = response.status
        if response.status >= 300:
            cause = (
                TerminationReason.CANCEL if response.status == 487 else TerminationReason.REJECTED
            )
            return self.terminate(call, cause, now)
        call.dialog = Dialog.from_uac(call.invite, response, self.contact())
        if not call.ended:
            call.step(CallInput.ANSWERED)
        return self.ack_2xx(call)

    def reinvite_answered(self, call: CallRecord, response: Response) -> None:
        """A 2xx to our re-INVITE: its Contact is the new remote target (§12.2.1.2)."""
        assert call.dialog is not None
        call.dialog.receive_refresh_response(response)
        if not call.ended:
            call.step(CallInput.ANSWERED)

    def ack_2xx(self, call: CallRecord) -> list[Effect]:
        """The ACK for a 2xx to the last INVITE, sent by the UAC core (§13.2.2.4)."""
        assert call.dialog is not None
        ack = call.dialog.create_ack(self.via())
        call.last_ack = ack
        return [Send(ack.encode(), self.dialog_dest(call))]

    def dialog_dest(self, call: CallRecord) -> Address:
        """Where an in-dialog request goes: the next hop, or the INVITE's TCP connection."""
        assert call.dialog is not None
        if (
            self.transport_name == "TCP"
            and call.peer
            and not call.dialog.route_set
            and not call.is_uac
        ):
            return call.peer  # reuse the connection the INVITE came on
        return address_of(call.dialog.next_hop())

    def request_in_dialog(
        self,
        call: CallRecord,
        method: str,
        now: float,
        *,
        body: bytes = b"",
        then: TerminationReason | None = None,
    ) -> tuple[ClientTransaction, list[Effect]]:
        """A new in-dialog request (§12.2.1.1) in its own client transaction."""
        assert call.dialog is not None
        request = call.dialog.create_request(method, self.via(), body=body)
        tx, out = self.start_request(
            request, self.dialog_dest(call), now, call=call if then else None, then=then
        )
        if method == "INVITE":
            call.reinvite_tx = tx
        return tx, out

    def _bye_then_terminate(
        self, call: CallRecord, reason: TerminationReason, now: float
    ) -> list[Effect]:
        """BYE (§15.1.1); the call ends with ``reason`` when the BYE's outcome is known."""
        if call.ended or call.dialog is None:
            return self.terminate(call, reason, now)
        try:
            _, out = self.request_in_dialog(call, "BYE", now, then=reason)
        except SipError:
            return self.terminate(call, reason, now)
        return out

    def _provisional(self, call: CallRecord, now: float) -> list[Effect]:
        if call.state == CallState.CALLING:
            call.step(CallInput.PROVISIONAL)
        if call.cancel_requested:
            return self._send_cancel(call, now)
        return []

    def cancel(self, call: CallRecord, now: float) -> tuple[ClientTransaction | None, list[Effect]]:
        """Cancel a pending outgoing INVITE (§9.1); sent once a provisional response arrived.

        Returns the CANCEL's client transaction when it was sent now.
        """
        if not call.is_uac or call.state not in (CallState.CALLING, CallState.EARLY):
            return None, []
        call.cancel_requested = True
        tx = call.invite_tx
        if tx is not None and tx.state == State.PROCEEDING:
            return self._start_cancel(call, now)
        return None, []

    def _send_cancel(self, call: CallRecord, now: float) -> list[Effect]:
        return self._start_cancel(call, now)[1]

    def _start_cancel(
        self, call: CallRecord, now: float
    ) -> tuple[ClientTransaction | None, list[Effect]]:
        tx = call.invite_tx
        if tx is None or call.cancel_sent:
            return None, []
        call.cancel_sent = True
        return self.start_request(build_cancel(tx.request), call.peer, now)

    # -- received messages ------------------------------------------------------------------

    def receive(self, message: Message, source: Address, now: float) -> list[Effect]:
        """A message from the transport; malformed requests get a stateless 400 (§8.2.2)."""
        try:
            if isinstance(message, Response):
                return self._response_received(message, now)
            assert isinstance(message, Request)
            return self._request_received(message, source, now)
        except SipError as exc:
            log.debug("dropping message from %s: %s", source, exc)
            if isinstance(message, Request) and message.method != "ACK":
                return self._reply_stateless(message, 400, source, str(exc))
            return []

    def _reply_stateless(
        self, request: Request, status: int, dest: Address, why: str, *, retry_after: bool = False
    ) -> list[Effect]:
        headers = [("Warning", f'399 - "{why[:60]}"')]
        if retry_after:  # §21.5.4: when to try again
            headers.append(("Retry-After", str(max(1, math.ceil(64 * self.timers.t1 / 8)))))
        try:
            response = make_response(request, status, to_tag=new_tag(self.rng), headers=headers)
            return [Send(response.encode(), dest, best_effort=True)]
        except SipError:
            return []

    def connection_lost(self, peer: Address, now: float) -> list[Effect]:
        """A stream connection closed: its calls end, its client transactions fail (§17.1.4)."""
        out: list[Effect] = []
        for call in list(self.calls.values()):
            if call.peer == peer or (call.dialog and address_of(call.dialog.next_hop()) == peer):
                out += self.terminate(call, TerminationReason.CONNECTION_LOST, now)
        for tx, ctx in list(self._clients.items()):
            if ctx.dest == peer and tx.state != State.TERMINATED:
                out += self._process(tx, tx.transport_error(now), now)
        return out

    def _response_received(self, response: Response, now: float) -> list[Effect]:
        tx = self.transactions.match_response(response)
        if tx is not None:
            return self._process(tx, tx.receive_response(response, now), now)
        # retransmitted 2xx to an INVITE whose transaction ended: re-ACK (§13.2.2.4)
        call = self.calls.get(response.call_id)
        if (
            call is not None
            and call.last_ack is not None
            and 200 <= response.status < 300
            and response.cseq.method == "INVITE"
            and call.dialog is not None
            and call.dialog.matches(response)
        ):
            return [Send(call.last_ack.encode(), self.dialog_dest(call), best_effort=True)]
        return []

    def _request_received(self, request: Request, source: Address, now: float) -> list[Effect]:
        # mandatory headers (§8.2.2): raise SipParseError -> 400
        _ = (request.cseq, request.from_, request.to, request.call_id, request.top_via)
        if request.cseq.method != request.method:
            raise SipParseError("CSeq method does not match the request method")
        tx = self.transactions.match_request(request)
        if tx is not None:
            self._dest.setdefault(tx, source)
            return self._process(tx, tx.receive_request(request, now), now)
        if request.method == "ACK":
            return self._ack_received(request)
        if request.method == "CANCEL":
            return self._cancel_received(request, source, now)
        if request.method == "INVITE" and self._late_invite_retransmission(request):
            call = self.calls[request.call_id]
            rt = call.retransmitter
            return [] if rt is None else [Send(rt.data, rt.dest, best_effort=True)]
        merge = self._merge_key(request)
        if merge is not None and merge in self._merged:  # §8.2.2.2: a merged request
            return self._reply_stateless(request, 482, source, "merged request")
        server = ServerTransaction(request, reliable=self.reliable, timers=self.timers)
        refusal = self._admit(server, source, now)
        if refusal is not None:
            return self._reply_stateless(request, 503, source, refusal, retry_after=True)
        if merge is not None:
            self._merged[merge] = server
            self._merge_keys[server] = merge
        out = self._process(server, server.start(now), now)
        return out + self._guarded(
            server, source, now, lambda: self._dispatch_request(server, request, source, now)
        )

    # -- limits -----------------------------------------------------------------------------

    def _bite(self, limit: str, line: str, *args: object) -> None:
        """Count ``limit``; log ``line`` once per episode (until the limit lets one through)."""
        self.counters[limit] += 1
        if limit not in self._biting:
            self._biting.add(limit)
            log.warning(line, *args)

    def _admit(self, tx: ServerTransaction, source: Address, now: float) -> str | None:
        """Put a new server transaction in the table, or say why not (the 503's warning).

        The per-source budget comes first; a full table evicts its oldest completed server
        transaction (it only absorbs retransmissions, §17.2.1/§17.2.2) before refusing.
        """
        wait, first = self.source_budget.take(source[0], now)
        granted = wait == 0.0
        if not granted:
            self.counters["source_limited"] += 1
            if first:
                log.warning("sipglue: source %s over its transaction budget", _excerpt(source[0]))
            return "over budget"
        table = self.transactions
        if len(table) >= table.max_transactions:
            victim = table.oldest_completed_server()
            if victim is None:
                self._bite("transactions_full", "sipglue: transaction table full (%d)", len(table))
                return "overloaded"
            self._bite("completed_evicted", "sipglue: table full, evicting completed transactions")
            victim.abandon()
            self._drop(victim)
        else:
            self._biting.discard("completed_evicted")
            self._biting.discard("transactions_full")
        table.add(tx)
        self._dest[tx] = source
        return None

    # -- handler failures -------------------------------------------------------------------

    def _guarded(
        self, tx: ServerTransaction, source: Address, now: float, step: Callable[[], list[Effect]]
    ) -> list[Effect]:
        """Run a TU step for ``tx``'s request: any exception ends the transaction with 500.

        The call the request belongs to ends too (SETUP_FAILED; its keys are torn down by the
        shell's ``on_terminated``), so no transaction stays in Proceeding (§17.2.1) and no call
        slot is left behind. One log line: the method, the exception's type, no peer text.
        """
        try:
            return step()
        except Exception as exc:
            return self._handler_failed(tx, source, now, exc)

    def _handler_failed(
        self, tx: ServerTransaction, source: Address, now: float, exc: Exception
    ) -> list[Effect]:
        request = tx.request
        self.counters["handler_failed"] += 1
        log.warning(
            "sipglue: %s handling failed (%s); answered 500",
            _excerpt(request.method),
            type(exc).__name__,
        )
        out: list[Effect] = []
        call = self._call_of(request, source)
        try:
            if tx.state in (State.PROCEEDING, State.TRYING):
                tag = call.dialog.local_tag if call is not None and call.dialog else None
                out += self.respond(
                    tx, make_response(request, 500, to_tag=tag or new_tag(self.rng)), now
                )
            if call is not None and call.state == CallState.CONFIRMED:
                out += self._bye_then_terminate(call, TerminationReason.SETUP_FAILED, now)
            elif call is not None:
                out += self.terminate(call, TerminationReason.SETUP_FAILED, now)
        except Exception as again:  # the 500 itself failed: the transaction goes silently
            log.warning("sipglue: the 500 failed too (%s)", type(again).__name__)
        if tx.state in (State.PROCEEDING, State.TRYING):
            tx.abandon()
            self._drop(tx)
        return out

    def _call_of(self, request: Request, source: Address) -> C | None:
        """The call a failed request belongs to: the one it created, or its dialog's (from the
        dialog's peer only, so a forged request cannot end someone's call)."""
        call = self.calls.get(request.call_id)
        if call is None or call.ended:
            return None
        if call.invite is request:
            return call
        with contextlib.suppress(Exception):
            if (
                call.dialog is not None
                and call.dialog.matches(request)
                and self._from_dialog_peer(call, source)
            ):
                return call
        return None

    def _late_invite_retransmission(self, request: Request) -> bool:
        """An INVITE retransmitted after its server transaction ended on our 2xx (§13.3.1.4).

        The UAS core absorbs it and re-sends the pending 2xx instead of treating it as new.
        """
        call = self.calls.get(request.call_id)
        if call is None or call.is_uac or request.to.tag is not None:
            return False
        return call.invite.from_.tag == request.from_.tag and call.invite.cseq == request.cseq

    def _from_dialog_peer(self, call: CallRecord, source: Address) -> bool:
        """Whether an in-dialog request comes from where this dialog's peer can send from.

        That is the address the dialog was set up with, or its next hop (a record-routing
        proxy). Over a reliable transport the peer may open a new connection from another
        port, so only the host is compared there.
        """
        if not self.check_dialog_source:
            return True
        allowed = {call.peer}
        if call.dialog is not None:
            with contextlib.suppress(SipError, ValueError):
                allowed.add(address_of(call.dialog.next_hop()))
        if source in allowed:
            return True
        return self.reliable and source[0] in {a[0] for a in allowed}

    def _dispatch_request(
        self, tx: ServerTransaction, request: Request, source: Address, now: float
    ) -> list[Effect]:
        method = request.method
        if request.to.tag is not None:
            call = self.calls.get(request.call_id)
            if call is None or call.dialog is None or not call.dialog.matches(request):
                return self.respond(tx, make_response(request, 481), now)  # §12.2.2
            if not self._from_dialog_peer(call, source):
                # A request naming the dialog but sent from another transport address (e.g. a
                # spoofed BYE) must not end the call or rekey it.
                log.info("in-dialog %s from unexpected address %s refused", method, source)
                return self.respond(tx, make_response(request, 403), now)
            try:
                call.dialog.receive_request(request)
            except DialogError:
                return self.respond(tx, make_response(request, 500), now)  # §12.2.2 CSeq
            if method == "BYE":  # §15.1.2
                out = self.respond(tx, make_response(request, 200), now)
                return out + self.terminate(call, TerminationReason.REMOTE_BYE, now)
            if method == "INVITE":
                mine = call.reinvite_tx
                if mine is not None and mine.state in (State.CALLING, State.PROCEEDING):
                    return self.respond(tx, make_response(request, 491), now)  # §14.2 glare
                theirs = call.reinvite_server
                if theirs is not None and theirs.state == State.PROCEEDING:
                    # §14.2: a second INVITE before we answered the first: 500, Retry-After
                    wait = str(int.from_bytes(self.rng(1), "big") % 11)
                    busy = make_response(request, 500, headers=[("Retry-After", wait)])
                    return self.respond(tx, busy, now)
                call.reinvite_server = tx
                return self._offer(call, tx, request, source, now, new_call=False)
            if method in ("OPTIONS", "INFO", "UPDATE"):
                return self.respond(tx, make_response(request, 200), now)
            return self.respond(tx, make_response(request, 405, headers=[("Allow", ALLOW)]), now)
        if method == "INVITE":
            return self._new_call(tx, request, source, now)
        tag = new_tag(self.rng)
        if method == "OPTIONS":  # §11.2
            response = make_response(request, 200, to_tag=tag, headers=[("Allow", ALLOW)])
        elif method == "BYE":
            response = make_response(request, 481, to_tag=tag)
        else:  # §8.2.1
            response = make_response(request, 405, to_tag=tag, headers=[("Allow", ALLOW)])
        return self.respond(tx, response, now)

    def _new_call(
        self, tx: ServerTransaction, request: Request, source: Address, now: float
    ) -> list[Effect]:
        tag = new_tag(self.rng)
        if len(self.calls) >= self.max_calls or request.call_id in self.calls:
            status = 486 if request.call_id not in self.calls else 482  # §8.2.2.2 loop
            if status == 486:
                self._bite("calls_full", "sipglue: call table full (%d)", len(self.calls))
            return self.respond(tx, make_response(request, status, to_tag=tag), now)
        call = self.call_factory(False, source, request)
        try:
            call.dialog = Dialog.from_uas(request, tag, self.contact())
        except DialogError as exc:
            reason = f"Bad Request ({exc})"[:80]
            return self.respond(tx, make_response(request, 400, reason, to_tag=tag), now)
        call.dialog.state = DialogState.EARLY
        self.calls[call.call_id] = call
        return [IncomingCall(call, tx)]

    def incoming_decided(
        self, call: CallRecord, tx: ServerTransaction, status: int, now: float
    ) -> list[Effect]:
        """The incoming-call hook's status: 2xx goes on to the offer, anything else refuses."""
        return self._guarded(
            tx, call.peer, now, lambda: self._incoming_decided(call, tx, status, now)
        )

    def _incoming_decided(
        self, call: CallRecord, tx: ServerTransaction, status: int, now: float
    ) -> list[Effect]:
        assert call.dialog is not None
        request, tag = call.invite, call.dialog.local_tag
        if not 200 <= status < 300:
            out = self.respond(tx, make_response(request, status, to_tag=tag), now)
            return out + self.terminate(call, TerminationReason.REJECTED, now)
        if call.ended:  # cancelled, or its connection lost, meanwhile
            return self._abandon(tx, request, tag, now)
        return self._offer(call, tx, request, call.peer, now, new_call=True)

    def _offer(
        self,
        call: CallRecord,
        tx: ServerTransaction,
        request: Request,
        source: Address,
        now: float,
        *,
        new_call: bool,
    ) -> list[Effect]:
        """Check an INVITE's offer (RFC 3264 §5: we need one, as SDP) before the binder sees it."""
        assert call.dialog is not None
        tag = call.dialog.local_tag
        initial = call.state != CallState.CONFIRMED
        if not request.body or request.content_type != "application/sdp":
            reason = "Not Acceptable Here (offer required)"
            out = self.respond(tx, make_response(request, 488, reason, to_tag=tag), now)
            return out + self._refused(call, initial, now)
        try:
            offer = SessionDescription.parse(request.body)
        except SdpError as exc:
            reason = f"Bad SDP ({exc})"[:80]
            out = self.respond(tx, make_response(request, 400, reason, to_tag=tag), now)
            return out + self._refused(call, initial, now)
        return [OfferReceived(call, tx, request, offer, source, initial, new_call)]

    def _refused(self, call: CallRecord, initial: bool, now: float) -> list[Effect]:
        return self.terminate(call, TerminationReason.REJECTED, now) if initial else []

    def offer_answered(
        self, event: OfferReceived, answer: SessionDescription, now: float
    ) -> list[Effect]:
        """The binder's answer: 200 with it, then retransmit until ACK (§13.3.1.4)."""
        return self._guarded(
            event.tx, event.source, now, lambda: self._offer_answered(event, answer, now)
        )

    def _offer_answered(
        self, event: OfferReceived, answer: SessionDescription, now: float
    ) -> list[Effect]:
        call, tx, request = event.call, event.tx, event.request
        assert call.dialog is not None
        tag = call.dialog.local_tag
        if call.ended:
            return self._abandon(tx, request, tag, now)
        ok = make_response(
            request,
            200,
            to_tag=tag,
            headers=[("Contact", str(self.contact())), ("Content-Type", "application/sdp")],
            body=answer.encode(),
        )
        call.remote_sdp = event.offer
        call.local_sdp = answer
        call.step(CallInput.ANSWERED)
        call.dialog.state = DialogState.CONFIRMED
        dest = self._dest.get(tx, event.source)
        out = self.respond(tx, ok, now)
        if call.retransmitter is not None:
            call.retransmitter.stop()
        rt = _Retransmitter(call, ok.encode(), dest, now, self.timers, reliable=self.reliable)
        rt.seq = request.cseq.seq
        call.retransmitter = rt
        self._watch(rt)
        if event.new_call and not call.ended:
            out.append(CallAccepted(call))
        return out

    def offer_rejected(
        self,
        event: OfferReceived,
        status: int,
        warning: str | None,
        body: bytes | None,
        now: float,
    ) -> list[Effect]:
        """The binder refused the offer (488/606, RFC 4567 §3.1): send it, end a new call."""
        return self._guarded(
            event.tx,
            event.source,
            now,
            lambda: self._offer_rejected(event, status, warning, body, now),
        )

    def _offer_rejected(
        self,
        event: OfferReceived,
        status: int,
        warning: str | None,
        body: bytes | None,
        now: float,
    ) -> list[Effect]:
        assert event.call.dialog is not None
        extra: list[tuple[str, str]] = []
        if warning:
            text = warning.replace('"', "'")[:120]
            extra.append(("Warning", f'399 {self.host} "{text}"'))
        if body:
            extra.append(("Content-Type", "application/sdp"))
        response = make_response(
            event.request,
            status,
            to_tag=event.call.dialog.local_tag,
            headers=extra,
            body=body or b"",
        )
        out = self.respond(event.tx, response, now)
        return out + self._refused(event.call, event.initial, now)

    def offer_failed(self, event: OfferReceived, now: float) -> list[Effect]:
        """The binder raised something else: 500, and a new call ends."""

        def fail() -> list[Effect]:
            assert event.call.dialog is not None
            tag = event.call.dialog.local_tag
            out = self.respond(event.tx, make_response(event.request, 500, to_tag=tag), now)
            return out + self._refused(event.call, event.initial, now)

        return self._guarded(event.tx, event.source, now, fail)

    def _abandon(
        self, tx: ServerTransaction, request: Request, tag: str, now: float
    ) -> list[Effect]:
        """Finish an INVITE transaction whose call ended before it was answered.

        A CANCEL already answered it with 487 (§9.2); any other ending (connection lost,
        shutdown) must still send a final response, or the server transaction would stay in
        PROCEEDING, where no timer ends it (§17.2.1).
        """
        if tx.state == State.PROCEEDING:
            return self.respond(tx, make_response(request, 487, to_tag=tag), now)
        return []

    def _ack_received(self, ack: Request) -> list[Effect]:
        call = self.calls.get(ack.call_id)
        if call is None or call.dialog is None or not call.dialog.matches(ack):
            return []
        if call.retransmitter is not None and ack.cseq.seq == call.retransmitter.seq:
            call.retransmitter.stop()  # §13.3.1.4
            call.retransmitter = None
        return [AckReceived(call)]

    def _cancel_received(self, cancel: Request, source: Address, now: float) -> list[Effect]:
        tx = ServerTransaction(cancel, reliable=self.reliable, timers=self.timers)
        if self._admit(tx, source, now) is not None:
            return []
        return self._guarded(tx, source, now, lambda: self._cancel(tx, cancel, now))

    def _cancel(self, tx: ServerTransaction, cancel: Request, now: float) -> list[Effect]:
        target = self.transactions.servers.get(cancel_target_key(cancel))
        if target is None or target.state != State.PROCEEDING:  # §9.2: nothing to cancel
            return self.respond(tx, make_response(cancel, 481, to_tag=new_tag(self.rng)), now)
        call = self.calls.get(cancel.call_id)
        tag = call.dialog.local_tag if call and call.dialog else new_tag(self.rng)
        out = self.respond(tx, make_response(cancel, 200, to_tag=tag), now)
        out += self.respond(target, make_response(target.request, 487, to_tag=tag), now)  # §9.2
        if call is not None:
            out += self.terminate(call, TerminationReason.CANCEL, now)
        return out

    # -- teardown ---------------------------------------------------------------------------

    def terminate(self, call: CallRecord, reason: TerminationReason, now: float) -> list[Effect]:
        """End a call once; it stays in ``calls`` 32*T1 (UDP) to absorb retransmissions."""
        if call.state == CallState.TERMINATED:
            return []
        # A UAS call that never sent its 2xx has no dialog the peer knows of: its server
        # transaction alone absorbs retransmissions (§17.2.1), so it gives its slot back now.
        unanswered = not call.is_uac and call.state != CallState.CONFIRMED
        call.step(CallInput.TERMINATE)
        call.reason = reason
        if call.dialog is not None:
            call.dialog.terminate()
        if call.retransmitter is not None:
            call.retransmitter.stop()
            call.retransmitter = None
        if self.calls.get(call.call_id) is call:
            if unanswered:
                del self.calls[call.call_id]
            else:
                # keep the call reachable briefly so retransmitted 2xx get re-ACKed / BYEs
                # answered
                forget = _Forget(call, now + (0 if self.reliable else 32 * self.timers.t1))
                self._watch(forget)
        return [CallTerminated(call, reason)]
