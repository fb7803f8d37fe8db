"""The two ways a MIKEY message is authenticated: a MAC under a derived key, or a signature.

MAC (PSK, DHHMAC, and V in every mode): the MAC covers the whole message up to the MAC field
(|| T_i for V, RFC 3830 §5.2); the last payload carries a placeholder of the MAC's length while
encoding. SIGN (PK, DH, RSA-R): the signature covers the message up to the signature value
(|| IDr || T_r for RSA-R's SIGNr, RFC 4738). Every verification failure is the same
:class:`~mikey.errors.AuthenticationError`, whatever failed (no oracle).
"""

from __future__ import annotations

from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from .. import crypto
from ..codec import Cert, Header, Message, Payload, Sign
from ..crypto import SignHash
from ..errors import AuthenticationError, CertificateError, MikeyError
from ..pki import Credentials, TrustStore
from ..registry import MAC_LENGTH, CertType, MacAlg, SignType
from .memo import load_cert
from .wire import MAX_CERTS, now_dt

__all__ = [
    "cert_payloads",
    "encode_maced",
    "encode_signed",
    "peer_certificate",
    "rsa_public",
    "verify_mac_field",
    "verify_signed",
]


# --- MAC --------------------------------------------------------------------------------------


def encode_maced(
    hdr: Header, payloads: Sequence[Payload], alg: MacAlg, key: bytearray, extra: bytes = b""
) -> bytes:
    """Encode with a MAC over everything before it (|| ``extra``) as the message's last field.

    The last payload (KEMAC or V) carries a zero placeholder of the MAC's length (RFC 3830 §5.2).
    """
    maclen = MAC_LENGTH[alg]
    raw = Message(hdr, tuple(payloads)).encode()
    body = raw[: len(raw) - maclen]  # (a NULL MAC is 0 bytes: never slice with -0)
    return body + crypto.mac(alg, key, body + extra)


def verify_mac_field(
    alg: MacAlg, key: bytearray, raw: bytes, msg: Message, mac: bytes, *, extra: bytes = b""
) -> None:
    """Check the MAC ``mac`` ending ``raw`` (before any trailing bytes) over the rest."""
    end = len(raw) - len(msg.trailing)
    crypto.verify_mac(alg, key, raw[: end - len(mac)] + extra, mac)


# --- SIGN -------------------------------------------------------------------------------------


def cert_payloads(creds: Credentials) -> list[Payload]:
    """CERT payloads of our chain, leaf first (RFC 3830 §6.7)."""
    return [Cert(CertType.X509V3_SIGN, der) for der in creds.chain_der()]


def rsa_public(cert: x509.Certificate) -> rsa.RSAPublicKey:
    """The certificate's RSA key (the only kind the signed modes use here)."""
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError("certificate key is not RSA")
    return key


def encode_signed(
    hdr: Header,
    payloads: list[Payload],
    creds: Credentials,
    *,
    sign_type: SignType,
    hash_alg: SignHash,
    extra: bytes = b"",
) -> bytes:
    """Encode with a SIGN payload covering everything but the signature value (§4.7)."""
    siglen = creds.private_key.key_size // 8
    placeholder = Message(hdr, (*payloads, Sign(sign_type, bytes(siglen)))).encode()
    body = placeholder[:-siglen]
    sig = crypto.sign(creds.private_key, body + extra, sign_type, hash_alg)
    if len(sig) != siglen:
        raise MikeyError("unexpected signature length")
    return body + sig


def verify_signed(
    raw: bytes,
    msg: Message,
    cert: x509.Certificate,
    hash_alg: SignHash,
    extra: bytes = b"",
) -> None:
    """Check the SIGN payload ending the message against ``cert``'s key."""
    sign = msg.payloads[-1] if msg.payloads else None
    if not isinstance(sign, Sign):
        raise AuthenticationError()
    body = raw[: len(raw) - len(msg.trailing) - len(sign.signature)]
    if not isinstance(sign.sign_type, SignType) or sign.sign_type == SignType.ECCSI:
        raise AuthenticationError()
    try:
        crypto.verify_signature(
            rsa_public(cert), body + extra, sign.signature, sign.sign_type, hash_alg
        )
    except (AuthenticationError, CertificateError):
        raise AuthenticationError() from None


def peer_certificate(
    msg: Message,
    trust: TrustStore | None,
    pinned: x509.Certificate | None,
    now: float,
    who: str,
) -> x509.Certificate:
    """The sender's leaf: its CERT chain validated (or pinned) at ``now`` for signing, else the
    configured peer certificate; CertificateError when there is none."""
    certs = [load_cert(c.data) for c in msg.find_all(Cert)[:MAX_CERTS]]
    if certs:
        if trust is None:
            raise CertificateError(f"no trust store to verify the {who}'s certificate")
        trust.verify_chain(certs[0], certs[1:], now_dt(now), "sign")
        return certs[0]
    if pinned is not None:
        return pinned
    raise CertificateError(f"the {who} sent no certificate")
