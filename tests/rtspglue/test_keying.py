"""MIKEY-keyed SRTP over RTSP: our client against our server in every real MIKEY mode.

Oracles: the other side of the exchange (the client's libsrtp context must decrypt what the
server's protects, to the tone that was sent), the GSA audits of both registries, an independent
parse of the MIKEY bytes (ROC in the CS map) and the RTSP status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import pytest

from mikey.codec import parse_message
from mikey.exchange import ExchangeConfig
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from rtspglue.client import RtspClient
from rtspglue.errors import KeyMgmtFailure, RtspStatusError
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying, is_initiator_message
from rtspglue.keymgmt import KeyMgmtSpec
from rtspglue.media import RtpPacket, ToneSource, dominant_frequency
from rtspglue.message import TransportSpec
from rtspglue.server import (
    ConnectionInfo,
    MediaInfo,
    RtspServer,
    ServerConfig,
    SessionContext,
    TeardownReason,
)
from sdp.keymgmt import KeyMgmtAttr
from srtp import _libsrtp
from srtp.gsa import GsaRegistry
from tests.mikey.pair import EVERY_MODE, configs

TONE = 1000.0
REAL_MODES = EVERY_MODE


@dataclass
class Rig:
    server: RtspServer
    server_keying: MikeyServerKeying
    server_registry: GsaRegistry
    client_registry: GsaRegistry
    client_config: ExchangeConfig

    def client(self, **kw: object) -> tuple[RtspClient, MikeyClientKeying]:
        keying = MikeyClientKeying(self.client_config, registry=self.client_registry, **kw)  # type: ignore[arg-type]
        return RtspClient(self.server.url("tone"), keying=keying), keying


def _configs(mode: Mode, verify: bool, client_keys: bool) -> tuple[ExchangeConfig, ExchangeConfig]:
    """(server config, client config): the key provider is the MIKEY initiator."""
    init, resp = configs(mode, verify=verify)
    return (resp, init) if client_keys else (init, resp)


@pytest.fixture(autouse=True)
def _no_leaked_contexts() -> None:
    assert _libsrtp.live_sessions() == 0


@contextlib.asynccontextmanager
async def _rig(
    server_cfg: ExchangeConfig,
    client_cfg: ExchangeConfig,
    config: ServerConfig | None = None,
    **kw: object,
) -> AsyncIterator[Rig]:
    sreg, creg = GsaRegistry(), GsaRegistry()
    keying = MikeyServerKeying(server_cfg, registry=sreg, **kw)  # type: ignore[arg-type]
    async with RtspServer(
        {"/tone": lambda: ToneSource(TONE)}, config=config, keying=keying
    ) as server:
        yield Rig(server, keying, sreg, creg, client_cfg)
    assert sreg.audit().clean, sreg.audit()
    assert creg.audit().clean, creg.audit()
    assert keying.pending == 0


@pytest.fixture
async def psk_rig() -> AsyncIterator[Rig]:
    server_cfg, client_cfg = _configs(Mode.PSK, False, False)
    async with _rig(server_cfg, client_cfg) as rig:
        yield rig


async def _play_tone(client: RtspClient, keying: MikeyClientKeying, *, tcp: bool) -> None:
    await client.describe()
    await client.setup(interleaved=tcp)
    await client.play()
    samples = await asyncio.wait_for(client.wait_for_samples(4000), 10)
    assert dominant_frequency(samples[-2000:]) == pytest.approx(TONE, abs=2)
    assert keying.stats.decrypted == client.packets_received > 0
    assert keying.stats.rejected == 0


@pytest.mark.parametrize("client_keys", [False, True], ids=["server-keys", "client-keys"])
@pytest.mark.parametrize(
    ("mode", "verify"), REAL_MODES, ids=[f"{m.value}{'+v' * v}" for m, v in REAL_MODES]
)
async def test_every_real_mode_both_key_providers(
    mode: Mode, verify: bool, client_keys: bool
) -> None:
    server_cfg, client_cfg = _configs(mode, verify, client_keys)
    async with _rig(server_cfg, client_cfg, server_keys=not client_keys) as rig:
        client, keying = rig.client(client_keys=client_keys)
        async with client:
            await _play_tone(client, keying, tcp=mode is Mode.PSK)
            assert keying.side == ("client" if client_keys else "server")
            (session,) = rig.server.sessions.values()
            assert session.session_id in rig.server_registry
            gsa = rig.server_registry.get(session.session_id)
            assert set(gsa.outbound) == {session.ssrc}
            assert gsa.csb_id == keying.registration.csb_id  # type: ignore[union-attr]
            await client.teardown()
        assert keying.torn_down is not None
        assert rig.server_registry.audit().live_gsas == 0


async def test_describe_offers_our_ssrc_and_savp(psk_rig: Rig) -> None:
    client, _ = psk_rig.client()
    async with client:
        media = await client.describe()
        assert media.proto == "RTP/SAVP"
        (spec,) = media.key_mgmt
        msg = parse_message(spec.data)
        assert is_initiator_message(spec.data) and msg.header.cs_map[0].ssrc != 0  # type: ignore[union-attr]
        result = await client.setup()
        assert result.transport.ssrc == msg.header.cs_map[0].ssrc  # type: ignore[union-attr]
        await client.teardown()


class TamperingClient(MikeyClientKeying):
    """Flips one byte of whatever MIKEY message the client would send in SETUP."""

    def setup_key_mgmt(self, control: str, offered: tuple[KeyMgmtSpec, ...]) -> bytes | None:
        message = super().setup_key_mgmt(control, offered)
        assert message is not None
        return message[:-5] + bytes([message[-5] ^ 0x40]) + message[-4:]


@pytest.mark.parametrize(
    ("mode", "client_keys"),
    [(Mode.PSK, True), (Mode.DH, False), (Mode.DHHMAC, True), (Mode.RSA_R, False), (Mode.PK, True)],
)
async def test_tampered_keymgmt_gets_463_and_nothing_streams(mode: Mode, client_keys: bool) -> None:
    server_cfg, client_cfg = _configs(mode, False, client_keys)
    async with _rig(server_cfg, client_cfg) as rig:
        keying = TamperingClient(client_cfg, registry=rig.client_registry, client_keys=client_keys)
        async with RtspClient(rig.server.url("tone"), keying=keying) as client:
            with pytest.raises(RtspStatusError) as info:
                await client.setup(interleaved=True)
            assert info.value.status == 463
            assert not rig.server.sessions
            assert rig.server_registry.audit().live_gsas == 0
            assert rig.server_keying.refused == 1
            await asyncio.sleep(0.1)
            assert client.packets_received == 0
            keying.close()


async def test_forged_psk_message_gets_463() -> None:
    server_cfg, client_cfg = _configs(Mode.PSK, False, True)
    forged = replace(client_cfg, psk=StaticPskStore({"sip:bob@example.com": b"wrong key 16 byt"}))
    async with _rig(server_cfg, forged, server_keys=False) as rig:
        client, keying = rig.client(client_keys=True)
        async with client:
            with pytest.raises(RtspStatusError) as info:
                await client.setup()
            assert info.value.status == 463
            assert not rig.server.sessions
        keying.close()


async def test_client_refuses_unverifiable_server_keys_before_setup() -> None:
    server_cfg, client_cfg = _configs(Mode.PSK, False, False)
    other = replace(client_cfg, psk=StaticPskStore({"sip:alice@example.com": b"another key 16 b"}))
    async with _rig(server_cfg, other) as rig:
        client, keying = rig.client()
        async with client:
            await client.describe()
            with pytest.raises(KeyMgmtFailure):
                await client.setup()
            assert not rig.server.sessions  # SETUP never left the client
        keying.close()
        assert rig.server_keying.pending == 1  # the DESCRIBE exchange waits for a SETUP ...
        rig.server_keying.close()  # ... until shutdown (or pending_ttl) aborts it


async def test_mode_with_response_needs_setup_keymgmt() -> None:
    server_cfg, client_cfg = _configs(Mode.DH, False, False)

    class Silent(MikeyClientKeying):
        def setup_key_mgmt(self, control: str, offered: tuple[KeyMgmtSpec, ...]) -> bytes | None:
            super().setup_key_mgmt(control, offered)
            return None

    async with _rig(server_cfg, client_cfg) as rig:
        keying = Silent(client_cfg, registry=rig.client_registry)
        async with RtspClient(rig.server.url("tone"), keying=keying) as client:
            with pytest.raises(RtspStatusError) as info:
                await client.setup()
            assert info.value.status == 463
        keying.close()


class SeqRecorder(MikeyClientKeying):
    """Records the RTP sequence numbers the SRTP layer let through."""

    seqs: list[int]

    def unprotector(self, ssrc: int | None) -> Callable[[bytes], bytes]:
        inner = super().unprotector(ssrc)
        self.seqs = []

        def unprotect(packet: bytes) -> bytes:
            out = inner(packet)
            self.seqs.append(RtpPacket.parse(out).sequence)
            return out

        return unprotect


def _contiguous(seqs: list[int]) -> bool:
    return all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))


@pytest.mark.parametrize("gstreamer_style", [False, True], ids=["onvif-body", "keymgmt-body"])
async def test_set_parameter_rekey_mid_stream_loses_nothing(gstreamer_style: bool) -> None:
    server_cfg, client_cfg = _configs(Mode.PSK, False, True)
    async with _rig(server_cfg, client_cfg, server_keys=False) as rig:
        keying = SeqRecorder(client_cfg, registry=rig.client_registry, client_keys=True)
        async with RtspClient(rig.server.url("tone"), keying=keying) as client:
            await client.setup(interleaved=True)
            await client.play()
            await client.wait_for_samples(8 * 160)
            (session,) = rig.server.sessions.values()
            old_csb = rig.server_registry.get(session.session_id).csb_id
            for _ in range(2):
                await client.set_mikey(keying.rekey_message(), gstreamer_style=gstreamer_style)
                count = len(client.samples)
                await client.wait_for_samples(count + 8 * 160)
            # The old key is no longer accepted: what still decrypts uses the new key.
            rig.client_registry.finish_rekey(keying.key, 0.0)
            count = len(client.samples)
            await client.wait_for_samples(count + 8 * 160)
            gsa = rig.server_registry.get(session.session_id)
            assert gsa.csb_id == old_csb and gsa.rekey_sa is not None
            assert keying.stats.rekeys == 2 and keying.stats.rejected == 0
            assert client.packets_dropped == 0 and _contiguous(keying.seqs)
            assert dominant_frequency(client.samples[-2000:]) == pytest.approx(TONE, abs=2)
            await client.teardown()


async def test_set_parameter_with_foreign_csb_is_463(psk_rig: Rig) -> None:
    client, _ = psk_rig.client()
    async with client:
        await client.setup(interleaved=True)
        stranger = MikeyClientKeying(_configs(Mode.PSK, False, True)[1], client_keys=True)
        message = stranger.setup_key_mgmt("x", ())
        stranger.close()
        assert message is not None
        with pytest.raises(RtspStatusError) as info:
            await client.set_mikey(message)
        assert info.value.status == 463
        await client.teardown()


def _media(ssrc: int = 0x1234ABCD) -> MediaInfo:
    return MediaInfo("/tone", "rtsp://127.0.0.1/tone/stream=0", ssrc)


def _rtp(seq: int, ssrc: int, ts: int) -> bytes:
    return RtpPacket(0, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc, bytes(160)).encode()


def test_get_parameter_carries_current_roc_after_wraps() -> None:
    now = [1_780_000_000.0]
    server_cfg, client_cfg = _configs(Mode.PSK, False, False)
    sreg, creg = GsaRegistry(), GsaRegistry()
    server = MikeyServerKeying(server_cfg, registry=sreg, initial_roc=7, clock=lambda: now[0])
    client = MikeyClientKeying(client_cfg, registry=creg, clock=lambda: now[0])
    media = _media()
    value = server.describe_key_mgmt(ConnectionInfo(1, ("127.0.0.1", 5)), media)
    assert value is not None
    offer = KeyMgmtAttr.parse_value(value).message
    session = SessionContext(
        "s1", ConnectionInfo(1, ("127.0.0.1", 5)), media, TransportSpec("SAVP", "TCP", True)
    )
    answer = client.setup_key_mgmt(media.control, (KeyMgmtSpec("mikey", media.control, offer),))
    assert server.on_setup_key_mgmt(session, ()) is None and answer is None
    client.on_setup_reply((), media.ssrc)
    protect, unprotect = server.protector(session, media.ssrc), client.unprotector(media.ssrc)
    seq, sent = 65000, 0
    for _ in range(100):  # the 16-bit sequence number wraps twice
        assert (
            RtpPacket.parse(unprotect(protect(_rtp(seq, media.ssrc, sent * 160)))).sequence
            == seq & 0xFFFF
        )
        seq, sent = seq + 1000, sent + 1
    assert (seq - 1000) >> 16 == 2
    assert sreg.get("s1").outbound_stream(media.ssrc).roc == 9
    now[0] += 1
    message = server.on_get_parameter_mikey(session)
    cs = parse_message(message).header.cs_map[0]
    assert (cs.ssrc, cs.roc) == (media.ssrc, 9)  # type: ignore[union-attr]
    installed = client.accept_server_message(message)
    assert installed.data_sa[0].roc == 9
    creg.finish_rekey(client.key, now[0])  # the client drops the old key ...
    now[0] += 1  # ... and the server switches after switch_delay: every packet still decrypts
    for _ in range(70):
        assert (
            RtpPacket.parse(unprotect(protect(_rtp(seq, media.ssrc, sent * 160)))).sequence
            == seq & 0xFFFF
        )
        seq, sent = seq + 1000, sent + 1
    assert sreg.get("s1").outbound_stream(media.ssrc).roc == 7 + ((seq - 1000) >> 16)
    assert server.on_get_parameter_mikey(session)  # a second one while the switch is pending
    server.on_teardown(session, TeardownReason.TEARDOWN)
    client.on_teardown(TeardownReason.TEARDOWN)
    assert sreg.audit().clean and creg.audit().clean


async def test_get_parameter_over_rtsp_keeps_stream_decrypting(psk_rig: Rig) -> None:
    client, keying = psk_rig.client()
    async with client:
        await client.setup(interleaved=True)
        await client.play()
        await client.wait_for_samples(4 * 160)
        message = await client.get_mikey()
        (session,) = psk_rig.server.sessions.values()
        live_roc = psk_rig.server_registry.get(session.session_id).outbound_stream(session.ssrc).roc
        installed = keying.accept_server_message(message)
        assert installed.data_sa[0].roc == live_roc
        assert installed.registration.csb_id == keying.registration.csb_id  # type: ignore[union-attr]
        await asyncio.sleep(0.4)  # past the server's switch_delay
        psk_rig.client_registry.finish_rekey(keying.key, 0.0)
        count = len(client.samples)
        await client.wait_for_samples(count + 8 * 160)
        assert keying.stats.rejected == 0 and client.packets_dropped == 0
        await client.teardown()


async def test_get_parameter_in_dh_mode_is_463() -> None:
    server_cfg, client_cfg = _configs(Mode.DH, False, False)
    async with _rig(server_cfg, client_cfg) as rig:
        client, _ = rig.client()
        async with client:
            await client.setup()
            with pytest.raises(RtspStatusError) as info:
                await client.get_mikey()
            assert info.value.status == 463
            await client.teardown()


async def test_gstreamer_profile_between_our_server_and_client() -> None:
    psk = StaticPskStore({}, default=bytes(16))
    cfg = ExchangeConfig(psk=psk)
    async with _rig(cfg, cfg, allow_null_kemac=True) as rig:
        client, keying = rig.client(allow_null_kemac=True)
        async with client:
            await _play_tone(client, keying, tcp=True)
            (session,) = rig.server.sessions.values()
            # rtspsrc-style: our client keyed its own RTCP SSRC in SETUP; the server kept it.
            assert f"{session.session_id}#peer" in rig.server_registry
            assert keying.own_key in rig.client_registry
            await client.teardown()


def test_null_kemac_is_refused_by_default() -> None:
    gst_cfg = ExchangeConfig(psk=StaticPskStore({}, default=bytes(16)))
    server = MikeyServerKeying(gst_cfg, allow_null_kemac=True)
    value = server.describe_key_mgmt(ConnectionInfo(1, ("127.0.0.1", 5)), _media())
    assert value is not None
    offer = KeyMgmtAttr.parse_value(value).message
    client = MikeyClientKeying(gst_cfg)  # real modes only
    with pytest.raises(KeyMgmtFailure):
        client.setup_key_mgmt("x", (KeyMgmtSpec("mikey", "x", offer),))
    client.close()
    server.close()
    assert server.pending == 0


def test_pending_describe_exchanges_are_bounded() -> None:
    server_cfg, _ = _configs(Mode.PSK, False, False)
    server = MikeyServerKeying(server_cfg, max_pending=8)
    for conn in range(50):
        assert (
            server.describe_key_mgmt(ConnectionInfo(conn, ("127.0.0.1", 5)), _media()) is not None
        )
    assert server.pending == 8
    server.close()
    assert server.pending == 0 and server.registry.audit().clean


async def test_200_concurrent_keyed_sessions_audit_to_zero() -> None:
    # One anonymous PSK config serves both roles, so clients may provide keys or answer them.
    shared = ExchangeConfig(psk=StaticPskStore({}, default=bytes(range(16))))
    server_cfg, client_cfg = shared, shared  # each binder owns its endpoint
    # The idle timeout is 10x the longest planned pause before TEARDOWN, so a loaded machine
    # (200 clients on 2 cores, other suites running) cannot reap a session that is about to be
    # torn down; with 0.5 s one TEARDOWN met 454 in a clean-clone run.
    config = ServerConfig(max_sessions=256, session_timeout=2.0, reap_interval=0.05)
    rng = random.Random(4567)
    async with _rig(server_cfg, client_cfg, config=config) as rig:

        async def one(i: int) -> None:
            client, keying = rig.client(client_keys=i % 3 == 0)
            client.keepalive = False
            await client.connect()
            await client.setup(interleaved=rng.random() < 0.5)
            if i % 4 == 0:
                await client.play()
            await asyncio.sleep(rng.random() * 0.2)
            action = rng.choice(["teardown", "kill", "close", "timeout"])
            if action == "teardown":
                await client.teardown()
                await client.close()
            elif action == "kill":
                await client.abort()
            elif action == "timeout":
                await asyncio.sleep(2.5)  # the server reaps the idle session
                await client.abort()
            else:
                await client.close()
            assert keying.torn_down is not None

        await asyncio.gather(*(one(i) for i in range(200)))
        for _ in range(100):
            if not rig.server.sessions:
                break
            await asyncio.sleep(0.05)
        assert not rig.server.sessions
        assert rig.server_registry.audit().clean
        assert rig.client_registry.audit().clean
