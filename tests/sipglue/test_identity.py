"""The SIP parties are the MIKEY parties (RFC 4567 §5, RFC 3830 §4.3): real UAs on loopback.

* the UAC expects the responder to be the Request-URI's AOR (unless ``peer_identity`` says
  otherwise), the UAS expects the initiator to be the From's AOR, a re-key the identity that keyed
  the call;
* a re-INVITE hijack of a live call by a third party (UDP and TCP; DH and PSK) is refused with
  488 and leaves the victim's keys and media as they were;
* a callee answering with another user's valid certificate is refused by the caller.

Oracles: the SIP final response and its Warning, the refused party's keying state (``calls``,
GSA registry audit, CSB table), and SRTP packets protected by one side of the victim call that
must still decrypt on the other.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import socket
import time
from dataclasses import replace

import pytest

from mikey.exchange import (
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    Responder,
    StreamSpec,
)
from mikey.keying import Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore
from sipglue.errors import CallError, SipError
from sipglue.keying import (
    IDENTITY_WARNING,
    REKEY_IDENTITY_WARNING,
    KeyingError,
)
from sipglue.message import Request, Response, SipUri, StreamParser, parse_message, warning_text
from sipglue.sdp import KeyMgmtAttr, SessionDescription, build_audio_answer, build_audio_offer
from sipglue.ua import Call, TerminationReason, UserAgent
from srtp.errors import SrtpError
from srtp.gsa import GsaRegistry
from srtp.gsa import TeardownReason as GsaReason
from tests.mikey import certs
from tests.mikey.pair import ALICE, BOB, PSK, configs, ep

from .helpers import Recorder
from .helpers import offer as toy_offer
from .test_keying import FAST, Side, answered, make_side, rtp, sides, target

__all__ = ["sides"]  # the fixture, re-exported for pytest

MALLORY = "sip:mallory@example.com"
MALLORY_PSK = bytes(range(100, 116))
BOB_HERE = "sip:bob@127.0.0.1"  # the AOR of target(): sip:bob@127.0.0.1:PORT


def trust() -> TrustStore:
    return TrustStore([certs.ca().cert])


def creds(name: str, san: str | None) -> Credentials:
    issued = certs.leaf(name, san_uri=san)
    return Credentials(issued.key, (issued.cert,))


def assert_nothing_keyed(side: Side, csbs_before: int = 0) -> None:
    """The refused party holds no call keys, no live GSA, no new CSB."""
    report = side.registry.audit()
    assert report.live_gsas == 0 and report.unwiped_buffers == 0
    assert side.keying.calls == {} and side.keying.pending == 0
    assert len(side.keying.endpoint.csbs) == csbs_before


def final_of(side: Side) -> Response:
    (final,) = [r for r in side.received if r.status >= 200 and r.cseq.method == "INVITE"]
    return final


# -- the AOR and Warning helpers ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "aor"),
    [
        ("sip:bob@127.0.0.1:5070", "sip:bob@127.0.0.1"),
        ("sip:bob@127.0.0.1:5070;transport=tcp?subject=x", "sip:bob@127.0.0.1"),
        ("sips:alice@Example.COM:5061;user=phone", "sips:alice@Example.COM"),
        ("sip:alice:secret@example.com", "sip:alice@example.com"),
        ("sip:example.com:5060", "sip:example.com"),
        ("sip:bob@[::1]:5060", "sip:bob@[::1]"),
        ("sip:%61lice@example.com", "sip:%61lice@example.com"),
    ],
)
def test_aor_of_uri(uri: str, aor: str) -> None:
    assert SipUri.parse(uri).aor() == aor


def test_aor_compares_with_identities() -> None:
    from mikey.identity import same_identity

    assert same_identity(SipUri.parse("sip:%61lice@EXAMPLE.com:5060").aor(), ALICE)
    assert not same_identity(SipUri.parse("sips:alice@example.com").aor(), ALICE)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ('399 127.0.0.1 "MIKEY: INVALID_ID: x"', "MIKEY: INVALID_ID: x"),
        ('399 host "say \\"hi\\""', 'say "hi"'),
        ('399 host "a\x07b"', "ab"),
        ("399 host no-quotes", None),
        ("nonsense", None),
        (None, None),
    ],
)
def test_warning_text(value: str | None, text: str | None) -> None:
    assert warning_text(value) == text


# -- the UA's own identity on the wire ------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_from_carries_the_aor_and_contact_its_user(transport: str) -> None:
    uac = UserAgent(Recorder(), transport=transport, aor="sips:alice@example.com", timers=FAST)
    plain = UserAgent(Recorder(), transport=transport, user="carol", timers=FAST)
    uas = UserAgent(Recorder(), transport=transport, timers=FAST)
    for ua in (uac, plain, uas):
        await ua.listen()
    try:
        suffix = ";transport=tcp" if transport == "tcp" else ""
        for caller in (uac, plain):
            call = await caller.invite(f"sip:bob@127.0.0.1:{uas.port}{suffix}", toy_offer())
            remote = await asyncio.wait_for(uas.incoming.get(), 5)
            invite = remote.invite
            contact = invite.get("Contact") or ""
            if caller is uac:
                assert str(invite.from_.uri) == "sips:alice@example.com"
                assert contact.startswith(f"<sip:alice@127.0.0.1:{uac.port}")
            else:
                assert str(invite.from_.uri) == f"sip:carol@127.0.0.1:{plain.port}"
                assert contact.startswith(f"<sip:carol@127.0.0.1:{plain.port}")
            await call.bye()
            await asyncio.wait_for(remote.wait_terminated(), 5)
    finally:
        for ua in (uac, plain, uas):
            await ua.close()


def test_aor_must_be_a_sip_uri() -> None:
    with pytest.raises(SipError):
        UserAgent(Recorder(), aor="tel:+15551234")


async def test_keying_binder_offers_its_sip_identity_as_from(sides: list[Side]) -> None:
    i_cfg, _ = configs(Mode.PSK)
    side = await make_side(i_cfg, "whoever")
    sides.append(side)
    assert side.ua.aor == SipUri.parse(ALICE)
    assert str(side.ua.local_uri) == ALICE
    nai = await make_side(replace(i_cfg, identity="alice@example.com"), "whoever")
    sides.append(nai)
    assert nai.ua.aor is None  # an NAI cannot be a From: the old fixed From stays
    assert nai.ua.local_uri.user == "whoever"


# -- UAC: the callee is the Request-URI's AOR -----------------------------------------------------


@pytest.mark.timeout(30)
async def test_uac_expects_the_request_uri_aor(sides: list[Side]) -> None:
    """No peer_identity: calling sip:bob@127.0.0.1:PORT keys only with a sip:bob@127.0.0.1."""
    i_cfg, r_cfg = configs(Mode.DH)
    i_cfg = replace(i_cfg, peer_identity=None)
    here = replace(r_cfg, identity=None, credentials=creds("bob-here", BOB_HERE))
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(here, "bob")
    sides.extend([uac, uas])
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert uac.keying.keys(call).registration.responder_id == BOB_HERE
    assert uas.keying.keys(remote).registration.initiator_id == ALICE
    # a re-key expects the identity that keyed the call, and gets it
    await uac.keying.rekey(call)
    assert uac.keying.keys(call).rekeys == 1
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
    assert_nothing_keyed(uac)
    assert_nothing_keyed(uas)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [Mode.DH, Mode.RSA_R, Mode.PSK])
async def test_callee_named_otherwise_refuses_with_warning(sides: list[Side], mode: Mode) -> None:
    """The callee is sip:bob@example.com but was called as sip:bob@127.0.0.1: IDr is not its own,
    so it refuses (488, INVALID_ID); an explicit peer_identity is what makes such a call work."""
    i_cfg, r_cfg = configs(mode, verify=True)
    uac = await make_side(replace(i_cfg, peer_identity=None), "alice")
    uas = await make_side(r_cfg, "bob")
    sides.extend([uac, uas])
    if mode == Mode.PSK:  # PSK is looked up by the expected peer: give the UAC one for BOB_HERE
        uac.keying.config = replace(uac.keying.config, psk=StaticPskStore({BOB_HERE: PSK}))
    with pytest.raises(CallError) as info:
        await uac.keying.invite(uac.ua, target(uas))
    assert info.value.status_code == 488
    assert info.value.warning == IDENTITY_WARNING
    assert warning_text(final_of(uac).get("Warning")) == IDENTITY_WARNING
    assert_nothing_keyed(uac)
    assert_nothing_keyed(uas)
    # the explicit expectation overrides the Request-URI default
    uac.keying.config = replace(uac.keying.config, peer_identity=BOB)
    if mode == Mode.PSK:
        uac.keying.config = replace(uac.keying.config, psk=StaticPskStore({BOB: PSK}))
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert uac.keying.keys(call).registration.responder_id == BOB
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)


async def test_offer_without_a_psk_for_the_callee_is_a_keying_error(sides: list[Side]) -> None:
    i_cfg, _ = configs(Mode.PSK)
    uac = await make_side(replace(i_cfg, peer_identity=None), "alice")
    sides.append(uac)
    with pytest.raises(KeyingError) as info:
        await uac.keying.invite(uac.ua, "sip:nobody@127.0.0.1:9")
    assert "pre-shared key" in info.value.detail
    assert uac.ua.calls == {} and uac.keying.pending == 0


class LyingResponder(Responder):
    """A responder that answers any IDr (a peer ignoring RFC 3830 §4.3 on its side)."""

    def _own_identities(self) -> tuple[str, ...]:
        return ()


class Impostor:
    """A UAS that keys calls for sip:bob@... with mallory's valid certificate."""

    def __init__(self, config: ExchangeConfig) -> None:
        self.config = config
        self.registry = GsaRegistry()
        self.ssrc = 0x5151

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        (attr,) = offer.effective_key_mgmt(0)
        now = time.time()
        reply = LyingResponder(ep(self.config)).respond(
            base64.b64decode(attr.data), now, local_ssrcs=[self.ssrc]
        )
        assert isinstance(reply, ExchangeCompleted) and reply.answer is not None
        assert call.id is not None
        self.registry.establish(call.id, reply.result, now, outbound_ssrcs={self.ssrc})
        data = base64.b64encode(reply.answer).decode()
        return build_audio_answer(
            offer, "127.0.0.1", 9, session_id=1, key_mgmt=KeyMgmtAttr("mikey", data)
        )

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        raise AssertionError("the impostor only answers")

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        self.registry.teardown(call.id or "", GsaReason.BYE, time.time())


