"""Every numeric SDP field reads ASCII digits only (RFC 4566 §9 ``1*DIGIT``).

Each field is fed every Unicode decimal digit outside '0'-'9' and other oddities and must raise
:class:`SdpError` (never ValueError or a number read from another script's digits).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sdp import SdpError, SessionDescription, parse_uint
from tests.numbers import NON_ASCII_DIGITS, bad_texts

ODDITIES = ["+1", "-1", "1_0", "1.0", "0x1", "¹", "²", "\uff11\uff12", "½", "٣", "9" * 40]
PADDED = [" 1", "1 ", "\t1", "\u20031", "1\u00a0", ""]


def _body(session: str = "", media: str = "m=audio 5004 RTP/SAVP 0", extra: str = "") -> str:
    head = f"v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\n{session}t=0 0\r\n"
    return f"{head}{media}\r\n{extra}"


def _media(text: str) -> SessionDescription:
    return SessionDescription.parse(text)


FIELDS: dict[str, tuple[Callable[[str], object], str, object]] = {
    "m= port": (lambda n: _media(_body(media=f"m=audio {n} RTP/SAVP 0")).media[0].port, "5", 5),
    "m= port count": (
        lambda n: _media(_body(media=f"m=audio 5/{n} RTP/SAVP 0")).media[0].port_count,
        "2",
        2,
    ),
    "payload type": (
        lambda n: _media(_body(media=f"m=audio 5 RTP/SAVP {n}")).media[0].payload_types,
        "8",
        (8,),
    ),
    "o= sess-id": (
        lambda n: _media(f"v=0\r\no=- {n} 2 IN IP4 h\r\n").origin.session_id,  # type: ignore[union-attr]
        "7",
        7,
    ),
    "o= sess-version": (
        lambda n: _media(f"v=0\r\no=- 1 {n} IN IP4 h\r\n").origin.session_version,  # type: ignore[union-attr]
        "7",
        7,
    ),
    "t= start": (lambda n: _media(f"v=0\r\nt={n} 0\r\n").times, "7", [(7, 0)]),
    "t= stop": (lambda n: _media(f"v=0\r\nt=0 {n}\r\n").times, "7", [(0, 7)]),
    "rtpmap pt": (
        lambda n: (
            _media(_body(extra=f"a=rtpmap:{n} PCMU/8000\r\n")).media[0].rtpmaps()[0].payload_type
        ),
        "0",
        0,
    ),
    "rtpmap clock rate": (
        lambda n: _media(_body(extra=f"a=rtpmap:0 PCMU/{n}\r\n")).media[0].rtpmaps()[0].clock_rate,
        "8000",
        8000,
    ),
    "rtpmap channels": (
        lambda n: (
            _media(_body(extra=f"a=rtpmap:0 opus/48000/{n}\r\n")).media[0].rtpmaps()[0].channels
        ),
        "2",
        2,
    ),
    "ptime": (lambda n: _media(_body(extra=f"a=ptime:{n}\r\n")).media[0].ptime, "20", 20),
    "media b=": (
        lambda n: _media(_body(extra=f"b=AS:{n}\r\n")).media[0].bandwidth,
        "64",
        [("AS", 64)],
    ),
    "session b=": (lambda n: _media(_body(session=f"b=CT:{n}\r\n")).bandwidth, "64", [("CT", 64)]),
}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_each_field_reads_its_valid_number(name: str) -> None:
    read, good, value = FIELDS[name]
    assert read(good) == value


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_non_ascii_and_odd_numbers_are_sdp_errors(name: str, data: st.DataObject) -> None:
    read, good, _ = FIELDS[name]
    text = data.draw(bad_texts(good, ODDITIES))
    with pytest.raises(SdpError):
        read(text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.sampled_from([*NON_ASCII_DIGITS, *ODDITIES, *PADDED])
    | st.text(max_size=12).filter(lambda t: not t.isascii() or not t.isdigit())
)
def test_parse_uint_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(SdpError):
        parse_uint(text, "field", 10**30)


@given(st.integers(0, 2**64 - 1))
def test_parse_uint_reads_every_64_bit_number(n: int) -> None:
    assert parse_uint(str(n), "field", 2**64 - 1) == n


def test_m_line_superscript_port_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="m= port"):
        SessionDescription.parse("v=0\r\nm=audio ² RTP/SAVP 0\r\n")


def test_m_line_arabic_indic_port_count_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="number of ports"):
        SessionDescription.parse("v=0\r\nm=audio 5004/٣ RTP/SAVP 0\r\n")


def test_bounds_name_the_field() -> None:
    with pytest.raises(SdpError, match="m= port out of range"):
        SessionDescription.parse("v=0\r\nm=audio 65536 RTP/SAVP 0\r\n")
    body = _body(media="m=audio 5 RTP/SAVP 128")
    with pytest.raises(SdpError, match="payload type out of range"):
        _ = SessionDescription.parse(body).media[0].payload_types


@pytest.mark.parametrize("fmt", ["²", "٣", "\uff10"])
def test_m_line_non_ascii_format_is_an_sdp_error(fmt: str) -> None:
    # sipglue.sdp reads formats with isdigit() and int(): a non-token format must not reach it
    with pytest.raises(SdpError, match="invalid format"):
        SessionDescription.parse(
            f"v=0\r\nm=audio 5004 RTP/SAVP 0 {fmt}\r\na=rtpmap:{fmt} PCMU/8000\r\n"
        )
