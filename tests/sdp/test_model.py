"""The SDP model and codec (RFC 4566) and its key-mgmt accessors (RFC 4567 §3.1).

Oracles: the RFC 4566 §5 example body (with key-mgmt lines added at both levels and an unknown
line), exact re-encoding of every accepted body, RFC 4567 §3.1 for the key-mgmt precedence and
grammar, and Hypothesis (round trips; random bytes raise only :class:`sdp.SdpError`). Moved
from tests/sipglue/test_sdp.py with every assertion.
"""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sdp import MAX_SDP_BYTES, KeyMgmtAttr, SdpError, SdpLimitError, SessionDescription

# RFC 4566 §5 example plus RFC 4567-style key-mgmt at both levels and unknown lines.
EXAMPLE = (
    b"v=0\r\n"
    b"o=jdoe 2890844526 2890842807 IN IP4 10.47.16.5\r\n"
    b"s=SDP Seminar\r\n"
    b"i=A Seminar on the session description protocol\r\n"
    b"u=http://www.example.com/seminars/sdp.pdf\r\n"
    b"e=j.doe@example.com (Jane Doe)\r\n"
    b"c=IN IP4 224.2.17.12/127\r\n"
    b"t=2873397496 2873404696\r\n"
    b"a=recvonly\r\n"
    b"a=key-mgmt:mikey AQAFgM0XflABAAAAAAAAAAAAAAsAyO6zhA==\r\n"
    b"a=x-unknown:keep me\r\n"
    b"m=audio 49170 RTP/AVP 0\r\n"
    b"m=video 51372 RTP/SAVP 99\r\n"
    b"a=rtpmap:99 h263-1998/90000\r\n"
    b"a=key-mgmt: mikey QUJD\r\n"
    b"a=key-mgmt:other REVG\r\n"
    b"c=IN IP4 127.0.0.1\r\n"
)


def test_round_trip_exact() -> None:
    sdp = SessionDescription.parse(EXAMPLE)
    assert sdp.encode() == EXAMPLE
    assert len(sdp.media) == 2
    assert sdp.media[1].proto == "RTP/SAVP"
    assert sdp.media[1].formats == ("99",)
    assert sdp.media[0].port == 49170


def test_lf_line_endings_normalised() -> None:
    lf = EXAMPLE.replace(b"\r\n", b"\n")
    assert SessionDescription.parse(lf).encode() == EXAMPLE


def test_key_mgmt_precedence_rfc4567() -> None:
    sdp = SessionDescription.parse(EXAMPLE)
    session = sdp.key_mgmt(None)
    assert [a.prot for a in session] == ["mikey"]
    # media 0 has none: inherits the session level
    assert sdp.effective_key_mgmt(0) == session
    assert sdp.key_mgmt(0, inherit=False) == []
    # media 1 overrides; optional SP after the colon accepted; order kept
    m1 = sdp.effective_key_mgmt(1)
    assert [(a.prot, a.data) for a in m1] == [("mikey", "QUJD"), ("other", "REVG")]
    assert sdp.key_mgmt_level(0) is None and sdp.key_mgmt_level(1) == 1
    assert sdp.effective_connection(1) is not None
    assert sdp.effective_connection(1).address == "127.0.0.1"  # type: ignore[union-attr]
    assert sdp.effective_connection(0).address == "224.2.17.12/127"  # type: ignore[union-attr]


def test_key_mgmt_setters() -> None:
    sdp = SessionDescription.parse(EXAMPLE)
    new = sdp.with_key_mgmt(None, [KeyMgmtAttr("mikey", "WFla")])
    assert [a.data for a in new.key_mgmt(None)] == ["WFla"]
    # the replacement sits where the old line was; unknown lines untouched
    text = new.encode().decode()
    assert text.index("a=key-mgmt:mikey WFla") < text.index("a=x-unknown:keep me")
    assert "AQAFgM0X" not in text
    added = new.add_key_mgmt(0, KeyMgmtAttr("mikey", "MTIz"))
    assert [a.data for a in added.effective_key_mgmt(0)] == ["MTIz"]
    assert added.media[0].encode_lines()[-1] == "a=key-mgmt:mikey MTIz"
    replaced = added.add_key_mgmt(0, KeyMgmtAttr("mikey", "NDU2"))
    assert [a.data for a in replaced.key_mgmt(0)] == ["NDU2"]
    removed = sdp.with_key_mgmt(1, [])
    assert removed.effective_key_mgmt(1) == sdp.key_mgmt(None)


