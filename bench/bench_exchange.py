"""Full MIKEY round trips (start -> respond -> finish) per mode vs the raw cryptography they need.

For each mode the baseline is the summed cost of the cryptographic operations one round trip
performs, measured in the same run with OpenSSL's one-shot HMAC (``_hashlib.hmac_digest``, what
``hmac.digest`` wraps and what ``mikey.prf`` calls), ``cryptography`` and OpenSSL FFDH directly.
A PRF block below is one MIKEY PRF output of up to 20 bytes from a one-chunk key (two HMACs).

* PSK (+V): 10 PRF blocks (3 transport keys and TEK/SALT, on each side), AES-CTR encrypt/decrypt
  of the key data, the KEMAC MAC and its check (+ V MAC and check).
* PK: RSA envelope encrypt/decrypt and message sign/verify, plus the PSK mode's symmetric part
  under the envelope key (10 PRF blocks, 2 AES-CTR, MAC and check).
* RSA-R: 2 signatures, 2 verifies, RSA envelope encrypt/decrypt, and the same symmetric part.
* DH: 2 modexps and a subgroup check of the peer value per side, two message signatures and
  their verifications, TEK/SALT on each side (4 PRF blocks).
* DHHMAC: 2 modexps and a subgroup check per side, the salt and auth transport keys and TEK/SALT
  on each side (8 PRF blocks), the MACs of both messages and their checks (4).

Certificate chains are in neither figure: ``TrustStore`` validates a chain once and then only
looks it up (its cache), and the configurations of a case, with their trust store, last for all
its trials, after a warm-up round trip. Both figures are the steady state of a server whose
peers call again; a first contact adds one chain validation per certificate.

A modexp of the floor is OpenSSL's finite-field DH through ``cryptography`` (a deprecated API,
used here only as the yardstick) with a private exponent of our size; where that API is gone,
Python's ``pow``, which is about ten times slower, and the goal column says so.

Trials alternate (ours, raw, ours, raw, ...); the rates are medians, the ratio is the median of
the per-pair ratios (a pair runs back to back, so the VM's speed drift cancels). Where the C
accelerator (``mikey._speedups``) is in use, one more row shows the PSK round trip on the
pure-Python fallback against the same floor, for information. Goals: PSK >= 10,000 round
trips/s and <= 3x its raw crypto cost; PK/DH/DHHMAC/RSA-R within 1.3x of their floor.
The PKI comes from ``tests.mikey.certs`` (run from the repository root).
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mikey import _accel
from mikey.dh import DH_PARAMS, _jacobi
from mikey.exchange import (
    CsbTable,
    Endpoint,
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    Responder,
    StreamSpec,
)
from mikey.keying import Mode
from mikey.prf import hmac_digest
from mikey.registry import DhGroup
from mikey.replay import ReplayGuard
from tests.mikey import certs
from tests.mikey.pair import NOW, configs, seeded_rng

STREAMS = (StreamSpec(0x1234, 0, 0),)
PSK_GOAL_RATE = 10_000
PSK_GOAL_RATIO = 3.0
ASYM_GOAL_RATIO = 1.3

Cases = dict[str, tuple[Mode, bool]]
CASES: Cases = {
    "PSK": (Mode.PSK, False),
    "PSK+V": (Mode.PSK, True),
    "PK": (Mode.PK, False),
    "DH": (Mode.DH, False),
    "DHHMAC": (Mode.DHHMAC, False),
    "RSA-R": (Mode.RSA_R, False),
}


def _ours(i_cfg: ExchangeConfig, r_cfg: ExchangeConfig, n: int, *, pure: bool = False) -> float:
    """Seconds per round trip (fresh replay cache and CSB table per trial).

    The configurations, and so their trust store, last for all trials of a case: the warm-up
    round trip validates the certificate chains once, and the trials measure the steady state,
    in which ``TrustStore`` only looks a validated chain up (its cache).
    """
    if pure:
        saved, _accel.speedups = _accel.speedups, None
        try:
            return _ours(i_cfg, r_cfg, n)
        finally:
            _accel.speedups = saved
    rng = seeded_rng(7)
    responder = Endpoint(r_cfg, rng, replay=ReplayGuard(), csbs=CsbTable())
    initiator = Endpoint(i_cfg, rng, replay=ReplayGuard())
    start = time.perf_counter()
    for k in range(n):
        now = NOW + k * 0.001
        init = Initiator(initiator)
        reply = Responder(responder).respond(init.start(now, STREAMS), now)
        if not isinstance(reply, ExchangeCompleted):
            raise RuntimeError(f"{i_cfg.mode.value} exchange refused: {reply.error}")
        responder.commit(reply.result)  # as the glue does once the session is up
        if not isinstance(init.finish(reply.answer, now), ExchangeCompleted):
            raise RuntimeError(f"{i_cfg.mode.value} answer refused")
    return (time.perf_counter() - start) / n


# --- raw operations --------------------------------------------------------------------------


def _prf_block(key: bytes, label: bytes) -> bytes:
    a = hmac_digest(key, label, "sha1")
    return hmac_digest(key, a + label, "sha1")


def _raw_symmetric(prf_blocks: int, aes: int, macs: int) -> Callable[[], None]:
    """PRF blocks, AES-CTR encryptions of 20 bytes of key data and HMACs of a 170-byte message."""
    key, label = bytes(16), bytes(29)
    aes_key, iv, plain, msg = bytes(16), bytes(16), bytes(20), bytes(170)

    def op() -> None:
        for _ in range(prf_blocks):
            _prf_block(key, label)
        for _ in range(aes):
            c = Cipher(algorithms.AES(aes_key), modes.CTR(iv)).encryptor()
            c.update(plain)
            c.finalize()
        for _ in range(macs):
            hmac_digest(key, msg, "sha1")

    return op


def _raw_psk(verify: bool) -> Callable[[], None]:
    return _raw_symmetric(10, 2, 4 if verify else 2)


_PAD = padding.PKCS1v15()
_SHA = hashes.SHA256()
Op = Callable[[], None]


def _pub(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    assert isinstance(key, rsa.RSAPublicKey)
    return key


def _rsa_parts() -> tuple[Op, Op, Op]:
    """sign, verify, envelope encrypt+decrypt."""
    alice = certs.leaf("alice", san_uri="sip:alice@example.com")
    bob = certs.leaf("bob", san_uri="sip:bob@example.com")
    body = bytes(1200)
    sig = alice.key.sign(body, _PAD, _SHA)
    alice_pub, bob_pub = _pub(alice.cert), _pub(bob.cert)
    env = bob_pub.encrypt(bytes(20), _PAD)

    def sign() -> None:
        alice.key.sign(body, _PAD, _SHA)

    def verify() -> None:
        alice_pub.verify(sig, body, _PAD, _SHA)

    def env_cycle() -> None:
        bob_pub.encrypt(bytes(20), _PAD)
        bob.key.decrypt(env, _PAD)

    return sign, verify, env_cycle


# A private exponent of our size (320 bits for OAKLEY 5, mikey.dh) for the floor's modexps.
_EXPONENT = int.from_bytes(bytes(range(1, 41)), "big") | (1 << 319)


def _ffdh_key() -> tuple[object, object] | None:
    """An OpenSSL FFDH private key with our 320-bit exponent and a peer key (OAKLEY 5)."""
    params = DH_PARAMS[DhGroup.OAKLEY_5]
    x = _EXPONENT
    y = pow(params.g, x + 1, params.p)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from cryptography.hazmat.primitives.asymmetric import dh as ffdh

            nums = ffdh.DHParameterNumbers(params.p, params.g)
            own = ffdh.DHPublicNumbers(pow(params.g, x, params.p), nums)
            return ffdh.DHPrivateNumbers(x, own).private_key(), ffdh.DHPublicNumbers(
                y, nums
            ).public_key()
    except (ImportError, AttributeError, ValueError):
        return None


FFDH = _ffdh_key()


def _modexps() -> Op:
    """The 2 modexps of each side (4 in all): OpenSSL FFDH where available, else pow."""
    if FFDH is not None:
        key, peer = FFDH

        def openssl() -> None:
            for _ in range(4):
                key.exchange(peer)  # type: ignore[attr-defined]

        return openssl
    params = DH_PARAMS[DhGroup.OAKLEY_5]
    x = _EXPONENT
    y = pow(params.g, x, params.p)

    def python() -> None:
        for _ in range(2):
            pow(params.g, x, params.p)
            pow(y, x, params.p)

    return python


def _subgroup_checks() -> Op:
    """Each side's check that the peer's DH value lies in the prime-order subgroup (a Legendre
    symbol: OpenSSL's BN_kronecker through the accelerator where built, else Python)."""
    params = DH_PARAMS[DhGroup.OAKLEY_5]
    y = pow(params.g, 12345, params.p)
    c = _accel.speedups
    if c is not None:
        yb, pb = y.to_bytes(params.length, "big"), params.p.to_bytes(params.length, "big")

        def openssl() -> None:
            for _ in range(2):
                c.jacobi(yb, pb)

        return openssl

    def python() -> None:
        for _ in range(2):
            _jacobi(y, params.p)

    return python


def _raw_for(mode: Mode, verify: bool) -> Op:
    if mode == Mode.PSK:
        return _raw_psk(verify)
    sign, check, env_cycle = _rsa_parts()
    modexps = _modexps()
    subgroup_checks = _subgroup_checks()
    kemac = _raw_symmetric(10, 2, 2)  # PK and RSA-R: the PSK mode's part, under the envelope key

    plans: dict[Mode, tuple[Op, ...]] = {
        Mode.PK: (env_cycle, sign, check, kemac),
        Mode.DH: (modexps, subgroup_checks, sign, sign, check, check, _raw_symmetric(4, 0, 0)),
        Mode.DHHMAC: (modexps, subgroup_checks, _raw_symmetric(8, 0, 4)),
        Mode.RSA_R: (sign, sign, check, check, env_cycle, kemac),
    }
    steps = plans[mode]

    def op() -> None:
        for step in steps:
            step()

    return op


def _raw(op: Callable[[], None], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        op()
    return (time.perf_counter() - start) / n


def run(quick: bool) -> list[dict[str, object]]:
    """One row per mode: round trips/s ours vs the raw crypto floor, and the cost ratio."""
    rows: list[dict[str, object]] = []
    cases = [(name, mode, verify, False) for name, (mode, verify) in CASES.items()]
    if _accel.accelerated():
        cases.append(("PSK", Mode.PSK, False, True))
    for name, mode, verify, pure in cases:
        fast = mode == Mode.PSK
        # Full mode: 15 pairs of 2,000 PSK round trips, 21 pairs of 40 for the public-key modes
        # (short pairs, many of them: the median then sees through this VM's bursts of noise).
        n = (400 if quick else 2000) if fast else (15 if quick else 40)
        trials = 5 if quick else (15 if fast else 21)
        op = _raw_for(mode, verify)
        i_cfg, r_cfg = configs(mode, i_verify=verify)
        _ours(i_cfg, r_cfg, 2, pure=pure)  # warm-up: certificate chains, caches
        ours: list[float] = []
        raw: list[float] = []
        for _ in range(trials):
            ours.append(_ours(i_cfg, r_cfg, n, pure=pure))
            raw.append(_raw(op, n))
        o, r = statistics.median(ours), statistics.median(raw)
        # Each ours/raw pair ran back to back at the same machine speed: the median of the
        # pair ratios cancels the VM's drift, which the ratio of the two medians would not.
        ratio = statistics.median(a / b for a, b in zip(ours, raw, strict=True))
        passed: bool | None
        if pure:
            goal = "information: the pure-Python fallback (no C accelerator)"
            passed = None
        elif fast:
            goal = f">= {PSK_GOAL_RATE} round trips/s and <= {PSK_GOAL_RATIO}x raw crypto"
            passed = 1 / o >= PSK_GOAL_RATE and ratio <= PSK_GOAL_RATIO
        else:
            goal = f"<= {ASYM_GOAL_RATIO}x raw crypto"
            if mode in (Mode.DH, Mode.DHHMAC) and FFDH is None:
                goal += " (modexps: pow, no OpenSSL FFDH)"
            passed = ratio <= ASYM_GOAL_RATIO
        label = f"{name}, pure Python" if pure else name
        rows.append(
            {
                "metric": f"MIKEY {label} round trips/s (ours) vs raw crypto floor (baseline)",
                "ours": round(1 / o),
                "baseline": round(1 / r),
                "ratio": round(ratio, 2),
                "goal": goal,
                "passed": passed,
            }
        )
    return rows


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(row)
