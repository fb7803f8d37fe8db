"""Our client against our server over UDP and TCP interleaved, hooks, limits, robustness."""

from __future__ import annotations

import asyncio
import base64
import itertools
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rtspglue.client import RtspClient
from rtspglue.errors import KeyMgmtFailure, RtspStatusError
from rtspglue.keymgmt import KeyMgmtSpec, format_keymgmt
from rtspglue.media import RtpPacket, ToneSource, dominant_frequency, pcmu_decode
from rtspglue.message import RtspParser, RtspResponse
from rtspglue.server import (
    ConnectionInfo,
    MediaInfo,
    RtspServer,
    ServerConfig,
    SessionContext,
    TeardownReason,
)
from sdp.keymgmt import KeyMgmtAttr

B64 = (
    "AQAFgBI0VngBAADerb7vAAAAAAsA6Tx/AIAAAAAKEAARIjNEVWZ3iJmqu8zd7v8BAAAAHgABAQEBEAIBAQMB"
    "FAQBDgUBAAcBAQgBAQoBAQsBCgABABQ7UKSixVSjpnBHJyoj/w59Y5u6PgGPZs7206886vFruTZZ2MBLA9/qwg=="
)
I_MESSAGE = base64.b64decode(B64)
R_MESSAGE = base64.b64decode("AQEFABI0VngBAADerb7vAAAAAAkA6Tx/AYAAAAAAAU776DKwAO8zOlwu1jHHrC5/ZE0X")


def _xor(key: int) -> Callable[[bytes], bytes]:
    """A reversible packet transform standing in for SRTP (keeps the 12-byte header)."""

    stream = random.Random(key).randbytes(2048)

    def apply(packet: bytes) -> bytes:
        return packet[:12] + bytes(b ^ k for b, k in zip(packet[12:], stream, strict=False))

    return apply


@dataclass
class ServerHook:
    """A ServerKeying that records what it was given (the server's side of the contract)."""

    refuse: bool = False
    setups: list[tuple[KeyMgmtSpec, ...]] = field(default_factory=list)
    rekeys: list[tuple[KeyMgmtSpec, ...]] = field(default_factory=list)
    teardowns: list[tuple[str, TeardownReason]] = field(default_factory=list)
    described: list[MediaInfo] = field(default_factory=list)

    def describe_key_mgmt(self, connection: ConnectionInfo, media: MediaInfo) -> str | None:
        self.described.append(media)
        return KeyMgmtAttr.from_message("mikey", I_MESSAGE).encode_value()

    def on_setup_key_mgmt(
        self, session: SessionContext, offers: tuple[KeyMgmtSpec, ...]
    ) -> str | None:
        self.setups.append(offers)
        if self.refuse or not offers or offers[0].data != R_MESSAGE:
            raise KeyMgmtFailure("bad R_MESSAGE")
        session.keying_state = "keyed"
        return format_keymgmt([KeyMgmtSpec("mikey", session.media.control, R_MESSAGE)])

    def on_set_parameter_mikey(
        self, session: SessionContext, specs: tuple[KeyMgmtSpec, ...]
    ) -> None:
        if specs[0].data != I_MESSAGE:
            raise KeyMgmtFailure("bad rekey")
        self.rekeys.append(specs)

    def on_get_parameter_mikey(self, session: SessionContext) -> bytes:
        return I_MESSAGE

    def protector(self, session: SessionContext, ssrc: int) -> Callable[[bytes], bytes]:
        assert session.keying_state == "keyed" and ssrc == session.ssrc
        return _xor(0x5A)

    def on_teardown(self, session: SessionContext, reason: TeardownReason) -> None:
        self.teardowns.append((session.session_id, reason))


