"""Exceptions raised by the :mod:`sdp` package.

Every error the package raises derives from :class:`SdpError`; it is no SIP or RTSP error, so a
user of either glue meets the same type for the same malformed body. Messages name the cause and
never quote key-mgmt data (a MIKEY message may carry keys under NULL encryption).
"""

from __future__ import annotations

__all__ = ["KeyMgmtDataError", "SdpError", "SdpLimitError"]


class SdpError(Exception):
    """Base of every exception raised by the sdp package: malformed text or an invalid value."""


class SdpLimitError(SdpError):
    """A size bound of the codec (body bytes, lines, media sections, key-mgmt data) was exceeded."""


class KeyMgmtDataError(SdpError):
    """A malformed ``a=key-mgmt`` attribute: its prtcl-id or its base64 data (RFC 4567 §3.1)."""
