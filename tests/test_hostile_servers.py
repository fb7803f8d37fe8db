"""Hostile clients against RtspServer and the SIP UserAgent over TCP on 127.0.0.1.

Oversized messages, slow-drip (slowloris) connections, RTSP session-id guessing and floods of
malformed bytes. The oracle after every attack is a legitimate client: it must still be served
(an RTSP OPTIONS answered 200, a real SIP INVITE confirmed), and the attacked state must be
unchanged (the victim's RTSP session still exists in its state, untouched by guessed ids).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator

import pytest

from rtspglue.client import RtspClient
from rtspglue.media import ToneSource
from rtspglue.server import RtspServer, ServerConfig, SessionState
from sipglue.transport import TcpTransport
from sipglue.ua import CallState, UserAgent
from tests.fuzz.__main__ import mutate
from tests.fuzz.harnesses import seeds
from tests.sipglue.helpers import Recorder, offer

pytestmark = pytest.mark.timeout(30)

_STATUS = re.compile(rb"^RTSP/1\.0 (\d{3}) ")
DRIP_CONNECTIONS = 8


# -- helpers -----------------------------------------------------------------------------------


async def _exchange(port: int, data: bytes, *, timeout: float = 3.0, responses: int = 1) -> bytes:
    """Send ``data`` on a fresh connection; read until ``responses`` bodiless RTSP answers,
    close or timeout."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        out = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            async with asyncio.timeout(timeout):
                while chunk := await reader.read(65536):
                    out += chunk
                    done = len(_statuses(out)) >= responses and out.endswith(b"\r\n\r\n")
                    if done and b"Content-Length" not in out:
                        break
        return out
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _statuses(reply: bytes) -> list[int]:
    return [int(m) for m in re.findall(rb"RTSP/1\.0 (\d{3}) ", reply)]


def _options(cseq: int = 1) -> bytes:
    return f"OPTIONS * RTSP/1.0\r\nCSeq: {cseq}\r\n\r\n".encode()


async def _rtsp_served(port: int) -> bool:
    return _statuses(await _exchange(port, _options())) == [200]


@contextlib.asynccontextmanager
async def _rtsp(config: ServerConfig | None = None) -> AsyncIterator[RtspServer]:
    async with RtspServer({"/tone": lambda: ToneSource(1000.0)}, config=config) as server:
        yield server


