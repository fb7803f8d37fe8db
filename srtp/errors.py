"""Exceptions raised by the :mod:`srtp` package.

Every error the package raises derives from :class:`SrtpError`. Messages never contain key
material; libsrtp failures carry the numeric ``srtp_err_status_t`` in
:attr:`SrtpStatusError.status`.
"""

from __future__ import annotations


class SrtpError(Exception):
    """Base of every exception raised by the srtp package."""


class LibsrtpUnavailableError(SrtpError):
    """The bundled libsrtp could not be loaded or lacks a required symbol."""


class UnsupportedPolicyError(SrtpError):
    """A Data SA policy libsrtp cannot apply (AES-F8, SEED, ARIA, kdr != 0, prefix, FEC, RCCm)."""


class KeyMaterialError(SrtpError):
    """Master key, salt or MKI of the wrong length, or a wiped (all-zero) key."""


class PacketSizeError(SrtpError):
    """A packet too short to be RTP/RTCP or too long for the context's buffer."""


class ContextClosedError(SrtpError):
    """The context was closed (its libsrtp session deallocated)."""


class KeyExpiredError(SrtpError):
    """The packet index lies outside the master key's <From, To> interval (RFC 3711 §8.1)."""


class SrtpStatusError(SrtpError):
    """libsrtp returned an error status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(f"{message} (libsrtp status {status})")
        self.status = status


class SrtpAuthenticationError(SrtpStatusError):
    """Authentication tag (or MKI) check failed on an incoming packet."""


class SrtpReplayError(SrtpStatusError):
    """Replayed or too old packet index (RFC 3711 §3.3.2)."""


class GsaError(SrtpError):
    """Base of GSA lifecycle errors."""


class GsaStateError(GsaError):
    """An input not allowed in the GSA's current state (the transition table has no entry)."""


class UnknownGsaError(GsaError):
    """No GSA is registered under the given signalling-context key."""
