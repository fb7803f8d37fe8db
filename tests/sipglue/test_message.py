from __future__ import annotations

import contextlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipglue.errors import SipError, SipParseError
from sipglue.message import (
    CSeq,
    NameAddr,
    Request,
    Response,
    SipUri,
    StreamParser,
    Via,
    make_response,
    new_branch,
    parse_message,
    split_header_values,
)

# RFC 4475 §3.1.1.1-style "short tortuous" request, written from memory of its features:
# compact forms, folding, odd spacing, comma-joined values with commas inside quotes/brackets.
TORTUOUS = (
    b"INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n"
    b"TO :\r\n"
    b" sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n"
    b'from   : "J Rosenberg \\\\\\"" <sip:jdrosen@example.com>\r\n'
    b"  ;\r\n"
    b"  tag = 98asjd8\r\n"
    b"MaX-fOrWaRdS: 0068\r\n"
    b"Call-ID: wsinv.ndaksdj@192.0.2.1\r\n"
    b"Content-Length   : 150\r\n"
    b"cseq: 0009\r\n"
    b"  INVITE\r\n"
    b"Via  : SIP  /   2.0\r\n"
    b" /UDP\r\n"
    b"    192.0.2.2;branch=390skdjuw\r\n"
    b"s :\r\n"
    b"NewFangledHeader:   newfangled value\r\n"
    b" continued newfangled value\r\n"
    b"UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n"
    b"Content-Type: application/sdp\r\n"
    b"Route:\r\n"
    b" <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n"
    b"v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n"
    b"  branch  =   z9hG4bK9ikj8  ,\r\n"
    b" SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n"
    b" z9hG4bK30239\r\n"
    b'm:"Quoted string \\"\\"" <sip:jdrosen@example.com> ; newparam =\r\n'
    b"      newvalue ;\r\n"
    b"  secondparam ; q = 0.33\r\n"
    b"\r\n"
    b"v=0\r\n"
    b"o=mhandley 29739 7272939 IN IP4 192.0.2.3\r\n"
    b"s=-\r\n"
    b"c=IN IP4 192.0.2.4\r\n"
    b"t=0 0\r\n"
    b"m=audio 49217 RTP/AVP 0 12\r\n"
    b"m=video 3227 RTP/AVP 31\r\n"
    b"a=rtpmap:31 LPC\r\n"
)


def test_tortuous_request() -> None:
    msg = parse_message(TORTUOUS)
    assert isinstance(msg, Request)
    assert msg.method == "INVITE"
    assert msg.to.tag == "1918181833n"
    assert msg.to.uri.user == "vivekg"
    assert msg.from_.tag == "98asjd8"
    assert msg.cseq == CSeq(9, "INVITE")
    vias = msg.vias
    assert [(v.transport, v.host) for v in vias] == [
        ("UDP", "192.0.2.2"),
        ("TCP", "spindle.example.com"),
        ("UDP", "192.168.255.111"),
    ]
    assert vias[1].branch == "z9hG4bK9ikj8"
    assert vias[2].branch == "z9hG4bK30239"
    assert msg.get("Subject") == ""
    assert msg.get("newfangledheader") == "newfangled value continued newfangled value"
    (contact,) = msg.contacts
    assert contact.display == 'Quoted string \\"\\"'
    assert contact.params[-1] == ("q", "0.33")
    assert msg.routes[0].uri.lr
    assert len(msg.body) == 150
    assert msg.body.startswith(b"v=0") and msg.body.endswith(b"a=rtpmap:31 LPC\r\n")
    # canonical re-encode parses to the same message
    again = parse_message(msg.encode())
    assert isinstance(again, Request)
    assert (again.method, again.uri, again.body) == (msg.method, msg.uri, msg.body)
    assert [h for h in again.headers if h[0] != "Content-Length"] == [
        h for h in msg.headers if h[0] != "Content-Length"
    ]


