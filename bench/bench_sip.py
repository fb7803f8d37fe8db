"""SIP call setup with MIKEY vs the same call without key-mgmt, same run, loopback UDP.

Latency: two UAs in one event loop; a trial is one INVITE -> 200 OK -> ACK (``invite()`` returns
once the answer is accepted and the call keyed), then BYE outside the timed part. Keyed and plain
calls alternate so noise hits both; the lower quartile of each arm is compared (this 2-core
machine is shared: preemption adds whole ~4 ms scheduler slices to a random half of the trials, so a
median would measure the neighbours, not the call). The MIKEY exchange's own cost (the sans-IO
``start``/``respond``/``finish`` plus building both sides' SRTP contexts, measured in the same run)
is the floor for the public-key modes: what keying costs with no SIP around it.
Goals: PSK adds <= 1 ms; every other mode adds <= its floor + 1 ms.

Throughput: one UAS answering a UAC; calls run ``CONCURRENCY`` at a time, each INVITE, ACK, BYE,
200 OK; MIKEY PSK+V keyed vs plain. Goal: >= 200 keyed setups+teardowns per second.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time

from mikey.exchange import (
    Endpoint,
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    Responder,
    StreamSpec,
)
from mikey.keying import Mode
from sipglue.keying import LocalMedia, MikeyCallKeying
from sipglue.sdp import SessionDescription, build_audio_answer, build_audio_offer
from sipglue.ua import Call, TerminationReason, UserAgent
from srtp.gsa import GsaRegistry
from tests.mikey.pair import configs

PSK_GOAL_MS = 1.0
MARGIN_MS = 1.0
RATE_GOAL = 200.0
CONCURRENCY = 16
MODES: list[tuple[str, Mode, bool]] = [
    ("psk", Mode.PSK, False),
    ("psk+v", Mode.PSK, True),
    ("pk", Mode.PK, False),
    ("dh", Mode.DH, False),
    ("dhhmac", Mode.DHHMAC, False),
    ("rsa-r", Mode.RSA_R, False),
]


class Plain:
    """The baseline handler: the same audio offer/answer, no key-mgmt, no keys."""

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        return build_audio_answer(offer, "127.0.0.1", 9, session_id=2, require_key_mgmt=False)

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        return None

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        return None


def _plain_offer() -> SessionDescription:
    return build_audio_offer("127.0.0.1", 9, session_id=1)


class _Pair:
    def __init__(self, i_cfg: ExchangeConfig | None, r_cfg: ExchangeConfig | None) -> None:
        self.uac_keying = MikeyCallKeying(i_cfg, registry=GsaRegistry()) if i_cfg else None
        self.uas_keying = MikeyCallKeying(r_cfg, registry=GsaRegistry()) if r_cfg else None
        big = {"max_calls": 100_000, "max_transactions": 1_000_000}
        self.uac = UserAgent(self.uac_keying or Plain(), user="alice", **big)  # type: ignore[arg-type]
        self.uas = UserAgent(self.uas_keying or Plain(), user="bob", **big)  # type: ignore[arg-type]

    async def start(self) -> None:
        await self.uac.listen()
        await self.uas.listen()

    async def setup(self) -> Call:
        target = f"sip:bob@127.0.0.1:{self.uas.port}"
        if self.uac_keying is not None:
            media = LocalMedia("127.0.0.1", 9, self.uac_keying.new_ssrc())
            return await self.uac_keying.invite(self.uac, target, media)
        return await self.uac.invite(target, _plain_offer())

    async def teardown(self, call: Call) -> None:
        remote = await self.uas.incoming.get()
        await call.bye()
        await remote.wait_terminated()

    async def close(self) -> None:
        await self.uac.close()
        await self.uas.close()
        for k in (self.uac_keying, self.uas_keying):
            if k is not None:
                await k.close()
                assert k.registry.audit().live_gsas == 0


def _floor_ms(i_cfg: ExchangeConfig, r_cfg: ExchangeConfig, n: int) -> float:
    """Wall time of the keying alone: sans-IO exchange (start, respond, finish) and both GSAs."""
    times: list[float] = []
    registry = GsaRegistry()
    initiator, responder = Endpoint(i_cfg, os.urandom), Endpoint(r_cfg, os.urandom)
    for k in range(n):
        t0 = time.perf_counter()
        init = Initiator(initiator)
        msg = init.start(time.time(), (StreamSpec(0x1111), StreamSpec(0)))
        reply = Responder(responder).respond(msg, time.time(), local_ssrcs=[0x2222])
        assert isinstance(reply, ExchangeCompleted)
        responder.commit(reply.result)
        done = init.finish(reply.answer if init.expects_response else None, time.time())
        assert isinstance(done, ExchangeCompleted)
        res = done.result
        registry.establish(f"i{k}", res, 0.0, outbound_ssrcs={0x1111})
        registry.establish(f"r{k}", reply.result, 0.0, outbound_ssrcs={0x2222})
        times.append((time.perf_counter() - t0) * 1000)
        registry.teardown_all()
    return _quartile(times)


def _quartile(values: list[float]) -> float:
    return statistics.quantiles(values, n=4)[0] if len(values) >= 4 else min(values)


async def _latency(mode: Mode, verify: bool, n: int) -> tuple[float, float, float]:
    i_cfg, r_cfg = configs(mode, verify=verify)
    keyed, plain = _Pair(i_cfg, r_cfg), _Pair(None, None)
    await keyed.start()
    await plain.start()
    ours: list[float] = []
    base: list[float] = []
    try:
        for trial in range(n + 2):
            for pair, sink in ((keyed, ours), (plain, base)):
                t0 = time.perf_counter()
                call = await pair.setup()
                elapsed = (time.perf_counter() - t0) * 1000
                await pair.teardown(call)
                if trial >= 2:  # warm-up
                    sink.append(elapsed)
    finally:
        await keyed.close()
        await plain.close()
    return _quartile(ours), _quartile(base), _floor_ms(i_cfg, r_cfg, n)


async def _rate(keyed: bool, calls: int) -> float:
    i_cfg, r_cfg = configs(Mode.PSK, verify=True)
    pair = _Pair(i_cfg, r_cfg) if keyed else _Pair(None, None)
    await pair.start()
    sem = asyncio.Semaphore(CONCURRENCY)
    pair.uas.on_incoming = None

    async def one() -> None:
        async with sem:
            call = await pair.setup()
            await call.bye()

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(calls)))
        elapsed = time.perf_counter() - t0
    finally:
        await pair.close()
    return calls / elapsed


def _run_async(quick: bool) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    n = 12 if quick else 60
    for name, mode, verify in MODES:
        ours, base, floor = asyncio.run(_latency(mode, verify, n))
        added = ours - base
        allowed = PSK_GOAL_MS if mode == Mode.PSK else floor + MARGIN_MS
        rows.append(
            {
                "metric": f"SIP call setup ms, MIKEY {name} (ours) vs no key-mgmt (baseline)",
                "ours": round(ours, 3),
                "baseline": round(base, 3),
                "ratio": round(ours / base, 3),
                "goal": f"adds <= {allowed:.2f} ms"
                + ("" if mode == Mode.PSK else f" (floor {floor:.2f} + {MARGIN_MS})"),
                "passed": added <= allowed,
            }
        )
    calls = 300 if quick else 2000
    rates_k: list[float] = []
    rates_p: list[float] = []
    for _ in range(1 if quick else 3):
        rates_k.append(asyncio.run(_rate(True, calls)))
        rates_p.append(asyncio.run(_rate(False, calls)))
    rk, rp = statistics.median(rates_k), statistics.median(rates_p)
    rows.append(
        {
            "metric": "SIP setups+teardowns/s, MIKEY PSK+V (ours) vs no key-mgmt (baseline)",
            "ours": round(rk),
            "baseline": round(rp),
            "ratio": round(rk / rp, 3),
            "goal": f">= {RATE_GOAL:.0f}/s keyed",
            "passed": rk >= RATE_GOAL,
        }
    )
    return rows


def run(quick: bool) -> list[dict[str, object]]:
    """Rows: setup latency per mode vs plain SIP, and keyed call rate vs plain."""
    return _run_async(quick)


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['metric']}: ours {row['ours']}, baseline {row['baseline']}, "
            f"ratio {row['ratio']} (goal {row['goal']}): {'PASS' if row['passed'] else 'FAIL'}"
        )
