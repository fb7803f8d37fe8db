"""SRTP data path: MIKEY Data SA entries -> live libsrtp contexts, and the GSA lifecycle.

:mod:`srtp.context` builds per-SSRC :class:`OutboundStream` / :class:`InboundStream` objects from
:class:`mikey.keying.DataSaEntry`; :mod:`srtp.gsa` groups them per signalling context and owns
their teardown (:class:`GsaRegistry`). libsrtp is reached through :mod:`srtp._libsrtp`, a ctypes
shim over the copy pylibsrtp bundles.
"""

from __future__ import annotations

from .context import InboundStream, OutboundStream, crypto_policies, streams_for
from .errors import (
    ContextClosedError,
    GsaError,
    GsaStateError,
    KeyExpiredError,
    KeyMaterialError,
    LibsrtpUnavailableError,
    PacketSizeError,
    SrtpAuthenticationError,
    SrtpError,
    SrtpReplayError,
    SrtpStatusError,
    UnknownGsaError,
    UnsupportedPolicyError,
)
from .gsa import (
    AuditReport,
    Gsa,
    GsaConfig,
    GsaEstablished,
    GsaEvent,
    GsaInput,
    GsaRegistry,
    GsaRekeyCompleted,
    GsaRekeyed,
    GsaState,
    GsaStore,
    GsaTornDown,
    InMemoryGsaStore,
    TeardownReason,
)

__all__ = [
    "AuditReport",
    "ContextClosedError",
    "Gsa",
    "GsaConfig",
    "GsaError",
    "GsaEstablished",
    "GsaEvent",
    "GsaInput",
    "GsaRegistry",
    "GsaRekeyCompleted",
    "GsaRekeyed",
    "GsaState",
    "GsaStateError",
    "GsaStore",
    "GsaTornDown",
    "InMemoryGsaStore",
    "InboundStream",
    "KeyExpiredError",
    "KeyMaterialError",
    "LibsrtpUnavailableError",
    "OutboundStream",
    "PacketSizeError",
    "SrtpAuthenticationError",
    "SrtpError",
    "SrtpReplayError",
    "SrtpStatusError",
    "TeardownReason",
    "UnknownGsaError",
    "UnsupportedPolicyError",
    "crypto_policies",
    "streams_for",
]
