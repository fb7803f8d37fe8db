"""RTSP codec: vectors from RFC 2326, framing, limits, and fuzz (only RtspError escapes)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtspglue.errors import RtspError, RtspLimitError, RtspParseError
from rtspglue.message import (
    STATUS_REASONS,
    InterleavedFrame,
    Limits,
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    StatusCode,
    TransportSpec,
    encode_interleaved,
    format_transports,
    parse_transports,
)

# RFC 2326 §14.2 (SETUP example, reformatted with CRLF).
SETUP = (
    b"SETUP rtsp://example.com/foo/bar/baz.rm RTSP/1.0\r\n"
    b"CSeq: 302\r\n"
    b"Transport: RTP/AVP;unicast;client_port=4588-4589\r\n"
    b"\r\n"
)
SETUP_REPLY = (
    b"RTSP/1.0 200 OK\r\n"
    b"CSeq: 302\r\n"
    b"Date: 23 Jan 1997 15:35:06 GMT\r\n"
    b"Session: 47112344\r\n"
    b"Transport: RTP/AVP;unicast;client_port=4588-4589;server_port=6256-6257\r\n"
    b"\r\n"
)
DESCRIBE_REPLY = (
    b"RTSP/1.0 200 OK\r\nCSeq: 312\r\nContent-Type: application/sdp\r\n"
    b"Content-Length: 10\r\n\r\nv=0\r\ns=x\r\n\r\n"
)


def test_rfc2326_setup_request() -> None:
    (msg,) = RtspParser().feed(SETUP)
    assert isinstance(msg, RtspRequest)
    assert msg.method == "SETUP"
    assert msg.uri == "rtsp://example.com/foo/bar/baz.rm"
    assert msg.cseq == 302
    (spec,) = parse_transports(msg.header("transport") or "")
    assert spec == TransportSpec("AVP", "UDP", True, client_port=(4588, 4589))
    assert msg.encode() == SETUP


def test_rfc2326_setup_response() -> None:
    (msg,) = RtspParser().feed(SETUP_REPLY)
    assert isinstance(msg, RtspResponse)
    assert (msg.status, msg.reason, msg.cseq, msg.ok) == (200, "OK", 302, True)
    assert SessionHeader.parse(msg.header("Session") or "") == SessionHeader("47112344")
    (spec,) = parse_transports(msg.header("Transport") or "")
    assert spec.server_port == (6256, 6257)
    assert msg.encode() == SETUP_REPLY


def test_body_and_byte_by_byte_feeding() -> None:
    stream = DESCRIBE_REPLY + SETUP + encode_interleaved(1, b"\x80" * 12) + SETUP_REPLY
    whole = RtspParser().feed(stream)
    parser = RtspParser()
    pieces = [m for i in range(len(stream)) for m in parser.feed(stream[i : i + 1])]
    assert whole == pieces
    assert [type(m).__name__ for m in whole] == [
        "RtspResponse",
        "RtspRequest",
        "InterleavedFrame",
        "RtspResponse",
    ]
    assert isinstance(whole[0], RtspResponse)
    assert whole[0].body == b"v=0\r\ns=x\r\n"
    assert whole[2] == InterleavedFrame(1, b"\x80" * 12)


def test_interleaved_frame_layout() -> None:
    # RFC 2326 §10.12: '$', 1-byte channel, 2-byte big-endian length.
    assert encode_interleaved(3, b"abc") == b"$\x03\x00\x03abc"
    assert RtspParser().feed(b"$\x00\x00\x00") == [InterleavedFrame(0, b"")]


def test_bare_lf_line_folding_and_keepalive_crlf() -> None:
    data = b"\r\n\r\nOPTIONS * RTSP/1.0\nCSeq: 1\nX-Long: a\n  b\n\n"
    (msg,) = RtspParser().feed(data)
    assert isinstance(msg, RtspRequest)
    assert msg.header("x-long") == "a b"
    assert msg.cseq == 1


def test_response_encode_default_reason_and_content_length() -> None:
    raw = RtspResponse(463, headers=(("CSeq", "5"), ("Content-Length", "99")), body=b"x").encode()
    assert raw == b"RTSP/1.0 463 Key Management Failure\r\nCSeq: 5\r\nContent-Length: 1\r\n\r\nx"


def test_status_table() -> None:
    assert STATUS_REASONS[463] == "Key Management Failure"  # RFC 4567 §3.2
    assert STATUS_REASONS[454] == "Session Not Found"
    assert STATUS_REASONS[459] == "Aggregate operation not allowed"
    assert STATUS_REASONS[461] == "Unsupported transport"
    assert all(code in STATUS_REASONS for code in StatusCode)


@pytest.mark.parametrize(
    "text",
    [
        'RTP/SAVP;unicast;client_port=5000-5001;ssrc=0A0B0C0D;mode="PLAY"',
        "RTP/SAVP/TCP;unicast;interleaved=0-1;ssrc=DEADBEEF",
        "RTP/AVP;unicast;client_port=4588-4589;server_port=6256-6257",
        "RTP/AVP/TCP;unicast;interleaved=2-3",
    ],
)
def test_transport_roundtrip(text: str) -> None:
    spec = TransportSpec.parse(text)
    assert TransportSpec.parse(spec.encode()) == spec


def test_transport_fields() -> None:
    a, b = parse_transports(
        'RTP/SAVP/TCP;unicast;interleaved=0-1;ssrc=deadbeef;mode="play", rtp/avp;client_port=7000'
    )
    assert (a.profile, a.lower, a.interleaved, a.ssrc, a.mode, a.secure) == (
        "SAVP",
        "TCP",
        (0, 1),
        0xDEADBEEF,
        "PLAY",
        True,
    )
    assert (b.profile, b.lower, b.client_port) == ("AVP", "UDP", (7000, 7001))
    assert parse_transports(format_transports([a, b])) == (a, b)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "RTP/XYZ",
        "RTP/AVP/SCTP",
        "RAW/RAW/UDP",
        "RTP/AVP;client_port=x",
        "RTP/AVP;client_port=0-70000",
        "RTP/AVP/TCP;interleaved=256",
        "RTP/AVP;ssrc=123456789",
        "RTP/AVP;ssrc=zz",
        'RTP/AVP;mode="PLAY',
    ],
)
def test_transport_malformed(text: str) -> None:
    with pytest.raises(RtspParseError):
        parse_transports(text)


def test_session_header() -> None:
    assert SessionHeader.parse("abc123;timeout=60") == SessionHeader("abc123", 60)
    assert SessionHeader("abc", 30).encode() == "abc;timeout=30"
    for bad in ("", "a b", "x;timeout=abc", "x" * 65):
        with pytest.raises(RtspParseError):
            SessionHeader.parse(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"OPTIONS  * RTSP/1.0\r\n\r\n",
        b"OPT IONS * RTSP/1.0 x\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nNoColon\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\n continuation\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nContent-Length: -1\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nContent-Length: 1e3\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nX: \x00\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nX: \xff\xfe\r\n\r\n",
        b"RTSP/1.0 2000 OK\r\n\r\n",
        b"RTSP/9 200 OK\r\n\r\n",
    ],
)
def test_malformed_messages(data: bytes) -> None:
    parser = RtspParser()
    with pytest.raises(RtspParseError):
        parser.feed(data)
    assert parser.failed
    with pytest.raises(RtspParseError):
        parser.feed(b"OPTIONS * RTSP/1.0\r\n\r\n")


def test_limits() -> None:
    limits = Limits(max_header_bytes=64, max_header_lines=3, max_body_bytes=10, max_frame_bytes=8)
    with pytest.raises(RtspLimitError):
        RtspParser(limits).feed(b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 100)  # no end yet
    with pytest.raises(RtspLimitError):
        RtspParser(limits).feed(b"OPTIONS * RTSP/1.0\r\nA: 1\r\nB: 1\r\nC: 1\r\nD: 1\r\n\r\n")
    with pytest.raises(RtspLimitError):
        RtspParser(limits).feed(b"OPTIONS * RTSP/1.0\r\nContent-Length: 11\r\n\r\n")
    with pytest.raises(RtspLimitError):
        RtspParser(limits).feed(b"$\x00\x00\x09")
    with pytest.raises(RtspLimitError):
        encode_interleaved(0, bytes(70000))


def test_encode_refuses_header_injection() -> None:
    with pytest.raises(RtspParseError):
        RtspRequest("OPTIONS", "*", (("X", "a\r\nEvil: 1"),)).encode()
    with pytest.raises(RtspParseError):
        RtspRequest("BAD METHOD", "*").encode()


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=6))
def test_fuzz_binary_only_rtsp_errors(chunks: list[bytes]) -> None:
    parser = RtspParser(Limits(max_header_bytes=512, max_body_bytes=512))
    try:
        for chunk in chunks:
            parser.feed(chunk)
    except RtspError:
        pass


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from([SETUP, SETUP_REPLY, DESCRIBE_REPLY]),
    st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 400),
)
def test_fuzz_mutated_valid(base: bytes, edits: list[tuple[int, int]], cut: int) -> None:
    data = bytearray(base)
    for pos, value in edits:
        data[pos % len(data)] = value
    parser = RtspParser()
    try:
        for msg in parser.feed(bytes(data[:cut])) + parser.feed(bytes(data[cut:])):
            if isinstance(msg, RtspRequest | RtspResponse):
                for text in msg.header_all("Transport"):
                    parse_transports(text)
                for text in msg.header_all("Session"):
                    SessionHeader.parse(text)
    except RtspError:
        pass
