"""The MIKEY pseudo-random function and the key derivations built on it (RFC 3830 §4.1).

``PRF(inkey, label, len)`` splits the inkey into 256-bit chunks ``s_1 .. s_n`` (the last one
1..32 bytes, a *full* 32 bytes when ``len(inkey)`` is a multiple of 32), runs the P function
(an HMAC chain, RFC 3830 §4.1.2) on each chunk and XORs the results, truncated to ``len``
bytes. PRF func 0 (MIKEY-1) uses HMAC-SHA-1 and 160-bit blocks; PRF func 1
(PRF-HMAC-SHA-256, RFC 6043 §6.1) uses HMAC-SHA-256 and 256-bit blocks.

Labels are ``constant(32) || cs_id(8) || CSB ID(32) || RAND`` (RFC 3830 §4.1.3, §4.1.4).
:class:`PrfKey` keeps one keyed HMAC state per chunk and copies it per block, so deriving
several keys from one inkey (the three transport keys, TEK and salt) costs a few microseconds.

Where the C accelerator (:mod:`mikey._accel`) was built, :func:`prf`, :func:`derive`,
:func:`derive_tek_salt` and :func:`derive_transport_keys` run in it: one call per key set, each
chunk's HMAC key prepared once. The Python code below is the reference it is tested against and
the fallback where it is absent (``PrfKey`` is always the Python code).

``minisip_compat=True`` reproduces minisip's libmikey bug: it takes the last chunk length as
``len(inkey) % 32``, i.e. an *empty* HMAC key for the last chunk when the inkey length is a
multiple of 32. Only inkeys of 32, 64, ... bytes are affected; use it solely to talk to such
peers (or avoid those inkey lengths).
"""

from __future__ import annotations

import hmac
import struct
from dataclasses import dataclass, field
from enum import IntEnum

from . import _accel
from ._accel import wipe as _wipe
from ._frozen import fast_init
from .errors import MikeyError
from .registry import EncrAlg, MacAlg, PrfFunc

__all__ = [
    "AUTH_KEY_LENGTH",
    "ENCR_KEY_LENGTH",
    "MAX_OUTPUT_LENGTH",
    "SALT_KEY_LENGTH",
    "TRANSPORT_CS_ID",
    "KeyConst",
    "PrfKey",
    "TransportKeys",
    "derive",
    "derive_tek_salt",
    "derive_transport_keys",
    "hmac_digest",
    "label",
    "label_tail",
    "prf",
]


class KeyConst(IntEnum):
    """PRF label constants (RFC 3830 §4.1.3 for TGK-derived keys, §4.1.4 for transport keys)."""

    TEK = 0x2AD01C64
    AUTH = 0x1B5C7973
    ENCR = 0x15798CEF
    SALT = 0x39A2C14B
    TRANSPORT_ENCR = 0x150533E1
    TRANSPORT_AUTH = 0x2D22AC75
    TRANSPORT_SALT = 0x29B88916


#: cs_id used in the labels of the keys protecting the MIKEY message itself (RFC 3830 §4.1.4).
TRANSPORT_CS_ID = 0xFF

#: KEMAC encryption key length per algorithm (RFC 3830 §6.2; RFC 6043 for AES-CM-256).
ENCR_KEY_LENGTH: dict[EncrAlg, int] = {
    EncrAlg.NULL: 0,
    EncrAlg.AES_CM_128: 16,
    EncrAlg.AES_KW_128: 16,
    EncrAlg.AES_CM_256: 32,
}
#: KEMAC / V MAC key length per algorithm (RFC 3830 §6.2; RFC 6043).
AUTH_KEY_LENGTH: dict[MacAlg, int] = {
    MacAlg.NULL: 0,
    MacAlg.HMAC_SHA_1_160: 20,
    MacAlg.HMAC_SHA_256_256: 32,
}
#: Salt key length, 112 bits (RFC 3830 §4.1.4).
SALT_KEY_LENGTH = 14
#: Upper bound on one PRF output; MIKEY keys are at most a few hundred bytes.
MAX_OUTPUT_LENGTH = 65536