def test_key_mgmt_repr_hides_data() -> None:
    assert "QUJD" not in repr(KeyMgmtAttr("mikey", "QUJD"))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"o=x\r\n",
        b"v=1\r\n",
        b"v=0\r\nnot a line\r\n",
        b"v=0\r\nX=upper\r\n",
        b"v=0\r\nm=audio\r\n",
        b"v=0\r\nm=audio 70000 RTP/AVP 0\r\n",
        b"v=0\r\nm=audio x RTP/AVP 0\r\n",
        b"v=0\r\n\xff\xfe\r\n",
        b"v=0\r\n" + b"a=x\r\n" * (MAX_SDP_BYTES // 5),
    ],
)
def test_malformed_raises_sdp_error(body: bytes) -> None:
    with pytest.raises(SdpError):
        SessionDescription.parse(body)


@pytest.mark.parametrize(
    "line",
    [
        "a=key-mgmt:mikey",
        "a=key-mgmt:",
        "a=key-mgmt:mikey a b",
        "a=key-mgmt:mi key!x",
        "a=key-mgmt:  mikey QUJD",
    ],
)
def test_malformed_key_mgmt(line: str) -> None:
    sdp = SessionDescription.parse(f"v=0\r\n{line}\r\n")
    with pytest.raises(SdpError):
        sdp.key_mgmt(None)


_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=["Cs"]),
    max_size=30,
)
_line = st.builds(
    lambda t, v: f"{t}={v}",
    st.sampled_from("abcikoprstuz"),
    _value,
)
_mline = st.builds(
    lambda m, p, proto, fmts: f"m={m} {p} {proto} {' '.join(fmts)}".rstrip(),
    st.sampled_from(["audio", "video", "application"]),
    st.integers(0, 65535),
    st.sampled_from(["RTP/AVP", "RTP/SAVP", "RTP/SAVPF"]),
    st.lists(st.sampled_from(["0", "8", "96", "111"]), max_size=3),
)


@given(
    st.lists(_line, max_size=8),
    st.lists(st.tuples(_mline, st.lists(_line, max_size=5)), max_size=4),
)
def test_hypothesis_round_trip(session: list[str], media: list[tuple[str, list[str]]]) -> None:
    lines = ["v=0", *session]
    for m, rest in media:
        lines.append(m)
        lines.extend(rest)
    body = ("\r\n".join(lines) + "\r\n").encode()
    sdp = SessionDescription.parse(body)
    assert sdp.encode() == body
    assert SessionDescription.parse(sdp.encode()) == sdp
    assert len(sdp.media) == len(media)


@given(st.binary(max_size=300))
def test_fuzz_only_sdp_error(data: bytes) -> None:
    try:
        sdp = SessionDescription.parse(b"v=0\r\n" + data)
    except SdpError:
        return
    for i in [None, *range(len(sdp.media))]:
        with contextlib.suppress(SdpError):
            sdp.key_mgmt(i)
    for m in sdp.media:
        _ = (m.port, m.proto, m.formats, m.rtpmap())


def test_sdp_error_is_no_sip_or_rtsp_error() -> None:
    from rtspglue.errors import RtspError
    from sipglue.errors import SipError

    assert not issubclass(SdpError, SipError) and not issubclass(SdpError, RtspError)
    with pytest.raises(SdpLimitError):
        SessionDescription.parse(b"v=0\r\n" + b"a=x\r\n" * (MAX_SDP_BYTES // 5))


@pytest.mark.parametrize("port", ["\u0665\u0660\u0660\u0660", "4000/\u0662", "\uff14000"])
def test_non_ascii_digits_refused_in_m_line(port: str) -> None:
    # RFC 4566 §9: the port is ASCII DIGITs; str.isdigit() alone accepts other scripts' digits
    with pytest.raises(SdpError):
        SessionDescription.parse(f"v=0\r\nm=audio {port} RTP/AVP 0\r\n")
