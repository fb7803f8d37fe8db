"""The text tree ``mikey decode`` prints, one renderer per payload class (like ``tshark -V``).

Presentation of the shell, not of the protocol core: :mod:`mikey.codec` only parses and
encodes. Protected key bytes are never shown; key data a NULL-encrypted KEMAC carries in the
clear is shown and marked CLEAR.
"""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable
from typing import Any

from mikey.codec import (
    NTP_UNIX_OFFSET,
    Cert,
    Chash,
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
    Opaque,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    SrtpIdEntry,
    Timestamp,
    Verification,
    param_name,
)
from mikey.registry import (
    DataType,
    EncrAlg,
    GeneralExtType,
    GeneralExtType3gpp,
    IdRole3gpp,
    IdType,
    McpttKeyPurpose,
    TsType,
)

__all__ = ["describe_message", "describe_payload"]

#: names of the 3GPP code points for a message parsed without them (kept as plain integers)
_ROLES_3GPP = {int(r): r.name for r in IdRole3gpp}
_EXT_3GPP = {int(t): t.name for t in GeneralExtType3gpp}
_PURPOSES = {int(t): t for t in McpttKeyPurpose}


def _name(v: int | enum.IntEnum) -> str:
    return v.name if isinstance(v, enum.IntEnum) else str(v)


