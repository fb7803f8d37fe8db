"""CPU instructions per PSK round trip (valgrind's callgrind) vs its raw crypto floor.

The timed rows of ``bench_exchange`` move with this shared VM's speed; an instruction count does
not: the same code, inputs and seed give the same count, whatever else the machine is doing. So
this row is the one to compare across runs and commits when a change is small (a 1 % step is
invisible in the timed rows).

Each arm runs in a child process under ``valgrind --tool=callgrind`` twice, once with ``n``
iterations and once with none, after the same warm-up; the difference divided by ``n`` is the
count per iteration (imports and warm-up cancel). ``PYTHONHASHSEED`` is fixed and the
configurations need no certificates (RSA key generation would make the counts random). The
floor is the same operations as ``bench_exchange``'s PSK floor. Instructions are not time (the
crypto runs at a higher IPC than the interpreter), so the rows are information, without a goal:
one with the C accelerator (when built), one on the pure-Python fallback (``MIKEY_PURE_PYTHON``).
They need valgrind (Debian: ``valgrind``) and about 90 s; ``--quick`` skips them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

Row = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]
ITERATIONS = 1000
WARMUP = 200

_OURS = """
import random, sys
from mikey.exchange import CsbTable, Endpoint, ExchangeConfig, Initiator, Responder, StreamSpec
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from mikey.replay import ReplayGuard

A, B, PSK = "sip:alice@example.com", "sip:bob@example.com", bytes(range(16))
rng = random.Random(7).randbytes
i_ep = Endpoint(ExchangeConfig(mode=Mode.PSK, identity=A, peer_identity=B,
                               psk=StaticPskStore({B: PSK})), rng, replay=ReplayGuard())
r_ep = Endpoint(ExchangeConfig(mode=Mode.PSK, identity=B, psk=StaticPskStore({A: PSK})), rng,
                replay=ReplayGuard(), csbs=CsbTable())
streams = (StreamSpec(0x1234, 0, 0),)

def go(n, first):
    for k in range(first, first + n):
        now = 1.8e9 + k * 0.001
        init = Initiator(i_ep)
        reply = Responder(r_ep).respond(init.start(now, streams), now)
        r_ep.commit(reply.result)
        init.finish(reply.answer, now)

go(WARMUP, 0)
go(int(sys.argv[1]), WARMUP)
"""

_FLOOR = """
import sys
from bench.bench_exchange import _raw_psk

op = _raw_psk(False)
for _ in range(WARMUP):
    op()
for _ in range(int(sys.argv[1])):
    op()
"""

_COLLECTED = re.compile(r"Collected : (\d+)")


def _instructions(valgrind: str, script: str, n: int, pure: bool) -> int:
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(ROOT)}
    env["MIKEY_PURE_PYTHON"] = "1" if pure else "0"
    proc = subprocess.run(
        [
            "timeout",
            "600",
            valgrind,
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            "-c",
            script.replace("WARMUP", str(WARMUP)),
            str(n),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    found = _COLLECTED.search(proc.stderr)
    if proc.returncode != 0 or found is None:
        raise RuntimeError(f"callgrind run failed: {proc.stderr.strip()[-300:]}")
    return int(found.group(1))


def _per_iteration(valgrind: str, script: str, pure: bool = False) -> float:
    return (
        _instructions(valgrind, script, ITERATIONS, pure) - _instructions(valgrind, script, 0, pure)
    ) / ITERATIONS


def run(quick: bool = False) -> list[Row]:
    """Information rows: instructions per PSK round trip (ours, with the C accelerator and on
    the pure-Python fallback) vs its floor (baseline)."""
    metric = "instructions per PSK round trip (callgrind) vs raw crypto floor"
    valgrind = shutil.which("valgrind")
    reason = None
    if quick:
        reason = "not measured in --quick (about 90 s under valgrind)"
    elif valgrind is None:
        reason = "not measured: valgrind is not installed"
    if reason is not None or valgrind is None:
        return [
            {
                "metric": metric,
                "ours": None,
                "baseline": None,
                "ratio": None,
                "goal": reason,
                "passed": None,
            }
        ]
    floor = _per_iteration(valgrind, _FLOOR)
    rows: list[Row] = []
    arms = [(", pure Python", True)]
    if importlib.util.find_spec("mikey._speedups") is not None:
        arms.insert(0, ("", False))
    for label, pure in arms:
        ours = _per_iteration(valgrind, _OURS, pure)
        rows.append(
            {
                "metric": metric.replace("round trip", f"round trip{label}"),
                "ours": round(ours),
                "baseline": round(floor),
                "ratio": round(ours / floor, 2),
                "goal": "information: deterministic, compare across runs and commits",
                "passed": None,
            }
        )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
