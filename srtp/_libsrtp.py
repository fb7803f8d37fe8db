"""A small ctypes shim over the libsrtp 2.7 that pylibsrtp bundles.

pylibsrtp's cffi extension module statically contains libsrtp and exports every ``srtp_*``
symbol, but its Python API lacks the ROC, MKI, AES-256-CM and NULL transforms MIKEY needs. This
module opens that same shared object with :class:`ctypes.CDLL` (no second copy of libsrtp: the
dynamic loader hands back the already loaded image, so the crypto kernel is shared) and declares
the libsrtp 2.x ``srtp_policy_t`` layout, checked against pylibsrtp's compiled field offsets at
import.

:class:`LibsrtpSession` owns one ``srtp_t`` for one stream (one SSRC, or a wildcard). It is not
safe to use from two threads at once; the GSA layer serialises access. The module counts live
``srtp_t`` sessions so :func:`live_sessions` can prove teardown left nothing behind.
"""

from __future__ import annotations

import ctypes
import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NoReturn

from .errors import (
    ContextClosedError,
    KeyMaterialError,
    LibsrtpUnavailableError,
    PacketSizeError,
    SrtpAuthenticationError,
    SrtpReplayError,
    SrtpStatusError,
    UnsupportedPolicyError,
)

# libsrtp 2.7 limits (include/srtp.h)
SRTP_MAX_TAG_LEN = 16
SRTP_MAX_MKI_LEN = 128
SRTP_MAX_TRAILER_LEN = SRTP_MAX_TAG_LEN + SRTP_MAX_MKI_LEN
SRTP_MAX_SRTCP_TRAILER_LEN = 4 + SRTP_MAX_TRAILER_LEN
SRTP_MAX_NUM_MASTER_KEYS = 16

#: Largest RTP/RTCP packet (before protection) a session accepts; the buffer adds the trailer.
MAX_PACKET_LEN = 1500
_BUFFER_LEN = MAX_PACKET_LEN + SRTP_MAX_SRTCP_TRAILER_LEN


class ErrStatus(enum.IntEnum):
    """``srtp_err_status_t`` (include/srtp.h)."""

    OK = 0
    FAIL = 1
    BAD_PARAM = 2
    ALLOC_FAIL = 3
    DEALLOC_FAIL = 4
    INIT_FAIL = 5
    TERMINUS = 6
    AUTH_FAIL = 7
    CIPHER_FAIL = 8
    REPLAY_FAIL = 9
    REPLAY_OLD = 10
    ALGO_FAIL = 11
    NO_SUCH_OP = 12
    NO_CTX = 13
    CANT_CHECK = 14
    KEY_EXPIRED = 15
    SOCKET_ERR = 16
    SIGNAL_ERR = 17
    NONCE_BAD = 18
    READ_FAIL = 19
    WRITE_FAIL = 20
    PARSE_ERR = 21
    ENCODE_ERR = 22
    SEMAPHORE_ERR = 23
    PFKEY_ERR = 24
    BAD_MKI = 25
    PKT_IDX_OLD = 26
    PKT_IDX_ADV = 27


class SsrcType(enum.IntEnum):
    UNDEFINED = 0
    SPECIFIC = 1
    ANY_INBOUND = 2
    ANY_OUTBOUND = 3


class CipherType(enum.IntEnum):
    """``srtp_cipher_type_id_t`` values (include/srtp.h)."""

    NULL = 0
    AES_ICM_128 = 1
    AES_ICM_192 = 4
    AES_ICM_256 = 5
    AES_GCM_128 = 6
    AES_GCM_256 = 7


class AuthType(enum.IntEnum):
    NULL = 0
    HMAC_SHA1 = 3


class SecServ(enum.IntFlag):
    NONE = 0
    CONF = 1
    AUTH = 2


