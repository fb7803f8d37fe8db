"""The binder-facing hook types of the SIP user agent.

:class:`OfferAnswerHandler` is what a keying binder (``sipglue.keying``) implements; the UA awaits
it for every offer (UAS), answer (UAC) and call ending. :class:`TerminationReason` names why a
call ended. ``sipglue.ua`` re-exports every name here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from mikey.keying import TeardownReason

from .message import SipUri
from .sdp import SessionDescription

# The call type the UA hands to its hooks (``sipglue.ua.Call``): a parameter, so that this module
# needs nothing of the shell that uses it.
_Call_contra = TypeVar("_Call_contra", contravariant=True)

__all__ = [
    "IdentifiedHandler",
    "IncomingHandler",
    "OfferAnswerHandler",
    "TerminationReason",
]


#: Why a call ended: the shared vocabulary (``mikey.keying.TeardownReason``), under the UA's name.
TerminationReason = TeardownReason


class OfferAnswerHandler(Protocol[_Call_contra]):
    """Hooks for the keying binder (sipglue.keying), over the UA's call type."""

    async def on_offer(self, call: _Call_contra, offer: SessionDescription) -> SessionDescription:
        """UAS: answer an offer, or raise Rejected(488|606, warning, body)."""

    async def on_answer(self, call: _Call_contra, answer: SessionDescription) -> None:
        """UAC: accept an answer; raising makes the UAC ACK and then BYE."""

    async def on_terminated(self, call: _Call_contra, reason: TerminationReason) -> None:
        """The call ended (tear down its keys)."""


#: the incoming-call hook: decides the provisional/final status for a new call
IncomingHandler = Callable[[_Call_contra], Awaitable[int]]


class IdentifiedHandler(Protocol):
    """An offer/answer handler that knows the address-of-record it speaks for.

    :class:`~sipglue.keying.MikeyCallKeying` is one: its MIKEY identity, when that is a SIP URI.
    """

    def local_aor(self) -> SipUri | None:
        """The AOR this endpoint's keys are bound to, or ``None``."""
