from __future__ import annotations

import pytest

from sipglue.dialog import Dialog, DialogState, Role
from sipglue.errors import DialogError
from sipglue.message import NameAddr, Request, Response, parse_message

INVITE = (
    b"INVITE sip:bob@b.example SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
    b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
    b"From: Alice <sip:alice@a.example>;tag=AT\r\n"
    b"To: <sip:bob@b.example>\r\n"
    b"Call-ID: call1\r\nCSeq: 7 INVITE\r\n"
    b"Contact: <sip:alice@10.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n"
)
OK = (
    b"SIP/2.0 200 OK\r\n"
    b"Via: SIP/2.0/UDP a.example;branch=z9hG4bK1\r\n"
    b"Record-Route: <sip:p1.example;lr>, <sip:p2.example;lr>\r\n"
    b"From: Alice <sip:alice@a.example>;tag=AT\r\n"
    b"To: <sip:bob@b.example>;tag=BT\r\n"
    b"Call-ID: call1\r\nCSeq: 7 INVITE\r\n"
    b"Contact: <sip:bob@10.0.0.2:5080;transport=tcp>\r\nContent-Length: 0\r\n\r\n"
)


def pair() -> tuple[Dialog, Dialog, Request]:
    invite = parse_message(INVITE)
    ok = parse_message(OK)
    assert isinstance(invite, Request) and isinstance(ok, Response)
    uac = Dialog.from_uac(invite, ok, NameAddr.parse("<sip:alice@10.0.0.1:5070>"))
    uas = Dialog.from_uas(invite, "BT", NameAddr.parse("<sip:bob@10.0.0.2:5080;transport=tcp>"))
    return uac, uas, invite


def test_dialog_ids_mirror() -> None:
    uac, uas, _ = pair()
    assert uac.id == "call1;AT;BT" and uas.id == "call1;BT;AT"
    assert uac.role == Role.UAC and uas.role == Role.UAS
    # §12.1.2: UAC route set is the Record-Route list reversed; §12.1.1 UAS keeps the order
    assert [r.uri.host for r in uac.route_set] == ["p2.example", "p1.example"]
    assert [r.uri.host for r in uas.route_set] == ["p1.example", "p2.example"]
    assert uac.remote_target.port == 5080 and uas.remote_target.port == 5070


def test_in_dialog_request_routes_and_cseq() -> None:
    uac, uas, _ = pair()
    bye = uac.create_request("BYE", "SIP/2.0/UDP a.example;branch=z9hG4bK2")
    assert bye.uri == "sip:bob@10.0.0.2:5080;transport=tcp"  # loose routing: remote target
    assert bye.get_all("Route") == ["<sip:p2.example;lr>", "<sip:p1.example;lr>"]
    assert bye.cseq.seq == 8 and bye.from_.tag == "AT" and bye.to.tag == "BT"
    assert uac.next_hop().host == "p2.example"
    assert uas.matches(bye) and not uac.matches(bye)
    uas.receive_request(bye)
    assert uas.remote_seq == 8
    with pytest.raises(DialogError):
        uas.receive_request(bye)  # §12.2.2: not higher than the last one


def test_ack_and_reinvite_target_refresh() -> None:
    uac, uas, _ = pair()
    ack = uac.create_ack("SIP/2.0/UDP a.example;branch=z9hG4bK3")
    assert ack.cseq.seq == 7 and ack.cseq.method == "ACK"
    reinvite = uac.create_request(
        "INVITE", "SIP/2.0/UDP a.example;branch=z9hG4bK4", body=b"v=0\r\n"
    )
    assert reinvite.cseq.seq == 8 and reinvite.get("Contact") == "<sip:alice@10.0.0.1:5070>"
    assert reinvite.content_type == "application/sdp"
    assert uac.create_ack("SIP/2.0/UDP x;branch=z9hG4bK5").cseq.seq == 8
    moved = Request(
        reinvite.method,
        reinvite.uri,
        tuple(
            h if h[0] != "Contact" else ("Contact", "<sip:alice@10.9.9.9>")
            for h in reinvite.headers
        ),
        reinvite.body,
    )
    uas.receive_request(moved)
    assert uas.remote_target.host == "10.9.9.9"


def test_strict_routing_and_terminate() -> None:
    uac, _, _ = pair()
    uac.route_set = (NameAddr.parse("<sip:strict.example>"), NameAddr.parse("<sip:p9;lr>"))
    req = uac.create_request("BYE", "SIP/2.0/UDP a;branch=z9hG4bK9")
    assert req.uri == "sip:strict.example"
    assert req.get_all("Route") == ["<sip:p9;lr>", "<sip:bob@10.0.0.2:5080;transport=tcp>"]
    uac.terminate()
    assert uac.state == DialogState.TERMINATED
    with pytest.raises(DialogError):
        uac.create_request("BYE", "SIP/2.0/UDP a;branch=z9hG4bKa")


def test_missing_tag_or_contact() -> None:
    invite = parse_message(INVITE.replace(b";tag=AT", b""))
    ok = parse_message(OK)
    assert isinstance(invite, Request) and isinstance(ok, Response)
    with pytest.raises(DialogError):
        Dialog.from_uac(invite, ok, NameAddr.parse("<sip:a@h>"))
    with pytest.raises(DialogError):
        Dialog.from_uas(invite, "x", NameAddr.parse("<sip:a@h>"))
    no_contact = parse_message(INVITE.replace(b"Contact: <sip:alice@10.0.0.1:5070>\r\n", b""))
    assert isinstance(no_contact, Request)
    with pytest.raises(DialogError):
        Dialog.from_uas(no_contact, "x", NameAddr.parse("<sip:a@h>"))
