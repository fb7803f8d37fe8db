"""Faults: lossy UDP, a TCP connection dropped mid-dialog, peers killed mid-exchange.

Oracles: the other side of each exchange (keys established on both ends, termination reasons),
the GSA registries' audits and the transaction tables, which must be empty once the RFC 3261
timers have run (every wait below is bounded in count and time; T1 is short).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Callable

from rtspglue.keying import MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.server import RtspServer, ServerConfig
from sipglue.errors import CallError
from sipglue.keying import MikeyCallKeying
from sipglue.transaction import TimerConfig
from sipglue.transport import LossyDatagramWrapper, Transport, UdpTransport
from sipglue.ua import Call, TerminationReason, UserAgent
from srtp.gsa import GsaRegistry
from tests.load.common import exchange_configs

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


async def until(check: Callable[[], bool], steps: int = 400, step: float = 0.05) -> bool:
    for _ in range(steps):
        if check():
            return True
        await asyncio.sleep(step)
    return check()


def side(
    config: object, transport: str, factory: Callable[[UdpTransport], Transport] | None = None
) -> tuple[UserAgent, MikeyCallKeying]:
    keying = MikeyCallKeying(config, registry=GsaRegistry())  # type: ignore[arg-type]
    ua = UserAgent(keying, transport=transport, timers=FAST, transport_factory=factory)
    return ua, keying


async def test_50_calls_over_udp_with_loss_reordering_duplication() -> None:
    init, resp = exchange_configs("psk", True)
    wrappers: list[LossyDatagramWrapper] = []

    def lossy(seed: int) -> Callable[[UdpTransport], Transport]:
        def make(inner: UdpTransport) -> Transport:
            wrappers.append(LossyDatagramWrapper(inner, seed=seed, loss=0.2))
            return wrappers[-1]

        return make

    uac, uac_keys = side(init, "udp", lossy(1))
    uas, uas_keys = side(resp, "udp", lossy(2))
    await uac.listen()
    await uas.listen()
    target = f"sip:bob@127.0.0.1:{uas.port}"
    slots = asyncio.Semaphore(10)
    outcomes: list[str] = []

    async def one() -> None:
        async with slots:
            try:
                call = await uac_keys.invite(uac, target)
            except CallError as exc:
                outcomes.append(f"failed-{exc.status_code}")
                return
            assert uac_keys.keys(call).key in uac_keys.registry
            await asyncio.sleep(0.05)
            with contextlib.suppress(CallError):
                await call.bye()
            outcomes.append("completed")

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(50))), 120)
        # every transaction ends by its timers, every call on both sides, every GSA torn down
        assert await until(
            lambda: not uas.calls and not uac.calls and not len(uas.transactions)
            and not len(uac.transactions),
            steps=600,
        ), (len(uas.calls), len(uas.transactions), len(uac.transactions))  # fmt: skip
        for keying in (uac_keys, uas_keys):
            audit = keying.registry.audit()
            assert audit.live_gsas == audit.unwiped_buffers == 0
        assert len(outcomes) == 50 and outcomes.count("completed") >= 40, outcomes
        assert all(w.dropped and w.duplicated and w.reordered for w in wrappers)
        print(f"\nFAULTS lossy-udp: {outcomes.count('completed')}/50 completed, "
              f"dropped {sum(w.dropped for w in wrappers)}, duplicated "
              f"{sum(w.duplicated for w in wrappers)}, reordered "
              f"{sum(w.reordered for w in wrappers)} of {sum(w.sent for w in wrappers)}")  # fmt: skip
    finally:
        for ua, keying in ((uac, uac_keys), (uas, uas_keys)):
            await ua.close()
            await keying.close()


async def test_tcp_connection_dropped_mid_dialog() -> None:
    init, resp = exchange_configs("psk", True)
    uac, uac_keys = side(init, "tcp")
    uas, uas_keys = side(resp, "tcp")
    await uac.listen()
    await uas.listen()
    try:
        call = await uac_keys.invite(uac, f"sip:bob@127.0.0.1:{uas.port};transport=tcp")
        answered = await asyncio.wait_for(uas.incoming.get(), 5)
        assert uac_keys.registry.audit().live_gsas == uas_keys.registry.audit().live_gsas == 1
        for conn in list(uac.transport.connections.values()):  # type: ignore[union-attr]
            assert conn.transport is not None
            conn.transport.abort()
        reasons = await asyncio.wait_for(
            asyncio.gather(call.wait_terminated(), answered.wait_terminated()), 10
        )
        assert list(reasons) == [TerminationReason.CONNECTION_LOST] * 2
        assert uac_keys.registry.audit().live_gsas == uas_keys.registry.audit().live_gsas == 0
    finally:
        for ua, keying in ((uac, uac_keys), (uas, uas_keys)):
            await ua.close()
            await keying.close()


def spawn_driver(protocol: str, port: int, *args: str) -> subprocess.Popen[bytes]:
    cmd = ["timeout", "-s", "KILL", "60", sys.executable, "-m", "tests.load.driver", protocol]
    cmd += ["--target", f"127.0.0.1:{port}", "--verify", "--calls", "1", *args]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the peer (the child of the ``timeout`` wrapper, by PID); the wrapper then exits."""
    children = f"/proc/{proc.pid}/task/{proc.pid}/children"
    with contextlib.suppress(OSError), open(children, encoding="ascii") as listing:
        for pid in listing.read().split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