@dataclass
class ClientHook:
    key: int = 0x5A
    offered: list[tuple[KeyMgmtSpec, ...]] = field(default_factory=list)
    replies: list[tuple[tuple[KeyMgmtSpec, ...], int | None]] = field(default_factory=list)
    teardowns: list[TeardownReason] = field(default_factory=list)

    def setup_key_mgmt(self, control: str, offered: tuple[KeyMgmtSpec, ...]) -> bytes | None:
        self.offered.append(offered)
        return R_MESSAGE if offered and offered[0].data == I_MESSAGE else None

    def on_setup_reply(self, keymgmt: tuple[KeyMgmtSpec, ...], ssrc: int | None) -> None:
        self.replies.append((keymgmt, ssrc))

    def unprotector(self, ssrc: int | None) -> Callable[[bytes], bytes]:
        return _xor(self.key)

    def on_teardown(self, reason: TeardownReason) -> None:
        self.teardowns.append(reason)


@pytest.fixture
async def server() -> AsyncIterator[RtspServer]:
    sources = {"/tone": lambda: ToneSource(700), "/hi": lambda: ToneSource(1300)}
    async with RtspServer(sources, config=ServerConfig(max_sessions=256)) as srv:
        yield srv


async def _until(predicate: Callable[[], bool], bound: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)

    await asyncio.wait_for(loop(), bound)


@pytest.mark.parametrize(("path", "freq", "tcp"), [("tone", 700, False), ("hi", 1300, True)])
async def test_tone_arrives_with_its_frequency(
    server: RtspServer, path: str, freq: int, tcp: bool
) -> None:
    async with RtspClient(server.url(path)) as client:
        assert "SETUP" in await client.options()
        media = await client.describe()
        assert media.proto == "RTP/AVP" and media.formats == ("0",) and media.key_mgmt == ()
        result = await client.setup(interleaved=tcp)
        assert result.transport.ssrc is not None
        assert (result.transport.interleaved is not None) == tcp
        assert len(result.session_id) == 24 and result.timeout == 60
        await client.play()
        samples = await asyncio.wait_for(client.wait_for_samples(4000), 10)
        assert dominant_frequency(samples[:4000]) == pytest.approx(freq, abs=2)
        assert client.packets_dropped == 0
        assert list(server.sessions) == [result.session_id]
        await client.pause()
        await client.get_parameter()
        await client.teardown()
        assert client.teardown_reason is TeardownReason.TEARDOWN
    assert server.sessions == {}


async def test_keying_hooks_full_cycle() -> None:
    hook = ServerHook()
    async with RtspServer({"/tone": lambda: ToneSource(900)}, keying=hook) as srv:
        chook = ClientHook()
        async with RtspClient(srv.url("tone"), keying=chook) as client:
            media = await client.describe()
            assert media.proto == "RTP/SAVP"
            assert media.key_mgmt == (KeyMgmtSpec("mikey", media.control, I_MESSAGE),)
            result = await client.setup()
            assert hook.setups == [(KeyMgmtSpec("mikey", media.control, R_MESSAGE),)]
            assert hook.described[0].ssrc == result.transport.ssrc  # DESCRIBE's SSRC is used
            assert chook.replies == [(result.keymgmt, result.transport.ssrc)]
            assert result.keymgmt[0].data == R_MESSAGE
            await client.play()
            samples = await asyncio.wait_for(client.wait_for_samples(4000), 10)
            assert dominant_frequency(samples[:4000]) == pytest.approx(900, abs=2)
            assert await client.get_mikey() == I_MESSAGE
            await client.set_mikey(I_MESSAGE)
            await client.set_mikey(I_MESSAGE, gstreamer_style=True)
            assert [r[0].uri for r in hook.rekeys] == ["", media.control]
            with pytest.raises(RtspStatusError) as info:
                await client.set_mikey(R_MESSAGE)
            assert info.value.status == 463
            with pytest.raises(RtspStatusError) as info:
                await client.set_parameter(b"mikey: not-base64\r\n")
            assert info.value.status == 463
            await client.teardown()
        assert hook.teardowns == [(result.session_id, TeardownReason.TEARDOWN)]
        assert chook.teardowns == [TeardownReason.TEARDOWN]