class _CryptoPolicy(ctypes.Structure):
    _fields_ = (
        ("cipher_type", ctypes.c_uint32),
        ("cipher_key_len", ctypes.c_int),
        ("auth_type", ctypes.c_uint32),
        ("auth_key_len", ctypes.c_int),
        ("auth_tag_len", ctypes.c_int),
        ("sec_serv", ctypes.c_int),
    )


class _Ssrc(ctypes.Structure):
    _fields_ = (("type", ctypes.c_int), ("value", ctypes.c_uint))


class _MasterKey(ctypes.Structure):
    _fields_ = (
        ("key", ctypes.c_void_p),
        ("mki_id", ctypes.c_void_p),
        ("mki_size", ctypes.c_uint),
    )


class _Policy(ctypes.Structure):
    _fields_ = (
        ("ssrc", _Ssrc),
        ("rtp", _CryptoPolicy),
        ("rtcp", _CryptoPolicy),
        ("key", ctypes.c_void_p),
        ("keys", ctypes.c_void_p),  # srtp_master_key_t **
        ("num_master_keys", ctypes.c_ulong),
        ("deprecated_ekt", ctypes.c_void_p),
        ("window_size", ctypes.c_ulong),
        ("allow_repeat_tx", ctypes.c_int),
        ("enc_xtn_hdr", ctypes.c_void_p),
        ("enc_xtn_hdr_count", ctypes.c_int),
        ("next", ctypes.c_void_p),
    )


_REQUIRED = (
    "srtp_create",
    "srtp_dealloc",
    "srtp_update_stream",
    "srtp_protect_mki",
    "srtp_unprotect_mki",
    "srtp_protect_rtcp_mki",
    "srtp_unprotect_rtcp_mki",
    "srtp_set_stream_roc",
    "srtp_get_stream_roc",
)


def _load() -> ctypes.CDLL:
    try:
        # Importing the submodule imports the pylibsrtp package, which runs srtp_init() once.
        from pylibsrtp import _binding
    except ImportError as exc:  # pragma: no cover - the dependency is declared
        raise LibsrtpUnavailableError("pylibsrtp is not installed") from exc
    path = getattr(_binding, "__file__", None)
    if not path:
        raise LibsrtpUnavailableError("pylibsrtp's _binding module has no file")
    try:
        lib = ctypes.CDLL(path)
    except OSError as exc:
        raise LibsrtpUnavailableError(f"cannot open {path}") from exc
    missing = [name for name in _REQUIRED if not hasattr(lib, name)]
    if missing:
        raise LibsrtpUnavailableError(f"libsrtp lacks symbols: {', '.join(missing)}")
    _check_layout(_binding)
    return lib


def _check_layout(binding: object) -> None:
    """Compare our struct offsets with the ones pylibsrtp's C compiler produced."""
    ffi = getattr(binding, "ffi", None)
    if ffi is None:  # pragma: no cover
        return
    if ffi.sizeof("srtp_policy_t") != ctypes.sizeof(_Policy):
        raise LibsrtpUnavailableError("unexpected srtp_policy_t size: not libsrtp 2.x")
    for name, fld in ffi.typeof("srtp_policy_t").fields:
        if getattr(_Policy, name).offset != fld.offset:
            raise LibsrtpUnavailableError(f"unexpected srtp_policy_t layout at {name}")


_lib = _load()
_c_void_p = ctypes.c_void_p
_c_int_p = ctypes.POINTER(ctypes.c_int)

_lib.srtp_create.restype = ctypes.c_int
_lib.srtp_create.argtypes = (ctypes.POINTER(_c_void_p), ctypes.POINTER(_Policy))
_lib.srtp_update_stream.restype = ctypes.c_int
_lib.srtp_update_stream.argtypes = (_c_void_p, ctypes.POINTER(_Policy))
_lib.srtp_dealloc.restype = ctypes.c_int
_lib.srtp_dealloc.argtypes = (_c_void_p,)
_lib.srtp_set_stream_roc.restype = ctypes.c_int
_lib.srtp_set_stream_roc.argtypes = (_c_void_p, ctypes.c_uint32, ctypes.c_uint32)
_lib.srtp_get_stream_roc.restype = ctypes.c_int
_lib.srtp_get_stream_roc.argtypes = (_c_void_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint32))
# The four packet functions are the hot path: no argtypes (ctypes then passes our prepared
# c_void_p / array / byref / int arguments without per-call conversion checks).
_protect = _lib.srtp_protect_mki
_unprotect = _lib.srtp_unprotect_mki
_protect_rtcp = _lib.srtp_protect_rtcp_mki
_unprotect_rtcp = _lib.srtp_unprotect_rtcp_mki
for _fn in (_protect, _unprotect, _protect_rtcp, _unprotect_rtcp):
    _fn.restype = ctypes.c_int