_CHUNK = 32  # RFC 3830 §4.1.2: the inkey is split into 256-bit pieces
_MAX_TAIL = 4096  # the accelerator's label buffer (a tail is 5 bytes + RAND, RAND <= 255)
# PRF func -> (hashlib name, block size, the accelerator's digest number)
_DIGEST: dict[int, tuple[str, int, int]] = {
    PrfFunc.MIKEY_1: ("sha1", 20, 1),
    PrfFunc.PRF_HMAC_SHA_256: ("sha256", 32, 2),
}

# ``hmac.digest`` is a thin Python wrapper around this C one-shot HMAC; calling it directly saves
# a Python frame per HMAC (22 of them in a PSK round trip). Same function, same OpenSSL HMAC.
try:
    from _hashlib import hmac_digest
except ImportError:  # pragma: no cover - CPython without OpenSSL
    hmac_digest = hmac.digest  # type: ignore[assignment]
_HMAC = hmac_digest
_LABEL_TAIL = struct.Struct(">BI")
_TEK_CONST = int(KeyConst.TEK)
_SALT_CONST = int(KeyConst.SALT)
_TRANSPORT_ENCR = int(KeyConst.TRANSPORT_ENCR)
_TRANSPORT_SALT = int(KeyConst.TRANSPORT_SALT)
_TRANSPORT_AUTH = int(KeyConst.TRANSPORT_AUTH)


def label(const: int, cs_id: int, csb_id: int, rand: bytes) -> bytes:
    """The PRF label ``const || cs_id || CSB ID || RAND`` (RFC 3830 §4.1.3)."""
    if not 0 <= const <= 0xFFFFFFFF:
        raise MikeyError("PRF label constant out of range (32 bits)")
    return const.to_bytes(4, "big") + label_tail(cs_id, csb_id, rand)


def label_tail(cs_id: int, csb_id: int, rand: bytes) -> bytes:
    """``cs_id || CSB ID || RAND``: the part of a label that all its constants share."""
    if not 0 <= cs_id <= 0xFF:
        raise MikeyError("crypto session ID out of range (8 bits)")
    if not 0 <= csb_id <= 0xFFFFFFFF:
        raise MikeyError("CSB ID out of range (32 bits)")
    return _LABEL_TAIL.pack(cs_id, csb_id) + bytes(rand)


