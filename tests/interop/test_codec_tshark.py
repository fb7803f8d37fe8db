"""Our encoder against tshark's MIKEY dissector (Wireshark 4.0, an independent decoder).

Every kind of message the codec builds is written into one pcap (raw MIKEY on UDP 2269, the
docs/INTEROP.md recipe) and decoded by a single tshark run. For each message the fields tshark prints
must equal the values computed from our Message objects, and tshark must not flag the packet as
malformed. Where Wireshark 4.0 has known limits they are stated next to the field (it dissects
only the first key data sub-payload of a NULL KEMAC, and only for data type 0; it has no fields
for CHASH nor for DH KV data; it displays CERT "len" from the wrong bytes).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable

import pytest

from mikey.codec import (
    Cert,
    DhPayload,
    Err,
    GeneralExt,
    Header,
    IdPayload,
    IdrPayload,
    Kemac,
    KeyData,
    KeyInterval,
    KeySpi,
    Message,
    Pke,
    Rand,
    Sakke,
    SecurityPolicy,
    Sign,
    SpParam,
    SrtpIdEntry,
    Timestamp,
    Verification,
    parse_message,
)
from mikey.registry import (
    DataType,
    EncrAlg,
    ErrorNo,
    GeneralExtType,
    IdRole,
    IdType,
    KeyDataType,
    MacAlg,
    ProtType,
    SignType,
    SrtpParam,
    TsType,
)

from ..mikey.vectors import (
    PSK_ERROR_MESSAGE,
    PSK_I_MESSAGE,
    PSK_R_MESSAGE,
    SPEC_T_I,
    interop_messages,
    srtp_sp,
)
from .peers import AGGREGATOR, tshark_fields, tshark_fields_many

pytestmark = pytest.mark.interop

# Wireshark 4.0 field for each SRTP policy parameter it knows (RFC 3830 §6.10.1, types 0-12).
SP_FIELDS = {
    SrtpParam.ENCR_ALG: "mikey.sp.encr_alg",
    SrtpParam.ENCR_KEY_LEN: "mikey.sp.encr_len",
    SrtpParam.AUTH_ALG: "mikey.sp.auth_alg",
    SrtpParam.AUTH_KEY_LEN: "mikey.sp.auth_key_len",
    SrtpParam.SALT_KEY_LEN: "mikey.sp.salt_len",
    SrtpParam.SRTP_PRF: "mikey.sp.prf",
    SrtpParam.KEY_DERIVATION_RATE: "mikey.sp.kd_rate",
    SrtpParam.SRTP_ENCR: "mikey.sp.srtp_encr",
    SrtpParam.SRTCP_ENCR: "mikey.sp.srtcp_encr",
    SrtpParam.FEC_ORDER: "mikey.sp.fec",
    SrtpParam.SRTP_AUTH: "mikey.sp.srtp_auth",
    SrtpParam.AUTH_TAG_LEN: "mikey.sp.auth_tag_len",
    SrtpParam.PREFIX_LEN: "mikey.sp.srtp_prefix",
}


def extra_messages() -> dict[str, Message]:
    """Compositions beyond the builders: every SP param 0-12, extensions, IDR/SAKKE, KV."""
    all_params = SecurityPolicy(
        2,
        ProtType.SRTP,
        tuple(SpParam(int(t), bytes([i + 1])) for i, t in enumerate(SP_FIELDS)),
    )
    three_cs = tuple(SrtpIdEntry(i % 3, 0x1000 * (i + 1), i * 7) for i in range(3))
    return {
        "sp_all_params_3cs": Message(
            Header(DataType.PSK_INIT, 0xCAFEF00D, three_cs, v=True),
            (
                Timestamp(TsType.NTP_UTC, bytes.fromhex("e93c7f0012345678")),
                Rand(bytes(range(32))),
                srtp_sp(0),
                srtp_sp(1, encr_alg=0, auth_alg=0, auth_tag_len=4),
                all_params,
                Kemac.null(
                    [KeyData(KeyDataType.TEK, bytes(range(16)), None, KeySpi(b"\x00\x00\x00\x02"))]
                ),
            ),
        ),
        "ext_sdp_ids_vendor_tgk_interval": Message(
            Header(DataType.PSK_INIT, 0xA1B2C3D4, (SrtpIdEntry(3, 1, 2),)),
            (
                Timestamp(TsType.NTP_UTC, SPEC_T_I),
                Rand(bytes(range(16))),
                GeneralExt.sdp_ids(["mikey"]),
                GeneralExt(GeneralExtType.VENDOR_ID, b"\x01\x02acme"),
                Kemac.null(
                    [KeyData(KeyDataType.TGK, bytes(16), None, KeyInterval(bytes(6), b"\xff" * 6))],
                    MacAlg.HMAC_SHA_1_160,
                ),
            ),
        ),
        "null_tgk_salt": Message(
            Header(DataType.PSK_INIT, 1, (SrtpIdEntry(0, 0xFFFFFFFF, 0xFFFFFFFF),)),
            (
                Timestamp(TsType.NTP_UTC, SPEC_T_I),
                Rand(b"\x42" * 16),
                Kemac.null([KeyData(KeyDataType.TGK_SALT, bytes(range(32)), bytes(range(14)))]),
            ),
        ),
        "sakke_idr": Message(
            Header(DataType.SAKKE_MSG, 5, (SrtpIdEntry(0, 9, 0),)),
            (
                Timestamp(TsType.NTP_UTC, SPEC_T_I),
                Rand(bytes(16)),
                IdrPayload(IdRole.INITIATOR, IdType.URI, b"tel:+15550100"),
                IdrPayload(IdRole.RESPONDER_KMS, IdType.URI, b"kms.example.org"),
                Sakke(1, 1, bytes(range(50))),
                Sign(SignType.ECCSI, bytes(129)),
            ),
        ),
        "psk_resp_spec": parse_message(PSK_R_MESSAGE),
        "error_spec": parse_message(PSK_ERROR_MESSAGE),
        "all_errors": Message(
            Header(DataType.ERROR, 9, (SrtpIdEntry(0, 1, 0),)),
            (
                Timestamp(TsType.NTP_UTC, SPEC_T_I),
                *(Err(e) for e in ErrorNo if e <= ErrorNo.UNSPECIFIED),
                Verification(MacAlg.HMAC_SHA_1_160, bytes(20)),
            ),
        ),
    }


MESSAGES: dict[str, Message] = {
    "psk_i_spec": parse_message(PSK_I_MESSAGE),
    **interop_messages(),
    **extra_messages(),
}


# --- What tshark should print, computed from our objects ------------------------------------


def ntp_text(value: bytes) -> str:
    """Wireshark's FT_ABSOLUTE_TIME text of an NTP value (era 0; nanoseconds truncated)."""
    secs = int.from_bytes(value[:4], "big") - 2208988800
    nanos = (int.from_bytes(value[4:], "big") * 10**9) >> 32
    t = datetime.datetime.fromtimestamp(secs, datetime.UTC)
    return f"{t:%b} {t.day:2d}, {t.year} {t:%H:%M:%S}.{nanos:09d} UTC"


