"""JSON form of a MIKEY message, used by ``mikey decode --json`` and ``mikey encode``.

``from_json(to_json(m)) == m`` for every message the codec accepts, so ``decode --json`` piped
into ``encode`` reproduces the input bytes. Registry values are written as their names when
known and as integers otherwise; both are accepted on input.
"""

from __future__ import annotations

import enum
from typing import Any, TypeVar

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
    KemacSubPayload,
    KeyData,
    KeyInterval,
    KeySpi,
    KeyValidity,
    Leniency,
    Message,
    Opaque,
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
    param_name,
)
from mikey.errors import DecodeError
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
    KvType,
    MacAlg,
    PkeCache,
    PrfFunc,
    ProtType,
    SignType,
    TsType,
)

JsonObj = dict[str, Any]
_E = TypeVar("_E", bound=enum.IntEnum)


def _n(v: int | enum.IntEnum) -> str | int:
    return v.name if isinstance(v, enum.IntEnum) else int(v)


def _kv_json(kv: KeyValidity | None) -> JsonObj:
    if isinstance(kv, KeySpi):
        return {"kv": "SPI", "spi": kv.spi.hex()}
    if isinstance(kv, KeyInterval):
        return {"kv": "INTERVAL", "valid_from": kv.valid_from.hex(), "valid_to": kv.valid_to.hex()}
    return {"kv": "NULL"}


def _sub_json(s: KemacSubPayload) -> JsonObj:
    if isinstance(s, IdPayload):
        return {"type": "ID", "id_type": _n(s.id_type), "data": s.data.hex(), "id": s.text}
    return {
        "type": "KEY_DATA",
        "key_type": _n(s.key_type),
        "key": s.key.hex(),
        "salt": None if s.salt is None else s.salt.hex(),
        **_kv_json(s.kv),
    }


def payload_to_json(p: Payload) -> JsonObj:
    """One payload as a JSON-ready dict with a ``type`` registry name."""
    if isinstance(p, Timestamp):
        return {"type": "T", "ts_type": p.ts_type.name, "value": p.value.hex()}
    if isinstance(p, Rand):
        return {"type": "RAND", "rand": p.value.hex()}
    if isinstance(p, SecurityPolicy):
        return {
            "type": "SP",
            "policy_no": p.policy_no,
            "prot_type": _n(p.prot_type),
            "params": [
                {"type": q.type, "name": param_name(p.prot_type, q.type), "value": q.value.hex()}
                for q in p.params
            ],
        }
    if isinstance(p, Kemac):
        out: JsonObj = {
            "type": "KEMAC",
            "encr_alg": _n(p.encr_alg),
            "mac_alg": _n(p.mac_alg),
            "mac": p.mac.hex(),
            "encr_data": p.encr_data.hex(),
        }
        if p.plain is not None:
            out["keys"] = [_sub_json(s) for s in p.plain]
        return out
    if isinstance(p, Pke):
        return {"type": "PKE", "cache": _n(p.cache), "data": p.data.hex()}
    if isinstance(p, DhPayload):
        return {"type": "DH", "group": p.group.name, "value": p.value.hex(), **_kv_json(p.kv)}
    if isinstance(p, Sign):
        return {"type": "SIGN", "sign_type": _n(p.sign_type), "signature": p.signature.hex()}
    if isinstance(p, IdPayload):
        return {"type": "ID", "id_type": _n(p.id_type), "data": p.data.hex(), "id": p.text}
    if isinstance(p, IdrPayload):
        return {
            "type": "IDR",
            "role": _n(p.role),
            "id_type": _n(p.id_type),
            "data": p.data.hex(),
            "id": p.text,
        }
    if isinstance(p, Cert):
        return {"type": "CERT", "cert_type": _n(p.cert_type), "data": p.data.hex()}
    if isinstance(p, Chash):
        return {"type": "CHASH", "hash_func": p.hash_func.name, "hash": p.digest.hex()}
    if isinstance(p, Verification):
        return {"type": "V", "auth_alg": p.auth_alg.name, "data": p.data.hex()}
    if isinstance(p, Err):
        return {"type": "ERR", "error_no": _n(p.error_no), "reserved": p.reserved}
    if isinstance(p, GeneralExt):
        return {"type": "GENERAL_EXT", "ext_type": _n(p.ext_type), "data": p.data.hex()}
    if isinstance(p, TimestampRole):
        return {"type": "TR", "role": p.role, "ts_type": p.ts_type.name, "value": p.value.hex()}
    if isinstance(p, RandRole):
        return {"type": "RANDR", "role": p.role, "rand": p.value.hex()}
    if isinstance(p, Sakke):
        return {"type": "SAKKE", "params": p.params, "id_scheme": p.id_scheme, "data": p.data.hex()}
    if isinstance(p, Opaque):
        return {"type": "OPAQUE", "payload_type": p.payload_type, "data": p.data.hex()}
    raise TypeError(f"no JSON form for {type(p).__name__}")


