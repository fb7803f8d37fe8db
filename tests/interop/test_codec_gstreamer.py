"""Our codec against GStreamer 1.22's MIKEY (libgstsdp), in both directions.

* Messages we build are parsed by GStreamer's C parser (``gst_mikey_message_new_from_data``) and
  the fields GStreamer holds must equal ours.
* Messages GStreamer builds (GI ``GstSdp.MIKEYMessage``, the calls its RTSP code makes) are parsed
  by ours; GStreamer's quirks (30-byte TEK, tag length in SP param 3) must be refused in strict
  mode and named as leniencies in lenient mode, and the values must equal what was asked for.

GStreamer runs in Debian's /usr/bin/python3 (tests/interop/gst_mikey_helper.py), bounded by
``timeout``.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mikey.codec import (
    Header,
    Kemac,
    KeyData,
    KeyInterval,
    KeySpi,
    Leniency,
    Message,
    Rand,
    SecurityPolicy,
    SpParam,
    SrtpIdEntry,
    Timestamp,
    ntp_plausible,
    parse_message,
)
from mikey.errors import DecodeError
from mikey.registry import DataType, KeyDataType, MacAlg, ProtType, SrtpParam, TsType

from ..mikey.vectors import NULL_MODE_MESSAGE, PSK_I_MESSAGE, SPEC_T_I, srtp_sp
from .peers import require_gst_sdp

pytestmark = pytest.mark.interop

HELPER = Path(__file__).with_name("gst_mikey_helper.py")


def gst(mode: str, messages: list[Any]) -> list[Any]:
    python = require_gst_sdp()
    r = subprocess.run(
        ["timeout", "60", python, str(HELPER), mode],
        input=json.dumps({"messages": messages}),
        capture_output=True,
        text=True,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    answer = json.loads(r.stdout)
    assert isinstance(answer, list) and len(answer) == len(messages)
    return answer


def ours_as_gst(m: Message) -> dict[str, Any]:
    """The fields GStreamer should hold for our message (gstmikey.h structures)."""
    payloads: list[dict[str, Any]] = []
    for p in m.payloads:
        if isinstance(p, Timestamp):
            payloads.append({"type": 5, "ts_type": int(p.ts_type), "value": p.value.hex()})
        elif isinstance(p, Rand):
            payloads.append({"type": 11, "value": p.value.hex()})
        elif isinstance(p, SecurityPolicy):
            params = [[q.type, q.value.hex()] for q in p.params]
            payloads.append(
                {"type": 10, "policy": p.policy_no, "proto": int(p.prot_type), "params": params}
            )
        elif isinstance(p, Kemac):
            assert p.plain is not None
            subs = []
            for kd in p.plain:
                assert isinstance(kd, KeyData)
                kv = ["", ""]
                if isinstance(kd.kv, KeySpi):
                    kv = [kd.kv.spi.hex(), ""]
                elif isinstance(kd.kv, KeyInterval):
                    kv = [kd.kv.valid_from.hex(), kd.kv.valid_to.hex()]
                subs.append(
                    {
                        "type": 20,
                        # gstmikey.c keeps the +SALT bit as "salt present", not in key_type
                        "key_type": int(kd.key_type) & ~1,
                        "key": kd.key.hex(),
                        "salt": (kd.salt or b"").hex(),
                        "kv_type": 0 if kd.kv is None else 1 if isinstance(kd.kv, KeySpi) else 2,
                        "kv": kv,
                    }
                )
            payloads.append(
                {"type": 1, "enc_alg": int(p.encr_alg), "mac_alg": int(p.mac_alg), "subs": subs}
            )
        else:
            raise AssertionError(f"no GStreamer view for {type(p).__name__}")
    h = m.header
    return {
        "version": h.version,
        "type": int(h.data_type),
        "V": h.v,
        "prf": int(h.prf),
        "csb_id": h.csb_id,
        "map_type": int(h.cs_map_type),
        "cs": [[e.policy_no, e.ssrc, e.roc] for e in h.srtp_entries],
        "payloads": payloads,
    }


def our_messages() -> dict[str, Message]:
    """PSK messages with NULL KEMACs that a GStreamer peer accepts (docs/WIRE.md §NULL-mode message)."""
    t = Timestamp(TsType.NTP_UTC, SPEC_T_I)
    return {
        "spec_null_mode": parse_message(NULL_MODE_MESSAGE, lenient=True),
        "tek_salt_spi_2cs": Message(
            Header(
                DataType.PSK_INIT,
                0xFEEDFACE,
                (SrtpIdEntry(0, 0x11111111, 0), SrtpIdEntry(1, 0x22222222, 0x10000)),
                v=True,
            ),
            (
                t,
                Rand(bytes(range(16, 32))),
                srtp_sp(0),
                srtp_sp(1, encr_key_len=32, auth_tag_len=4),
                Kemac.null(
                    [
                        KeyData(
                            KeyDataType.TEK_SALT,
                            bytes(range(32)),
                            bytes(range(50, 64)),
                            KeySpi(b"\x00\x00\x00\x05"),
                        )
                    ]
                ),
            ),
        ),
        "tgk_interval": Message(
            Header(DataType.PSK_INIT, 7, (SrtpIdEntry(0, 0xCAFEBABE, 3),)),
            (
                t,
                Rand(b"\x99" * 16),
                SecurityPolicy(0, ProtType.SRTP, (SpParam(SrtpParam.ENCR_ALG, b"\x06"),)),
                Kemac.null(
                    [
                        KeyData(
                            KeyDataType.TGK, b"\x55" * 16, None, KeyInterval(bytes(6), b"\x7f" * 6)
                        )
                    ]
                ),
            ),
        ),
        "two_keys_no_cs": Message(
            Header(DataType.PSK_INIT, 0xFFFFFFFF, ()),
            (
                t,
                Rand(b"\x01" * 20),
                Kemac.null(
                    [KeyData(KeyDataType.TEK, b"\xaa" * 16), KeyData(KeyDataType.TEK, b"\xbb" * 16)]
                ),
            ),
        ),
    }


def test_gstreamer_parses_our_messages() -> None:
    msgs = our_messages()
    parsed = gst("parse", [m.encode().hex() for m in msgs.values()])
    for (name, m), got in zip(msgs.items(), parsed, strict=True):
        assert got is not None, f"GStreamer refused {name}"
        assert got == ours_as_gst(m), name


def test_gstreamer_parser_can_refuse() -> None:
    """The oracle is not a rubber stamp: GStreamer's parser refuses a truncated message."""
    got = gst("parse", [NULL_MODE_MESSAGE[:-3].hex(), PSK_I_MESSAGE[:40].hex()])
    assert got == [None, None]


