"""sipglue.keying: MIKEY-keyed SIP calls between two real UAs on loopback.

The oracle is the other side of the exchange: both UAs' GSAs must hold equal keys for each SSRC,
and SRTP packets protected by one side must decrypt on the other (libsrtp, real UDP sockets).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest

from mikey.exchange import ExchangeConfig
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from sipglue.errors import CallError
from sipglue.keying import (
    CallKeyed,
    CallKeysTornDown,
    KeyingError,
    LocalMedia,
    MikeyCallKeying,
    status_for,
)
from sipglue.message import Message, Response
from sipglue.sdp import SessionDescription
from sipglue.transaction import TimerConfig
from sipglue.transport import Address, LossyDatagramWrapper, Transport, UdpTransport
from sipglue.ua import Call, TerminationReason, UserAgent
from srtp.gsa import GsaConfig, GsaRegistry
from srtp.media import SrtpMediaTransport
from tests.mikey.pair import EVERY_MODE, configs

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
MODES = EVERY_MODE


@dataclass
class Side:
    ua: UserAgent
    keying: MikeyCallKeying
    registry: GsaRegistry
    received: list[Response]


async def make_side(
    config: ExchangeConfig,
    user: str,
    *,
    transport: str = "udp",
    factory: Callable[[UdpTransport], Transport] | None = None,
    local_media: Callable[[Call, SessionDescription], object] | None = None,
    timers: TimerConfig = FAST,
    aor: str | None = None,
) -> Side:
    """A keyed UA; its From is ``aor``, else the config's identity (the binder offers it)."""
    registry = GsaRegistry(GsaConfig(rekey_overlap=0.3))
    keying = MikeyCallKeying(config, registry=registry, local_media=local_media)  # type: ignore[arg-type]
    ua = UserAgent(
        keying, transport=transport, user=user, aor=aor, timers=timers, transport_factory=factory
    )
    await ua.listen()
    received: list[Response] = []
    inner = ua.message_received

    def spy(message: Message, source: Address, tr: Transport) -> None:
        if isinstance(message, Response):
            received.append(message)
        inner(message, source, tr)

    ua.message_received = spy  # type: ignore[method-assign,assignment]
    return Side(ua, keying, registry, received)


@pytest.fixture
async def sides() -> AsyncIterator[list[Side]]:
    made: list[Side] = []
    yield made
    for side in made:
        await side.ua.close()
        await side.keying.close()


async def call_pair(
    sides: list[Side], mode: Mode, verify: bool, *, transport: str = "udp", **kw: object
) -> tuple[Side, Side]:
    i_cfg, r_cfg = configs(mode, verify=verify, **kw)
    uac = await make_side(i_cfg, "alice", transport=transport)
    uas = await make_side(r_cfg, "bob", transport=transport)
    sides.extend([uac, uas])
    return uac, uas


def target(uas: Side) -> str:
    suffix = ";transport=tcp" if uas.ua.transport_name == "TCP" else ""
    return f"sip:bob@127.0.0.1:{uas.ua.port}{suffix}"


def assert_equal_keys(uac: Side, uac_call: Call, uas: Side, uas_call: Call) -> None:
    a = uac.registry.get(uac_call.id or "")
    b = uas.registry.get(uas_call.id or "")
    a_keys, b_keys = uac.keying.keys(uac_call), uas.keying.keys(uas_call)
    # the UAC's stream, as sent and as received
    (sa,) = a.outbound.values()
    (sb,) = b.outbound.values()
    assert sa.ssrc == a_keys.local.ssrc == b_keys.remote_ssrc
    assert sb.ssrc == b_keys.local.ssrc
    ra = b.inbound_stream(sa.ssrc)
    rb = a.inbound_stream(sb.ssrc)
    assert bytes(sa.entries[-1].master_key) == bytes(ra.entries[-1].master_key)
    assert bytes(sa.entries[-1].master_salt) == bytes(ra.entries[-1].master_salt)
    assert bytes(sb.entries[-1].master_key) == bytes(rb.entries[-1].master_key)
    assert bytes(sb.entries[-1].master_salt) == bytes(rb.entries[-1].master_salt)
    assert any(sa.entries[-1].master_key)


def rtp(ssrc: int, seq: int) -> bytes:
    header = bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big")
    return header + ssrc.to_bytes(4, "big") + bytes([0xFF]) * 160


