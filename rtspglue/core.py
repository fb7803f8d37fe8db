"""The sans-IO core of the RTSP 1.0 server (RFC 2326): requests in, effects out.

:class:`ServerCore` owns the connections (their parsers), the session table, the session
binding rules and every timer. It never touches a socket, a task or the clock: each input
(``connection_made``, ``receive_data``/``receive``, ``udp_opened``/``udp_failed``, ``touch``,
``handle_timer``, ``connection_lost``, ``close``) takes the caller's ``now`` and returns a list
of effects that the shell (:mod:`rtspglue.server`) carries out in order: :class:`SendResponse`,
:class:`CloseConnection`, :class:`OpenUdp` (bind a port pair, then report back),
:class:`StartStreaming`, :class:`StopStreaming` and :class:`ReleaseMedia`. The keying hooks
(:class:`~rtspglue.hooks.ServerKeying`) are called synchronously from inside the inputs.

Sessions (RFC 2326 §3.4, Appendix A.2) move only through ``_SESSION_TABLE``::

    READY --PLAY--> PLAYING --PAUSE--> READY      (PLAY when PLAYING, PAUSE when READY: no-ops)
    READY | PLAYING --CLOSE--> CLOSED            (anything else: SessionStateError)

Every path to CLOSED (TEARDOWN, timeout, connection loss, shutdown, refused keying, failed
setup) goes through ``_close_session``, which emits StopStreaming and ReleaseMedia and calls
``ServerKeying.on_teardown`` exactly once for every session a hook has seen; a CLOSED session is
out of the table and never leaves CLOSED.

Requests on one connection are answered in order: while a UDP SETUP waits for its ports
(:class:`OpenUdp`), later requests of that connection queue behind it.

Timers: a session ends ``session_timeout`` after its last activity (RFC 2326 §12.37); a
connection with a partial request is closed ``request_timeout`` after that request's first
byte (slow-drip bound), one without sessions ``idle_timeout`` after its last input or its last
session's end; a UDP SETUP whose ports do not come ``setup_timeout`` after it is answered 500.
Deadlines sit on one heap, pushed whenever an input may have moved one; an entry
whose deadline is no longer its object's current one is stale and re-pushed or dropped.
Invariants: ``next_deadline()`` is the earliest live deadline and ``handle_timer(now)`` fires
every deadline ``<= now``.

Hostile peers: any exception in a request's handling answers 500 and closes the session that
request created or names on its own connection (SETUP_FAILED); new connections are bounded per
source (a token bucket, and a cap on those held), each limit counted in ``counters``.

Session binding (see :mod:`rtspglue.server`): keying requests on another connection than the
session's answer 454, exactly as an unknown session does (RFC 2326 §12.37, §11.3.5).
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from mikey.ratelimit import SourceRateLimiter, source_key
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
from .media import AudioSource, PcmuPacketizer
from .message import (
    InterleavedFrame,
    Limits,
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    StatusCode,
    TransportSpec,
    parse_transports,
)

__all__ = [
    "PUBLIC_METHODS",
    "SESSION_ID_BYTES",
    "CloseConnection",
    "CoreConfig",
    "Effect",
    "OpenUdp",
    "ReleaseMedia",
    "SendResponse",
    "ServerCore",
    "SessionInput",
    "SessionStateError",
    "StartStreaming",
    "StopStreaming",
]

log = logging.getLogger("rtspglue.server")

PUBLIC_METHODS = "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"
CONTROL = "stream=0"
#: random bytes in a session id (96 bits, sent as 24 hex digits; RFC 2326 §12.37 asks for >= 8)
SESSION_ID_BYTES = 12
_SESSION_ID_ATTEMPTS = 8
#: how much of a peer-supplied method a log line carries
_EXCERPT = 32


def _excerpt(text: str) -> str:
    """A bounded, printable excerpt of peer-supplied text for a log line."""
    clean = "".join(c if c.isprintable() and c != "\\" else "?" for c in text[:_EXCERPT])
    return clean + ("..." if len(text) > _EXCERPT else "")


Rng = Callable[[int], bytes]


class SessionInput(enum.Enum):
    """What can happen to a session."""

    PLAY = "play"
    PAUSE = "pause"
    CLOSE = "close"


_R, _P, _C = SessionState.READY, SessionState.PLAYING, SessionState.CLOSED
_SESSION_TABLE: dict[tuple[SessionState, SessionInput], SessionState] = {
    (_R, SessionInput.PLAY): _P,  # RFC 2326 §10.5
    (_P, SessionInput.PLAY): _P,  # a repeated PLAY changes nothing
    (_R, SessionInput.PAUSE): _R,  # RFC 2326 §10.6: PAUSE in READY is no error
    (_P, SessionInput.PAUSE): _R,
    (_R, SessionInput.CLOSE): _C,
    (_P, SessionInput.CLOSE): _C,
}


class SessionStateError(RtspError):
    """A session input its current state does not accept (not in the session table)."""


def step(session: SessionContext, inp: SessionInput) -> SessionState:
    """Move ``session`` by the table; a pair not in it raises :class:`SessionStateError`."""
    new = _SESSION_TABLE.get((session.state, inp))
    if new is None:
        raise SessionStateError(f"session in {session.state.value} cannot take {inp.value}")
    session.state = new
    return new


# -- effects --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendResponse:
    """Write ``response`` on connection ``conn_id`` (then drain it)."""

    conn_id: int
    response: RtspResponse


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Close connection ``conn_id`` (after what was sent before on it)."""

    conn_id: int


