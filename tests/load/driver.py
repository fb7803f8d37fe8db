"""The load driver: many keyed SIP calls or RTSP sessions against a SUT in another process.

``python -m tests.load.driver sip|rtsp --target HOST:PORT --calls N --concurrency C --seed S``
runs N calls (sessions), at most C at once and started at most ``--rate`` per second, each with
an action drawn from a seeded RNG, and prints one JSON summary line: what was placed, how each
call ended (``outcomes``), calls whose ending was not the one its action implies (``unexpected``),
the peak of concurrently established calls, elapsed time, and the driver's own GSA audit.

SIP actions (the SUT honours ``X-Load-Action``, see :mod:`tests.load.server`):
``uac-bye`` hang up; ``uas-bye`` the SUT hangs up; ``cancel`` CANCEL while the SUT delays its
answer; ``no-ack`` never ACK the 2xx (the SUT's 2xx retransmission gives up at 64*T1 and it
BYEs); ``vanish`` a caller on its own socket closes it mid-call without BYE; ``vanish-early`` the
same while the INVITE is still pending; ``reject`` the SUT answers 486.

RTSP actions: ``teardown``; ``kill`` (connection aborted, no TEARDOWN); ``silent`` (no
keep-alives: the server's session timeout ends it, checked with a 454 afterwards); ``rekey``
(client re-key by SET_PARAMETER mid-stream); ``server-rekey`` (GET_PARAMETER ``mikey``). Every
session first decrypts the server's SRTP tone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

from rtspglue.client import RtspClient
from rtspglue.errors import RtspError, RtspStatusError
from rtspglue.keying import MikeyClientKeying
from sipglue.errors import CallError, SipError
from sipglue.keying import LocalMedia, MikeyCallKeying
from sipglue.transaction import TimerConfig
from sipglue.ua import Call, TerminationReason, UserAgent
from srtp.gsa import GsaRegistry

from .common import audit_figures, emit, exchange_configs, rss_kib
from .server import ACTION_HEADER

SIP_MIX = {
    "uac-bye": 40,
    "uas-bye": 15,
    "cancel": 10,
    "no-ack": 10,
    "vanish": 10,
    "vanish-early": 10,
    "reject": 5,
}
RTSP_MIX = {"teardown": 40, "kill": 20, "silent": 15, "rekey": 15, "server-rekey": 10}


def parse_mix(text: str | None, default: dict[str, int]) -> dict[str, int]:
    """``"uac-bye=3,cancel=1"`` -> weights; empty -> the default mix."""
    if not text:
        return dict(default)
    mix = {}
    for item in text.split(","):
        name, _, weight = item.partition("=")
        if name not in default:
            raise SystemExit(f"unknown action {name!r}")
        mix[name] = int(weight or "1")
    return mix


class Outcomes:
    """Per-call results; ``unexpected`` keeps a few details for the report."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.unexpected: list[str] = []
        self.live = 0
        self.peak = 0

    def up(self) -> None:
        self.live += 1
        self.peak = max(self.peak, self.live)

    def down(self) -> None:
        self.live -= 1

    def record(self, action: str, outcome: str, expected: set[str]) -> None:
        self.counts[f"{action}:{outcome}"] += 1
        if outcome not in expected:
            self.counts["unexpected"] += 1
            if len(self.unexpected) < 20:
                self.unexpected.append(f"{action}:{outcome}")


async def run_all(
    count: int,
    concurrency: int,
    rate: float,
    job: Callable[[int], Awaitable[None]],
    deadline: float,
) -> int:
    """Start ``count`` jobs (at most ``concurrency`` at once, ``rate`` per second); returns how
    many did not finish before ``deadline`` seconds (they are cancelled)."""
    slots = asyncio.Semaphore(concurrency)
    tasks: list[asyncio.Task[None]] = []

    async def guarded(i: int) -> None:
        try:
            await job(i)
        finally:
            slots.release()

    start = time.monotonic()
    for i in range(count):
        await slots.acquire()
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(guarded(i)))
    _, pending = await asyncio.wait(tasks, timeout=max(1.0, deadline - (time.monotonic() - start)))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    return len(pending)


# -- SIP ---------------------------------------------------------------------------------------


class DriverUA(UserAgent):
    """A UAC that can be told (by the call's load action) not to ACK a 2xx."""

    async def _ack_2xx(self, call: Call) -> None:
        if "no-ack" in (call.invite.get(ACTION_HEADER) or ""):
            return
        await super()._ack_2xx(call)


