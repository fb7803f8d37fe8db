"""Exceptions raised by the :mod:`mikey` package.

Every error the package raises derives from :class:`MikeyError`. Protocol refusals carry the
RFC 3830 §6.12 error number so a responder can build the ERR payload and the signalling glue can
map it to SIP 488/606 or RTSP 463. Messages never contain key material.
"""

from __future__ import annotations

from .registry import ErrorNo


class MikeyError(Exception):
    """Base of every exception raised by the mikey package."""

    error_no: ErrorNo = ErrorNo.UNSPECIFIED

    def __init__(self, message: str, *, error_no: ErrorNo | None = None) -> None:
        super().__init__(message)
        if error_no is not None:
            self.error_no = error_no


class DecodeError(MikeyError):
    """Malformed MIKEY bytes: says what was wrong and at which byte offset."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        text = message if offset is None else f"{message} (at byte {offset})"
        super().__init__(text, error_no=ErrorNo.UNSPECIFIED)


class EncodeError(MikeyError):
    """A message object that cannot be put on the wire (a field out of range)."""


class ProtocolError(MikeyError):
    """The message is well-formed but violates the exchange's rules."""


class AuthenticationError(ProtocolError):
    """MAC, signature, decryption or padding failure. Deliberately uninformative (no oracle)."""

    error_no = ErrorNo.AUTH_FAILURE

    def __init__(self, message: str = "authentication failed") -> None:
        super().__init__(message)


class TimestampError(ProtocolError):
    """Timestamp outside the accepted window, or not newer than the last one seen."""

    error_no = ErrorNo.INVALID_TS


class ReplayError(TimestampError):
    """A message already seen within the replay window."""


class PolicyError(ProtocolError):
    """The offer asks for something local policy does not accept."""

    error_no = ErrorNo.INVALID_SP


class IdentityError(ProtocolError):
    """Unknown or unacceptable identity."""

    error_no = ErrorNo.INVALID_ID


class CertificateError(ProtocolError):
    """Certificate missing, untrusted, expired or unusable."""

    error_no = ErrorNo.INVALID_CERT


def reason(exc: MikeyError) -> str:
    """One sentence for the *local* user naming why an exchange was refused (what a peer sees
    is only the error number). Every authentication failure reads the same, whatever failed (MAC,
    signature, decryption, padding): no oracle, even locally."""
    if isinstance(exc, AuthenticationError):
        return (
            "authentication failed: the MAC, signature or key envelope did not verify "
            "(a wrong key or credentials, or a modified message)"
        )
    text = str(exc) or type(exc).__name__
    if isinstance(exc, ReplayError):
        return f"{text} (the message was already processed)"
    return text


class StateError(MikeyError):
    """An operation called in a state where it is not allowed (a programming error)."""


class PeerError(ProtocolError):
    """The peer answered with a MIKEY error message (ERR payloads)."""

    def __init__(self, message: str, errors: tuple[ErrorNo, ...], *, authenticated: bool) -> None:
        super().__init__(message, error_no=errors[0] if errors else ErrorNo.UNSPECIFIED)
        self.errors = errors
        self.authenticated = authenticated
