"""MIKEY wire codec (RFC 3830 §6 and its registered extensions), pure and exact.

A message is the common header followed by a chain of payloads, each naming the type of the one
after it. Parsing walks the chain with one bounds-checked :class:`Reader`; every payload class is
a frozen dataclass whose ``encode(next_type)`` is the exact inverse of its ``parse``. Strict mode
(the default) rejects every bad length, count and reserved value with a :class:`DecodeError`
carrying the byte offset. Lenient mode accepts the known quirks of deployed peers and names each
one in :attr:`Message.leniencies` so the caller can log or refuse it.

Invariants: parsing always advances or stops (there is no generic length field, so an unknown
payload ends the chain: an error in strict mode, an opaque tail in lenient mode); message size
and payload counts are capped; nothing here touches keys beyond copying bytes.

Where the C accelerator is built, :func:`parse_message` and :meth:`Message.encode` first offer the
message to its fast path, which handles one strict shape (the payloads of the PSK, PK and RSA-R
exchanges, an SRTP-ID map) and returns the same objects or bytes as this code; for everything
else, malformed input included, it declines and this code decides, with its errors.
"""

from __future__ import annotations

import dataclasses
import enum
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, TypeVar

from . import _accel
from ._accel import wipe
from ._frozen import fast_init
from .errors import DecodeError, EncodeError
from .registry import (
    DH_VALUE_LENGTH,
    GENERAL_EXT_TYPES_3GPP,
    HASH_LENGTH,
    ID_ROLES_3GPP,
    MAC_LENGTH,
    TS_LENGTH,
    CertType,
    CsIdMapType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    GeneralExtType,
    GeneralExtType3gpp,
    HashFunc,
    IdRole,
    IdRole3gpp,
    IdType,
    KeyDataType,
    KvType,
    MacAlg,
    PayloadType,
    PkeCache,
    PrfFunc,
    ProtType,
    SignType,
    SrtpParam,
    TsType,
)

MAX_MESSAGE_SIZE = 65535
MAX_PAYLOADS = 128
MAX_SUB_PAYLOADS = 32
MAX_CS = 255

_HDR = struct.Struct(">BBBBIBB")
_MAP_TYPES = frozenset(int(t) for t in CsIdMapType)
_MAP_TYPES_BY_VALUE: dict[int, CsIdMapType] = {int(t): t for t in CsIdMapType}
_DATA_TYPES: dict[int, DataType] = {int(t): t for t in DataType}
_PRF_FUNCS: dict[int, PrfFunc] = {int(t): t for t in PrfFunc}
_SRTP_ID = struct.Struct(">BII")


class Leniency(enum.Enum):
    """A known peer quirk accepted in lenient mode (named in the parse result)."""

    TRAILING_BYTES = "trailing_bytes"  # Milestone XProtect appends a 0x00
    SRTP_TAG_IN_AUTH_KEY_LEN = "srtp_tag_in_auth_key_len"  # GStreamer writes 4/10 in param 3
    TEK_WITH_SALT = "tek_with_salt"  # GStreamer: TEK = master key || salt, no salt field
    PSK_WITHOUT_RAND = "psk_without_rand"  # ONVIF/Genetec example clients
    NON_NTP_TIMESTAMP = "non_ntp_timestamp"  # Genetec: Windows FILETIME in an NTP-UTC T
    UNKNOWN_PAYLOAD = "unknown_payload"  # opaque tail of a payload type we cannot frame
    EMPTY_MAP_PADDING = "empty_map_padding"  # wolfSSL MIKEY-SAKKE: 2 zero bytes after map type
    RESERVED_VALUE = "reserved_value"  # a reserved/unassigned code point kept as an int


# --------------------------------------------------------------------------------------------
# Reader


class Fields:
    """A run of fixed-size big-endian fields read with one precompiled unpack.

    A short read still names the first field that does not fit and reports its offset, exactly
    as reading the fields one by one would.
    """

    __slots__ = ("layout", "size", "unpack_from")

    def __init__(self, fmt: str, *names: str) -> None:
        if len(fmt) != len(names):
            raise ValueError("one name per field")
        st = struct.Struct(">" + fmt)
        self.size = st.size
        self.unpack_from = st.unpack_from
        layout, off = [], 0
        for code, name in zip(fmt, names, strict=True):
            size = struct.calcsize(">" + code)
            layout.append((off, size, name))
            off += size
        self.layout = tuple(layout)


class Reader:
    """Bounds-checked big-endian reader; every failure is a DecodeError with the offset."""

    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else end

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def _short(self, n: int, what: str) -> DecodeError:
        return DecodeError(
            f"truncated {what}: need {n} bytes, {self.end - self.pos} left", self.pos
        )

    def _need(self, n: int, what: str) -> int:
        start = self.pos
        if n < 0 or start + n > self.end:
            raise self._short(n, what)
        self.pos = start + n
        return start

    def u8(self, what: str) -> int:
        p = self.pos
        if p >= self.end:
            raise self._short(1, what)
        self.pos = p + 1
        return self.data[p]

    def u16(self, what: str) -> int:
        p = self.pos
        if p + 2 > self.end:
            raise self._short(2, what)
        self.pos = p + 2
        return (self.data[p] << 8) | self.data[p + 1]

    def u32(self, what: str) -> int:
        p = self._need(4, what)
        return int.from_bytes(self.data[p : p + 4], "big")

    def take(self, n: int, what: str) -> bytes:
        p = self.pos
        if n < 0 or p + n > self.end:
            raise self._short(n, what)
        self.pos = p + n
        return self.data[p : p + n]

    def fields(self, f: Fields) -> tuple[int, ...]:
        """The fields of ``f``; a short read names the first missing field at its offset."""
        p = self.pos
        if p + f.size > self.end:
            for off, size, name in f.layout:
                if p + off + size > self.end:
                    self.pos = p + off
                    raise self._short(size, name)
        self.pos = p + f.size
        return f.unpack_from(self.data, p)

    def unpack(self, st: struct.Struct, what: str) -> tuple[int, ...]:
        """A fixed-size big-endian record (a precompiled struct)."""
        return st.unpack_from(self.data, self._need(st.size, what))

    def tlvs(self, length: int, what: str) -> list[tuple[int, int, bytes]]:
        """The (offset, type, value) TLVs filling the next ``length`` bytes.

        8-bit type and length, as SP parameters (RFC 3830 §6.10); the list must end exactly at
        ``length`` bytes.
        """
        p = self.pos
        self._need(length, f"{what}s")
        data, end = self.data, p + length
        self.pos = p
        out: list[tuple[int, int, bytes]] = []
        while p < end:
            if p + 2 > end:
                self.pos = p
                raise self._short(2, f"{what} type/length")
            q = p + 2 + data[p + 1]
            if q > end:
                self.pos = p + 2
                raise self._short(q - p - 2, f"{what} value")
            out.append((p, data[p], data[p + 2 : q]))
            p = q
        self.pos = end
        return out

    def rest(self) -> bytes:
        p = self._need(self.remaining, "rest")
        return self.data[p : self.end]


class _Ctx:
    """Per-parse state: strictness and the leniencies used so far."""

    __slots__ = ("lenient", "threegpp", "used")

    def __init__(self, lenient: bool, threegpp: bool = False) -> None:
        self.lenient = lenient
        self.threegpp = threegpp  # the 3GPP code points (TS 33.180) are known
        self.used: list[Leniency] = []

    def allow(self, quirk: Leniency, message: str, offset: int) -> None:
        if not self.lenient:
            raise DecodeError(message, offset)
        if quirk not in self.used:
            self.used.append(quirk)


