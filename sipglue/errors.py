"""Exceptions raised by the :mod:`sipglue` package.

Every error of the package's own derives from :class:`SipError`; a malformed SDP body raises the
:mod:`sdp` package's :class:`SdpError` (re-exported here), and an offer the answerer declines
:class:`SdpNegotiationError`, which is both. Parsing errors never quote more
than a short, sanitised excerpt of the input (SDP bodies may carry key material).
"""

from __future__ import annotations

from sdp.errors import SdpError

__all__ = [
    "CallError",
    "DialogError",
    "Rejected",
    "SdpError",
    "SdpNegotiationError",
    "SipError",
    "SipParseError",
    "TransactionError",
    "TransportError",
]


class SipError(Exception):
    """Base of every exception raised by the sipglue package."""


# SdpError is the sdp package's own error (a malformed body is no SIP error), re-exported here
# so that ``except SdpError`` in sipglue and its users keeps catching what the codec raises.
# Only the offer/answer refusal below is SIP-side: it carries the status code to answer with.


class SdpNegotiationError(SdpError, SipError):
    """The answerer declines an offer (RFC 3264 §6); carries the SIP status to send."""

    def __init__(self, message: str, *, status_code: int = 488) -> None:
        super().__init__(message)
        self.status_code = status_code


class SipParseError(SipError):
    """A malformed or over-sized SIP message, header or URI."""


class TransactionError(SipError):
    """An input a transaction state machine cannot accept in its current state."""


class DialogError(SipError):
    """A request or response that does not fit the dialog it was given to."""


class TransportError(SipError):
    """A transport could not send or is closed."""


class CallError(SipError):
    """A call failed: a non-2xx final response, a timeout, or a local refusal.

    ``warning`` is the warn-text of the refusing response's Warning header (RFC 3261 §20.43),
    when it carried one: the peer's words, for the local user.
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, warning: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.warning = warning


class Rejected(SipError):
    """Raised by an offer/answer handler to refuse an offer with 488 or 606 (RFC 4567 §3.1)."""

    def __init__(
        self, status_code: int = 488, warning: str | None = None, body: bytes | None = None
    ) -> None:
        if status_code not in (488, 606):
            raise SipError("Rejected status must be 488 or 606")
        super().__init__(f"offer rejected with {status_code}")
        self.status_code = status_code
        self.warning = warning
        self.body = body