async def impostor_ua(
    mode: Mode, *, send_identities: bool = True, trust_store: TrustStore | None = None
) -> tuple[UserAgent, Impostor]:
    config = ExchangeConfig(
        mode=mode,
        credentials=creds("mallory", MALLORY),
        trust=trust_store or trust(),
        send_identities=send_identities,
    )
    assert config.identity == MALLORY  # a signed-mode party is its certificate's SAN URI
    impostor = Impostor(config)
    ua = UserAgent(impostor, user="bob", timers=FAST)
    await ua.listen()
    return ua, impostor


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("mode", "send_identities"),
    # an RSA-R responder signs its identity along: without IDr the signature fails first
    [(Mode.DH, True), (Mode.DH, False), (Mode.RSA_R, True)],
    ids=["dh-with-IDr", "dh-without-IDr", "rsa-r-with-IDr"],
)
async def test_callee_with_another_users_certificate_is_refused(
    sides: list[Side], mode: Mode, send_identities: bool
) -> None:
    i_cfg, _ = configs(mode)
    uac = await make_side(replace(i_cfg, peer_identity=None), "alice")
    sides.append(uac)
    ua, impostor = await impostor_ua(mode, send_identities=send_identities)
    try:
        with pytest.raises(CallError) as info:
            await uac.keying.invite(uac.ua, f"sip:bob@127.0.0.1:{ua.port}")
        cause = info.value.__cause__
        assert isinstance(cause, KeyingError)
        assert MALLORY in cause.detail and BOB_HERE in cause.detail
        assert_nothing_keyed(uac)
        # the UAC ACKed and BYEd: the impostor's GSA is gone too
        (remote,) = list(ua.calls.values())
        assert await asyncio.wait_for(remote.wait_terminated(), 5) == (TerminationReason.REMOTE_BYE)
        assert impostor.registry.audit().live_gsas == 0
    finally:
        await ua.close()