def join(values: Iterable[object]) -> str:
    return AGGREGATOR.join(str(v) for v in values)


def expected(m: Message) -> dict[str, str]:
    h = m.header
    srtp = h.srtp_entries
    kemacs = [p for p in m.payloads if isinstance(p, Kemac)]
    sps = [p for p in m.payloads if isinstance(p, SecurityPolicy)]
    ts = [p for p in m.payloads if isinstance(p, Timestamp)]
    ids = [p for p in m.payloads if isinstance(p, IdPayload | IdrPayload)]
    out = {
        "mikey.version": str(h.version),
        "mikey.type": str(int(h.data_type)),
        "mikey.v.set": str(int(h.v)),
        "mikey.prf_func": str(int(h.prf)),
        "mikey.csb_id": f"0x{h.csb_id:08x}",
        "mikey.cs_count": str(len(h.cs_map)),
        "mikey.cs_id_map_type": str(int(h.cs_map_type)),
        "mikey.srtp_id.policy_no": join(e.policy_no for e in srtp),
        "mikey.srtp_id.ssrc": join(f"0x{e.ssrc:08x}" for e in srtp),
        "mikey.srtp_id.roc": join(f"0x{e.roc:08x}" for e in srtp),
        "mikey.next_payload": join(_next_payloads(m)),
        "mikey.t.ts_type": join(int(t.ts_type) for t in ts),
        "mikey.t.ntp": join(ntp_text(t.value) for t in ts),
        "mikey.rand.len": join(len(p.value) for p in m.payloads if isinstance(p, Rand)),
        "mikey.rand.data": join(p.value.hex() for p in m.payloads if isinstance(p, Rand)),
        "mikey.sp.no": join(p.policy_no for p in sps),
        "mikey.sp.proto_type": join(int(p.prot_type) for p in sps),
        "mikey.sp.param_len": join(sum(2 + len(q.value) for q in p.params) for p in sps),
        "mikey.sp.param.type": join(q.type for p in sps for q in p.params),
        "mikey.sp.param.len": join(len(q.value) for p in sps for q in p.params),
        "mikey.sp.patam.value": join(q.value.hex() for p in sps for q in p.params),
        "mikey.kemac.encr_alg": join(int(k.encr_alg) for k in kemacs),
        "mikey.kemac.key_data_len": join(len(k.encr_data) for k in kemacs),
        "mikey.kemac.mac_alg": join(int(k.mac_alg) for k in kemacs),
        "mikey.pke.c": join(int(p.cache) for p in m.payloads if isinstance(p, Pke)),
        "mikey.pke.len": join(len(p.data) for p in m.payloads if isinstance(p, Pke)),
        "mikey.pke.data": join(p.data.hex() for p in m.payloads if isinstance(p, Pke)),
        "mikey.dh.group": join(int(p.group) for p in m.payloads if isinstance(p, DhPayload)),
        "mikey.dh.value": join(p.value.hex() for p in m.payloads if isinstance(p, DhPayload)),
        "mikey.dh.reserv": join("0x00" for p in m.payloads if isinstance(p, DhPayload)),
        "mikey.dh.kv": join(_kv(p.kv) for p in m.payloads if isinstance(p, DhPayload)),
        "mikey.sign.type": join(int(p.sign_type) for p in m.payloads if isinstance(p, Sign)),
        "mikey.sign.len": join(len(p.signature) for p in m.payloads if isinstance(p, Sign)),
        "mikey.sign.data": join(p.signature.hex() for p in m.payloads if isinstance(p, Sign)),
        "mikey.id.role": join(int(p.role) for p in ids if isinstance(p, IdrPayload)),
        "mikey.id.type": join(int(p.id_type) for p in ids),
        "mikey.id.len": join(len(p.data) for p in ids),
        "mikey.id.data": join(p.text for p in ids),
        "mikey.cert.type": join(int(p.cert_type) for p in m.payloads if isinstance(p, Cert)),
        "mikey.cert.data": join(p.data.hex() for p in m.payloads if isinstance(p, Cert)),
        "mikey.v.auth_alg": join(
            int(p.auth_alg) for p in m.payloads if isinstance(p, Verification)
        ),
        "mikey.v.ver_data": join(p.data.hex() for p in m.payloads if isinstance(p, Verification)),
        "mikey.err.no": join(int(p.error_no) for p in m.payloads if isinstance(p, Err)),
        "mikey.err.reserved": join(
            p.reserved.to_bytes(2, "big").hex() for p in m.payloads if isinstance(p, Err)
        ),
        "mikey.ext.type": join(int(p.ext_type) for p in m.payloads if isinstance(p, GeneralExt)),
        "mikey.ext.len": join(len(p.data) for p in m.payloads if isinstance(p, GeneralExt)),
        "mikey.ext.value": join(
            p.data.decode()
            for p in m.payloads
            if isinstance(p, GeneralExt) and p.ext_type == GeneralExtType.SDP_IDS
        ),
        "mikey.ext.data": join(
            p.data.hex()
            for p in m.payloads
            if isinstance(p, GeneralExt) and p.ext_type != GeneralExtType.SDP_IDS
        ),
        "mikey.sakke.params": join(p.params for p in m.payloads if isinstance(p, Sakke)),
        "mikey.sakke.idscheme": join(p.id_scheme for p in m.payloads if isinstance(p, Sakke)),
        "mikey.sakke.len": join(len(p.data) for p in m.payloads if isinstance(p, Sakke)),
        "mikey.sakke.data": join(p.data.hex() for p in m.payloads if isinstance(p, Sakke)),
    }
    for ptype, name in SP_FIELDS.items():
        out[name] = join(
            q.int_value for p in sps if p.prot_type == ProtType.SRTP for q in p.params
            if q.type == ptype
        )  # fmt: skip
    # Encrypted KEMAC data is shown as bytes; NULL data is dissected (first key only, type 0).
    # An empty byte field prints as <MISSING>.
    out["mikey.kemac.key_data"] = join(
        k.encr_data.hex() or "<MISSING>"
        for k in kemacs
        if k.encr_alg != EncrAlg.NULL or m.data_type != DataType.PSK_INIT
    )
    out["mikey.kemac.mac"] = join(k.mac.hex() or "<MISSING>" for k in kemacs)
    out.update(_first_key_fields(m, kemacs))
    return out