async def media_both_ways(
    uac: Side, uac_call: Call, uas: Side, uas_call: Call, count: int = 5
) -> tuple[SrtpMediaTransport, SrtpMediaTransport]:
    ta = await SrtpMediaTransport.open(uac.keying.stream_source(uac_call))
    tb = await SrtpMediaTransport.open(uas.keying.stream_source(uas_call), remote=ta.local_address)
    ta.set_remote(tb.local_address)  # symmetric pair on loopback
    sa, sb = uac.keying.keys(uac_call).local.ssrc, uas.keying.keys(uas_call).local.ssrc
    for seq in range(1, count + 1):
        assert ta.send_packet(rtp(sa, seq))
        assert tb.send_packet(rtp(sb, seq))
    for _ in range(200):
        if ta.counters.decrypted_rtp == count and tb.counters.decrypted_rtp == count:
            break
        await asyncio.sleep(0.01)
    assert ta.counters.decrypted_rtp == count and tb.counters.decrypted_rtp == count
    assert ta.counters.auth_failures == tb.counters.auth_failures == 0
    return ta, tb


async def answered(uas: Side) -> Call:
    call = await asyncio.wait_for(uas.ua.incoming.get(), 5)
    await asyncio.wait_for(call.wait_confirmed(), 5)
    return call


def assert_clean(*sides: Side) -> None:
    for side in sides:
        report = side.registry.audit()
        assert report.live_gsas == 0 and report.unwiped_buffers == 0
        assert side.keying.calls == {} and side.keying.pending == 0


@pytest.mark.timeout(30)
@pytest.mark.parametrize(("mode", "verify"), MODES, ids=[f"{m.value}-v{int(v)}" for m, v in MODES])
async def test_keyed_call_every_mode(sides: list[Side], mode: Mode, verify: bool) -> None:
    uac, uas = await call_pair(sides, mode, verify)
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert remote.id is not None and call.id is not None
    assert call.id in uac.registry and remote.id in uas.registry
    # the offer carried the I_MESSAGE at session level; the answer the response (or nothing)
    assert call.local_sdp is not None and len(call.local_sdp.key_mgmt(None)) == 1
    assert call.remote_sdp is not None
    no_response = mode in (Mode.PSK, Mode.PK) and not verify
    assert len(call.remote_sdp.key_mgmt(None)) == (0 if no_response else 1)
    assert uac.keying.keys(call).remote_ssrc == (
        0 if no_response else uas.keying.keys(remote).local.ssrc
    )
    assert_equal_keys(uac, call, uas, remote)
    ta, tb = await media_both_ways(uac, call, uas, remote)
    ssrc = uac.keying.keys(call).local.ssrc
    await call.bye()
    assert await asyncio.wait_for(remote.wait_terminated(), 5) == TerminationReason.REMOTE_BYE
    # after teardown nothing is protected or accepted any more
    assert not ta.send_packet(rtp(ssrc, 99))
    ta.close()
    tb.close()
    assert_clean(uac, uas)
    kinds = [type(e) for e in uac.keying.drain_events()]
    assert kinds == [CallKeyed, CallKeysTornDown]
    kinds = [type(e) for e in uas.keying.drain_events()]
    assert kinds == [CallKeyed, CallKeysTornDown]


@pytest.mark.timeout(30)
async def test_wrong_psk_refused_488_with_warning_and_error_message(sides: list[Side]) -> None:
    i_cfg, r_cfg = configs(Mode.PSK, verify=True)
    r_cfg = replace(r_cfg, psk=StaticPskStore({}, default=bytes(16)))
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob")
    sides.extend([uac, uas])
    with pytest.raises(CallError) as info:
        await uac.keying.invite(uac.ua, target(uas))
    assert info.value.status_code == 488
    (final,) = [r for r in uac.received if r.status >= 200]
    warning = final.get("Warning")
    assert warning is not None and warning.startswith("399 ")
    assert '"MIKEY: AUTH_FAILURE"' in warning
    assert_clean(uac, uas)
    assert uas.keying.refused == 1


@pytest.mark.timeout(30)
async def test_mode_not_run_here_refused_606(sides: list[Side]) -> None:
    i_cfg, _ = configs(Mode.DH)
    _, r_cfg = configs(Mode.PSK)
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob")
    sides.extend([uac, uas])
    with pytest.raises(CallError) as info:
        await uac.keying.invite(uac.ua, target(uas))
    assert info.value.status_code == 606
    (final,) = [r for r in uac.received if r.status >= 200]
    assert '"MIKEY: INVALID_DT"' in (final.get("Warning") or "")
    # the body carries the MIKEY error message at the offer's (session) level
    body = SessionDescription.parse(final.body)
    (attr,) = body.key_mgmt(None)
    from mikey.codec import parse_message
    from mikey.registry import DataType
    from mikey_cli import mikey_bytes_from_text

    assert parse_message(mikey_bytes_from_text(attr.data)).data_type == DataType.ERROR
    assert all(m.port == 0 for m in body.media)
    assert_clean(uac, uas)


