"""The hook types where MIKEY and SRTP plug into the RTSP server and client (RFC 4567 §3.2).

The binder (:mod:`rtspglue.keying`) implements :class:`ServerKeying` and :class:`ClientKeying`
against these types only; the server core (:mod:`rtspglue.core`) and the asyncio shells
(:mod:`rtspglue.server`, :mod:`rtspglue.client`) call them. Every hook call is synchronous.
:mod:`rtspglue.server` and :mod:`rtspglue.client` re-export these names.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from mikey.keying import TeardownReason

from .keymgmt import KeyMgmtSpec
from .media import PCMU_PAYLOAD_TYPE
from .message import TransportSpec

if TYPE_CHECKING:
    import asyncio
    import socket

    from .media import PacedStream, PcmuPacketizer

__all__ = [
    "ClientKeying",
    "ConnectionInfo",
    "MediaInfo",
    "ServerKeying",
    "SessionContext",
    "SessionState",
    "TeardownReason",
]


class SessionState(enum.Enum):
    """RTSP server session states (RFC 2326 Appendix A.2)."""

    READY = "ready"
    PLAYING = "playing"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """One client TCP connection."""

    conn_id: int
    peer: tuple[str, int]


@dataclass(frozen=True, slots=True)
class MediaInfo:
    """The single audio stream of a presentation, as described and set up."""

    path: str
    control: str
    ssrc: int
    payload_type: int = PCMU_PAYLOAD_TYPE
    encoding: str = "PCMU/8000"


@dataclass(eq=False, slots=True)
class SessionContext:
    """A live RTSP session. ``keying_state`` is free for the keying hook's own use."""

    session_id: str
    connection: ConnectionInfo
    media: MediaInfo
    transport: TransportSpec
    state: SessionState = SessionState.READY
    keying_state: object = None
    last_activity: float = 0.0
    packets_sent: int = 0
    packets_dropped: int = 0
    _packetizer: PcmuPacketizer | None = field(default=None, repr=False)
    _send: Callable[[bytes], object] | None = field(default=None, repr=False)  # OSError: dropped
    _protect: Callable[[bytes], bytes] | None = field(default=None, repr=False)
    _play: PacedStream | None = field(default=None, repr=False)
    _udp: list[asyncio.DatagramTransport] = field(default_factory=list, repr=False)
    _sockets: list[socket.socket] = field(default_factory=list, repr=False)
    _hook_seen: bool = field(default=False, repr=False)

    @property
    def ssrc(self) -> int:
        """The SSRC of the stream sent in this session."""
        return self.media.ssrc


class ServerKeying(Protocol):
    """Where MIKEY and SRTP plug into the server. Implemented by ``rtspglue.keying``.

    Optional, looked up by name: ``on_foreign_set_parameter_mikey(session, specs, connection)``
    for a keying SET_PARAMETER that arrives on another connection than the session's (raise
    :class:`KeyMgmtFailure` to refuse; the server answers 454 either way it fails, see the module
    docstring). ``describe_key_mgmt`` may raise :class:`RateLimited` (503 with Retry-After).
    """

    def describe_key_mgmt(self, connection: ConnectionInfo, media: MediaInfo) -> str | None:
        """The ``a=key-mgmt`` value (``"mikey <base64>"``) for DESCRIBE, or None."""
        ...

    def on_setup_key_mgmt(
        self, session: SessionContext, offers: tuple[KeyMgmtSpec, ...]
    ) -> str | None:
        """Handle SETUP's KeyMgmt specs; return the KeyMgmt reply value or None.

        Raise :class:`KeyMgmtFailure` to refuse (463, session discarded).
        """
        ...

    def on_set_parameter_mikey(
        self, session: SessionContext, specs: tuple[KeyMgmtSpec, ...]
    ) -> None:
        """A re-key in SET_PARAMETER (ONVIF ``mikey:`` or GStreamer ``KeyMgmt:`` body)."""
        ...

    def on_get_parameter_mikey(self, session: SessionContext) -> bytes:
        """The MIKEY message answering GET_PARAMETER ``mikey`` (ONVIF)."""
        ...

    def protector(self, session: SessionContext, ssrc: int) -> Callable[[bytes], bytes]:
        """A function turning each outgoing RTP packet into the packet to send (SRTP)."""
        ...

    def on_teardown(self, session: SessionContext, reason: TeardownReason) -> None:
        """The session ended; called exactly once per session the hook has seen."""
        ...

    def on_connection_closed(self, connection: ConnectionInfo) -> None:
        """A connection ended: drop keying state bound to it (e.g. a DESCRIBE without SETUP)."""
        ...


class ClientKeying(Protocol):
    """Where MIKEY and SRTP plug into the client. Implemented by ``rtspglue.keying``."""

    def setup_key_mgmt(self, control: str, offered: tuple[KeyMgmtSpec, ...]) -> bytes | None:
        """The MIKEY message to send in SETUP's KeyMgmt for media ``control``, or None.

        ``offered`` holds the DESCRIBE ``a=key-mgmt`` messages that apply to the media (server
        keys: answer them); when empty, the hook may send its own I_MESSAGE (client keys).
        """
        ...

    def on_setup_reply(self, keymgmt: tuple[KeyMgmtSpec, ...], ssrc: int | None) -> None:
        """SETUP succeeded: the server's KeyMgmt values (maybe none) and its stream SSRC."""
        ...

    def unprotector(self, ssrc: int | None) -> Callable[[bytes], bytes]:
        """A function turning each received packet into plain RTP; raise to drop it."""
        ...

    def on_teardown(self, reason: TeardownReason) -> None:
        """The client session ended; called exactly once after a successful SETUP."""
        ...
