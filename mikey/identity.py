"""Who a peer is: identity comparison and the binding of a certificate to an identity.

One rule serves every mode that carries or uses a certificate (PK, DH-signed, RSA-R):

* the identities a certificate holder may assert are the SAN URIs of its validated or pinned
  certificate; a certificate with no SAN URI asserts nothing, unless the configuration maps its
  fingerprint (SHA-256 of the DER) to an identity explicitly (``ExchangeConfig.cert_identities``);
  such a mapping replaces whatever the certificate carries;
* IDi / IDr, where the message carries them, must equal one of those identities;
* where the signalling names the party (a SIP From or Request-URI, an expected peer), that
  identity must be the certificate's too (RFC 4567 §5, RFC 3830 §4.3).

Comparison follows RFC 3261 §19.1.4 for ``sip:``/``sips:`` URIs (scheme and host without regard
to case, user part case-sensitive with %-escapes decoded, ports and the parameters ``user``,
``ttl``, ``method``, ``maddr``, ``transport`` must agree, other parameters only where both carry
them, headers always); every other form (NAI, ``tel:``, ``https:``) compares exactly.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from .errors import CertificateError, IdentityError

__all__ = [
    "IdentityTable",
    "bind_certificate",
    "certificate_fingerprint",
    "certificate_identities",
    "certificate_uris",
    "parse_fingerprint",
    "same_identity",
    "single_identity",
]

#: fingerprint (SHA-256 of the certificate's DER) -> identity, as ``ExchangeConfig`` holds it
IdentityTable = tuple[tuple[bytes, str], ...]

_SIP_RE = re.compile(
    r"^(?P<scheme>sips?):(?:(?P<user>[^@]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^:;?\[\]]+)"
    r"(?::(?P<port>[0-9]{1,5}))?(?P<params>(?:;[^;?]*)*)(?:\?(?P<headers>.*))?$",
    re.IGNORECASE | re.ASCII,
)
_PCT_RE = re.compile(r"%([0-9A-Fa-f]{2})", re.ASCII)
# RFC 3261 §19.1.4: present in one URI, these parameters must be present and equal in the other
_MUST_MATCH = ("user", "ttl", "method", "maddr", "transport")


def _unescape(text: str) -> str:
    return _PCT_RE.sub(lambda m: chr(int(m.group(1), 16)), text)


@functools.lru_cache(maxsize=1024)
def _sip_key(
    text: str,
) -> tuple[str, str | None, str, int | None, dict[str, str | None], frozenset[str]] | None:
    m = _SIP_RE.match(text)
    if m is None:
        return None
    params: dict[str, str | None] = {}
    for item in (m.group("params") or "").split(";")[1:]:
        name, eq, value = item.partition("=")
        params[_unescape(name).lower()] = _unescape(value).lower() if eq else None
    headers = frozenset(
        f"{_unescape(k).lower()}={_unescape(v)}"
        for k, _, v in (h.partition("=") for h in (m.group("headers") or "").split("&") if h)
    )
    user = m.group("user")
    port = m.group("port")
    return (
        m.group("scheme").lower(),
        None if user is None else _unescape(user),
        m.group("host").lower(),
        None if port is None else int(port),
        params,
        headers,
    )


def same_identity(a: str, b: str) -> bool:
    """Whether two identities name the same party (RFC 3261 §19.1.4 for SIP URIs, else exact)."""
    if a == b:
        return True
    ka, kb = _sip_key(a), _sip_key(b)
    if ka is None or kb is None:
        return False
    if ka[:4] != kb[:4] or ka[5] != kb[5]:
        return False
    pa, pb = ka[4], kb[4]
    for name in _MUST_MATCH:
        if (name in pa or name in pb) and pa.get(name, "") != pb.get(name, ""):
            return False
    return all(pa[n] == pb[n] for n in pa.keys() & pb.keys())


def matches_any(identity: str, candidates: Iterable[str]) -> bool:
    """Whether ``identity`` is one of ``candidates`` under :func:`same_identity`."""
    return any(same_identity(identity, c) for c in candidates)


@functools.lru_cache(maxsize=256)  # certificates are immutable and repeat
def certificate_uris(cert: x509.Certificate) -> tuple[str, ...]:
    """The SAN URIs of a certificate (empty when it has none)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    except ValueError:  # extensions are parsed lazily: a malformed one surfaces here
        raise CertificateError("certificate extensions are malformed") from None
    return tuple(san.value.get_values_for_type(x509.UniformResourceIdentifier))


@functools.lru_cache(maxsize=256)
def certificate_fingerprint(cert: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's DER (the key of an explicit identity mapping)."""
    return hashlib.sha256(cert.public_bytes(Encoding.DER)).digest()


def parse_fingerprint(text: str) -> bytes:
    """A SHA-256 fingerprint from hex, with or without colons (as ``openssl x509 -fingerprint``)."""
    cleaned = text.strip().replace(":", "")
    if cleaned.lower().startswith("sha256="):
        cleaned = cleaned[7:]
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError:
        raise IdentityError(f"fingerprint {text!r} is not hex") from None
    if len(raw) != 32:
        raise IdentityError(f"fingerprint has {len(raw)} bytes; a SHA-256 fingerprint has 32")
    return raw


def certificate_identities(
    cert: x509.Certificate, table: Mapping[bytes, str] | IdentityTable = ()
) -> tuple[str, ...]:
    """The identities a holder of ``cert`` may assert; CertificateError when it has none.

    An explicit mapping of the certificate's fingerprint wins; otherwise its SAN URIs.
    """
    mapping = table if isinstance(table, Mapping) else _table(table)
    if mapping:
        mapped = mapping.get(certificate_fingerprint(cert))
        if mapped is not None:
            return (mapped,)
    uris = certificate_uris(cert)
    if not uris:
        raise CertificateError(
            "the certificate carries no SAN URI identity and its fingerprint is not mapped to one"
        )
    return uris


@functools.lru_cache(maxsize=64)
def _table(pairs: IdentityTable) -> dict[bytes, str]:
    return dict(pairs)


def single_identity(cert: x509.Certificate) -> str | None:
    """The certificate's SAN URI when it carries exactly one (a party's default identity)."""
    uris = certificate_uris(cert)
    return uris[0] if len(uris) == 1 else None


def _show(ids: tuple[str, ...]) -> str:
    return ids[0] if len(ids) == 1 else "one of " + ", ".join(ids)


def bind_certificate(
    cert: x509.Certificate,
    claimed: str | None,
    expected: str | None,
    table: IdentityTable = (),
    *,
    field: str = "ID",
) -> str:
    """The identity a peer holding ``cert`` is, given what it ``claimed`` (its IDi / IDr, or
    None) and what the signalling ``expected`` (or None); raises on any disagreement.

    Raises :class:`CertificateError` when the certificate asserts no identity and
    :class:`IdentityError` when the claim or the expectation is not one of its identities.
    """
    ids = certificate_identities(cert, table)
    if claimed is not None:
        if not matches_any(claimed, ids):
            raise IdentityError(f"{field} {claimed} does not match the certificate's {_show(ids)}")
        identity = claimed
    elif expected is not None:
        found = [i for i in ids if same_identity(i, expected)]
        identity = found[0] if found else ids[0]
    else:
        identity = ids[0]
    if expected is not None and not same_identity(identity, expected):
        raise IdentityError(
            f"the peer's certificate names {_show(ids)}, not the expected {expected}"
        )
    return identity
