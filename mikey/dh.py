"""Finite-field Diffie-Hellman over the OAKLEY groups of RFC 3830 §6.4 (g = 2).

Groups: OAKLEY 5 (1536-bit MODP, RFC 3526; mandatory), OAKLEY 1 (768-bit) and OAKLEY 2
(1024-bit, RFC 2409 §6). All three moduli are safe primes p = 2q + 1. DH values and the shared
secret (the TGK in DH mode, RFC 3830 §3.3) are fixed-length big-endian integers of G bytes.

Peer values are validated before use (RFC 3830 §3.3; NIST SP 800-56A §5.6.2.3): 1 < y < p - 1
and y must lie in the prime-order subgroup, i.e. y^q ≡ 1 (mod p). For a safe prime that is
Euler's criterion, so it is computed as the Legendre symbol (y/p) = 1 with the binary Jacobi
algorithm instead of the modular exponentiation (for 1536 bits about 0.07 ms with OpenSSL's
BN_kronecker where the accelerator runs, 0.2 ms in Python; the exponentiation takes 1-10 ms).
Short (not left-padded) peer values are accepted because minisip sends them (docs/WIRE.md
§Short DH values).

The exponentiations with the private exponent run in OpenSSL's constant-time Montgomery
exponentiation when the C accelerator (:mod:`mikey._accel`) was built (about 0.2 ms for
OAKLEY 5); otherwise in Python's ``pow``, which is about ten times slower and whose running time
depends on the exponent (``cryptography`` deprecates finite-field DH, so it is not used).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from . import _accel
from .errors import MikeyError, ProtocolError
from .registry import DH_VALUE_LENGTH, DhGroup, ErrorNo

__all__ = [
    "DH_PARAMS",
    "DhParams",
    "generate_private",
    "public_value",
    "shared_secret",
    "validate_peer_value",
]

_OAKLEY_1 = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A63A3620FFFFFFFFFFFFFFFF"
)
_OAKLEY_2 = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF"
)
_OAKLEY_5 = (
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F"
    "83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA237327FFFFFFFFFFFFFFFF"
)


@dataclass(frozen=True, slots=True)
class DhParams:
    """One MODP group: prime p, generator g, value length G, subgroup order q, exponent size."""

    group: DhGroup
    p: int
    g: int
    length: int
    private_bits: int

    @property
    def q(self) -> int:
        """Order of the prime-order subgroup, (p - 1) / 2."""
        return (self.p - 1) >> 1


def _params(group: DhGroup, hex_prime: str, private_bits: int) -> DhParams:
    return DhParams(group, int(hex_prime, 16), 2, DH_VALUE_LENGTH[group], private_bits)


#: Private exponents are at least twice the group's security strength (NIST SP 800-57).
DH_PARAMS: dict[DhGroup, DhParams] = {
    DhGroup.OAKLEY_1: _params(DhGroup.OAKLEY_1, _OAKLEY_1, 256),
    DhGroup.OAKLEY_2: _params(DhGroup.OAKLEY_2, _OAKLEY_2, 256),
    DhGroup.OAKLEY_5: _params(DhGroup.OAKLEY_5, _OAKLEY_5, 320),
}


def _group(group: DhGroup) -> DhParams:
    try:
        return DH_PARAMS[DhGroup(group)]
    except (ValueError, KeyError):
        raise ProtocolError(f"unsupported DH group {group}", error_no=ErrorNo.INVALID_DH) from None


def _jacobi(a: int, n: int) -> int:
    """Jacobi symbol (a/n) for odd n > 0."""
    a %= n
    result = 1
    while a:
        twos = (a & -a).bit_length() - 1
        a >>= twos
        if twos & 1 and n & 7 in (3, 5):
            result = -result
        a, n = n, a
        if a & 3 == 3 and n & 3 == 3:
            result = -result
        a %= n
    return result if n == 1 else 0


def _legendre(params: DhParams, y: int) -> int:
    """(y/p) for the group's prime; y is public, so no constant time is needed."""
    c = _accel.speedups
    if c is not None:
        size = params.length
        return c.jacobi(y.to_bytes(size, "big"), params.p.to_bytes(size, "big"))
    return _jacobi(y, params.p)


def generate_private(group: DhGroup, rng: Callable[[int], bytes]) -> int:
    """A fresh private exponent of exactly ``private_bits`` bits drawn from ``rng``."""
    params = _group(group)
    nbytes = params.private_bits // 8
    raw = rng(nbytes)
    if len(raw) != nbytes:
        raise MikeyError("rng returned the wrong number of bytes")
    return int.from_bytes(raw, "big") | (1 << (params.private_bits - 1))


def public_value(group: DhGroup, x: int) -> bytes:
    """``g^x mod p`` as a G-byte big-endian value (RFC 3830 §6.4)."""
    params = _group(group)
    if not 1 < x < params.p - 1:
        raise MikeyError("DH private exponent out of range")
    return bytes(_modexp(params, params.g, x))


def validate_peer_value(group: DhGroup, y_bytes: bytes | bytearray) -> int:
    """The peer's DH value as an integer, after range and subgroup checks.

    Raises ProtocolError with error number INVALID_DH (RFC 3830 §6.12) unless
    1 < y < p - 1 and y^q ≡ 1 (mod p). Values shorter than G bytes are accepted.
    """
    params = _group(group)
    if not 0 < len(y_bytes) <= params.length:
        raise ProtocolError("DH value has the wrong length", error_no=ErrorNo.INVALID_DH)
    y = int.from_bytes(y_bytes, "big")
    if not 1 < y < params.p - 1:
        raise ProtocolError("DH value out of range", error_no=ErrorNo.INVALID_DH)
    if _legendre(params, y) != 1:  # Euler: y^q mod p == 1 for the safe prime p = 2q + 1
        raise ProtocolError("DH value not in the prime-order subgroup", error_no=ErrorNo.INVALID_DH)
    return y


def shared_secret(group: DhGroup, x: int, y: int | bytes | bytearray) -> bytearray:
    """The G-byte shared secret ``y^x mod p`` (the TGK in DH mode, RFC 3830 §3.3).

    ``y`` as bytes is validated here; as an int it must come from :func:`validate_peer_value`
    (only the range is re-checked).
    """
    params = _group(group)
    if isinstance(y, (bytes, bytearray)):
        y = validate_peer_value(group, y)
    elif not 1 < y < params.p - 1:
        raise ProtocolError("DH value out of range", error_no=ErrorNo.INVALID_DH)
    if not 1 < x < params.p - 1:
        raise MikeyError("DH private exponent out of range")
    return _modexp(params, y, x)


def _modexp(params: DhParams, base: int, x: int) -> bytearray:
    """``base^x mod p`` as G bytes; x is secret (constant time where the accelerator runs)."""
    c = _accel.speedups
    if c is not None:
        size = params.length
        xb = bytearray(x.to_bytes(size, "big"))
        try:
            return c.modexp(base.to_bytes(size, "big"), xb, params.p.to_bytes(size, "big"))
        finally:
            xb[:] = bytes(size)
    return bytearray(pow(base, x, params.p).to_bytes(params.length, "big"))