async def test_protector_is_applied_to_every_packet() -> None:
    hook = ServerHook()
    wire: list[bytes] = []

    @dataclass
    class Tap(ClientHook):
        def unprotector(self, ssrc: int | None) -> Callable[[bytes], bytes]:
            def tap(packet: bytes) -> bytes:
                wire.append(packet)
                return packet

            return tap

    async with (
        RtspServer({"/tone": lambda: ToneSource(900)}, keying=hook) as srv,
        RtspClient(srv.url("tone"), keying=Tap()) as client,
    ):
        await client.setup(interleaved=True)
        await client.play()
        await asyncio.wait_for(client.wait_for_samples(4000), 10)
    unprotect = _xor(0x5A)
    plain = [RtpPacket.parse(unprotect(p)) for p in wire]
    assert all(RtpPacket.parse(p).payload != q.payload for p, q in zip(wire, plain, strict=True))
    samples = [s for q in plain for s in pcmu_decode(q.payload)]
    assert dominant_frequency(samples[:4000]) == pytest.approx(900, abs=2)


async def test_keymgmt_failure_is_463_and_leaves_no_session() -> None:
    hook = ServerHook(refuse=True)
    async with (
        RtspServer({"/tone": lambda: ToneSource(900)}, keying=hook) as srv,
        RtspClient(srv.url("tone"), keying=ClientHook()) as client,
    ):
        with pytest.raises(RtspStatusError) as info:
            await client.setup()
        assert (info.value.status, info.value.reason) == (463, "Key Management Failure")
        assert srv.sessions == {}
        assert [r for _, r in hook.teardowns] == [TeardownReason.KEYING_FAILED]