@dataclass(frozen=True, slots=True)
class OpenUdp:
    """Bind an RTP/RTCP port pair for ``session`` with RTP connected to ``(host, client_port)``;
    report the local ports with :meth:`ServerCore.udp_opened` (or :meth:`ServerCore.udp_failed`)."""

    session: SessionContext
    host: str
    client_port: int


@dataclass(frozen=True, slots=True)
class StartStreaming:
    """Start pacing ``session``'s RTP (its packetizer and protector are set)."""

    session: SessionContext


@dataclass(frozen=True, slots=True)
class StopStreaming:
    """Stop pacing ``session``'s RTP."""

    session: SessionContext


@dataclass(frozen=True, slots=True)
class ReleaseMedia:
    """Close ``session``'s media sockets and forget its send path."""

    session: SessionContext


Effect = SendResponse | CloseConnection | OpenUdp | StartStreaming | StopStreaming | ReleaseMedia


@dataclass(frozen=True, slots=True)
class CoreConfig:
    """What the core needs; :class:`~rtspglue.server.ServerConfig` extends it with the shell's
    own settings (port, pacing, write buffer)."""

    host: str = "127.0.0.1"
    session_timeout: float = 60.0
    max_sessions: int = 64
    max_connections: int = 256
    limits: Limits = field(default_factory=Limits)
    server_name: str = "rtspglue"
    #: a request must be complete this long after its first byte (slow-drip / slowloris bound)
    request_timeout: float = 4.0
    #: a connection without a session that sends nothing for this long is closed
    idle_timeout: float = 30.0
    #: new connections one source (address, or IPv6 /64) may open at once (``None``: half of
    #: ``max_connections``, at least 16)
    source_burst: int | None = None
    #: ... refilled at this many per second (``None``: ``source_burst`` per second)
    source_rate: float | None = None
    #: connections one source may hold at once (``None``: half of ``max_connections``)
    max_connections_per_source: int | None = None
    #: a SETUP waiting for its UDP ports longer than this is answered 500 (RFC 2326 §7.1.1)
    setup_timeout: float = 10.0


