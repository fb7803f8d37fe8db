"""One party's MIKEY state: configuration, randomness, replay cache and crypto session bundles.

An :class:`Endpoint` (one per UA, server or client) is the single owner of what exchanges
accumulate. Exchanges read it; only two things write it:

* the replay cache remembers every *authenticated* message the moment it is authenticated
  (so a replay is refused even when the glue later drops the session);
* the CSB table changes only through :meth:`Endpoint.commit` (a responder's staged result became
  a live session) and :meth:`Endpoint.forget` (the session ended). A result the glue cannot use
  goes to :meth:`Endpoint.discard`, which wipes it; nothing of it was recorded.

So a session refused anywhere after the exchange (SDP, SRTP, a closed connection) leaves no
CSB entry behind, and the glue never frees keys by hand.
"""

from __future__ import annotations

from collections import OrderedDict

from ..keying import KeyingResult, Role
from ..replay import ReplayGuard
from .config import ExchangeConfig, Rng

__all__ = ["CsbTable", "Endpoint", "EndpointOwner"]


class CsbTable:
    """Crypto session bundles a responder has keyed: owner identity, RAND and last T.

    Bounded (oldest entries dropped first); a rekey for a CSB ID must come from the same peer
    identity and carry a newer timestamp (RFC 3830 §4.5, RFC 4046 §4.2).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[int, tuple[str | None, bytes, int]] = OrderedDict()

    def get(self, csb_id: int) -> tuple[str | None, bytes, int] | None:
        """(owner identity, RAND, last T as an integer) of a known CSB, or None."""
        return self._entries.get(csb_id)

    def put(self, csb_id: int, peer: str | None, rand: bytes, t: int) -> None:
        self._entries[csb_id] = (peer, rand, t)
        self._entries.move_to_end(csb_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, csb_id: int) -> None:
        self._entries.pop(csb_id, None)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, csb_id: object) -> bool:
        return csb_id in self._entries


class Endpoint:
    """A MIKEY party: its immutable configuration and the state its exchanges share.

    ``rng(n) -> bytes`` is the randomness every exchange of this endpoint draws from (the shells
    pass the operating system's); ``replay`` and ``csbs`` default to fresh, bounded tables.
    """

    __slots__ = ("config", "csbs", "replay", "rng")

    def __init__(
        self,
        config: ExchangeConfig,
        rng: Rng,
        *,
        replay: ReplayGuard | None = None,
        csbs: CsbTable | None = None,
    ) -> None:
        self.config = config
        self.rng = rng
        self.replay = replay if replay is not None else ReplayGuard()
        self.csbs = csbs if csbs is not None else CsbTable()

    def with_config(self, config: ExchangeConfig) -> Endpoint:
        """The same party (same replay cache and CSBs) under another configuration, e.g. a
        per-call expected peer identity."""
        return Endpoint(config, self.rng, replay=self.replay, csbs=self.csbs)

    def commit(self, result: KeyingResult) -> None:
        """A responder's staged result now keys a live session: remember its CSB (owner, RAND,
        T) so that only its owner can rekey it (RFC 3830 §4.5). Initiator results record
        nothing."""
        reg = result.registration
        if reg.role is Role.RESPONDER:
            self.csbs.put(
                reg.csb_id, reg.initiator_id, reg.rand, int.from_bytes(reg.t_initiator, "big")
            )

    def discard(self, result: KeyingResult | None) -> None:
        """A result that will key nothing: wipe its keys (nothing of it was recorded)."""
        if result is not None:
            result.wipe()

    def forget(self, csb_id: int) -> None:
        """The session keyed by ``csb_id`` ended: its CSB can no longer be rekeyed."""
        self.csbs.forget(csb_id)

    def __repr__(self) -> str:
        return (
            f"Endpoint(mode={self.config.mode.value}, identity={self.config.identity!r}, "
            f"csbs={len(self.csbs)}, replay={len(self.replay)})"
        )


class EndpointOwner:
    """Base of the binders that own an :class:`Endpoint` (one per UA, server or client):
    ``config`` reads the endpoint's configuration, and assigning one keeps the same party (its
    replay cache and CSBs) under the new configuration."""

    endpoint: Endpoint

    @property
    def config(self) -> ExchangeConfig:
        """The endpoint's MIKEY configuration."""
        return self.endpoint.config

    @config.setter
    def config(self, config: ExchangeConfig) -> None:
        self.endpoint = self.endpoint.with_config(config)
