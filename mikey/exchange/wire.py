"""Message-level helpers both roles use: decoding rules, identities, fingerprints, time."""

from __future__ import annotations

import datetime
import hashlib

from ..codec import IdPayload, IdrPayload, Kemac, Leniency, Message, parse_message
from ..errors import DecodeError, ProtocolError
from ..identity import same_identity
from ..registry import EncrAlg, ErrorNo, MacAlg, PrfFunc
from .config import ExchangeConfig
from .modes import MODE_OF_RESP

__all__ = [
    "ENV_KEY_LENGTH",
    "MAX_CERTS",
    "RAND_LENGTH",
    "check_leniencies",
    "digest",
    "identities",
    "msg_prf",
    "now_dt",
    "null_kemac",
    "parse_initiator_message",
    "same_party",
]

RAND_LENGTH = 16
#: not a multiple of 32 (docs/WIRE.md §minisip PRF bug and envelope key length)
ENV_KEY_LENGTH = 20
MAX_CERTS = 8
_PRF_FUNCS: dict[int, PrfFunc] = {int(f): f for f in PrfFunc}


def now_dt(now: float) -> datetime.datetime:
    """``now`` (Unix seconds) as an aware UTC datetime, for certificate validity checks."""
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


def digest(raw: bytes) -> bytes:
    """The message's fingerprint in the replay cache: BLAKE2b-128 (cheaper to start than
    OpenSSL's SHA-256 for a message this short)."""
    return hashlib.blake2b(raw, digest_size=16).digest()


def identities(msg: Message) -> tuple[str | None, str | None]:
    """(IDi, IDr) in one pass. IDR payloads (RFC 6043) name their role; plain ID payloads come
    in the sender's order: IDi then IDr in an I_MESSAGE, IDr then IDi in a response."""
    ids: list[IdPayload] = []
    by_role: dict[int, str] = {}
    for p in msg.payloads:
        if isinstance(p, IdPayload):
            ids.append(p)
        elif isinstance(p, IdrPayload) and p.role not in by_role:
            by_role[p.role] = p.text
    texts = [p.text for p in ids[:2]] + [None, None]
    if msg.data_type in MODE_OF_RESP:  # sender's own ID first
        texts[0], texts[1] = texts[1], texts[0]
    return by_role.get(1, texts[0]), by_role.get(2, texts[1])


def same_party(a: str | None, b: str | None) -> bool:
    """Two optional identities name the same party (both absent counts as the same)."""
    if a is None or b is None:
        return a is b
    return same_identity(a, b)


def parse_initiator_message(raw: bytes, cfg: ExchangeConfig) -> Message:
    """Parse an I_MESSAGE; a strict parser still lets a CSB update omit RAND (RFC 3830 §4.5).

    Whether the update really is one (a known CSB ID) is decided later by check_leniencies.
    """
    try:
        return parse_message(raw, lenient=cfg.lenient, threegpp=cfg.threegpp_code_points)
    except DecodeError:
        if cfg.lenient:
            raise
        retry = parse_message(raw, lenient=True, threegpp=cfg.threegpp_code_points)
        if set(retry.leniencies) != {Leniency.PSK_WITHOUT_RAND}:
            raise
        return retry


def check_leniencies(msg: Message, cfg: ExchangeConfig, *, rekey: bool) -> None:
    """Refuse every peer quirk the configuration does not accept."""
    for q in msg.leniencies:
        if q == Leniency.PSK_WITHOUT_RAND and rekey:
            continue
        if q not in cfg.accepted_leniencies:
            raise DecodeError(f"peer quirk {q.value} not accepted by policy")


def msg_prf(msg: Message) -> PrfFunc:
    """The PRF the header names (RFC 3830 §6.1), or INVALID_PRF."""
    prf = _PRF_FUNCS.get(msg.header.prf)
    if prf is None:
        raise ProtocolError("PRF not supported", error_no=ErrorNo.INVALID_PRF)
    return prf


def null_kemac(msg: Message) -> bool:
    """The message ends with a NULL-encrypted, NULL-MACed KEMAC (the opt-in RTSPS form)."""
    kem = msg.payloads[-1] if msg.payloads else None
    return isinstance(kem, Kemac) and kem.encr_alg == EncrAlg.NULL and kem.mac_alg == MacAlg.NULL
