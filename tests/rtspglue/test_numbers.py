"""Every numeric RTSP field reads ASCII digits only (RFC 2326 §15.1 ``1*DIGIT``), and framing
has one reading (RFC 7230 §3.3.3: one Content-Length; no CR, LF or NUL inside a header value).

Each field is fed every Unicode decimal digit outside '0'-'9' and other oddities and must raise
:class:`RtspParseError` (never ValueError or a number read from another script's digits).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtspglue.errors import RtspParseError
from rtspglue.message import (
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    TransportSpec,
    parse_npt_range,
    parse_retry_after,
    parse_rtp_info,
    parse_uint,
)
from tests.numbers import NON_ASCII_DIGITS, bad_texts

ODDITIES = ["+1", "-1", "1_0", "0x1", "¹", "²", "\uff11\uff12", "½", "٣", "\u20031", "9" * 40]
PADDED = [" 1", "1 ", "\t1", "1\u00a0", ""]


def _one(data: bytes) -> RtspRequest | RtspResponse:
    messages = RtspParser().feed(data)
    assert len(messages) == 1
    message = messages[0]
    assert isinstance(message, RtspRequest | RtspResponse)
    return message


def _content_length(n: str) -> object:
    return _one(f"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: {n}\r\n\r\nabc".encode()).body


def _status(n: str) -> object:
    message = _one(f"RTSP/1.0 {n} OK\r\nCSeq: 1\r\n\r\n".encode())
    assert isinstance(message, RtspResponse)
    return message.status


def _cseq(n: str) -> object:
    value = _one(f"OPTIONS * RTSP/1.0\r\nCSeq: {n}\r\n\r\n".encode()).cseq
    if value is None:  # the accessor's contract: None for a CSeq that is not a number
        raise RtspParseError("no CSeq number")
    return value


def _transport(param: str) -> Callable[[str], object]:
    def read(n: str) -> object:
        spec = TransportSpec.parse(f"RTP/SAVP;unicast;{param}={n}")
        return spec.extra if param == "ttl" else getattr(spec, param)

    return read


FIELDS: dict[str, tuple[Callable[[str], object], str, object]] = {
    "content-length": (_content_length, "3", b"abc"),
    "status": (_status, "200", 200),
    "cseq": (_cseq, "7", 7),
    "session timeout": (lambda n: SessionHeader.parse(f"abc;timeout={n}").timeout, "60", 60),
    "client_port": (_transport("client_port"), "5000", (5000, 5001)),
    "client_port high": (lambda n: _transport("client_port")(f"5000-{n}"), "5001", (5000, 5001)),
    "server_port": (_transport("server_port"), "5000", (5000, 5001)),
    "interleaved": (_transport("interleaved"), "0", (0, 1)),
    "interleaved high": (lambda n: _transport("interleaved")(f"0-{n}"), "1", (0, 1)),
    "ssrc": (_transport("ssrc"), "1A2B3C4D", 0x1A2B3C4D),
    "ttl": (_transport("ttl"), "16", ("ttl=16",)),
    "npt start": (lambda n: parse_npt_range(f"npt={n}-"), "12", (12.0, None)),
    "npt fraction": (lambda n: parse_npt_range(f"npt=1.{n}-"), "5", (1.5, None)),
    "npt end": (lambda n: parse_npt_range(f"npt=0-{n}"), "9", (0.0, 9.0)),
    "rtp-info seq": (lambda n: parse_rtp_info(f"url=x;seq={n}")[0][1], "9", 9),
    "rtp-info rtptime": (lambda n: parse_rtp_info(f"url=x;rtptime={n}")[0][2], "9", 9),
    "retry-after": (parse_retry_after, "30", 30),
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_each_field_reads_its_valid_number(name: str) -> None:
    read, good, value = FIELDS[name]
    assert read(good) == value


@settings(max_examples=500, deadline=None)
@given(name=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_non_ascii_and_odd_numbers_are_rtsp_parse_errors(name: str, data: st.DataObject) -> None:
    read, good, _ = FIELDS[name]
    text = data.draw(bad_texts(good, ODDITIES))
    with pytest.raises(RtspParseError):
        read(text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.sampled_from([*NON_ASCII_DIGITS, *ODDITIES, *PADDED])
    | st.text(max_size=12).filter(lambda t: not t.isascii() or not t.isdigit())
)
def test_parse_uint_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(RtspParseError):
        parse_uint(text, "field", 10**30)


def test_tcp_stream_with_arabic_indic_content_length_is_refused_not_split() -> None:
    second = b"OPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n"
    smuggled = "OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: ٣\r\n\r\n".encode() + second
    with pytest.raises(RtspParseError, match="Content-Length"):
        RtspParser().feed(smuggled)


@pytest.mark.parametrize("second", ["0", "3"])
def test_a_second_content_length_is_refused_conflicting_or_identical(second: str) -> None:
    data = f"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 3\r\ncontent-length: {second}"
    parser = RtspParser()
    with pytest.raises(RtspParseError, match="more than one Content-Length"):
        parser.feed(data.encode() + b"\r\n\r\nabcOPTIONS * RTSP/1.0\r\nCSeq: 2\r\n\r\n")
    assert parser.failed


@pytest.mark.parametrize("value", ["a\rb", "a\x00b", "a\rInjected: yes", "x\x0bz"])
def test_header_values_with_cr_or_nul_are_refused_at_parse_time(value: str) -> None:
    data = f"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: {value}\r\n\r\n".encode()
    with pytest.raises(RtspParseError, match="control character"):
        RtspParser().feed(data)


def test_crlf_line_endings_and_tabs_are_still_fine() -> None:
    message = _one(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nUser-Agent:\tx\ty\r\n\r\n")
    assert message.header("User-Agent") == "x\ty"


def test_superscript_status_code_and_ssrc_are_parse_errors() -> None:
    with pytest.raises(RtspParseError):
        RtspParser().feed("RTSP/1.0 2²0 OK\r\nCSeq: 1\r\n\r\n".encode())
    with pytest.raises(RtspParseError, match="ssrc"):
        TransportSpec.parse("RTP/SAVP;unicast;ssrc=\uff11A")
