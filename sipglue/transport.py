"""asyncio SIP transports: UDP (one datagram = one message) and TCP (Content-Length framing).

Transports turn bytes into :class:`~sipglue.message.Message` objects and hand them to a
:class:`TransportListener`; they know nothing about transactions. TCP reuses one connection per
peer address (accepted or opened), bounds message size and connection count, and closes idle
connections. :class:`LossyDatagramWrapper` wraps a UDP transport for tests: it drops, duplicates
and reorders outgoing datagrams with a seeded RNG.
"""

from __future__ import annotations

import asyncio
import random
from typing import Protocol

from .errors import SipParseError, TransportError
from .message import MAX_MESSAGE_SIZE, Message, StreamParser, parse_message

__all__ = [
    "Address",
    "LossyDatagramWrapper",
    "TcpTransport",
    "Transport",
    "TransportListener",
    "UdpTransport",
]

Address = tuple[str, int]


class TransportListener(Protocol):
    """What a transport calls: the UA implements it."""

    def message_received(self, message: Message, source: Address, transport: Transport) -> None:
        """A complete, syntactically valid message arrived."""

    def invalid_received(
        self, data: bytes, source: Address, error: SipParseError, transport: Transport
    ) -> None:
        """Bytes that do not parse (UDP: the datagram; TCP: empty, the connection closes)."""

    def connection_lost(self, peer: Address, transport: Transport) -> None:
        """A stream connection to ``peer`` closed (never called for UDP)."""


class Transport(Protocol):
    name: str  # Via transport token: "UDP" or "TCP"
    reliable: bool

    @property
    def local_address(self) -> Address: ...

    async def send(self, data: bytes, destination: Address) -> None: ...

    def close(self) -> None: ...


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: UdpTransport) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        try:
            message = parse_message(data, max_size=self.owner.max_message_size)
        except SipParseError as exc:
            if data.strip(b"\r\n\x00"):
                self.owner.listener.invalid_received(data, source, exc, self.owner)
            return
        self.owner.listener.message_received(message, source, self.owner)

    def error_received(self, exc: Exception) -> None:  # ICMP errors: ignored (§18.1.1 allows)
        return