def test_compact_forms_and_comma_joined() -> None:
    raw = (
        b"BYE sip:bob@127.0.0.1:5070;transport=tcp SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKa, SIP/2.0/TCP [::1]:5061;branch=z9hG4bKb\r\n"
        b'f: "Doe, John" <sip:a@h>;tag=x\r\n'
        b"t: <sip:b@h>;tag=y\r\n"
        b"i: abc@h\r\n"
        b"CSeq: 2 BYE\r\n"
        b'm: <sip:a@h;p="x,y">, "B, C" <sip:c@h>\r\n'
        b"k: timer, 100rel\r\n"
        b"c: application/sdp\r\n"
        b"e: gzip\r\n"
        b"s: hello, world\r\n"
        b"l: 0\r\n\r\n"
    )
    msg = parse_message(raw)
    assert isinstance(msg, Request)
    assert msg.from_.display == "Doe, John"
    assert [c.uri.host for c in msg.contacts] == ["h", "h"]
    assert msg.contacts[1].display == "B, C"
    assert msg.get_all("Supported") == ["timer", "100rel"]
    assert msg.get("Subject") == "hello, world"
    assert msg.vias[1].host == "[::1]" and msg.vias[1].port == 5061
    uri = SipUri.parse(msg.uri)
    assert (uri.user, uri.host, uri.port, uri.transport) == ("bob", "127.0.0.1", 5070, "tcp")
    assert msg.content_type == "application/sdp"
    assert msg.call_id == "abc@h"


def test_uri_and_name_addr() -> None:
    uri = SipUri.parse("sips:alice:pw@[2001:db8::1]:5061;lr;transport=TLS?subject=x")
    assert uri.scheme == "sips" and uri.host == "[2001:db8::1]" and uri.port == 5061
    assert uri.lr and uri.transport == "tls" and uri.headers == "subject=x"
    assert "pw" not in repr(uri)
    assert SipUri.parse(str(uri)) == uri
    na = NameAddr.parse("sip:bob@example.com;tag=abc")  # addr-spec: params are header params
    assert na.tag == "abc" and na.uri.params == ()
    na2 = NameAddr.parse("<sip:bob@example.com;transport=udp>;tag=1")
    assert na2.uri.transport == "udp" and na2.tag == "1"
    assert NameAddr.parse(str(na2)) == na2
    via = Via.parse("SIP/2.0/UDP host:1;branch=z9hG4bKx;rport;received=1.2.3.4")
    assert via.param("rport") == "" and via.param("received") == "1.2.3.4"
    assert Via.parse(str(via)) == via