async def _uas_with_peer_killed(transport: str, answer_delay: float) -> TerminationReason:
    _, resp = exchange_configs("psk", True)
    arrived = asyncio.Event()

    async def incoming(call: Call) -> int:
        arrived.set()
        await asyncio.sleep(answer_delay)
        return 200

    keying = MikeyCallKeying(resp, registry=GsaRegistry())
    uas = UserAgent(keying, transport=transport, timers=FAST, on_incoming=incoming)
    await uas.listen()
    proc = spawn_driver(
        "sip", uas.port, "--transport", transport, "--t1", "0.05", "--mix", "uac-bye=1",
        "--hold", "30", "30",
    )  # fmt: skip
    try:
        await asyncio.wait_for(arrived.wait(), 30)
        call = next(iter(uas.calls.values()))
        if answer_delay == 0:
            await asyncio.wait_for(call.wait_confirmed(), 10)
            assert call.id in keying.registry
        kill(proc)  # mid-exchange (before the ACK) or mid-call
        reason = await asyncio.wait_for(call.wait_terminated(), 30)
        assert await until(
            lambda: not len(uas.transactions) and not keying.registry.audit().live_gsas
        )
        audit = keying.registry.audit()
        assert audit.live_gsas == audit.unwiped_buffers == 0
        return reason
    finally:
        if proc.poll() is None:
            kill(proc)
        await uas.close()
        await keying.close()


async def test_udp_caller_killed_before_ack_uas_timers_finish() -> None:
    # answered after the kill: no ACK ever comes, 2xx retransmission gives up at 64*T1 and
    # the BYE ends by Timer F
    assert await _uas_with_peer_killed("udp", 1.0) == TerminationReason.TIMEOUT


async def test_tcp_caller_killed_mid_call() -> None:
    assert await _uas_with_peer_killed("tcp", 0) == TerminationReason.CONNECTION_LOST


async def test_rtsp_client_killed_mid_stream() -> None:
    init, _ = exchange_configs("psk", True)
    registry = GsaRegistry()
    keying = MikeyServerKeying(init, registry=registry)
    server = RtspServer({"/tone": lambda: ToneSource(1000.0)}, config=ServerConfig(), keying=keying)
    await server.start()
    proc = spawn_driver("rtsp", server.port, "--mix", "teardown=1", "--hold", "30", "30")
    try:
        assert await until(
            lambda: any(s.packets_sent > 20 for s in server.sessions.values()), steps=600
        )
        assert registry.audit().live_gsas == 1
        kill(proc)
        assert await until(lambda: not server.sessions and not registry.audit().live_gsas)
        audit = registry.audit()
        assert audit.live_gsas == audit.unwiped_buffers == 0
    finally:
        if proc.poll() is None:
            kill(proc)
        await server.close()
        keying.close()