class Drip:
    """Slow-drip connections: each sends one byte of a never-finished request every 0.2 s."""

    def __init__(self, port: int, count: int, payload: bytes) -> None:
        self.port, self.count, self.payload = port, count, payload
        self.closed_by_server = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def _one(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            for byte in self.payload:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    if await asyncio.wait_for(reader.read(1024), 0.2) == b"":
                        self.closed_by_server += 1
                        return
        except ConnectionError:
            self.closed_by_server += 1
        finally:
            writer.close()

    async def __aenter__(self) -> Drip:
        self._tasks = [asyncio.create_task(self._one()) for _ in range(self.count)]
        await asyncio.sleep(0.3)  # every drip connection is accepted and has sent bytes
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- RTSP --------------------------------------------------------------------------------------


async def test_rtsp_oversized_header_and_body_refused_then_serves() -> None:
    async with _rtsp() as server:
        huge_header = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\nX-Pad: " + b"a" * 20000 + b"\r\n\r\n"
        many_lines = b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" + b"X: y\r\n" * 500 + b"\r\n"
        huge_body = b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 1\r\nContent-Length: 99999999\r\n\r\nxx"
        for attack in (huge_header, many_lines, huge_body):
            reply = await _exchange(server.port, attack)
            assert set(_statuses(reply)) <= {400, 413}, reply[:80]  # refused, or just closed
        assert server.malformed >= 3
        assert await _rtsp_served(server.port)
        assert server.sessions == {}


async def test_rtsp_connection_count_is_bounded() -> None:
    config = ServerConfig(max_connections=DRIP_CONNECTIONS)
    async with _rtsp(config) as server:
        async with Drip(server.port, DRIP_CONNECTIONS, b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n" * 10):
            reply = await _exchange(server.port, _options())
            assert _statuses(reply) == [503]  # refused at once, never queued behind the drips
        for _ in range(50):  # the drip connections are gone: capacity comes back
            if await _rtsp_served(server.port):
                break
            await asyncio.sleep(0.05)
        assert await _rtsp_served(server.port)


async def test_rtsp_slowloris_does_not_lock_out_clients() -> None:
    config = ServerConfig(max_connections=DRIP_CONNECTIONS)
    drip = b"OPTIONS * RTSP/1.0\r\nX: " + b"a" * 40
    async with _rtsp(config) as server, Drip(server.port, DRIP_CONNECTIONS, drip) as drips:
        assert _statuses(await _exchange(server.port, _options())) == [503]  # slots all taken
        served = False
        for _ in range(40):  # the drips never finish a message: the server must drop them
            if served := await _rtsp_served(server.port):
                break
            await asyncio.sleep(0.5)
        assert served
        assert drips.closed_by_server == DRIP_CONNECTIONS


async def _setup_session(server: RtspServer) -> tuple[RtspClient, str]:
    client = RtspClient(server.url("tone"))
    await client.__aenter__()
    await client.describe()
    await client.setup(interleaved=True)
    (session_id,) = server.sessions
    return client, session_id


async def test_rtsp_session_id_guessing_gets_454() -> None:
    async with _rtsp() as server:
        victim, session_id = await _setup_session(server)
        try:
            rng = random.Random(7)
            guesses = [rng.randbytes(rng.randint(1, 12)).hex() for _ in range(150)]
            guesses += [str(rng.randrange(10**9)) for _ in range(50)]
            guesses += [
                session_id[:-1],
                session_id + "0",
                session_id.upper()
                if session_id.upper() != session_id
                else session_id.lower() + "x",
                session_id[1:],
            ]
            guesses = [g for g in guesses if g.strip() and g != session_id]
            url = server.url("tone")
            requests = b"".join(
                f"{method} {url} RTSP/1.0\r\nCSeq: {i}\r\nSession: {g}\r\n\r\n".encode()
                for i, g in enumerate(guesses, 1)
                for method in ("PLAY", "TEARDOWN", "GET_PARAMETER", "PAUSE")
            )
            reply = await _exchange(server.port, requests, timeout=5.0, responses=4 * len(guesses))
            codes = _statuses(reply)
            assert len(codes) == 4 * len(guesses)
            assert set(codes) == {454}
            assert list(server.sessions) == [session_id]
            assert server.sessions[session_id].state is SessionState.READY
            # session ids are not guessable: long and distinct per session
            assert len(session_id) >= 8
            other, other_id = None, None
            other = RtspClient(server.url("tone"))
            async with other:
                await other.describe()
                await other.setup(interleaved=True)
                other_id = next(s for s in server.sessions if s != session_id)
                assert other_id != session_id and len(other_id) >= 8
                await other.teardown()
            await victim.play()
            assert server.sessions[session_id].state is SessionState.PLAYING
            await victim.teardown()
        finally:
            await victim.__aexit__(None, None, None)
        assert server.sessions == {}


async def test_rtsp_malformed_flood_survives() -> None:
    corpus = [data[1:] for _, data in seeds("rtsp_messages")]
    rng = random.Random(3)
    async with _rtsp() as server:
        attacks = [rng.randbytes(rng.randint(1, 3000)) for _ in range(40)]
        attacks += [mutate(rng.choice(corpus), corpus, rng) for _ in range(120)]
        attacks += [b"\x00" * 70000, b"$\x00\xff\xff" + b"x" * 10, b"\r\n" * 5000]

        async def attack(data: bytes) -> None:
            await _exchange(server.port, data, timeout=1.0)

        for start in range(0, len(attacks), 40):
            await asyncio.gather(*(attack(a) for a in attacks[start : start + 40]))
        assert server.malformed > 0
        assert await _rtsp_served(server.port)
        for _ in range(50):
            if not server.sessions:
                break
            await asyncio.sleep(0.05)
        assert server.sessions == {}  # nothing a flood set up is left behind


# -- SIP over TCP ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _sip_pair(transport: str = "tcp") -> AsyncIterator[tuple[UserAgent, UserAgent]]:
    from sipglue.transaction import TimerConfig

    fast = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
    uac = UserAgent(Recorder(), transport=transport, user="alice", timers=fast)
    uas = UserAgent(Recorder(), transport=transport, user="bob", timers=fast)
    await uac.listen()
    await uas.listen()
    try:
        yield uac, uas
    finally:
        await uac.close()
        await uas.close()


async def _sip_call_works(uac: UserAgent, uas: UserAgent) -> bool:
    suffix = ";transport=tcp" if uas.transport_name == "TCP" else ""
    call = await asyncio.wait_for(uac.invite(f"sip:bob@127.0.0.1:{uas.port}{suffix}", offer()), 10)
    ok = call.state == CallState.CONFIRMED
    remote = await asyncio.wait_for(uas.incoming.get(), 5)
    await asyncio.wait_for(remote.wait_confirmed(), 5)
    await call.bye()
    await asyncio.wait_for(remote.wait_terminated(), 5)
    return ok


def _sip_head(extra: str = "", body: bytes = b"", length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    return (
        "INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:1;branch=z9hG4bKx\r\nMax-Forwards: 70\r\n"
        "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: hostile@x\r\n"
        f"CSeq: 1 INVITE\r\n{extra}Content-Length: {size}\r\n\r\n"
    ).encode() + body


async def test_sip_oversized_messages_close_then_serves() -> None:
    async with _sip_pair() as (uac, uas):
        attacks = [
            _sip_head("X-Pad: " + "a" * 40000 + "\r\n"),
            _sip_head(length=10_000_000, body=b"v=0\r\n"),
            b"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n" + b"X: y\r\n" * 5000,
        ]
        for data in attacks:
            reply = await _exchange(uas.port, data)
            assert b"SIP/2.0 2" not in reply  # never accepted
        assert uas.calls == {}
        assert await _sip_call_works(uac, uas)


async def test_sip_connection_count_is_bounded() -> None:
    async with _sip_pair() as (uac, uas):
        assert isinstance(uas.transport, TcpTransport)
        uas.transport.max_connections = DRIP_CONNECTIONS
        async with Drip(uas.port, DRIP_CONNECTIONS, b"OPTIONS sip:x SIP/2.0\r\n" * 10):
            # an excess connection is closed at once rather than held
            assert await _exchange(uas.port, b"OPTIONS sip:x SIP/2.0\r\n", timeout=3) == b""
        for _ in range(50):
            if not uas.transport.connections:
                break
            await asyncio.sleep(0.05)
        assert await _sip_call_works(uac, uas)


async def test_sip_slowloris_does_not_lock_out_peers() -> None:
    async with _sip_pair() as (uac, uas):
        assert isinstance(uas.transport, TcpTransport)
        uas.transport.max_connections = DRIP_CONNECTIONS
        drip = b"INVITE sip:bob@h SIP/2.0\r\nX: " + b"a" * 40
        async with Drip(uas.port, DRIP_CONNECTIONS, drip) as drips:
            assert await _exchange(uas.port, b"OPTIONS sip:x SIP/2.0\r\n", timeout=3) == b""
            for _ in range(40):  # the drips never finish a message: the UA must drop them
                if drips.closed_by_server == DRIP_CONNECTIONS:
                    break
                await asyncio.sleep(0.5)
            assert drips.closed_by_server == DRIP_CONNECTIONS
            assert await _sip_call_works(uac, uas)


async def test_sip_malformed_flood_survives() -> None:
    corpus = [data for _, data in seeds("sip_message")]
    rng = random.Random(5)
    async with _sip_pair() as (uac, uas):
        attacks = [rng.randbytes(rng.randint(1, 2000)) for _ in range(30)]
        attacks += [mutate(rng.choice(corpus), corpus, rng) for _ in range(120)]
        attacks += [b"\r\n" * 20000, b"\x00" * 70000]
        for start in range(0, len(attacks), 30):
            await asyncio.gather(
                *(_exchange(uas.port, a, timeout=0.5) for a in attacks[start : start + 30])
            )
        assert isinstance(uas.transport, TcpTransport)
        for _ in range(100):  # every attacking connection is gone: nothing left behind
            if not uas.transport.connections:
                break
            await asyncio.sleep(0.05)
        assert uas.transport.connections == {}
        assert uas.calls == {}
        assert await _sip_call_works(uac, uas)


class _Blaster(asyncio.DatagramProtocol):
    pass


async def test_sip_udp_malformed_flood_survives() -> None:
    corpus = [data for _, data in seeds("sip_message")]
    rng = random.Random(6)
    async with _sip_pair("udp") as (uac, uas):
        loop = asyncio.get_running_loop()
        sock, _ = await loop.create_datagram_endpoint(_Blaster, remote_addr=("127.0.0.1", uas.port))
        try:
            for i in range(600):
                if i % 3 == 0:
                    sock.sendto(rng.randbytes(rng.randint(0, 1400)))
                else:
                    sock.sendto(mutate(rng.choice(corpus), corpus, rng)[:65000])
                if i % 50 == 0:
                    await asyncio.sleep(0.01)
        finally:
            sock.close()
        await asyncio.sleep(0.1)
        assert await _sip_call_works(uac, uas)
        # INVITEs the mutations left valid made calls whose 2xx nobody ACKs: they must end
        # (RFC 3261 §13.3.1.4, 64*T1) and be forgotten - nothing left behind.
        for _ in range(200):
            if not uas.calls:
                break
            await asyncio.sleep(0.05)
        assert uas.calls == {}