# -- UAS: the caller is the From's AOR ------------------------------------------------------------


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [Mode.PSK, Mode.DH, Mode.PK, Mode.DHHMAC])
async def test_uas_refuses_idi_other_than_from(sides: list[Side], mode: Mode) -> None:
    i_cfg, r_cfg = configs(mode, verify=True)
    carol = await make_side(i_cfg, "alice", aor="sip:carol@example.com")  # IDi alice, From carol
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob")
    sides.extend([carol, uac, uas])
    with pytest.raises(CallError) as info:
        await carol.keying.invite(carol.ua, target(uas))
    assert info.value.status_code == 488
    assert info.value.warning == IDENTITY_WARNING
    assert uas.keying.refused == 1
    assert_nothing_keyed(uas)
    assert_nothing_keyed(carol)
    # the same credentials with a From that is their identity: keyed, bound to alice
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert str(remote.invite.from_.uri) == ALICE
    assert uas.keying.keys(remote).registration.initiator_id == ALICE
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)


@pytest.mark.timeout(30)
async def test_psk_of_alice_only_keys_calls_from_alice(sides: list[Side]) -> None:
    """No IDi: the UAS looks the PSK up by the From AOR (StaticPskStore keyed by identity)."""
    i_cfg, r_cfg = configs(Mode.PSK, verify=True)
    anonymous = replace(i_cfg, identity=None)  # alice's PSK, no IDi/IDr sent
    uas = await make_side(r_cfg, "bob")  # psk=StaticPskStore({ALICE: PSK}), no default
    sides.append(uas)
    for impostor in ("sip:bob@example.com", "sip:mallory@example.com"):
        other = await make_side(anonymous, "x", aor=impostor)
        sides.append(other)
        with pytest.raises(CallError) as info:
            await other.keying.invite(other.ua, target(uas))
        assert info.value.status_code == 488 and info.value.warning == IDENTITY_WARNING
        assert_nothing_keyed(uas)
        assert_nothing_keyed(other)
    assert uas.keying.refused == 2
    uac = await make_side(anonymous, "x", aor=ALICE)
    sides.append(uac)
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert uas.keying.keys(remote).registration.initiator_id == ALICE
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
    assert_nothing_keyed(uas)