class SipDriver:
    def __init__(self, args: argparse.Namespace) -> None:
        initiator, _ = exchange_configs(args.mode, args.verify)
        self.args = args
        self.registry = GsaRegistry()
        self.keying = MikeyCallKeying(initiator, registry=self.registry)
        self.timers = TimerConfig(t1=args.t1, t2=max(args.t1 * 8, 0.4), t4=max(args.t1 * 10, 0.5))
        self.ua = self._ua()
        host, port = args.target.rsplit(":", 1)
        suffix = ";transport=tcp" if args.transport == "tcp" else ""
        self.target = f"sip:load@{host}:{port}{suffix}"
        self.results = Outcomes()
        self.rng = random.Random(args.seed)
        self.mix = parse_mix(args.mix, SIP_MIX)
        self.hold = args.hold

    def _ua(self) -> DriverUA:
        return DriverUA(
            self.keying,
            transport=self.args.transport,
            user="driver",
            timers=self.timers,
            max_calls=8192,
            max_transactions=32768,
        )

    async def start(self) -> None:
        await self.ua.listen()

    async def close(self) -> None:
        await self.ua.close()
        await self.keying.close()

    def _offer(self) -> Any:
        return self.keying.offer(LocalMedia("127.0.0.1", 9, self.keying.new_ssrc()))

    async def _invite(self, ua: UserAgent, action: str) -> Call:
        return await ua.invite(self.target, self._offer(), headers=[(ACTION_HEADER, action)])

    def _keyed(self, call: Call) -> bool:
        try:
            keys = self.keying.keys(call)
        except SipError:
            return False
        return keys.key in self.registry

    async def call(self, i: int) -> None:
        action = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        hold = self.rng.uniform(*self.hold)
        try:
            outcome, expected = await getattr(self, "_" + action.replace("-", "_"))(hold)
        except CallError as exc:
            outcome, expected = f"error-{exc.status_code}", set()
        self.results.record(action, outcome, expected)

    async def _established(self, call: Call, hold: float, bye: bool) -> str:
        if not self._keyed(call):
            return "not-keyed"
        self.results.up()
        try:
            if bye:
                await asyncio.sleep(hold)
                await call.bye()
            reason = await asyncio.wait_for(call.wait_terminated(), 120)
        finally:
            self.results.down()
        return reason.name.lower()

    async def _uac_bye(self, hold: float) -> tuple[str, set[str]]:
        call = await self._invite(self.ua, "uac-bye")
        return await self._established(call, hold, True), {"local_bye"}

    async def _uas_bye(self, hold: float) -> tuple[str, set[str]]:
        call = await self._invite(self.ua, f"uas-bye={hold:.3f}")
        return await self._established(call, hold, False), {"remote_bye"}

    async def _no_ack(self, hold: float) -> tuple[str, set[str]]:
        call = await self._invite(self.ua, "no-ack")
        return await self._established(call, hold, False), {"remote_bye"}

    async def _reject(self, hold: float) -> tuple[str, set[str]]:
        try:
            call = await self._invite(self.ua, "reject=486")
        except CallError as exc:
            return f"status-{exc.status_code}", {"status-486"}
        await call.bye()
        return "answered", set()

    async def _cancel(self, hold: float) -> tuple[str, set[str]]:
        offer = self._offer()
        task = asyncio.ensure_future(
            self.ua.invite(self.target, offer, headers=[(ACTION_HEADER, "delay=2")])
        )
        await asyncio.sleep(min(hold, 0.3))
        call = next((c for c in self.ua.calls.values() if c.local_sdp is offer), None)
        if call is not None:
            await call.cancel()
        try:
            answered = await task
        except CallError as exc:
            if call is not None and call.reason is TerminationReason.LOCAL_BYE:
                # the CANCEL crossed the 2xx: the UA BYEs the answered call (RFC 3261 §9.1)
                return "crossed-bye", {"crossed-bye"}
            return f"status-{exc.status_code}", {"status-487"}
        await answered.bye()
        return "answered", set()

    async def _vanish(self, hold: float) -> tuple[str, set[str]]:
        ua = self._ua()
        await ua.listen()
        try:
            call = await self._invite(ua, "vanish")
            if not self._keyed(call):
                return "not-keyed", set()
            self.results.up()
            await asyncio.sleep(min(hold, 1.0))
            self.results.down()
        finally:
            await ua.close()  # no BYE: the socket (connection) just goes away
        return (call.reason.name.lower() if call.reason else "open"), {"shutdown"}

    async def _vanish_early(self, hold: float) -> tuple[str, set[str]]:
        ua = self._ua()
        await ua.listen()
        task = asyncio.ensure_future(self._invite(ua, "delay=0.5"))
        await asyncio.sleep(0.1)
        task.cancel()
        await ua.close()
        results = await asyncio.gather(task, return_exceptions=True)
        if isinstance(results[0], asyncio.CancelledError):
            return "vanished", {"vanished", "failed"}
        if isinstance(results[0], CallError):  # the INVITE failed as its socket went away
            return "failed", {"failed"}
        return f"finished-early-{type(results[0]).__name__}", set()

    def summary(self) -> dict[str, Any]:
        return {}


# -- RTSP --------------------------------------------------------------------------------------