def _ntp_note(t: Timestamp) -> str:
    if t.ts_type not in (TsType.NTP_UTC, TsType.NTP):
        return ""
    secs = int.from_bytes(t.value[:4], "big") - NTP_UNIX_OFFSET
    frac = int.from_bytes(t.value[4:], "big") / 2**32
    try:
        when = datetime.datetime.fromtimestamp(secs + frac, datetime.UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return f" ({when.isoformat()})"


def _key_data(p: KeyData) -> list[str]:
    lines = [f"Key data: type {_name(p.key_type)}, {len(p.key)}-byte key"]
    if p.salt is not None:
        lines.append(f"  salt: {len(p.salt)} bytes")
    if isinstance(p.kv, KeySpi):
        lines.append(f"  KV SPI/MKI: {p.kv.spi.hex()}")
    elif isinstance(p.kv, KeyInterval):
        lines.append(f"  KV interval: {p.kv.from_index} .. {p.kv.to_index}")
    return lines


def _id_text(id_type: int, data: bytes) -> str:
    """The ID as text when it is printable text, else as hex (a 3GPP UID is 32 binary bytes,
    TS 33.180 §F.2.1; a BYTE_STRING ID is binary by definition, RFC 6043 §6.6)."""
    if id_type != IdType.BYTE_STRING:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = ""
        if text and text.isprintable():
            return repr(text)
    return f"hex {data.hex()}" if data else "(empty)"


def _role_name(role: int) -> str:
    if isinstance(role, enum.IntEnum):
        return role.name
    known = _ROLES_3GPP.get(role)
    return f"{role} (3GPP {known}; --peer-profile mcptt)" if known else str(role)


def _id_payload(p: IdPayload) -> list[str]:
    return [f"ID: {_name(p.id_type)} {_id_text(int(p.id_type), p.data)}"]


def _idr_payload(p: IdrPayload) -> list[str]:
    return [
        f"IDR: role {_role_name(p.role)}, {_name(p.id_type)} {_id_text(int(p.id_type), p.data)}"
    ]


def _kemac(p: Kemac) -> list[str]:
    lines = [f"KEMAC: encr {_name(p.encr_alg)}, MAC {_name(p.mac_alg)} ({p.mac.hex() or 'none'})"]
    if p.encr_alg != EncrAlg.NULL:
        lines.append(f"  encrypted data: {len(p.encr_data)} bytes (not shown)")
    elif p.plain is not None:
        lines.append("  key data in CLEAR (NULL encryption):")
        for sub in p.plain:
            lines += ["    " + line for line in describe_payload(sub)]
            if isinstance(sub, KeyData):
                lines.append(f"      key (CLEAR): {sub.key.hex()}")
                if sub.salt is not None:
                    lines.append(f"      salt (CLEAR): {sub.salt.hex()}")
    return lines


def _pke(p: Pke) -> list[str]:
    return [f"PKE: cache {_name(p.cache)}, {len(p.data)} bytes"]


def _dh_payload(p: DhPayload) -> list[str]:
    return [f"DH: group {p.group.name}, value {p.value[:8].hex()}... ({len(p.value)})"]


def _sign(p: Sign) -> list[str]:
    return [f"SIGN: {_name(p.sign_type)}, {len(p.signature)} bytes"]


def _timestamp(p: Timestamp) -> list[str]:
    return [f"T: {p.ts_type.name} {p.value.hex()}{_ntp_note(p)}"]


def _cert(p: Cert) -> list[str]:
    return [f"CERT: {_name(p.cert_type)}, {len(p.data)} bytes"]


def _chash(p: Chash) -> list[str]:
    return [f"CHASH: {p.hash_func.name} {p.digest.hex()}"]


def _verification(p: Verification) -> list[str]:
    return [f"V: {p.auth_alg.name} {p.data.hex()}"]


def _security_policy(p: SecurityPolicy) -> list[str]:
    lines = [f"SP: policy {p.policy_no}, prot {_name(p.prot_type)}"]
    for param in p.params:
        name = param_name(p.prot_type, param.type)
        lines.append(f"  {param.type:>2} {name}: {param.value.hex()} ({param.int_value})")
    return lines


def _rand(p: Rand) -> list[str]:
    return [f"RAND: {p.value.hex()}"]


def _err(p: Err) -> list[str]:
    return [f"ERR: {_name(p.error_no)}"]


def _general_ext(p: GeneralExt) -> list[str]:
    if p.ext_type == GeneralExtType.SDP_IDS:
        return [f"General extension: SDP IDs {list(p.kmpids)}"]
    et = p.ext_type
    if not isinstance(et, enum.IntEnum) and et in _EXT_3GPP:
        return [
            f"General extension: {et} (3GPP {_EXT_3GPP[et]}; --peer-profile mcptt) {p.data.hex()}"
        ]
    return [f"General extension: {_name(et)} {p.data.hex()}"]


def _opaque(p: Opaque) -> list[str]:
    return [f"Opaque payload type {p.payload_type}: {len(p.data)} bytes"]


def _key_id_note(h: Header) -> str:
    """In a MIKEY-SAKKE message the CSB ID is a 3GPP key ID whose top 4 bits are its purpose
    (TS 33.180 §F.1)."""
    if h.data_type != DataType.SAKKE_MSG:
        return ""
    tag = h.csb_id >> 28
    purpose = _PURPOSES.get(tag)
    return f" (3GPP key ID, purpose {purpose.name if purpose else tag})"


def describe_message(msg: Message) -> str:
    """A tree like ``tshark -V`` prints; protected key bytes are never shown."""
    h = msg.header
    lines = [
        "MIKEY message",
        f"  Version: {h.version}",
        f"  Data type: {_name(h.data_type)} ({int(h.data_type)})",
        f"  V: {int(h.v)}   PRF func: {_name(h.prf)}",
        f"  CSB ID: 0x{h.csb_id:08x}{_key_id_note(h)}",
        f"  CS ID map: {_name(h.cs_map_type)}, #CS {len(h.cs_map)}",
    ]
    for i, e in enumerate(h.cs_map, 1):
        if isinstance(e, SrtpIdEntry):
            lines.append(f"    CS {i}: policy {e.policy_no}, SSRC 0x{e.ssrc:08x}, ROC {e.roc}")
        else:
            lines.append(f"    CS {e.cs_id}: prot {e.prot_type}, policies {e.policy_nos}")
    for payload in msg.payloads:
        lines += ["  " + line for line in describe_payload(payload)]
    if msg.trailing:
        lines.append(f"  Trailing bytes: {msg.trailing.hex()}")
    if msg.leniencies:
        lines.append("  Leniencies: " + ", ".join(q.value for q in msg.leniencies))
    return "\n".join(lines)


_RENDERERS: dict[type[Any], Callable[[Any], list[str]]] = {
    KeyData: _key_data,
    IdPayload: _id_payload,
    IdrPayload: _idr_payload,
    Kemac: _kemac,
    Pke: _pke,
    DhPayload: _dh_payload,
    Sign: _sign,
    Timestamp: _timestamp,
    Cert: _cert,
    Chash: _chash,
    Verification: _verification,
    SecurityPolicy: _security_policy,
    Rand: _rand,
    Err: _err,
    GeneralExt: _general_ext,
    Opaque: _opaque,
}


def describe_payload(p: Payload) -> list[str]:
    """The lines of one payload (its repr for a class without a renderer)."""
    render = _RENDERERS.get(type(p))
    return render(p) if render is not None else [repr(p)]