class _LiveCounter:
    """Thread-safe count of allocated ``srtp_t`` sessions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.value = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.value += delta


_live = _LiveCounter()


def init() -> None:
    """Make sure libsrtp is initialised.

    ``srtp_init`` must run exactly once per process (a second call fails with bad_param because the
    debug modules are already registered). pylibsrtp's package import performs it under Python's
    import lock, and :func:`_load` imports that package, so by now it has run exactly once.
    """
    import pylibsrtp

    assert pylibsrtp.__version__


def live_sessions() -> int:
    """Number of libsrtp sessions created by this module and not yet deallocated."""
    return _live.value


def _raise_status(what: str, status: int) -> None:
    if status == ErrStatus.AUTH_FAIL or status == ErrStatus.BAD_MKI:
        raise SrtpAuthenticationError(f"{what}: authentication failed", status)
    if status in (ErrStatus.REPLAY_FAIL, ErrStatus.REPLAY_OLD, ErrStatus.PKT_IDX_OLD):
        raise SrtpReplayError(f"{what}: replayed or too old packet", status)
    try:
        name = ErrStatus(status).name.lower()
    except ValueError:
        name = "unknown status"
    raise SrtpStatusError(f"{what}: {name}", status)


@dataclass(frozen=True, slots=True)
class CryptoPolicy:
    """One direction's transform (``srtp_crypto_policy_t``); lengths in octets, key incl. salt."""

    cipher: CipherType
    cipher_key_len: int
    auth: AuthType
    auth_key_len: int
    auth_tag_len: int
    services: SecServ

    def _fill(self, target: _CryptoPolicy) -> None:
        target.cipher_type = int(self.cipher)
        target.cipher_key_len = self.cipher_key_len
        target.auth_type = int(self.auth)
        target.auth_key_len = self.auth_key_len
        target.auth_tag_len = self.auth_tag_len
        target.sec_serv = int(self.services)


def aes_cm(
    key_len: int, tag_len: int, services: SecServ = SecServ.CONF | SecServ.AUTH
) -> CryptoPolicy:
    """AES-CM (ICM) with HMAC-SHA1 of ``tag_len`` octets (0 = no authentication)."""
    cipher = {16: CipherType.AES_ICM_128, 24: CipherType.AES_ICM_192, 32: CipherType.AES_ICM_256}
    if key_len not in cipher or tag_len not in (0, 4, 10):
        raise UnsupportedPolicyError("AES-CM needs a 16/24/32-byte key and a 0/4/10-byte tag")
    if tag_len == 0:
        services &= ~SecServ.AUTH
    return CryptoPolicy(
        cipher[key_len],
        key_len + 14,
        AuthType.HMAC_SHA1 if tag_len else AuthType.NULL,
        20 if tag_len else 0,
        tag_len,
        services,
    )


def null_cipher(tag_len: int) -> CryptoPolicy:
    """NULL cipher with HMAC-SHA1 (``tag_len`` 4/10) or without authentication (0)."""
    if tag_len not in (0, 4, 10):
        raise UnsupportedPolicyError("NULL cipher needs a 0/4/10-byte tag")
    return CryptoPolicy(
        CipherType.NULL,
        30,
        AuthType.HMAC_SHA1 if tag_len else AuthType.NULL,
        20 if tag_len else 0,
        tag_len,
        SecServ.AUTH if tag_len else SecServ.NONE,
    )


