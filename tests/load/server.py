"""The system under test for the load and fault tests, run as its own process.

``python -m tests.load.server sip|rtsp [options]`` starts a MIKEY-keyed SIP UAS (PSK, PSK+V, ...)
or an RTSP server with :class:`~rtspglue.keying.MikeyServerKeying` on 127.0.0.1 and prints one
JSON line ``{"event": "listening", "port": N}``. It is then driven over stdin, one command a line:

``stats [WAIT]``
    wait up to WAIT seconds until nothing is live (no call or session, no transaction, no GSA,
    no pending exchange), then print ``{"event": "stats", ...}``: the GSA audit, live libsrtp
    contexts, RSS (VmRSS after ``gc.collect()``), live/peak counts and how calls/sessions ended.
``quit`` (or end of input, or SIGTERM)
    close everything and print the same figures as ``{"event": "closed", ...}``.

The SIP UAS honours a driver-controlled header ``X-Load-Action`` on the INVITE (comma-separated):
``delay=S`` answers after S seconds (the caller may CANCEL meanwhile), ``uas-bye=S`` hangs up
S seconds after the ACK, ``reject=CODE`` refuses with CODE. Every confirmed call is hung up after
``--max-call`` seconds, which is how a caller that vanished is finally cleaned up (its BYE then
ends by Timer F on UDP; on TCP the lost connection ends the call at once).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from rtspglue.keying import MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.server import RtspServer, ServerConfig, SessionContext, TeardownReason
from sipglue.errors import SipError
from sipglue.keying import MikeyCallKeying
from sipglue.transaction import TimerConfig
from sipglue.ua import Call, UserAgent
from srtp.gsa import GsaRegistry

from .common import audit_figures, emit, exchange_configs, rss_kib

ACTION_HEADER = "X-Load-Action"


def parse_action(value: str | None) -> dict[str, float]:
    """``"delay=0.5,uas-bye=1"`` -> ``{"delay": 0.5, "uas-bye": 1.0}`` (bad items ignored)."""
    out: dict[str, float] = {}
    for item in (value or "").split(","):
        name, _, number = item.strip().partition("=")
        with contextlib.suppress(ValueError):
            out[name] = float(number)
    return out


class SipSut:
    """A keyed UAS answering every call, with the load actions above."""

    def __init__(self, args: argparse.Namespace) -> None:
        _, responder = exchange_configs(args.mode, args.verify)
        self.registry = GsaRegistry()
        self.keying = MikeyCallKeying(responder, registry=self.registry)
        self.ua = UserAgent(
            self.keying,
            transport=args.transport,
            user="load",
            on_incoming=self._incoming,
            timers=TimerConfig(t1=args.t1, t2=max(args.t1 * 8, 0.4), t4=max(args.t1 * 10, 0.5)),
            max_transactions=args.max_transactions,
            max_calls=args.max_calls,
        )
        self.max_call = args.max_call
        self.supervisors: set[asyncio.Task[None]] = set()
        self.ended: Counter[str] = Counter()
        self.offered = 0
        self.peak_keyed = 0
        self.events = 0

    async def start(self) -> int:
        return (await self.ua.listen())[1]

    async def _incoming(self, call: Call) -> int:
        self.offered += 1
        action = parse_action(call.invite.get(ACTION_HEADER))
        task = asyncio.ensure_future(self._supervise(call, action))
        self.supervisors.add(task)
        task.add_done_callback(self.supervisors.discard)
        if "reject" in action:
            return int(action["reject"])
        if "delay" in action:
            await asyncio.sleep(action["delay"])
        return 200

    async def _supervise(self, call: Call, action: dict[str, float]) -> None:
        # Every wait is bounded by the UA's own timers; the outer bound only guards a bug.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drive(call, action), 600)
        self.ended[call.reason.name if call.reason else "UNFINISHED"] += 1

    async def _drive(self, call: Call, action: dict[str, float]) -> None:
        await call.wait_confirmed()
        self.figures()  # drain the event queues as calls come and go
        self.peak_keyed = max(self.peak_keyed, len(self.keying.calls))
        if call.ended:
            return
        hold = min(action.get("uas-bye", self.max_call), self.max_call)
        try:
            await asyncio.wait_for(asyncio.shield(call.wait_terminated()), hold)
        except TimeoutError:
            with contextlib.suppress(SipError):
                await call.bye()
        await call.wait_terminated()

    def live(self) -> dict[str, int]:
        return {
            "calls": len(self.ua.calls),
            "transactions": len(self.ua.transactions),
            "keyed": len(self.keying.calls),
            "pending": self.keying.pending,
            "supervisors": len(self.supervisors),
        }

    def figures(self) -> dict[str, Any]:
        # an application drains its event queues (here: counts them); both queue until drained
        self.events += len(self.keying.drain_events()) + len(self.registry.drain_events())
        return {
            "events": self.events,
            "replay_entries": len(self.keying.endpoint.replay),
            "csb_entries": len(self.keying.endpoint.csbs),
            "offered": self.offered,
            "peak_keyed": self.peak_keyed,
            "ended": dict(self.ended),
            "refused": self.keying.refused,
        }

    async def close(self) -> None:
        await self.ua.close()
        await self.keying.close()
        for task in list(self.supervisors):
            task.cancel()


class _CountingKeying(MikeyServerKeying):
    """Server keying that also counts how sessions ended."""

    ended: Counter[str]
    peak: int = 0

    def on_teardown(self, session: SessionContext, reason: TeardownReason) -> None:
        self.ended[reason.name] += 1
        super().on_teardown(session, reason)


class RtspSut:
    """An RTSP server streaming a keyed tone (server-provided keys; client re-keys accepted)."""

    def __init__(self, args: argparse.Namespace) -> None:
        initiator, _ = exchange_configs(args.mode, args.verify)
        self.registry = GsaRegistry()
        self.keying = _CountingKeying(initiator, registry=self.registry, pending_ttl=args.max_call)
        self.keying.ended = Counter()
        config = ServerConfig(
            session_timeout=args.session_timeout,
            max_sessions=args.max_calls,
            max_connections=args.max_calls,
            idle_timeout=args.max_call,
        )
        self.server = RtspServer(
            {"/tone": lambda: ToneSource(1000.0)}, config=config, keying=self.keying
        )
        self.peak = 0
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> int:
        await self.server.start()
        self._watch = asyncio.ensure_future(self._peak())
        return self.server.port

    async def _peak(self) -> None:
        while True:
            self.peak = max(self.peak, len(self.server._sessions))
            await asyncio.sleep(0.05)

    def live(self) -> dict[str, int]:
        # DESCRIBE exchanges whose client never sent SETUP are aborted after pending_ttl (the
        # next DESCRIBE or SETUP expires them); they hold no GSA.
        self.keying._expire_pending(time.time())
        return {
            "sessions": len(self.server._sessions),
            "connections": len(self.server._conns),
            "pending": self.keying.pending,
        }

    def figures(self) -> dict[str, Any]:
        return {"peak_sessions": self.peak, "ended": dict(self.keying.ended)}

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self.server.close()
        self.keying.close()


Sut = SipSut | RtspSut


def snapshot(sut: Sut, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "rss_kib": rss_kib(),
        **audit_figures(sut.registry),
        **sut.live(),
        **sut.figures(),
    }


async def wait_quiet(sut: Sut, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if not any(sut.live().values()) and not sut.registry.audit().live_gsas:
            return
        await asyncio.sleep(0.1)


async def serve(sut: Sut) -> None:
    port = await sut.start()
    emit({"event": "listening", "port": port, "rss_kib": rss_kib()})
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    stopping = asyncio.ensure_future(stop.wait())
    while True:
        line_task = asyncio.ensure_future(reader.readline())
        await asyncio.wait({line_task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not line_task.done():
            line_task.cancel()
            break
        words = line_task.result().decode("ascii", "replace").split()
        if not words or words[0] == "quit":
            break
        if words[0] == "stats":
            with contextlib.suppress(ValueError, IndexError):
                await wait_quiet(sut, float(words[1]))
            emit(snapshot(sut, "stats"))
    await sut.close()
    emit(snapshot(sut, "closed"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load.server")
    parser.add_argument("protocol", choices=["sip", "rtsp"])
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    parser.add_argument("--mode", default="psk")
    parser.add_argument("--verify", action="store_true", help="MIKEY V (verification message)")
    parser.add_argument("--t1", type=float, default=0.2, help="SIP T1 (s)")
    parser.add_argument("--max-call", type=float, default=8.0, help="hang up after (s)")
    parser.add_argument("--session-timeout", type=float, default=2.0, help="RTSP (s)")
    parser.add_argument("--max-calls", type=int, default=4096)
    parser.add_argument("--max-transactions", type=int, default=16384)
    args = parser.parse_args(argv)
    factory: Callable[[argparse.Namespace], Sut] = SipSut if args.protocol == "sip" else RtspSut
    asyncio.run(serve(factory(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