def to_json(m: Message) -> JsonObj:
    """The message as a JSON-ready dict (stable top-level keys, see the README)."""
    h = m.header
    out: JsonObj = {
        "version": h.version,
        "data_type": _n(h.data_type),
        "v": h.v,
        "prf": _n(h.prf),
        "csb_id": h.csb_id,
        "cs_map_type": _n(h.cs_map_type),
        "cs": [],
    }
    for e in h.cs_map:
        if isinstance(e, SrtpIdEntry):
            out["cs"].append({"policy_no": e.policy_no, "ssrc": e.ssrc, "roc": e.roc})
        else:
            out["cs"].append(
                {
                    "cs_id": e.cs_id,
                    "prot_type": e.prot_type,
                    "s": e.session_data_flag,
                    "policy_nos": list(e.policy_nos),
                    "session_data": e.session_data.hex(),
                    "spi": e.spi.hex(),
                }
            )
    if h.raw_map_info or h.raw_cs_count:
        out["raw_map_info"] = h.raw_map_info.hex()
        out["raw_cs_count"] = h.raw_cs_count
    if h.map_padding:
        out["map_padding"] = h.map_padding.hex()
    out["payloads"] = [payload_to_json(p) for p in m.payloads]
    if m.trailing:
        out["trailing"] = m.trailing.hex()
    out["leniencies"] = [q.value for q in m.leniencies]
    return out


# ---------------------------------------------------------------------------------------------
# JSON -> Message


def _get(obj: JsonObj, key: str) -> Any:
    try:
        return obj[key]
    except (KeyError, TypeError):
        raise DecodeError(f"JSON: missing field {key!r}") from None


def _hex(obj: JsonObj, key: str) -> bytes:
    v = _get(obj, key)
    if not isinstance(v, str):
        raise DecodeError(f"JSON: field {key!r} must be a hex string")
    try:
        return bytes.fromhex(v)
    except ValueError:
        raise DecodeError(f"JSON: field {key!r} is not hex") from None


def _int(obj: JsonObj, key: str) -> int:
    v = _get(obj, key)
    if not isinstance(v, int) or isinstance(v, bool):
        raise DecodeError(f"JSON: field {key!r} must be an integer")
    return v


def _reg(cls: type[_E], v: Any, what: str) -> _E | int:
    if isinstance(v, str):
        try:
            return cls[v]
        except KeyError:
            raise DecodeError(f"JSON: unknown {what} {v!r}") from None
    if isinstance(v, int) and not isinstance(v, bool):
        try:
            return cls(v)
        except ValueError:
            return v
    raise DecodeError(f"JSON: {what} must be a name or an integer")


def _strict(cls: type[_E], v: Any, what: str) -> _E:
    r = _reg(cls, v, what)
    if not isinstance(r, cls):
        raise DecodeError(f"JSON: unsupported {what} {v!r}")
    return r


def _kv_from(obj: JsonObj) -> KeyValidity | None:
    kv = _strict(KvType, obj.get("kv", "NULL"), "KV type")
    if kv == KvType.SPI:
        return KeySpi(_hex(obj, "spi"))
    if kv == KvType.INTERVAL:
        return KeyInterval(_hex(obj, "valid_from"), _hex(obj, "valid_to"))
    return None


def _sub_from(obj: JsonObj) -> KemacSubPayload:
    if obj.get("type") == "ID":
        return IdPayload(_reg(IdType, _get(obj, "id_type"), "ID type"), _hex(obj, "data"))
    salt = obj.get("salt")
    return KeyData(
        _reg(KeyDataType, _get(obj, "key_type"), "key data type"),
        _hex(obj, "key"),
        None if salt is None else _hex(obj, "salt"),
        _kv_from(obj),
    )


