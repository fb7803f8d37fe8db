"""Credentials behind small interfaces: pre-shared keys, RSA key + certificate chain, trust anchors.

The exchanges ask a :class:`PskStore` for the PSK of an identity, sign and decrypt with
:class:`Credentials`, and validate a peer's CERT payloads with :meth:`TrustStore.verify_chain`.
Chain building uses ``cryptography``'s X.509 path validation (RFC 5280, Web PKI profile) with
the end-entity policy relaxed so that a leaf may lack a subjectAltName (MIKEY peers identify by a
SAN URI, but many deployed certificates carry none), may carry any extended key usage, and,
like intermediates, may lack an AuthorityKeyIdentifier (older MIKEY test PKIs omit it). Where
a leaf has a KeyUsage extension it must allow the operation: digitalSignature to sign (RFC 3830
§6.5), keyEncipherment to receive an envelope key (§4.2.5, §6.3). Every failure is a
:class:`~mikey.errors.CertificateError` (error number INVALID_CERT) with a message naming what
failed but no key material.

A certificate in the trust store that is itself the peer's leaf (the same DER) is *pinned*: it is
accepted without path building, whatever its basicConstraints (a self-signed endpoint
certificate made with ``openssl req -x509`` asserts cA), while its validity period lasts and its
KeyUsage allows the operation. This is how SIP endpoints that key with certificates usually
trust each other.

Limits of the profile: RSA keys below 2048 bits and SHA-1 signed certificates are rejected by
``cryptography``'s validator.
"""

from __future__ import annotations

import datetime
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import verification

from ._accel import wipe
from .errors import CertificateError, MikeyError

__all__ = [
    "ChainCacheInfo",
    "Credentials",
    "KeyUse",
    "PskStore",
    "StaticPskStore",
    "TrustStore",
    "load_certificates",
    "parse_der_certificate",
]

KeyUse = Literal["sign", "encrypt"]


class PskStore(Protocol):
    """Source of pre-shared keys (RFC 3830 §3.1)."""

    def lookup(self, identity: str | None) -> bytes | bytearray | None:
        """The PSK for ``identity`` (None when the peer sent no ID), or None if unknown.

        The exchange overwrites a returned ``bytearray`` once it has derived its keys, so a store
        must hand out a copy, never its own buffer (``bytes`` are left alone).
        """
        ...


class StaticPskStore:
    """A fixed mapping identity -> PSK, with an optional default for unidentified peers.

    :meth:`lookup` returns a fresh ``bytearray`` copy the caller may wipe after use.
    """

    __slots__ = ("_default", "_keys")

    def __init__(
        self, mapping: Mapping[str, bytes | bytearray], default: bytes | bytearray | None = None
    ) -> None:
        keys: dict[str, bytearray] = {}
        for identity, psk in mapping.items():
            if not psk:
                raise MikeyError("a pre-shared key is empty")
            keys[identity] = bytearray(psk)
        if default is not None and not default:
            raise MikeyError("the default pre-shared key is empty")
        self._keys = keys
        self._default = None if default is None else bytearray(default)

    def lookup(self, identity: str | None) -> bytearray | None:
        """The PSK for ``identity``; unknown or missing identities get the default (if any)."""
        psk = self._keys.get(identity) if identity is not None else None
        if psk is None:
            psk = self._default
        return None if psk is None else bytearray(psk)

    def wipe(self) -> None:
        """Overwrite and forget every stored key."""
        wipe(*self._keys.values(), self._default)
        self._keys = {}
        self._default = None

    def __repr__(self) -> str:
        return f"StaticPskStore(identities={sorted(self._keys)!r})"


def parse_der_certificate(der: bytes | bytearray) -> x509.Certificate:
    """A certificate from DER bytes (a CERT payload, RFC 3830 §6.7)."""
    try:
        return x509.load_der_x509_certificate(bytes(der))
    except ValueError:
        raise CertificateError("certificate is not valid DER X.509") from None


def load_certificates(data: bytes | bytearray) -> list[x509.Certificate]:
    """All certificates in PEM data (several blocks allowed) or in one DER certificate."""
    raw = bytes(data)
    if b"-----BEGIN" in raw:
        try:
            certs = x509.load_pem_x509_certificates(raw)
        except ValueError:
            raise CertificateError("PEM data holds no valid certificate") from None
        return list(certs)
    return [parse_der_certificate(raw)]


def _same_key(private_key: rsa.RSAPrivateKey, cert: x509.Certificate) -> bool:
    public = cert.public_key()
    return (
        isinstance(public, rsa.RSAPublicKey)
        and public.public_numbers() == private_key.public_key().public_numbers()
    )