# -- re-INVITE hijack of a live call --------------------------------------------------------------


def _exchange(data: bytes, dest: tuple[str, int], transport: str) -> Response:
    """Send one request from a fresh socket (another port) and read its final response."""
    if transport == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(5)
            sock.sendto(data, dest)
            while True:
                reply = parse_message(sock.recv(65535))
                if isinstance(reply, Response) and reply.status >= 200:
                    return reply
    with socket.create_connection(dest, timeout=5) as sock:
        sock.sendall(data)
        parser = StreamParser()
        while True:
            chunk = sock.recv(65535)
            assert chunk, "connection closed before a final response"
            for reply in parser.feed(chunk):
                if isinstance(reply, Response) and reply.status >= 200:
                    return reply


def _decrypted(sender: Side, s_call: Call, receiver: Side, r_call: Call, first: int) -> int:
    """Packets protected by ``sender``'s outbound stream that ``receiver``'s inbound accepts."""
    ssrc = sender.keying.keys(s_call).local.ssrc
    out = sender.registry.get(s_call.id or "").outbound_stream(ssrc)
    inbound = receiver.registry.get(r_call.id or "").inbound_stream(ssrc)
    count = 0
    for seq in range(first, first + 10):
        try:
            inbound.unprotect(out.protect(rtp(ssrc, seq)))
        except SrtpError:
            continue
        count += 1
    return count


def _attacker(mode: Mode, variant: str) -> ExchangeConfig:
    if variant == "no-san-claims-alice":  # CA-issued, no SAN URI, IDi alice
        return ExchangeConfig(mode=mode, identity=ALICE, peer_identity=BOB,
                              credentials=creds("mallory-nosan", None))  # fmt: skip
    if variant in ("own-certificate", "own-certificate-new-csb"):
        return ExchangeConfig(mode=mode, peer_identity=BOB, credentials=creds("mallory", MALLORY))
    if variant == "own-psk":  # bob's store holds mallory's PSK too
        return ExchangeConfig(mode=mode, identity=MALLORY, peer_identity=BOB, verify=True,
                              psk=StaticPskStore({BOB: MALLORY_PSK}))  # fmt: skip
    assert variant == "alice-id-own-psk"
    return ExchangeConfig(mode=mode, identity=ALICE, peer_identity=BOB, verify=True,
                          psk=StaticPskStore({BOB: MALLORY_PSK}))  # fmt: skip


