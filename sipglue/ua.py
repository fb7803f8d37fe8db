"""An asyncio SIP user agent (RFC 3261 §8, §13-§15): a thin shell over the sans-IO core.

The :class:`UserAgent` owns one transport, one timer handle and the asyncio side of each
:class:`Call` (its events, the futures of its requests). Everything SIP decides lives in the
sans-IO core: every input (a received message, a timer, a lost connection, a binder hook's
result) goes to the core with ``loop.time()`` as ``now``; the shell carries out the effects it
returns, in order, then sleeps until ``core.next_deadline()``.

Keying plugs in through an :class:`OfferAnswerHandler`: the UAS asks it for an answer to every
offer (initial and re-INVITE) and it may raise :class:`~sipglue.errors.Rejected` (488/606); the UAC
gives it every answer and, if it raises, ACKs and then sends BYE. ``on_terminated`` is called once
per call for every ending (BYE either way, CANCEL, timeout, transport loss, failure, shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import cast

from .core import (
    ALLOW,
    AckReceived,
    CallAccepted,
    CallRecord,
    CallState,
    CallTerminated,
    Effect,
    IncomingCall,
    OfferReceived,
    RequestFailed,
    ResponseArrived,
    Send,
    UaCore,
    address_of,
)
from .errors import (
    CallError,
    DialogError,
    Rejected,
    SdpError,
    SipError,
    SipParseError,
    TransportError,
)
from .hooks import IdentifiedHandler, IncomingHandler, OfferAnswerHandler, TerminationReason
from .message import (
    Message,
    NameAddr,
    Request,
    Response,
    SipUri,
    new_branch,
    warning_text,
)
from .sdp import SessionDescription
from .transaction import ClientTransaction, TimerConfig, TransactionTable
from .transport import Address, TcpTransport, Transport, UdpTransport

__all__ = [
    "ALLOW",
    "Call",
    "CallState",
    "IdentifiedHandler",
    "IncomingHandler",
    "OfferAnswerHandler",
    "TerminationReason",
    "UserAgent",
]

log = logging.getLogger(__name__)
Rng = Callable[[int], bytes]


class Call(CallRecord):
    """One INVITE dialog, seen from either side."""

    def __init__(self, ua: UserAgent, *, is_uac: bool, peer: Address, invite: Request) -> None:
        super().__init__(is_uac=is_uac, peer=peer, invite=invite)
        self.ua = ua
        self._terminated = asyncio.Event()
        self._ack_received = asyncio.Event()

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
        tx, effects = self.ua.core.cancel(self, self.ua._now())
        if tx is None:
            await self.ua._feed(effects)
            return
        with contextlib.suppress(CallError):
            await self.ua._outcome(tx, effects)

    async def reinvite(self, offer: SessionDescription | bytes) -> SessionDescription:
        """Send a re-INVITE with a new offer; return the answer (after on_answer accepted it).

        A 491 (glare, RFC 3261 §14.1) is retried by the core after its §14.1 delay; the
        answer or failure returned is the last try's.
        """
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
        self.ua.core.reinvite_answered(self, response)
        answer = self.ua._parse_sdp(response.body)
        await self.ua._feed(self.ua.core.ack_2xx(self))
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
        handler: OfferAnswerHandler[Call],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        transport: str = "udp",
        user: str = "mikey",
        aor: SipUri | str | None = None,
        on_incoming: IncomingHandler[Call] | None = None,
        timers: TimerConfig | None = None,
        rng: Rng = os.urandom,
        max_transactions: int = 1024,
        max_calls: int = 256,
        transport_factory: Callable[[UdpTransport], Transport] | None = None,
        check_dialog_source: bool = True,
        source_burst: int | None = None,
        source_rate: float | None = None,
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
        self.core: UaCore[Call] = UaCore(
            call_factory=self._new_call,
            contact=lambda: self.contact,
            via=self._via,
            host=host,
            transport_name=self.transport_name,
            timers=self.timers,
            rng=rng,
            max_transactions=max_transactions,
            max_calls=max_calls,
            check_dialog_source=check_dialog_source,
            source_burst=source_burst,
            source_rate=source_rate,
        )
        self.transport: Transport | None = None
        self._transport_factory = transport_factory
        self._futures: dict[ClientTransaction, asyncio.Future[Response]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.incoming: asyncio.Queue[Call] = asyncio.Queue(maxsize=max_calls)

    def _new_call(self, is_uac: bool, peer: Address, invite: Request) -> Call:
        return Call(self, is_uac=is_uac, peer=peer, invite=invite)

    @property
    def transactions(self) -> TransactionTable:
        return self.core.transactions

    @property
    def calls(self) -> dict[str, Call]:
        """The live calls (and, briefly, the ended ones), by Call-ID."""
        return self.core.calls

    @property
    def counters(self) -> dict[str, int]:
        """How often each limit bit (per-source budget, full tables, evictions, failed
        handlers, INVITEs without a final response in time); see ``UaCore.counters``."""
        return dict(self.core.counters)

    @property
    def check_dialog_source(self) -> bool:
        """Refuse in-dialog requests from other transport addresses than the dialog's peer."""
        return self.core.check_dialog_source

    @check_dialog_source.setter
    def check_dialog_source(self, value: bool) -> None:
        self.core.check_dialog_source = value

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
        self.core.reliable = self.transport.reliable
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
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        if self.transport is not None:
            self.transport.close()

    # -- running the core -------------------------------------------------------------------

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

    def _rearm(self) -> None:
        """Keep the one timer handle on the core's next deadline."""
        deadline = None if self._closed else self.core.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(deadline, self._timer_due)

    def _timer_due(self) -> None:
        handle, self._timer = self._timer, None
        now = self._now() if handle is None else max(self._now(), handle.when())
        self._later(self.core.handle_timer(now))

    def _later(self, effects: list[Effect]) -> None:
        """From a callback: rearm, then carry out ``effects`` in a task."""
        self._rearm()
        if effects:
            self._spawn(self._run(effects))

    async def _feed(self, effects: list[Effect]) -> None:
        """From a coroutine: rearm, then carry out ``effects`` before returning."""
        self._rearm()
        await self._run(effects)

    async def _run(self, effects: list[Effect]) -> None:
        """Carry out the core's effects in order (hooks are awaited here)."""
        for effect in effects:
            if isinstance(effect, Send):
                try:
                    await self._send(effect.data, effect.dest)
                except TransportError:
                    if effect.tx is not None:
                        await self._feed(self.core.transport_error(effect.tx, self._now()))
                    elif not effect.best_effort:
                        raise
            elif isinstance(effect, ResponseArrived):
                future = self._futures.get(effect.tx)
                if future is not None and not future.done():
                    future.set_result(effect.response)
            elif isinstance(effect, RequestFailed):
                future = self._futures.get(effect.tx)
                if future is not None and not future.done():
                    future.set_exception(effect.error)
            elif isinstance(effect, CallTerminated):
                await self._terminated(cast(Call, effect.call), effect.reason)
            elif isinstance(effect, AckReceived):
                cast(Call, effect.call)._ack_received.set()
            elif isinstance(effect, CallAccepted):
                with contextlib.suppress(asyncio.QueueFull):
                    self.incoming.put_nowait(cast(Call, effect.call))
            elif isinstance(effect, IncomingCall):
                await self._incoming(effect)
            else:
                await self._answer(effect)

    async def _send(self, data: bytes, dest: Address) -> None:
        if self.transport is None:
            raise TransportError("UA not listening")
        await self.transport.send(data, dest)

    async def _incoming(self, effect: IncomingCall) -> None:
        status = 200
        if self.on_incoming is not None:
            try:
                status = await self.on_incoming(cast(Call, effect.call))
            except Exception:
                status = 500
        await self._feed(self.core.incoming_decided(effect.call, effect.tx, status, self._now()))

    async def _answer(self, effect: OfferReceived) -> None:
        """Ask the binder for an answer and hand its outcome back to the core."""
        call = cast(Call, effect.call)
        try:
            answer = await self.handler.on_offer(call, effect.offer)
        except Rejected as rej:
            outcome = self.core.offer_rejected(
                effect, rej.status_code, rej.warning, rej.body, self._now()
            )
        except Exception:
            log.warning("offer handler failed", exc_info=True)
            outcome = self.core.offer_failed(effect, self._now())
        else:
            if not call.ended:
                call._ack_received.clear()
            outcome = self.core.offer_answered(effect, answer, self._now())
        await self._feed(outcome)

    async def _terminated(self, call: Call, reason: TerminationReason) -> None:
        try:
            await self.handler.on_terminated(call, reason)
        except Exception:
            log.warning("on_terminated handler failed", exc_info=True)
        call._terminated.set()

    async def _terminate(self, call: Call, reason: TerminationReason) -> None:
        await self._feed(self.core.terminate(call, reason, self._now()))

    def _via(self) -> str:
        branch = new_branch(self.rng)
        return f"SIP/2.0/{self.transport_name} {self.host}:{self.port};branch={branch};rport"

    def _parse_sdp(self, body: bytes) -> SessionDescription:
        try:
            return SessionDescription.parse(body)
        except SdpError as exc:
            raise CallError(f"bad SDP: {exc}") from exc

    @staticmethod
    def _address_of(uri: SipUri) -> Address:
        return address_of(uri)

    # -- transport listener -----------------------------------------------------------------

    def message_received(self, message: Message, source: Address, transport: Transport) -> None:
        self._later(self.core.receive(message, source, self._now()))

    def invalid_received(
        self, data: bytes, source: Address, error: SipParseError, transport: Transport
    ) -> None:
        log.debug("unparsable message from %s: %s", source, error)

    def connection_lost(self, peer: Address, transport: Transport) -> None:
        self._later(self.core.connection_lost(peer, self._now()))

    # -- UAC --------------------------------------------------------------------------------

    async def _outcome(self, tx: ClientTransaction, effects: list[Effect]) -> Response:
        """Send a client transaction's first effects; wait for its final response."""
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._futures[tx] = future
        try:
            await self._feed(effects)
            return await future
        finally:
            self._futures.pop(tx, None)
            if not future.done():  # the caller was cancelled: nobody will read the outcome
                future.cancel()

    async def _client_request(
        self, request: Request, dest: Address, call: Call | None = None
    ) -> Response:
        tx, effects = self.core.start_request(request, dest, self._now(), call=call)
        return await self._outcome(tx, effects)

    async def _request_in_dialog(self, call: Call, method: str, body: bytes = b"") -> Response:
        tx, effects = self.core.request_in_dialog(call, method, self._now(), body=body)
        return await self._outcome(tx, effects)

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
        request = self.core.new_invite(uri, sdp.encode(), self.local_uri, headers)
        dest = proxy or address_of(uri)
        call = Call(self, is_uac=True, peer=dest, invite=request)
        call.local_sdp = sdp
        self.core.add_call(call)
        try:
            response = await self._client_request(request, dest, call)
        except CallError:
            await self._terminate(call, TerminationReason.TIMEOUT)
            raise
        try:
            effects = self.core.uac_final(call, response, self._now())
        except (DialogError, SipParseError) as exc:
            await self._terminate(call, TerminationReason.REJECTED)
            raise CallError(f"bad 2xx: {exc}") from exc
        await self._feed(effects)
        if response.status >= 300:
            raise CallError(
                f"call failed with {response.status}",
                status_code=response.status,
                warning=warning_text(response.get("Warning")),
            )
        try:
            answer = self._parse_sdp(response.body)
            await self.handler.on_answer(call, answer)
        except Exception as exc:
            await self._bye_quietly(call, TerminationReason.ANSWER_REFUSED)
            raise CallError("answer refused; call ended with BYE") from exc
        call.remote_sdp = answer
        if call.cancel_requested:
            await call.bye()
            raise CallError("cancelled after 2xx; call ended with BYE", status_code=487)
        return call

    async def _bye_quietly(self, call: Call, reason: TerminationReason) -> None:
        with contextlib.suppress(SipError):
            await self._request_in_dialog(call, "BYE")
        await self._terminate(call, reason)
