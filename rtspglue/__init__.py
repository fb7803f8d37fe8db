"""RTSP 1.0 glue for MIKEY-keyed SRTP audio (RFC 2326, RFC 4567 KeyMgmt).

Layers: :mod:`.message` (codec), :mod:`.keymgmt` (KeyMgmt header and MIKEY parameter bodies;
SDP and ``a=key-mgmt`` are the :mod:`sdp` package's), :mod:`.media` (PCMU RTP), :mod:`.hooks`
(the keying hook types), :mod:`.core` (the sans-IO server core), :mod:`.server` (its asyncio
shell) and :mod:`.client`. No cryptography here: keys enter through ``ServerKeying`` /
``ClientKeying``.
"""

from __future__ import annotations

from .client import ClientKeying, DescribedMedia, RtspClient, SetupResult
from .core import ServerCore, SessionStateError
from .errors import (
    KeyMgmtError,
    KeyMgmtFailure,
    MediaError,
    RateLimited,
    RtspConnectionError,
    RtspError,
    RtspLimitError,
    RtspParseError,
    RtspStatusError,
)
from .keymgmt import KeyMgmtSpec, format_keymgmt, parse_keymgmt
from .message import (
    InterleavedFrame,
    Limits,
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    StatusCode,
    TransportSpec,
)
from .server import (
    ConnectionInfo,
    MediaInfo,
    RtspServer,
    ServerConfig,
    ServerKeying,
    SessionContext,
    SessionState,
    TeardownReason,
)

__all__ = [
    "ClientKeying",
    "ConnectionInfo",
    "DescribedMedia",
    "InterleavedFrame",
    "KeyMgmtError",
    "KeyMgmtFailure",
    "KeyMgmtSpec",
    "Limits",
    "MediaError",
    "MediaInfo",
    "RateLimited",
    "RtspClient",
    "RtspConnectionError",
    "RtspError",
    "RtspLimitError",
    "RtspParseError",
    "RtspParser",
    "RtspRequest",
    "RtspResponse",
    "RtspServer",
    "RtspStatusError",
    "ServerConfig",
    "ServerCore",
    "ServerKeying",
    "SessionContext",
    "SessionHeader",
    "SessionState",
    "SessionStateError",
    "SetupResult",
    "StatusCode",
    "TeardownReason",
    "TransportSpec",
    "format_keymgmt",
    "parse_keymgmt",
]
