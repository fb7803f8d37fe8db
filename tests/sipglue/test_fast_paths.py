"""The shortcuts taken on the call-setup path give the same results as the general code."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipglue.errors import SdpError, SipParseError
from sipglue.message import Request, parse_message, split_header_values
from sipglue.sdp import (
    KeyMgmtAttr,
    SdpLine,
    SessionDescription,
    build_audio_answer,
    build_audio_offer,
)

RESPONSE = KeyMgmtAttr("mikey", "UkVTUE9OU0U=")


@given(
    at_media=st.booleans(),
    session_too=st.booleans(),
    rejected_first=st.booleans(),
    opus=st.booleans(),
)
def test_answer_key_mgmt_lands_where_with_key_mgmt_puts_it(
    at_media: bool, session_too: bool, rejected_first: bool, opus: bool
) -> None:
    offer = build_audio_offer(
        "127.0.0.1",
        4000,
        session_id=1,
        opus=opus,
        key_mgmt=[KeyMgmtAttr("mikey", "T0ZGRVI=")],
        key_mgmt_at_media=at_media,
    )
    if session_too and at_media:  # media level overrides a session-level line (RFC 4567 §3.1)
        offer = offer.with_key_mgmt(None, [KeyMgmtAttr("mikey", "U0VTU0lPTg==")])
    if rejected_first:
        video = SessionDescription.parse(b"v=0\r\nm=video 0 RTP/SAVP 96\r\n").media[0]
        offer = SessionDescription(offer.session, (video, *offer.media))
    chosen = 1 if rejected_first else 0
    answer = build_audio_answer(offer, "127.0.0.1", 5000, session_id=2, key_mgmt=RESPONSE)
    plain = build_audio_answer(offer, "127.0.0.1", 5000, session_id=2)
    expected = plain.with_key_mgmt(offer.key_mgmt_level(chosen), [RESPONSE])
    assert answer == expected
    assert SessionDescription.parse(answer.encode()) == answer
    assert answer.effective_key_mgmt(chosen) == [RESPONSE]


def test_common_lines_parse_like_any_other() -> None:
    offer = build_audio_offer("127.0.0.1", 4000, session_id=7, opus=True)
    parsed = SessionDescription.parse(offer.encode())
    assert parsed == offer and parsed.encode() == offer.encode()
    assert parsed.media[0].attributes("sendrecv") == [None]
    assert parsed.media[0].rtpmap() == {"111": "opus/48000/2", "0": "PCMU/8000"}


@pytest.mark.parametrize(
    ("kind", "value"),
    [("A", "x"), ("ab", "x"), ("", "x"), ("1", "x"), ("a", "x\ry"), ("a", "x\ny"), ("a", "\x00")],
)
def test_sdp_line_checks(kind: str, value: str) -> None:
    with pytest.raises(SdpError):
        SdpLine(kind, value)


def _invite(extra: str = "", body: bytes = b"", length: int | None = None) -> bytes:
    n = len(body) if length is None else length
    return (
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 127.0.0.1:5061;branch=z9hG4bKx\r\n"
        "From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: c@h\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: {n}\r\n\r\n"
    ).encode() + body


def test_datagram_body_is_cut_to_content_length() -> None:
    message = parse_message(_invite(body=b"v=0\r\nEXTRA", length=5))
    assert isinstance(message, Request) and message.body == b"v=0\r\n"
    assert parse_message(_invite(body=b"abc")).body == b"abc"
    with pytest.raises(SipParseError):
        parse_message(_invite(body=b"abc", length=4))


def test_datagram_header_values_are_still_checked() -> None:
    with pytest.raises(SipParseError):
        parse_message(_invite(extra="Subject: a\x01b\r\n", body=b"x"))


@pytest.mark.parametrize(
    ("value", "parts"),
    [
        ("<sip:a@b>;tag=1", ["<sip:a@b>;tag=1"]),
        ("  x  ", ["x"]),
        ("a>b", ["a>b"]),
        ("<a>, <b>", ["<a>", "<b>"]),
        ('"x, y" <a>', ['"x, y" <a>']),
    ],
)
def test_header_values_split(value: str, parts: list[str]) -> None:
    assert split_header_values(value) == parts


@pytest.mark.parametrize("value", ["<a", "><", "<<a>", "", "   "])
def test_header_values_refused(value: str) -> None:
    with pytest.raises(SipParseError):
        split_header_values(value)
