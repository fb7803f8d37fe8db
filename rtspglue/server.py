"""Asyncio RTSP 1.0 server streaming PCMU audio, with hooks where MIKEY/SRTP plug in.

This module is the shell around the sans-IO :class:`~rtspglue.core.ServerCore`, which holds the
protocol: the shell owns the listening socket, one task per TCP connection that hands the
core its bytes, the UDP port pairs, one timer task that sleeps until ``next_deadline()``, and
the :class:`~rtspglue.media.Pacer` that sends RTP; it carries out the core's effects in order.
Requests are answered in order. A malformed byte stream gets ``400`` and the connection is
closed (an RTSP stream cannot be resynchronised); a malformed *value* in a well-framed request
gets a 4xx and the connection continues. Nothing a peer sends can raise out of a connection task.

Sessions (RFC 2326 §3.4) move READY -> PLAYING -> READY (PAUSE) and end in CLOSED. Every path
to CLOSED (TEARDOWN, idle timeout, connection loss, server shutdown, refused keying) goes through
the core's ``_close_session``, which cancels streaming, releases ports and calls
``ServerKeying.on_teardown`` exactly once for every session a hook has seen.

Keying: with ``keying=None`` the server offers and accepts RTP/AVP only; with a
:class:`ServerKeying` it offers ``RTP/SAVP``, puts the hook's ``a=key-mgmt`` value in DESCRIBE,
hands SETUP's ``KeyMgmt`` header to the hook (RFC 4567 §3.2; a :class:`KeyMgmtFailure` answers
463 and leaves no session), and passes every outgoing RTP packet through the hook's protector.

Session binding: a session belongs to the TCP connection that set it up. Requests that change or
reveal its keying state (SET_PARAMETER with a ``KeyMgmt:`` or ``mikey:`` body, GET_PARAMETER
``mikey``) are honoured on that connection only; from any other connection they get ``454
Session Not Found`` and change nothing (not even the session's activity time). 454 is what an
unknown session id gets too (RFC 2326 §12.37, §11.3.5), so a session id seen elsewhere (a
sniffed or leaked ``Session`` header) gets an attacker no answer that tells it apart from a
guess, and no keying oracle. The one exception is a client that comes back on a new connection:
a SET_PARAMETER carrying a fresh MIKEY I_MESSAGE goes to the hook's optional
``on_foreign_set_parameter_mikey``, which accepts it only when the message authenticates as the
identity that keyed the session; anything else (no such hook, no known identity, any other
identity, a malformed body) is the same 454. The session stays bound to its first connection.

Session ids (96 random bits), SSRCs, initial RTP sequence numbers and timestamps and SDP ``o=``
session ids come from the injected ``rng`` (``os.urandom`` by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .core import (
    PUBLIC_METHODS,
    SESSION_ID_BYTES,
    CloseConnection,
    CoreConfig,
    Effect,
    OpenUdp,
    ReleaseMedia,
    SendResponse,
    ServerCore,
    StartStreaming,
    StopStreaming,
)
from .errors import RtspError
from .hooks import (
    ConnectionInfo,
    MediaInfo,
    ServerKeying,
    SessionContext,
    SessionState,
    TeardownReason,
)
from .media import AudioSource, Pacer
from .message import encode_interleaved

__all__ = [
    "PUBLIC_METHODS",
    "SESSION_ID_BYTES",
    "ConnectionInfo",
    "MediaInfo",
    "RtspServer",
    "ServerConfig",
    "ServerKeying",
    "SessionContext",
    "SessionState",
    "TeardownReason",
    "bind_rtp_pair",
]

log = logging.getLogger(__name__)

Rng = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class ServerConfig(CoreConfig):
    """Server configuration; safe defaults: the core's (:class:`CoreConfig`) and the shell's."""

    port: int = 0
    #: no longer used: every timeout fires at its own deadline (kept for existing callers)
    reap_interval: float | None = None
    ptime: float = 0.020
    max_write_buffer: int = 256 * 1024


class _Rtcp(asyncio.DatagramProtocol):
    """Receives RTCP (or RTP keep-alives) from the client: counts as session activity."""

    def __init__(self, touch: Callable[[], None], peer_host: str) -> None:
        self._touch = touch
        self._peer_host = peer_host

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if addr and addr[0] == self._peer_host:
            self._touch()


class _RtpSender:
    """Makes, protects and sends one session's RTP packets, one per pacer turn.

    The pacer's hot path, run about 50,000 times a second for a thousand sessions: one slotted
    object holds what a packet needs, so each packet touches few objects (a closure would add a
    cell per captured name).
    """

    __slots__ = ("_next_packet", "_protect", "_send", "_session")

    def __init__(
        self,
        session: SessionContext,
        next_packet: Callable[[], bytes],
        protect: Callable[[bytes], bytes] | None,
        send: Callable[[bytes], object],
    ) -> None:
        self._session = session
        self._next_packet = next_packet
        self._protect = protect
        self._send = send

    def send_next(self) -> None:
        packet = self._next_packet()
        protect = self._protect
        if protect is not None:
            try:
                packet = protect(packet)
            except Exception:  # a packet the protector refuses is dropped, never sent in clear
                self._session.packets_dropped += 1
                return
        try:
            self._send(packet)
        except OSError:  # the transport would not take it (see RtspServer._open_transport)
            self._session.packets_dropped += 1
            return
        self._session.packets_sent += 1


class RtspServer:
    """An RTSP server. ``sources`` maps a path (``"/tone"``) to a factory of audio sources."""

    def __init__(
        self,
        sources: Mapping[str, Callable[[], AudioSource]],
        *,
        config: ServerConfig | None = None,
        keying: ServerKeying | None = None,
        rng: Rng = os.urandom,
    ) -> None:
        self.config = config or ServerConfig()
        self.keying = keying
        cfg = self.config
        self.core = ServerCore(
            sources,
            config=cfg,
            keying=keying,
            rng=rng,
        )
        self._pacer = Pacer(cfg.ptime)  # one timer for every playing stream
        self._writers: dict[int, asyncio.StreamWriter] = {}
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._timer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``config.host:config.port``."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port)
        self.core.port = self.port
        self._timer = asyncio.create_task(self._timer_loop())

    @property
    def port(self) -> int:
        """The TCP port listened on."""
        if self._server is None or not self._server.sockets:
            raise RtspError("server not started")
        return int(self._server.sockets[0].getsockname()[1])

    def url(self, path: str) -> str:
        """``rtsp://host:port/path``."""
        return f"rtsp://{self.config.host}:{self.port}/{path.strip('/')}"

    @property
    def sessions(self) -> Mapping[str, SessionContext]:
        """Live sessions by id (read-only view)."""
        return dict(self.core.sessions)

    @property
    def _sessions(self) -> Mapping[str, SessionContext]:
        return self.core.sessions

    @property
    def _conns(self) -> Mapping[int, object]:
        return self.core.connections

    @property
    def malformed(self) -> int:
        """Requests or byte streams refused as malformed (400)."""
        return self.core.malformed

    @property
    def counters(self) -> dict[str, int]:
        """How often each limit bit (per-source budget and cap, full connection table) and
        how many requests failed in their handler (500); see ``ServerCore.counters``."""
        return dict(self.core.counters)

    @property
    def slow_closed(self) -> int:
        """Connections closed by the request or idle timeout."""
        return self.core.slow_closed

    async def close(self) -> None:
        """Stop listening, end every session (SHUTDOWN) and close every connection."""
        if self._server is not None:
            self._server.close()
        if self._timer is not None:
            self._timer.cancel()
        self._run(self.core.close(self._now()))
        for writer in list(self._writers.values()):
            writer.close()
        await self._pacer.close()
        tasks = list(self._conn_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._timer is not None:
            await asyncio.gather(self._timer, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> RtspServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the core's clock and effects ------------------------------------------------------------

    def _now(self) -> float:
        loop = self._loop or asyncio.get_running_loop()
        return loop.time()

    async def _timer_loop(self) -> None:
        while True:
            deadline = self.core.next_deadline()
            timeout = None if deadline is None else max(0.0, deadline - self._now())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._run(self.core.handle_timer(self._now()))

    def _run(self, effects: list[Effect]) -> list[OpenUdp]:
        """Carry out the synchronous effects in order; return the UDP opens to await."""
        opens: list[OpenUdp] = []
        for effect in effects:
            if isinstance(effect, SendResponse):
                writer = self._writers.get(effect.conn_id)
                if writer is not None and not writer.is_closing():
                    writer.write(effect.response.encode())
            elif isinstance(effect, StartStreaming):
                self._start_streaming(effect.session)
            elif isinstance(effect, StopStreaming):
                self._stop_streaming(effect.session)
            elif isinstance(effect, ReleaseMedia):
                self._release(effect.session)
            elif isinstance(effect, CloseConnection):
                writer = self._writers.get(effect.conn_id)
                if writer is not None:
                    writer.close()
            else:
                opens.append(effect)
        if self.core.take_deadline_moved():
            self._wake.set()
        return opens

    async def _execute(self, effects: list[Effect], writer: asyncio.StreamWriter) -> None:
        """Carry out effects for a connection task: UDP opens are awaited and reported back."""
        while True:
            opens = self._run(effects)
            if any(isinstance(e, SendResponse) for e in effects) and not writer.is_closing():
                await writer.drain()
            if not opens:
                return
            effects = []
            for request in opens:
                effects.extend(await self._open_udp(request))

    async def _open_udp(self, request: OpenUdp) -> list[Effect]:
        session = request.session
        try:
            loop = asyncio.get_running_loop()
            rtp_sock, rtcp_sock = bind_rtp_pair(self.config.host)
            session._sockets.append(rtp_sock)
            session._sockets.append(rtcp_sock)
            core = self.core
            rtcp, _ = await loop.create_datagram_endpoint(
                lambda: _Rtcp(lambda: core.touch(session, loop.time()), request.host),
                sock=rtcp_sock,
            )
            session._udp.append(rtcp)
            # RTP only leaves this socket: it is connected to the client's port (the kernel
            # keeps the route; no address to convert per packet) and sent on directly,
            # non-blocking, instead of through an asyncio transport, which costs microseconds
            # per packet at 50 packets/s/stream. A datagram the kernel will not take (full
            # buffer, an ICMP error from a gone client) raises OSError and is dropped and
            # counted, as a router would.
            rtp_sock.connect((request.host, request.client_port))
            session._send = rtp_sock.send
            ports = (rtp_sock.getsockname()[1], rtcp_sock.getsockname()[1])
        except Exception:
            log.exception("RTSP SETUP handler failed")
            self._release(session)
            return self.core.udp_failed(session, self._now())
        return self.core.udp_opened(session, ports, self._now())

    # -- connections ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        peer = writer.get_extra_info("peername") or ("", 0)
        info, refused = self.core.connection_made((str(peer[0]), int(peer[1])), self._now())
        conn_id = info.conn_id
        try:
            if refused:
                writer.write(
                    b"".join(e.response.encode() for e in refused if isinstance(e, SendResponse))
                )
                return
            self._writers[conn_id] = writer
            self._run([])
            while conn_id in self.core.connections:
                data = await reader.read(65536)
                if not data:
                    return
                await self._execute(self.core.receive_data(conn_id, data, self._now()), writer)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection, never the server
            log.exception("RTSP connection %d failed", conn_id)
        finally:
            self._run(self.core.connection_lost(conn_id, self._now()))
            self._writers.pop(conn_id, None)
            writer.close()
            self._conn_tasks.discard(task)

    # -- media ------------------------------------------------------------------------------

    def _tcp_sender(self, session: SessionContext) -> Callable[[bytes], object] | None:
        writer = self._writers.get(session.connection.conn_id)
        channels = session.transport.interleaved
        if writer is None or channels is None:
            return None
        limit = self.config.max_write_buffer
        channel = channels[0]

        def send_tcp(packet: bytes) -> None:
            if writer.is_closing() or writer.transport.get_write_buffer_size() > limit:
                raise BlockingIOError  # a slow reader loses packets, the server no memory
            writer.write(encode_interleaved(channel, packet))

        return send_tcp

    def _start_streaming(self, session: SessionContext) -> None:
        if session._send is None and session.transport.lower == "TCP":
            session._send = self._tcp_sender(session)
        pk, send = session._packetizer, session._send
        assert pk is not None and send is not None
        sender = _RtpSender(session, pk.next_packet, session._protect, send)
        session._play = self._pacer.add(sender.send_next)

    @staticmethod
    def _stop_streaming(session: SessionContext) -> None:
        if session._play is not None:
            session._play.cancel()
            session._play = None

    def _release(self, session: SessionContext) -> None:
        self._stop_streaming(session)
        for transport in session._udp:
            transport.close()
        session._udp.clear()
        for sock in session._sockets:
            sock.close()
        session._sockets.clear()
        session._send = None
        session._protect = None


def bind_rtp_pair(host: str, attempts: int = 32) -> tuple[socket.socket, socket.socket]:
    """Two UDP sockets on consecutive ports, the first even (RFC 3550 §11)."""
    for _ in range(attempts):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtp.bind((host, 0))
            port = rtp.getsockname()[1]
            if port % 2 == 0 and port < 65535:
                rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                try:
                    rtcp.bind((host, port + 1))
                except OSError:
                    rtcp.close()
                else:
                    rtp.setblocking(False)
                    rtcp.setblocking(False)
                    return rtp, rtcp
        except OSError:
            pass
        rtp.close()
    raise RtspError("no free UDP port pair")