class UdpTransport:
    """A UDP socket bound to ``host:port``."""

    name = "UDP"
    reliable = False

    def __init__(self, listener: TransportListener, *, max_message_size: int = MAX_MESSAGE_SIZE):
        self.listener = listener
        self.max_message_size = max_message_size
        self._transport: asyncio.DatagramTransport | None = None

    async def bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port)
        )
        self._transport = transport

    @property
    def local_address(self) -> Address:
        if self._transport is None:
            raise TransportError("transport not bound")
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    async def send(self, data: bytes, destination: Address) -> None:
        if self._transport is None or self._transport.is_closing():
            raise TransportError("UDP transport closed")
        if len(data) > self.max_message_size:
            raise TransportError("message too large for UDP")
        self._transport.sendto(data, destination)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: TcpTransport) -> None:
        self.owner = owner
        self.parser = StreamParser(max_size=owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.peer: Address = ("", 0)
        self.last_activity = 0.0
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        host, port = transport.get_extra_info("peername")[:2]
        self.peer = (str(host), int(port))
        self.last_activity = asyncio.get_running_loop().time()
        if len(self.owner.connections) >= self.owner.max_connections:
            transport.close()
            return
        self.owner.connections.setdefault(self.peer, self)

    def data_received(self, data: bytes) -> None:
        try:
            messages = self.parser.feed(data)
        except SipParseError as exc:
            self.owner.listener.invalid_received(b"", self.peer, exc, self.owner)
            if self.transport is not None:
                self.transport.close()  # cannot resynchronise a stream (§18.3)
            return
        loop = asyncio.get_running_loop()
        if messages:
            self.last_activity = loop.time()  # only whole messages count as activity
        # Slow-drip bound: a message must be complete message_timeout after its first byte.
        if not self.parser.pending:
            self._cancel_deadline()
        elif self._deadline is None:
            self._deadline = loop.call_later(self.owner.message_timeout, self._too_slow)
        for message in messages:
            self.owner.listener.message_received(message, self.peer, self.owner)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        self.owner.slow_closed += 1
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self.owner.connections.get(self.peer) is self:
            del self.owner.connections[self.peer]
            self.owner.listener.connection_lost(self.peer, self.owner)


class TcpTransport:
    """A TCP listener plus outgoing connections, reused per peer address."""

    name = "TCP"
    reliable = True

    def __init__(
        self,
        listener: TransportListener,
        *,
        max_message_size: int = MAX_MESSAGE_SIZE,
        max_connections: int = 256,
        idle_timeout: float = 300.0,
        connect_timeout: float = 5.0,
        message_timeout: float = 4.0,
    ) -> None:
        self.listener = listener
        self.message_timeout = message_timeout
        self.slow_closed = 0
        self.max_message_size = max_message_size
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.connections: dict[Address, _TcpConnection] = {}
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None

    async def bind(self, host: str, port: int) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _TcpConnection(self), host, port)
        self._reaper = asyncio.create_task(self._reap_idle())

    @property
    def local_address(self) -> Address:
        if self._server is None:
            raise TransportError("transport not bound")
        host, port = self._server.sockets[0].getsockname()[:2]
        return (str(host), int(port))

    async def send(self, data: bytes, destination: Address) -> None:
        if len(data) > self.max_message_size:
            raise TransportError("message too large")
        conn = self.connections.get(destination)
        if conn is None or conn.transport is None or conn.transport.is_closing():
            if len(self.connections) >= self.max_connections:
                raise TransportError("too many TCP connections")
            loop = asyncio.get_running_loop()
            try:
                _, new_conn = await asyncio.wait_for(
                    loop.create_connection(lambda: _TcpConnection(self), *destination),
                    self.connect_timeout,
                )
            except (OSError, TimeoutError) as exc:
                raise TransportError(
                    f"cannot connect to {destination[0]}:{destination[1]}"
                ) from exc
            self.connections[destination] = new_conn
            new_conn.peer = destination
            conn = new_conn
        assert conn.transport is not None
        conn.last_activity = asyncio.get_running_loop().time()
        conn.transport.write(data)

    async def _reap_idle(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(min(self.idle_timeout / 4, 30.0))
            now = loop.time()
            for conn in list(self.connections.values()):
                if now - conn.last_activity > self.idle_timeout and conn.transport is not None:
                    conn.transport.close()

    def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        for conn in list(self.connections.values()):
            if conn.transport is not None:
                conn.transport.close()
        self.connections.clear()
        if self._server is not None:
            self._server.close()


class LossyDatagramWrapper:
    """A test transport: wraps a UDP transport and drops/duplicates/reorders what it sends."""

    reliable = False
    name = "UDP"

    def __init__(
        self,
        inner: UdpTransport,
        *,
        seed: int,
        loss: float = 0.2,
        duplicate: float = 0.1,
        reorder: float = 0.1,
        reorder_delay: float = 0.05,
    ) -> None:
        self.inner = inner
        self.rng = random.Random(seed)
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.reorder_delay = reorder_delay
        self.sent = self.dropped = self.duplicated = self.reordered = 0
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def local_address(self) -> Address:
        return self.inner.local_address

    async def send(self, data: bytes, destination: Address) -> None:
        self.sent += 1
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 2 if self.rng.random() < self.duplicate else 1
        self.duplicated += copies - 1
        for _ in range(copies):
            if self.rng.random() < self.reorder:
                self.reordered += 1
                loop = asyncio.get_running_loop()
                loop.call_later(self.reorder_delay, self._send_later, data, destination)
            else:
                await self.inner.send(data, destination)

    def _send_later(self, data: bytes, destination: Address) -> None:
        task = asyncio.ensure_future(self._safe_send(data, destination))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _safe_send(self, data: bytes, destination: Address) -> None:
        try:
            await self.inner.send(data, destination)
        except TransportError:
            return

    def close(self) -> None:
        self.inner.close()