def _kv(kv: object) -> int:
    return 0 if kv is None else 1 if isinstance(kv, KeySpi) else 2


def _next_payloads(m: Message) -> list[int]:
    """The NP byte of HDR and of every payload but SIGN (RFC 3830 §6), from our encoding."""
    types = [p.TYPE for p in m.payloads]
    nps = [types[0] if types else 0]
    for i, p in enumerate(m.payloads):
        if not isinstance(p, Sign):
            nps.append(types[i + 1] if i + 1 < len(types) else 0)
    return nps


def _first_key_fields(m: Message, kemacs: list[Kemac]) -> dict[str, str]:
    names = [
        "mikey.key.type",
        "mikey.key.kv",
        "mikey.key.data.len",
        "mikey.key.data",
        "mikey.key.salt.len",
        "mikey.key.salt",
        "mikey.key.kv.spi.len",
        "mikey.key.kv.spi",
        "mikey.key.kv.from.len",
        "mikey.key.kv.from",
        "mikey.key.kv.to.len",
        "mikey.key.kv.to",
    ]
    out = dict.fromkeys(names, "")
    keys = [
        s
        for k in kemacs
        if k.encr_alg == EncrAlg.NULL and m.data_type == DataType.PSK_INIT and k.plain
        for s in k.plain[:1]
        if isinstance(s, KeyData)
    ]
    for kd in keys:
        out["mikey.key.type"] = str(int(kd.key_type))
        out["mikey.key.kv"] = str(_kv(kd.kv))
        out["mikey.key.data.len"] = str(len(kd.key))
        out["mikey.key.data"] = kd.key.hex()
        if kd.salt is not None:
            out["mikey.key.salt.len"] = str(len(kd.salt))
            out["mikey.key.salt"] = kd.salt.hex()
        if isinstance(kd.kv, KeySpi):
            out["mikey.key.kv.spi.len"] = str(len(kd.kv.spi))
            out["mikey.key.kv.spi"] = kd.kv.spi.hex()
        if isinstance(kd.kv, KeyInterval):
            out["mikey.key.kv.from.len"] = str(len(kd.kv.valid_from))
            out["mikey.key.kv.from"] = kd.kv.valid_from.hex()
            out["mikey.key.kv.to.len"] = str(len(kd.kv.valid_to))
            out["mikey.key.kv.to"] = kd.kv.valid_to.hex()
    return out