def test_status_for() -> None:
    from mikey.errors import AuthenticationError, ProtocolError
    from mikey.registry import ErrorNo

    assert status_for(AuthenticationError("x")) == 488
    assert status_for(ProtocolError("x", error_no=ErrorNo.INVALID_DT)) == 606
    assert status_for(ProtocolError("x", error_no=ErrorNo.UNSUPPORTED_MESSAGE_TYPE)) == 606


@pytest.mark.timeout(30)
async def test_replayed_invite_refused(sides: list[Side]) -> None:
    """A second INVITE (new dialog) carrying the same I_MESSAGE hits the replay cache: 488."""
    uac, uas = await call_pair(sides, Mode.PSK, True)
    media = LocalMedia("127.0.0.1", 9, 0x1111)
    offer = uac.keying.offer(media)
    call = await uac.ua.invite(target(uas), offer)
    remote = await answered(uas)
    other = await make_side(configs(Mode.PSK, verify=True)[0], "mallory")
    sides.append(other)
    with pytest.raises(CallError) as info:
        await other.ua.invite(target(uas), offer)
    assert info.value.status_code == 488
    (final,) = [r for r in other.received if r.status >= 200]
    assert "MIKEY: INVALID_TS" in (final.get("Warning") or "")
    assert remote.id in uas.registry  # the running call is untouched
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
    assert_clean(uac, uas)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [Mode.PSK, Mode.DH])
async def test_rekey_by_reinvite_without_media_loss(sides: list[Side], mode: Mode) -> None:
    uac, uas = await call_pair(sides, mode, True)
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    ta = await SrtpMediaTransport.open(uac.keying.stream_source(call))
    tb = await SrtpMediaTransport.open(uas.keying.stream_source(remote), remote=ta.local_address)
    ta.set_remote(tb.local_address)
    sa, sb = uac.keying.keys(call).local.ssrc, uas.keying.keys(remote).local.ssrc
    old_key = bytes(uac.registry.get(call.id or "").outbound[sa].entries[-1].master_key)
    stop = asyncio.Event()

    async def pump() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            ta.send_packet(rtp(sa, seq))
            tb.send_packet(rtp(sb, seq))
            await asyncio.sleep(0.002)

    task = asyncio.ensure_future(pump())
    await asyncio.sleep(0.05)
    for _ in range(2):
        await uac.keying.rekey(call)
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.4)  # past the overlap: old keys retired on both sides
    stop.set()
    await task
    await asyncio.sleep(0.05)
    new_a = uac.registry.get(call.id or "")
    assert bytes(new_a.outbound[sa].entries[-1].master_key) != old_key
    assert_equal_keys(uac, call, uas, remote)
    assert uac.keying.keys(call).rekeys == uas.keying.keys(remote).rekeys == 2
    assert new_a.registration.csb_id == uas.registry.get(remote.id or "").registration.csb_id
    for sender, receiver in ((ta, tb), (tb, ta)):
        assert receiver.counters.auth_failures == 0
        assert receiver.counters.decrypted_rtp == sender.counters.sent_rtp > 20
    ta.close()
    tb.close()
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
    assert_clean(uac, uas)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("mode", [Mode.PSK, Mode.DH])
async def test_lossy_udp_calls_complete(sides: list[Side], mode: Mode, seed: int) -> None:
    """20% loss, duplicates and reordering: retransmissions are absorbed below the keying."""
    wrappers: list[LossyDatagramWrapper] = []

    def lossy(inner: UdpTransport) -> LossyDatagramWrapper:
        wrapper = LossyDatagramWrapper(
            inner,
            seed=seed * 10 + len(wrappers),
            loss=0.2,
            duplicate=0.2,
            reorder=0.2,
            reorder_delay=0.02,
        )
        wrappers.append(wrapper)
        return wrapper

    i_cfg, r_cfg = configs(mode, verify=True)
    uac = await make_side(i_cfg, "alice", factory=lossy)
    uas = await make_side(r_cfg, "bob", factory=lossy)
    sides.extend([uac, uas])
    for _ in range(3):
        call = await uac.keying.invite(uac.ua, target(uas))
        remote = await answered(uas)
        assert_equal_keys(uac, call, uas, remote)
        await call.bye()
        await asyncio.wait_for(remote.wait_terminated(), 10)
    assert uas.keying.refused == 0  # no retransmitted INVITE reached the replay cache
    assert sum(w.dropped for w in wrappers) > 0 and sum(w.duplicated for w in wrappers) > 0
    assert_clean(uac, uas)


@pytest.mark.timeout(30)
async def test_tcp_connection_loss_tears_down(sides: list[Side]) -> None:
    uac, uas = await call_pair(sides, Mode.DHHMAC, False, transport="tcp")
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert_equal_keys(uac, call, uas, remote)
    assert uac.ua.transport is not None
    uac.ua.transport.close()  # drop the connection
    assert await asyncio.wait_for(remote.wait_terminated(), 5) == TerminationReason.CONNECTION_LOST
    await uac.ua.close()
    assert call.reason is not None
    assert_clean(uac, uas)


