"""MIKEY wire codec tests: hand-built bytes for every payload and registry value.

Oracles: byte layouts written out by hand from RFC 3830 §6 (and RFC 4563, 6043, 6509 for the
extensions), the docs/WIRE.md §Worked PSK exchange and §NULL-mode message vectors (decoded by
tshark and byte-exact in minisip), GStreamer's unit-test bytes, and the peer quirks of docs/WIRE.md.
Every vector satisfies ``encode(parse(b)) == b`` and every truncated prefix raises DecodeError.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings

from mikey.codec import (
    Cert,
    Chash,
    DhPayload,
    Err,
    GeneralExt,
    GenericIdEntry,
    Header,
    IdPayload,
    IdrPayload,
    Kemac,
    KeyData,
    KeyInterval,
    KeySpi,
    Leniency,
    Message,
    Opaque,
    Pke,
    Rand,
    RandRole,
    Sakke,
    SecurityPolicy,
    Sign,
    SpParam,
    SrtpIdEntry,
    Timestamp,
    TimestampRole,
    Verification,
    encode_sub_payloads,
    parse_message,
    parse_sub_payloads,
)
from mikey.errors import DecodeError, EncodeError, MikeyError
from mikey.registry import (
    CertType,
    CsIdMapType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    GeneralExtType,
    HashFunc,
    IdRole,
    IdType,
    KeyDataType,
    MacAlg,
    PayloadType,
    PkeCache,
    PrfFunc,
    ProtType,
    SignType,
    SrtpParam,
    TsType,
)
from mikey_cli.render import describe_message

from .vectors import (
    GENETEC_FILETIME,
    GST_CREATE_COMMON_2CS,
    GST_CREATE_COMMON_HDR,
    GST_CREATE_PAYLOADS,
    GST_EDATA,
    GST_NTP_DATA,
    NULL_MODE_MESSAGE,
    PAYLOAD_KINDS,
    PSK_ERROR_MESSAGE,
    PSK_I_MESSAGE,
    PSK_R_MESSAGE,
    SPEC_ENCRYPTED_KEY_DATA,
    SPEC_KEMAC_MAC,
    SPEC_NULL_TEK,
    SPEC_RAND,
    SPEC_T_I,
    genetec_message,
    interop_messages,
    messages,
    srtp_sp,
)

# Every test runs through the C accelerator's fast parser and through the Python parser.
pytestmark = pytest.mark.usefixtures("implementation")

NTP = SPEC_T_I.hex()  # a plausible NTP-UTC value (2024-01-01)


def hdr_hex(data_type: int, next_payload: int, *, tail: str = "0000") -> str:
    """RFC 3830 §6.1 HDR: version 1, data type, next payload, V=0/PRF 0, CSB ID, #CS, map type."""
    return f"01{data_type:02x}{next_payload:02x}00" + "12345678" + tail


def one(payload_type: int, payload_hex: str, data_type: int = DataType.PSK_RESP) -> bytes:
    """A message of HDR (no crypto session) followed by a single payload."""
    return bytes.fromhex(hdr_hex(data_type, payload_type) + payload_hex)


def roundtrip(b: bytes, *, lenient: bool = False) -> Message:
    m = parse_message(b, lenient=lenient)
    assert m.encode() == b
    assert parse_message(m.encode(), lenient=lenient) == m
    return m


def assert_prefixes_fail(b: bytes, *, lenient: bool = False) -> None:
    for n in range(len(b)):
        with pytest.raises(DecodeError):
            parse_message(b[:n], lenient=lenient)


def reject(b: bytes, offset: int | None = None, *, match: str | None = None) -> DecodeError:
    with pytest.raises(DecodeError, match=match) as info:
        parse_message(b)
    if offset is not None:
        assert info.value.offset == offset, str(info.value)
    return info.value


# --- docs/WIRE.md §Worked PSK exchange vectors -------------------------------------------------

SPEC_VECTORS = [
    ("psk_i_message", PSK_I_MESSAGE, False),
    ("psk_r_message", PSK_R_MESSAGE, False),
    ("error_message", PSK_ERROR_MESSAGE, False),
    ("null_mode_message", NULL_MODE_MESSAGE, True),
]


@pytest.mark.parametrize(("name", "data", "lenient"), SPEC_VECTORS)
def test_spec_vector_roundtrip_and_prefixes(name: str, data: bytes, lenient: bool) -> None:
    """docs/WIRE.md vectors: encode(parse(b)) == b; every truncated prefix raises DecodeError."""
    roundtrip(data, lenient=lenient)
    assert_prefixes_fail(data, lenient=lenient)
    if not lenient:
        assert_prefixes_fail(data, lenient=True)


def test_spec_psk_i_message_fields() -> None:
    """Worked PSK I_MESSAGE: HDR(V=1), T, RAND, SP, KEMAC(AES-CM-128, HMAC-SHA-1-160)."""
    m = parse_message(PSK_I_MESSAGE)
    assert len(PSK_I_MESSAGE) == 127
    h = m.header
    assert (h.version, h.data_type, h.v, h.prf) == (1, DataType.PSK_INIT, True, PrfFunc.MIKEY_1)
    assert h.csb_id == 0x12345678
    assert h.cs_map == (SrtpIdEntry(0, 0xDEADBEEF, 0),)
    assert [type(p) for p in m.payloads] == [Timestamp, Rand, SecurityPolicy, Kemac]
    assert m.payloads[0] == Timestamp(TsType.NTP_UTC, SPEC_T_I)
    assert m.payloads[1] == Rand(SPEC_RAND)
    assert m.payloads[2] == srtp_sp(0)
    kemac = m.payloads[3]
    assert isinstance(kemac, Kemac)
    assert kemac.encr_alg == EncrAlg.AES_CM_128
    assert kemac.encr_data == SPEC_ENCRYPTED_KEY_DATA
    assert (kemac.mac_alg, kemac.mac) == (MacAlg.HMAC_SHA_1_160, SPEC_KEMAC_MAC)
    assert kemac.plain is None
    assert m.leniencies == ()