@dataclass(frozen=True, slots=True)
class Credentials:
    """An RSA private key and its certificate chain (leaf first, then intermediates)."""

    private_key: rsa.RSAPrivateKey = field(repr=False)
    chain: tuple[x509.Certificate, ...]
    _der: tuple[bytes, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.private_key, rsa.RSAPrivateKey):
            raise MikeyError("credentials need an RSA private key")
        if not self.chain:
            raise MikeyError("credentials need at least the leaf certificate")
        object.__setattr__(self, "chain", tuple(self.chain))
        if not _same_key(self.private_key, self.chain[0]):
            raise MikeyError("the private key does not match the leaf certificate")
        # Encoded once: every signed message carries the chain in CERT payloads.
        der = tuple(c.public_bytes(serialization.Encoding.DER) for c in self.chain)
        object.__setattr__(self, "_der", der)

    @property
    def certificate(self) -> x509.Certificate:
        """The leaf certificate."""
        return self.chain[0]

    @property
    def intermediates(self) -> tuple[x509.Certificate, ...]:
        """The certificates after the leaf."""
        return self.chain[1:]

    def chain_der(self) -> list[bytes]:
        """DER encodings of the chain, leaf first (for CERT payloads)."""
        return list(self._der)

    @classmethod
    def from_pem(
        cls,
        key_pem: bytes | bytearray,
        chain_pem: bytes | bytearray,
        password: bytes | None = None,
    ) -> Credentials:
        """Credentials from a PEM private key and PEM certificates (leaf first)."""
        try:
            key = serialization.load_pem_private_key(bytes(key_pem), password=password)
        except (ValueError, TypeError):
            raise MikeyError("cannot load the private key (bad PEM or password)") from None
        if not isinstance(key, rsa.RSAPrivateKey):
            raise MikeyError("the private key is not an RSA key")
        return cls(key, tuple(load_certificates(chain_pem)))

    @classmethod
    def load(
        cls, key_path: str | Path, chain_path: str | Path, password: bytes | None = None
    ) -> Credentials:
        """Credentials from a PEM key file and a PEM certificate-chain file."""
        try:
            key_pem = Path(key_path).read_bytes()
            chain_pem = Path(chain_path).read_bytes()
        except OSError as exc:
            raise MikeyError(f"cannot read credentials: {exc.strerror}") from None
        return cls.from_pem(key_pem, chain_pem, password)


def _leaf_policy() -> verification.ExtensionPolicy:
    agnostic = verification.Criticality.AGNOSTIC
    return (
        verification.ExtensionPolicy.webpki_defaults_ee()
        .may_be_present(x509.SubjectAlternativeName, agnostic, None)
        .may_be_present(x509.ExtendedKeyUsage, agnostic, None)
        .may_be_present(x509.AuthorityKeyIdentifier, agnostic, None)
    )


def _ca_policy() -> verification.ExtensionPolicy:
    agnostic = verification.Criticality.AGNOSTIC
    return verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(
        x509.AuthorityKeyIdentifier, agnostic, None
    )


@dataclass(frozen=True, slots=True)
class ChainCacheInfo:
    """Counters of :meth:`TrustStore.cache_info`."""

    hits: int
    misses: int
    size: int


_ChainKey = tuple[x509.Certificate, tuple[x509.Certificate, ...], str]


