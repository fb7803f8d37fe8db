"""Message-protection primitives: KEMAC encryption and MAC, RSA envelope, signatures, cert hash.

KEMAC encryption (RFC 3830 §4.2.3, §6.2): AES-CM is SRTP-style AES counter mode whose initial
counter block is derived from salt_key, the CSB ID and the message's timestamp (:func:`kemac_iv`);
AES-KW-128 is RFC 3394 key wrap under encr_key; NULL carries the sub-payloads in clear.

Failures that a peer can provoke (wrong MAC, bad key-wrap integrity check, bad signature) raise
:class:`~mikey.errors.AuthenticationError` with one fixed message, so no oracle is offered. RSA
envelope decryption never fails visibly: on bad padding or an unexpected length it returns
random bytes, and the MAC computed from that key fails later (implicit rejection, like
OpenSSL 3.2+). Misuse by the caller (wrong key lengths, unsupported algorithms) raises
:class:`~mikey.errors.MikeyError`. Nothing here logs or puts key material in exception text.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from enum import IntEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from . import _accel
from ._accel import wipe
from .errors import AuthenticationError, CertificateError, MikeyError
from .prf import ENCR_KEY_LENGTH, SALT_KEY_LENGTH, TransportKeys, hmac_digest
from .registry import MAC_LENGTH, EncrAlg, HashFunc, MacAlg, SignType

__all__ = [
    "MAX_KEMAC_DATA",
    "SignHash",
    "cert_hash",
    "decrypt_kemac",
    "encrypt_kemac",
    "kemac_iv",
    "mac",
    "rsa_decrypt_envelope",
    "rsa_encrypt_envelope",
    "sign",
    "verify_mac",
    "verify_signature",
]

#: Encr data len is a 16-bit field (RFC 3830 §6.2).
MAX_KEMAC_DATA = 0xFFFF

# MAC algorithm -> (hashlib name, the accelerator's digest number)
_MAC_DIGEST = {MacAlg.HMAC_SHA_1_160: ("sha1", 1), MacAlg.HMAC_SHA_256_256: ("sha256", 2)}
_CERT_DIGEST = {HashFunc.SHA_1: "sha1", HashFunc.MD5: "md5", HashFunc.SHA_256: "sha256"}


class SignHash(IntEnum):
    """Hash used inside RSA signatures (not on the wire; SHA-1 for minisip, SHA-256 default)."""

    SHA_1 = 1
    SHA_256 = 2
    SHA_384 = 3
    SHA_512 = 4


_SIGN_HASH: dict[SignHash, type[hashes.HashAlgorithm]] = {
    SignHash.SHA_1: hashes.SHA1,
    SignHash.SHA_256: hashes.SHA256,
    SignHash.SHA_384: hashes.SHA384,
    SignHash.SHA_512: hashes.SHA512,
}


# --- KEMAC encryption (RFC 3830 §4.2.3) -------------------------------------------------------


def kemac_iv(salt_key: bytes | bytearray, csb_id: int, ts_value: bytes) -> bytes:
    """AES-CM initial counter block ``(salt ⊕ (0x0000 || CSB ID || T)) || 0x0000`` (§4.2.3).

    ``ts_value`` is the message's own T payload value: 8 bytes, or 4 bytes (COUNTER,
    NTP-UTC-32) zero-extended to 64 bits as an integer.
    """
    if len(salt_key) != SALT_KEY_LENGTH:
        raise MikeyError(f"salt_key must be {SALT_KEY_LENGTH} bytes")
    if not 0 <= csb_id <= 0xFFFFFFFF:
        raise MikeyError("CSB ID out of range (32 bits)")
    if len(ts_value) not in (4, 8):
        raise MikeyError("timestamp value must be 4 or 8 bytes")
    mask = (csb_id << 64) | int.from_bytes(ts_value, "big")
    return (int.from_bytes(salt_key, "big") ^ mask).to_bytes(SALT_KEY_LENGTH, "big") + b"\x00\x00"


def _encr_key(alg: EncrAlg, keys: TransportKeys) -> bytearray:
    expected = ENCR_KEY_LENGTH[alg]
    if len(keys.encr_key) != expected:
        raise MikeyError(f"{alg.name} needs a {expected}-byte encr_key")
    return keys.encr_key


def _aes_cm(
    alg: EncrAlg, keys: TransportKeys, csb_id: int, ts_value: bytes, data: bytes | bytearray
) -> bytearray:
    key = _encr_key(alg, keys)
    iv = kemac_iv(keys.salt_key, csb_id, ts_value)
    c = _accel.speedups
    if c is not None:
        return c.aes_ctr(key, iv, data)
    # The bytearray itself, not an immutable (unwipeable) bytes copy of the key; the output
    # goes straight into a bytearray the caller can wipe.
    out = bytearray(len(data) + 15)
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    n = ctx.update_into(data, out)
    ctx.finalize()
    del out[n:]
    return out


_ENCR_ALGS: dict[int, EncrAlg] = {int(a): a for a in EncrAlg}


def _check_alg(alg: int) -> EncrAlg:
    known = _ENCR_ALGS.get(alg) if isinstance(alg, int) else None
    if known is None:
        raise MikeyError(f"unsupported KEMAC encryption algorithm {alg}")
    return known


def encrypt_kemac(
    alg: EncrAlg,
    keys: TransportKeys,
    csb_id: int,
    ts_value: bytes,
    plaintext: bytes | bytearray,
) -> bytes:
    """Encrypt the KEMAC sub-payload chain (RFC 3830 §4.2.3, §6.2).

    AES-KW-128 (RFC 3394) needs a plaintext that is a multiple of 8 bytes and at least 16
    bytes long; MIKEY defines no padding, so the caller must size the key data accordingly
    (otherwise :class:`MikeyError`). Every algorithm rejects plaintexts whose ciphertext would
    not fit the 16-bit Encr data len field.
    """
    alg = _check_alg(alg)
    limit = MAX_KEMAC_DATA - (8 if alg is EncrAlg.AES_KW_128 else 0)
    if len(plaintext) > limit:
        raise MikeyError("KEMAC plaintext too long for the 16-bit Encr data len field")
    if alg is EncrAlg.NULL:
        return bytes(plaintext)
    if alg is EncrAlg.AES_KW_128:
        key = _encr_key(alg, keys)
        if len(plaintext) < 16 or len(plaintext) % 8:
            raise MikeyError(
                "AES-KW-128 (RFC 3394) needs a plaintext of at least 16 bytes and a multiple "
                f"of 8 bytes; got {len(plaintext)} bytes (size the key data accordingly)"
            )
        return aes_key_wrap(bytes(key), bytes(plaintext))
    return bytes(_aes_cm(alg, keys, csb_id, ts_value, plaintext))


def decrypt_kemac(
    alg: EncrAlg,
    keys: TransportKeys,
    csb_id: int,
    ts_value: bytes,
    ciphertext: bytes | bytearray,
) -> bytearray:
    """Decrypt KEMAC Encr data; an AES-KW integrity failure raises AuthenticationError."""
    alg = _check_alg(alg)
    if alg is EncrAlg.NULL:
        return bytearray(ciphertext)
    if alg is EncrAlg.AES_KW_128:
        key = _encr_key(alg, keys)
        if len(ciphertext) < 24 or len(ciphertext) % 8:
            raise AuthenticationError()
        try:
            return bytearray(aes_key_unwrap(bytes(key), bytes(ciphertext)))
        except (InvalidUnwrap, ValueError):
            raise AuthenticationError() from None
    return _aes_cm(alg, keys, csb_id, ts_value, ciphertext)


# --- MAC (RFC 3830 §6.2, §6.9) ----------------------------------------------------------------


def mac(alg: MacAlg, key: bytes | bytearray, data: bytes | bytearray) -> bytes:
    """KEMAC / V MAC value; empty for the NULL MAC algorithm."""
    digest = _MAC_DIGEST.get(alg) if isinstance(alg, int) else None
    if digest is None:
        if alg == MacAlg.NULL:
            return b""
        raise MikeyError(f"unsupported MAC algorithm {alg}")
    c = _accel.speedups
    if c is not None:
        return c.hmac(digest[1], key, data)
    return hmac_digest(key, data, digest[0])


def verify_mac(
    alg: MacAlg, key: bytes | bytearray, data: bytes | bytearray, tag: bytes | bytearray
) -> None:
    """Check a MAC in constant time; any mismatch (also of length) raises AuthenticationError.

    The NULL algorithm verifies only an empty tag; refusing unauthenticated messages is policy.
    """
    expected = mac(alg, key, data)
    if len(tag) != MAC_LENGTH[alg]:  # alg is known: mac() refused the others
        raise AuthenticationError()
    if not hmac.compare_digest(expected, bytes(tag)):
        raise AuthenticationError()


# --- RSA envelope (RFC 3830 §4.2.5, §6.3) -----------------------------------------------------


def rsa_encrypt_envelope(public_key: rsa.RSAPublicKey, env_key: bytes | bytearray) -> bytes:
    """Encrypt the envelope key with RSA PKCS#1 v1.5 (the RFC 3830 default)."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateError("envelope encryption needs an RSA public key")
    if not env_key:
        raise MikeyError("envelope key is empty")
    if len(env_key) > public_key.key_size // 8 - 11:
        raise MikeyError("envelope key too long for the RSA modulus (PKCS#1 v1.5)")
    return public_key.encrypt(bytes(env_key), padding.PKCS1v15())


