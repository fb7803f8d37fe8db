"""THE a=key-mgmt codec (sdp.keymgmt, RFC 4567 §3.1): every accepted and refused form.

Oracles: the RFC 4567 §3.1 grammar (``0*1SP prtcl-id SP keymgmt-data``, prtcl-id = KMPID =
1*(ALPHA / DIGIT), keymgmt-data = padded base64 of RFC 4648 §4); the MIKEY vector is the
reference PSK I_MESSAGE of tests/rtspglue/test_keymgmt.py. Hypothesis: every message round trips
through text, and any text raises only :class:`sdp.SdpError`.
"""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdp import (
    MAX_KEY_MGMT_DATA,
    KeyMgmtAttr,
    KeyMgmtDataError,
    SdpError,
    SdpLimitError,
    SessionDescription,
    decode_key_mgmt_data,
    encode_key_mgmt_data,
    is_kmpid,
)
from tests.rtspglue.test_keymgmt import B64, MIKEY


def test_parse_value_decodes_once() -> None:
    attr = KeyMgmtAttr.parse_value(f"mikey {B64}")
    assert (attr.prot, attr.data, attr.message) == ("mikey", B64, MIKEY)
    assert attr.is_mikey and attr.encode_value() == f"mikey {B64}"
    assert attr.to_line().encode() == f"a=key-mgmt:mikey {B64}"
    # RFC 4567 §3.1: one optional SP after the colon
    assert KeyMgmtAttr.parse_value(f" mikey {B64}") == attr
    # the prtcl-id keeps its spelling; is_mikey compares case-insensitively
    upper = KeyMgmtAttr.parse_value(f"MIKEY {B64}")
    assert upper.prot == "MIKEY" and upper.is_mikey and upper.message == MIKEY
    assert KeyMgmtAttr.from_message("mikey", MIKEY) == attr
    assert not KeyMgmtAttr.parse_value("kerberos QUJD").is_mikey


def test_attribute_in_a_body() -> None:
    body = f"v=0\r\na=key-mgmt:mikey {B64}\r\nm=audio 0 RTP/SAVP 0\r\n"
    sdp = SessionDescription.parse(body)
    (attr,) = sdp.effective_key_mgmt(0)
    assert attr.message == MIKEY
    assert sdp.encode().decode() == body


@pytest.mark.parametrize(
    "value",
    [
        "",  # nothing
        "mikey",  # no data
        "mikey ",  # empty data
        f"  mikey {B64}",  # two SPs before the prtcl-id
        f"mikey  {B64}",  # two SPs between
        f"mikey\t{B64}",  # TAB is not SP
        f"mikey {B64} ",  # trailing SP
        f"mikey {B64}\t",
        f"m/k {B64}",  # prtcl-id is ALPHA / DIGIT only
        f"mi-key {B64}",
        f"mi_key {B64}",
        f"mi.key {B64}",
        f"{'a' * 33} {B64}",  # over the 32-character bound
        f"mikey\u0661 {B64}",  # ARABIC-INDIC DIGIT ONE is no DIGIT
        f"mik\u00e9y {B64}",  # non-ASCII letter
        f"\uff4dikey {B64}",  # FULLWIDTH m
        "mikey a b",  # SP inside the data
        "mikey !!!!",  # outside the alphabet
        "mikey QUJ",  # not a multiple of 4
        "mikey QQ",  # unpadded
        "mikey AA=A",  # padding inside
        "mikey A===",  # three pads
        "mikey ====",
        "mikey QUJD====",
        "mikey QU-D",  # base64url is not base64
        "mikey QU_D",
        "mikey \u0661\u0662\u0663\u0664",  # non-ASCII digits as data
        "mikey QUJD\u00a0",  # NBSP
    ],
)
def test_refused_forms(value: str) -> None:
    with pytest.raises(KeyMgmtDataError) as info:
        KeyMgmtAttr.parse_value(value)
    assert B64 not in str(info.value)


@pytest.mark.parametrize(
    ("prot", "data"),
    [("mikey", "QUJD"), ("MIKEY", "QUI="), ("m1", "QQ=="), ("a" * 32, B64), ("kerberos", "AAEC")],
)
def test_accepted_forms(prot: str, data: str) -> None:
    attr = KeyMgmtAttr(prot, data)
    assert attr.message == base64.b64decode(data)
    assert KeyMgmtAttr.parse_value(attr.encode_value()) == attr


def test_constructor_checks() -> None:
    for prot in ("", "mi key", "mikey\n", "\u0661"):
        with pytest.raises(KeyMgmtDataError):
            KeyMgmtAttr(prot, "QUJD")
    with pytest.raises(KeyMgmtDataError):
        KeyMgmtAttr("mikey", b"QUJD")  # type: ignore[arg-type]
    with pytest.raises(KeyMgmtDataError):
        KeyMgmtAttr.from_message("mikey", b"")
    assert "QUJD" not in repr(KeyMgmtAttr("mikey", "QUJD"))
    assert "ABC" not in repr(KeyMgmtAttr("mikey", "QUJD"))


def test_kmpid_grammar() -> None:
    assert is_kmpid("mikey") and is_kmpid("MIKEY") and is_kmpid("k5")
    assert not any(is_kmpid(p) for p in ("", "mi key", "mi-key", "\u0665", "x" * 33, "mikey\n"))


def test_data_bounds() -> None:
    biggest = bytes(MAX_KEY_MGMT_DATA)
    text = encode_key_mgmt_data(biggest)
    assert decode_key_mgmt_data(text) == biggest
    with pytest.raises(SdpLimitError):
        encode_key_mgmt_data(biggest + b"\x00")
    with pytest.raises(SdpLimitError):
        decode_key_mgmt_data(base64.b64encode(biggest + b"\x00\x00\x00").decode())
    with pytest.raises(KeyMgmtDataError):
        decode_key_mgmt_data("")
    assert issubclass(SdpLimitError, SdpError) and issubclass(KeyMgmtDataError, SdpError)


@given(st.binary(min_size=1, max_size=600), st.sampled_from(["mikey", "MIKEY", "k1"]))
def test_round_trip(message: bytes, prot: str) -> None:
    attr = KeyMgmtAttr.from_message(prot, message)
    assert attr.message == message
    again = KeyMgmtAttr.parse_value(attr.encode_value())
    assert again == attr and again.message == message


@given(st.text(max_size=80))
def test_any_text_only_sdp_errors(text: str) -> None:
    with contextlib.suppress(SdpError):
        attr = KeyMgmtAttr.parse_value(text)
        assert attr.message == base64.b64decode(attr.data, validate=True)