def test_spec_r_and_error_messages_fields() -> None:
    """Worked PSK R_MESSAGE (HDR, T, V) and error message (HDR, T, ERR, V)."""
    r = parse_message(PSK_R_MESSAGE)
    assert r.data_type == DataType.PSK_RESP and not r.header.v
    assert r.payloads == (
        Timestamp(TsType.NTP_UTC, bytes.fromhex("e93c7f0180000000")),
        Verification(
            MacAlg.HMAC_SHA_1_160, bytes.fromhex("4efbe832b000ef333a5c2ed631c7ac2e7f644d17")
        ),
    )
    e = parse_message(PSK_ERROR_MESSAGE)
    assert e.data_type == DataType.ERROR
    assert e.find(Err) == Err(ErrorNo.INVALID_TS)
    assert e.find(Timestamp) == Timestamp(TsType.NTP_UTC, bytes.fromhex("e93c7f0280000000"))


def test_spec_null_mode_message_lenient() -> None:
    """docs/WIRE.md §NULL-mode message: TEK 30 bytes with KV SPI; strict names the quirk."""
    reject(NULL_MODE_MESSAGE, match="TEK of 30 bytes")
    m = parse_message(NULL_MODE_MESSAGE, lenient=True)
    assert m.leniencies == (Leniency.TEK_WITH_SALT,)
    kemac = m.find(Kemac)
    assert kemac is not None and kemac.plain is not None
    assert kemac.plain == (KeyData(KeyDataType.TEK, SPEC_NULL_TEK, None, KeySpi(bytes(3) + b"\1")),)
    assert m.header.cs_map == (SrtpIdEntry(0, 0x11223344, 0),)


# --- GStreamer tests/check/libs/mikey.c byte arrays -------------------------------------------


def test_gstreamer_create_common_vectors() -> None:
    """GStreamer create_common: test_data (10-byte HDR) and test_data2 (two SRTP-ID entries).

    GStreamer builds a PSK_INIT with no payloads; RFC 3830 §3.1 wants RAND, so strict mode
    refuses it and lenient mode names PSK_WITHOUT_RAND.
    """
    for data in (GST_CREATE_COMMON_HDR, GST_CREATE_COMMON_2CS):
        reject(data, 0, match="without RAND")
        m = roundtrip(data, lenient=True)
        assert m.leniencies == (Leniency.PSK_WITHOUT_RAND,)
        assert_prefixes_fail(data, lenient=True)
    m = parse_message(GST_CREATE_COMMON_2CS, lenient=True)
    assert m.header.cs_map == (SrtpIdEntry(1, 0x12345678, 0), SrtpIdEntry(2, 0x23456789, 1))
    assert len(GST_CREATE_COMMON_2CS) == 28


def test_gstreamer_create_payloads_vector() -> None:
    """GStreamer create_payloads: T(NTP 0102..08) + KEMAC NULL with a 16-byte TEK (edata)."""
    m = roundtrip(GST_CREATE_PAYLOADS, lenient=True)
    assert m.leniencies == (Leniency.NON_NTP_TIMESTAMP, Leniency.PSK_WITHOUT_RAND)
    assert m.payloads[0] == Timestamp(TsType.NTP, GST_NTP_DATA)
    kemac = m.payloads[1]
    assert isinstance(kemac, Kemac)
    assert kemac.plain == (KeyData(KeyDataType.TEK, GST_EDATA),)
    assert_prefixes_fail(GST_CREATE_PAYLOADS, lenient=True)


# --- HDR: data types, PRF, maps (RFC 3830 §6.1) ------------------------------------------------


@pytest.mark.parametrize("dt", list(range(27)))
def test_every_data_type(dt: int) -> None:
    """RFC 3830 §6.1 data type registry 0-26 (RFC 4650, 4738, 6043, 6267, 6509)."""
    b = bytes.fromhex(hdr_hex(dt, PayloadType.RAND) + "0001ff")
    m = roundtrip(b)
    assert m.data_type == DataType(dt) and isinstance(m.data_type, DataType)
    assert m.payloads == (Rand(b"\xff"),)


@pytest.mark.parametrize("dt", [27, 240, 241, 255])
def test_unassigned_data_type(dt: int) -> None:
    """Data types 27-255 are unassigned/private (IANA): strict error at byte 1, lenient int."""
    b = bytes.fromhex(hdr_hex(dt, 0))
    reject(b, 1, match="data type")
    m = roundtrip(b, lenient=True)
    assert m.data_type == dt and not isinstance(m.data_type, DataType)
    assert m.leniencies == (Leniency.RESERVED_VALUE,)


def test_v_flag_and_prf() -> None:
    """RFC 3830 §6.1: V is the MSB of byte 3, PRF func the low 7 bits (RFC 6043 §6.1 adds 1)."""
    b = bytes.fromhex("01010081123456780000")
    m = roundtrip(b)
    assert m.header.v and m.header.prf == PrfFunc.PRF_HMAC_SHA_256
    reject(bytes.fromhex("01010002123456780000"), 3, match="PRF func")
    m = roundtrip(bytes.fromhex("010100f0123456780000"), lenient=True)
    assert m.header.v and m.header.prf == 0x70


@pytest.mark.parametrize("version", [0, 2, 255])
def test_version_must_be_1(version: int) -> None:
    """RFC 3830 §6.1: version 1 is the only one; rejected at byte 0 even in lenient mode."""
    b = bytes([version]) + bytes.fromhex("01000012345678 0000".replace(" ", ""))
    reject(b, 0, match="version")
    with pytest.raises(DecodeError):
        parse_message(b, lenient=True)