def rsa_decrypt_envelope(
    private_key: rsa.RSAPrivateKey,
    data: bytes | bytearray,
    expected_len: int | None,
    rng: Callable[[int], bytes],
) -> bytearray:
    """Decrypt the envelope key; never reveals a padding failure (implicit rejection).

    On bad padding, a wrong ciphertext length, or a plaintext whose length differs from
    ``expected_len``, returns ``rng(expected_len)`` random bytes instead, so the KEMAC MAC check
    decides. ``expected_len=None`` accepts any non-empty plaintext (the envelope key length is
    not fixed by RFC 3830; minisip sends 112 bytes) and substitutes 16 random bytes on failure.
    """
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise MikeyError("envelope decryption needs an RSA private key")
    if expected_len is not None and not 0 < expected_len <= private_key.key_size // 8 - 11:
        raise MikeyError("expected envelope key length out of range for this RSA key")
    fallback_len = 16 if expected_len is None else expected_len
    try:
        plain = bytearray(private_key.decrypt(bytes(data), padding.PKCS1v15()))
    except ValueError:
        plain = bytearray()
    ok = bool(plain) and (expected_len is None or len(plain) == expected_len)
    if ok:
        return plain
    wipe(plain)
    substitute = bytearray(rng(fallback_len))
    if len(substitute) != fallback_len:
        raise MikeyError("rng returned the wrong number of bytes")
    return substitute