def aes_gcm(key_len: int, tag_len: int = 16) -> CryptoPolicy:
    """AEAD AES-GCM (RFC 7714) with a 16- or 8-octet tag; master salt 12 octets."""
    cipher = {16: CipherType.AES_GCM_128, 32: CipherType.AES_GCM_256}
    if key_len not in cipher or tag_len not in (8, 16):
        raise UnsupportedPolicyError("AES-GCM needs a 16/32-byte key and an 8/16-byte tag")
    return CryptoPolicy(
        cipher[key_len], key_len + 12, AuthType.NULL, 0, tag_len, SecServ.CONF | SecServ.AUTH
    )


@dataclass(frozen=True, slots=True, eq=False)
class MasterKey:
    """One master key ‖ salt (a buffer the caller owns and wipes) and its optional MKI."""

    key_and_salt: bytearray = field(repr=False)
    mki: bytes | None = None


def _ssrc_nbo(ssrc: int) -> int:
    return int.from_bytes(ssrc.to_bytes(4, "little"), "big")


class LibsrtpSession:
    """One ``srtp_t`` holding one stream policy; see the module docstring."""

    __slots__ = (
        "_allow_repeat_tx",
        "_buf",
        "_ctx",
        "_len",
        "_len_ref",
        "_mki_count",
        "_rtcp",
        "_rtp",
        "_ssrc",
        "_ssrc_type",
        "_use_mki",
        "_view",
        "_window_size",
    )

    def __init__(
        self,
        *,
        ssrc_type: SsrcType,
        ssrc: int,
        rtp: CryptoPolicy,
        rtcp: CryptoPolicy,
        keys: Sequence[MasterKey],
        window_size: int = 128,
        allow_repeat_tx: bool = False,
        roc: int = 0,
    ) -> None:
        init()
        if not 0 <= ssrc <= 0xFFFFFFFF:
            raise KeyMaterialError("SSRC out of range")
        if not 0 <= roc <= 0xFFFFFFFF:
            raise KeyMaterialError("ROC out of range")
        if roc and ssrc_type != SsrcType.SPECIFIC:
            raise UnsupportedPolicyError("a non-zero ROC needs a specific SSRC")
        if not 64 <= window_size < 0x8000:
            raise UnsupportedPolicyError("replay window must be 64..32767 packets")
        self._rtp = rtp
        self._rtcp = rtcp
        self._ssrc_type = ssrc_type
        self._ssrc = ssrc
        self._window_size = window_size
        self._allow_repeat_tx = allow_repeat_tx
        self._use_mki = 0
        self._mki_count = 0
        self._ctx: ctypes.c_void_p | None = None
        self._buf = ctypes.create_string_buffer(_BUFFER_LEN)
        self._len = ctypes.c_int(0)
        self._len_ref = ctypes.byref(self._len)
        self._view = memoryview(self._buf).cast("B")
        ctx = ctypes.c_void_p()
        self._with_policy(keys, lambda pol: _lib.srtp_create(ctypes.byref(ctx), pol), "srtp_create")
        self._ctx = ctx
        _live.add(1)
        if roc:
            self.set_roc(roc)

    # -- policy building -------------------------------------------------------------------

    def _with_policy(self, keys: Sequence[MasterKey], call: object, what: str) -> None:
        """Build a policy around C copies of ``keys``, run ``call``, then scrub the copies."""
        if not keys or len(keys) > SRTP_MAX_NUM_MASTER_KEYS:
            raise KeyMaterialError(f"need 1..{SRTP_MAX_NUM_MASTER_KEYS} master keys")
        need = max(self._rtp.cipher_key_len, self._rtcp.cipher_key_len)
        mkis = [k.mki for k in keys]
        with_mki = mkis[0] is not None
        if any((m is not None) != with_mki for m in mkis):
            raise KeyMaterialError("either every master key has an MKI or none has")
        if with_mki:
            sizes = {len(m or b"") for m in mkis}
            if len(sizes) != 1 or not 1 <= sizes.pop() <= SRTP_MAX_MKI_LEN:
                raise KeyMaterialError("MKIs must share one length of 1..128 bytes")
            if len(set(mkis)) != len(mkis):
                raise KeyMaterialError("duplicate MKI")
        elif len(keys) > 1:
            raise KeyMaterialError("several master keys need MKIs")
        for k in keys:
            if len(k.key_and_salt) != need:
                raise KeyMaterialError(f"master key and salt must be {need} bytes together")
            if not any(k.key_and_salt):
                raise KeyMaterialError("master key is wiped")
        # from_buffer_copy: one C copy into memory we own and scrub below; nothing keeps an
        # export of the caller's bytearray alive (from_buffer did, until the GC ran).
        array = ctypes.c_char * need
        key_bufs = [array.from_buffer_copy(k.key_and_salt) for k in keys]
        try:
            pol = _Policy()
            pol.ssrc.type = int(self._ssrc_type)
            pol.ssrc.value = self._ssrc
            self._rtp._fill(pol.rtp)
            self._rtcp._fill(pol.rtcp)
            pol.window_size = self._window_size
            pol.allow_repeat_tx = 1 if self._allow_repeat_tx else 0
            keepalive: list[object] = []
            if with_mki:
                mk_structs = (_MasterKey * len(keys))()
                ptrs = (ctypes.POINTER(_MasterKey) * len(keys))()
                for i, (dst, k) in enumerate(zip(key_bufs, keys, strict=True)):
                    mki = ctypes.create_string_buffer(bytes(k.mki or b""), len(k.mki or b""))
                    keepalive.append(mki)
                    mk_structs[i].key = ctypes.cast(dst, ctypes.c_void_p)
                    mk_structs[i].mki_id = ctypes.cast(mki, ctypes.c_void_p)
                    mk_structs[i].mki_size = len(k.mki or b"")
                    ptrs[i] = ctypes.pointer(mk_structs[i])
                keepalive += [mk_structs, ptrs]
                pol.keys = ctypes.cast(ptrs, ctypes.c_void_p)
                pol.num_master_keys = len(keys)
            else:
                pol.key = ctypes.cast(key_bufs[0], ctypes.c_void_p)
            status = call(ctypes.byref(pol))  # type: ignore[operator]
            if status != ErrStatus.OK:
                _raise_status(what, status)
            self._use_mki = 1 if with_mki else 0
            self._mki_count = len(keys) if with_mki else 0
        finally:
            for dst in key_bufs:
                ctypes.memset(dst, 0, need)

    # -- key management --------------------------------------------------------------------

    def update_keys(self, keys: Sequence[MasterKey]) -> None:
        """Replace the stream's master keys, keeping its ROC and replay index."""
        ctx = self._live_ctx()
        if self._ssrc_type != SsrcType.SPECIFIC:
            raise UnsupportedPolicyError("key update needs a specific SSRC")
        self._with_policy(keys, lambda pol: _lib.srtp_update_stream(ctx, pol), "srtp_update_stream")

    def set_roc(self, roc: int) -> None:
        """Set the stream's rollover counter (applies to the next packet's index estimate)."""
        if self._ssrc_type != SsrcType.SPECIFIC:
            raise UnsupportedPolicyError("ROC needs a specific SSRC")
        if not 0 <= roc <= 0xFFFFFFFF:
            raise KeyMaterialError("ROC out of range")
        status = _lib.srtp_set_stream_roc(self._live_ctx(), self._ssrc, roc)
        if status != ErrStatus.OK:
            _raise_status("srtp_set_stream_roc", status)

    def get_roc(self) -> int:
        """The stream's current rollover counter."""
        if self._ssrc_type != SsrcType.SPECIFIC:
            raise UnsupportedPolicyError("ROC needs a specific SSRC")
        out = ctypes.c_uint32(0)
        status = _lib.srtp_get_stream_roc(self._live_ctx(), self._ssrc, ctypes.byref(out))
        if status != ErrStatus.OK:
            _raise_status("srtp_get_stream_roc", status)
        return out.value

    @property
    def mki_count(self) -> int:
        return self._mki_count

    @property
    def closed(self) -> bool:
        return self._ctx is None

    def _live_ctx(self) -> ctypes.c_void_p:
        ctx = self._ctx
        if ctx is None:
            raise ContextClosedError("SRTP context is closed")
        return ctx

    # -- packets ---------------------------------------------------------------------------

    def protect(self, packet: bytes, mki_index: int = 0) -> bytes:
        """SRTP-protect one RTP packet, with the master key at ``mki_index`` when MKIs are used."""
        ctx = self._ctx
        n = len(packet)
        if (
            ctx is None
            or not 12 <= n <= MAX_PACKET_LEN
            or (mki_index and not self._mki_ok(mki_index))
        ):
            self._refuse(n, MAX_PACKET_LEN, 12)
        self._view[:n] = packet
        self._len.value = n
        status = _protect(ctx, self._buf, self._len_ref, self._use_mki, mki_index)
        if status:
            _raise_status("srtp_protect", status)
        return self._view[: self._len.value].tobytes()

    def unprotect(self, packet: bytes) -> bytes:
        """Verify and decrypt one SRTP packet."""
        ctx = self._ctx
        n = len(packet)
        if ctx is None or not 12 <= n <= _BUFFER_LEN:
            self._refuse(n, _BUFFER_LEN, 12)
        self._view[:n] = packet
        self._len.value = n
        status = _unprotect(ctx, self._buf, self._len_ref, self._use_mki)
        if status:
            _raise_status("srtp_unprotect", status)
        return self._view[: self._len.value].tobytes()

    def protect_rtcp(self, packet: bytes, mki_index: int = 0) -> bytes:
        """SRTCP-protect one RTCP packet."""
        ctx = self._ctx
        n = len(packet)
        if (
            ctx is None
            or not 8 <= n <= MAX_PACKET_LEN
            or (mki_index and not self._mki_ok(mki_index))
        ):
            self._refuse(n, MAX_PACKET_LEN, 8)
        self._view[:n] = packet
        self._len.value = n
        status = _protect_rtcp(ctx, self._buf, self._len_ref, self._use_mki, mki_index)
        if status:
            _raise_status("srtp_protect_rtcp", status)
        return self._view[: self._len.value].tobytes()

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """Verify and decrypt one SRTCP packet."""
        ctx = self._ctx
        n = len(packet)
        if ctx is None or not 8 <= n <= _BUFFER_LEN:
            self._refuse(n, _BUFFER_LEN, 8)
        self._view[:n] = packet
        self._len.value = n
        status = _unprotect_rtcp(ctx, self._buf, self._len_ref, self._use_mki)
        if status:
            _raise_status("srtp_unprotect_rtcp", status)
        return self._view[: self._len.value].tobytes()

    def _mki_ok(self, mki_index: int) -> bool:
        return bool(self._use_mki) and 0 <= mki_index < self._mki_count

    def _refuse(self, n: int, maximum: int, minimum: int) -> NoReturn:
        if self._ctx is None:
            raise ContextClosedError("SRTP context is closed")
        if n < minimum:
            raise PacketSizeError(f"packet of {n} bytes is too short")
        if n > maximum:
            raise PacketSizeError(f"packet of {n} bytes exceeds {maximum}")
        raise KeyMaterialError("MKI index out of range")

    def close(self) -> None:
        """Deallocate the libsrtp session (libsrtp scrubs its key schedule); idempotent."""
        ctx = self._ctx
        if ctx is None:
            return
        self._ctx = None
        _lib.srtp_dealloc(ctx)
        _live.add(-1)
        ctypes.memset(self._buf, 0, _BUFFER_LEN)

    def __del__(self) -> None:
        if getattr(self, "_ctx", None) is not None:
            self.close()
