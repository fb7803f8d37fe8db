"""GStreamer's MIKEY implementation driven from Debian's /usr/bin/python3 (not the project venv).

Run as ``/usr/bin/python3 gst_mikey_helper.py parse|build`` with a JSON request on stdin; it
prints a JSON answer on stdout.

* ``parse``: {"messages": [hex, ...]} -> one entry per message: null when GStreamer's C parser
  (``gst_mikey_message_new_from_data`` in libgstsdp-1.0) refuses it, else the fields GStreamer
  holds, read back through the library's own accessors (``gst_mikey_message_get_cs_srtp``,
  ``get_payload``, ``gst_mikey_payload_sp_get_param``, ``gst_mikey_payload_kemac_get_sub``) and
  the public struct layouts of gstmikey.h. GI cannot do this part: its ``new_from_bytes``
  refuses a NULL decrypt info.
* ``build``: {"messages": [spec, ...]} -> hex of messages built with GI ``GstSdp.MIKEYMessage``
  the way GStreamer's RTSP code does (set_info, add_cs_srtp, add_t_now_ntp_utc, add_rand,
  SP params, KEMAC NULL/NULL with one key data sub-payload, base64_encode).

This file is deliberately self-contained (it runs outside the project) and shares no code with
the ``mikey`` package.
"""

from __future__ import annotations

import base64
import ctypes
import json
import sys
from ctypes import (
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_size_t,
    c_uint,
    c_uint8,
    c_uint16,
    c_uint32,
    c_void_p,
)
from typing import Any

U8P = POINTER(c_uint8)


class MiniObject(Structure):
    _fields_ = [
        ("type", c_size_t),
        ("refcount", c_int),
        ("lockstate", c_int),
        ("flags", c_uint),
        ("copy", c_void_p),
        ("dispose", c_void_p),
        ("free", c_void_p),
        ("priv_uint", c_uint),
        ("priv_pointer", c_void_p),
    ]


class Message(Structure):
    _fields_ = [
        ("mini", MiniObject),
        ("version", c_uint8),
        ("type", c_int),
        ("V", c_int),
        ("prf_func", c_int),
        ("CSB_id", c_uint32),
        ("map_type", c_int),
        ("map_info", c_void_p),
        ("payloads", c_void_p),
    ]


class MapSRTP(Structure):
    _fields_ = [("policy", c_uint8), ("ssrc", c_uint32), ("roc", c_uint32)]


class Payload(Structure):
    _fields_ = [("mini", MiniObject), ("type", c_int), ("len", c_uint)]


class PayloadT(Structure):
    _fields_ = [("pt", Payload), ("type", c_int), ("ts_value", U8P)]


class PayloadRAND(Structure):
    _fields_ = [("pt", Payload), ("len", c_uint8), ("rand", U8P)]


class PayloadSP(Structure):
    _fields_ = [("pt", Payload), ("policy", c_uint), ("proto", c_int), ("params", c_void_p)]


class SPParam(Structure):
    _fields_ = [("type", c_uint8), ("len", c_uint8), ("val", U8P)]


class PayloadKEMAC(Structure):
    _fields_ = [("pt", Payload), ("enc_alg", c_int), ("mac_alg", c_int), ("subs", c_void_p)]


class PayloadKeyData(Structure):
    _fields_ = [
        ("pt", Payload),
        ("key_type", c_int),
        ("key_len", c_uint16),
        ("key_data", U8P),
        ("salt_len", c_uint16),
        ("salt_data", U8P),
        ("kv_type", c_int),
        ("kv_len", c_uint8 * 2),
        ("kv_data", U8P * 2),
    ]


class GError(Structure):
    _fields_ = [("domain", c_uint32), ("code", c_int), ("message", c_char_p)]


PT_KEMAC, PT_T, PT_SP, PT_RAND = 1, 5, 10, 11
TS_LEN = {0: 8, 1: 8, 2: 4}


def load() -> tuple[ctypes.CDLL, ctypes.CDLL]:
    gst = ctypes.CDLL("libgstreamer-1.0.so.0")
    sdp = ctypes.CDLL("libgstsdp-1.0.so.0")
    gst.gst_init(None, None)
    gst.gst_mini_object_unref.argtypes = [c_void_p]
    sdp.gst_mikey_message_new_from_data.restype = c_void_p
    sdp.gst_mikey_message_new_from_data.argtypes = [c_char_p, c_size_t, c_void_p, c_void_p]
    for name in ("gst_mikey_message_get_n_cs", "gst_mikey_message_get_n_payloads"):
        getattr(sdp, name).restype = c_uint
        getattr(sdp, name).argtypes = [c_void_p]
    for name in ("gst_mikey_payload_sp_get_n_params", "gst_mikey_payload_kemac_get_n_sub"):
        getattr(sdp, name).restype = c_uint
        getattr(sdp, name).argtypes = [c_void_p]
    for name in (
        "gst_mikey_message_get_cs_srtp",
        "gst_mikey_message_get_payload",
        "gst_mikey_payload_sp_get_param",
        "gst_mikey_payload_kemac_get_sub",
    ):
        getattr(sdp, name).restype = c_void_p
        getattr(sdp, name).argtypes = [c_void_p, c_uint]
    return gst, sdp