_E = TypeVar("_E", bound=enum.IntEnum)


def _enum(cls: type[_E], value: int, what: str, ctx: _Ctx, offset: int) -> _E | int:
    member: _E | None = cls._value2member_map_.get(value)  # type: ignore[assignment]
    if member is None:
        ctx.allow(Leniency.RESERVED_VALUE, f"unknown {what} {value}", offset)
        return value
    return member


def _enum_3gpp(
    table: Mapping[int, enum.IntEnum],
    cls: type[_E],
    value: int,
    what: str,
    *,
    ctx: _Ctx,
    offset: int,
) -> enum.IntEnum | int:
    """A code point 3GPP assigns (TS 33.180) is known when ``ctx.threegpp``, else as ``_enum``."""
    if ctx.threegpp:
        member = table.get(value)
        if member is not None:
            return member
    return _enum(cls, value, what, ctx, offset)


def _strict_enum(cls: type[_E], value: int, what: str, offset: int) -> _E:
    """For code points that determine framing: unknown means the length is unknown."""
    member: _E | None = cls._value2member_map_.get(value)  # type: ignore[assignment]
    if member is None:
        raise DecodeError(f"unsupported {what} {value}", offset)
    return member


def _u8(v: int, what: str) -> int:
    if not 0 <= v <= 0xFF:
        raise EncodeError(f"{what} {v} does not fit in 8 bits")
    return v


def _len16(data: bytes | bytearray, what: str, limit: int = 0xFFFF) -> int:
    if len(data) > limit:
        raise EncodeError(f"{what} of {len(data)} bytes exceeds {limit}")
    return len(data)


# --------------------------------------------------------------------------------------------
# Common header (RFC 3830 §6.1)


@fast_init
@dataclass(frozen=True, slots=True)
class SrtpIdEntry:
    """One SRTP-ID map entry (RFC 3830 §6.1.1); its CS ID is its 1-based position."""

    policy_no: int
    ssrc: int
    roc: int


@fast_init
@dataclass(frozen=True, slots=True)
class GenericIdEntry:
    """One GENERIC-ID map entry (RFC 6043 §6.1.2)."""

    cs_id: int
    prot_type: int
    session_data_flag: bool
    policy_nos: tuple[int, ...]
    session_data: bytes = b""
    spi: bytes = b""


CsMapEntry = SrtpIdEntry | GenericIdEntry


@fast_init
@dataclass(frozen=True, slots=True)
class Header:
    """Common header: data type, V flag, PRF, CSB ID and the CS ID map."""

    data_type: DataType | int
    csb_id: int
    cs_map: tuple[CsMapEntry, ...] = ()
    cs_map_type: CsIdMapType | int = CsIdMapType.SRTP_ID
    v: bool = False
    prf: PrfFunc | int = PrfFunc.MIKEY_1
    version: int = 1
    raw_map_info: bytes = b""  # only for unknown map types (lenient)
    map_padding: bytes = b""  # wolfSSL empty-map quirk (lenient)
    raw_cs_count: int = 0  # #CS as sent, only for unknown map types (lenient)

    def encode(self, next_type: int) -> bytes:
        if not 0 <= self.csb_id <= 0xFFFFFFFF:
            raise EncodeError("CSB ID out of range")
        prf = _u8(int(self.prf), "PRF func")
        if prf > 0x7F:
            raise EncodeError("PRF func does not fit in 7 bits")
        if self.cs_map_type == CsIdMapType.SRTP_ID:
            info = b"".join(
                _SRTP_ID.pack(e.policy_no, e.ssrc, e.roc)
                for e in self.cs_map
                if isinstance(e, SrtpIdEntry)
            )
            count = len(self.cs_map)
            if count != len(info) // 9:
                raise EncodeError("SRTP-ID map holds a non SRTP-ID entry")
        elif self.cs_map_type == CsIdMapType.GENERIC_ID:
            info = b"".join(_encode_generic(e) for e in self.cs_map)
            count = len(self.cs_map)
        elif self.cs_map_type == CsIdMapType.EMPTY:
            info, count = self.map_padding, 0
        else:
            info, count = self.raw_map_info, self.raw_cs_count or len(self.cs_map)
        if count > MAX_CS:
            raise EncodeError("more than 255 crypto sessions")
        head = _HDR.pack(
            _u8(self.version, "version"),
            _u8(int(self.data_type), "data type"),
            next_type,
            (0x80 if self.v else 0) | prf,
            self.csb_id,
            count,
            _u8(int(self.cs_map_type), "CS ID map type"),
        )
        return head + info

    @property
    def srtp_entries(self) -> tuple[SrtpIdEntry, ...]:
        return tuple(e for e in self.cs_map if isinstance(e, SrtpIdEntry))


def _encode_generic(e: CsMapEntry) -> bytes:
    if not isinstance(e, GenericIdEntry):
        raise EncodeError("GENERIC-ID map holds a non GENERIC-ID entry")
    if len(e.policy_nos) > 0x7F:
        raise EncodeError("too many policy numbers in a GENERIC-ID entry")
    return (
        bytes(
            [
                _u8(e.cs_id, "CS ID"),
                _u8(e.prot_type, "prot type"),
                (0x80 if e.session_data_flag else 0) | len(e.policy_nos),
            ]
        )
        + bytes(_u8(p, "policy no") for p in e.policy_nos)
        + _len16(e.session_data, "session data").to_bytes(2, "big")
        + e.session_data
        + bytes([_u8(len(e.spi), "SPI length")])
        + e.spi
    )


_HDR_FIELDS = Fields(
    "BBBBIBB",
    "HDR version",
    "HDR data type",
    "HDR next payload",
    "HDR V/PRF",
    "CSB ID",
    "#CS",
    "CS ID map type",
)


def _parse_header(
    r: Reader, ctx: _Ctx, map_padding: bool = False
) -> tuple[Header, int, Opaque | None]:
    start = r.pos
    if r.end > start and r.data[start] != 1:
        raise DecodeError(f"unsupported MIKEY version {r.data[start]}", start)
    version, dt_raw, next_type, vp, csb_id, count, map_type_raw = r.fields(_HDR_FIELDS)
    map_off = start + 9
    # Known code points by one dict lookup; _enum() decides about the others.
    data_type: DataType | int | None = _DATA_TYPES.get(dt_raw)
    if data_type is None:
        data_type = _enum(DataType, dt_raw, "data type", ctx, start + 1)
    prf: PrfFunc | int | None = _PRF_FUNCS.get(vp & 0x7F)
    if prf is None:
        prf = _enum(PrfFunc, vp & 0x7F, "PRF func", ctx, start + 3)
    map_type: CsIdMapType | int | None = _MAP_TYPES_BY_VALUE.get(map_type_raw)
    if map_type is None:
        map_type = _enum(CsIdMapType, map_type_raw, "CS ID map type", ctx, map_off)
    entries: list[CsMapEntry] = []
    padding = b""
    tail: Opaque | None = None
    if map_type_raw == 0:  # SRTP-ID (RFC 3830 §6.1.1)
        if r.end - r.pos >= 9 * count:
            unpack = _SRTP_ID.unpack_from
            data, pos = r.data, r._need(9 * count, "SRTP-ID map")
            for i in range(pos, pos + 9 * count, 9):
                entries.append(SrtpIdEntry(*unpack(data, i)))
        else:
            for _ in range(count):
                policy_no = r.u8("SRTP-ID policy no")
                ssrc = r.u32("SRTP-ID SSRC")
                roc = r.u32("SRTP-ID ROC")
                entries.append(SrtpIdEntry(policy_no, ssrc, roc))
    elif map_type == CsIdMapType.GENERIC_ID:
        for _ in range(count):
            entries.append(_parse_generic(r))
    elif map_type == CsIdMapType.EMPTY:
        if count != 0:
            raise DecodeError(f"Empty CS ID map with #CS = {count}", map_off - 1)
        if map_padding:
            if r.data[r.pos : r.pos + 2] != b"\x00\x00":
                raise DecodeError("no Empty map padding", r.pos)
            ctx.allow(Leniency.EMPTY_MAP_PADDING, "2 bytes of padding after Empty map", r.pos)
            padding = r.take(2, "Empty map padding")
    else:
        ctx.allow(Leniency.UNKNOWN_PAYLOAD, f"unknown CS ID map type {map_type_raw}", map_off)
        # The map cannot be framed: keep #CS, the next payload byte and everything after the
        # map type byte as an opaque tail so the message still encodes byte-exactly.
        rest = r.rest()
        if rest or next_type:
            tail = Opaque(next_type, rest)
    hdr = Header(  # positional: data_type, csb_id, cs_map, cs_map_type, v, prf, version, ...
        data_type,
        csb_id,
        tuple(entries),
        map_type,
        vp & 0x80 != 0,
        prf,
        version,
        b"",
        padding,
        0 if map_type_raw in _MAP_TYPES else count,
    )
    return hdr, next_type, tail