class PrfKey:
    """An inkey prepared for repeated PRF evaluations with different labels.

    Keeps a private copy of each 256-bit chunk (wiped by :meth:`wipe`) and uses the one-shot C
    HMAC (``hmac.digest``), which is several times faster than copying keyed HMAC objects.
    """

    __slots__ = ("_block", "_chunks", "_digest")

    def __init__(
        self,
        inkey: bytes | bytearray,
        func: PrfFunc = PrfFunc.MIKEY_1,
        *,
        minisip_compat: bool = False,
    ) -> None:
        params = _DIGEST.get(func) if isinstance(func, int) else None
        if params is None:
            raise MikeyError(f"unsupported PRF func {func!r}")
        digest, block, _ = params
        if not isinstance(inkey, (bytes, bytearray)):
            raise MikeyError("PRF inkey must be bytes or bytearray")
        size = len(inkey)
        if size == 0:
            raise MikeyError("PRF inkey is empty")
        chunks: list[bytearray] = []
        if size < _CHUNK:  # the usual case (PSK, TGK, envelope key): one short chunk
            chunks.append(bytearray(inkey))
        for start in range(0, size if size >= _CHUNK else 0, _CHUNK):
            end = start + _CHUNK
            chunk = bytearray(inkey[start:end])
            if minisip_compat and end == size:
                # minisip: last chunk length = len % 32, i.e. 0 for a multiple of 32.
                del chunk[size % _CHUNK :]
            chunks.append(chunk)
        self._chunks = chunks
        self._digest = digest
        self._block = block

    def derive(self, label: bytes, length: int) -> bytearray:
        """``PRF(inkey, label, length)`` with ``length`` in bytes (RFC 3830 §4.1.2)."""
        if not isinstance(length, int) or not 0 <= length <= MAX_OUTPUT_LENGTH:
            raise MikeyError(f"PRF output length must be 0..{MAX_OUTPUT_LENGTH} bytes")
        if length == 0:
            return bytearray()
        if type(label) is not bytes:
            label = bytes(label)
        chunks = self._chunks
        if len(chunks) == 1:
            key, digest = chunks[0], self._digest
            if length <= self._block:  # one P block: A_1 = HMAC(s, label), HMAC(s, A_1 || label)
                return bytearray(_HMAC(key, _HMAC(key, label, digest) + label, digest)[:length])
            blocks = -(-length // self._block)
            return bytearray(_p(key, label, blocks, digest)[:length])
        blocks = -(-length // self._block)
        acc = 0
        for chunk in chunks:
            acc ^= int.from_bytes(_p(chunk, label, blocks, self._digest), "big")
        return bytearray(acc.to_bytes(blocks * self._block, "big")[:length])

    def wipe(self) -> None:
        """Overwrite the private copies of the inkey chunks."""
        _wipe(*self._chunks)


def derive_tek_salt(  # noqa: PLR0917 (mirrors derive_transport_keys)
    tgk: bytes | bytearray,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    key_len: int,
    salt_len: int,
    func: PrfFunc = PrfFunc.MIKEY_1,
    *,
    minisip_compat: bool = False,
) -> tuple[bytearray, bytearray]:
    """The TEK and TEK salt of crypto session ``cs_id`` from the TGK (RFC 3830 §4.1.3).

    A ``salt_len`` of 0 skips the salt (TGK+SALT key data transports it).
    """
    tail = label_tail(cs_id, csb_id, rand)
    tek, salt = _derive_keys(
        tgk, func, minisip_compat, tail, ((_TEK_CONST, key_len), (_SALT_CONST, salt_len))
    )
    return tek, salt


def _derive_keys(
    inkey: bytes | bytearray,
    func: PrfFunc,
    minisip_compat: bool,
    tail: bytes,
    wanted: tuple[tuple[int, int], ...],
) -> list[bytearray]:
    """``PRF(inkey, const || tail, length)`` for each (const, length) of ``wanted``.

    The accelerator prepares the inkey's chunks once for all of them. In Python, the usual case
    (an inkey shorter than one chunk, outputs of at most one block) uses the inkey in place:
    PrfKey would copy it only to split it, so there is no private copy to wipe.
    """
    params = _DIGEST.get(func) if isinstance(func, int) else None
    c = _accel.speedups
    if (
        c is not None
        and params is not None
        and isinstance(inkey, (bytes, bytearray))
        and inkey
        and len(tail) <= _MAX_TAIL
    ):
        try:  # the accelerator checks each (constant, length) itself
            return c.prf_many(params[2], inkey, tail, wanted, minisip_compat)
        except ValueError:
            pass  # a length out of range: PrfKey below raises the MikeyError that names it
    lengths = [length for _, length in wanted]
    if (
        params is not None
        and isinstance(inkey, (bytes, bytearray))
        and 0 < len(inkey) < _CHUNK
        and min(lengths) >= 0
        and max(lengths) <= params[1]  # at most one block each (<= MAX_OUTPUT_LENGTH)
    ):
        digest = params[0]
        return [
            _one_block(inkey, const.to_bytes(4, "big") + tail, digest, length)
            for const, length in wanted
        ]
    key = PrfKey(inkey, func, minisip_compat=minisip_compat)
    try:
        return [key.derive(const.to_bytes(4, "big") + tail, length) for const, length in wanted]
    finally:
        key.wipe()


def _one_block(key: bytes | bytearray, label: bytes, digest: str, length: int) -> bytearray:
    """PRF output of at most one block from a one-chunk inkey: HMAC(s, HMAC(s, label) || label)."""
    if not length:
        return bytearray()
    return bytearray(_HMAC(key, _HMAC(key, label, digest) + label, digest)[:length])


def _p(key: bytearray, label: bytes, blocks: int, digest: str) -> bytes:
    """P(s, label, m) of RFC 3830 §4.1.2: HMAC(s, A_i || label) for A_i = HMAC(s, A_{i-1})."""
    parts = []
    a = label
    mac = _HMAC
    for _ in range(blocks):
        a = mac(key, a, digest)
        parts.append(mac(key, a + label, digest))
    return b"".join(parts)


def prf(
    inkey: bytes | bytearray,
    label: bytes,
    length: int,
    func: PrfFunc = PrfFunc.MIKEY_1,
    *,
    minisip_compat: bool = False,
) -> bytearray:
    """The MIKEY PRF (RFC 3830 §4.1.2; PRF-HMAC-SHA-256 per RFC 6043 §6.1)."""
    c = _accel.speedups
    params = _DIGEST.get(func) if isinstance(func, int) else None
    if (
        c is not None
        and params is not None
        and isinstance(inkey, (bytes, bytearray))
        and inkey
        and isinstance(label, (bytes, bytearray))
        and isinstance(length, int)
        and 0 <= length <= MAX_OUTPUT_LENGTH
    ):
        return c.prf(params[2], inkey, label, length, minisip_compat)
    key = PrfKey(inkey, func, minisip_compat=minisip_compat)
    try:
        return key.derive(label, length)
    finally:
        key.wipe()


def derive(  # noqa: PLR0917 (signature agreed with the exchange modules)
    inkey: bytes | bytearray,
    const: int,
    cs_id: int,
    csb_id: int,
    rand: bytes,
    length: int,
    func: PrfFunc = PrfFunc.MIKEY_1,
    *,
    minisip_compat: bool = False,
) -> bytearray:
    """One key: ``PRF(inkey, const || cs_id || CSB ID || RAND, length)`` (RFC 3830 §4.1.3)."""
    return prf(
        inkey, label(const, cs_id, csb_id, rand), length, func, minisip_compat=minisip_compat
    )


@fast_init
@dataclass(frozen=True, slots=True)
class TransportKeys:
    """Keys protecting a MIKEY message: KEMAC encryption, AES-CM IV salt, MAC (RFC 3830 §4.1.4)."""

    encr_key: bytearray = field(repr=False)
    salt_key: bytearray = field(repr=False)
    auth_key: bytearray = field(repr=False)

    def wipe(self) -> None:
        """Overwrite all three keys with zeros."""
        _wipe(self.encr_key, self.salt_key, self.auth_key)


def derive_transport_keys(  # noqa: PLR0917 (agreed signature)
    k: bytes | bytearray,
    csb_id: int,
    rand: bytes,
    func: PrfFunc = PrfFunc.MIKEY_1,
    encr_alg: EncrAlg = EncrAlg.AES_CM_128,
    mac_alg: MacAlg = MacAlg.HMAC_SHA_1_160,
    *,
    minisip_compat: bool = False,
) -> TransportKeys:
    """encr_key, salt_key and auth_key from the PSK or envelope key ``k`` (RFC 3830 §4.1.4).

    Key lengths follow the KEMAC algorithms; the salt is always 112 bits.
    """
    encr_len = ENCR_KEY_LENGTH.get(encr_alg) if isinstance(encr_alg, int) else None
    if encr_len is None:
        raise MikeyError(f"unsupported KEMAC encryption algorithm {encr_alg!r}")
    auth_len = AUTH_KEY_LENGTH.get(mac_alg) if isinstance(mac_alg, int) else None
    if auth_len is None:
        raise MikeyError(f"unsupported MAC algorithm {mac_alg!r}")
    tail = label_tail(TRANSPORT_CS_ID, csb_id, rand)
    return TransportKeys(
        *_derive_keys(
            k,
            func,
            minisip_compat,
            tail,
            (
                (_TRANSPORT_ENCR, encr_len),
                (_TRANSPORT_SALT, SALT_KEY_LENGTH),
                (_TRANSPORT_AUTH, auth_len),
            ),
        )
    )