def payload_from_json(obj: JsonObj) -> Payload:
    """Inverse of :func:`payload_to_json`."""
    if not isinstance(obj, dict):
        raise DecodeError("JSON: payload must be an object")
    t = obj.get("type")
    if t == "T":
        return Timestamp(_strict(TsType, _get(obj, "ts_type"), "TS type"), _hex(obj, "value"))
    if t == "RAND":
        return Rand(_hex(obj, "rand"))
    if t == "SP":
        params = _get(obj, "params")
        if not isinstance(params, list):
            raise DecodeError("JSON: SP params must be a list")
        return SecurityPolicy(
            _int(obj, "policy_no"),
            _reg(ProtType, _get(obj, "prot_type"), "prot type"),
            tuple(SpParam(_int(q, "type"), _hex(q, "value")) for q in params),
        )
    if t == "KEMAC":
        encr_alg = _reg(EncrAlg, _get(obj, "encr_alg"), "encr alg")
        mac_alg = _reg(MacAlg, _get(obj, "mac_alg"), "MAC alg")
        mac = _hex(obj, "mac")
        keys = obj.get("keys")
        if encr_alg == EncrAlg.NULL and isinstance(keys, list):
            subs = tuple(_sub_from(k) for k in keys)
            return Kemac(encr_alg, bytes(encode_sub_payloads(subs)), mac_alg, mac, subs)
        return Kemac(encr_alg, _hex(obj, "encr_data"), mac_alg, mac)
    if t == "PKE":
        return Pke(_reg(PkeCache, _get(obj, "cache"), "PKE cache"), _hex(obj, "data"))
    if t == "DH":
        return DhPayload(
            _strict(DhGroup, _get(obj, "group"), "DH group"), _hex(obj, "value"), _kv_from(obj)
        )
    if t == "SIGN":
        return Sign(_reg(SignType, _get(obj, "sign_type"), "S type"), _hex(obj, "signature"))
    if t == "ID":
        return IdPayload(_reg(IdType, _get(obj, "id_type"), "ID type"), _hex(obj, "data"))
    if t == "IDR":
        return IdrPayload(
            _reg(IdRole, _get(obj, "role"), "ID role"),
            _reg(IdType, _get(obj, "id_type"), "ID type"),
            _hex(obj, "data"),
        )
    if t == "CERT":
        return Cert(_reg(CertType, _get(obj, "cert_type"), "cert type"), _hex(obj, "data"))
    if t == "CHASH":
        return Chash(_strict(HashFunc, _get(obj, "hash_func"), "hash func"), _hex(obj, "hash"))
    if t == "V":
        return Verification(_strict(MacAlg, _get(obj, "auth_alg"), "auth alg"), _hex(obj, "data"))
    if t == "ERR":
        return Err(_reg(ErrorNo, _get(obj, "error_no"), "error no"), int(obj.get("reserved", 0)))
    if t == "GENERAL_EXT":
        return GeneralExt(
            _reg(GeneralExtType, _get(obj, "ext_type"), "ext type"), _hex(obj, "data")
        )
    if t == "TR":
        return TimestampRole(
            _int(obj, "role"), _strict(TsType, _get(obj, "ts_type"), "TS type"), _hex(obj, "value")
        )
    if t == "RANDR":
        return RandRole(_int(obj, "role"), _hex(obj, "rand"))
    if t == "SAKKE":
        return Sakke(_int(obj, "params"), _int(obj, "id_scheme"), _hex(obj, "data"))
    if t == "OPAQUE":
        return Opaque(_int(obj, "payload_type"), _hex(obj, "data"))
    raise DecodeError(f"JSON: unknown payload type {t!r}")


def from_json(obj: Any) -> Message:
    """Build a :class:`Message` from its JSON form; raises DecodeError on bad JSON."""
    try:
        return _from_json(obj)
    except (ValueError, TypeError, AttributeError) as exc:
        raise DecodeError(f"JSON: {exc}") from None


def _from_json(obj: Any) -> Message:
    if not isinstance(obj, dict):
        raise DecodeError("JSON: top level must be an object")
    map_type = _reg(CsIdMapType, obj.get("cs_map_type", "SRTP_ID"), "CS ID map type")
    cs_raw = obj.get("cs", [])
    if not isinstance(cs_raw, list):
        raise DecodeError("JSON: cs must be a list")
    entries: list[SrtpIdEntry | GenericIdEntry] = []
    for e in cs_raw:
        if map_type == CsIdMapType.GENERIC_ID:
            pols = _get(e, "policy_nos")
            if not isinstance(pols, list) or not all(isinstance(x, int) for x in pols):
                raise DecodeError("JSON: policy_nos must be a list of integers")
            entries.append(
                GenericIdEntry(
                    _int(e, "cs_id"),
                    _int(e, "prot_type"),
                    bool(e.get("s", False)),
                    tuple(pols),
                    _hex(e, "session_data"),
                    _hex(e, "spi"),
                )
            )
        else:
            entries.append(SrtpIdEntry(_int(e, "policy_no"), _int(e, "ssrc"), _int(e, "roc")))
    header = Header(
        data_type=_reg(DataType, _get(obj, "data_type"), "data type"),
        csb_id=_int(obj, "csb_id"),
        cs_map=tuple(entries),
        cs_map_type=map_type,
        v=bool(obj.get("v", False)),
        prf=_reg(PrfFunc, obj.get("prf", "MIKEY_1"), "PRF func"),
        version=int(obj.get("version", 1)),
        raw_map_info=bytes.fromhex(obj.get("raw_map_info", "")),
        raw_cs_count=int(obj.get("raw_cs_count", 0)),
        map_padding=bytes.fromhex(obj.get("map_padding", "")),
    )
    payloads = obj.get("payloads", [])
    if not isinstance(payloads, list):
        raise DecodeError("JSON: payloads must be a list")
    lens = []
    for name in obj.get("leniencies", []):
        try:
            lens.append(Leniency(name))
        except ValueError:
            raise DecodeError(f"JSON: unknown leniency {name!r}") from None
    trailing = bytes.fromhex(obj["trailing"]) if isinstance(obj.get("trailing"), str) else b""
    return Message(header, tuple(payload_from_json(p) for p in payloads), trailing, tuple(lens))