def _parse_generic(r: Reader) -> GenericIdEntry:
    cs_id = r.u8("GENERIC-ID CS ID")
    prot = r.u8("GENERIC-ID prot type")
    sp = r.u8("GENERIC-ID S/#P")
    policies = tuple(r.u8("GENERIC-ID policy no") for _ in range(sp & 0x7F))
    sd_len = r.u16("GENERIC-ID session data length")
    sd = r.take(sd_len, "GENERIC-ID session data")
    spi_len = r.u8("GENERIC-ID SPI length")
    spi = r.take(spi_len, "GENERIC-ID SPI")
    return GenericIdEntry(cs_id, prot, bool(sp & 0x80), policies, sd, spi)


# --------------------------------------------------------------------------------------------
# Payloads


class Payload:
    """Base of every payload; subclasses are frozen slotted dataclasses."""

    __slots__ = ()
    TYPE: ClassVar[int]

    def encode(self, next_type: int) -> bytes:
        raise NotImplementedError

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> tuple[Payload, int]:
        """The payload at ``r`` (its type byte already consumed as the previous next-payload)
        and the next payload's type; ``start`` is its offset for error messages."""
        raise NotImplementedError


@fast_init
@dataclass(frozen=True, slots=True)
class KeySpi:
    """Key validity by SPI; for SRTP the SPI is the MKI (RFC 3830 §6.14)."""

    spi: bytes

    def encode(self) -> bytes:
        return bytes([_u8(len(self.spi), "SPI length")]) + self.spi


@fast_init
@dataclass(frozen=True, slots=True)
class KeyInterval:
    """Key validity by interval <From, To> of SRTP packet indices (RFC 3830 §6.14)."""

    valid_from: bytes
    valid_to: bytes

    def encode(self) -> bytes:
        return (
            bytes([_u8(len(self.valid_from), "VF length")])
            + self.valid_from
            + bytes([_u8(len(self.valid_to), "VT length")])
            + self.valid_to
        )

    @property
    def from_index(self) -> int:
        return int.from_bytes(self.valid_from, "big")

    @property
    def to_index(self) -> int:
        return int.from_bytes(self.valid_to, "big")


KeyValidity = KeySpi | KeyInterval


def _kv_type(kv: KeyValidity | None) -> int:
    if kv is None:
        return KvType.NULL
    return KvType.SPI if isinstance(kv, KeySpi) else KvType.INTERVAL


def _parse_kv(r: Reader, kv_type: int, offset: int) -> KeyValidity | None:
    if kv_type == KvType.NULL:
        return None
    if kv_type == KvType.SPI:  # bytes() in case r reads a (wipeable) bytearray plaintext
        n = r.u8("SPI length")
        return KeySpi(bytes(r.take(n, "SPI")))
    if kv_type == KvType.INTERVAL:
        vf = bytes(r.take(r.u8("VF length"), "valid from"))
        vt = bytes(r.take(r.u8("VT length"), "valid to"))
        return KeyInterval(vf, vt)
    raise DecodeError(f"unsupported key validity type {kv_type}", offset)


@fast_init
@dataclass(frozen=True, slots=True)
class KeyData(Payload):
    """Key data sub-payload (RFC 3830 §6.13), found inside KEMAC only.

    ``key`` and ``salt`` are never shown by ``repr``.
    """

    TYPE: ClassVar[int] = PayloadType.KEY_DATA
    key_type: KeyDataType | int
    key: bytes | bytearray = field(repr=False)
    salt: bytes | bytearray | None = field(default=None, repr=False)
    kv: KeyValidity | None = None

    def __post_init__(self) -> None:
        has_salt_field = int(self.key_type) & 1 == 1
        if has_salt_field != (self.salt is not None):
            raise EncodeError("salt must be given exactly for the +SALT key data types")

    def encode(self, next_type: int) -> bytes:
        out = bytearray()
        try:
            self.encode_into(out, next_type)
            return bytes(out)
        finally:
            wipe(out)

    def encode_into(self, out: bytearray, next_type: int) -> None:
        """Append the encoding to ``out`` without an intermediate copy of the key bytes."""
        kt = int(self.key_type)
        if not 0 <= kt <= 0xF:
            raise EncodeError("key data type does not fit in 4 bits")
        out += bytes([next_type, (kt << 4) | _kv_type(self.kv)])
        out += _len16(self.key, "key").to_bytes(2, "big")
        out += self.key
        if self.salt is not None:
            out += _len16(self.salt, "salt").to_bytes(2, "big")
            out += self.salt
        if self.kv is not None:
            out += self.kv.encode()

    def wipe(self) -> None:
        """Overwrite ``key`` and ``salt`` where they are mutable (parsed or built buffers)."""
        key, salt = self.key, self.salt
        wipe(
            key if isinstance(key, bytearray) else None,
            salt if isinstance(salt, bytearray) else None,
        )

    @property
    def mki(self) -> bytes | None:
        return self.kv.spi if isinstance(self.kv, KeySpi) else None