def test_srtp_id_map() -> None:
    """RFC 3830 §6.1.1: #CS entries of policy no (8), SSRC (32), ROC (32); HDR = 10 + 9*#CS."""
    b = bytes.fromhex(
        "0101000012345678"
        + "03"
        + "00"
        + "00deadbeef00000000"
        + "0111223344ffffffff"
        + "0200000000"
        "00000001"
    )
    m = roundtrip(b)
    assert m.header.cs_map == (
        SrtpIdEntry(0, 0xDEADBEEF, 0),
        SrtpIdEntry(1, 0x11223344, 0xFFFFFFFF),
        SrtpIdEntry(2, 0, 1),
    )
    assert m.header.srtp_entries == m.header.cs_map
    # #CS says 4 but only 3 entries: truncated map at the end of the buffer.
    reject(b[:8] + b"\x04" + b[9:], len(b), match="SRTP-ID")


def test_empty_map() -> None:
    """RFC 4563 Empty map (type 1): #CS = 0 and no map info; #CS != 0 is refused at byte 8."""
    m = roundtrip(bytes.fromhex("011a0000123456780001"))
    assert m.header.cs_map_type == CsIdMapType.EMPTY and m.header.cs_map == ()
    assert m.data_type == DataType.SAKKE_MSG
    reject(bytes.fromhex("011a0000123456780101"), 8, match="Empty CS ID map")


def test_generic_id_map() -> None:
    """RFC 6043 GENERIC-ID: CS ID, prot type, S|#P, Ps, session data (16-bit len), SPI (8-bit)."""
    entry = "04" + "00" + "82" + "0001" + "0003" + "aabbcc" + "04" + "00000001"
    entry2 = "05" + "01" + "00" + "0000" + "00"
    m = roundtrip(bytes.fromhex("0101000012345678" + "02" + "02" + entry + entry2))
    assert m.header.cs_map == (
        GenericIdEntry(4, 0, True, (0, 1), bytes.fromhex("aabbcc"), bytes.fromhex("00000001")),
        GenericIdEntry(5, 1, False, (), b"", b""),
    )
    assert_prefixes_fail(bytes.fromhex("0101000012345678" + "01" + "02" + entry))


def test_unknown_map_type_is_opaque_in_lenient_mode() -> None:
    """CS ID map types 3-255 cannot be framed: strict error at byte 9, lenient opaque tail."""
    b = bytes.fromhex("01010b0012345678" + "03" + "07" + "aabbcc0b021111")
    reject(b, 9, match="CS ID map type")
    m = roundtrip(b, lenient=True)
    assert m.header.cs_map_type == 7 and m.header.raw_cs_count == 3
    assert m.payloads == (Opaque(PayloadType.RAND, bytes.fromhex("aabbcc0b021111")),)
    assert Leniency.UNKNOWN_PAYLOAD in m.leniencies


# --- Payloads (RFC 3830 §6.2-§6.15, RFC 6043, RFC 6509) -----------------------------------


@pytest.mark.parametrize("encr", list(EncrAlg))
@pytest.mark.parametrize("mac", list(MacAlg))
def test_kemac_every_encr_and_mac_alg(encr: EncrAlg, mac: MacAlg) -> None:
    """RFC 3830 §6.2: NP, encr alg, 16-bit encr data len, encr data, MAC alg, implied MAC."""
    maclen = {MacAlg.NULL: 0, MacAlg.HMAC_SHA_1_160: 20, MacAlg.HMAC_SHA_256_256: 32}[mac]
    keydata = "00000004" + "a0a1a2a3"  # TGK, KV NULL, 4 bytes (RFC 3830 §6.13)
    body = f"00{encr:02x}0008{keydata}{mac:02x}" + "cd" * maclen
    m = roundtrip(one(PayloadType.KEMAC, body))
    k = m.payloads[0]
    assert isinstance(k, Kemac)
    assert (k.encr_alg, k.mac_alg, k.mac) == (encr, mac, b"\xcd" * maclen)
    assert k.encr_data == bytes.fromhex(keydata)
    assert k.mac_input_len() == 5 + 8
    if encr == EncrAlg.NULL:
        assert k.plain == (KeyData(KeyDataType.TGK, bytes.fromhex("a0a1a2a3")),)
    else:
        assert k.plain is None


def test_kemac_rejections() -> None:
    """RFC 3830 §6.2: unknown MAC alg (length unknown), unassigned encr alg, short encr data."""
    reject(one(PayloadType.KEMAC, "0001000003"), 14, match="MAC alg")
    reject(one(PayloadType.KEMAC, "0004000000"), 11, match="encr alg")
    m = roundtrip(one(PayloadType.KEMAC, "00f10002aabb00"), lenient=True)
    assert m.payloads == (Kemac(0xF1, b"\xaa\xbb", MacAlg.NULL, b""),)
    assert m.leniencies == (Leniency.RESERVED_VALUE,)
    reject(one(PayloadType.KEMAC, "00010010aabb00"), 14, match="KEMAC encr data")


def _kv_hex(kv: int) -> str:
    return {0: "", 1: "0400000001", 2: "06000000000000" + "06ffffffffffff"}[kv]


@pytest.mark.parametrize("key_type", list(KeyDataType))
@pytest.mark.parametrize("kv", [0, 1, 2])
def test_key_data_every_type_and_kv(key_type: KeyDataType, kv: int) -> None:
    """RFC 3830 §6.13/§6.14: type (4) | KV (4), key len/key, salt for +SALT types, KV data."""
    key = bytes(range(16))
    salt = bytes(range(100, 114)) if key_type & 1 else None
    sub = f"00{key_type << 4 | kv:02x}0010" + key.hex()
    if salt is not None:
        sub += "000e" + salt.hex()
    sub += _kv_hex(kv)
    body = f"0000{len(sub) // 2:04x}{sub}00"
    m = roundtrip(one(PayloadType.KEMAC, body))
    k = m.payloads[0]
    assert isinstance(k, Kemac) and k.plain is not None
    kd = k.plain[0]
    assert isinstance(kd, KeyData)
    assert (kd.key_type, kd.key, kd.salt) == (key_type, key, salt)
    expected_kv = {
        0: None,
        1: KeySpi(b"\x00\x00\x00\x01"),
        2: KeyInterval(bytes(6), b"\xff" * 6),
    }[kv]
    assert kd.kv == expected_kv
    if kv == 1:
        assert kd.mki == b"\x00\x00\x00\x01"
    if kv == 2:
        assert isinstance(kd.kv, KeyInterval)
        assert (kd.kv.from_index, kd.kv.to_index) == (0, 2**48 - 1)
    subs, quirks = parse_sub_payloads(bytes.fromhex(sub))
    assert subs == (kd,) and quirks == ()
    assert encode_sub_payloads(subs) == bytes.fromhex(sub)


