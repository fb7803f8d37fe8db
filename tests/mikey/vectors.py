"""Shared MIKEY test vectors, message builders and hypothesis strategies.

Byte vectors cite where they come from: docs/WIRE.md §Worked PSK exchange (a PSK exchange
computed with an independent PRF and decoded by tshark 4.0.17, byte-exact in minisip),
GStreamer's own unit test ``tests/check/libs/mikey.c`` (GStreamer/gstreamer), and the peer
examples of docs/WIRE.md.
The builders return :class:`mikey.codec.Message` objects of every composition RFC 3830 §3,
RFC 4650 and RFC 4738 define; the strategies generate messages that a strict parser accepts, so
``parse_message(m.encode()) == m`` must hold for every example.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from cryptography.hazmat.primitives import serialization
from hypothesis import strategies as st

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
    KeyValidity,
    Message,
    Payload,
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
)
from mikey.registry import (
    DH_VALUE_LENGTH,
    HASH_LENGTH,
    MAC_LENGTH,
    TS_LENGTH,
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
    PkeCache,
    PrfFunc,
    ProtType,
    SignType,
    SrtpParam,
    TsType,
)

from .certs import ca

# --- docs/WIRE.md §Worked PSK exchange (RFC 3830 §3.1) -----------------------------------------

PSK_I_MESSAGE = base64.b64decode(
    "AQAFgBI0VngBAADerb7vAAAAAAsA6Tx/AIAAAAAKEAARIjNEVWZ3iJmqu8zd7v8BAAAAHgABAQEBEAIBAQMB"
    "FAQBDgUBAAcBAQgBAQoBAQsBCgABABQ7UKSixVSjpnBHJyoj/w59Y5u6PgGPZs7206886vFruTZZ2MBLA9/qwg=="
)
PSK_R_MESSAGE = base64.b64decode(
    "AQEFABI0VngBAADerb7vAAAAAAkA6Tx/AYAAAAAAAU776DKwAO8zOlwu1jHHrC5/ZE0X"
)
PSK_ERROR_MESSAGE = bytes.fromhex(
    "0106050012345678010000deadbeef000000000c00e93c7f028000000009010000000113287e310d9f73c9410a"
    "ce026cea0b8f15bbf216"
)
# docs/WIRE.md §NULL-mode message (the GStreamer/ONVIF/live555 shape): TEK = key || salt, KV SPI.
NULL_MODE_MESSAGE = bytes.fromhex(
    "010005000102030401000011223344000000000b00e93c7f00800000000a1000112233445566778899aabbccddeeff"
    "010000001e00010101011002010103011404010e0501000701010801010a01010b010a000000270021001e0102030405"
    "060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e040000000100"
)
SPEC_T_I = bytes.fromhex("e93c7f0080000000")
SPEC_RAND = bytes.fromhex("00112233445566778899aabbccddeeff")
SPEC_ENCRYPTED_KEY_DATA = bytes.fromhex("3b50a4a2c554a3a67047272a23ff0e7d639bba3e")
SPEC_KEMAC_MAC = bytes.fromhex("8f66cef6d3af3ceaf16bb93659d8c04b03dfeac2")
SPEC_NULL_TEK = bytes(range(1, 31))

# --- GStreamer tests/check/libs/mikey.c (GStreamer/gstreamer) ---------------------------------

# create_common: test_data, the 10-byte HDR of set_info(1, PSK_INIT, FALSE, MIKEY_1, 0x12345678,
# SRTP) with no crypto session.
GST_CREATE_COMMON_HDR = bytes([0x01, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00])
# create_common: test_data2, the map info after add_cs_srtp(1, 0x12345678, 0) and
# add_cs_srtp(2, 0x23456789, 1); the test compares bytes 10..27 of the 28-byte message.
GST_CREATE_COMMON_MAP = bytes([0x01, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00, 0x00, 0x00]) + bytes(
    [0x02, 0x23, 0x45, 0x67, 0x89, 0x00, 0x00, 0x00, 0x01]
)
GST_CREATE_COMMON_2CS = GST_CREATE_COMMON_HDR[:8] + b"\x02\x00" + GST_CREATE_COMMON_MAP
# create_payloads: T (NTP, ntp_data 01..08) then KEMAC NULL/NULL with one TEK sub-payload holding
# edata (16 bytes); the test checks the 20-byte HDR+T size. Reconstructed per RFC 3830 §6.6, §6.2,
# §6.13 from that test's calls.
GST_NTP_DATA = bytes([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])
GST_EDATA = bytes(
    [0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0, 0xF0, 0x10]
)
GST_CREATE_PAYLOADS = (
    bytes([0x01, 0x00, 0x05, 0x00, 0x12, 0x34, 0x56, 0x78, 0x00, 0x00])
    + bytes([0x01, 0x01])
    + GST_NTP_DATA
    + bytes([0x00, 0x00, 0x00, 0x14])  # KEMAC: last, NULL, 20 bytes of encr data
    + bytes([0x00, 0x20, 0x00, 0x10])  # key data: last, TEK/KV NULL, 16 bytes
    + GST_EDATA
    + bytes([0x00])  # MAC alg NULL
)

# --- docs/WIRE.md §PSK without RAND: ONVIF / Genetec Omnicast SETUP example, reconstructed ----
# HDR, T, SP, KEMAC (no RAND); T holds a Windows FILETIME (2018-01-15) in an NTP-UTC T; TEK of
# 30 bytes with KV SPI and a 4-byte MKI; SP with param 3 = 20 and param 11 = 10.
GENETEC_FILETIME = bytes.fromhex("01d38e19cef95c3d")


def srtp_sp(policy_no: int = 0, **extra: int) -> SecurityPolicy:
    """The SRTP policy live555/gortsplib send (RFC 3830 §6.10.1): AES-CM-128, HMAC-SHA1-80."""
    params = {
        SrtpParam.ENCR_ALG: 1,
        SrtpParam.ENCR_KEY_LEN: 16,
        SrtpParam.AUTH_ALG: 1,
        SrtpParam.AUTH_KEY_LEN: 20,
        SrtpParam.SALT_KEY_LEN: 14,
        SrtpParam.SRTP_PRF: 0,
        SrtpParam.SRTP_ENCR: 1,
        SrtpParam.SRTCP_ENCR: 1,
        SrtpParam.SRTP_AUTH: 1,
        SrtpParam.AUTH_TAG_LEN: 10,
    }
    for name, value in extra.items():
        params[SrtpParam[name.upper()]] = value
    return SecurityPolicy(
        policy_no, ProtType.SRTP, tuple(SpParam(int(t), bytes([v])) for t, v in params.items())
    )


def genetec_message() -> bytes:
    """The ONVIF/Genetec client SETUP shape of docs/WIRE.md §PSK without RAND (lenient only)."""
    kd = KeyData(KeyDataType.TEK, bytes(range(0x40, 0x5E)), None, KeySpi(b"\x00\x00\x00\x01"))
    msg = Message(
        Header(DataType.PSK_INIT, 0x5EED1234, (SrtpIdEntry(0, 0x0A0B0C0D, 0),)),
        (Timestamp(TsType.NTP_UTC, GENETEC_FILETIME), srtp_sp(), Kemac.null([kd])),
    )
    return msg.encode()


# --- Builders: one message per composition ----------------------------------------------------

NTP_2024 = SPEC_T_I


def certificate_der() -> bytes:
    """A real X.509v3 certificate (DER): tshark dissects CERT payloads as X.509."""
    return ca().cert.public_bytes(serialization.Encoding.DER)


def hdr(data_type: DataType, n_cs: int = 1, *, v: bool = False, csb: int = 0x12345678) -> Header:
    entries = tuple(SrtpIdEntry(0, 0xDEADBEEF + i, i) for i in range(n_cs))
    return Header(data_type, csb, entries, v=v)


def psk_aes_message() -> Message:
    """RFC 3830 §3.1 I_MESSAGE with AES-CM-128 / HMAC-SHA-1 KEMAC (the §4.8 vector)."""
    return Message(
        hdr(DataType.PSK_INIT, v=True),
        (
            Timestamp(TsType.NTP_UTC, SPEC_T_I),
            Rand(SPEC_RAND),
            srtp_sp(),
            Kemac(
                EncrAlg.AES_CM_128, SPEC_ENCRYPTED_KEY_DATA, MacAlg.HMAC_SHA_1_160, SPEC_KEMAC_MAC
            ),
        ),
    )


def null_tek_salt_message(n_cs: int = 2) -> Message:
    """PSK I_MESSAGE, NULL KEMAC with TEK+SALT (RFC 3830 §6.13) and KV SPI (§6.14)."""
    kd = KeyData(KeyDataType.TEK_SALT, bytes(range(16)), bytes(range(16, 30)), KeySpi(b"\x01\x02"))
    return Message(
        hdr(DataType.PSK_INIT, n_cs),
        (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Rand(bytes(range(0xA0, 0xB0))),
            srtp_sp(0),
            srtp_sp(1, encr_key_len=32, auth_tag_len=4, key_derivation_rate=0),
            Kemac.null([kd]),
        ),
    )


def pk_message() -> Message:
    """RFC 3830 §3.2 PK I_MESSAGE: HDR, T, RAND, IDi, CERTi, SP, KEMAC, PKE, SIGN.

    The optional CHASH is left out: tshark 4.0 stops dissecting at a CHASH payload.
    """
    return Message(
        hdr(DataType.PK_INIT, v=True),
        (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Rand(bytes(16)),
            IdPayload(IdType.URI, b"sip:alice@example.org"),
            Cert(CertType.X509V3_SIGN, certificate_der()),
            srtp_sp(),
            Kemac(EncrAlg.AES_CM_128, bytes(range(40)), MacAlg.HMAC_SHA_1_160, bytes(20)),
            Pke(PkeCache.CACHE_FOR_CSB, bytes(range(256))),
            Sign(SignType.RSA_PKCS1_1_5, bytes(range(256))),
        ),
    )


def dh_message(group: DhGroup, *, resp: bool = False) -> Message:
    """RFC 3830 §3.3 DH I/R_MESSAGE with a signature (value padded to the group length)."""
    n = DH_VALUE_LENGTH[group]
    dhi = DhPayload(group, bytes([0x5A]) * n)
    body: tuple[Payload, ...]
    if resp:
        dhr = DhPayload(group, bytes([0xA5]) * n)  # no KV: tshark 4.0 stops at DH KV data
        body = (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Cert(CertType.X509V3, certificate_der()),
            dhr,
            dhi,
        )
    else:
        body = (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Rand(bytes(16)),
            srtp_sp(),
            Cert(CertType.X509V3, certificate_der()),
            dhi,
        )
    dt = DataType.DH_RESP if resp else DataType.DH_INIT
    return Message(hdr(dt, v=not resp), (*body, Sign(SignType.RSA_PSS, bytes(range(128)))))


def dhhmac_message() -> Message:
    """RFC 4650 DHHMAC I_MESSAGE: HDR, T, RAND, SP, DH, KEMAC(NULL, empty, HMAC-SHA-1)."""
    return Message(
        hdr(DataType.DHHMAC_INIT, v=True),
        (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Rand(bytes(16)),
            srtp_sp(),
            DhPayload(DhGroup.OAKLEY_2, bytes([0x11]) * 128),
            Kemac(EncrAlg.NULL, b"", MacAlg.HMAC_SHA_1_160, bytes(range(20)), ()),
        ),
    )


def rsa_r_messages() -> tuple[Message, Message]:
    """RFC 4738 RSA-R I_MESSAGE (HDR, T, RAND, IDi, CERTi, SP, SIGN) and R_MESSAGE."""
    i_msg = Message(
        hdr(DataType.RSA_R_INIT, v=True),
        (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Rand(bytes(16)),
            IdPayload(IdType.NAI, b"alice@example.org"),
            Cert(CertType.X509V3, certificate_der()),
            srtp_sp(),
            Sign(SignType.RSA_PKCS1_1_5, b"s" * 128),
        ),
    )
    r_msg = Message(
        hdr(DataType.RSA_R_RESP),
        (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            Rand(bytes(range(16))),
            IdPayload(IdType.URI, b"sip:bob@example.org"),
            Kemac(EncrAlg.AES_KW_128, bytes(48), MacAlg.HMAC_SHA_1_160, bytes(20)),
            Pke(PkeCache.NO_CACHE, bytes(128)),
            Sign(SignType.RSA_PKCS1_1_5, b"r" * 128),
        ),
    )
    return i_msg, r_msg


def error_message(errors: tuple[ErrorNo, ...] = (ErrorNo.INVALID_TS,)) -> Message:
    """RFC 3830 §5.1.2 error message: HDR, T, {ERR}, V."""
    return Message(
        hdr(DataType.ERROR),
        (
            Timestamp(TsType.NTP_UTC, NTP_2024),
            *(Err(e) for e in errors),
            Verification(MacAlg.HMAC_SHA_1_160, bytes(range(20))),
        ),
    )


def interop_messages() -> dict[str, Message]:
    """Every composition our codec builds, keyed by a readable name."""
    rsa_i, rsa_r = rsa_r_messages()
    out = {
        "psk_aes": psk_aes_message(),
        "null_tek_salt_spi": null_tek_salt_message(),
        "pk": pk_message(),
        "dhhmac": dhhmac_message(),
        "rsa_r_init": rsa_i,
        "rsa_r_resp": rsa_r,
        "error": error_message((ErrorNo.INVALID_TS, ErrorNo.INVALID_SP)),
    }
    for g in DhGroup:
        out[f"dh_init_{g.name}"] = dh_message(g)
        out[f"dh_resp_{g.name}"] = dh_message(g, resp=True)
    return out


# --- Hypothesis strategies ---------------------------------------------------------------------

u8 = st.integers(0, 0xFF)
u32 = st.integers(0, 0xFFFFFFFF)
_NTP_MIN_SECONDS = 946684800 + 2208988800  # 2000-01-01, see mikey.codec.ntp_plausible


def blobs(max_size: int = 64, min_size: int = 0) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


def blobs_of(n: int) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=n, max_size=n)


srtp_entries = st.builds(SrtpIdEntry, u8, u32, u32)
generic_entries = st.builds(
    GenericIdEntry,
    u8,
    u8,
    st.booleans(),
    st.lists(u8, max_size=4).map(tuple),
    blobs(16),
    blobs(8),
)


@st.composite
def headers(draw: st.DrawFn, data_type: DataType | None = None) -> Header:
    """HDR (RFC 3830 §6.1) with an SRTP-ID, Empty (RFC 4563) or GENERIC-ID (RFC 6043) map."""
    dt = draw(st.sampled_from(DataType)) if data_type is None else data_type
    map_type = draw(st.sampled_from(CsIdMapType))
    entries: tuple[SrtpIdEntry | GenericIdEntry, ...] = ()
    if map_type == CsIdMapType.SRTP_ID:
        entries = tuple(draw(st.lists(srtp_entries, max_size=4)))
    elif map_type == CsIdMapType.GENERIC_ID:
        entries = tuple(draw(st.lists(generic_entries, max_size=2)))
    return Header(
        dt, draw(u32), entries, map_type, v=draw(st.booleans()), prf=draw(st.sampled_from(PrfFunc))
    )


@st.composite
def ts_values(draw: st.DrawFn, ts_type: TsType) -> bytes:
    if ts_type in (TsType.NTP_UTC, TsType.NTP):
        secs = draw(st.integers(_NTP_MIN_SECONDS, 0xFFFFFFFF))
        return secs.to_bytes(4, "big") + draw(u32).to_bytes(4, "big")
    return draw(blobs(TS_LENGTH[ts_type], TS_LENGTH[ts_type]))


@st.composite
def timestamps(draw: st.DrawFn) -> Timestamp:
    t = draw(st.sampled_from(TsType))
    return Timestamp(t, draw(ts_values(t)))


@st.composite
def timestamp_roles(draw: st.DrawFn) -> TimestampRole:
    t = draw(st.sampled_from(TsType))
    return TimestampRole(draw(st.integers(1, 4)), t, draw(ts_values(t)))


key_validities: st.SearchStrategy[KeyValidity | None] = st.one_of(
    st.none(),
    st.builds(KeySpi, blobs(8)),
    st.builds(KeyInterval, blobs(6), blobs(6)),
)


@st.composite
def key_data(draw: st.DrawFn) -> KeyData:
    """Key data sub-payload (RFC 3830 §6.13): every type 0-7, KV null / SPI / interval."""
    kt = draw(st.sampled_from(KeyDataType))
    sizes = st.integers(0, 64)
    if kt == KeyDataType.TEK:  # 28/30/44/46-byte TEKs are the lenient GStreamer key||salt form
        sizes = sizes.filter(lambda n: n not in (28, 30, 44, 46))
    key = draw(sizes.flatmap(blobs_of))
    salt = draw(blobs(16)) if int(kt) & 1 else None
    return KeyData(kt, key, salt, draw(key_validities))


@st.composite
def kemacs(draw: st.DrawFn, data_type: int) -> Kemac:
    """KEMAC (RFC 3830 §6.2): NULL with plaintext key data (ID first in PK/RSA-R), or opaque."""
    mac_alg = draw(st.sampled_from(MacAlg))
    mac = draw(blobs_of(MAC_LENGTH[mac_alg]))
    encr = draw(st.sampled_from(EncrAlg))
    if encr != EncrAlg.NULL:
        return Kemac(encr, draw(blobs(96)), mac_alg, mac)
    subs: list[KeyData | IdPayload] = []
    if data_type in (DataType.PK_INIT, DataType.RSA_R_RESP) and draw(st.booleans()):
        subs.append(draw(id_payloads()))
        subs.extend(draw(st.lists(key_data(), min_size=1, max_size=3)))
    else:
        subs.extend(draw(st.lists(key_data(), max_size=3)))
    return Kemac(encr, encode_sub_payloads(subs), mac_alg, mac, tuple(subs))


def id_payloads() -> st.SearchStrategy[IdPayload]:
    return st.builds(IdPayload, st.sampled_from(IdType), blobs(40))


_SRTP_PARAM_TYPES = [int(p) for p in SrtpParam]


@st.composite
def security_policies(draw: st.DrawFn) -> SecurityPolicy:
    """SP (RFC 3830 §6.10): SRTP with distinct registered params 0-20, or TESLA with any TLVs."""
    prot = draw(st.sampled_from(ProtType))
    policy_no = draw(u8)
    if prot == ProtType.TESLA:
        tlvs = draw(st.lists(st.builds(SpParam, u8, blobs(8)), max_size=6))
        return SecurityPolicy(policy_no, prot, tuple(tlvs))
    types = draw(st.lists(st.sampled_from(_SRTP_PARAM_TYPES), unique=True, max_size=21))
    params = []
    for t in types:
        if t == SrtpParam.KEY_DERIVATION_RATE:
            value = draw(st.integers(1, 4).flatmap(blobs_of))
        else:
            value = bytes([draw(u8)])
        params.append(SpParam(t, value))
    sp = SecurityPolicy(policy_no, prot, tuple(params))
    auth = sp.get(SrtpParam.AUTH_KEY_LEN)
    if auth is not None and auth.int_value in (4, 10) and sp.get(SrtpParam.AUTH_TAG_LEN) is None:
        # 4/10 without a tag length is GStreamer's tag-in-key-length quirk (lenient only).
        params.append(SpParam(SrtpParam.AUTH_TAG_LEN, bytes([auth.int_value])))
        sp = SecurityPolicy(policy_no, prot, tuple(params))
    return sp


@st.composite
def dh_payloads(draw: st.DrawFn) -> DhPayload:
    g = draw(st.sampled_from(DhGroup))
    return DhPayload(g, draw(blobs_of(DH_VALUE_LENGTH[g])), draw(key_validities))


@st.composite
def chashes(draw: st.DrawFn) -> Chash:
    h = draw(st.sampled_from(HashFunc))
    return Chash(h, draw(blobs_of(HASH_LENGTH[h])))


@st.composite
def verifications(draw: st.DrawFn) -> Verification:
    a = draw(st.sampled_from(MacAlg))
    return Verification(a, draw(blobs_of(MAC_LENGTH[a])))


def payload_strategies(data_type: int) -> dict[str, st.SearchStrategy[Payload]]:
    """One strategy per payload type that may sit in the middle of a chain."""
    return {
        "KEMAC": kemacs(data_type),
        "PKE": st.builds(Pke, st.sampled_from(PkeCache), blobs(300)),
        "DH": dh_payloads(),
        "T": timestamps(),
        "ID": id_payloads(),
        "CERT": st.builds(Cert, st.sampled_from(CertType), blobs(300)),
        "CHASH": chashes(),
        "V": verifications(),
        "SP": security_policies(),
        "RAND": st.builds(Rand, blobs(255, 1)),
        "ERR": st.builds(Err, st.sampled_from(ErrorNo)),
        "TR": timestamp_roles(),
        "IDR": st.builds(IdrPayload, st.sampled_from(IdRole), st.sampled_from(IdType), blobs(40)),
        "RANDR": st.builds(RandRole, st.integers(1, 3), blobs(255, 1)),
        "GENERAL_EXT": st.builds(GeneralExt, st.sampled_from(GeneralExtType), blobs(40)),
        "SAKKE": st.builds(Sakke, u8, u8, blobs(300)),
    }


PAYLOAD_KINDS = (*payload_strategies(0).keys(), "SIGN")
signs = st.builds(Sign, st.sampled_from(SignType), blobs(600))


@st.composite
def messages(draw: st.DrawFn, kind: str | None = None) -> Message:
    """A strictly valid message; with ``kind`` it contains at least one payload of that kind."""
    header = draw(headers())
    strategies = payload_strategies(int(header.data_type))
    names = sorted(strategies)
    chosen = draw(st.lists(st.sampled_from(names), max_size=6))
    if kind is not None and kind != "SIGN":
        chosen.insert(draw(st.integers(0, len(chosen))), kind)
    payloads: list[Payload] = [draw(strategies[name]) for name in chosen]
    if header.data_type == DataType.PSK_INIT and not any(isinstance(p, Rand) for p in payloads):
        payloads.append(Rand(draw(blobs(32, 1))))  # RFC 3830 §3.1: the PSK I_MESSAGE has RAND
    if kind == "SIGN" or draw(st.booleans()):
        payloads.append(draw(signs))  # RFC 3830 §6.5: SIGN is last
    return Message(header, tuple(payloads))


BUILDERS: dict[str, Callable[[], Message]] = {
    "psk_aes": psk_aes_message,
    "null_tek_salt_spi": null_tek_salt_message,
    "pk": pk_message,
    "dhhmac": dhhmac_message,
    "error": error_message,
}
