"""RTSP 1.0 glue for MIKEY-keyed SRTP audio (RFC 2326, RFC 4567 KeyMgmt).

Layers: :mod:`.message` (codec), :mod:`.keymgmt` (KeyMgmt header and MIKEY parameter bodies),
:mod:`.media` (PCMU RTP), :mod:`.server` / :mod:`.client` (asyncio shells with keying hooks).
No cryptography here: keys enter through ``ServerKeying`` / ``ClientKeying``.
"""

from __future__ import annotations

from .client import ClientKeying, DescribedMedia, RtspClient, SetupResult
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
    "ServerKeying",
    "SessionContext",
    "SessionHeader",
    "SessionState",
    "SetupResult",
    "StatusCode",
    "TeardownReason",
    "TransportSpec",
    "format_keymgmt",
    "parse_keymgmt",
]
