"""An RTSP server core driven in memory, on a clock the test advances.

:class:`RtspPair` is one :class:`~rtspglue.core.ServerCore` and any number of client
connections (:class:`Client`). A client's request is encoded and fed to the core as bytes, the
core's effects are carried out at once: responses are parsed back into the client's inbox,
:class:`~rtspglue.core.OpenUdp` gets fake server ports (``udp_ports`` then ``+2`` each time; or
a refusal, when ``refuse_udp`` is set), streaming and socket effects are recorded.
``advance(dt)`` steps the fake clock from deadline to deadline, so every timer fires at its exact
time. The keying hook, when given, is called by the core as in the real server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from rtspglue.core import (
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
from rtspglue.hooks import ServerKeying, SessionContext
from rtspglue.media import ToneSource
from rtspglue.message import RtspParser, RtspRequest, RtspResponse, SessionHeader


@dataclass(eq=False)
class Client:
    """One client TCP connection to the core."""

    pair: RtspPair
    conn_id: int
    inbox: list[RtspResponse] = field(default_factory=list)
    closed: bool = False
    cseq: int = 0
    parser: RtspParser = field(default_factory=RtspParser)
    session_id: str | None = None

    def send_bytes(self, data: bytes) -> None:
        """Raw bytes on the connection."""
        self.pair.run(self.pair.core.receive_data(self.conn_id, data, self.pair.now))

    def request(
        self,
        method: str,
        path: str = "/tone",
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
        *,
        session: bool = True,
    ) -> RtspResponse:
        """Send one request and return its response (the session header added when known)."""
        self.cseq += 1
        extra = list(headers)
        if session and self.session_id is not None and not any(h[0] == "Session" for h in extra):
            extra.append(("Session", self.session_id))
        uri = f"rtsp://127.0.0.1:554{path}"
        request = RtspRequest(method, uri, (("CSeq", str(self.cseq)), *extra), body)
        before = len(self.inbox)
        self.send_bytes(request.encode())
        assert len(self.inbox) == before + 1, f"{method}: no single response"
        return self.inbox[-1]

    def setup(self, *, tcp: bool = False, headers: tuple[tuple[str, str], ...] = ()) -> str:
        """SETUP the stream (UDP client ports 5000-5001 or TCP interleaved); the session id."""
        profile = "RTP/SAVP" if self.pair.core.keying is not None else "RTP/AVP"
        transport = (
            f"{profile}/TCP;unicast;interleaved=0-1"
            if tcp
            else f"{profile};unicast;client_port=5000-5001"
        )
        response = self.request(
            "SETUP", "/tone/stream=0", (("Transport", transport), *headers), session=False
        )
        assert response.status == 200, response.status
        value = response.header("Session")
        assert value is not None
        self.session_id = SessionHeader.parse(value).session_id
        return self.session_id

    def lose(self) -> None:
        """The connection drops."""
        self.closed = True
        self.pair.run(self.pair.core.connection_lost(self.conn_id, self.pair.now))


class RtspPair:
    """A :class:`ServerCore` with a fake clock and in-memory clients."""

    def __init__(
        self,
        *,
        config: CoreConfig | None = None,
        keying: ServerKeying | None = None,
        seed: int = 2326,
    ) -> None:
        rng = random.Random(seed)
        self.now = 0.0
        self.core = ServerCore(
            {"/tone": lambda: ToneSource(440)},
            config=config or CoreConfig(),
            keying=keying,
            rng=rng.randbytes,
        )
        self.core.port = 554
        self.clients: dict[int, Client] = {}
        self.udp_ports = 6000
        self.refuse_udp = False
        self.streaming: set[str] = set()
        self.released: list[str] = []
        self.log: list[tuple[float, Effect]] = []

    def connect(self, peer: tuple[str, int] = ("127.0.0.1", 40000)) -> Client:
        """A new client connection (refused ones come back closed, their 503 in the inbox)."""
        info, effects = self.core.connection_made(peer, self.now)
        client = Client(self, info.conn_id)
        self.clients[info.conn_id] = client
        self.run(effects)
        return client

    def run(self, effects: list[Effect]) -> None:
        """Carry out effects as the shell would, in order."""
        queue = list(effects)
        while queue:
            effect = queue.pop(0)
            self.log.append((self.now, effect))
            if isinstance(effect, SendResponse):
                client = self.clients[effect.conn_id]
                for message in client.parser.feed(effect.response.encode()):
                    assert isinstance(message, RtspResponse)
                    client.inbox.append(message)
            elif isinstance(effect, CloseConnection):
                self.clients[effect.conn_id].closed = True
            elif isinstance(effect, StartStreaming):
                self.streaming.add(effect.session.session_id)
            elif isinstance(effect, StopStreaming):
                self.streaming.discard(effect.session.session_id)
            elif isinstance(effect, ReleaseMedia):
                self.streaming.discard(effect.session.session_id)
                self.released.append(effect.session.session_id)
            elif isinstance(effect, OpenUdp):
                queue[:0] = self._open(effect)

    def _open(self, effect: OpenUdp) -> list[Effect]:
        if self.refuse_udp:
            return self.core.udp_failed(effect.session, self.now)
        ports = (self.udp_ports, self.udp_ports + 1)
        self.udp_ports += 2
        return self.core.udp_opened(effect.session, ports, self.now)

    def advance(self, dt: float) -> None:
        """Move the clock ``dt`` seconds on, firing every deadline at its exact time."""
        end = self.now + dt
        while (deadline := self.core.next_deadline()) is not None and deadline <= end:
            self.now = max(self.now, deadline)
            self.run(self.core.handle_timer(self.now))
        self.now = end

    def session(self, session_id: str) -> SessionContext:
        """A live session of the core."""
        return self.core.sessions[session_id]