class TrustStore:
    """Trusted CA certificates and chain validation for the peer's CERT payloads.

    Successful validations are remembered (bounded LRU of ``cache_size`` entries keyed by the
    leaf and intermediates, which compare by their DER, and the usage) and reused only while
    ``now`` lies within the validity periods of every certificate involved (leaf,
    intermediates, trust anchors) and at most ``cache_ttl`` seconds after the validation that
    was run. Failures are never
    remembered: a refused chain is validated again, and refused again, every time.
    ``cache_size=0`` turns the cache off.
    """

    __slots__ = (
        "_cache",
        "_cache_size",
        "_cache_ttl",
        "_cas",
        "_hits",
        "_max_depth",
        "_misses",
        "_pinned",
        "_store",
    )

    def __init__(
        self,
        cas: Iterable[x509.Certificate],
        *,
        max_chain_depth: int = 8,
        cache_size: int = 256,
        cache_ttl: float = 300.0,
    ) -> None:
        self._cas = tuple(cas)
        if not self._cas:
            raise MikeyError("a trust store needs at least one CA certificate")
        try:
            self._store = verification.Store(list(self._cas))
        except (ValueError, TypeError):
            raise MikeyError("invalid CA certificate in the trust store") from None
        # RFC 5280 §6.1 starts from a trust anchor; a configured certificate that *is* the
        # peer's leaf (same DER) is a pinned end-entity certificate and needs no path at all.
        self._pinned = frozenset(c.public_bytes(serialization.Encoding.DER) for c in self._cas)
        self._max_depth = max_chain_depth
        if cache_size < 0 or not cache_ttl >= 0:
            raise MikeyError("chain cache size and TTL must not be negative")
        self._cache_size = cache_size
        self._cache_ttl = datetime.timedelta(seconds=cache_ttl)
        # key -> (earliest reuse, latest reuse): the intersection of the validity periods and
        # the TTL window after the validation.
        self._cache: OrderedDict[_ChainKey, tuple[datetime.datetime, datetime.datetime]] = (
            OrderedDict()
        )
        self._hits = self._misses = 0

    @classmethod
    def from_pem(cls, data: bytes | bytearray) -> TrustStore:
        """A trust store from PEM CA certificates."""
        return cls(load_certificates(data))

    @classmethod
    def load(cls, path: str | Path) -> TrustStore:
        """A trust store from a PEM file of CA certificates."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise MikeyError(f"cannot read CA file: {exc.strerror}") from None
        return cls.from_pem(data)

    @property
    def cas(self) -> tuple[x509.Certificate, ...]:
        """The trust anchors."""
        return self._cas

    def verify_chain(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        now: datetime.datetime,
        usage: KeyUse,
    ) -> x509.Certificate:
        """Validate ``leaf`` up to a trusted CA at time ``now`` for ``usage``; returns the leaf.

        Checks signatures, validity periods, CA constraints, and the leaf's KeyUsage (if present):
        digitalSignature for "sign", keyEncipherment for "encrypt". Raises CertificateError.
        """
        if usage not in ("sign", "encrypt"):
            raise MikeyError(f"unknown key usage {usage!r}")
        key: _ChainKey | None = None
        if now.tzinfo is None:  # naive means UTC, as for cryptography's verifier
            now = now.replace(tzinfo=datetime.UTC)
        if self._cache_size:
            key = (leaf, tuple(intermediates), usage)  # certificates hash and compare by DER
            window = self._cache.get(key)
            if window is not None and window[0] <= now <= window[1]:
                self._cache.move_to_end(key)
                self._hits += 1
                return leaf
            self._misses += 1
        self._verify(leaf, intermediates, now, usage)
        if key is not None:
            self._remember(key, (leaf, *intermediates), now)
        return leaf

    def cache_info(self) -> ChainCacheInfo:
        """Hits, misses and current size of the validation cache."""
        return ChainCacheInfo(self._hits, self._misses, len(self._cache))

    def _remember(
        self, key: _ChainKey, chain: tuple[x509.Certificate, ...], now: datetime.datetime
    ) -> None:
        involved = chain + self._cas
        not_before = max(c.not_valid_before_utc for c in involved)
        not_after = min([c.not_valid_after_utc for c in involved] + [now + self._cache_ttl])
        self._cache[key] = (not_before, not_after)
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    def _verify(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        now: datetime.datetime,
        usage: KeyUse,
    ) -> None:
        if leaf.public_bytes(serialization.Encoding.DER) in self._pinned:
            _check_pinned(leaf, now)
        else:
            self._verify_path(leaf, intermediates, now)
        if not isinstance(leaf.public_key(), rsa.RSAPublicKey):
            raise CertificateError("certificate key is not RSA")
        _check_key_usage(leaf, usage)

    def _verify_path(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        now: datetime.datetime,
    ) -> None:
        verifier = (
            verification.PolicyBuilder()
            .store(self._store)
            .time(now)
            .max_chain_depth(self._max_depth)
            .extension_policies(
                ca_policy=_ca_policy(),
                ee_policy=_leaf_policy(),
            )
            .build_client_verifier()
        )
        try:
            verifier.verify(leaf, list(intermediates))
        except verification.VerificationError as exc:
            raise CertificateError(f"certificate chain rejected: {exc}") from None
        except (ValueError, TypeError):
            raise CertificateError("certificate chain rejected: unusable certificate") from None


def _check_pinned(leaf: x509.Certificate, now: datetime.datetime) -> None:
    """A pinned certificate is trusted as it is, whatever its basicConstraints, while valid."""
    if now < leaf.not_valid_before_utc:
        raise CertificateError(
            f"pinned certificate is not valid before {leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > leaf.not_valid_after_utc:
        raise CertificateError(
            f"pinned certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC"
        )


def _check_key_usage(leaf: x509.Certificate, usage: KeyUse) -> None:
    try:
        ku = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    except ValueError:
        raise CertificateError("certificate has a malformed KeyUsage extension") from None
    if usage == "sign" and not ku.digital_signature:
        raise CertificateError("certificate KeyUsage does not allow digitalSignature")
    if usage == "encrypt" and not ku.key_encipherment:
        raise CertificateError("certificate KeyUsage does not allow keyEncipherment")
