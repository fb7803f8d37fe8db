"""Asyncio RTSP 1.0 server streaming PCMU audio, with hooks where MIKEY/SRTP plug in.

Each TCP connection is one task: bytes go through :class:`~rtspglue.message.RtspParser`, requests
are answered in order. A malformed byte stream gets ``400`` and the connection is closed (an RTSP
stream cannot be resynchronised); a malformed *value* in a well-framed request gets a 4xx and the
connection continues. Nothing a peer sends can raise out of a connection task.

Sessions (RFC 2326 §3.4) move READY -> PLAYING -> READY (PAUSE) and end in CLOSED. Every path
to CLOSED (TEARDOWN, idle timeout, connection loss, server shutdown, refused keying) goes through
:meth:`RtspServer._close_session`, which cancels streaming, releases ports and calls
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
import itertools
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from sdp.errors import SdpError
from sdp.keymgmt import KeyMgmtAttr
from sdp.model import MediaDescription, SdpLine, SessionDescription

from .errors import KeyMgmtError, KeyMgmtFailure, RateLimited, RtspError, RtspParseError
from .hooks import (
    ConnectionInfo,
    MediaInfo,
    ServerKeying,
    SessionContext,
    SessionState,
    TeardownReason,
)
from .keymgmt import (
    KeyMgmtSpec,
    format_mikey_parameter,
    is_mikey_parameter_request,
    parse_keymgmt,
    parse_set_parameter_keying,
)
from .media import AudioSource, Pacer, PcmuPacketizer
from .message import (
    InterleavedFrame,
    Limits,
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    StatusCode,
    TransportSpec,
    encode_interleaved,
    parse_transports,
)

__all__ = [
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

PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
_CONTROL = "stream=0"
#: random bytes in a session id (96 bits, sent as 24 hex digits; RFC 2326 §12.37 asks for >= 8)
SESSION_ID_BYTES = 12
_SESSION_ID_ATTEMPTS = 8

Rng = Callable[[int], bytes]


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """Server configuration; safe defaults."""

    host: str = "127.0.0.1"
    port: int = 0
    session_timeout: float = 60.0
    reap_interval: float | None = None
    max_sessions: int = 64
    max_connections: int = 256
    limits: Limits = field(default_factory=Limits)
    ptime: float = 0.020
    max_write_buffer: int = 256 * 1024
    server_name: str = "rtspglue"
    #: a request must be complete this long after its first byte (slow-drip / slowloris bound)
    request_timeout: float = 4.0
    #: a connection without a session that sends nothing for this long is closed
    idle_timeout: float = 30.0


class _Rtcp(asyncio.DatagramProtocol):
    """Receives RTCP (or RTP keep-alives) from the client: counts as session activity."""

    def __init__(self, touch: Callable[[], None], peer_host: str) -> None:
        self._touch = touch
        self._peer_host = peer_host

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if addr and addr[0] == self._peer_host:
            self._touch()


@dataclass(eq=False, slots=True)
class _Conn:
    info: ConnectionInfo
    writer: asyncio.StreamWriter
    ssrc_by_path: dict[str, int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    channels: dict[int, str] = field(default_factory=dict)


_Result = tuple[list[tuple[str, str]], bytes]


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


class _Reply(Exception):
    """Internal control flow: answer the request with this status."""

    def __init__(self, status: int, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


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
        self._rng = rng
        self._pacer = Pacer(self.config.ptime)  # one timer for every playing stream
        self._sources = {"/" + p.strip("/"): f for p, f in sources.items()}
        self._sessions: dict[str, SessionContext] = {}
        self._conns: dict[int, _Conn] = {}
        self._conn_tasks: set[asyncio.Task[None]] = set()
        self._ids = itertools.count(1)
        self._server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._closing = False
        self.malformed = 0
        self.slow_closed = 0

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on ``config.host:config.port``."""
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port)
        self._reaper = asyncio.create_task(self._reap_loop())

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
        return dict(self._sessions)

    async def close(self) -> None:
        """Stop listening, end every session (SHUTDOWN) and close every connection."""
        self._closing = True
        if self._server is not None:
            self._server.close()
        if self._reaper is not None:
            self._reaper.cancel()
        for session in list(self._sessions.values()):
            self._close_session(session, TeardownReason.SHUTDOWN)
        for conn in list(self._conns.values()):
            conn.writer.close()
        await self._pacer.close()
        tasks = list(self._conn_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._reaper is not None:
            await asyncio.gather(self._reaper, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> RtspServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- connections ------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conn_tasks.add(task)
        peer = writer.get_extra_info("peername") or ("", 0)
        conn = _Conn(ConnectionInfo(next(self._ids), (str(peer[0]), int(peer[1]))), writer)
        try:
            if len(self._conns) >= self.config.max_connections or self._closing:
                writer.write(RtspResponse(503, headers=(("Connection", "close"),)).encode())
                return
            self._conns[conn.info.conn_id] = conn
            await self._read_loop(conn, reader)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:
            pass
        except Exception:  # a bug must cost one connection, never the server
            log.exception("RTSP connection %d failed", conn.info.conn_id)
        finally:
            self._conns.pop(conn.info.conn_id, None)
            for session_id in list(conn.sessions):
                session = self._sessions.get(session_id)
                if session is not None:
                    self._close_session(session, TeardownReason.CONNECTION_LOST)
            hook = getattr(self.keying, "on_connection_closed", None)  # optional hook
            if hook is not None:
                try:
                    hook(conn.info)
                except Exception:
                    log.exception("keying connection hook failed")
            writer.close()
            self._conn_tasks.discard(task)

    async def _read_loop(self, conn: _Conn, reader: asyncio.StreamReader) -> None:
        parser = RtspParser(self.config.limits)
        loop = asyncio.get_running_loop()
        partial_since: float | None = None
        while True:
            if partial_since is not None:
                timeout: float | None = partial_since + self.config.request_timeout - loop.time()
            elif not conn.sessions:
                timeout = self.config.idle_timeout
            else:
                timeout = None  # sessions have their own timeout
            try:
                data = await asyncio.wait_for(reader.read(65536), timeout)
            except TimeoutError:
                self.slow_closed += 1
                return
            if not data:
                return
            if partial_since is None:
                partial_since = loop.time()
            try:
                messages = parser.feed(data)
            except RtspParseError:
                self.malformed += 1
                bad = RtspResponse(400, headers=(("Connection", "close"),))
                conn.writer.write(bad.encode())
                await conn.writer.drain()
                return
            if not parser.pending:
                partial_since = None
            for message in messages:
                if isinstance(message, InterleavedFrame):
                    session = self._sessions.get(conn.channels.get(message.channel, ""))
                    if session is not None:
                        self._touch(session)
                    continue
                if isinstance(message, RtspResponse):
                    continue  # we send no requests; stray responses are ignored
                response = await self._answer(conn, message)
                conn.writer.write(response.encode())
                await conn.writer.drain()

    async def _answer(self, conn: _Conn, request: RtspRequest) -> RtspResponse:
        cseq = request.header("CSeq")
        base: tuple[tuple[str, str], ...] = (("Server", self.config.server_name),)
        if cseq is None or request.cseq is None:
            self.malformed += 1
            return RtspResponse(400, headers=base)
        base = (("CSeq", str(request.cseq)), *base)
        if request.version != "RTSP/1.0":
            return RtspResponse(505, headers=base)
        if request.header("Require") is not None:
            unsupported = request.header("Require") or ""
            return RtspResponse(551, headers=(*base, ("Unsupported", unsupported)))
        handler = self._handlers.get(request.method)
        if handler is None:
            return RtspResponse(501, headers=(*base, ("Public", PUBLIC_METHODS)))
        try:
            headers, body = await handler(self, conn, request)
        except _Reply as reply:
            return RtspResponse(reply.status, headers=(*base, *reply.headers))
        except RtspParseError:
            self.malformed += 1
            return RtspResponse(400, headers=base)
        except Exception:
            log.exception("RTSP %s handler failed", request.method)
            return RtspResponse(500, headers=base)
        return RtspResponse(200, headers=(*base, *headers), body=body)

    # -- helpers ----------------------------------------------------------------------------

    def _resolve(self, uri: str) -> tuple[str, bool]:
        """(source path, names the stream) for a request URI; 404 when unknown."""
        try:
            path = urlsplit(uri).path
        except ValueError:
            raise _Reply(StatusCode.BAD_REQUEST) from None
        path = "/" + path.strip("/")
        stream = False
        head, _, last = path.rpartition("/")
        if last == _CONTROL:
            path, stream = head or "/", True
        if path not in self._sources:
            raise _Reply(StatusCode.NOT_FOUND)
        return path, stream

    def _random(self, n: int) -> bytes:
        """``n`` bytes from the injected RNG (an RNG that returns another length is a bug)."""
        data = self._rng(n)
        if len(data) != n:
            raise RtspError("the random number generator returned the wrong length")
        return bytes(data)

    def _random_bits(self, bits: int) -> int:
        n = (bits + 7) // 8
        return int.from_bytes(self._random(n), "big") >> (8 * n - bits)

    def _new_session_id(self) -> str:
        """A fresh unguessable session id (RFC 2326 §12.37: at least eight octets)."""
        for _ in range(_SESSION_ID_ATTEMPTS):
            session_id = self._random(SESSION_ID_BYTES).hex()
            if session_id not in self._sessions:
                return session_id
        log.error("the random number generator keeps repeating session ids")
        raise _Reply(StatusCode.INTERNAL_SERVER_ERROR)

    def _lookup(self, request: RtspRequest) -> SessionContext:
        """The session the ``Session`` header names (RFC 2326 §12.37); 454 when unknown."""
        value = request.header("Session")
        if value is None:
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        session = self._sessions.get(SessionHeader.parse(value).session_id)
        if session is None:
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        return session

    def _session_of(self, request: RtspRequest) -> SessionContext:
        session = self._lookup(request)
        self._touch(session)
        return session

    @staticmethod
    def _owns(conn: _Conn, session: SessionContext) -> bool:
        """Whether ``conn`` is the connection that set ``session`` up (see module docstring)."""
        return session.connection.conn_id == conn.info.conn_id

    def _session_header(self, session: SessionContext) -> tuple[str, str]:
        timeout = max(1, math.ceil(self.config.session_timeout))
        return ("Session", SessionHeader(session.session_id, timeout).encode())

    def _touch(self, session: SessionContext) -> None:
        session.last_activity = asyncio.get_running_loop().time()

    def _control_url(self, request_uri: str, path: str) -> str:
        parts = urlsplit(request_uri)
        netloc = parts.netloc or f"{self.config.host}:{self.port}"
        return f"rtsp://{netloc}{path}/{_CONTROL}"

    # -- methods ----------------------------------------------------------------------------

    async def _options(self, conn: _Conn, request: RtspRequest) -> _Result:
        return [("Public", PUBLIC_METHODS)], b""

    async def _describe(self, conn: _Conn, request: RtspRequest) -> _Result:
        path, _ = self._resolve(request.uri)
        accept = request.header("Accept")
        if accept is not None and "application/sdp" not in accept.lower() and "*/*" not in accept:
            raise _Reply(StatusCode.NOT_ACCEPTABLE)
        ssrc = conn.ssrc_by_path.get(path)
        if ssrc is None:
            ssrc = conn.ssrc_by_path[path] = self._random_bits(32)
        media = MediaInfo(path, self._control_url(request.uri, path), ssrc)
        key_mgmt = None
        if self.keying is not None:
            try:
                key_mgmt = self.keying.describe_key_mgmt(conn.info, media)
            except RateLimited as busy:  # RFC 2326 §7.1.1 503, §12.31 Retry-After
                retry = ("Retry-After", str(max(1, busy.retry_after)))
                raise _Reply(StatusCode.SERVICE_UNAVAILABLE, (retry,)) from None
        base = self._control_url(request.uri, path).removesuffix(_CONTROL)
        try:
            sdp = self._sdp(path, key_mgmt)
        except SdpError:
            log.error("keying hook returned an invalid a=key-mgmt value")
            raise _Reply(StatusCode.INTERNAL_SERVER_ERROR) from None
        headers = [("Content-Base", base), ("Content-Type", "application/sdp")]
        return headers, sdp

    def _sdp(self, path: str, key_mgmt: str | None) -> bytes:
        host = self.config.host
        session = (
            SdpLine("v", "0"),
            SdpLine("o", f"- {self._random_bits(62)} 1 IN IP4 {host}"),
            SdpLine("s", path.strip("/") or "stream"),
            SdpLine("c", "IN IP4 0.0.0.0"),
            SdpLine("t", "0 0"),
            SdpLine("a", "control:*"),
            SdpLine("a", "range:npt=0-"),
        )
        lines = [SdpLine("a", "rtpmap:0 PCMU/8000"), SdpLine("a", f"control:{_CONTROL}")]
        if key_mgmt is not None:
            # the hook's value through the one a=key-mgmt codec (RFC 4567 §3.1)
            lines.append(KeyMgmtAttr.parse_value(key_mgmt).to_line())
        profile = "RTP/SAVP" if self.keying is not None else "RTP/AVP"
        media = MediaDescription.build("audio", 0, profile, ["0"], lines)
        return SessionDescription(session, (media,)).encode()

    def _choose_transport(self, request: RtspRequest) -> TransportSpec:
        value = request.header("Transport")
        if value is None:
            raise _Reply(StatusCode.UNSUPPORTED_TRANSPORT)
        try:
            specs = parse_transports(value)
        except RtspParseError:
            raise _Reply(StatusCode.UNSUPPORTED_TRANSPORT) from None
        want = "SAVP" if self.keying is not None else "AVP"
        for spec in specs:
            if spec.profile != want or not spec.unicast:
                continue
            if spec.mode is not None and spec.mode != "PLAY":
                continue
            if spec.lower == "UDP" and spec.client_port is None:
                continue
            return spec
        raise _Reply(StatusCode.UNSUPPORTED_TRANSPORT)

    async def _setup(self, conn: _Conn, request: RtspRequest) -> _Result:
        path, _ = self._resolve(request.uri)
        if request.header("Session") is not None:
            self._session_of(request)  # 454 when unknown
            raise _Reply(StatusCode.AGGREGATE_OPERATION_NOT_ALLOWED)  # one stream per session
        offer = self._choose_transport(request)
        if len(self._sessions) >= self.config.max_sessions:
            raise _Reply(StatusCode.SERVICE_UNAVAILABLE)
        ssrc = conn.ssrc_by_path.pop(path, None)
        if ssrc is None:
            ssrc = self._random_bits(32)
        media = MediaInfo(path, self._control_url(request.uri, path), ssrc)
        session_id = self._new_session_id()
        session = SessionContext(session_id, conn.info, media, offer)
        self._touch(session)
        extra: list[tuple[str, str]] = []
        try:
            if self.keying is not None:
                session._hook_seen = True
                try:
                    offers = tuple(
                        s for v in request.header_all("KeyMgmt") for s in parse_keymgmt(v)
                    )
                    reply = self.keying.on_setup_key_mgmt(session, offers)
                except (KeyMgmtFailure, KeyMgmtError):
                    self._close_session(session, TeardownReason.KEYING_FAILED)
                    raise _Reply(StatusCode.KEY_MANAGEMENT_FAILURE) from None
                if reply is not None:
                    extra.append(("KeyMgmt", reply))
            session.transport = await self._open_transport(conn, session, offer)
            session._packetizer = PcmuPacketizer(
                self._sources[path](),
                ssrc,
                sequence=self._random_bits(16),
                timestamp=self._random_bits(32),
            )
        except _Reply:
            raise
        except Exception:
            self._close_session(session, TeardownReason.SETUP_FAILED)
            raise
        self._sessions[session_id] = session
        conn.sessions.add(session_id)
        headers = [("Transport", session.transport.encode()), self._session_header(session)]
        return headers + extra, b""

    async def _open_transport(
        self, conn: _Conn, session: SessionContext, offer: TransportSpec
    ) -> TransportSpec:
        if offer.lower == "TCP":
            channels = offer.interleaved
            if channels is None:
                free = next(c for c in range(0, 255, 2) if c not in conn.channels)
                channels = (free, free + 1)
            if channels[0] in conn.channels or channels[1] in conn.channels:
                raise _Reply(StatusCode.UNSUPPORTED_TRANSPORT)
            conn.channels[channels[0]] = conn.channels[channels[1]] = session.session_id
            writer = conn.writer
            limit = self.config.max_write_buffer
            channel = channels[0]

            def send_tcp(packet: bytes) -> None:
                if writer.is_closing() or writer.transport.get_write_buffer_size() > limit:
                    raise BlockingIOError  # a slow reader loses packets, the server no memory
                writer.write(encode_interleaved(channel, packet))

            session._send = send_tcp
            return TransportSpec(
                offer.profile, "TCP", True, interleaved=channels, ssrc=session.ssrc, mode="PLAY"
            )
        assert offer.client_port is not None
        loop = asyncio.get_running_loop()
        rtp_sock, rtcp_sock = bind_rtp_pair(self.config.host)
        host = conn.info.peer[0]
        session._sockets.append(rtp_sock)
        rtcp, _ = await loop.create_datagram_endpoint(
            lambda: _Rtcp(lambda: self._touch(session), host), sock=rtcp_sock
        )
        session._udp.append(rtcp)
        # RFC 2326 §12.39: media goes to the requesting host only (no "destination" redirect).
        # RTP only leaves this socket: it is connected to the client's port (the kernel keeps
        # the route; no address to convert per packet) and sent on directly, non-blocking,
        # instead of through an asyncio transport, which costs microseconds per packet at
        # 50 packets/s/stream. A datagram the kernel will not take (full buffer, an ICMP error
        # from a gone client) raises OSError and is dropped and counted, as a router would.
        rtp_sock.connect((host, offer.client_port[0]))
        session._send = rtp_sock.send
        ports = (rtp_sock.getsockname()[1], rtcp_sock.getsockname()[1])
        return TransportSpec(
            offer.profile,
            "UDP",
            True,
            client_port=offer.client_port,
            server_port=ports,
            ssrc=session.ssrc,
            mode="PLAY",
        )

    async def _play(self, conn: _Conn, request: RtspRequest) -> _Result:
        session = self._session_of(request)
        pk = session._packetizer
        assert pk is not None
        if session.state is SessionState.READY:
            if session._protect is None and self.keying is not None:
                session._protect = self.keying.protector(session, session.ssrc)
            self._start_streaming(session)
        info = f"url={session.media.control};seq={pk.sequence};rtptime={pk.timestamp}"
        headers = [self._session_header(session), ("Range", "npt=0.000-"), ("RTP-Info", info)]
        return headers, b""

    def _start_streaming(self, session: SessionContext) -> None:
        pk, send = session._packetizer, session._send
        assert pk is not None and send is not None
        sender = _RtpSender(session, pk.next_packet, session._protect, send)
        session.state = SessionState.PLAYING
        session._play = self._pacer.add(sender.send_next)

    def _stop_streaming(self, session: SessionContext) -> None:
        if session._play is not None:
            session._play.cancel()
            session._play = None

    async def _pause(self, conn: _Conn, request: RtspRequest) -> _Result:
        session = self._session_of(request)
        if session.state is SessionState.PLAYING:
            self._stop_streaming(session)
            session.state = SessionState.READY
        return [self._session_header(session)], b""

    async def _teardown(self, conn: _Conn, request: RtspRequest) -> _Result:
        session = self._session_of(request)
        self._close_session(session, TeardownReason.TEARDOWN)
        return [], b""

    async def _get_parameter(self, conn: _Conn, request: RtspRequest) -> _Result:
        session = self._lookup(request) if request.header("Session") is not None else None
        wants_mikey = bool(request.body) and is_mikey_parameter_request(request.body)
        if session is not None and wants_mikey and not self._owns(conn, session):
            # Session binding: the keys of a session are revealed (and a server re-key started)
            # on its own connection only; elsewhere the answer of an unknown session (§12.37).
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        if session is not None:
            self._touch(session)
        headers = [self._session_header(session)] if session is not None else []
        if not request.body:
            return headers, b""
        if not wants_mikey:
            raise _Reply(StatusCode.PARAMETER_NOT_UNDERSTOOD, tuple(headers))
        if self.keying is None or session is None:
            raise _Reply(StatusCode.PARAMETER_NOT_UNDERSTOOD, tuple(headers))
        try:
            data = self.keying.on_get_parameter_mikey(session)
        except KeyMgmtFailure:
            raise _Reply(StatusCode.KEY_MANAGEMENT_FAILURE, tuple(headers)) from None
        headers.append(("Content-Type", "text/parameters"))
        return headers, format_mikey_parameter(data)

    async def _set_parameter(self, conn: _Conn, request: RtspRequest) -> _Result:
        session = self._lookup(request) if request.header("Session") is not None else None
        foreign = session is not None and not self._owns(conn, session)
        try:
            specs = parse_set_parameter_keying(request.body)
        except KeyMgmtError:
            if foreign:  # a keying body on another connection: as an unknown session (§12.37)
                raise _Reply(StatusCode.SESSION_NOT_FOUND) from None
            specs = None
        if session is not None and foreign and specs:
            self._foreign_rekey(conn, session, specs)  # 454 unless the owner came back
        if session is not None:
            self._touch(session)
        headers = [self._session_header(session)] if session is not None else []
        if specs is None:
            raise _Reply(StatusCode.KEY_MANAGEMENT_FAILURE, tuple(headers))
        if not specs:
            if request.body.strip():
                raise _Reply(StatusCode.PARAMETER_NOT_UNDERSTOOD, tuple(headers))
            return headers, b""
        if foreign:
            return headers, b""  # re-keyed by _foreign_rekey
        if self.keying is None or session is None:
            raise _Reply(StatusCode.PARAMETER_NOT_UNDERSTOOD, tuple(headers))
        try:
            self.keying.on_set_parameter_mikey(session, specs)
        except KeyMgmtFailure:
            raise _Reply(StatusCode.KEY_MANAGEMENT_FAILURE, tuple(headers)) from None
        return headers, b""

    def _foreign_rekey(
        self, conn: _Conn, session: SessionContext, specs: tuple[KeyMgmtSpec, ...]
    ) -> None:
        """A keying SET_PARAMETER on another connection than the session's: 454 unless the
        hook accepts it as the session's own identity coming back (see module docstring)."""
        hook = getattr(self.keying, "on_foreign_set_parameter_mikey", None)  # optional hook
        if hook is None:
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        try:
            hook(session, specs, conn.info)
        except (KeyMgmtFailure, KeyMgmtError):
            raise _Reply(StatusCode.SESSION_NOT_FOUND) from None

    _handlers: dict[str, Callable[[RtspServer, _Conn, RtspRequest], Awaitable[_Result]]] = {
        "OPTIONS": _options,
        "DESCRIBE": _describe,
        "SETUP": _setup,
        "PLAY": _play,
        "PAUSE": _pause,
        "TEARDOWN": _teardown,
        "GET_PARAMETER": _get_parameter,
        "SET_PARAMETER": _set_parameter,
    }

    # -- teardown ---------------------------------------------------------------------------

    def _close_session(self, session: SessionContext, reason: TeardownReason) -> None:
        if session.state is SessionState.CLOSED:
            return
        session.state = SessionState.CLOSED
        self._stop_streaming(session)
        for transport in session._udp:
            transport.close()
        session._udp.clear()
        for sock in session._sockets:
            sock.close()
        session._sockets.clear()
        session._send = None
        session._protect = None
        self._sessions.pop(session.session_id, None)
        conn = self._conns.get(session.connection.conn_id)
        if conn is not None:
            conn.sessions.discard(session.session_id)
            for channel in [c for c, s in conn.channels.items() if s == session.session_id]:
                del conn.channels[channel]
        if session._hook_seen and self.keying is not None:
            try:
                self.keying.on_teardown(session, reason)
            except Exception:
                log.exception("keying teardown hook failed")

    async def _reap_loop(self) -> None:
        timeout = self.config.session_timeout
        interval = self.config.reap_interval or min(1.0, timeout / 4)
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for session in list(self._sessions.values()):
                if now - session.last_activity > timeout:  # RFC 2326 §12.37
                    self._close_session(session, TeardownReason.TIMEOUT)


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
