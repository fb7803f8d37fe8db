"""An in-memory initiator/responder pair (like h11's ConnectionPair) for exchange tests."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from mikey.errors import MikeyError
from mikey.exchange import (
    CsbTable,
    Endpoint,
    ExchangeCompleted,
    ExchangeConfig,
    ExchangeRefused,
    Initiator,
    Responder,
    StreamSpec,
)
from mikey.keying import KeyingResult, Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore
from mikey.replay import ReplayGuard

from . import certs

NOW = certs.NOW.timestamp()
#: Every exchange mode with and without V where V exists (PSK and PK; the others always answer).
EVERY_MODE: list[tuple[Mode, bool]] = [
    (Mode.PSK, False),
    (Mode.PSK, True),
    (Mode.PK, False),
    (Mode.PK, True),
    (Mode.DH, False),
    (Mode.DHHMAC, False),
    (Mode.RSA_R, False),
]
PSK = bytes(range(16))
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"


def seeded_rng(seed: int) -> Callable[[int], bytes]:
    """Deterministic randomness for reproducible exchanges."""
    return random.Random(seed).randbytes


def keys(outcome: ExchangeCompleted | ExchangeRefused) -> KeyingResult:
    """The keys of an exchange that must have completed (the refusal fails the test)."""
    assert isinstance(outcome, ExchangeCompleted), f"refused: {outcome}"
    return outcome.result


@dataclass(frozen=True)
class Refusal:
    """A refused exchange's error, as ``pytest.raises`` hands one over (``.value``)."""

    value: MikeyError


def refused(
    kind: type[MikeyError] | tuple[type[MikeyError], ...],
    outcome: ExchangeCompleted | ExchangeRefused,
) -> Refusal:
    """The refusal of an exchange that must have been refused with a ``kind`` error."""
    assert isinstance(outcome, ExchangeRefused), "accepted"
    assert isinstance(outcome.error, kind), outcome.error
    return Refusal(outcome.error)


_ENDPOINTS: dict[int, tuple[ExchangeConfig, Endpoint]] = {}


def ep(
    cfg: ExchangeConfig | Endpoint,
    *,
    replay: ReplayGuard | None = None,
    csbs: CsbTable | None = None,
) -> Endpoint:
    """The endpoint of a test configuration: one per configuration object, so that every
    exchange a test runs with the same configuration shares its replay cache and CSB table.
    ``replay`` / ``csbs`` give another endpoint of the same party with that table replaced
    (the other one still shared). An endpoint passes through."""
    if isinstance(cfg, Endpoint):
        return cfg
    hit = _ENDPOINTS.get(id(cfg))
    if hit is None or hit[0] is not cfg:
        hit = (cfg, Endpoint(cfg, seeded_rng(0)))
        _ENDPOINTS[id(cfg)] = hit
    base = hit[1]
    if replay is None and csbs is None:
        return base
    return Endpoint(
        cfg,
        base.rng,
        replay=replay if replay is not None else base.replay,
        csbs=csbs if csbs is not None else base.csbs,
    )


def configs(mode: Mode, **kw: object) -> tuple[ExchangeConfig, ExchangeConfig]:
    """Matching initiator and responder configurations for ``mode``."""
    trust = TrustStore([certs.ca().cert])
    alice = certs.leaf("alice", san_uri=ALICE)
    bob = certs.leaf("bob", san_uri=BOB)
    a_creds = Credentials(alice.key, (alice.cert,))
    b_creds = Credentials(bob.key, (bob.cert,))
    init = ExchangeConfig(
        mode=mode,
        identity=ALICE,
        peer_identity=BOB,
        psk=StaticPskStore({BOB: PSK}),
        credentials=a_creds,
        trust=trust,
        peer_certificate=bob.cert if mode == Mode.PK else None,
    )
    resp = ExchangeConfig(
        mode=mode,
        identity=BOB,
        psk=StaticPskStore({ALICE: PSK}),
        credentials=b_creds,
        trust=trust,
    )
    init_kw = {k[2:]: v for k, v in kw.items() if k.startswith("i_")}
    resp_kw = {k[2:]: v for k, v in kw.items() if k.startswith("r_")}
    both = {k: v for k, v in kw.items() if not k.startswith(("i_", "r_"))}
    return replace(init, **both, **init_kw), replace(resp, **both, **resp_kw)  # type: ignore[arg-type]


@dataclass
class Pair:
    init_cfg: ExchangeConfig
    resp_cfg: ExchangeConfig
    seed: int = 1
    initiator: Initiator = field(init=False)
    responder: Responder = field(init=False)

    def __post_init__(self) -> None:
        self.initiator = Initiator(ep(self.init_cfg), seeded_rng(self.seed))
        self.responder = Responder(ep(self.resp_cfg), seeded_rng(self.seed + 1000))

    def offer(
        self, now: float = NOW, streams: tuple[StreamSpec, ...] = (StreamSpec(0x1234, 0, 0),)
    ) -> bytes:
        return self.initiator.start(now, streams)

    def run(
        self, now: float = NOW, streams: tuple[StreamSpec, ...] = (StreamSpec(0x1234, 0, 0),)
    ) -> tuple[KeyingResult, KeyingResult, bytes, bytes | None]:
        i_msg = self.offer(now, streams)
        reply = self.responder.respond(i_msg, now + 0.5, local_ssrcs=[0x5678])
        if isinstance(reply, ExchangeRefused):
            raise reply.error
        assert isinstance(reply, ExchangeCompleted)
        ep(self.resp_cfg).commit(reply.result)  # the session is up: its CSB is recorded
        i_res = keys(
            self.initiator.finish(
                reply.answer if self.initiator.expects_response else None, now + 1
            )
        )
        return i_res, reply.result, i_msg, reply.answer