def test_key_data_chain_and_rejections() -> None:
    """RFC 3830 §6.13: NP 20 chains key data; KV 3-15 unknown; KEMAC holds only key data/ID."""
    two = "14000004a0a1a2a3" + "00200004b0b1b2b3"
    subs, _ = parse_sub_payloads(bytes.fromhex(two))
    assert subs == (KeyData(KeyDataType.TGK, bytes.fromhex("a0a1a2a3")),
                    KeyData(KeyDataType.TEK, bytes.fromhex("b0b1b2b3")))  # fmt: skip
    assert encode_sub_payloads(subs) == bytes.fromhex(two)
    with pytest.raises(DecodeError, match="key validity type 3"):
        parse_sub_payloads(bytes.fromhex("00030000"))
    with pytest.raises(DecodeError, match="followed by payload type 5"):
        parse_sub_payloads(bytes.fromhex("05000000"))
    with pytest.raises(DecodeError, match="after the last key data"):
        parse_sub_payloads(bytes.fromhex("00000000ff"))
    # The KEMAC's NULL plaintext is checked too (offset relative to the message).
    reject(one(PayloadType.KEMAC, "000000040003000000"), 15, match="key validity type 3")
    with pytest.raises(EncodeError):
        KeyData(KeyDataType.TEK_SALT, b"k")  # +SALT type without a salt


def test_id_first_in_pk_kemac() -> None:
    """RFC 3830 §3.2: the PK KEMAC plaintext is IDi || {TGK}; the ID's NP is 20."""
    plain = "140100" + f"{10:02x}" + b"sip:a@b.cd".hex() + "00000002aabb"
    body = f"0000{len(plain) // 2:04x}{plain}00"
    m = roundtrip(one(PayloadType.KEMAC, body, DataType.PK_INIT))
    k = m.find(Kemac)
    assert k is not None
    assert k.plain == (IdPayload(IdType.URI, b"sip:a@b.cd"), KeyData(KeyDataType.TGK, b"\xaa\xbb"))


@pytest.mark.parametrize("cache", [0, 1, 2])
def test_pke_every_cache_indicator(cache: int) -> None:
    """RFC 3830 §6.3: C is the top 2 bits, data len the low 14 bits (max 16383)."""
    data = (bytes(range(256)) * 64)[:16383]
    m = roundtrip(one(PayloadType.PKE, f"00{(cache << 14) | 16383:04x}" + data.hex()))
    assert m.payloads == (Pke(PkeCache(cache), data),)
    m = roundtrip(one(PayloadType.PKE, f"00{(cache << 14) | 3:04x}aabbcc"))
    assert m.payloads == (Pke(PkeCache(cache), bytes.fromhex("aabbcc")),)
    with pytest.raises(EncodeError):
        Message(Header(DataType.PK_INIT, 1), (Pke(cache, bytes(16384)),)).encode()


def test_pke_unassigned_cache_indicator() -> None:
    """RFC 3830 §6.3: C = 3 is unassigned: strict error at the C field, lenient keeps 3."""
    b = one(PayloadType.PKE, "00c002aabb")
    reject(b, 11, match="PKE C")
    assert roundtrip(b, lenient=True).payloads == (Pke(3, b"\xaa\xbb"),)


@pytest.mark.parametrize("group", list(DhGroup))
def test_dh_every_group(group: DhGroup) -> None:
    """RFC 3830 §6.4: group, fixed-length value (192/96/128 bytes), reserved (4) | KV (4)."""
    n = {DhGroup.OAKLEY_5: 192, DhGroup.OAKLEY_1: 96, DhGroup.OAKLEY_2: 128}[group]
    value = bytes([0x42]) * n
    m = roundtrip(one(PayloadType.DH, f"00{group:02x}" + value.hex() + "00"))
    assert m.payloads == (DhPayload(group, value),)
    m = roundtrip(one(PayloadType.DH, f"00{group:02x}" + value.hex() + "01" + "0400000007"))
    assert m.payloads == (DhPayload(group, value, KeySpi(bytes.fromhex("00000007"))),)
    reject(one(PayloadType.DH, f"00{group:02x}" + value.hex() + "10"), 12 + n, match="reserved")
    with pytest.raises(DecodeError, match="truncated DH"):
        parse_message(one(PayloadType.DH, f"00{group:02x}" + value[:-1].hex() + "00"))
    with pytest.raises(EncodeError):
        Message(Header(DataType.DH_INIT, 1), (DhPayload(group, value[:-1]),)).encode()


def test_dh_unknown_group() -> None:
    """RFC 3830 §6.4: an unknown group has an unknown value length: error even when lenient."""
    b = one(PayloadType.DH, "0003" + "00" * 10)
    reject(b, 11, match="DH group")
    with pytest.raises(DecodeError):
        parse_message(b, lenient=True)


