"""The binder-facing hook types of the SIP user agent.

:class:`OfferAnswerHandler` is what a keying binder (``sipglue.keying``) implements; the UA awaits
it for every offer (UAS), answer (UAC) and call ending. :class:`TerminationReason` names why a
call ended. ``sipglue.ua`` re-exports every name here.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from .message import SipUri
from .sdp import SessionDescription

if TYPE_CHECKING:
    from .ua import Call

__all__ = [
    "IdentifiedHandler",
    "IncomingHandler",
    "OfferAnswerHandler",
    "TerminationReason",
]


class TerminationReason(enum.IntEnum):
    LOCAL_BYE = 1
    REMOTE_BYE = 2
    CANCELLED = 3
    TIMEOUT = 4
    TRANSPORT_LOST = 5
    REJECTED = 6  # non-2xx final response, or the offer/answer handler refused
    ANSWER_REFUSED = 7  # UAC on_answer raised: ACK then BYE
    SHUTDOWN = 8


class OfferAnswerHandler(Protocol):
    """Hooks for the keying binder (sipglue.keying)."""

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        """UAS: answer an offer, or raise Rejected(488|606, warning, body)."""

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        """UAC: accept an answer; raising makes the UAC ACK and then BYE."""

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        """The call ended (tear down its keys)."""


IncomingHandler = Callable[["Call"], Awaitable[int]]


class IdentifiedHandler(Protocol):
    """An offer/answer handler that knows the address-of-record it speaks for.

    :class:`~sipglue.keying.MikeyCallKeying` is one: its MIKEY identity, when that is a SIP URI.
    """

    def local_aor(self) -> SipUri | None:
        """The AOR this endpoint's keys are bound to, or ``None``."""
