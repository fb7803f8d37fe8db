"""RFC 3261 §17 transactions as table-driven, sans-IO state machines.

Four machines share one shape: a transaction holds a ``state`` and a dict of armed timer
deadlines. Every input (a received message, a response from the TU, a timer firing, a transport
error) is an :class:`Input`; ``_TABLES[kind][(state, input)]`` names the next state and the
handler that produces outputs. A pair that is not in the table is an error: the machine moves to
TERMINATED and :class:`TransactionError` is raised. Inputs that the RFC says to absorb (e.g. a
retransmitted request in COMPLETED) are explicit table rows.

Outputs are a list of :class:`Transmit` instructions (send this message to the transaction's peer)
and past-tense events (:class:`ResponseReceived`, :class:`TransactionTimedOut`, ...). Time enters
only as the caller's ``now`` (seconds, any monotonic origin); the caller asks
``next_deadline()`` and calls ``handle_timer(now)``.

Following RFC 3261 (not RFC 6026), an INVITE client transaction terminates on a 2xx (the UAC
core/dialog builds the ACK, §13.2.2.4) and an INVITE server transaction terminates when the TU
sends a 2xx (the UAS core retransmits it until the ACK, §13.3.1.4). The ACK for a non-2xx final
response is built inside the client transaction (§17.1.1.3).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import SipParseError, TransactionError
from .message import BRANCH_MAGIC, CSeq, Request, Response, make_response

__all__ = [
    "ClientTransaction",
    "Event",
    "Input",
    "Kind",
    "ResponseReceived",
    "ServerTransaction",
    "State",
    "TimerConfig",
    "TransactionKey",
    "TransactionTable",
    "TransactionTerminated",
    "TransactionTimedOut",
    "Transmit",
    "TransportFailed",
    "build_ack_for_non2xx",
    "build_cancel",
    "cancel_target_key",
    "client_key",
    "server_key",
]


@dataclass(frozen=True, slots=True)
class TimerConfig:
    """RFC 3261 §17.1.1.1 timer values in seconds."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0
    #: the longest an INVITE server transaction waits in Proceeding for the TU's final
    #: response (``None``: 64*T1); §17.2.1 has no such timer, so without it a TU that never
    #: answers would hold the transaction for ever
    proceeding: float | None = None

    @property
    def proceeding_limit(self) -> float:
        """The Proceeding bound in seconds (``proceeding``, else 64*T1)."""
        return 64 * self.t1 if self.proceeding is None else self.proceeding


class Kind(enum.IntEnum):
    INVITE_CLIENT = 1
    NON_INVITE_CLIENT = 2
    INVITE_SERVER = 3
    NON_INVITE_SERVER = 4


class State(enum.IntEnum):
    CALLING = 1
    TRYING = 2
    PROCEEDING = 3
    COMPLETED = 4
    CONFIRMED = 5
    TERMINATED = 6


class Input(enum.IntEnum):
    RECV_1XX = 1
    RECV_2XX = 2
    RECV_FINAL_ERROR = 3  # 300-699
    RECV_REQUEST = 4  # retransmission of the transaction's request
    RECV_ACK = 5
    TU_1XX = 6
    TU_2XX = 7
    TU_FINAL_ERROR = 8
    TIMER_A = 10
    TIMER_B = 11
    TIMER_D = 12
    TIMER_E = 13
    TIMER_F = 14
    TIMER_K = 15
    TIMER_G = 16
    TIMER_H = 17
    TIMER_I = 18
    TIMER_J = 19
    TRANSPORT_ERROR = 20
    TIMER_PROCEEDING = 21  # ours: the TU gave no final response in time (INVITE server)