def test_response_round_trip_and_make_response() -> None:
    req = parse_message(
        b"INVITE sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
        b"Via: SIP/2.0/UDP b;branch=z9hG4bK2\r\nRecord-Route: <sip:p;lr>\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    assert isinstance(req, Request)
    resp = make_response(req, 200, to_tag="t9", body=b"xyz")
    parsed = parse_message(resp.encode())
    assert isinstance(parsed, Response)
    assert parsed.status == 200 and parsed.reason == "OK"
    assert parsed.to.tag == "t9"
    assert len(parsed.vias) == 2 and parsed.get_all("Record-Route") == ["<sip:p;lr>"]
    assert parsed.body == b"xyz" and parsed.get("Content-Length") == "3"
    trying = make_response(req, 100, to_tag="t9")
    assert trying.to.tag is None and trying.get("Record-Route") is None


def test_datagram_content_length_rules() -> None:
    base = (
        b"OPTIONS sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\n"
    )
    assert parse_message(base + b"abcdefg").body == b"abcde"  # extra bytes discarded
    with pytest.raises(SipParseError):
        parse_message(base + b"abc")  # §18.3: shorter body -> discard
    # no Content-Length on UDP: body runs to the end of the datagram
    assert parse_message(b"OPTIONS sip:h SIP/2.0\nVia: x\n\nbody").body == b"body"


def test_stream_parser_framing() -> None:
    m1 = Request("OPTIONS", "sip:h", (("Via", "SIP/2.0/TCP a;branch=z9hG4bK1"),), b"hello").encode()
    m2 = Response(200, "OK", (("Via", "SIP/2.0/TCP a;branch=z9hG4bK1"),), b"").encode()
    stream = b"\r\n\r\n" + m1 + m2 + m1
    for chunk_size in (1, 3, 7, 64, len(stream)):
        parser = StreamParser()
        got = []
        for i in range(0, len(stream), chunk_size):
            got.extend(parser.feed(stream[i : i + chunk_size]))
        assert [type(m).__name__ for m in got] == ["Request", "Response", "Request"]
        assert got[0].body == b"hello" and got[2] == got[0]
    with pytest.raises(SipParseError):
        StreamParser().feed(b"OPTIONS sip:h SIP/2.0\r\nVia: x\r\n\r\n")  # no Content-Length
    with pytest.raises(SipParseError):
        StreamParser(max_size=100).feed(b"OPTIONS sip:h SIP/2.0\r\nContent-Length: 1000\r\n\r\n")
    with pytest.raises(SipParseError):
        StreamParser().feed(b"X" * 20000)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"INVITE sip:h SIP/2.0\r\n",  # no blank line
        b"INVITE sip:h SIP/7.0\r\n\r\n",
        b"SIP/2.0 999 Huh\r\n\r\n",
        b"SIP/2.0 20 OK\r\n\r\n",
        b"INVITE  sip:h SIP/2.0\r\n\r\n",
        b"INV@ITE sip:h SIP/2.0\r\n\r\n",
        b"INVITE sip:h SIP/2.0\r\nNoColon\r\n\r\n",
        b"INVITE sip:h SIP/2.0\r\n folded-first\r\n\r\n",
        b"INVITE sip:h SIP/2.0\r\nContent-Length: -1\r\n\r\n",
        b"INVITE sip:h SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxx",
        b"INVITE sip:h SIP/2.0\r\nVia: SIP/2.0/UDP a, \r\n\r\n",
        b'INVITE sip:h SIP/2.0\r\nContact: "unterminated <sip:a@b>\r\n\r\n',
        b"INVITE sip:h SIP/2.0\r\nX: \xff\r\n\r\n",
        b"INVITE sip:h SIP/2.0\r\n" + b"X: y\r\n" * 300 + b"\r\n",
    ],
)
def test_malformed_messages(raw: bytes) -> None:
    with pytest.raises(SipParseError):
        parse_message(raw)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("cseq", "x INVITE"),
        ("cseq", "4294967296 INVITE"),
        ("cseq", "1"),
        ("via", "SIP/2.0/UDP"),
        ("via", "SIP/2.0/UDP h:99999"),
        ("to", "<http://x>"),
        ("to", "<sip:>"),
        ("from", "sip:a@h >"),
    ],
)
def test_malformed_header_values(header: str, value: str) -> None:
    msg = parse_message(f"OPTIONS sip:h SIP/2.0\r\n{header}: {value}\r\n\r\n".encode())
    with pytest.raises(SipParseError):
        if header == "cseq":
            _ = msg.cseq
        elif header == "via":
            _ = msg.top_via
        elif header == "to":
            _ = msg.to
        else:
            _ = msg.from_


def test_split_header_values() -> None:
    assert split_header_values('<a,b>, "c,\\"d", e') == ["<a,b>", '"c,\\"d"', "e"]
    with pytest.raises(SipParseError):
        split_header_values("a,,b")


def test_new_branch_has_magic_cookie() -> None:
    assert new_branch(bytes).startswith("z9hG4bK")


def _exercise(msg: Request | Response) -> None:
    for prop in ("cseq", "to", "from_", "vias", "contacts", "record_route", "routes", "call_id"):
        with contextlib.suppress(SipError):
            getattr(msg, prop)
    msg.encode()


@settings(max_examples=300)
@given(st.binary(max_size=400))
def test_fuzz_binary_only_sip_errors(data: bytes) -> None:
    for candidate in (data, b"INVITE sip:a@b SIP/2.0\r\n" + data):
        try:
            msg = parse_message(candidate)
        except SipParseError:
            continue
        _exercise(msg)
    with contextlib.suppress(SipParseError):
        StreamParser().feed(data)


@settings(max_examples=300)
@given(st.integers(0, 2**32), st.integers(1, 8))
def test_fuzz_mutated_valid(seed: int, mutations: int) -> None:
    rnd = random.Random(seed)
    data = bytearray(TORTUOUS)
    for _ in range(mutations):
        op = rnd.randrange(3)
        pos = rnd.randrange(len(data))
        if op == 0:
            data[pos] = rnd.choice(b':;,<>"\r\n \\=@/x\x00\xff')
        elif op == 1:
            del data[pos : pos + rnd.randrange(1, 10)]
        else:
            data[pos:pos] = data[rnd.randrange(len(data)) :][: rnd.randrange(1, 20)]
    try:
        msg = parse_message(bytes(data))
    except SipParseError:
        return
    _exercise(msg)
