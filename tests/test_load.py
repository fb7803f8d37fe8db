"""Load: 1000 keyed SIP calls (UDP, TCP) and 1000 RTSP sessions from a driver in another process.

The system under test (``tests.load.server``) and the driver (``tests.load.driver``) are separate
processes, each bounded by ``timeout``. Oracles: the driver sees every call end the way its
action implies (the other side of each exchange), the SUT's own counts of how calls ended match
the driver's actions, and afterwards the SUT's GSA audit, live libsrtp contexts and unwiped key
buffers are all zero on both sides, and the SUT's RSS is within 10% of its value after a warm-up
batch at the same concurrency (allocator and caches primed). Figures go to stdout (``-s``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

PY = sys.executable


class Sut:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        assert proc.stdout is not None and proc.stdin is not None
        self.out: IO[str] = proc.stdout
        self.inp: IO[str] = proc.stdin
        self.listening = self.read()
        assert self.listening["event"] == "listening"
        self.port = int(self.listening["port"])

    def read(self) -> dict[str, Any]:
        line = self.out.readline()  # bounded: the process dies by its timeout at the latest
        assert line, "SUT exited"
        record: dict[str, Any] = json.loads(line)
        return record

    def stats(self, wait: float) -> dict[str, Any]:
        self.inp.write(f"stats {wait}\n")
        self.inp.flush()
        return self.read()


@contextmanager
def sut(*args: str, limit: int = 200) -> Iterator[Sut]:
    cmd = ["timeout", "-s", "KILL", str(limit), PY, "-m", "tests.load.server", *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        yield Sut(proc)
        assert proc.stdin is not None
        proc.stdin.write("quit\n")
        proc.stdin.flush()
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def drive(protocol: str, port: int, *args: str, limit: int = 150) -> dict[str, Any]:
    cmd = ["timeout", "-s", "KILL", str(limit), PY, "-m", "tests.load.driver", protocol]
    cmd += ["--target", f"127.0.0.1:{port}", "--verify", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit + 10, check=False)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    assert lines, done.stderr[-2000:]
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


def assert_clean(driver: dict[str, Any], after: dict[str, Any]) -> None:
    bad = {k: driver[k] for k in ("unfinished", "unexpected", "unexpected_examples", "outcomes")}
    assert driver["unfinished"] == 0 and driver["unexpected"] == 0, bad
    for side in (driver, after):
        assert side["live_gsas"] == side["live_contexts"] == side["unwiped_buffers"] == 0, side


def assert_memory(base: dict[str, Any], after: dict[str, Any]) -> None:
    assert after["rss_kib"] <= base["rss_kib"] * 1.10, (base["rss_kib"], after["rss_kib"])


def count(summary: dict[str, Any], *keys: str) -> int:
    return sum(v for k, v in summary["outcomes"].items() if k in keys)


def report(name: str, sut_start: dict[str, Any], base: dict[str, Any], **runs: Any) -> None:
    figures = {"raw_rss_kib": sut_start["rss_kib"], "warm_rss_kib": base["rss_kib"], **runs}
    print(f"\nLOAD {name}: {json.dumps(figures, sort_keys=True)}")


def _sip(transport: str, warm: int, conc: int, hold: tuple[str, str]) -> None:
    common = ["--transport", transport, "--t1", "0.2", "--rate", "1000", "--seed", "7"]
    with sut("sip", "--transport", transport, "--verify", "--max-call", "15") as s:
        warmup = drive(
            "sip", s.port, *common, "--calls", str(warm), "--concurrency", str(conc),
            "--mix", "uac-bye=1", "--hold", *hold,
        )  # fmt: skip
        primed = s.stats(30)
        assert_clean(warmup, primed)
        assert primed["ended"] == {"REMOTE_BYE": warm}
        # a second warm-up with the same mix as the measured run (another seed) primes what
        # the other endings allocate; its RSS is the baseline
        mixed = drive("sip", s.port, *common[:-1], "3", "--calls", "1000",
                      "--concurrency", "1000", "--hold", *hold)  # fmt: skip
        base = s.stats(40)
        assert_clean(mixed, base)
        run = drive("sip", s.port, *common, "--calls", "1000", "--concurrency", "1000",
                    "--hold", *hold)  # fmt: skip
        after = s.stats(40)
        assert_clean(run, after)
        ended = {k: v - base["ended"].get(k, 0) for k, v in after["ended"].items()}
        # the SUT's view of each ending matches the driver's actions
        assert ended.get("CANCEL", 0) == count(run, "cancel:status-487")
        assert ended.get("REJECTED", 0) == count(run, "reject:status-486")
        assert ended.get("REMOTE_BYE", 0) == count(run, "uac-bye:local_bye", "cancel:crossed-bye")
        assert after["offered"] - base["offered"] == sum(ended.values())
        assert after["calls"] == after["transactions"] == after["supervisors"] == 0
        assert_memory(base, after)
        report(
            f"sip/{transport}", s.listening, base, warmup_peak=primed["peak_keyed"],
            rss_kib_after_first_warmup=primed["rss_kib"],
            calls=run["calls"], concurrency=run["concurrency"], peak_keyed=after["peak_keyed"],
            sut_ended=ended, outcomes=run["outcomes"], elapsed_s=run["elapsed_s"],
            rss_kib_after=after["rss_kib"],
        )  # fmt: skip


def test_sip_udp_1000_calls() -> None:
    _sip("udp", 1000, 1000, ("6", "10"))


def test_sip_tcp_1000_calls() -> None:
    _sip("tcp", 1000, 1000, ("3", "6"))


def test_rtsp_1000_sessions() -> None:
    common = ["--rate", "300", "--concurrency", "200", "--hold", "0.2", "1.0", "--seed", "7"]
    with sut("rtsp", "--verify", "--session-timeout", "2", "--max-call", "5") as s:
        warmup = drive("rtsp", s.port, *common, "--calls", "200", "--mix", "teardown=1")
        base = s.stats(30)
        assert_clean(warmup, base)
        run = drive("rtsp", s.port, *common, "--calls", "1000", "--session-timeout", "2")
        after = s.stats(30)
        assert_clean(run, after)
        ended = {k: v - base["ended"].get(k, 0) for k, v in after["ended"].items()}
        assert ended.get("CONNECTION_LOST", 0) == count(run, "kill:connection_lost")
        assert ended.get("TIMEOUT", 0) == count(run, "silent:status-454")
        assert ended.get("TEARDOWN", 0) == count(
            run, "teardown:teardown", "rekey:teardown", "server-rekey:teardown"
        )
        assert after["sessions"] == after["connections"] == after["pending"] == 0
        assert run["decrypted_packets"] > 0
        assert_memory(base, after)
        report(
            "rtsp", s.listening, base, sessions=run["calls"], concurrency=200,
            peak_sessions=after["peak_sessions"], sut_ended=ended, outcomes=run["outcomes"],
            decrypted_packets=run["decrypted_packets"], elapsed_s=run["elapsed_s"],
            rss_kib_after=after["rss_kib"],
        )  # fmt: skip