@pytest.mark.parametrize("stype", list(SignType))
def test_sign_12_bit_length(stype: SignType) -> None:
    """RFC 3830 §6.5: S type (4 bits) | signature len (12 bits, max 4095); no next payload."""
    sig = bytes(range(256)) * 15 + bytes(255)  # 4095 bytes
    m = roundtrip(one(PayloadType.SIGN, f"{(stype << 12) | 4095:04x}" + sig.hex()))
    assert m.payloads == (Sign(stype, sig),)
    m = roundtrip(one(PayloadType.SIGN, f"{(stype << 12) | 2:04x}abcd"))
    assert m.payloads == (Sign(stype, b"\xab\xcd"),)
    with pytest.raises(EncodeError):
        Message(Header(DataType.PK_INIT, 1), (Sign(stype, bytes(4096)),)).encode()


def test_sign_must_be_last() -> None:
    """RFC 3830 §6.5: SIGN has no next payload byte, so bytes after it are an error."""
    b = one(PayloadType.SIGN, "0002abcd" + "0b01ff")
    reject(b, 14, match="after the last payload")
    with pytest.raises(DecodeError):
        parse_message(b, lenient=True)
    with pytest.raises(EncodeError, match="SIGN must be the last"):
        Message(Header(DataType.PK_INIT, 1), (Sign(0, b"s"), Rand(b"r"))).encode()
    reject(one(PayloadType.SIGN, "3002abcd"), 10, match="S type")


@pytest.mark.parametrize(
    ("ts_type", "value"),
    [(0, NTP), (1, NTP), (2, "00000007"), (3, "e93c7f00")],
)
def test_timestamp_every_type(ts_type: int, value: str) -> None:
    """RFC 3830 §6.6 (+RFC 6043 NTP-UTC-32): 8-byte NTP, 4-byte COUNTER / NTP-UTC-32."""
    m = roundtrip(one(PayloadType.T, f"00{ts_type:02x}{value}"))
    t = m.payloads[0]
    assert t == Timestamp(TsType(ts_type), bytes.fromhex(value))
    assert isinstance(t, Timestamp) and t.as_int == int(value, 16)
    reject(one(PayloadType.T, "0004" + NTP), 11, match="TS type")


@pytest.mark.parametrize("id_type", list(IdType))
def test_id_every_type(id_type: IdType) -> None:
    """RFC 3830 §6.7 (+RFC 6043 byte string): NP, ID type, 16-bit ID len, ID data."""
    data = b"sip:alice@example.org"
    m = roundtrip(one(PayloadType.ID, f"00{id_type:02x}{len(data):04x}" + data.hex()))
    assert m.payloads == (IdPayload(id_type, data),)
    idp = m.payloads[0]
    assert isinstance(idp, IdPayload) and idp.text == "sip:alice@example.org"
    reject(one(PayloadType.ID, "00030000"), 11, match="ID type")


@pytest.mark.parametrize("role", list(IdRole))
def test_idr_every_role(role: IdRole) -> None:
    """RFC 6043 §6.6 / RFC 6509: IDR = NP, ID role, ID type, 16-bit ID len, ID data."""
    m = roundtrip(one(PayloadType.IDR, f"00{role:02x}010003" + b"kms".hex()))
    assert m.payloads == (IdrPayload(role, IdType.URI, b"kms"),)
    reject(one(PayloadType.IDR, "0000010000"), 11, match="ID role")


@pytest.mark.parametrize("cert_type", list(CertType))
def test_cert_every_type(cert_type: CertType) -> None:
    """RFC 3830 §6.7: CERT = NP, cert type, 16-bit cert len, certificate."""
    der = bytes(range(256)) * 3
    m = roundtrip(one(PayloadType.CERT, f"00{cert_type:02x}{len(der):04x}" + der.hex()))
    assert m.payloads == (Cert(cert_type, der),)


@pytest.mark.parametrize(
    ("hf", "n"), [(HashFunc.SHA_1, 20), (HashFunc.MD5, 16), (HashFunc.SHA_256, 32)]
)
def test_chash_every_hash(hf: HashFunc, n: int) -> None:
    """RFC 3830 §6.8 (+RFC 6043 SHA-256): NP, hash func, hash of implied length."""
    m = roundtrip(one(PayloadType.CHASH, f"00{hf:02x}" + "ab" * n))
    assert m.payloads == (Chash(hf, b"\xab" * n),)
    reject(one(PayloadType.CHASH, "0003" + "ab" * 20), 11, match="hash function")


@pytest.mark.parametrize(
    ("alg", "n"), [(MacAlg.NULL, 0), (MacAlg.HMAC_SHA_1_160, 20), (MacAlg.HMAC_SHA_256_256, 32)]
)
def test_verification_every_auth_alg(alg: MacAlg, n: int) -> None:
    """RFC 3830 §6.9: V = NP, auth alg (MAC alg registry), ver data of implied length."""
    m = roundtrip(one(PayloadType.V, f"00{alg:02x}" + "5a" * n))
    assert m.payloads == (Verification(alg, b"\x5a" * n),)
    reject(one(PayloadType.V, "0003" + "5a" * 20), 11, match="V auth alg")


@pytest.mark.parametrize("param", list(SrtpParam))
def test_sp_every_srtp_param(param: SrtpParam) -> None:
    """RFC 3830 §6.10.1 (+RFC 4771 13-19, RFC 7714 20): type, length, value TLVs."""
    value = "0003" if param == SrtpParam.KEY_DERIVATION_RATE else "07"
    tlv = f"{param:02x}{len(value) // 2:02x}{value}"
    m = roundtrip(one(PayloadType.SP, f"0001 00 {len(tlv) // 2:04x} {tlv}".replace(" ", "")))
    sp = m.payloads[0]
    assert sp == SecurityPolicy(1, ProtType.SRTP, (SpParam(param, bytes.fromhex(value)),))
    assert isinstance(sp, SecurityPolicy) and sp.get(param) is not None
    assert sp.get(param).int_value == int(value, 16)  # type: ignore[union-attr]