@pytest.mark.timeout(30)
async def test_cancel_and_timeout_leave_nothing(sides: list[Side]) -> None:
    gate = asyncio.Event()

    async def slow_media(call: Call, offer: SessionDescription) -> LocalMedia:
        await gate.wait()
        return LocalMedia("127.0.0.1", 9, 0x2222)

    i_cfg, r_cfg = configs(Mode.PSK, verify=True)
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob", local_media=slow_media)
    sides.extend([uac, uas])
    task = asyncio.ensure_future(uac.keying.invite(uac.ua, target(uas)))
    for _ in range(100):
        if uac.ua.calls and next(iter(uac.ua.calls.values())).state.name == "EARLY":
            break
        await asyncio.sleep(0.01)
    (pending,) = uac.ua.calls.values()
    await pending.cancel()
    with pytest.raises(CallError) as info:
        await task
    assert info.value.status_code == 487
    gate.set()
    await asyncio.sleep(0.05)
    assert_clean(uac, uas)
    # transaction timeout: nobody answers at all
    with pytest.raises(CallError):
        await uac.keying.invite(uac.ua, "sip:nobody@127.0.0.1:9")
    assert_clean(uac)


class Stripping:
    """A UAS handler that keys the call but strips the MIKEY response from its answer."""

    def __init__(self, keying: MikeyCallKeying) -> None:
        self.keying = keying

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        answer = await self.keying.on_offer(call, offer)
        return answer.with_key_mgmt(None, [])

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        await self.keying.on_answer(call, answer)

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        await self.keying.on_terminated(call, reason)


@pytest.mark.timeout(30)
async def test_answer_without_response_is_refused_and_byed(sides: list[Side]) -> None:
    """A UAS that strips the MIKEY response: the UAC ACKs, BYEs, and keeps no keys."""
    uac, uas = await call_pair(sides, Mode.DH, False)
    uas.ua.handler = Stripping(uas.keying)
    with pytest.raises(CallError):
        await uac.keying.invite(uac.ua, target(uas))
    remote = await asyncio.wait_for(uas.ua.incoming.get(), 5)
    await asyncio.wait_for(remote.wait_terminated(), 5)
    assert_clean(uac, uas)


async def test_unkeyed_call_has_no_keys(sides: list[Side]) -> None:
    uac, uas = await call_pair(sides, Mode.PSK, True)
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
    with pytest.raises(KeyingError):
        uac.keying.keys(call)
    with pytest.raises(KeyingError):
        await uac.keying.rekey(call)


@pytest.mark.timeout(30)
async def test_key_mgmt_at_media_level(sides: list[Side]) -> None:
    i_cfg, r_cfg = configs(Mode.DHHMAC)
    uac = await make_side(i_cfg, "alice")
    uas = await make_side(r_cfg, "bob")
    sides.extend([uac, uas])
    uac.keying.key_mgmt_at_media = True
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert call.local_sdp is not None and call.remote_sdp is not None
    assert call.local_sdp.key_mgmt(None) == [] and len(call.local_sdp.key_mgmt(0)) == 1
    # RFC 4567 §3.1: the answer carries the response at the level the offer used
    assert call.remote_sdp.key_mgmt(None) == [] and len(call.remote_sdp.key_mgmt(0)) == 1
    assert_equal_keys(uac, call, uas, remote)
    await remote.bye()
    await asyncio.wait_for(call.wait_terminated(), 5)
    assert_clean(uac, uas)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("mode", [Mode.PSK, Mode.DH])
async def test_call_refused_after_the_exchange_leaves_no_csb(sides: list[Side], mode: Mode) -> None:
    """The MIKEY exchange succeeds but the SDP answer cannot be built (only PCMA offered): the
    call is refused and the staged result is discarded, so the UAS's CSB table stays empty (the
    CSB used to be recorded by the exchange and left behind)."""
    uac, uas = await call_pair(sides, mode, False)
    media = LocalMedia("127.0.0.1", 40000, uac.keying.new_ssrc())
    text = uac.keying.offer(media, target=target(uas)).encode().decode()
    assert "RTP/SAVP 0\r\n" in text
    pcma_only = text.replace("RTP/SAVP 0\r\n", "RTP/SAVP 8\r\n").replace(
        "a=rtpmap:0 PCMU/8000", "a=rtpmap:8 PCMA/8000"
    )
    with pytest.raises(CallError) as info:
        await uac.ua.invite(target(uas), pcma_only)
    assert info.value.status_code == 488
    assert len(uas.keying.endpoint.csbs) == 0 and len(uas.keying.endpoint.replay) == 1
    await uac.keying.close()
    assert_clean(uac, uas)