# -- outputs ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transmit:
    """Instruction: send ``message`` to the transaction's peer."""

    message: Request | Response


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response the client transaction passes up to the TU."""

    response: Response


@dataclass(frozen=True, slots=True)
class TransactionTimedOut:
    """Timer B, F or H fired (§17.1.1.2, §17.1.2.2, §17.2.1)."""

    timer: str


@dataclass(frozen=True, slots=True)
class TransportFailed:
    """The transport reported an error for this transaction (§17.1.4, §17.2.4)."""


@dataclass(frozen=True, slots=True)
class TransactionTerminated:
    """The transaction reached TERMINATED; the owner drops it from its table."""


Event = Transmit | ResponseReceived | TransactionTimedOut | TransportFailed | TransactionTerminated


# -- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TransactionKey:
    """§17.1.3 / §17.2.3 matching key: branch, sent-by (server side only) and method."""

    branch: str
    method: str
    sent_by: str = ""


def client_key(message: Request | Response) -> TransactionKey:
    """Key of the client transaction a response belongs to (§17.1.3: branch + CSeq method)."""
    branch = message.top_via.branch
    if branch is None:
        raise SipParseError("Via without branch")
    method = message.cseq.method
    return TransactionKey(branch, "INVITE" if method == "ACK" else method)


def server_key(request: Request) -> TransactionKey:
    """Key of the server transaction a request belongs to (§17.2.3; ACK matches the INVITE)."""
    via = request.top_via
    branch = via.branch
    if branch is None or not branch.startswith(BRANCH_MAGIC):
        raise SipParseError("request without an RFC 3261 branch (z9hG4bK)")
    method = request.method
    sent_by = f"{via.host.lower()}:{via.port or 5060}"
    return TransactionKey(branch, "INVITE" if method == "ACK" else method, sent_by)


def cancel_target_key(cancel: Request) -> TransactionKey:
    """Key of the INVITE server transaction a CANCEL refers to (§9.2)."""
    key = server_key(cancel)
    return TransactionKey(key.branch, "INVITE", key.sent_by)


# -- request builders ---------------------------------------------------------------------------


def _copy(request: Request, *names: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for name in names:
        out.extend((name, value) for value in request.get_all(name))
    return out


def build_ack_for_non2xx(invite: Request, response: Response) -> Request:
    """The ACK for a non-2xx final response (§17.1.1.3)."""
    headers = [("Via", invite.require("Via"))]
    headers += _copy(invite, "Route", "From")
    headers.append(("To", response.require("To")))
    headers += _copy(invite, "Call-ID")
    headers.append(("CSeq", str(CSeq(invite.cseq.seq, "ACK"))))
    headers.append(("Max-Forwards", "70"))
    return Request("ACK", invite.uri, tuple(headers))


def build_cancel(invite: Request) -> Request:
    """A CANCEL for ``invite`` (§9.1): same Request-URI, Call-ID, From, To, Via, Route."""
    headers = [("Via", invite.require("Via"))]
    headers += _copy(invite, "Route", "From", "To", "Call-ID")
    headers.append(("CSeq", str(CSeq(invite.cseq.seq, "CANCEL"))))
    headers.append(("Max-Forwards", "70"))
    return Request("CANCEL", invite.uri, tuple(headers))


# -- the machines -------------------------------------------------------------------------------

_Handler = Callable[[Any, float, "Request | Response | None"], list[Event]]


class _Transaction:
    kind: Kind
    _INITIAL: State

    def __init__(self, request: Request, *, reliable: bool, timers: TimerConfig) -> None:
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = self._INITIAL
        self.failed = False
        self._deadlines: dict[Input, float] = {}
        self._intervals: dict[Input, float] = {}
        self.last_response: Response | None = None

    # timers
    def next_deadline(self) -> float | None:
        """Earliest armed timer deadline, or None."""
        return min(self._deadlines.values(), default=None)

    def _arm(self, timer: Input, now: float, interval: float) -> None:
        self._intervals[timer] = interval
        self._deadlines[timer] = now + interval

    def handle_timer(self, now: float) -> list[Event]:
        """Fire every timer whose deadline is <= now, earliest first."""
        out: list[Event] = []
        while self.state != State.TERMINATED:
            due = [(d, t) for t, d in self._deadlines.items() if d <= now]
            if not due:
                break
            _, timer = min(due)
            del self._deadlines[timer]
            out += self._dispatch(timer, now, None)
        return out

    def transport_error(self, now: float) -> list[Event]:
        return self._dispatch(Input.TRANSPORT_ERROR, now, None)

    def _dispatch(self, inp: Input, now: float, message: Request | Response | None) -> list[Event]:
        row = _TABLES[self.kind].get((self.state, inp))
        if row is None:
            previous = self.state
            self._terminate()
            self.failed = True
            raise TransactionError(f"{self.kind.name}: input {inp.name} in state {previous.name}")
        next_state, handler = row
        out = handler(self, now, message)
        if next_state is not None and self.state != State.TERMINATED:
            self.state = next_state
        if self.state == State.TERMINATED:
            self._deadlines.clear()
            out.append(TransactionTerminated())
        return out

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self._deadlines.clear()

    def abandon(self) -> None:
        """End the transaction at once, silently (its owner evicts or gives up on it)."""
        self._terminate()

    def _transport_failed(self, now: float, m: Request | Response | None) -> list[Event]:
        self._terminate()
        return [TransportFailed()]

    def _finish(self, now: float, m: Request | Response | None) -> list[Event]:
        self._terminate()
        return []

    def _absorb(self, now: float, m: Request | Response | None) -> list[Event]:
        return []


class ClientTransaction(_Transaction):
    """INVITE (§17.1.1) or non-INVITE (§17.1.2) client transaction."""

    def __init__(
        self, request: Request, *, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        self.kind = Kind.INVITE_CLIENT if request.method == "INVITE" else Kind.NON_INVITE_CLIENT
        self._INITIAL = State.CALLING if self.kind == Kind.INVITE_CLIENT else State.TRYING
        super().__init__(request, reliable=reliable, timers=timers or TimerConfig())
        if request.method == "ACK":
            raise TransactionError("ACK is not sent in a client transaction (§17)")
        self.key = client_key(request)
        self.started = False

    def start(self, now: float) -> list[Event]:
        """Send the request and arm A/B (INVITE) or E/F (non-INVITE)."""
        if self.started:
            raise TransactionError("transaction already started")
        self.started = True
        t1 = self.timers.t1
        if self.kind == Kind.INVITE_CLIENT:
            if not self.reliable:
                self._arm(Input.TIMER_A, now, t1)
            self._arm(Input.TIMER_B, now, 64 * t1)
        else:
            if not self.reliable:
                self._arm(Input.TIMER_E, now, t1)
            self._arm(Input.TIMER_F, now, 64 * t1)
        return [Transmit(self.request)]

    def receive_response(self, response: Response, now: float) -> list[Event]:
        """Feed a response matched to this transaction (§17.1.3)."""
        if response.status < 200:
            inp = Input.RECV_1XX
        elif response.status < 300:
            inp = Input.RECV_2XX
        else:
            inp = Input.RECV_FINAL_ERROR
        return self._dispatch(inp, now, response)

    # handlers (signature: self, now, message)
    def _retransmit_a(self, now: float, _m: Request | Response | None) -> list[Event]:
        self._arm(Input.TIMER_A, now, self._intervals[Input.TIMER_A] * 2)  # §17.1.1.2
        return [Transmit(self.request)]

    def _retransmit_e(self, now: float, _m: Request | Response | None) -> list[Event]:
        if self.state == State.TRYING:
            interval = min(self._intervals[Input.TIMER_E] * 2, self.timers.t2)
        else:
            interval = self.timers.t2  # §17.1.2.2: Proceeding retransmits every T2
        self._arm(Input.TIMER_E, now, interval)
        return [Transmit(self.request)]

    def _pass_up(self, now: float, m: Request | Response | None) -> list[Event]:
        assert isinstance(m, Response)
        self.last_response = m
        if self.kind == Kind.INVITE_CLIENT:
            # §17.1.1.2: A and B run in Calling only; the UAC core bounds Proceeding (CANCEL)
            self._deadlines.pop(Input.TIMER_A, None)
            self._deadlines.pop(Input.TIMER_B, None)
        return [ResponseReceived(m)]

    def _pass_up_terminate(self, now: float, m: Request | Response | None) -> list[Event]:
        out = self._pass_up(now, m)
        self._terminate()
        return out

    def _invite_error(self, now: float, m: Request | Response | None) -> list[Event]:
        assert isinstance(m, Response)
        out = self._pass_up(now, m)
        self._deadlines.clear()
        self._arm(Input.TIMER_D, now, 0.0 if self.reliable else 32.0)  # §17.1.1.2
        return [Transmit(build_ack_for_non2xx(self.request, m)), *out]

    def _reack(self, now: float, m: Request | Response | None) -> list[Event]:
        assert isinstance(m, Response)
        return [Transmit(build_ack_for_non2xx(self.request, m))]

    def _non_invite_final(self, now: float, m: Request | Response | None) -> list[Event]:
        out = self._pass_up(now, m)
        self._deadlines.clear()
        self._arm(Input.TIMER_K, now, 0.0 if self.reliable else self.timers.t4)  # §17.1.2.2
        return out

    def _timeout(self, now: float, m: Request | Response | None) -> list[Event]:
        name = "B" if self.kind == Kind.INVITE_CLIENT else "F"
        self._terminate()
        return [TransactionTimedOut(name)]


class ServerTransaction(_Transaction):
    """INVITE (§17.2.1) or non-INVITE (§17.2.2) server transaction."""

    def __init__(
        self, request: Request, *, reliable: bool, timers: TimerConfig | None = None
    ) -> None:
        if request.method == "ACK":
            raise TransactionError("ACK does not create a server transaction (§17.2.3)")
        self.kind = Kind.INVITE_SERVER if request.method == "INVITE" else Kind.NON_INVITE_SERVER
        self._INITIAL = State.PROCEEDING if self.kind == Kind.INVITE_SERVER else State.TRYING
        super().__init__(request, reliable=reliable, timers=timers or TimerConfig())
        self.key = server_key(request)

    def start(self, now: float, *, trying: bool = True) -> list[Event]:
        """For INVITE, send 100 Trying at once (§17.2.1) unless ``trying`` is False.

        An INVITE server transaction also arms its Proceeding bound
        (:attr:`TimerConfig.proceeding_limit`): when it fires, the transaction reports
        ``TransactionTimedOut("proceeding")`` and the TU must send a final response.
        """
        if self.kind == Kind.INVITE_SERVER:
            self._arm(Input.TIMER_PROCEEDING, now, self.timers.proceeding_limit)
            if trying:
                return self.send_response(make_response(self.request, 100), now)
        return []

    def receive_request(self, request: Request, now: float) -> list[Event]:
        """Feed a request matched to this transaction: a retransmission or (INVITE) the ACK."""
        inp = Input.RECV_ACK if request.method == "ACK" else Input.RECV_REQUEST
        return self._dispatch(inp, now, request)

    def send_response(self, response: Response, now: float) -> list[Event]:
        """A response from the TU."""
        if response.status < 200:
            inp = Input.TU_1XX
        elif response.status < 300:
            inp = Input.TU_2XX
        else:
            inp = Input.TU_FINAL_ERROR
        return self._dispatch(inp, now, response)

    def _send(self, now: float, m: Request | Response | None) -> list[Event]:
        assert isinstance(m, Response)
        self.last_response = m
        return [Transmit(m)]

    def _send_terminate(self, now: float, m: Request | Response | None) -> list[Event]:
        out = self._send(now, m)
        self._terminate()
        return out

    def _resend_last(self, now: float, m: Request | Response | None) -> list[Event]:
        return [Transmit(self.last_response)] if self.last_response is not None else []

    def _invite_error(self, now: float, m: Request | Response | None) -> list[Event]:
        out = self._send(now, m)
        self._deadlines.pop(Input.TIMER_PROCEEDING, None)
        if not self.reliable:
            self._arm(Input.TIMER_G, now, self.timers.t1)
        self._arm(Input.TIMER_H, now, 64 * self.timers.t1)  # §17.2.1
        return out

    def _retransmit_g(self, now: float, m: Request | Response | None) -> list[Event]:
        self._arm(Input.TIMER_G, now, min(self._intervals[Input.TIMER_G] * 2, self.timers.t2))
        return self._resend_last(now, m)

    def _confirmed(self, now: float, m: Request | Response | None) -> list[Event]:
        self._deadlines.clear()
        self._arm(Input.TIMER_I, now, 0.0 if self.reliable else self.timers.t4)
        return []

    def _non_invite_final(self, now: float, m: Request | Response | None) -> list[Event]:
        out = self._send(now, m)
        self._arm(Input.TIMER_J, now, 0.0 if self.reliable else 64 * self.timers.t1)
        return out

    def _timeout_h(self, now: float, m: Request | Response | None) -> list[Event]:
        self._terminate()
        return [TransactionTimedOut("H")]

    def _proceeding_expired(self, now: float, m: Request | Response | None) -> list[Event]:
        return [TransactionTimedOut("proceeding")]


_B = _Transaction
_C = ClientTransaction
_S = ServerTransaction
_Row = tuple[State | None, _Handler]

# §17.1.1.2 figure 5
_INVITE_CLIENT: dict[tuple[State, Input], _Row] = {
    (State.CALLING, Input.TIMER_A): (None, _C._retransmit_a),
    (State.CALLING, Input.TIMER_B): (State.TERMINATED, _C._timeout),
    (State.CALLING, Input.RECV_1XX): (State.PROCEEDING, _C._pass_up),
    (State.CALLING, Input.RECV_2XX): (State.TERMINATED, _C._pass_up_terminate),
    (State.CALLING, Input.RECV_FINAL_ERROR): (State.COMPLETED, _C._invite_error),
    (State.CALLING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.PROCEEDING, Input.RECV_1XX): (None, _C._pass_up),
    (State.PROCEEDING, Input.RECV_2XX): (State.TERMINATED, _C._pass_up_terminate),
    (State.PROCEEDING, Input.RECV_FINAL_ERROR): (State.COMPLETED, _C._invite_error),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.COMPLETED, Input.RECV_FINAL_ERROR): (None, _C._reack),
    (State.COMPLETED, Input.RECV_1XX): (None, _B._absorb),
    (State.COMPLETED, Input.RECV_2XX): (None, _B._absorb),
    (State.COMPLETED, Input.TIMER_D): (State.TERMINATED, _B._finish),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
}
# §17.1.2.2 figure 6
_NON_INVITE_CLIENT: dict[tuple[State, Input], _Row] = {
    (State.TRYING, Input.TIMER_E): (None, _C._retransmit_e),
    (State.TRYING, Input.TIMER_F): (State.TERMINATED, _C._timeout),
    (State.TRYING, Input.RECV_1XX): (State.PROCEEDING, _C._pass_up),
    (State.TRYING, Input.RECV_2XX): (State.COMPLETED, _C._non_invite_final),
    (State.TRYING, Input.RECV_FINAL_ERROR): (State.COMPLETED, _C._non_invite_final),
    (State.TRYING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.PROCEEDING, Input.TIMER_E): (None, _C._retransmit_e),
    (State.PROCEEDING, Input.TIMER_F): (State.TERMINATED, _C._timeout),
    (State.PROCEEDING, Input.RECV_1XX): (None, _C._pass_up),
    (State.PROCEEDING, Input.RECV_2XX): (State.COMPLETED, _C._non_invite_final),
    (State.PROCEEDING, Input.RECV_FINAL_ERROR): (State.COMPLETED, _C._non_invite_final),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.COMPLETED, Input.RECV_1XX): (None, _B._absorb),
    (State.COMPLETED, Input.RECV_2XX): (None, _B._absorb),
    (State.COMPLETED, Input.RECV_FINAL_ERROR): (None, _B._absorb),
    (State.COMPLETED, Input.TIMER_K): (State.TERMINATED, _B._finish),
}
# §17.2.1 figure 7
_INVITE_SERVER: dict[tuple[State, Input], _Row] = {
    (State.PROCEEDING, Input.RECV_REQUEST): (None, _S._resend_last),
    (State.PROCEEDING, Input.TU_1XX): (None, _S._send),
    (State.PROCEEDING, Input.TU_2XX): (State.TERMINATED, _S._send_terminate),
    (State.PROCEEDING, Input.TU_FINAL_ERROR): (State.COMPLETED, _S._invite_error),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.PROCEEDING, Input.TIMER_PROCEEDING): (None, _S._proceeding_expired),
    (State.COMPLETED, Input.RECV_REQUEST): (None, _S._resend_last),
    (State.COMPLETED, Input.TIMER_G): (None, _S._retransmit_g),
    (State.COMPLETED, Input.RECV_ACK): (State.CONFIRMED, _S._confirmed),
    (State.COMPLETED, Input.TIMER_H): (State.TERMINATED, _S._timeout_h),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.CONFIRMED, Input.RECV_ACK): (None, _B._absorb),
    (State.CONFIRMED, Input.RECV_REQUEST): (None, _B._absorb),
    (State.CONFIRMED, Input.TIMER_I): (State.TERMINATED, _B._finish),
}
# §17.2.2 figure 8
_NON_INVITE_SERVER: dict[tuple[State, Input], _Row] = {
    (State.TRYING, Input.RECV_REQUEST): (None, _B._absorb),
    (State.TRYING, Input.TU_1XX): (State.PROCEEDING, _S._send),
    (State.TRYING, Input.TU_2XX): (State.COMPLETED, _S._non_invite_final),
    (State.TRYING, Input.TU_FINAL_ERROR): (State.COMPLETED, _S._non_invite_final),
    (State.TRYING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.PROCEEDING, Input.RECV_REQUEST): (None, _S._resend_last),
    (State.PROCEEDING, Input.TU_1XX): (None, _S._send),
    (State.PROCEEDING, Input.TU_2XX): (State.COMPLETED, _S._non_invite_final),
    (State.PROCEEDING, Input.TU_FINAL_ERROR): (State.COMPLETED, _S._non_invite_final),
    (State.PROCEEDING, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
    (State.COMPLETED, Input.RECV_REQUEST): (None, _S._resend_last),
    (State.COMPLETED, Input.TIMER_J): (State.TERMINATED, _B._finish),
    (State.COMPLETED, Input.TRANSPORT_ERROR): (State.TERMINATED, _B._transport_failed),
}
_TABLES: dict[Kind, dict[tuple[State, Input], _Row]] = {
    Kind.INVITE_CLIENT: _INVITE_CLIENT,
    Kind.NON_INVITE_CLIENT: _NON_INVITE_CLIENT,
    Kind.INVITE_SERVER: _INVITE_SERVER,
    Kind.NON_INVITE_SERVER: _NON_INVITE_SERVER,
}


class TransactionTable:
    """Bounded registry of live transactions, matched per §17.1.3 and §17.2.3."""

    def __init__(self, *, max_transactions: int = 1024) -> None:
        self.max_transactions = max_transactions
        self.clients: dict[TransactionKey, ClientTransaction] = {}
        self.servers: dict[TransactionKey, ServerTransaction] = {}

    def __len__(self) -> int:
        return len(self.clients) + len(self.servers)

    def add(self, transaction: ClientTransaction | ServerTransaction) -> None:
        if len(self) >= self.max_transactions:
            raise TransactionError("too many concurrent transactions")
        if isinstance(transaction, ClientTransaction):
            self.clients[transaction.key] = transaction
        else:
            self.servers[transaction.key] = transaction

    def discard(self, transaction: ClientTransaction | ServerTransaction) -> None:
        table: dict[TransactionKey, ClientTransaction] | dict[TransactionKey, ServerTransaction]
        table = self.clients if isinstance(transaction, ClientTransaction) else self.servers
        if table.get(transaction.key) is transaction:
            del table[transaction.key]

    def oldest_completed_server(self) -> ServerTransaction | None:
        """The oldest server transaction that only absorbs retransmissions (it sent its final
        response: COMPLETED or CONFIRMED), the first to evict when the table is full."""
        for tx in self.servers.values():
            if tx.state in (State.COMPLETED, State.CONFIRMED):
                return tx
        return None

    def match_response(self, response: Response) -> ClientTransaction | None:
        return self.clients.get(client_key(response))

    def match_request(self, request: Request) -> ServerTransaction | None:
        return self.servers.get(server_key(request))

    def next_deadline(self) -> float | None:
        deadlines = [
            d
            for t in (*self.clients.values(), *self.servers.values())
            if (d := t.next_deadline()) is not None
        ]
        return min(deadlines, default=None)