def test_sp_full_policy_and_tesla() -> None:
    """RFC 3830 §6.10: several SP payloads; TESLA (RFC 4442) params are kept as opaque TLVs."""
    sp0 = "0000000006" + "000101" + "010110"
    sp1 = "0001010004" + "20020102"
    b = bytes.fromhex(hdr_hex(1, PayloadType.SP) + "0a" + sp0[2:] + "00" + sp1[2:])
    m = roundtrip(b)
    assert m.payloads == (
        SecurityPolicy(0, ProtType.SRTP, (SpParam(0, b"\x01"), SpParam(1, b"\x10"))),
        SecurityPolicy(1, ProtType.TESLA, (SpParam(0x20, b"\x01\x02"),)),
    )


def test_sp_rejections() -> None:
    """RFC 3830 §6.10: repeated SRTP param, 2-byte 1-byte param, unknown param, bad lengths."""

    def sp(tlvs: str) -> bytes:
        return one(PayloadType.SP, f"000000{len(tlvs) // 2:04x}{tlvs}")

    reject(sp("000101" + "000101"), 18, match="parameter 0 repeated")
    reject(sp("01020010"), 16, match="must be 1 byte, not 2")
    reject(sp("0600"), 16, match="key derivation rate")
    reject(sp("060500000000ff"), 16, match="key derivation rate")
    reject(sp("150101"), 15, match="unknown SRTP policy parameter 21")
    assert roundtrip(sp("150101"), lenient=True).leniencies == (Leniency.RESERVED_VALUE,)
    reject(sp("0005"), 17, match="SP param value")  # TLV runs past the param length
    reject(one(PayloadType.SP, "0000000010000101"), 15, match="SP params")  # past the message
    reject(one(PayloadType.SP, "0000020000"), 12, match="SP prot type")


def test_rand_and_randr() -> None:
    """RFC 3830 §6.11 RAND (8-bit len) and RFC 6043 §6.8 RANDR (role, len, RAND)."""
    m = roundtrip(one(PayloadType.RAND, "0010" + SPEC_RAND.hex()))
    assert m.payloads == (Rand(SPEC_RAND),)
    reject(one(PayloadType.RAND, "0000"), 11, match="empty RAND")
    for role in (1, 2, 3):
        m = roundtrip(one(PayloadType.RANDR, f"00{role:02x}08" + "11" * 8))
        assert m.payloads == (RandRole(role, b"\x11" * 8),)
    reject(one(PayloadType.RANDR, "000100"), 12, match="empty RANDR")


@pytest.mark.parametrize("error_no", list(ErrorNo))
def test_err_every_number(error_no: ErrorNo) -> None:
    """RFC 3830 §6.12 (+RFC 4738 13, RFC 6043 14-15): NP, error no, 16-bit reserved."""
    m = roundtrip(one(PayloadType.ERR, f"00{error_no:02x}0000", DataType.ERROR))
    assert m.payloads == (Err(error_no),)


def test_err_reserved_and_unassigned() -> None:
    """RFC 3830 §6.12: reserved must be 0; error numbers 16-255 unassigned/private."""
    b = one(PayloadType.ERR, "00010001", DataType.ERROR)
    reject(b, 12, match="reserved")
    assert roundtrip(b, lenient=True).payloads == (Err(ErrorNo.INVALID_TS, 1),)
    b = one(PayloadType.ERR, "00f10000", DataType.ERROR)
    reject(b, 11, match="error no 241")
    assert roundtrip(b, lenient=True).payloads == (Err(241),)


def test_timestamp_with_role() -> None:
    """RFC 6043 §6.4 TR: NP, TS role, TS type, TS value (length by type)."""
    for role in (1, 2, 3, 4):
        m = roundtrip(one(PayloadType.TR, f"00{role:02x}00{NTP}"))
        assert m.payloads == (TimestampRole(role, TsType.NTP_UTC, SPEC_T_I),)
    m = roundtrip(one(PayloadType.TR, "000102000000ff"))
    assert m.payloads == (TimestampRole(1, TsType.COUNTER, b"\0\0\0\xff"),)
    reject(one(PayloadType.TR, "000109"), 12, match="TS type")


@pytest.mark.parametrize("ext_type", list(GeneralExtType))
def test_general_extension_every_type(ext_type: GeneralExtType) -> None:
    """RFC 3830 §6.15: NP, type, 16-bit length, data (vendor ID, SDP IDs, others opaque)."""
    data = b"mikey" if ext_type == GeneralExtType.SDP_IDS else bytes.fromhex("0a0b0c")
    m = roundtrip(one(PayloadType.GENERAL_EXT, f"00{ext_type:02x}{len(data):04x}" + data.hex()))
    assert m.payloads == (GeneralExt(ext_type, data),)


def test_general_extension_sdp_ids_and_private() -> None:
    """RFC 3830 §6.15 SDP IDs (RFC 4567 KMPIDs); types 6-255 unassigned/private."""
    ext = GeneralExt.sdp_ids(["mikey", "sdes"])
    assert ext.data == b"mikey sdes" and ext.kmpids == ("mikey", "sdes")
    b = Message(Header(DataType.PSK_RESP, 1), (ext,)).encode()
    assert b.endswith(bytes.fromhex("0001000a") + b"mikey sdes")
    assert parse_message(b).payloads == (ext,)
    b = one(PayloadType.GENERAL_EXT, "00f10001ee")
    reject(b, 11, match="general extension type 241")
    assert roundtrip(b, lenient=True).payloads == (GeneralExt(0xF1, b"\xee"),)


def test_sakke_payload() -> None:
    """RFC 6509 §4.2: NP, SAKKE params, ID scheme, 16-bit data length, SAKKE data."""
    data = bytes(range(97))
    m = roundtrip(one(PayloadType.SAKKE, "000101" + f"{len(data):04x}" + data.hex(), 26))
    assert m.payloads == (Sakke(1, 1, data),)


