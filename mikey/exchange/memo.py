"""Every memo of the exchanges, in one place, with one :func:`clear`.

All are bounded and hold results of pure functions of immutable inputs (policies, SP parameter
tuples, certificates, identities), never keys or anything learned from an unauthenticated peer
beyond a parsed certificate. A computation that raises is never stored, so it raises again.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .. import crypto
from ..codec import Chash, IdPayload, SecurityPolicy
from ..errors import CertificateError
from ..keying import SrtpPolicy
from ..policy import AcceptablePolicies, SpStyle, policy_from_sp, sp_from_policy
from ..registry import HashFunc, IdType

__all__ = [
    "chash",
    "checked_policy",
    "clear",
    "id_payload",
    "load_cert",
    "own_cert_hash",
    "policy_of_sp",
    "sp_of_policy",
]

_V = TypeVar("_V")
_DER = Encoding.DER


class _IdentityMemo(Generic[_V]):
    """Results of pure functions of immutable objects, keyed by the objects' identities.

    Hashing a frozen dataclass costs a hash per field; the objects here are long-lived
    (configurations, parsed SP parameter tuples, which the codec memoises) so their ids are the
    cheap key. Each entry keeps its objects alive, so an id cannot be reused by another object
    meanwhile. Bounded: cleared when full (fresh objects, e.g. lenient parses, churn it).
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], _V]] = {}

    def get(self, key: tuple[Hashable, ...], objs: tuple[object, ...]) -> _V | None:
        """The stored result for ``key`` if it was computed from these very ``objs``."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] == objs else None

    def put(self, key: tuple[Hashable, ...], objs: tuple[object, ...], value: _V) -> _V:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (objs, value)
        return value

    def clear(self) -> None:
        self._entries.clear()


_POLICIES: _IdentityMemo[SrtpPolicy] = _IdentityMemo()
_SPS: _IdentityMemo[SecurityPolicy] = _IdentityMemo()
_CHECKED: _IdentityMemo[bool] = _IdentityMemo()


def policy_of_sp(sp: SecurityPolicy, lenient: bool) -> SrtpPolicy:
    """The SRTP policy an SP payload describes (memoised by the codec's parameter tuple)."""
    key = (id(sp.params), int(sp.prot_type), lenient)
    hit = _POLICIES.get(key, (sp.params,))
    if hit is None:
        hit = _POLICIES.put(key, (sp.params,), policy_from_sp(sp, tag_in_auth_key_len=lenient))
    return hit


def sp_of_policy(policy: SrtpPolicy, policy_no: int, style: SpStyle) -> SecurityPolicy:
    """The SP payload offering ``policy``."""
    key = (id(policy), policy_no, style)
    hit = _SPS.get(key, (policy,))
    if hit is None:
        hit = _SPS.put(key, (policy,), sp_from_policy(policy, policy_no, style=style))
    return hit


def checked_policy(acceptable: AcceptablePolicies, policy: SrtpPolicy) -> None:
    """``acceptable.check(policy)``; only successful checks are remembered."""
    key = (id(acceptable), id(policy))
    if _CHECKED.get(key, (acceptable, policy)) is None:
        acceptable.check(policy)
        _CHECKED.put(key, (acceptable, policy), True)


# Peers send the same certificates in every message: each distinct DER is parsed once (bounded
# LRU of certificates up to 8 KiB, so at most ~2 MB of unauthenticated input; a DER that does
# not parse is never stored).
_CERTS: OrderedDict[bytes, x509.Certificate] = OrderedDict()
_CERTS_MAX = 256
_CERT_MEMO_MAX_BYTES = 8192


def load_cert(der: bytes) -> x509.Certificate:
    """The certificate of a CERT payload's DER (RFC 3830 §6.7); CertificateError if none."""
    cert = _CERTS.get(der)
    if cert is not None:
        _CERTS.move_to_end(der)
        return cert
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise CertificateError("CERT payload is not a DER X.509 certificate") from None
    if len(der) > _CERT_MEMO_MAX_BYTES:
        return cert
    _CERTS[der] = cert
    while len(_CERTS) > _CERTS_MAX:
        _CERTS.popitem(last=False)
    return cert


@functools.lru_cache(maxsize=64)  # our own certificate, per hash function the peers use
def own_cert_hash(func: HashFunc | int, der: bytes) -> bytes:
    """CHASH value of our own certificate under the peer's hash function (RFC 3830 §6.8)."""
    return crypto.cert_hash(func, der)


@functools.lru_cache(maxsize=256)
def chash(cert: x509.Certificate) -> Chash:
    """CHASH of a peer certificate (RFC 3830 §6.8): SHA-256 of its DER."""
    return Chash(HashFunc.SHA_256, crypto.cert_hash(HashFunc.SHA_256, cert.public_bytes(_DER)))


@functools.lru_cache(maxsize=1024)  # IdPayload is immutable; identities repeat
def id_payload(identity: str) -> IdPayload:
    """The ID payload naming ``identity``: a URI when it has a scheme, an NAI otherwise."""
    kind = IdType.URI if ":" in identity else IdType.NAI
    return IdPayload(kind, identity.encode("utf-8"))


def clear() -> None:
    """Empty every memo (tests that count work from a cold start; long-lived processes that
    rotate their configuration)."""
    for memo in (_POLICIES, _SPS, _CHECKED):
        memo.clear()
    _CERTS.clear()
    own_cert_hash.cache_clear()
    chash.cache_clear()
    id_payload.cache_clear()