# --- signatures (RFC 3830 §6.5) ---------------------------------------------------------------


def _sign_params(
    sign_type: SignType, hash_alg: SignHash, *, verifying: bool
) -> tuple[padding.AsymmetricPadding, hashes.HashAlgorithm]:
    try:
        algorithm = _SIGN_HASH[SignHash(hash_alg)]()
    except (ValueError, KeyError):
        raise MikeyError(f"unsupported signature hash {hash_alg!r}") from None
    try:
        sign_type = SignType(sign_type)
    except ValueError:
        raise MikeyError(f"unsupported signature type {sign_type}") from None
    if sign_type is SignType.RSA_PKCS1_1_5:
        return padding.PKCS1v15(), algorithm
    if sign_type is SignType.RSA_PSS:
        salt = padding.PSS.AUTO if verifying else padding.PSS.DIGEST_LENGTH
        return padding.PSS(mgf=padding.MGF1(algorithm), salt_length=salt), algorithm
    raise MikeyError(f"signature type {sign_type.name} is not supported")


def sign(
    private_key: rsa.RSAPrivateKey,
    data: bytes | bytearray,
    sign_type: SignType = SignType.RSA_PKCS1_1_5,
    hash_alg: SignHash = SignHash.SHA_256,
) -> bytes:
    """RSA signature (PKCS#1 v1.5 or PSS with salt length = digest length) over ``data``."""
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise MikeyError("signing needs an RSA private key")
    pad, algorithm = _sign_params(sign_type, hash_alg, verifying=False)
    return private_key.sign(bytes(data), pad, algorithm)


def verify_signature(
    public_key: rsa.RSAPublicKey,
    data: bytes | bytearray,
    sig: bytes | bytearray,
    sign_type: SignType = SignType.RSA_PKCS1_1_5,
    hash_alg: SignHash = SignHash.SHA_256,
) -> None:
    """Verify an RSA signature; a bad one raises AuthenticationError (PSS: any salt length)."""
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise CertificateError("the peer's certificate does not carry an RSA key")
    pad, algorithm = _sign_params(sign_type, hash_alg, verifying=True)
    try:
        public_key.verify(bytes(sig), bytes(data), pad, algorithm)
    except (InvalidSignature, ValueError):
        raise AuthenticationError() from None


# --- certificate hash (RFC 3830 §6.8) ---------------------------------------------------------


def cert_hash(func: HashFunc | int, der: bytes | bytearray) -> bytes:
    """CHASH value: the hash of a DER certificate."""
    try:
        name = _CERT_DIGEST[HashFunc(func)]
    except (ValueError, KeyError):
        raise MikeyError(f"unsupported certificate hash function {func}") from None
    return hashlib.new(name, bytes(der), usedforsecurity=False).digest()