FIELDS = sorted(expected(next(iter(MESSAGES.values()))))


@pytest.fixture(scope="module")
def decoded() -> dict[str, dict[str, str]]:
    names = list(MESSAGES)
    rows = tshark_fields_many([MESSAGES[n].encode() for n in names], ["_ws.malformed", *FIELDS])
    return {n: dict(zip(["_ws.malformed", *FIELDS], row, strict=True))
            for n, row in zip(names, rows, strict=True)}  # fmt: skip


@pytest.mark.parametrize("name", list(MESSAGES))
def test_tshark_decodes_our_encoding(name: str, decoded: dict[str, dict[str, str]]) -> None:
    got = decoded[name]
    assert got["_ws.malformed"] == "", f"tshark flags {name} as malformed"
    want = expected(MESSAGES[name])
    mismatches = {f: (got[f], want[f]) for f in FIELDS if got[f] != want[f]}
    assert not mismatches, mismatches


def test_spec_vector_bytes_are_what_we_send() -> None:
    """The worked PSK I_MESSAGE (docs/WIRE.md §Worked PSK exchange; tshark 4.0.17 decodes it
    cleanly) is our encoding."""
    assert MESSAGES["psk_i_spec"].encode() == PSK_I_MESSAGE


def test_tshark_flags_a_truncated_message() -> None:
    """The oracle can fail: a truncated KEMAC is reported malformed by the same tshark."""
    cut = PSK_I_MESSAGE[:-5]
    assert tshark_fields(cut, ["_ws.malformed"]) != [""]
