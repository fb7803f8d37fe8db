"""Every numeric SIP field reads ASCII digits only (RFC 3261 §25.1 ``1*DIGIT``).

A property test feeds each field every Unicode decimal digit outside '0'-'9' and other oddities
(sign, padding, underscore, superscripts, full-width digits, an overlong string) and expects
:class:`SipParseError`, never ValueError or a number read from non-ASCII text; then one repro per
finding of the "hostile peers" issue.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipglue.errors import SipParseError
from sipglue.message import (
    CSeq,
    NameAddr,
    Response,
    SipUri,
    StreamParser,
    Via,
    parse_message,
    parse_uint,
)
from tests.numbers import NON_ASCII_DIGITS, bad_texts

# no whitespace padding here: header LWS around a value is header grammar (§7.3.1), not number
ODDITIES = [
    "+1",
    "-1",
    "1_0",
    "1.0",
    "0x1",
    "¹",
    "²",
    "³",
    "\uff11\uff12",
    "½",
    "1e3",
    "٣",
    "9" * 40,
]
PADDED = [" 1", "1 ", "\t1", "\u20031", "1\u00a0", "1 0"]

REQ = "OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"


def _request(extra: str, body: str = "") -> bytes:
    return f"{REQ}{extra}\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}".encode()


def _status(n: str) -> object:
    msg = parse_message(f"SIP/2.0 {n} OK\r\nVia: SIP/2.0/UDP h\r\n\r\n".encode())
    assert isinstance(msg, Response)
    return msg.status


def _content_length(n: str) -> object:
    data = f"{REQ}Content-Length: {n}\r\n\r\nabc".encode()
    return len(parse_message(data).body)


def _stream_length(n: str) -> object:
    return [
        len(m.body) for m in StreamParser().feed(f"{REQ}Content-Length: {n}\r\n\r\nabc".encode())
    ]


# field name -> (reader of one number text, a valid text, its value)
FIELDS: dict[str, tuple[Callable[[str], object], str, object]] = {
    "uri port": (lambda n: SipUri.parse(f"sip:eve@host:{n}").port, "5060", 5060),
    "contact port": (lambda n: NameAddr.parse(f"<sip:eve@host:{n}>").uri.port, "5", 5),
    "via port": (lambda n: Via.parse(f"SIP/2.0/UDP host:{n};branch=z9hG4bK1").port, "5", 5),
    "via rport": (lambda n: Via.parse(f"SIP/2.0/UDP host;rport={n}").rport, "5", 5),
    "cseq": (lambda n: CSeq.parse(f"{n} OPTIONS").seq, "3", 3),
    "cseq header": (lambda n: parse_message(_request(f"CSeq: {n} OPTIONS")).cseq.seq, "3", 3),
    "max-forwards": (lambda n: parse_message(_request(f"Max-Forwards: {n}")).max_forwards, "7", 7),
    "expires": (lambda n: parse_message(_request(f"Expires: {n}")).expires, "3", 3),
    "retry-after": (lambda n: parse_message(_request(f"Retry-After: {n}")).retry_after, "3", 3),
    "status": (_status, "200", 200),
    "content-length": (_content_length, "3", 3),
    "stream content-length": (_stream_length, "3", [3]),
}


def test_the_digit_table_is_all_of_nd() -> None:
    assert len(NON_ASCII_DIGITS) > 600 and "٣" in NON_ASCII_DIGITS and "\uff13" in NON_ASCII_DIGITS


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_each_field_reads_its_valid_number(name: str) -> None:
    read, good, value = FIELDS[name]
    assert read(good) == value


@settings(max_examples=400, deadline=None)
@given(name=st.sampled_from(sorted(FIELDS)), data=st.data())
def test_non_ascii_and_odd_numbers_are_sip_parse_errors(name: str, data: st.DataObject) -> None:
    read, good, _ = FIELDS[name]
    text = data.draw(bad_texts(good, ODDITIES))
    with pytest.raises(SipParseError):
        read(text)


@settings(max_examples=300, deadline=None)
@given(
    text=st.sampled_from([*NON_ASCII_DIGITS, *ODDITIES, *PADDED])
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=12).filter(
        lambda t: not t.isascii() or not t.isdigit()
    )
)
def test_parse_uint_takes_ascii_digits_only(text: str) -> None:
    with pytest.raises(SipParseError):
        parse_uint(text, "field", 10**12)


@given(st.integers(0, 9_999_999_999))
def test_parse_uint_reads_every_ascii_number(n: int) -> None:
    assert parse_uint(str(n), "field", 10**10) == n


def test_parse_uint_bounds_name_the_field() -> None:
    with pytest.raises(SipParseError, match="Max-Forwards out of range"):
        parse_uint("256", "Max-Forwards", 255)
    with pytest.raises(SipParseError, match="port out of range"):
        parse_uint("0", "port", 65535, min_value=1)
    with pytest.raises(SipParseError, match="malformed CSeq"):
        parse_uint("1" * 11, "CSeq", 2**31 - 1)


# -- one repro per finding --------------------------------------------------------------------


def test_contact_port_superscript_is_a_parse_error_not_value_error() -> None:
    msg = parse_message(_request("Contact: <sip:eve@host:²>"))
    with pytest.raises(SipParseError, match="port"):
        _ = msg.contacts


def test_cseq_superscript_is_a_parse_error_not_value_error() -> None:
    msg = parse_message(_request("CSeq: ² OPTIONS"))
    with pytest.raises(SipParseError, match="CSeq"):
        _ = msg.cseq


def test_content_length_arabic_indic_three_is_refused_on_udp() -> None:
    with pytest.raises(SipParseError, match="Content-Length"):
        parse_message(f"{REQ}Content-Length: ٣\r\n\r\nabc".encode())


def test_tcp_stream_with_arabic_indic_content_length_is_refused_not_split() -> None:
    smuggled = f"{REQ}Content-Length: ٣\r\n\r\n".encode() + b"abc" + _request("CSeq: 2 OPTIONS")
    with pytest.raises(SipParseError, match="Content-Length"):
        StreamParser().feed(smuggled)


def test_unicode_space_around_a_number_is_not_lws() -> None:
    with pytest.raises(SipParseError):
        parse_message(f"{REQ}Content-Length:\u20033\r\n\r\nabc".encode())
    with pytest.raises(SipParseError):
        CSeq.parse("1\u00a0OPTIONS")


@pytest.mark.parametrize("second", ["4", "3"])
def test_a_second_content_length_is_refused_conflicting_or_not(second: str) -> None:
    data = f"{REQ}Content-Length: 3\r\nl: {second}\r\n\r\nabcd".encode()
    with pytest.raises(SipParseError, match="more than one Content-Length"):
        parse_message(data)
    with pytest.raises(SipParseError, match="more than one Content-Length"):
        StreamParser().feed(data)


@pytest.mark.parametrize("value", ["a\rb", "a\x00b"])
def test_header_values_with_cr_or_nul_are_refused(value: str) -> None:
    with pytest.raises(SipParseError):
        parse_message(_request(f"Subject: {value}"))


def test_empty_rport_is_a_request_for_one() -> None:
    assert Via.parse("SIP/2.0/UDP host;rport").rport is None
