"""An asyncio SIP user agent (RFC 3261 §8, §13-§15) over the sans-IO layers.

The :class:`UserAgent` owns one transport, a bounded :class:`TransactionTable` and the live
:class:`Call` objects. Every transaction input is given ``loop.time()`` as ``now``; after each
input the transaction's next deadline is (re)scheduled with ``loop.call_at``. The UA core does what
the RFC puts above the transaction layer: ACK for 2xx (UAC, §13.2.2.4), 2xx retransmission until
ACK (UAS, §13.3.1.4), CANCEL handling (§9.2), BYE (§15), dialog matching and 400/481/405 answers.

Keying plugs in through an :class:`OfferAnswerHandler`: the UAS asks it for an answer to every
offer (initial and re-INVITE) and it may raise :class:`~sipglue.errors.Rejected` (488/606); the UAC
gives it every answer and, if it raises, ACKs and then sends BYE. ``on_terminated`` is called once
per call for every ending (BYE either way, CANCEL, timeout, transport loss, failure, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .dialog import Dialog
from .errors import (
    CallError,
    DialogError,
    Rejected,
    SdpError,
    SipError,
    SipParseError,
    TransportError,
)
from .message import (
    CSeq,
    Message,
    NameAddr,
    Request,
    Response,
    SipUri,
    make_response,
    new_branch,
    new_call_id,
    new_tag,
    warning_text,
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
from .transport import Address, TcpTransport, Transport, UdpTransport

__all__ = [
    "Call",
    "CallState",
    "IdentifiedHandler",
    "OfferAnswerHandler",
    "TerminationReason",
    "UserAgent",
]

log = logging.getLogger(__name__)
Rng = Callable[[int], bytes]


class CallState(enum.IntEnum):
    CALLING = 1
    EARLY = 2
    CONFIRMED = 3
    TERMINATED = 4


class TerminationReason(enum.IntEnum):
    LOCAL_BYE = 1
    REMOTE_BYE = 2
    CANCELLED = 3
    TIMEOUT = 4
    TRANSPORT_LOST = 5
    REJECTED = 6  # non-2xx final response, or the offer/answer handler refused
    ANSWER_REFUSED = 7  # UAC on_answer raised: ACK then BYE
    SHUTDOWN = 8


class OfferAnswerHandler(Protocol):
    """Hooks for the keying binder (sipglue.keying)."""

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        """UAS: answer an offer, or raise Rejected(488|606, warning, body)."""

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        """UAC: accept an answer; raising makes the UAC ACK and then BYE."""

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        """The call ended (tear down its keys)."""


IncomingHandler = Callable[["Call"], Awaitable[int]]


class Call:
    """One INVITE dialog, seen from either side."""

    def __init__(self, ua: UserAgent, *, is_uac: bool, peer: Address, invite: Request) -> None:
        self.ua = ua
        self.is_uac = is_uac
        self.peer = peer
        self.invite = invite
        self.dialog: Dialog | None = None
        self.state = CallState.CALLING
        self.local_sdp: SessionDescription | None = None
        self.remote_sdp: SessionDescription | None = None
        self.reason: TerminationReason | None = None
        self.final_status: int | None = None
        self._terminated = asyncio.Event()
        self._invite_tx: ClientTransaction | None = None
        self._cancel_requested = False
        self._cancel_sent = False
        self._last_ack: Request | None = None
        self._pending_2xx: _Retransmitter | None = None
        self._ack_received = asyncio.Event()

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

    async def bye(self) -> None:
        """End a confirmed call with BYE (§15.1.1)."""
        if self.state == CallState.TERMINATED:
            return
        if self.dialog is None:
            raise CallError("no dialog to BYE")
        try:
            await self.ua._request_in_dialog(self, "BYE")
        finally:
            await self.ua._terminate(self, TerminationReason.LOCAL_BYE)

    async def cancel(self) -> None:
        """Cancel a pending outgoing INVITE (§9.1); sent once a provisional response arrived."""
        if not self.is_uac or self.state not in (CallState.CALLING, CallState.EARLY):
            return
        self._cancel_requested = True
        tx = self._invite_tx
        if tx is not None and tx.state == State.PROCEEDING:
            await self.ua._send_cancel(self)

    async def reinvite(self, offer: SessionDescription | bytes) -> SessionDescription:
        """Send a re-INVITE with a new offer; return the answer (after on_answer accepted it)."""
        if self.dialog is None or self.state != CallState.CONFIRMED:
            raise CallError("re-INVITE needs a confirmed call")
        sdp = offer if isinstance(offer, SessionDescription) else SessionDescription.parse(offer)
        response = await self.ua._request_in_dialog(self, "INVITE", body=sdp.encode())
        if not 200 <= response.status < 300:
            raise CallError(
                f"re-INVITE failed with {response.status}",
                status_code=response.status,
                warning=warning_text(response.get("Warning")),
            )
        self.dialog.receive_refresh_response(response)
        answer = self.ua._parse_sdp(response.body)
        await self.ua._ack_2xx(self)
        self.local_sdp = sdp
        try:
            await self.ua.handler.on_answer(self, answer)
        except Exception as exc:
            await self.bye()
            raise CallError("re-INVITE answer refused") from exc
        self.remote_sdp = answer
        return answer

    async def wait_terminated(self) -> TerminationReason:
        await self._terminated.wait()
        assert self.reason is not None
        return self.reason

    async def wait_confirmed(self) -> None:
        """UAS: wait until the ACK for our 2xx arrived (or the call ended)."""
        ack = asyncio.ensure_future(self._ack_received.wait())
        end = asyncio.ensure_future(self._terminated.wait())
        await asyncio.wait({ack, end}, return_when=asyncio.FIRST_COMPLETED)
        ack.cancel()
        end.cancel()


class _Retransmitter:
    """UAS 2xx retransmission until ACK (§13.3.1.4): T1 doubling to T2, give up at 64*T1.

    One timer at a time: each retransmission schedules the next, or the give-up when that
    comes first (a call keeps no second, cancelled timer in the loop after its ACK).
    """

    def __init__(self, ua: UserAgent, call: Call, response: Response, dest: Address) -> None:
        self.ua, self.call, self.response, self.dest = ua, call, response, dest
        loop = asyncio.get_running_loop()
        self.interval = ua.timers.t1
        self.give_up = loop.time() + 64 * ua.timers.t1
        self.handle: asyncio.TimerHandle
        if ua.transport_reliable:
            self.handle = loop.call_at(self.give_up, self._expire)
        else:
            self._schedule(loop, loop.time() + self.interval)

    def _schedule(self, loop: asyncio.AbstractEventLoop, due: float) -> None:
        if due < self.give_up:
            self.handle = loop.call_at(due, self._fire)
        else:
            self.handle = loop.call_at(self.give_up, self._expire)

    def _fire(self) -> None:
        self.ua._spawn(self.ua._send(self.response.encode(), self.dest))
        self.interval = min(self.interval * 2, self.ua.timers.t2)
        loop = asyncio.get_running_loop()
        self._schedule(loop, loop.time() + self.interval)

    def _expire(self) -> None:
        self.ua._spawn(self.ua._ack_timeout(self.call))

    def stop(self) -> None:
        self.handle.cancel()


@dataclass
class _ClientCtx:
    tx: ClientTransaction
    destination: Address
    future: asyncio.Future[Response]
    call: Call | None = None


class IdentifiedHandler(Protocol):
    """An offer/answer handler that knows the address-of-record it speaks for.

    :class:`~sipglue.keying.MikeyCallKeying` is one: its MIKEY identity, when that is a SIP URI.
    """

    def local_aor(self) -> SipUri | None:
        """The AOR this endpoint's keys are bound to, or ``None``."""