class RtspDriver:
    def __init__(self, args: argparse.Namespace) -> None:
        _, responder = exchange_configs(args.mode, args.verify)
        self.args = args
        self.config = responder
        self.registry = GsaRegistry()
        host, port = args.target.rsplit(":", 1)
        self.url = f"rtsp://{host}:{port}/tone"
        self.results = Outcomes()
        self.rng = random.Random(args.seed)
        self.mix = parse_mix(args.mix, RTSP_MIX)
        self.hold = args.hold
        self.session_timeout = args.session_timeout
        self.decrypted = 0

    async def start(self) -> None:
        return

    async def close(self) -> None:
        return

    async def call(self, i: int) -> None:
        action = self.rng.choices(list(self.mix), weights=list(self.mix.values()))[0]
        hold = self.rng.uniform(*self.hold)
        interleaved = self.rng.random() < 0.5
        keying = MikeyClientKeying(self.config, registry=self.registry, key=f"load-{i}")
        client = RtspClient(
            self.url, keying=keying, keepalive=action != "silent", request_timeout=30
        )
        try:
            outcome, expected = await self._session(client, keying, action, hold, interleaved)
        except (RtspError, TimeoutError) as exc:
            outcome, expected = f"error-{type(exc).__name__}", set()
        finally:
            with contextlib.suppress(RtspError):
                await client.close()
            keying.close()
            self.decrypted += keying.stats.decrypted
        self.results.record(action, outcome, expected)

    async def _session(
        self,
        client: RtspClient,
        keying: MikeyClientKeying,
        action: str,
        hold: float,
        interleaved: bool,
    ) -> tuple[str, set[str]]:
        await client.connect()
        await client.describe()
        await client.setup(interleaved=interleaved)
        await client.play()
        self.results.up()
        try:
            await asyncio.wait_for(client.wait_for_samples(800), 30)
            if keying.stats.rejected:
                return "srtp-rejected", set()
            if action in ("rekey", "server-rekey"):
                if action == "rekey":
                    await client.set_mikey(keying.rekey_message())
                else:
                    keying.accept_server_message(await client.get_mikey())
                before = keying.stats.decrypted
                await asyncio.wait_for(client.wait_for_samples(len(client.samples) + 1600), 30)
                if keying.stats.rejected or keying.stats.decrypted <= before:
                    return "rekey-not-decrypted", set()
            await asyncio.sleep(hold)
            if action == "kill":
                await client.abort()
                return (client.teardown_reason.name.lower() if client.teardown_reason else ""), {
                    "connection_lost"
                }
            if action == "silent":
                await asyncio.sleep(self.session_timeout + 1.5)
                try:
                    await client.get_parameter()
                except RtspStatusError as exc:
                    return f"status-{exc.status}", {"status-454"}
                return "still-alive", set()
            await client.teardown()
            return (client.teardown_reason.name.lower() if client.teardown_reason else ""), {
                "teardown"
            }
        finally:
            self.results.down()

    def summary(self) -> dict[str, Any]:
        return {"decrypted_packets": self.decrypted}


# -- main --------------------------------------------------------------------------------------


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    driver: SipDriver | RtspDriver = SipDriver(args) if args.protocol == "sip" else RtspDriver(args)
    await driver.start()
    rss_start = rss_kib()
    began = time.monotonic()
    unfinished = await run_all(args.calls, args.concurrency, args.rate, driver.call, args.deadline)
    elapsed = time.monotonic() - began
    await driver.close()
    results = driver.results
    return {
        "event": "summary",
        "protocol": args.protocol,
        "transport": args.transport,
        "mode": args.mode + ("+v" if args.verify else ""),
        "calls": args.calls,
        "concurrency": args.concurrency,
        "seed": args.seed,
        "finished": sum(v for k, v in results.counts.items() if k != "unexpected"),
        "unfinished": unfinished,
        "unexpected": results.counts["unexpected"],
        "unexpected_examples": results.unexpected,
        "outcomes": {k: v for k, v in sorted(results.counts.items()) if k != "unexpected"},
        "peak_established": results.peak,
        "elapsed_s": round(elapsed, 2),
        "rss_kib_start": rss_start,
        "rss_kib_end": rss_kib(),
        **audit_figures(driver.registry),
        **driver.summary(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.load.driver")
    parser.add_argument("protocol", choices=["sip", "rtsp"])
    parser.add_argument("--target", required=True, help="HOST:PORT of the SUT")
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rate", type=float, default=200.0, help="new calls per second")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", default="psk")
    parser.add_argument("--verify", action="store_true")
    parser.add_argument("--t1", type=float, default=0.2)
    parser.add_argument("--mix", help="action weights, e.g. uac-bye=3,cancel=1")
    parser.add_argument("--hold", type=float, nargs=2, default=(0.5, 3.0), metavar=("MIN", "MAX"))
    parser.add_argument("--session-timeout", type=float, default=2.0)
    parser.add_argument("--deadline", type=float, default=240.0, help="give up after (s)")
    args = parser.parse_args(argv)
    summary = asyncio.run(drive(args))
    emit(summary)
    ok = not summary["unexpected"] and not summary["unfinished"] and not summary["live_gsas"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