def raw(ptr: Any, n: int) -> str:
    return bytes(ptr[:n]).hex() if n else ""


def read_payload(sdp: ctypes.CDLL, p: int) -> dict[str, Any]:
    base = Payload.from_address(p)
    out: dict[str, Any] = {"type": base.type}
    if base.type == PT_T:
        t = PayloadT.from_address(p)
        out.update(ts_type=t.type, value=raw(t.ts_value, TS_LEN.get(t.type, 0)))
    elif base.type == PT_RAND:
        r = PayloadRAND.from_address(p)
        out.update(value=raw(r.rand, r.len))
    elif base.type == PT_SP:
        sp = PayloadSP.from_address(p)
        params = []
        for j in range(sdp.gst_mikey_payload_sp_get_n_params(p)):
            q = SPParam.from_address(sdp.gst_mikey_payload_sp_get_param(p, j))
            params.append([q.type, raw(q.val, q.len)])
        out.update(policy=sp.policy, proto=sp.proto, params=params)
    elif base.type == PT_KEMAC:
        k = PayloadKEMAC.from_address(p)
        subs = []
        for j in range(sdp.gst_mikey_payload_kemac_get_n_sub(p)):
            sp_ = sdp.gst_mikey_payload_kemac_get_sub(p, j)
            kd = PayloadKeyData.from_address(sp_)
            subs.append(
                {
                    "type": kd.pt.type,
                    "key_type": kd.key_type,
                    "key": raw(kd.key_data, kd.key_len),
                    "salt": raw(kd.salt_data, kd.salt_len),
                    "kv_type": kd.kv_type,
                    "kv": [raw(kd.kv_data[i], kd.kv_len[i]) for i in range(2)],
                }
            )
        out.update(enc_alg=k.enc_alg, mac_alg=k.mac_alg, subs=subs)
    return out


def parse(messages: list[str]) -> list[Any]:
    gst, sdp = load()
    results: list[Any] = []
    for hx in messages:
        data = bytes.fromhex(hx)
        err = POINTER(GError)()
        msg = sdp.gst_mikey_message_new_from_data(data, len(data), None, ctypes.byref(err))
        if not msg:
            results.append(None)
            continue
        m = Message.from_address(msg)
        cs = []
        for i in range(sdp.gst_mikey_message_get_n_cs(msg)):
            e = MapSRTP.from_address(sdp.gst_mikey_message_get_cs_srtp(msg, i))
            cs.append([e.policy, e.ssrc, e.roc])
        payloads = [
            read_payload(sdp, sdp.gst_mikey_message_get_payload(msg, i))
            for i in range(sdp.gst_mikey_message_get_n_payloads(msg))
        ]
        results.append(
            {
                "version": m.version,
                "type": m.type,
                "V": bool(m.V),
                "prf": m.prf_func,
                "csb_id": m.CSB_id,
                "map_type": m.map_type,
                "cs": cs,
                "payloads": payloads,
            }
        )
        gst.gst_mini_object_unref(msg)
    return results


def build(specs: list[dict[str, Any]]) -> list[str]:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstSdp", "1.0")
    from gi.repository import Gst, GstSdp

    Gst.init(None)
    out = []
    for spec in specs:
        msg = GstSdp.MIKEYMessage.new()
        msg.set_info(
            1,
            GstSdp.MIKEYType.PSK_INIT,
            False,
            GstSdp.MIKEYPRFFunc.MIKEY_PRF_MIKEY_1,
            spec["csb_id"],
            GstSdp.MIKEYMapType.MIKEY_MAP_TYPE_SRTP,
        )
        for policy, ssrc, roc in spec["cs"]:
            msg.add_cs_srtp(policy, ssrc, roc)
        msg.add_t_now_ntp_utc()
        msg.add_rand(bytes.fromhex(spec["rand"]))
        sp = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.SP)
        sp.sp_set(0, GstSdp.MIKEYSecProto.MIKEY_SEC_PROTO_SRTP)
        for ptype, value in spec["sp"]:
            sp.sp_add_param(ptype, bytes([value]))
        msg.add_payload(sp)
        kemac = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.KEMAC)
        kemac.kemac_set(GstSdp.MIKEYEncAlg.NULL, GstSdp.MIKEYMacAlg.NULL)
        kd = GstSdp.MIKEYPayload.new(GstSdp.MIKEYPayloadType.KEY_DATA)
        kd.key_data_set_key(GstSdp.MIKEYKeyDataType.TEK, bytes.fromhex(spec["key"]))
        if spec.get("spi"):
            kd.key_data_set_spi(bytes.fromhex(spec["spi"]))
        kemac.kemac_add_sub(kd)
        msg.add_payload(kemac)
        # base64_encode() is what GStreamer's RTSP code sends (to_bytes() in GI refuses a NULL
        # encrypt info); it serialises with to_bytes(msg, NULL, NULL).
        out.append(base64.b64decode(msg.base64_encode()).hex())
    return out


def main() -> None:
    request = json.load(sys.stdin)
    if sys.argv[1] == "parse":
        answer: Any = parse(request["messages"])
    elif sys.argv[1] == "build":
        answer = build(request["messages"])
    else:
        raise SystemExit(f"unknown mode {sys.argv[1]}")
    json.dump(answer, sys.stdout)


if __name__ == "__main__":
    main()