class _Reply(Exception):
    """Internal control flow: answer the request with this status."""

    def __init__(self, status: int, headers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers


@dataclass(eq=False, slots=True)
class _PendingSetup:
    session: SessionContext
    offer: TransportSpec
    base: tuple[tuple[str, str], ...]
    extra: list[tuple[str, str]]
    since: float = 0.0


@dataclass(eq=False, slots=True)
class _Conn:
    info: ConnectionInfo
    parser: RtspParser
    idle_since: float
    partial_since: float | None = None
    ssrc_by_path: dict[str, int] = field(default_factory=dict)
    sessions: set[str] = field(default_factory=set)
    channels: dict[int, str] = field(default_factory=dict)
    backlog: deque[RtspRequest | InterleavedFrame] = field(default_factory=deque)
    waiting: _PendingSetup | None = None


_Result = tuple[list[tuple[str, str]], bytes]
_Handler = Callable[["ServerCore", _Conn, RtspRequest, float, list[Effect]], "_Result | None"]


class ServerCore:
    """The RTSP server's protocol logic; see the module docstring for inputs and effects."""

    def __init__(
        self,
        sources: Mapping[str, Callable[[], AudioSource]],
        *,
        config: CoreConfig,
        keying: ServerKeying | None,
        rng: Rng,
    ) -> None:
        self.config = config
        self.keying = keying
        self._rng = rng
        self._sources = {"/" + p.strip("/"): f for p, f in sources.items()}
        self.sessions: dict[str, SessionContext] = {}
        self.connections: dict[int, _Conn] = {}
        self._ids = itertools.count(1)
        self._heap: list[tuple[float, int, int, str]] = []
        #: the deadline of each object's live heap entry (at most one per object)
        self._armed: dict[tuple[int, str], float] = {}
        self._seq = itertools.count()
        self._earlier = False
        self.closing = False
        #: the TCP port listened on (set by the shell; used in URLs without a host)
        self.port = 0
        self.malformed = 0
        self.slow_closed = 0
        half = max(1, config.max_connections // 2)
        burst = config.source_burst if config.source_burst is not None else max(16, half)
        rate = config.source_rate if config.source_rate is not None else float(burst)
        #: the per-source budget for new connections (a token bucket per address or /64)
        self.source_budget = SourceRateLimiter(rate, burst)
        self.max_per_source = (
            config.max_connections_per_source
            if config.max_connections_per_source is not None
            else half
        )
        self._per_source: dict[str, int] = {}
        #: how often each limit bit, and failed handlers
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "source_limited",  # a new connection over its source's budget: 503, closed
                "source_full",  # a source holds max_connections_per_source: 503, closed
                "connections_full",  # max_connections reached: 503, closed
                "handler_failed",  # a request's handling raised: 500
                "setup_expired",  # a UDP SETUP's ports never came: 500
            ),
            0,
        )
        self._biting: set[str] = set()
        #: the session the request being answered created (closed if its handler fails)
        self._created: SessionContext | None = None

    # -- timers -------------------------------------------------------------------------------

    def _deadline_of(self, conn_id: int, session_id: str) -> float | None:
        if session_id:
            session = self.sessions.get(session_id)
            if session is None:
                return None
            return session.last_activity + self.config.session_timeout  # RFC 2326 §12.37
        conn = self.connections.get(conn_id)
        if conn is None:
            return None
        if conn.waiting is not None:
            return conn.waiting.since + self.config.setup_timeout
        if conn.partial_since is not None:
            return conn.partial_since + self.config.request_timeout
        if not conn.sessions:
            return conn.idle_since + self.config.idle_timeout
        return None

    def _arm(self, conn_id: int, session_id: str = "") -> None:
        deadline = self._deadline_of(conn_id, session_id)
        if deadline is None:
            return
        key = (conn_id, session_id)
        armed = self._armed.get(key)
        if armed is not None and armed <= deadline:
            return  # the entry on the heap fires first and is re-pushed at the current deadline
        if not self._heap or deadline < self._heap[0][0]:
            self._earlier = True
        self._armed[key] = deadline
        heapq.heappush(self._heap, (deadline, next(self._seq), conn_id, session_id))

    def take_deadline_moved(self) -> bool:
        """True (once) when an input armed a deadline earlier than every one before it."""
        earlier, self._earlier = self._earlier, False
        return earlier

    def next_deadline(self) -> float | None:
        """The earliest live deadline, or None."""
        heap, armed = self._heap, self._armed
        while heap:
            deadline, _, conn_id, session_id = heap[0]
            current = self._deadline_of(conn_id, session_id)
            if current == deadline:
                return deadline
            heapq.heappop(heap)
            key = (conn_id, session_id)
            if armed.get(key) == deadline:  # this was the object's one entry: move it
                del armed[key]
                if current is not None:
                    armed[key] = current
                    heapq.heappush(heap, (current, next(self._seq), conn_id, session_id))
        return None

    def handle_timer(self, now: float) -> list[Effect]:
        """Fire every deadline ``<= now``: reap sessions, close slow and idle connections."""
        out: list[Effect] = []
        while (deadline := self.next_deadline()) is not None and deadline <= now:
            _, _, conn_id, session_id = heapq.heappop(self._heap)
            self._armed.pop((conn_id, session_id), None)
            if session_id:
                session = self.sessions.get(session_id)
                if session is not None:  # RFC 2326 §12.37: the session timed out
                    self._close_session(session, TeardownReason.TIMEOUT, now, out)
                continue
            conn = self.connections.get(conn_id)
            if conn is not None and conn.waiting is not None:
                self._bite("setup_expired", "RTSP: a SETUP's UDP ports did not come in time")
                out += self.udp_failed(conn.waiting.session, now)
            elif conn is not None:
                self.slow_closed += 1
                self._drop_connection(conn, now, out)
                out.append(CloseConnection(conn_id))
        return out

    # -- connections --------------------------------------------------------------------------

    def connection_made(
        self, peer: tuple[str, int], now: float
    ) -> tuple[ConnectionInfo, list[Effect]]:
        """A new TCP connection; over the limit or while closing it gets 503 and is closed."""
        info = ConnectionInfo(next(self._ids), peer)
        if self.closing or self._refuse(peer[0], now):
            busy = RtspResponse(503, headers=(("Connection", "close"),))
            return info, [SendResponse(info.conn_id, busy), CloseConnection(info.conn_id)]
        conn = _Conn(info, RtspParser(self.config.limits), now)
        self.connections[info.conn_id] = conn
        key = source_key(peer[0])
        self._per_source[key] = self._per_source.get(key, 0) + 1
        self._arm(info.conn_id)
        return info, []

    def _bite(self, limit: str, line: str, *args: object) -> None:
        """Count ``limit``; log ``line`` once per episode (until the limit lets one through)."""
        self.counters[limit] += 1
        if limit not in self._biting:
            self._biting.add(limit)
            log.warning(line, *args)

    def _refuse(self, host: str, now: float) -> bool:
        """Whether a new connection from ``host`` is over a limit (each counted, logged once)."""
        if len(self.connections) >= self.config.max_connections:
            self._bite(
                "connections_full", "RTSP: connection table full (%d)", len(self.connections)
            )
            return True
        self._biting.discard("connections_full")
        key = source_key(host)
        if self._per_source.get(key, 0) >= self.max_per_source:
            self._bite(
                "source_full", "RTSP: a source holds its %d connections", self.max_per_source
            )
            return True
        self._biting.discard("source_full")
        wait, first = self.source_budget.take(host, now)
        if wait > 0.0:
            self.counters["source_limited"] += 1
            if first:
                log.warning("RTSP: source %s over its connection budget", _excerpt(key))
            return True
        return False

    def connection_lost(self, conn_id: int, now: float) -> list[Effect]:
        """The connection is gone: its sessions end (CONNECTION_LOST), the hook is told."""
        out: list[Effect] = []
        conn = self.connections.get(conn_id)
        if conn is not None:
            self._drop_connection(conn, now, out)
        return out

    def _drop_connection(self, conn: _Conn, now: float, out: list[Effect]) -> None:
        if self.connections.pop(conn.info.conn_id, None) is not None:
            key = source_key(conn.info.peer[0])
            left = self._per_source.get(key, 0) - 1
            if left > 0:
                self._per_source[key] = left
            else:
                self._per_source.pop(key, None)
        conn.backlog.clear()
        pending, conn.waiting = conn.waiting, None
        if pending is not None:
            self._close_session(pending.session, TeardownReason.CONNECTION_LOST, now, out)
        for session_id in list(conn.sessions):
            session = self.sessions.get(session_id)
            if session is not None:
                self._close_session(session, TeardownReason.CONNECTION_LOST, now, out)
        hook = getattr(self.keying, "on_connection_closed", None)  # optional hook
        if hook is not None:
            try:
                hook(conn.info)
            except Exception:
                log.exception("keying connection hook failed")

    def close(self, now: float) -> list[Effect]:
        """Shutdown: every session ends (SHUTDOWN) and every connection is closed."""
        self.closing = True
        out: list[Effect] = []
        for session in list(self.sessions.values()):
            self._close_session(session, TeardownReason.SHUTDOWN, now, out)
        for conn in list(self.connections.values()):
            pending, conn.waiting = conn.waiting, None
            if pending is not None:
                self._close_session(pending.session, TeardownReason.SHUTDOWN, now, out)
            out.append(CloseConnection(conn.info.conn_id))
        return out

    def receive_data(self, conn_id: int, data: bytes, now: float) -> list[Effect]:
        """Bytes from a connection: frame them (RFC 2326 §4, §10.12) and answer the requests.

        A malformed byte stream gets 400 and the connection is closed (an RTSP stream cannot
        be resynchronised).
        """
        out: list[Effect] = []
        conn = self.connections.get(conn_id)
        if conn is None or not data:
            return out
        conn.idle_since = now
        if conn.partial_since is None:
            conn.partial_since = now
        try:
            messages = conn.parser.feed(data)
        except RtspParseError:
            self.malformed += 1
            bad = RtspResponse(400, headers=(("Connection", "close"),))
            out.append(SendResponse(conn_id, bad))
            self._drop_connection(conn, now, out)
            out.append(CloseConnection(conn_id))
            return out
        if not conn.parser.pending:
            conn.partial_since = None
        for message in messages:
            if isinstance(message, RtspRequest | InterleavedFrame):
                conn.backlog.append(message)
            # we send no requests: a stray response is ignored
        self._run_backlog(conn, now, out)
        self._arm(conn_id)
        return out

    def receive(self, conn_id: int, request: RtspRequest, now: float) -> list[Effect]:
        """One parsed request from a connection (answered after any queued before it)."""
        out: list[Effect] = []
        conn = self.connections.get(conn_id)
        if conn is None:
            return out
        conn.idle_since = now
        conn.backlog.append(request)
        self._run_backlog(conn, now, out)
        self._arm(conn_id)
        return out

    def touch(self, session: SessionContext, now: float) -> None:
        """Session activity that is no request (RTCP, an interleaved frame from the client)."""
        session.last_activity = now

    def _run_backlog(self, conn: _Conn, now: float, out: list[Effect]) -> None:
        while conn.backlog and conn.waiting is None and conn.info.conn_id in self.connections:
            message = conn.backlog.popleft()
            if isinstance(message, InterleavedFrame):
                session = self.sessions.get(conn.channels.get(message.channel, ""))
                if session is not None:
                    self.touch(session, now)
                continue
            response = self._answer_guarded(conn, message, now, out)
            if response is not None:
                out.append(SendResponse(conn.info.conn_id, response))

    # -- UDP transport set-up -------------------------------------------------------------------

    def udp_opened(
        self, session: SessionContext, server_ports: tuple[int, int], now: float
    ) -> list[Effect]:
        """The shell bound ``server_ports`` for an :class:`OpenUdp`: answer its SETUP."""
        out: list[Effect] = []
        conn = self.connections.get(session.connection.conn_id)
        pending = conn.waiting if conn is not None else None
        if conn is None or pending is None or pending.session is not session:
            if session.state is not SessionState.CLOSED:  # its connection is gone meanwhile
                self._close_session(session, TeardownReason.CONNECTION_LOST, now, out)
            else:
                out.append(ReleaseMedia(session))
            return out
        conn.waiting = None
        offer = pending.offer
        session.transport = TransportSpec(
            offer.profile,
            "UDP",
            True,
            client_port=offer.client_port,
            server_port=server_ports,
            ssrc=session.ssrc,
            mode="PLAY",
        )
        try:
            headers, _ = self._finish_setup(conn, session, pending.extra, now, out)
        except Exception:
            log.exception("RTSP SETUP handler failed")
            out.append(SendResponse(conn.info.conn_id, RtspResponse(500, headers=pending.base)))
        else:
            response = RtspResponse(200, headers=(*pending.base, *headers))
            out.append(SendResponse(conn.info.conn_id, response))
        self._run_backlog(conn, now, out)
        self._arm(conn.info.conn_id)
        return out

    def udp_failed(self, session: SessionContext, now: float) -> list[Effect]:
        """The shell could not open an :class:`OpenUdp`'s ports: 500, the session ends."""
        out: list[Effect] = []
        conn = self.connections.get(session.connection.conn_id)
        pending = conn.waiting if conn is not None else None
        self._close_session(session, TeardownReason.SETUP_FAILED, now, out)
        if conn is None or pending is None or pending.session is not session:
            return out
        conn.waiting = None
        out.append(SendResponse(conn.info.conn_id, RtspResponse(500, headers=pending.base)))
        self._run_backlog(conn, now, out)
        self._arm(conn.info.conn_id)
        return out

    # -- request dispatch ---------------------------------------------------------------------

    def _answer_guarded(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> RtspResponse | None:
        """Answer one request; any exception in its handling answers 500 (RFC 2326 §7.1.1).

        The session the request created, or the one it names on its own connection, is closed
        (SETUP_FAILED: its keys are torn down by ``on_teardown``); a session of another
        connection is left alone, so a request cannot end someone else's session. One log line:
        the method excerpt and the exception's type, no peer text, no key material.
        """
        self._created = None
        try:
            return self._answer(conn, request, now, out)
        except Exception as exc:
            self.counters["handler_failed"] += 1
            log.warning(
                "RTSP %s handler failed (%s); answered 500",
                _excerpt(request.method),
                type(exc).__name__,
            )
            victims = [self._created] if self._created is not None else []
            try:
                named = self.sessions.get(
                    SessionHeader.parse(request.header("Session") or "").session_id
                )
            except Exception:
                named = None
            if named is not None and self._owns(conn, named):
                victims.append(named)
            for session in victims:
                if conn.waiting is not None and conn.waiting.session is session:
                    continue  # its SETUP is answered when the UDP ports come (or time out)
                self._close_session(session, TeardownReason.SETUP_FAILED, now, out)
            headers: tuple[tuple[str, str], ...] = (("Server", self.config.server_name),)
            if request.cseq is not None:
                headers = (("CSeq", str(request.cseq)), *headers)
            return RtspResponse(500, headers=headers)
        finally:
            self._created = None

    def _answer(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> RtspResponse | None:
        base: tuple[tuple[str, str], ...] = (("Server", self.config.server_name),)
        if request.header("CSeq") is None or request.cseq is None:  # RFC 2326 §12.17
            self.malformed += 1
            return RtspResponse(400, headers=base)
        base = (("CSeq", str(request.cseq)), *base)
        if request.version != "RTSP/1.0":  # RFC 2326 §11.5.3
            return RtspResponse(505, headers=base)
        if request.header("Require") is not None:  # RFC 2326 §12.32: we support no option
            unsupported = request.header("Require") or ""
            return RtspResponse(551, headers=(*base, ("Unsupported", unsupported)))
        handler = self._handlers.get(request.method)
        if handler is None:  # RFC 2326 §11.5.1
            return RtspResponse(501, headers=(*base, ("Public", PUBLIC_METHODS)))
        try:
            result = handler(self, conn, request, now, out)
        except _Reply as reply:
            return RtspResponse(reply.status, headers=(*base, *reply.headers))
        except RtspParseError:
            self.malformed += 1
            return RtspResponse(400, headers=base)
        if result is None:  # SETUP waits for its UDP ports
            assert conn.waiting is not None
            conn.waiting.base = base
            return None
        headers, body = result
        return RtspResponse(200, headers=(*base, *headers), body=body)

    # -- helpers --------------------------------------------------------------------------------

    def _resolve(self, uri: str) -> tuple[str, bool]:
        """(source path, names the stream) for a request URI; 404 when unknown."""
        try:
            path = urlsplit(uri).path
        except ValueError:
            raise _Reply(StatusCode.BAD_REQUEST) from None
        path = "/" + path.strip("/")
        stream = False
        head, _, last = path.rpartition("/")
        if last == CONTROL:
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
            if session_id not in self.sessions:
                return session_id
        log.error("the random number generator keeps repeating session ids")
        raise _Reply(StatusCode.INTERNAL_SERVER_ERROR)

    def _lookup(self, request: RtspRequest) -> SessionContext:
        """The session the ``Session`` header names (RFC 2326 §12.37); 454 when unknown."""
        value = request.header("Session")
        if value is None:
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        session = self.sessions.get(SessionHeader.parse(value).session_id)
        if session is None:
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        return session

    def _session_of(self, request: RtspRequest, now: float) -> SessionContext:
        session = self._lookup(request)
        self.touch(session, now)
        return session

    @staticmethod
    def _owns(conn: _Conn, session: SessionContext) -> bool:
        """Whether ``conn`` is the connection that set ``session`` up (session binding)."""
        return session.connection.conn_id == conn.info.conn_id

    def _session_header(self, session: SessionContext) -> tuple[str, str]:
        timeout = max(1, math.ceil(self.config.session_timeout))
        return ("Session", SessionHeader(session.session_id, timeout).encode())

    def _control_url(self, request_uri: str, path: str) -> str:
        parts = urlsplit(request_uri)
        netloc = parts.netloc or f"{self.config.host}:{self.port}"
        return f"rtsp://{netloc}{path}/{CONTROL}"

    # -- methods --------------------------------------------------------------------------------

    def _options(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        return [("Public", PUBLIC_METHODS)], b""

    def _describe(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
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
        base = self._control_url(request.uri, path).removesuffix(CONTROL)
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
        lines = [SdpLine("a", "rtpmap:0 PCMU/8000"), SdpLine("a", f"control:{CONTROL}")]
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
        for spec in specs:  # RFC 2326 §12.39: the first acceptable one, in client order
            if spec.profile != want or not spec.unicast:
                continue
            if spec.mode is not None and spec.mode != "PLAY":
                continue
            if spec.lower == "UDP" and spec.client_port is None:
                continue
            return spec
        raise _Reply(StatusCode.UNSUPPORTED_TRANSPORT)

    def _setup(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        path, _ = self._resolve(request.uri)
        if request.header("Session") is not None:
            self._session_of(request, now)  # 454 when unknown
            raise _Reply(StatusCode.AGGREGATE_OPERATION_NOT_ALLOWED)  # one stream per session
        offer = self._choose_transport(request)
        if len(self.sessions) >= self.config.max_sessions:
            raise _Reply(StatusCode.SERVICE_UNAVAILABLE)
        ssrc = conn.ssrc_by_path.pop(path, None)
        if ssrc is None:
            ssrc = self._random_bits(32)
        media = MediaInfo(path, self._control_url(request.uri, path), ssrc)
        session_id = self._new_session_id()
        session = SessionContext(session_id, conn.info, media, offer)
        session.last_activity = now
        self._created = session
        extra: list[tuple[str, str]] = []
        if self.keying is not None:
            session._hook_seen = True
            try:
                offers = tuple(s for v in request.header_all("KeyMgmt") for s in parse_keymgmt(v))
                reply = self.keying.on_setup_key_mgmt(session, offers)
            except (KeyMgmtFailure, KeyMgmtError):  # RFC 4567 §3.2: 463
                self._close_session(session, TeardownReason.KEYING_FAILED, now, out)
                raise _Reply(StatusCode.KEY_MANAGEMENT_FAILURE) from None
            except Exception:
                self._close_session(session, TeardownReason.SETUP_FAILED, now, out)
                raise
            if reply is not None:
                extra.append(("KeyMgmt", reply))
        if offer.lower == "TCP":
            try:
                session.transport = self._interleave(conn, session, offer)
            except _Reply:
                self._close_session(session, TeardownReason.SETUP_FAILED, now, out)
                raise
            return self._finish_setup(conn, session, extra, now, out)
        assert offer.client_port is not None
        # RFC 2326 §12.39: media goes to the requesting host only (no "destination" redirect)
        conn.waiting = _PendingSetup(session, offer, (), extra, now)
        out.append(OpenUdp(session, conn.info.peer[0], offer.client_port[0]))
        return None

    def _interleave(
        self, conn: _Conn, session: SessionContext, offer: TransportSpec
    ) -> TransportSpec:
        """Channels for RTP and RTCP over the RTSP connection (RFC 2326 §10.12, §12.39)."""
        channels = offer.interleaved
        if channels is None:
            free = next(c for c in range(0, 255, 2) if c not in conn.channels)
            channels = (free, free + 1)
        if channels[0] in conn.channels or channels[1] in conn.channels:
            raise _Reply(StatusCode.UNSUPPORTED_TRANSPORT)
        conn.channels[channels[0]] = conn.channels[channels[1]] = session.session_id
        return TransportSpec(
            offer.profile, "TCP", True, interleaved=channels, ssrc=session.ssrc, mode="PLAY"
        )

    def _finish_setup(
        self,
        conn: _Conn,
        session: SessionContext,
        extra: list[tuple[str, str]],
        now: float,
        out: list[Effect],
    ) -> _Result:
        try:
            session._packetizer = PcmuPacketizer(
                self._sources[session.media.path](),
                session.ssrc,
                sequence=self._random_bits(16),
                timestamp=self._random_bits(32),
            )
        except Exception:
            self._close_session(session, TeardownReason.SETUP_FAILED, now, out)
            raise
        self.sessions[session.session_id] = session
        conn.sessions.add(session.session_id)
        self._arm(0, session.session_id)
        headers = [("Transport", session.transport.encode()), self._session_header(session)]
        return headers + extra, b""

    def _play(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        session = self._session_of(request, now)
        pk = session._packetizer
        assert pk is not None
        if session.state is SessionState.READY:
            if session._protect is None and self.keying is not None:
                session._protect = self.keying.protector(session, session.ssrc)
            step(session, SessionInput.PLAY)
            out.append(StartStreaming(session))
        else:
            step(session, SessionInput.PLAY)
        info = f"url={session.media.control};seq={pk.sequence};rtptime={pk.timestamp}"
        headers = [self._session_header(session), ("Range", "npt=0.000-"), ("RTP-Info", info)]
        return headers, b""

    def _pause(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        session = self._session_of(request, now)
        if session.state is SessionState.PLAYING:
            out.append(StopStreaming(session))
        step(session, SessionInput.PAUSE)
        return [self._session_header(session)], b""

    def _teardown(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        session = self._session_of(request, now)
        self._close_session(session, TeardownReason.TEARDOWN, now, out)
        return [], b""

    def _get_parameter(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        session = self._lookup(request) if request.header("Session") is not None else None
        wants_mikey = bool(request.body) and is_mikey_parameter_request(request.body)
        if session is not None and wants_mikey and not self._owns(conn, session):
            # Session binding: the keys of a session are revealed (and a server re-key started)
            # on its own connection only; elsewhere the answer of an unknown session (§12.37).
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        if session is not None:
            self.touch(session, now)
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

    def _set_parameter(
        self, conn: _Conn, request: RtspRequest, now: float, out: list[Effect]
    ) -> _Result | None:
        session = self._lookup(request) if request.header("Session") is not None else None
        foreign = session is not None and not self._owns(conn, session)
        try:
            specs: tuple[KeyMgmtSpec, ...] | None = parse_set_parameter_keying(request.body)
        except KeyMgmtError:
            if foreign:  # a keying body on another connection: as an unknown session (§12.37)
                raise _Reply(StatusCode.SESSION_NOT_FOUND) from None
            specs = None
        if session is not None and foreign and specs:
            self._foreign_rekey(conn, session, specs)  # 454 unless the owner came back
        if session is not None:
            self.touch(session, now)
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
        hook accepts it as the session's own identity coming back (session binding)."""
        hook = getattr(self.keying, "on_foreign_set_parameter_mikey", None)  # optional hook
        if hook is None:
            raise _Reply(StatusCode.SESSION_NOT_FOUND)
        try:
            hook(session, specs, conn.info)
        except (KeyMgmtFailure, KeyMgmtError):
            raise _Reply(StatusCode.SESSION_NOT_FOUND) from None

    _handlers: dict[str, _Handler] = {
        "OPTIONS": _options,
        "DESCRIBE": _describe,
        "SETUP": _setup,
        "PLAY": _play,
        "PAUSE": _pause,
        "TEARDOWN": _teardown,
        "GET_PARAMETER": _get_parameter,
        "SET_PARAMETER": _set_parameter,
    }

    # -- teardown -------------------------------------------------------------------------------

    def _close_session(
        self, session: SessionContext, reason: TeardownReason, now: float, out: list[Effect]
    ) -> None:
        if session.state is SessionState.CLOSED:
            return  # every path to CLOSED ends here once
        was_playing = session.state is SessionState.PLAYING
        step(session, SessionInput.CLOSE)
        if was_playing:
            out.append(StopStreaming(session))
        out.append(ReleaseMedia(session))
        session._protect = None
        self.sessions.pop(session.session_id, None)
        conn = self.connections.get(session.connection.conn_id)
        if conn is not None:
            conn.sessions.discard(session.session_id)
            for channel in [c for c, s in conn.channels.items() if s == session.session_id]:
                del conn.channels[channel]
            if not conn.sessions:
                conn.idle_since = now  # the idle timer starts again
                self._arm(conn.info.conn_id)
        if session._hook_seen and self.keying is not None:
            try:
                self.keying.on_teardown(session, reason)
            except Exception:
                log.exception("keying teardown hook failed")