class UserAgent:
    """A SIP UA bound to one transport on 127.0.0.1 (or the given host).

    ``aor`` is the address-of-record the UA calls from: the From URI of its requests (RFC 3261
    §8.1.1.3), and the user part of its Contact. Without one the UA takes its handler's
    (:class:`IdentifiedHandler`, e.g. the keying binder's MIKEY identity), and without that the
    old fixed ``sip:<user>@<host>:<port>``. RFC 4567 §5 wants the signalled identity and the
    key-management identity to be the same party; the keying binder checks it on both ends.
    """

    def __init__(
        self,
        handler: OfferAnswerHandler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: str = "udp",
        user: str = "mikey",
        aor: SipUri | str | None = None,
        on_incoming: IncomingHandler | None = None,
        timers: TimerConfig | None = None,
        rng: Rng = os.urandom,
        max_transactions: int = 1024,
        max_calls: int = 256,
        transport_factory: Callable[[UdpTransport], Transport] | None = None,
        check_dialog_source: bool = True,
    ) -> None:
        if transport.lower() not in ("udp", "tcp"):
            raise SipError("transport must be 'udp' or 'tcp'")
        self.handler = handler
        self.host = host
        self.port = port
        self.transport_name = transport.upper()
        self.user = user
        try:
            self._aor = SipUri.parse(aor) if isinstance(aor, str) else aor
        except SipParseError:
            raise SipError("aor must be a sip: or sips: URI") from None
        self.on_incoming = on_incoming
        self.timers = timers or TimerConfig()
        self.rng = rng
        self.max_calls = max_calls
        self.transactions = TransactionTable(max_transactions=max_transactions)
        self.calls: dict[str, Call] = {}  # by Call-ID
        #: refuse in-dialog requests from other transport addresses than the dialog's peer
        self.check_dialog_source = check_dialog_source
        self.transport: Transport | None = None
        self._transport_factory = transport_factory
        self._clients: dict[ClientTransaction, _ClientCtx] = {}
        self._timer_handles: dict[ClientTransaction | ServerTransaction, asyncio.TimerHandle] = {}
        self._server_dest: dict[ServerTransaction, Address] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.incoming: asyncio.Queue[Call] = asyncio.Queue(maxsize=max_calls)

    # -- lifecycle --------------------------------------------------------------------------

    async def listen(self) -> Address:
        """Bind the transport; returns the local address."""
        inner: UdpTransport | TcpTransport
        if self.transport_name == "UDP":
            inner = UdpTransport(self)
            await inner.bind(self.host, self.port)
            self.transport = self._transport_factory(inner) if self._transport_factory else inner
        else:
            inner = TcpTransport(self)
            await inner.bind(self.host, self.port)
            self.transport = inner
        self.port = inner.local_address[1]
        return inner.local_address

    @property
    def transport_reliable(self) -> bool:
        return self.transport is not None and self.transport.reliable

    @property
    def aor(self) -> SipUri | None:
        """The AOR we call from: the one given, else the handler's, else ``None``."""
        if self._aor is not None:
            return self._aor
        hook = getattr(self.handler, "local_aor", None)
        if not callable(hook):
            return None
        found = hook()
        return found if isinstance(found, SipUri) else None

    @property
    def local_uri(self) -> SipUri:
        """The From URI of our requests: the AOR, else ``sip:<user>@<host>:<port>``."""
        aor = self.aor
        return aor if aor is not None else SipUri(self.host, self.user, self.port)

    @property
    def contact(self) -> NameAddr:
        """``sip:<AOR user, else user>@<host>:<port>`` (and ``;transport=tcp`` over TCP)."""
        params: tuple[tuple[str, str | None], ...] = ()
        if self.transport_name == "TCP":
            params = (("transport", "tcp"),)
        aor = self.aor
        user = aor.user if aor is not None and aor.user is not None else self.user
        return NameAddr(SipUri(self.host, user, self.port, params))

    async def close(self) -> None:
        """Terminate every call (reason SHUTDOWN) and close the transport."""
        for call in list(self.calls.values()):
            await self._terminate(call, TerminationReason.SHUTDOWN)
        for handle in self._timer_handles.values():
            handle.cancel()
        for task in list(self._tasks):
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    # -- helpers ----------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("sipglue task failed: %r", task.exception())

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _via(self) -> str:
        branch = new_branch(self.rng)
        return f"SIP/2.0/{self.transport_name} {self.host}:{self.port};branch={branch};rport"

    def _parse_sdp(self, body: bytes) -> SessionDescription:
        try:
            return SessionDescription.parse(body)
        except SdpError as exc:
            raise CallError(f"bad SDP: {exc}") from exc

    def _from_dialog_peer(self, call: Call, source: Address) -> bool:
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
                allowed.add(self._address_of(call.dialog.next_hop()))
        if source in allowed:
            return True
        return self.transport_reliable and source[0] in {a[0] for a in allowed}

    @staticmethod
    def _address_of(uri: SipUri) -> Address:
        host = uri.host.strip("[]")
        return (host, uri.port or 5060)

    async def _send(self, data: bytes, dest: Address) -> None:
        if self.transport is None:
            raise TransportError("UA not listening")
        await self.transport.send(data, dest)

    async def _process(
        self, tx: ClientTransaction | ServerTransaction, events: list[Event], dest: Address
    ) -> None:
        """Carry out a transaction's outputs, then reschedule its timer."""
        for event in events:
            if isinstance(event, Transmit):
                try:
                    await self._send(event.message.encode(), dest)
                except TransportError:
                    more = tx.transport_error(self._now()) if tx.state != State.TERMINATED else []
                    await self._process(tx, more, dest)
                    return
            elif isinstance(tx, ClientTransaction):
                self._client_event(tx, event)
            if isinstance(event, TransactionTerminated):
                self.transactions.discard(tx)
                if isinstance(tx, ServerTransaction):
                    self._server_dest.pop(tx, None)
        self._reschedule(tx, dest)

    def _client_event(self, tx: ClientTransaction, event: Event) -> None:
        ctx = self._clients.get(tx)
        if ctx is None:
            return
        if isinstance(event, ResponseReceived):
            response = event.response
            if response.status < 200:
                if ctx.call is not None:
                    self._spawn(self._provisional(ctx.call, tx))
            elif not ctx.future.done():
                ctx.future.set_result(response)
        elif isinstance(event, TransactionTimedOut) and not ctx.future.done():
            ctx.future.set_exception(CallError("request timed out", status_code=408))
        elif isinstance(event, TransportFailed) and not ctx.future.done():
            ctx.future.set_exception(CallError("transport failed", status_code=503))
        elif isinstance(event, TransactionTerminated):
            self._clients.pop(tx, None)

    def _reschedule(self, tx: ClientTransaction | ServerTransaction, dest: Address) -> None:
        old = self._timer_handles.pop(tx, None)
        if old is not None:
            old.cancel()
        deadline = tx.next_deadline()
        if deadline is None or tx.state == State.TERMINATED:
            return
        loop = asyncio.get_running_loop()
        self._timer_handles[tx] = loop.call_at(deadline, self._timer_due, tx, dest)

    def _timer_due(self, tx: ClientTransaction | ServerTransaction, dest: Address) -> None:
        self._spawn(self._fire_timer(tx, dest))

    async def _fire_timer(self, tx: ClientTransaction | ServerTransaction, dest: Address) -> None:
        self._timer_handles.pop(tx, None)
        await self._process(tx, tx.handle_timer(self._now()), dest)

    async def _client_request(
        self, request: Request, dest: Address, call: Call | None = None
    ) -> Response:
        tx = ClientTransaction(request, reliable=self.transport_reliable, timers=self.timers)
        self.transactions.add(tx)
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._clients[tx] = _ClientCtx(tx, dest, future, call)
        if call is not None and request.method == "INVITE" and call.dialog is None:
            call._invite_tx = tx
        try:
            await self._process(tx, tx.start(self._now()), dest)
            return await future
        finally:
            if not future.done():  # the caller was cancelled: nobody will read the outcome
                future.cancel()

    # -- UAC --------------------------------------------------------------------------------

    async def invite(
        self,
        target: str | SipUri,
        offer: SessionDescription | bytes,
        *,
        proxy: Address | None = None,
        headers: Sequence[tuple[str, str]] = (),
    ) -> Call:
        """Call ``target`` with an SDP offer; returns the confirmed call after ACK.

        Raises :class:`CallError` (with ``status_code``) on a non-2xx final response, timeout
        or when the offer/answer handler refused the answer (the call is then ACKed and BYEd).
        """
        if self.transport is None:
            raise CallError("call listen() first")
        if len(self.calls) >= self.max_calls:
            raise CallError("too many calls")
        uri = target if isinstance(target, SipUri) else SipUri.parse(target)
        sdp = offer if isinstance(offer, SessionDescription) else SessionDescription.parse(offer)
        local = NameAddr(self.local_uri, params=(("tag", new_tag(self.rng)),))
        request = Request(
            "INVITE",
            str(uri),
            (
                ("Via", self._via()),
                ("Max-Forwards", "70"),
                ("From", str(local)),
                ("To", f"<{uri}>"),
                ("Call-ID", new_call_id(self.rng, self.host)),
                ("CSeq", str(CSeq(1, "INVITE"))),
                ("Contact", str(self.contact)),
                *headers,
                ("Content-Type", "application/sdp"),
            ),
            sdp.encode(),
        )
        dest = proxy or self._address_of(uri)
        call = Call(self, is_uac=True, peer=dest, invite=request)
        call.local_sdp = sdp
        self.calls[call.call_id] = call
        try:
            response = await self._client_request(request, dest, call)
        except CallError:
            await self._terminate(call, TerminationReason.TIMEOUT)
            raise
        call.final_status = response.status
        if response.status >= 300:
            cause = (
                TerminationReason.CANCELLED
                if response.status == 487
                else TerminationReason.REJECTED
            )
            await self._terminate(call, cause)
            raise CallError(
                f"call failed with {response.status}",
                status_code=response.status,
                warning=warning_text(response.get("Warning")),
            )
        try:
            call.dialog = Dialog.from_uac(request, response, self.contact)
        except (DialogError, SipParseError) as exc:
            await self._terminate(call, TerminationReason.REJECTED)
            raise CallError(f"bad 2xx: {exc}") from exc
        call.state = CallState.CONFIRMED
        await self._ack_2xx(call)
        try:
            answer = self._parse_sdp(response.body)
            await self.handler.on_answer(call, answer)
        except Exception as exc:
            await self._bye_quietly(call, TerminationReason.ANSWER_REFUSED)
            raise CallError("answer refused; call ended with BYE") from exc
        call.remote_sdp = answer
        if call._cancel_requested:
            await call.bye()
            raise CallError("cancelled after 2xx; call ended with BYE", status_code=487)
        return call

    async def _ack_2xx(self, call: Call) -> None:
        assert call.dialog is not None
        ack = call.dialog.create_ack(self._via())
        call._last_ack = ack
        await self._send(ack.encode(), self._dialog_dest(call))

    def _dialog_dest(self, call: Call) -> Address:
        assert call.dialog is not None
        if (
            self.transport_name == "TCP"
            and call.peer
            and not call.dialog.route_set
            and not call.is_uac
        ):
            return call.peer  # reuse the connection the INVITE came on
        return self._address_of(call.dialog.next_hop())

    async def _bye_quietly(self, call: Call, reason: TerminationReason) -> None:
        with contextlib.suppress(SipError):
            await self._request_in_dialog(call, "BYE")
        await self._terminate(call, reason)

    async def _request_in_dialog(self, call: Call, method: str, body: bytes = b"") -> Response:
        assert call.dialog is not None
        request = call.dialog.create_request(method, self._via(), body=body)
        return await self._client_request(request, self._dialog_dest(call), None)

    async def _provisional(self, call: Call, tx: ClientTransaction) -> None:
        if call.state == CallState.CALLING:
            call.state = CallState.EARLY
        if call._cancel_requested:
            await self._send_cancel(call)

    async def _send_cancel(self, call: Call) -> None:
        tx = call._invite_tx
        if tx is None or call._cancel_sent:
            return
        call._cancel_sent = True
        try:
            await self._client_request(build_cancel(tx.request), call.peer)
        except CallError:
            return

    # -- UAS --------------------------------------------------------------------------------

    def message_received(self, message: Message, source: Address, transport: Transport) -> None:
        try:
            if isinstance(message, Response):
                self._response_received(message)
            else:
                self._request_received(message, source)
        except SipError as exc:
            log.debug("dropping message from %s: %s", source, exc)
            if isinstance(message, Request) and message.method != "ACK":
                self._spawn(self._reply_stateless(message, 400, source, str(exc)))

    def invalid_received(
        self, data: bytes, source: Address, error: SipParseError, transport: Transport
    ) -> None:
        log.debug("unparsable message from %s: %s", source, error)

    def connection_lost(self, peer: Address, transport: Transport) -> None:
        for call in list(self.calls.values()):
            if call.peer == peer or (
                call.dialog and self._address_of(call.dialog.next_hop()) == peer
            ):
                self._spawn(self._terminate(call, TerminationReason.TRANSPORT_LOST))
        for tx, ctx in list(self._clients.items()):
            if ctx.destination == peer and tx.state != State.TERMINATED:
                self._spawn(self._process(tx, tx.transport_error(self._now()), peer))

    async def _reply_stateless(
        self, request: Request, status: int, dest: Address, why: str
    ) -> None:
        try:
            response = make_response(
                request,
                status,
                to_tag=new_tag(self.rng),
                headers=(("Warning", f'399 - "{why[:60]}"'),),
            )
            await self._send(response.encode(), dest)
        except SipError:
            return

    def _response_received(self, response: Response) -> None:
        tx = self.transactions.match_response(response)
        if tx is not None:
            ctx = self._clients.get(tx)
            dest = ctx.destination if ctx else ("127.0.0.1", 0)
            self._spawn(self._process(tx, tx.receive_response(response, self._now()), dest))
            return
        # retransmitted 2xx to an INVITE whose transaction ended: re-ACK (§13.2.2.4)
        call = self.calls.get(response.call_id)
        if (
            call is not None
            and call._last_ack is not None
            and 200 <= response.status < 300
            and response.cseq.method == "INVITE"
            and call.dialog is not None
            and call.dialog.matches(response)
        ):
            self._spawn(self._send(call._last_ack.encode(), self._dialog_dest(call)))

    def _request_received(self, request: Request, source: Address) -> None:
        # mandatory headers (§8.2.2): raise SipParseError -> 400
        _ = (request.cseq, request.from_, request.to, request.call_id, request.top_via)
        if request.cseq.method != request.method:
            raise SipParseError("CSeq method does not match the request method")
        tx = self.transactions.match_request(request)
        if tx is not None:
            dest = self._server_dest.get(tx, source)
            self._spawn(self._process(tx, tx.receive_request(request, self._now()), dest))
            return
        if request.method == "ACK":
            self._ack_received(request)
            return
        if request.method == "CANCEL":
            self._spawn(self._cancel_received(request, source))
            return
        if request.method == "INVITE" and self._late_invite_retransmission(request, source):
            return
        server = ServerTransaction(request, reliable=self.transport_reliable, timers=self.timers)
        try:
            self.transactions.add(server)
        except SipError:
            self._spawn(self._reply_stateless(request, 503, source, "overloaded"))
            return
        self._server_dest[server] = source
        self._spawn(self._process(server, server.start(self._now()), source))
        self._spawn(self._dispatch_request(server, request, source))

    def _late_invite_retransmission(self, request: Request, source: Address) -> bool:
        """An INVITE retransmitted after its server transaction ended on our 2xx (§13.3.1.4).

        The UAS core absorbs it and re-sends the pending 2xx instead of treating it as new.
        """
        call = self.calls.get(request.call_id)
        if call is None or call.is_uac or request.to.tag is not None:
            return False
        if call.invite.from_.tag != request.from_.tag or call.invite.cseq != request.cseq:
            return False
        pending = call._pending_2xx
        if pending is not None:
            self._spawn(self._send(pending.response.encode(), pending.dest))
        return True

    async def _respond(self, tx: ServerTransaction, response: Response) -> None:
        if tx.state == State.TERMINATED:
            return
        dest = self._server_dest.get(tx, ("127.0.0.1", 0))
        await self._process(tx, tx.send_response(response, self._now()), dest)

    async def _dispatch_request(
        self, tx: ServerTransaction, request: Request, source: Address
    ) -> None:
        method = request.method
        if request.to.tag is not None:
            call = self.calls.get(request.call_id)
            if call is None or call.dialog is None or not call.dialog.matches(request):
                await self._respond(tx, make_response(request, 481))
                return
            if not self._from_dialog_peer(call, source):
                # A request naming the dialog but sent from another transport address (e.g. a
                # spoofed BYE) must not end the call or rekey it.
                log.info("in-dialog %s from unexpected address %s refused", method, source)
                await self._respond(tx, make_response(request, 403))
                return
            try:
                call.dialog.receive_request(request)
            except DialogError:
                await self._respond(tx, make_response(request, 500))
                return
            if method == "BYE":
                await self._respond(tx, make_response(request, 200))
                await self._terminate(call, TerminationReason.REMOTE_BYE)
            elif method == "INVITE":
                await self._answer_offer(call, tx, request, source)
            elif method in ("OPTIONS", "INFO", "UPDATE"):
                await self._respond(tx, make_response(request, 200))
            else:
                await self._respond(tx, make_response(request, 405, headers=[("Allow", ALLOW)]))
            return
        if method == "INVITE":
            await self._new_call(tx, request, source)
        elif method == "OPTIONS":
            await self._respond(
                tx,
                make_response(request, 200, to_tag=new_tag(self.rng), headers=[("Allow", ALLOW)]),
            )
        elif method == "BYE":
            await self._respond(tx, make_response(request, 481, to_tag=new_tag(self.rng)))
        else:
            await self._respond(
                tx,
                make_response(request, 405, to_tag=new_tag(self.rng), headers=[("Allow", ALLOW)]),
            )

    async def _new_call(self, tx: ServerTransaction, request: Request, source: Address) -> None:
        tag = new_tag(self.rng)
        if len(self.calls) >= self.max_calls or request.call_id in self.calls:
            status = 486 if request.call_id not in self.calls else 482
            await self._respond(tx, make_response(request, status, to_tag=tag))
            return
        call = Call(self, is_uac=False, peer=source, invite=request)
        try:
            call.dialog = Dialog.from_uas(request, tag, self.contact)
        except DialogError as exc:
            await self._respond(
                tx, make_response(request, 400, f"Bad Request ({exc})"[:80], to_tag=tag)
            )
            return
        call.dialog.state = call.dialog.state.EARLY
        self.calls[call.call_id] = call
        if self.on_incoming is not None:
            try:
                status = await self.on_incoming(call)
            except Exception:
                status = 500
            if not 200 <= status < 300:
                await self._respond(tx, make_response(request, status, to_tag=tag))
                await self._terminate(call, TerminationReason.REJECTED)
                return
        if call.ended:  # cancelled, or its connection lost, meanwhile
            await self._abandon(tx, request, tag)
            return
        await self._answer_offer(call, tx, request, source)
        if not call.ended:
            with contextlib.suppress(asyncio.QueueFull):
                self.incoming.put_nowait(call)

    async def _answer_offer(
        self, call: Call, tx: ServerTransaction, request: Request, source: Address
    ) -> None:
        assert call.dialog is not None
        tag = call.dialog.local_tag
        initial = call.state != CallState.CONFIRMED
        if not request.body or request.content_type != "application/sdp":
            await self._respond(
                tx, make_response(request, 488, "Not Acceptable Here (offer required)", to_tag=tag)
            )
            if initial:
                await self._terminate(call, TerminationReason.REJECTED)
            return
        try:
            offer = SessionDescription.parse(request.body)
        except SdpError as exc:
            await self._respond(
                tx, make_response(request, 400, f"Bad SDP ({exc})"[:80], to_tag=tag)
            )
            if initial:
                await self._terminate(call, TerminationReason.REJECTED)
            return
        try:
            answer = await self.handler.on_offer(call, offer)
        except Rejected as rej:
            extra: list[tuple[str, str]] = []
            if rej.warning:
                text = rej.warning.replace('"', "'")[:120]
                extra.append(("Warning", f'399 {self.host} "{text}"'))
            if rej.body:
                extra.append(("Content-Type", "application/sdp"))
            response = make_response(
                request, rej.status_code, to_tag=tag, headers=extra, body=rej.body or b""
            )
            await self._respond(tx, response)
            if initial:
                await self._terminate(call, TerminationReason.REJECTED)
            return
        except Exception:
            log.warning("offer handler failed", exc_info=True)
            await self._respond(tx, make_response(request, 500, to_tag=tag))
            if initial:
                await self._terminate(call, TerminationReason.REJECTED)
            return
        if call.state == CallState.TERMINATED:
            await self._abandon(tx, request, tag)
            return
        body = answer.encode()
        ok = make_response(
            request,
            200,
            to_tag=tag,
            headers=[("Contact", str(self.contact)), ("Content-Type", "application/sdp")],
            body=body,
        )
        call.remote_sdp = offer
        call.local_sdp = answer
        call.state = CallState.CONFIRMED
        call.dialog.state = call.dialog.state.CONFIRMED
        call._ack_received.clear()
        dest = self._server_dest.get(tx, source)
        await self._respond(tx, ok)
        if call._pending_2xx is not None:
            call._pending_2xx.stop()
        call._pending_2xx = _Retransmitter(self, call, ok, dest)

    async def _abandon(self, tx: ServerTransaction, request: Request, tag: str) -> None:
        """Finish an INVITE transaction whose call ended before it was answered.

        A CANCEL already answered it with 487 (§9.2); any other ending (connection lost,
        shutdown) must still send a final response, or the server transaction would stay in
        PROCEEDING, where no timer ends it (§17.2.1).
        """
        if tx.state == State.PROCEEDING:
            await self._respond(tx, make_response(request, 487, to_tag=tag))

    def _ack_received(self, ack: Request) -> None:
        call = self.calls.get(ack.call_id)
        if call is None or call.dialog is None or not call.dialog.matches(ack):
            return
        if call._pending_2xx is not None and ack.cseq.seq == call.dialog.invite_seq:
            call._pending_2xx.stop()
            call._pending_2xx = None
        call._ack_received.set()

    async def _ack_timeout(self, call: Call) -> None:
        """§13.3.1.4: no ACK within 64*T1 -> end the dialog with BYE."""
        await self._bye_quietly(call, TerminationReason.TIMEOUT)

    async def _cancel_received(self, cancel: Request, source: Address) -> None:
        target = self.transactions.servers.get(cancel_target_key(cancel))
        tx = ServerTransaction(cancel, reliable=self.transport_reliable, timers=self.timers)
        try:
            self.transactions.add(tx)
        except SipError:
            return
        self._server_dest[tx] = source
        if target is None or target.state != State.PROCEEDING:
            await self._respond(tx, make_response(cancel, 481, to_tag=new_tag(self.rng)))
            return
        call = self.calls.get(cancel.call_id)
        tag = call.dialog.local_tag if call and call.dialog else new_tag(self.rng)
        await self._respond(tx, make_response(cancel, 200, to_tag=tag))
        await self._respond(target, make_response(target.request, 487, to_tag=tag))  # §9.2
        if call is not None:
            await self._terminate(call, TerminationReason.CANCELLED)

    # -- teardown ---------------------------------------------------------------------------

    async def _terminate(self, call: Call, reason: TerminationReason) -> None:
        if call.state == CallState.TERMINATED:
            return
        call.state = CallState.TERMINATED
        call.reason = reason
        if call.dialog is not None:
            call.dialog.terminate()
        if call._pending_2xx is not None:
            call._pending_2xx.stop()
            call._pending_2xx = None
        if self.calls.get(call.call_id) is call:
            # keep the call reachable briefly so retransmitted 2xx get re-ACKed / BYEs answered
            loop = asyncio.get_running_loop()
            loop.call_later(
                32 * self.timers.t1 if not self.transport_reliable else 0, self._forget, call
            )
        try:
            await self.handler.on_terminated(call, reason)
        except Exception:
            log.warning("on_terminated handler failed", exc_info=True)
        call._terminated.set()

    def _forget(self, call: Call) -> None:
        if self.calls.get(call.call_id) is call:
            del self.calls[call.call_id]


ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
