"""sipglue: SDP offer/answer (RFC 3264, on :mod:`sdp`), SIP codec, transactions, dialogs, a UA.

No cryptography lives here; the keying binder (``sipglue.keying``) plugs into
:class:`~sipglue.hooks.OfferAnswerHandler` (re-exported by ``sipglue.ua``). The UA is a
sans-IO core (``sipglue.core``) under an asyncio shell (``sipglue.ua``).
"""

from __future__ import annotations

from .errors import (
    CallError,
    DialogError,
    Rejected,
    SdpError,
    SdpNegotiationError,
    SipError,
    SipParseError,
    TransactionError,
    TransportError,
)
from .sdp import KeyMgmtAttr, MediaDescription, SessionDescription

__all__ = [
    "CallError",
    "DialogError",
    "KeyMgmtAttr",
    "MediaDescription",
    "Rejected",
    "SdpError",
    "SdpNegotiationError",
    "SessionDescription",
    "SipError",
    "SipParseError",
    "TransactionError",
    "TransportError",
]
