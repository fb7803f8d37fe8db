"""Exceptions raised by the :mod:`rtspglue` package.

Every error the package raises derives from :class:`RtspError`. Parse errors never quote key
material: a malformed ``KeyMgmt`` value is reported by position and kind, never echoed.
"""

from __future__ import annotations


class RtspError(Exception):
    """Base of every exception raised by the rtspglue package."""


class RtspParseError(RtspError):
    """Malformed RTSP text or framing (RFC 2326 §4-§6)."""


class RtspLimitError(RtspParseError):
    """A configured size limit (header block, line count, body, frame) was exceeded."""


class KeyMgmtError(RtspParseError):
    """A malformed ``KeyMgmt`` header, ``a=key-mgmt`` value or ``mikey:`` parameter (RFC 4567)."""


class KeyMgmtFailure(RtspError):
    """Raised by a keying hook to refuse a key exchange; the server answers 463 (RFC 4567 §3.2).

    ``detail`` is the sentence naming the MIKEY cause, for the local user only (never sent)."""

    def __init__(self, message: str, *, detail: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail


class RateLimited(RtspError):
    """Raised by a keying hook that will not build a costly message now; the server answers
    ``503 Service Unavailable`` with ``Retry-After: retry_after`` (RFC 2326 §7.1.1, §12.31)."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"rate limited; retry after {retry_after} s")
        self.retry_after = retry_after


class MediaError(RtspError):
    """Malformed RTP packet, unsupported audio file or invalid media parameter."""


class RtspStatusError(RtspError):
    """The peer answered a request with a non-2xx status."""

    def __init__(self, status: int, reason: str, method: str) -> None:
        super().__init__(f"{method} failed: {status} {reason}")
        self.status = status
        self.reason = reason
        self.method = method


class RtspConnectionError(RtspError):
    """The RTSP connection was lost, refused or timed out."""