HIJACKS = [
    (Mode.DH, "no-san-claims-alice", "MIKEY: INVALID_CERT"),
    (Mode.DH, "own-certificate", REKEY_IDENTITY_WARNING),
    (Mode.DH, "own-certificate-new-csb", "MIKEY: UNSPECIFIED"),  # not the call's CSB
    (Mode.PSK, "own-psk", REKEY_IDENTITY_WARNING),
    (Mode.PSK, "alice-id-own-psk", "MIKEY: AUTH_FAILURE"),
]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize(("mode", "variant", "warning"), HIJACKS, ids=[h[1] for h in HIJACKS])
async def test_reinvite_hijack_by_third_party_is_refused(
    sides: list[Side], transport: str, mode: Mode, variant: str, warning: str
) -> None:
    i_cfg, r_cfg = configs(
        mode, verify=True, r_psk=StaticPskStore({ALICE: PSK, MALLORY: MALLORY_PSK})
    )
    uac = await make_side(i_cfg, "alice", transport=transport)
    uas = await make_side(r_cfg, "bob", transport=transport)
    sides.extend([uac, uas])
    uas.ua.check_dialog_source = False  # requests may reach bob from anywhere (a proxy path)
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert call.dialog is not None and call.id is not None and remote.id is not None
    bob_keys = uas.keying.keys(remote)
    inbound_before = [
        bytes(e.master_key) for s in uas.registry.get(remote.id).streams() for e in s.entries
    ]
    csbs_before = len(uas.keying.endpoint.csbs)

    # mallory: the dialog's Call-ID, tags and CSeq, the CSB ID and both SSRCs (all on the wire)
    reg = uac.registry.get(call.id).registration
    streams = (StreamSpec(uac.keying.keys(call).local.ssrc), StreamSpec(bob_keys.local.ssrc))
    rekey_of = None if variant.endswith("new-csb") else reg
    i_message = Initiator(ep(_attacker(mode, variant))).start(
        time.time(), streams, rekey_of=rekey_of
    )
    sdp = build_audio_offer(
        "127.0.0.1", 40000, session_id=7,
        key_mgmt=[KeyMgmtAttr("mikey", base64.b64encode(i_message).decode())],
    )  # fmt: skip
    forged: Request = copy.deepcopy(call.dialog).create_request(
        "INVITE",
        f"SIP/2.0/{transport.upper()} 127.0.0.1:9;branch=z9hG4bKhijack{variant}",
        body=sdp.encode(),
        content_type="application/sdp",
    )
    dest = ("127.0.0.1", uas.ua.port)
    reply = await asyncio.to_thread(_exchange, forged.encode(), dest, transport)

    assert reply.status == 488
    assert warning_text(reply.get("Warning")) == warning
    await asyncio.sleep(0.05)
    # bob's call and keys are as they were: same CSB, no re-key, same inbound keys
    assert not remote.ended and not call.ended
    assert uas.keying.keys(remote) is bob_keys and bob_keys.rekeys == 0
    assert bob_keys.registration.initiator_id == ALICE
    assert uas.registry.get(remote.id).registration.csb_id == reg.csb_id
    after = [bytes(e.master_key) for s in uas.registry.get(remote.id).streams() for e in s.entries]
    assert after == inbound_before
    assert len(uas.keying.endpoint.csbs) == csbs_before
    assert uas.registry.audit().live_gsas == 1
    # and the victim's media still flows both ways under the call's keys
    assert _decrypted(uac, call, uas, remote, 1) == 10
    assert _decrypted(uas, remote, uac, call, 1) == 10
    # bob hangs up (mallory's CSeq is now the dialog's last remote one); nothing is left
    await remote.bye()
    assert await asyncio.wait_for(call.wait_terminated(), 5) == TerminationReason.REMOTE_BYE
    for side in (uac, uas):
        assert side.registry.audit().live_gsas == 0 and side.keying.calls == {}


@pytest.mark.timeout(30)
async def test_genuine_rekey_over_the_same_path_still_works(sides: list[Side]) -> None:
    """Control for the hijack test: alice's own re-INVITE re-keys with check_dialog_source off."""
    i_cfg, r_cfg = configs(Mode.DH)
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob")
    sides.extend([uac, uas])
    uas.ua.check_dialog_source = False
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    await uac.keying.rekey(call)
    assert uas.keying.keys(remote).rekeys == 1
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)


@pytest.mark.timeout(30)
async def test_uas_side_rekey_expects_the_caller(sides: list[Side]) -> None:
    """bob re-keys the call alice placed: his initiator expects alice (looks up alice's PSK)."""
    i_cfg, r_cfg = configs(Mode.PSK, verify=True, i_psk=StaticPskStore({BOB: PSK}))
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob")  # psk {ALICE: PSK}: only usable for alice
    sides.extend([uac, uas])
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    await uas.keying.rekey(remote)
    assert uas.keying.keys(remote).rekeys == 1 and uac.keying.keys(call).rekeys == 1
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