GST_SPECS: list[dict[str, Any]] = [
    {  # what gst_mikey_message_new_from_caps writes for AES_CM_128_HMAC_SHA1_80 (tag 10 in 3)
        "csb_id": 0x12345678,
        "cs": [[0, 0xDEADBEEF, 5]],
        "rand": "00112233445566778899aabbccddeeff",
        "sp": [[0, 1], [1, 16], [2, 1], [3, 10], [4, 14]],
        "key": bytes(range(30)).hex(),
        "spi": "00000001",
    },
    {  # hmac-sha1-32 (tag 4 in param 3), two crypto sessions, no MKI
        "csb_id": 0x0BADF00D,
        "cs": [[0, 1, 0], [0, 2, 0xFFFFFFFF]],
        "rand": "ff" * 16,
        "sp": [[0, 1], [1, 16], [2, 1], [3, 4], [4, 14]],
        "key": bytes(range(100, 130)).hex(),
    },
    {  # AES-256: 46-byte TEK (32 key + 14 salt), RFC-correct param 3 = 20 with param 11
        "csb_id": 1,
        "cs": [[0, 0x01020304, 0]],
        "rand": "5a" * 16,
        "sp": [[0, 1], [1, 32], [2, 1], [3, 20], [4, 14], [11, 10]],
        "key": bytes(range(46)).hex(),
        "spi": "0a0b",
    },
]


def test_we_parse_gstreamer_messages() -> None:
    built = [bytes.fromhex(h) for h in gst("build", GST_SPECS)]
    gst_view = gst("parse", [b.hex() for b in built])
    for spec, data, theirs in zip(GST_SPECS, built, gst_view, strict=True):
        with pytest.raises(DecodeError):
            parse_message(data)  # strict refuses GStreamer's quirks
        m = parse_message(data, lenient=True)
        assert m.encode() == data
        tag_quirk = any(t == 3 and v in (4, 10) for t, v in spec["sp"]) and not any(
            t == 11 for t, _ in spec["sp"]
        )
        want = {Leniency.TEK_WITH_SALT} | (
            {Leniency.SRTP_TAG_IN_AUTH_KEY_LEN} if tag_quirk else set()
        )
        assert set(m.leniencies) == want
        h = m.header
        assert (h.data_type, h.v, h.prf, h.csb_id) == (DataType.PSK_INIT, False, 0, spec["csb_id"])
        assert [[e.policy_no, e.ssrc, e.roc] for e in h.srtp_entries] == spec["cs"]
        assert [type(p).__name__ for p in m.payloads] == [
            "Timestamp",
            "Rand",
            "SecurityPolicy",
            "Kemac",
        ]
        t, rand, sp, kemac = m.payloads
        assert isinstance(t, Timestamp) and t.ts_type == TsType.NTP_UTC
        assert ntp_plausible(t.value)  # add_t_now_ntp_utc: the current time
        assert rand == Rand(bytes.fromhex(spec["rand"]))
        assert isinstance(sp, SecurityPolicy) and sp.policy_no == 0
        assert [[q.type, q.int_value] for q in sp.params] == spec["sp"]
        assert isinstance(kemac, Kemac) and kemac.plain is not None
        assert (kemac.encr_alg, kemac.mac_alg, kemac.mac) == (0, MacAlg.NULL, b"")
        spi = spec.get("spi")
        assert kemac.plain == (
            KeyData(
                KeyDataType.TEK,
                bytes.fromhex(spec["key"]),
                None,
                KeySpi(bytes.fromhex(spi)) if spi else None,
            ),
        )
        # And both decoders agree on everything, the timestamp included.
        assert theirs == ours_as_gst(m)
