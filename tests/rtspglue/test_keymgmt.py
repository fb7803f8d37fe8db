"""KeyMgmt header (RFC 4567 §3.2) in every spelling peers send, and the MIKEY parameter bodies."""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtspglue.errors import KeyMgmtError, RtspError
from rtspglue.keymgmt import (
    KeyMgmtSpec,
    decode_base64,
    format_key_mgmt_attribute,
    format_keymgmt,
    format_mikey_parameter,
    is_mikey_parameter_request,
    parse_key_mgmt_attribute,
    parse_keymgmt,
    parse_mikey_parameter,
    parse_set_parameter_keying,
)

# A complete MIKEY-PSK I_MESSAGE (127 bytes), the reference PSK vector.
B64 = (
    "AQAFgBI0VngBAADerb7vAAAAAAsA6Tx/AIAAAAAKEAARIjNEVWZ3iJmqu8zd7v8BAAAAHgABAQEBEAIBAQMB"
    "FAQBDgUBAAcBAQgBAQoBAQsBCgABABQ7UKSixVSjpnBHJyoj/w59Y5u6PgGPZs7206886vFruTZZ2MBLA9/qwg=="
)
MIKEY = base64.b64decode(B64)


def test_vector_is_the_spec_message() -> None:
    assert len(MIKEY) == 127 and MIKEY[:4] == bytes.fromhex("01000580")


@pytest.mark.parametrize(
    ("header", "uri"),
    [
        # GStreamer rtspsrc and gortsplib (no spaces).
        (f'prot=mikey;uri="rtsp://host/path/stream=0";data="{B64}"', "rtsp://host/path/stream=0"),
        # VLC/live555 (RFC spelling with spaces).
        (f'prot=mikey; uri="rtsp://host/path/track1"; data="{B64}"', "rtsp://host/path/track1"),
        # ONVIF example, Genetec: empty uri.
        (f'prot=mikey;uri="";data="{B64}"', ""),
        # No uri at all; unquoted data.
        (f"prot=MIKEY; data={B64}", ""),
    ],
)
def test_parse_spellings(header: str, uri: str) -> None:
    (spec,) = parse_keymgmt(header)
    assert spec == KeyMgmtSpec("mikey", uri, MIKEY)
    assert parse_keymgmt(spec.encode()) == (spec,)


def test_format_is_rfc_form() -> None:
    spec = KeyMgmtSpec("mikey", "rtsp://h/x/stream=0", MIKEY)
    assert format_keymgmt([spec]) == f'prot=mikey; uri="rtsp://h/x/stream=0"; data="{B64}"'
    assert MIKEY.hex() not in repr(spec) and B64 not in repr(spec)


def test_several_specs_and_uri_with_separators() -> None:
    value = (
        f'prot=mikey;uri="rtsp://h/a;b,c";data="{B64}" , prot=mikey; uri="rtsp://h/2"; data="AAEC"'
    )
    a, b = parse_keymgmt(value)
    assert a.uri == "rtsp://h/a;b,c" and a.data == MIKEY
    assert b == KeyMgmtSpec("mikey", "rtsp://h/2", b"\x00\x01\x02")
    assert parse_keymgmt(format_keymgmt([a, b])) == (a, b)


@pytest.mark.parametrize(
    "header",
    [
        "",
        " , ",
        'prot=mikey;uri=""',
        f'uri="";data="{B64}"',
        'prot=mikey;data="not base64!"',
        'prot=mikey;data="AAE"',
        'prot=mikey;data="AA=A"',
        'prot=mikey;data=""',
        f'prot=mikey;data="{B64}',
        f'prot=mi key;data="{B64}"',
        f'prot=mikey;data="{B64}";data="{B64}"',
        f'prot=mikey;foo=1;data="{B64}"',
        f'prot=mikey;uri=a"b;data="{B64}"',
    ],
)
def test_malformed_keymgmt(header: str) -> None:
    with pytest.raises(KeyMgmtError) as info:
        parse_keymgmt(header)
    assert B64 not in str(info.value)


def test_base64_strict() -> None:
    assert decode_base64(" AAEC ") == b"\x00\x01\x02"
    for bad in ("", "A", "AA==A===", "AA\nAA==", "****"):
        with pytest.raises(KeyMgmtError):
            decode_base64(bad)


def test_sdp_attribute_value() -> None:
    assert parse_key_mgmt_attribute(f"mikey {B64}") == ("mikey", MIKEY)
    assert parse_key_mgmt_attribute(f" mikey {B64}") == ("mikey", MIKEY)  # RFC 4567 §3.1 0*1SP
    assert format_key_mgmt_attribute("mikey", MIKEY) == f"mikey {B64}"
    for bad in ("mikey", f"mikey  {B64}", "mikey !!", f"m/k {B64}"):
        with pytest.raises(KeyMgmtError):
            parse_key_mgmt_attribute(bad)


def test_set_parameter_bodies() -> None:
    onvif = f"mikey: {B64}\r\n".encode()
    gst = f'KeyMgmt: prot=mikey;uri="rtsp://h/x/stream=0";data="{B64}"\r\n'.encode()
    assert parse_set_parameter_keying(onvif) == (KeyMgmtSpec("mikey", "", MIKEY),)
    assert parse_set_parameter_keying(gst) == (KeyMgmtSpec("mikey", "rtsp://h/x/stream=0", MIKEY),)
    assert parse_set_parameter_keying(b"") == ()
    assert parse_set_parameter_keying(b"position: 3\r\n") == ()
    with pytest.raises(KeyMgmtError):
        parse_set_parameter_keying(b"mikey: ###\r\n")
    with pytest.raises(KeyMgmtError):
        parse_set_parameter_keying(b"\xff\xfe")


def test_get_parameter_mikey() -> None:
    assert is_mikey_parameter_request(b"mikey\r\n")
    assert is_mikey_parameter_request(b"position\r\nMIKEY\r\n")
    assert not is_mikey_parameter_request(b"")
    assert not is_mikey_parameter_request(b"mikey: AAEC\r\n")
    body = format_mikey_parameter(MIKEY)
    assert body == f"mikey: {B64}\r\n".encode()
    assert parse_mikey_parameter(body) == MIKEY
    with pytest.raises(KeyMgmtError):
        parse_mikey_parameter(b"other: 1\r\n")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text_only_rtsp_errors(text: str) -> None:
    with contextlib.suppress(RtspError):
        parse_keymgmt(text)
    with contextlib.suppress(RtspError):
        parse_set_parameter_keying(text.encode("utf-8", "surrogatepass"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[a-z0-9:/._=-]{0,30}", fullmatch=True),
            st.binary(min_size=1, max_size=200),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_roundtrip(items: list[tuple[str, bytes]]) -> None:
    specs = [KeyMgmtSpec("mikey", uri, data) for uri, data in items]
    assert parse_keymgmt(format_keymgmt(specs)) == tuple(specs)