@fast_init
@dataclass(frozen=True, slots=True)
class IdPayload(Payload):
    """ID payload (RFC 3830 §6.7)."""

    TYPE: ClassVar[int] = PayloadType.ID
    id_type: IdType | int
    data: bytes

    def encode(self, next_type: int) -> bytes:
        return (
            bytes([next_type, _u8(int(self.id_type), "ID type")])
            + _len16(self.data, "ID").to_bytes(2, "big")
            + self.data
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        return _parse_id(r)

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


@fast_init
@dataclass(frozen=True, slots=True)
class IdrPayload(Payload):
    """ID with role (RFC 6043 §6.6)."""

    TYPE: ClassVar[int] = PayloadType.IDR
    role: IdRole | IdRole3gpp | int
    id_type: IdType | int
    data: bytes

    def encode(self, next_type: int) -> bytes:
        return (
            bytes([next_type, _u8(int(self.role), "ID role"), _u8(int(self.id_type), "ID type")])
            + _len16(self.data, "ID").to_bytes(2, "big")
            + self.data
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        role = _enum_3gpp(
            ID_ROLES_3GPP, IdRole, r.u8("ID role"), "ID role", ctx=ctx, offset=start + 1
        )
        it = _enum(IdType, r.u8("ID type"), "ID type", ctx, start + 2)
        return IdrPayload(role, it, r.take(r.u16("ID length"), "ID data")), nxt

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


KemacSubPayload = KeyData | IdPayload


@fast_init
@dataclass(frozen=True, slots=True)
class Kemac(Payload):
    """Key data transport (RFC 3830 §6.2).

    ``encr_data`` stays opaque until an exchange decrypts it. For NULL encryption the parser
    also decodes the plaintext sub-payloads into ``plain``.
    """

    TYPE: ClassVar[int] = PayloadType.KEMAC
    encr_alg: EncrAlg | int
    encr_data: bytes = field(repr=False)
    mac_alg: MacAlg | int = MacAlg.NULL
    mac: bytes = b""
    plain: tuple[KemacSubPayload, ...] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def null(
        cls,
        keys: Iterable[KemacSubPayload],
        mac_alg: MacAlg = MacAlg.NULL,
        mac: bytes | None = None,
    ) -> Kemac:
        """A NULL-encrypted KEMAC carrying ``keys`` in clear."""
        keys = tuple(keys)
        mac = bytes(MAC_LENGTH[mac_alg]) if mac is None else mac
        return cls(EncrAlg.NULL, bytes(encode_sub_payloads(keys)), mac_alg, mac, keys)

    def encode(self, next_type: int) -> bytes:
        maclen = MAC_LENGTH.get(self.mac_alg, len(self.mac))  # type: ignore[call-overload]
        if len(self.mac) != maclen:
            raise EncodeError(f"MAC of {len(self.mac)} bytes for MAC alg {self.mac_alg}")
        return (
            bytes([next_type, _u8(int(self.encr_alg), "encr alg")])
            + _len16(self.encr_data, "encr data").to_bytes(2, "big")
            + self.encr_data
            + bytes([_u8(int(self.mac_alg), "MAC alg")])
            + self.mac
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        return _parse_kemac(r, ctx, int(hdr.data_type))

    def mac_input_len(self) -> int:
        """Bytes of the encoded payload that precede the MAC (the MAC alg byte included)."""
        return 5 + len(self.encr_data)


@fast_init
@dataclass(frozen=True, slots=True)
class Pke(Payload):
    """Envelope data (RFC 3830 §6.3): the envelope key encrypted to the peer's public key."""

    TYPE: ClassVar[int] = PayloadType.PKE
    cache: PkeCache | int
    data: bytes = field(repr=False)

    def encode(self, next_type: int) -> bytes:
        n = _len16(self.data, "PKE data", 0x3FFF)
        c = int(self.cache)
        if not 0 <= c <= 3:
            raise EncodeError("PKE C does not fit in 2 bits")
        return bytes([next_type]) + ((c << 14) | n).to_bytes(2, "big") + self.data

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        v = r.u16("PKE C/length")
        cache = _enum(PkeCache, v >> 14, "PKE C", ctx, start + 1)
        return Pke(cache, r.take(v & 0x3FFF, "PKE data")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class DhPayload(Payload):
    """DH data (RFC 3830 §6.4)."""

    TYPE: ClassVar[int] = PayloadType.DH
    group: DhGroup
    value: bytes
    kv: KeyValidity | None = None

    def encode(self, next_type: int) -> bytes:
        if len(self.value) != DH_VALUE_LENGTH[self.group]:
            raise EncodeError(f"DH value of {len(self.value)} bytes for {self.group.name}")
        out = bytes([next_type, int(self.group)]) + self.value + bytes([_kv_type(self.kv)])
        return out + (self.kv.encode() if self.kv is not None else b"")

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        group = _strict_enum(DhGroup, r.u8("DH group"), "DH group", start + 1)
        value = r.take(DH_VALUE_LENGTH[group], "DH value")
        kvo = r.pos
        kvb = r.u8("DH KV")
        if kvb & 0xF0:
            raise DecodeError("DH reserved bits set", kvo)
        return DhPayload(group, value, _parse_kv(r, kvb & 0x0F, kvo)), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class Sign(Payload):
    """Signature (RFC 3830 §6.5); always the last payload, no next payload byte."""

    TYPE: ClassVar[int] = PayloadType.SIGN
    sign_type: SignType | int
    signature: bytes

    def encode(self, next_type: int) -> bytes:
        if next_type != 0:
            raise EncodeError("SIGN must be the last payload")
        n = _len16(self.signature, "signature", 0x0FFF)
        st = int(self.sign_type)
        if not 0 <= st <= 0xF:
            raise EncodeError("S type does not fit in 4 bits")
        return ((st << 12) | n).to_bytes(2, "big") + self.signature

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        v = r.u16("SIGN header")
        st = _enum(SignType, v >> 12, "S type", ctx, start)
        return Sign(st, r.take(v & 0x0FFF, "signature")), 0  # SIGN is last (RFC 3830 §6.5)


@fast_init
@dataclass(frozen=True, slots=True)
class Timestamp(Payload):
    """Timestamp (RFC 3830 §6.6); ``value`` is the raw TS value."""

    TYPE: ClassVar[int] = PayloadType.T
    ts_type: TsType
    value: bytes

    def encode(self, next_type: int) -> bytes:
        if len(self.value) != TS_LENGTH[self.ts_type]:
            raise EncodeError(f"TS value of {len(self.value)} bytes for {self.ts_type.name}")
        return bytes([next_type, int(self.ts_type)]) + self.value

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt, tt_raw = r.fields(_T_HEAD)
        tt = _strict_enum(TsType, tt_raw, "TS type", start + 1)
        value = r.take(TS_LENGTH[tt], "TS value")
        if tt in _NTP_TYPES and value[:4] < _NTP_2000_BYTES:  # ntp_plausible(), inlined
            ctx.allow(Leniency.NON_NTP_TIMESTAMP, "T value is not a plausible NTP time", start + 2)
        return Timestamp(tt, value), nxt

    @property
    def as_int(self) -> int:
        return int.from_bytes(self.value, "big")


NTP_UNIX_OFFSET = 2208988800
_NTP_2000 = 946684800 + NTP_UNIX_OFFSET
_NTP_2000_BYTES = _NTP_2000.to_bytes(4, "big")


def ntp_plausible(value: bytes) -> bool:
    """An 8-byte NTP value that decodes to 2000-01-01 .. 2036-02-07 (NTP era 0)."""
    return len(value) == 8 and int.from_bytes(value[:4], "big") >= _NTP_2000


@fast_init
@dataclass(frozen=True, slots=True)
class Cert(Payload):
    """Certificate (RFC 3830 §6.7)."""

    TYPE: ClassVar[int] = PayloadType.CERT
    cert_type: CertType | int
    data: bytes

    def encode(self, next_type: int) -> bytes:
        return (
            bytes([next_type, _u8(int(self.cert_type), "cert type")])
            + _len16(self.data, "certificate").to_bytes(2, "big")
            + self.data
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        ct = _enum(CertType, r.u8("cert type"), "cert type", ctx, start + 1)
        return Cert(ct, r.take(r.u16("cert length"), "certificate")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class Chash(Payload):
    """Certificate hash (RFC 3830 §6.8)."""

    TYPE: ClassVar[int] = PayloadType.CHASH
    hash_func: HashFunc
    digest: bytes

    def encode(self, next_type: int) -> bytes:
        if len(self.digest) != HASH_LENGTH[self.hash_func]:
            raise EncodeError("CHASH length does not match its hash function")
        return bytes([next_type, int(self.hash_func)]) + self.digest

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        hf = _strict_enum(HashFunc, r.u8("hash func"), "hash function", start + 1)
        return Chash(hf, r.take(HASH_LENGTH[hf], "hash")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class Verification(Payload):
    """Verification (RFC 3830 §6.9)."""

    TYPE: ClassVar[int] = PayloadType.V
    auth_alg: MacAlg
    data: bytes

    def encode(self, next_type: int) -> bytes:
        if len(self.data) != MAC_LENGTH[self.auth_alg]:
            raise EncodeError("V data length does not match its auth alg")
        return bytes([next_type, int(self.auth_alg)]) + self.data

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt, aa_raw = r.fields(_V_HEAD)
        aa = _strict_enum(MacAlg, aa_raw, "V auth alg", start + 1)
        return Verification(aa, r.take(MAC_LENGTH[aa], "V data")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class SpParam:
    """One policy parameter TLV (RFC 3830 §6.10)."""

    type: int
    value: bytes

    @property
    def int_value(self) -> int:
        return int.from_bytes(self.value, "big")


_SRTP_PARAMS = frozenset(int(p) for p in SrtpParam)
_SRTP_PARAM_ONE_BYTE = _SRTP_PARAMS - {SrtpParam.KEY_DERIVATION_RATE}


@fast_init
@dataclass(frozen=True, slots=True)
class SecurityPolicy(Payload):
    """Security policy (RFC 3830 §6.10) with its parameter TLVs in wire order."""

    TYPE: ClassVar[int] = PayloadType.SP
    policy_no: int
    prot_type: ProtType | int
    params: tuple[SpParam, ...] = ()

    def encode(self, next_type: int) -> bytes:
        body = _sp_body(self.params)
        return (
            bytes([next_type, _u8(self.policy_no, "policy no"), _u8(int(self.prot_type), "prot")])
            + _len16(body, "SP params").to_bytes(2, "big")
            + body
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        return _parse_sp(r, ctx, start)

    def get(self, ptype: int) -> SpParam | None:
        for p in self.params:
            if p.type == ptype:
                return p
        return None


def _sp_body(params: tuple[SpParam, ...]) -> bytes:
    """The parameter TLVs on the wire; memoised per params tuple (see _SP_ENCODED)."""
    hit = _SP_ENCODED.get(id(params))
    if hit is not None and hit[0] is params:
        return hit[1]
    body = bytearray()
    immutable = type(params) is tuple
    for p in params:
        body.append(_u8(p.type, "SP param type"))
        body.append(_u8(len(p.value), "SP param length"))
        body += p.value
        immutable = immutable and type(p.value) is bytes
    out = bytes(body)
    if immutable and len(out) <= _SP_MEMO_BODY_MAX:
        if len(_SP_ENCODED) >= _SP_ENCODED_MAX:
            _SP_ENCODED.clear()
        _SP_ENCODED[id(params)] = (params, out)
    return out


# Parsed and configured policies share their params tuples (_SP_BODY_CACHE, the exchange's policy
# memo), so encodings are memoised by tuple identity. Each entry holds its tuple, so the id
# cannot be reused by another object while the entry exists; tuples and SpParams are immutable.
# Bounded like _SP_BODY_CACHE (small blocks, cleared when full).
_SP_ENCODED: dict[int, tuple[tuple[SpParam, ...], bytes]] = {}
_SP_ENCODED_MAX = 1024
_SP_MEMO_BODY_MAX = 256  # parameter blocks memoised here and in _SP_BODY_CACHE: small ones


def param_name(prot_type: int, ptype: int) -> str:
    if prot_type == ProtType.SRTP:
        try:
            return SrtpParam(ptype).name
        except ValueError:
            pass
    return f"PARAM_{ptype}"


@fast_init
@dataclass(frozen=True, slots=True)
class Rand(Payload):
    """RAND (RFC 3830 §6.11)."""

    TYPE: ClassVar[int] = PayloadType.RAND
    value: bytes

    def encode(self, next_type: int) -> bytes:
        if not 1 <= len(self.value) <= 0xFF:
            raise EncodeError("RAND must be 1..255 bytes")
        return bytes([next_type, len(self.value)]) + self.value

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt, n = r.fields(_RAND_HEAD)
        if n == 0:
            raise DecodeError("empty RAND", start + 1)
        return Rand(r.take(n, "RAND")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class Err(Payload):
    """Error (RFC 3830 §6.12)."""

    TYPE: ClassVar[int] = PayloadType.ERR
    error_no: ErrorNo | int
    reserved: int = 0

    def encode(self, next_type: int) -> bytes:
        return bytes([next_type, _u8(int(self.error_no), "error no")]) + self.reserved.to_bytes(
            2, "big"
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        en = _enum(ErrorNo, r.u8("error no"), "error no", ctx, start + 1)
        reserved = r.u16("ERR reserved")
        if reserved:
            ctx.allow(Leniency.RESERVED_VALUE, "ERR reserved field not zero", start + 2)
        return Err(en, reserved), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class GeneralExt(Payload):
    """General extension (RFC 3830 §6.15): vendor ID, SDP IDs, others opaque."""

    TYPE: ClassVar[int] = PayloadType.GENERAL_EXT
    ext_type: GeneralExtType | GeneralExtType3gpp | int
    data: bytes

    def encode(self, next_type: int) -> bytes:
        return (
            bytes([next_type, _u8(int(self.ext_type), "ext type")])
            + _len16(self.data, "extension").to_bytes(2, "big")
            + self.data
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        et = _enum_3gpp(
            GENERAL_EXT_TYPES_3GPP,
            GeneralExtType,
            r.u8("ext type"),
            "general extension type",
            ctx=ctx,
            offset=start + 1,
        )
        return GeneralExt(et, r.take(r.u16("ext length"), "extension data")), nxt

    @classmethod
    def sdp_ids(cls, kmpids: Iterable[str]) -> GeneralExt:
        return cls(GeneralExtType.SDP_IDS, " ".join(kmpids).encode("ascii"))

    @property
    def kmpids(self) -> tuple[str, ...]:
        """Key management protocol IDs listed in an SDP IDs extension (RFC 4567 §3.1)."""
        return tuple(self.data.decode("ascii", "replace").split())


@fast_init
@dataclass(frozen=True, slots=True)
class TimestampRole(Payload):
    """Timestamp with role, TR (RFC 6043 §6.4)."""

    TYPE: ClassVar[int] = PayloadType.TR
    role: int
    ts_type: TsType
    value: bytes

    def encode(self, next_type: int) -> bytes:
        if len(self.value) != TS_LENGTH[self.ts_type]:
            raise EncodeError("TR value length does not match its TS type")
        return bytes([next_type, _u8(self.role, "TS role"), int(self.ts_type)]) + self.value

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        role = r.u8("TS role")
        tt = _strict_enum(TsType, r.u8("TS type"), "TS type", start + 2)
        return TimestampRole(role, tt, r.take(TS_LENGTH[tt], "TS value")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class RandRole(Payload):
    """RAND with role, RANDR (RFC 6043 §6.8)."""

    TYPE: ClassVar[int] = PayloadType.RANDR
    role: int
    value: bytes

    def encode(self, next_type: int) -> bytes:
        if not 1 <= len(self.value) <= 0xFF:
            raise EncodeError("RANDR must be 1..255 bytes")
        return bytes([next_type, _u8(self.role, "RAND role"), len(self.value)]) + self.value

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        role = r.u8("RAND role")
        n = r.u8("RAND length")
        if n == 0:
            raise DecodeError("empty RANDR", start + 2)
        return RandRole(role, r.take(n, "RAND")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class Sakke(Payload):
    """SAKKE payload (RFC 6509 §4.2); the encapsulated data stays opaque."""

    TYPE: ClassVar[int] = PayloadType.SAKKE
    params: int
    id_scheme: int
    data: bytes = field(repr=False)

    def encode(self, next_type: int) -> bytes:
        return (
            bytes([next_type, _u8(self.params, "SAKKE params"), _u8(self.id_scheme, "ID scheme")])
            + _len16(self.data, "SAKKE data").to_bytes(2, "big")
            + self.data
        )

    @classmethod
    def parse(cls, r: Reader, ctx: _Ctx, hdr: Header, start: int) -> _Parsed:
        nxt = r.u8("next payload")
        params = r.u8("SAKKE params")
        scheme = r.u8("SAKKE ID scheme")
        return Sakke(params, scheme, r.take(r.u16("SAKKE length"), "SAKKE data")), nxt


@fast_init
@dataclass(frozen=True, slots=True)
class Opaque(Payload):
    """An unframeable payload (unknown type) kept as the opaque rest of the message (lenient)."""

    payload_type: int
    data: bytes

    TYPE: ClassVar[int] = -1

    def encode(self, next_type: int) -> bytes:
        return self.data


# --------------------------------------------------------------------------------------------
# Payload parsers


_KEMAC_HEAD = Fields("BBH", "KEMAC next payload", "KEMAC encr alg", "KEMAC encr data len")


def _parse_kemac(r: Reader, ctx: _Ctx, data_type: int) -> tuple[Kemac, int]:
    start = r.pos
    nxt, ea, n = r.fields(_KEMAC_HEAD)
    encr_alg = _enum(EncrAlg, ea, "KEMAC encr alg", ctx, start + 1)
    data = r.take(n, "KEMAC encr data")
    mac_off = r.pos
    mac_alg = _strict_enum(MacAlg, r.u8("KEMAC MAC alg"), "MAC alg", mac_off)
    mac = r.take(MAC_LENGTH[mac_alg], "KEMAC MAC")
    plain: tuple[KemacSubPayload, ...] | None = None
    if ea == 0:  # NULL encryption: the key data is in clear
        plain = _parse_null_plaintext(data, ctx, data_type, start + 4)
    return Kemac(encr_alg, data, mac_alg, mac, plain), nxt


def _parse_null_plaintext(
    data: bytes, ctx: _Ctx, data_type: int, base: int
) -> tuple[KemacSubPayload, ...]:
    # PK and RSA-R put the sender's ID first (RFC 3830 §3.2); other modes start with key data.
    if data_type in (DataType.PK_INIT, DataType.RSA_R_RESP):
        trial = _Ctx(
            ctx.lenient, ctx.threegpp
        )  # a failed ID-first attempt must not leave leniencies behind
        try:
            subs = _parse_sub_payloads(Reader(data), trial, PayloadType.ID, base)
        except DecodeError:
            pass
        else:
            for quirk in trial.used:
                if quirk not in ctx.used:
                    ctx.used.append(quirk)
            return subs
    return _parse_sub_payloads(Reader(data), ctx, PayloadType.KEY_DATA, base)


def _parse_sub_payloads(
    r: Reader, ctx: _Ctx, first: int, base: int = 0
) -> tuple[KemacSubPayload, ...]:
    out: list[KemacSubPayload] = []
    nxt = first
    if r.remaining == 0:
        return ()
    while True:
        if len(out) >= MAX_SUB_PAYLOADS:
            raise DecodeError("too many KEMAC sub-payloads", base + r.pos)
        off = r.pos
        if nxt == PayloadType.KEY_DATA:
            kd, nxt = _parse_key_data(r, ctx, base)
            out.append(kd)
        elif nxt == PayloadType.ID:
            idp, nxt = _parse_id(r)
            out.append(idp)
        else:
            raise DecodeError(f"payload type {nxt} not allowed inside KEMAC", base + off)
        if nxt == PayloadType.LAST:
            break
    if r.remaining:
        raise DecodeError(f"{r.remaining} bytes after the last key data", base + r.pos)
    return tuple(out)


_KEY_DATA_HEAD = Fields("BBH", "key data next payload", "key data type/KV", "key data length")


def _parse_key_data(r: Reader, ctx: _Ctx, base: int) -> tuple[KeyData, int]:
    start = r.pos
    nxt, tk, n = r.fields(_KEY_DATA_HEAD)
    key_type = _enum(KeyDataType, tk >> 4, "key data type", ctx, base + start + 1)
    kv_type = tk & 0x0F
    key = r.take(n, "key data")
    salt = None
    if int(key_type) & 1:
        salt = r.take(r.u16("salt length"), "salt data")
    kv = _parse_kv(r, kv_type, base + start + 1)
    if key_type == KeyDataType.TEK and n in (28, 30, 44, 46):
        ctx.allow(
            Leniency.TEK_WITH_SALT,
            f"TEK of {n} bytes carries master key and salt (GStreamer form)",
            base + start + 2,
        )
    if nxt not in (PayloadType.LAST, PayloadType.KEY_DATA):
        raise DecodeError(f"key data followed by payload type {nxt}", base + start)
    return KeyData(key_type, key, salt, kv), nxt


_ID_HEAD = Fields("BBH", "ID next payload", "ID type", "ID length")


def _parse_id(r: Reader) -> tuple[IdPayload, int]:
    nxt, t, n = r.fields(_ID_HEAD)
    data = r.take(n, "ID data")
    id_type = _ID_TYPES.get(t)
    if id_type is None:
        raise DecodeError(f"unsupported ID type {t}", r.pos - len(data) - 3)
    return IdPayload(id_type, bytes(data)), nxt  # bytes() copies only a bytearray plaintext


_ID_TYPES: dict[int, IdType] = {int(t): t for t in IdType}


_Parsed = tuple[Payload, int]
_NTP_TYPES = (TsType.NTP_UTC, TsType.NTP)


_T_HEAD = Fields("BB", "next payload", "TS type")
_RAND_HEAD = Fields("BB", "next payload", "RAND length")
_SP_HEAD = Fields("BBBH", "next payload", "SP policy no", "SP prot type", "SP param length")
_V_HEAD = Fields("BB", "next payload", "V auth alg")


# The next-payload registry that drives the chain (RFC 3830 §6.1 table; RFC 6043; RFC 6509).
#: every payload class the next-payload chain can name, each parsing itself (``cls.parse``)
_PAYLOAD_CLASSES: tuple[type[Payload], ...] = (
    Kemac,
    Pke,
    DhPayload,
    Sign,
    Timestamp,
    IdPayload,
    Cert,
    Chash,
    Verification,
    SecurityPolicy,
    Rand,
    Err,
    TimestampRole,
    IdrPayload,
    RandRole,
    GeneralExt,
    Sakke,
)
# The next-payload registry that drives the chain (RFC 3830 §6.1 table; RFC 6043; RFC 6509),
# built from the classes: a payload type maps to its class's parser.
_PAYLOAD_PARSERS: dict[int, Callable[[Reader, _Ctx, Header, int], _Parsed]] = {
    int(cls.TYPE): cls.parse for cls in _PAYLOAD_CLASSES
}


def _parse_payload(r: Reader, ptype: int, ctx: _Ctx, hdr: Header) -> tuple[Payload, int]:
    parser = _PAYLOAD_PARSERS.get(ptype)
    if parser is None:
        raise DecodeError(f"unsupported payload type {ptype}", r.pos)
    return parser(r, ctx, hdr, r.pos)


def _parse_sp(r: Reader, ctx: _Ctx, start: int) -> tuple[SecurityPolicy, int]:
    nxt, policy_no, prot_raw, length = r.fields(_SP_HEAD)
    prot = _enum(ProtType, prot_raw, "SP prot type", ctx, start + 2)
    body_start = r.pos
    body = r.take(length, "SP params")
    params = _SP_BODY_CACHE.get((prot, body))
    if params is None:
        r.pos = body_start
        tlvs = r.tlvs(length, "SP param")
        if len(tlvs) > 64:
            raise DecodeError("too many SP parameters", start)
        if prot == ProtType.SRTP:
            _check_srtp_params(tlvs, ctx, start)
        shared = _SP_PARAM_CACHE.get
        params = tuple([shared((t, v)) or _sp_param(t, v) for _, t, v in tlvs])
        if not ctx.lenient and length <= _SP_MEMO_BODY_MAX:
            if len(_SP_BODY_CACHE) >= _SP_BODY_CACHE_MAX:
                _SP_BODY_CACHE.clear()
            _SP_BODY_CACHE[prot, body] = params
    return SecurityPolicy(policy_no, prot, params), nxt


_SP_PARAM_CACHE: dict[tuple[int, bytes], SpParam] = {}
_SP_PARAM_CACHE_MAX = 4096  # attacker-chosen TLVs cannot grow it past ~0.5 MB
# Policies repeat across messages: a parameter block that passed the strict checks once (so it
# needed no leniency) maps to its parsed parameters. Failures are never stored, and a block that
# is clean in strict mode is clean, with the same result, in lenient mode too. Bounded: blocks
# of at most 256 bytes, 1024 of them (cleared when full), so attacker-chosen blocks cannot hold
# more than ~0.5 MB.
_SP_BODY_CACHE: dict[tuple[int, bytes], tuple[SpParam, ...]] = {}
_SP_BODY_CACHE_MAX = 1024


def _sp_param(ptype: int, value: bytes) -> SpParam:
    """SpParam is immutable, so 1-byte parameters are shared (a bounded table, parse speed)."""
    p = SpParam(ptype, value)
    if len(value) == 1 and len(_SP_PARAM_CACHE) < _SP_PARAM_CACHE_MAX:
        _SP_PARAM_CACHE[ptype, value] = p
    return p


_KDR = int(SrtpParam.KEY_DERIVATION_RATE)
_AUTH_KEY_LEN = int(SrtpParam.AUTH_KEY_LEN)
_AUTH_TAG_LEN = int(SrtpParam.AUTH_TAG_LEN)


def _check_srtp_params(tlvs: list[tuple[int, int, bytes]], ctx: _Ctx, start: int) -> None:
    """RFC 3830 §6.10.1: registered types, 1-byte values (KDR 1..4), no repeats."""
    seen = {t for _, t, _ in tlvs}
    clean = (
        len(seen) == len(tlvs)
        and seen <= _SRTP_PARAMS
        and all(len(v) == 1 or (t == _KDR and 1 <= len(v) <= 4) for _, t, v in tlvs)
    )
    if not clean:  # find the first offending TLV, in wire order, for the error offset
        seen = set()
        for off, ptype, value in tlvs:
            plen = len(value)
            if ptype not in _SRTP_PARAMS:
                ctx.allow(Leniency.RESERVED_VALUE, f"unknown SRTP policy parameter {ptype}", off)
            elif ptype == _KDR:
                if not 1 <= plen <= 4:
                    raise DecodeError("key derivation rate must be 1..4 bytes", off + 1)
            elif plen != 1:
                raise DecodeError(f"SRTP parameter {ptype} must be 1 byte, not {plen}", off + 1)
            if ptype in seen:
                raise DecodeError(f"SRTP parameter {ptype} repeated", off)
            seen.add(ptype)
    # GStreamer writes the SRTP tag length (4/10) in param 3 and omits param 11 (docs/WIRE.md
    # §GStreamer's tag length in param 3).
    if _AUTH_KEY_LEN in seen and _AUTH_TAG_LEN not in seen:
        auth_len = next(v for _, t, v in tlvs if t == _AUTH_KEY_LEN)[0]
        if auth_len in (4, 10):
            ctx.allow(
                Leniency.SRTP_TAG_IN_AUTH_KEY_LEN,
                f"session auth key length {auth_len} looks like an SRTP tag length",
                start,
            )


# --------------------------------------------------------------------------------------------
# Message


@fast_init
@dataclass(frozen=True, slots=True)
class Message:
    """A whole MIKEY message: header, payloads in wire order, and what lenient parsing allowed."""

    header: Header
    payloads: tuple[Payload, ...]
    trailing: bytes = b""
    leniencies: tuple[Leniency, ...] = ()

    def encode(self) -> bytes:
        """The exact wire bytes of this message; a field out of range raises EncodeError."""
        c = _accel.speedups
        if c is not None:
            # The accelerator writes the common message in one pass; None: this encoder does.
            out: bytes | None = c.encode_message(self)
            if out is not None:
                return out
        try:
            return self._encode()
        except (struct.error, OverflowError, ValueError) as exc:
            raise EncodeError(f"field out of range: {exc}") from None

    def _encode(self) -> bytes:
        payloads = self.payloads
        types = [_wire_type(p) for p in payloads]
        if Sign in map(type, payloads[:-1]):
            raise EncodeError("SIGN must be the last payload")
        types.append(0)  # the last payload's next payload: none
        parts = [self.header.encode(types[0])]
        for i, p in enumerate(payloads, 1):
            parts.append(p.encode(types[i]))
        out = b"".join(parts) + self.trailing
        if len(out) > MAX_MESSAGE_SIZE:
            raise EncodeError(f"message of {len(out)} bytes exceeds {MAX_MESSAGE_SIZE}")
        return out

    # Convenience accessors ----------------------------------------------------------------

    @property
    def data_type(self) -> DataType | int:
        return self.header.data_type

    @property
    def csb_id(self) -> int:
        return self.header.csb_id

    def find(self, cls: type[_P]) -> _P | None:
        for p in self.payloads:
            if isinstance(p, cls):
                return p
        return None

    def find_all(self, cls: type[_P]) -> tuple[_P, ...]:
        return tuple(p for p in self.payloads if isinstance(p, cls))

    def __iter__(self) -> Iterator[Payload]:
        return iter(self.payloads)


_P = TypeVar("_P", bound=Payload)


def _wire_type(p: Payload) -> int:
    return p.payload_type if type(p) is Opaque else p.TYPE


def encode_sub_payloads(subs: Iterable[KemacSubPayload]) -> bytearray:
    """Encode a KEMAC plaintext chain (IDs and key data), next payloads chained.

    The result is a ``bytearray`` holding key material: the caller overwrites it once encrypted.
    """
    subs = tuple(subs)
    out = bytearray()
    for i, s in enumerate(subs):
        nxt = subs[i + 1].TYPE if i + 1 < len(subs) else 0
        if isinstance(s, KeyData):
            s.encode_into(out, nxt)
        else:
            out += s.encode(nxt)
    return out


def parse_sub_payloads(
    data: bytes | bytearray, *, first: int = PayloadType.KEY_DATA, lenient: bool = False
) -> tuple[tuple[KemacSubPayload, ...], tuple[Leniency, ...]]:
    """Parse a decrypted KEMAC plaintext into its ID / key data sub-payloads.

    From a ``bytearray`` the key data's ``key`` and ``salt`` are ``bytearray`` copies the
    caller can wipe (:meth:`KeyData.wipe`); everything else is ``bytes``.
    """
    ctx = _Ctx(lenient)
    # A bytearray is read in place: its slices (key, salt) are bytearrays; the sub-payload
    # parsers turn every other field into bytes.
    subs = _parse_sub_payloads(Reader(data), ctx, first)  # type: ignore[arg-type]
    return subs, tuple(ctx.used)


_COMPOSITION_NEEDS_RAND = (DataType.PSK_INIT,)


def parse_message(
    data: bytes | bytearray | memoryview, *, lenient: bool = False, threegpp: bool = False
) -> Message:
    """Parse MIKEY bytes into a :class:`Message`; raises :class:`DecodeError` on bad input.

    ``threegpp`` makes the code points 3GPP assigns (TS 33.180 ID roles 8/9, general extension
    type 7; :mod:`mikey.registry`) known to the strict parser under their names; without it
    they are refused (strict) or kept as plain integers (lenient, ``Leniency.RESERVED_VALUE``).
    """
    if type(data) is bytes:
        buf = data
    elif isinstance(data, bytearray | memoryview):
        buf = bytes(data)
    else:
        raise DecodeError("MIKEY data must be bytes")
    if len(buf) > MAX_MESSAGE_SIZE:
        raise DecodeError(f"message of {len(buf)} bytes exceeds {MAX_MESSAGE_SIZE}", 0)
    c = _accel.speedups
    if c is not None:
        # The accelerator builds the common strictly valid message in one pass; for anything
        # else (None) this parser decides, with its errors and leniencies.
        fast: Message | None = c.parse_message(buf)
        if fast is not None:
            return fast
    try:
        return _parse(buf, lenient, map_padding=False, threegpp=threegpp)
    except DecodeError:
        # wolfSSL's MIKEY-SAKKE writer puts 2 zero bytes after an Empty map (lenient only).
        if lenient and len(buf) > 11 and buf[9] == CsIdMapType.EMPTY and buf[10:12] == b"\0\0":
            try:
                return _parse(buf, lenient, map_padding=True, threegpp=threegpp)
            except DecodeError:
                pass
        raise


def _parse(buf: bytes, lenient: bool, *, map_padding: bool, threegpp: bool = False) -> Message:
    ctx = _Ctx(lenient, threegpp)
    r = Reader(buf)
    header, nxt, tail = _parse_header(r, ctx, map_padding)
    payloads: list[Payload] = []
    if tail is not None:
        payloads.append(tail)
        nxt = PayloadType.LAST
    parsers = _PAYLOAD_PARSERS
    while nxt:  # 0 = last payload
        if len(payloads) >= MAX_PAYLOADS:
            raise DecodeError("too many payloads", r.pos)
        parser = parsers.get(nxt)
        if parser is None:
            if nxt == PayloadType.KEY_DATA:
                raise DecodeError("key data outside KEMAC", r.pos)
            ctx.allow(Leniency.UNKNOWN_PAYLOAD, f"unsupported payload type {nxt}", r.pos)
            payloads.append(Opaque(nxt, r.rest()))
            break
        if r.pos >= r.end:
            raise DecodeError(f"truncated: payload type {nxt} announced but missing", r.pos)
        payload, nxt = parser(r, ctx, header, r.pos)
        payloads.append(payload)
    trailing = b""
    if r.remaining:
        # Lenient: exactly one 0x00 (docs/WIRE.md §Trailing 0x00); anything more is an
        # error in both modes (it may be a payload after SIGN or a corrupted chain).
        if r.remaining != 1 or buf[r.pos] != 0:
            raise DecodeError(f"{r.remaining} bytes after the last payload", r.pos)
        ctx.allow(Leniency.TRAILING_BYTES, "a 0x00 byte after the last payload", r.pos)
        trailing = r.rest()
    if header.data_type in _COMPOSITION_NEEDS_RAND and Rand not in map(type, payloads):
        ctx.allow(Leniency.PSK_WITHOUT_RAND, "PSK I_MESSAGE without RAND (RFC 3830 §3.1)", 0)
    return Message(header, tuple(payloads), trailing, tuple(ctx.used))


# The accelerator's parse_message builds these classes through their slot descriptors, as
# fast_init's __init__ does (none of them has a __post_init__ to run), and reads the code points
# and lengths from these tables; SP parameters only from the memo this parser fills. Its
# encode_message reads the same classes (exactly these, no subclass) and takes an SP's parameter
# block from _sp_body's memo. The C code addresses each class's fields by position: this table is
# that layout, handed over at setup, and checked against the dataclasses at import, so a field
# renamed, added or moved fails here instead of being read at the wrong position.
_FAST_LAYOUT: dict[type, tuple[str, ...]] = {
    Message: ("header", "payloads", "trailing", "leniencies"),
    Header: (
        "data_type",
        "csb_id",
        "cs_map",
        "cs_map_type",
        "v",
        "prf",
        "version",
        "raw_map_info",
        "map_padding",
        "raw_cs_count",
    ),
    SrtpIdEntry: ("policy_no", "ssrc", "roc"),
    Timestamp: ("ts_type", "value"),
    Rand: ("value",),
    IdPayload: ("id_type", "data"),
    SecurityPolicy: ("policy_no", "prot_type", "params"),
    Kemac: ("encr_alg", "encr_data", "mac_alg", "mac", "plain"),
    Verification: ("auth_alg", "data"),
    Cert: ("cert_type", "data"),
    Sign: ("sign_type", "signature"),
    Pke: ("cache", "data"),
    Chash: ("hash_func", "digest"),
}
_FAST_CLASSES = tuple(_FAST_LAYOUT)
_FAST_ENUMS = (
    DataType,
    PrfFunc,
    CsIdMapType,
    TsType,
    IdType,
    ProtType,
    EncrAlg,
    MacAlg,
    CertType,
    SignType,
    PkeCache,
    HashFunc,
)


def _setup_fast_parser() -> None:
    c = _accel.speedups
    if c is None or not hasattr(c, "parse_setup"):  # a build older than this source: unused
        return
    classes = []
    for cls, layout in _FAST_LAYOUT.items():
        if hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__} has a __post_init__ the fast parser would skip")
        names = tuple(f.name for f in dataclasses.fields(cls))
        if names != layout:
            raise TypeError(
                f"{cls.__name__} has the fields {names}; the C fast path reads {layout}"
            )
        classes.append((cls, tuple(cls.__dict__[name] for name in layout)))
    enums = tuple({int(m): m for m in e} for e in _FAST_ENUMS)
    lengths = tuple({int(k): v for k, v in t.items()} for t in (TS_LENGTH, MAC_LENGTH, HASH_LENGTH))
    c.parse_setup(
        tuple(classes),
        enums,
        lengths,
        _SP_BODY_CACHE,
        _SP_ENCODED,
        _NTP_2000_BYTES,
        MAX_PAYLOADS,
        MAX_MESSAGE_SIZE,
    )


_setup_fast_parser()
