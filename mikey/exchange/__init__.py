"""MIKEY key exchanges (RFC 3830 §3, RFC 4650, RFC 4738) as small sans-IO state machines.

An :class:`Endpoint` is one party: its immutable :class:`ExchangeConfig`, its randomness, and the
state its exchanges share (replay cache, crypto session bundles). Each exchange has two roles.
The :class:`Initiator` builds the I_MESSAGE (``start``), then processes the answer
(``finish``); the :class:`Responder` processes an I_MESSAGE and builds the R_MESSAGE or an error
message in one call (``respond``). Time (``now``, Unix seconds) and randomness
(``rng(n) -> bytes``) are passed in, so every exchange is reproducible; nothing here does I/O.

The modes are one table (:mod:`.modes`): each is an authentication (MAC or SIGN, :mod:`.auth`)
and a key transport (PSK KEMAC, envelope, DH, RSA-R, :mod:`.keys`). The roles' receive
pipelines are written out in :mod:`.initiator` and :mod:`.responder`; the state tables in
:mod:`.machine`; every memo in :mod:`.memo`. An exchange that fails leaves no keys behind, and a
responder's result is staged until :meth:`Endpoint.commit` records its CSB.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..codec import SecurityPolicy
from ..keying import SrtpPolicy
from ..policy import SpStyle
from ..policy import sp_from_policy as _sp_from_policy
from .config import (
    ANY_INITIATOR,
    ExchangeCompleted,
    ExchangeConfig,
    ExchangeRefused,
    Rng,
    StreamSpec,
)
from .endpoint import CsbTable, Endpoint, EndpointOwner
from .initiator import Initiator
from .machine import Input, State
from .modes import INIT_TYPE, MODE_OF_INIT, MODE_OF_RESP, MODES, RESP_TYPE, ModeSpec
from .profiles import PROFILE_HELP, PeerProfile, apply_profile
from .responder import Responder
from .wire import RAND_LENGTH

__all__ = [
    "ANY_INITIATOR",
    "INIT_TYPE",
    "MODES",
    "MODE_OF_INIT",
    "MODE_OF_RESP",
    "PROFILE_HELP",
    "RAND_LENGTH",
    "RESP_TYPE",
    "CsbTable",
    "Endpoint",
    "EndpointOwner",
    "ExchangeCompleted",
    "ExchangeConfig",
    "ExchangeRefused",
    "Initiator",
    "Input",
    "ModeSpec",
    "PeerProfile",
    "Responder",
    "Rng",
    "State",
    "StreamSpec",
    "apply_profile",
    "offer_streams",
    "sp_from_policy",
]


def sp_from_policy(
    policy: SrtpPolicy, policy_no: int, style: SpStyle = SpStyle.FULL
) -> SecurityPolicy:
    """The SP payload offering ``policy`` (for callers building offers by hand)."""
    return _sp_from_policy(policy, policy_no, style=style)


def offer_streams(ssrcs: Sequence[int], policy_no: int = 0) -> tuple[StreamSpec, ...]:
    """Stream specs for a list of SSRCs (ROC 0, one policy)."""
    return tuple(StreamSpec(ssrc, 0, policy_no) for ssrc in ssrcs)