async def test_plain_transport_refused_by_keyed_server_and_vice_versa(server: RtspServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    req = (
        f"SETUP {server.url('tone')}/stream=0 RTSP/1.0\r\nCSeq: 1\r\n"
        "Transport: RTP/SAVP;unicast;client_port=5000-5001\r\n\r\n"
    )
    writer.write(req.encode())
    (resp,) = RtspParser().feed(await reader.readuntil(b"\r\n\r\n"))
    assert isinstance(resp, RtspResponse) and resp.status == 461
    writer.close()


@dataclass
class _Raw:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    parser: RtspParser = field(default_factory=RtspParser)

    async def ask(self, data: bytes) -> RtspResponse | None:
        self.writer.write(data)
        while True:
            chunk = await asyncio.wait_for(self.reader.read(4096), 5)
            if not chunk:
                return None
            for msg in self.parser.feed(chunk):
                if isinstance(msg, RtspResponse):
                    return msg


async def test_malformed_requests_get_4xx_and_server_survives(server: RtspServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    raw = _Raw(reader, writer)
    url = server.url("tone")
    cases = [
        (b"OPTIONS * RTSP/1.0\r\n\r\n", 400),  # no CSeq
        (b"FOO * RTSP/1.0\r\nCSeq: 2\r\n\r\n", 501),
        (b"OPTIONS * RTSP/2.0\r\nCSeq: 3\r\n\r\n", 505),
        (f"DESCRIBE {url}x RTSP/1.0\r\nCSeq: 4\r\n\r\n".encode(), 404),
        (f"PLAY {url} RTSP/1.0\r\nCSeq: 5\r\nSession: nope\r\n\r\n".encode(), 454),
        (f"PLAY {url} RTSP/1.0\r\nCSeq: 6\r\nSession: bad id\r\n\r\n".encode(), 400),
        (f"SETUP {url} RTSP/1.0\r\nCSeq: 7\r\nTransport: junk\r\n\r\n".encode(), 461),
        (f"SETUP {url} RTSP/1.0\r\nCSeq: 8\r\nTransport: RTP/AVP;unicast\r\n\r\n".encode(), 461),
        (
            f"GET_PARAMETER {url} RTSP/1.0\r\nCSeq: 9\r\nContent-Length: 6\r\n\r\nmikey\n".encode(),
            451,
        ),
        (f"OPTIONS {url} RTSP/1.0\r\nCSeq: 10\r\nRequire: x\r\n\r\n".encode(), 551),
    ]
    for data, status in cases:
        resp = await raw.ask(data)
        assert resp is not None and resp.status == status, data
    resp = await raw.ask(b"\x00\x01garbage\r\n\r\n")
    assert resp is not None and resp.status == 400
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed after a framing error
    writer.close()
    async with RtspClient(url) as client:
        assert await client.options()
    assert server.malformed >= 3


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(min_size=1, max_size=300))
async def test_fuzz_server_never_crashes(server: RtspServer, data: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(data + b"\r\n\r\n")
    writer.write_eof()
    await asyncio.wait_for(reader.read(), 5)
    writer.close()
    async with RtspClient(server.url("tone")) as client:
        assert await client.options()


async def test_max_sessions_and_shutdown() -> None:
    hook = ServerHook()
    config = ServerConfig(max_sessions=2)
    srv = RtspServer({"/tone": lambda: ToneSource(900)}, config=config, keying=hook)
    await srv.start()
    clients = [RtspClient(srv.url("tone"), keying=ClientHook()) for _ in range(3)]
    for c in clients:
        await c.connect()
    ids = [(await c.setup()).session_id for c in clients[:2]]
    with pytest.raises(RtspStatusError) as info:
        await clients[2].setup()
    assert info.value.status == 503
    await srv.close()
    assert sorted(hook.teardowns) == sorted((i, TeardownReason.SHUTDOWN) for i in ids)
    for c in clients:
        await c.close()


async def test_200_concurrent_sessions_leave_none() -> None:
    hook = ServerHook()
    config = ServerConfig(max_sessions=256)
    rng = random.Random(4567)
    async with RtspServer({"/tone": lambda: ToneSource(900)}, config=config, keying=hook) as srv:

        async def one(i: int) -> str:
            client = RtspClient(srv.url("tone"), keying=ClientHook(), keepalive=False)
            await client.connect()
            result = await client.setup(interleaved=rng.random() < 0.5)
            if i % 8 == 0:
                await client.play()
            await asyncio.sleep(rng.random() * 0.2)
            action = rng.choice(["teardown", "abort", "close"])
            if action == "teardown":
                await client.teardown()
                await client.close()
            elif action == "abort":
                await client.abort()
            else:
                await client.close()
            assert client.teardown_reason is not None
            return result.session_id

        ids = await asyncio.gather(*(one(i) for i in range(200)))
        assert len(set(ids)) == 200
        await _until(lambda: not srv.sessions)
        assert sorted(i for i, _ in hook.teardowns) == sorted(ids)  # exactly once each
        assert {r for _, r in hook.teardowns} <= {
            TeardownReason.TEARDOWN,
            TeardownReason.CONNECTION_LOST,
        }


async def test_rtp_on_the_wire_is_pcmu(server: RtspServer) -> None:
    async with RtspClient(server.url("tone")) as client:
        await client.setup(interleaved=True)
        seen: list[RtpPacket] = []
        original = client._receive_rtp

        def spy(data: bytes) -> None:
            seen.append(RtpPacket.parse(data))
            original(data)

        client._receive_rtp = spy  # type: ignore[method-assign]
        await client.play()
        await asyncio.wait_for(client.wait_for_samples(1600), 10)
        assert all(p.payload_type == 0 and len(p.payload) == 160 for p in seen)
        seqs = [p.sequence for p in seen]
        assert all((b - a) & 0xFFFF == 1 for a, b in itertools.pairwise(seqs))
        stamps = [p.timestamp for p in seen]
        assert all((b - a) & 0xFFFFFFFF == 160 for a, b in itertools.pairwise(stamps))