def test_all_payload_types_chained() -> None:
    """RFC 3830 §6: a chain of every framed payload type with NP bytes linking them."""
    msg = Message(
        Header(DataType.PK_INIT, 7, (SrtpIdEntry(0, 1, 2),), v=True),
        (
            Timestamp(TsType.NTP_UTC, SPEC_T_I),
            TimestampRole(2, TsType.COUNTER, b"\0\0\0\1"),
            Rand(b"r" * 16),
            RandRole(1, b"q" * 8),
            IdPayload(IdType.NAI, b"a@b"),
            IdrPayload(IdRole.KMS, IdType.URI, b"kms"),
            Cert(CertType.X509V3, b"cert"),
            Chash(HashFunc.MD5, bytes(16)),
            srtp_sp(),
            GeneralExt(GeneralExtType.VENDOR_ID, b"acme"),
            Sakke(1, 1, b"sakke"),
            DhPayload(DhGroup.OAKLEY_1, bytes(96)),
            Kemac.null([KeyData(KeyDataType.TGK, bytes(16))], MacAlg.HMAC_SHA_1_160),
            Err(ErrorNo.UNSPECIFIED),
            Verification(MacAlg.NULL, b""),
            Pke(PkeCache.CACHE, bytes(8)),
            Sign(SignType.ECCSI, bytes(8)),
        ),
    )
    b = msg.encode()
    assert parse_message(b) == msg
    assert_prefixes_fail(b)
    # The NP chain: HDR byte 2 names T, and each payload names the next one.
    assert b[2] == PayloadType.T


@pytest.mark.parametrize("name", sorted(interop_messages()))
def test_builder_messages_roundtrip(name: str) -> None:
    """Every composition the builders make (RFC 3830 §3, RFC 4650, RFC 4738) round-trips."""
    msg = interop_messages()[name]
    b = msg.encode()
    assert parse_message(b) == msg
    assert_prefixes_fail(b)


# --- Strict rejections -------------------------------------------------------------------------


def test_unknown_payload_type_strict_and_opaque() -> None:
    """RFC 3830 §6: no generic length, so an unknown payload ends the chain: error / opaque."""
    for ptype in (16, 17, 18, 19, 22, 25, 27, 200, 255):
        b = one(ptype, "00aabbcc")
        reject(b, 10, match=f"unsupported payload type {ptype}")
        m = roundtrip(b, lenient=True)
        assert m.payloads == (Opaque(ptype, bytes.fromhex("00aabbcc")),)
        assert m.leniencies == (Leniency.UNKNOWN_PAYLOAD,)


def test_key_data_outside_kemac() -> None:
    """RFC 3830 §6.13: key data (20) is a KEMAC sub-payload only; refused even when lenient."""
    b = one(PayloadType.KEY_DATA, "00000000")
    reject(b, 10, match="key data outside KEMAC")
    with pytest.raises(DecodeError):
        parse_message(b, lenient=True)


def test_missing_payload_and_bad_lengths() -> None:
    """The chain announces a payload that is absent; lengths running past the end."""
    reject(bytes.fromhex(hdr_hex(1, PayloadType.T)), 10, match="announced but missing")
    reject(one(PayloadType.ID, "00010010aa"), 14, match="ID data")
    reject(one(PayloadType.CERT, "0000ffff"), 14, match="certificate")
    reject(one(PayloadType.RAND, "0010aabb"), 12, match="RAND")
    reject(bytes.fromhex("0101"), 2, match="HDR next payload")


def test_decode_error_is_mikey_error_with_offset() -> None:
    e = reject(one(PayloadType.RAND, "0000"), 11)
    assert isinstance(e, MikeyError) and "at byte 11" in str(e)
    with pytest.raises(DecodeError):
        parse_message("not bytes")  # type: ignore[arg-type]
    with pytest.raises(DecodeError, match="exceeds"):
        parse_message(bytes(70000))


def test_encode_errors_are_typed() -> None:
    """Out-of-range fields raise EncodeError, never struct.error / OverflowError."""
    bad = [
        Message(Header(DataType.PSK_RESP, 2**32), ()),
        Message(Header(DataType.PSK_RESP, 1, (SrtpIdEntry(0, 2**32, 0),)), ()),
        Message(Header(DataType.PSK_RESP, 1, (SrtpIdEntry(256, 0, 0),)), ()),
        Message(Header(DataType.PSK_RESP, 1), (Err(ErrorNo.INVALID_TS, 70000),)),
        Message(Header(DataType.PSK_RESP, 1), (Rand(b""),)),
        Message(Header(DataType.PSK_RESP, 1), (Timestamp(TsType.NTP_UTC, b"1234"),)),
        Message(Header(DataType.PSK_RESP, 1), (Chash(HashFunc.SHA_1, b"x"),)),
        Message(Header(DataType.PSK_RESP, 1), (Verification(MacAlg.HMAC_SHA_1_160, b""),)),
        Message(Header(DataType.PSK_RESP, 1), (Kemac(0, b"", MacAlg.HMAC_SHA_1_160, b""),)),
        Message(Header(DataType.PSK_RESP, 1, prf=0x80), ()),
        Message(Header(DataType.PSK_RESP, 1), (SecurityPolicy(0, 0, (SpParam(0, bytes(256)),)),)),
        Message(Header(DataType.PSK_RESP, 1), (Rand(bytes(255)),) * 300),
    ]
    for m in bad:
        with pytest.raises(EncodeError):
            m.encode()


# --- Leniencies (peer quirks of docs/WIRE.md) -----------------------------------------------------


def test_lenient_trailing_zero_milestone() -> None:
    """Milestone XProtect appends one 0x00 (gortsplib #953): lenient only, kept for encode."""
    b = PSK_R_MESSAGE + b"\x00"
    reject(b, len(PSK_R_MESSAGE), match="after the last payload")
    m = roundtrip(b, lenient=True)
    assert m.leniencies == (Leniency.TRAILING_BYTES,) and m.trailing == b"\x00"
    for tail in (b"\x01", b"\x00\x00", b"\x00\x01"):
        with pytest.raises(DecodeError):
            parse_message(PSK_R_MESSAGE + tail, lenient=True)


@pytest.mark.parametrize("auth_key_len", [4, 10])
def test_lenient_gstreamer_tag_in_auth_key_len(auth_key_len: int) -> None:
    """GStreamer writes the SRTP tag length (4/10) in SP param 3 and omits param 11."""
    sp = SecurityPolicy(0, ProtType.SRTP, (SpParam(0, b"\x01"), SpParam(3, bytes([auth_key_len]))))
    b = Message(Header(DataType.PSK_RESP, 1), (sp,)).encode()
    reject(b, 10, match="looks like an SRTP tag length")
    m = roundtrip(b, lenient=True)
    assert m.leniencies == (Leniency.SRTP_TAG_IN_AUTH_KEY_LEN,)
    # With param 11 present the value is a real key length: strict accepts it.
    sp11 = SecurityPolicy(0, ProtType.SRTP, (*sp.params, SpParam(11, b"\x0a")))
    roundtrip(Message(Header(DataType.PSK_RESP, 1), (sp11,)).encode())


@pytest.mark.parametrize("n", [28, 30, 44, 46])
def test_lenient_gstreamer_tek_with_salt(n: int) -> None:
    """GStreamer: TEK = master key || salt (30 bytes for AES-128), no salt field."""
    kemac = Kemac.null([KeyData(KeyDataType.TEK, bytes(range(n)))])
    b = Message(Header(DataType.PSK_RESP, 1), (kemac,)).encode()
    reject(b, 16, match=f"TEK of {n} bytes")
    m = roundtrip(b, lenient=True)
    assert m.leniencies == (Leniency.TEK_WITH_SALT,)


def test_lenient_genetec_psk_without_rand_and_filetime() -> None:
    """ONVIF/Genetec (docs/WIRE.md §PSK without RAND): HDR,T,SP,KEMAC, a FILETIME T, no RAND."""
    b = genetec_message()
    with pytest.raises(DecodeError, match="not a plausible NTP time"):
        parse_message(b)
    m = roundtrip(b, lenient=True)
    assert set(m.leniencies) == {
        Leniency.PSK_WITHOUT_RAND,
        Leniency.NON_NTP_TIMESTAMP,
        Leniency.TEK_WITH_SALT,
    }
    assert m.payloads[0] == Timestamp(TsType.NTP_UTC, GENETEC_FILETIME)
    assert [type(p) for p in m.payloads] == [Timestamp, SecurityPolicy, Kemac]
    # Each quirk alone is refused in strict mode.
    no_rand = Message(
        Header(DataType.PSK_INIT, 1), (Timestamp(TsType.NTP_UTC, SPEC_T_I), srtp_sp())
    ).encode()
    reject(no_rand, 0, match="without RAND")
    assert parse_message(no_rand, lenient=True).leniencies == (Leniency.PSK_WITHOUT_RAND,)
    filetime = one(PayloadType.T, "0000" + GENETEC_FILETIME.hex())
    reject(filetime, 12, match="not a plausible NTP time")
    assert roundtrip(filetime, lenient=True).leniencies == (Leniency.NON_NTP_TIMESTAMP,)


def test_lenient_wolfssl_empty_map_padding() -> None:
    """wolfSSL MIKEY-SAKKE writes two zero bytes after an Empty map type (12-byte HDR)."""
    b = bytes.fromhex("011a1a0012345678000100" + "00" + "000101" + "0003" + "aabbcc")
    reject(b)
    m = roundtrip(b, lenient=True)
    assert m.leniencies == (Leniency.EMPTY_MAP_PADDING,)
    assert m.header.map_padding == b"\0\0"
    assert m.payloads == (Sakke(1, 1, bytes.fromhex("aabbcc")),)


# --- Secrets never shown ------------------------------------------------------------------------


def test_repr_and_str_hide_encrypted_kemac() -> None:
    """An encrypted KEMAC's bytes and key material never show in repr() or str()."""
    m = parse_message(PSK_I_MESSAGE)
    for text in (repr(m), str(m), repr(m.find(Kemac)), describe_message(m)):
        assert SPEC_ENCRYPTED_KEY_DATA.hex() not in text
        assert SPEC_ENCRYPTED_KEY_DATA.hex()[:16] not in text
        assert repr(SPEC_ENCRYPTED_KEY_DATA)[2:-1] not in text
    assert "not shown" in describe_message(m)


def test_repr_hides_keys_and_describe_marks_null_kemac_clear() -> None:
    """KeyData.key/salt are repr=False; describe() marks NULL-KEMAC keys as CLEAR."""
    kd = KeyData(KeyDataType.TEK_SALT, bytes(range(0xC0, 0xD0)), bytes(range(0xE0, 0xEE)))
    m = Message(Header(DataType.PSK_RESP, 1), (Kemac.null([kd]),))
    assert kd.key.hex() not in repr(m) and kd.salt is not None
    assert repr(kd.key)[2:-1] not in repr(m) and kd.salt.hex() not in repr(m)
    assert kd.key.hex() not in repr(kd)
    text = describe_message(parse_message(m.encode()))
    assert "CLEAR" in text and kd.key.hex() in text


# --- Hypothesis: round trip per payload type ----------------------------------------------------


@pytest.mark.parametrize("kind", PAYLOAD_KINDS)
def test_roundtrip_per_payload_kind(kind: str) -> None:
    """parse_message(m.encode()) == m for generated messages holding each payload kind."""

    @settings(max_examples=60, deadline=None)
    @given(messages(kind))
    def check(m: Message) -> None:
        b = m.encode()
        assert parse_message(b) == m
        assert parse_message(b, lenient=True) == m
        assert dataclasses.replace(m).encode() == b

    check()
