"""Run the fuzz harnesses: ``python -m tests.fuzz [--harness NAME] [--runs N] [--time S]``.

Without ``--harness`` this is the driver: it runs every harness (or those named with
``--only``) in worker subprocesses, ``--jobs`` at a time, each for its time budget, restarts a
worker that stopped on a finding until the budget is spent, and prints one summary line per
harness (``--report FILE`` also writes them as a Markdown table).

With ``--harness NAME`` this process is the worker. It fuzzes with atheris (coverage-guided
libFuzzer) when installed, else (or with ``--pure``) with a pure-Python mutation fuzzer over the
seed corpus (bit flips, byte insert/delete/overwrite, block duplication, splicing). Per input:
only the harness's own error types may escape, no input may run longer than ``--input-timeout``
seconds, and the address space is capped (RLIMIT_AS) so a memory blow-up is a MemoryError
finding, not a machine in swap. Findings are saved to ``crashers/<harness>/``.
"""

from __future__ import annotations

import argparse
import faulthandler
import hashlib
import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType

PACKAGES = ["mikey", "mikey_cli", "srtp", "sipglue", "rtspglue"]  # mikey_cli: the pcap reader
HERE = Path(__file__).parent
MEMORY_LIMIT = 3 << 30
SUMMARY = "FUZZ-SUMMARY "


class InputTimeout(BaseException):
    """Raised by SIGALRM inside a harness that ran past the per-input bound (not an Exception,
    so no harness ``except Exception`` can swallow it)."""


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise InputTimeout("input exceeded the per-input time bound")


def bounded(fn: Callable[[bytes], None], data: bytes, seconds: float) -> None:
    """Run ``fn(data)`` with a SIGALRM time bound (main thread only)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        fn(data)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def limit_memory(limit: int = MEMORY_LIMIT) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


# -- pure-Python mutation fuzzer ---------------------------------------------------------------

_INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\x00\x00", b"\xff\xff", b"\x01\x00", b"\r\n")


def mutate(data: bytes, pool: list[bytes], rng: random.Random) -> bytes:
    """One to four stacked mutations of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(8)
        pos = rng.randrange(len(buf) + 1)
        if op == 0 and buf:  # bit flip
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2:  # insert random bytes
            buf[pos:pos] = rng.randbytes(rng.choice((1, 1, 2, 4, 16)))
        elif op == 3 and buf:  # delete a range
            del buf[pos : pos + rng.choice((1, 1, 2, 4, 16, 256))]
        elif op == 4 and buf:  # duplicate a block
            start = rng.randrange(len(buf))
            block = buf[start : start + rng.choice((1, 4, 16, 64, 512))]
            buf[pos:pos] = block * rng.choice((1, 2, 8))
        elif op == 5:  # interesting value
            value = rng.choice(_INTERESTING)
            buf[pos : pos + len(value)] = value
        elif op == 6 and pool:  # splice with another seed
            other = rng.choice(pool)
            cut = rng.randrange(len(other) + 1)
            buf = buf[:pos] + other[cut:]
        elif op == 7 and buf:  # truncate
            del buf[pos:]
    return bytes(buf)


def _save(name: str, kind: str, data: bytes, root: Path) -> Path:
    target = root / name
    target.mkdir(parents=True, exist_ok=True)
    path = target / f"{kind}-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    return path


def run_pure(
    name: str, runs: int, seconds: float, input_timeout: float, seed: int
) -> dict[str, object]:
    """Mutation-fuzz harness ``name``; returns the summary."""
    from .harnesses import HARNESSES, seeds

    harness = HARNESSES[name]
    pool = [data for _, data in seeds(name)] or [b""]
    rng = random.Random(seed)
    findings: dict[str, str] = {}
    deadline = time.monotonic() + seconds
    count = 0
    faulthandler.dump_traceback_later(max(10.0, 10 * input_timeout), repeat=True, exit=True)
    try:
        for data in pool:  # the seeds themselves first
            count += _one(harness.check, name, data, input_timeout, findings)
        while count < runs and time.monotonic() < deadline:
            for _ in range(200):
                data = mutate(rng.choice(pool), pool, rng)
                count += _one(harness.check, name, data, input_timeout, findings)
            faulthandler.dump_traceback_later(max(10.0, 10 * input_timeout), repeat=True, exit=True)
    finally:
        faulthandler.cancel_dump_traceback_later()
    return {"harness": name, "engine": "pure", "runs": count, "findings": findings}


def _one(
    check: Callable[[bytes], None],
    name: str,
    data: bytes,
    input_timeout: float,
    findings: dict[str, str],
    root: Path = HERE / "crashers",
) -> int:
    """Run one input under the bounds; record a finding (one reproducer per site) in ``root``."""
    start = time.monotonic()
    try:
        bounded(check, data, input_timeout)
    except InputTimeout:
        _record(findings, name, "timeout", data, "InputTimeout", root)
    except MemoryError:
        _record(findings, name, "oom", data, "MemoryError", root)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        sig = f"{type(exc).__name__} at {Path(where.filename).name}:{where.lineno}"
        _record(findings, name, "crash", data, sig, root)
    else:
        if time.monotonic() - start > input_timeout:  # a C-level stall SIGALRM could not break
            _record(findings, name, "slow", data, "slow input", root)
    return 1


def _record(
    findings: dict[str, str], name: str, kind: str, data: bytes, signature: str, root: Path
) -> None:
    if signature not in findings:  # keep one reproducer per distinct failure site
        findings[signature] = f"crashers/{name}/{_save(name, kind, data, root).name}"


# -- atheris -----------------------------------------------------------------------------------


def run_atheris(name: str, runs: int, seconds: float, input_timeout: float, seed: int) -> None:
    """Coverage-guided fuzzing of ``name``; libFuzzer exits the process when done."""
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports(include=PACKAGES):
        from . import harnesses

    harness = harnesses.HARNESSES[name]

    def test_one(data: bytes) -> None:
        bounded(harness.check, data, input_timeout)

    work = Path(tempfile.gettempdir()) / "mikey-fuzz-work" / name
    work.mkdir(parents=True, exist_ok=True)
    crashers = HERE / "crashers" / name
    crashers.mkdir(parents=True, exist_ok=True)
    args = [
        sys.argv[0],
        f"-artifact_prefix={crashers}/",
        f"-max_total_time={max(1, int(seconds))}",
        f"-timeout={max(2, int(input_timeout * 2))}",
        "-rss_limit_mb=2560",
        "-max_len=8192",
        f"-seed={seed}",
        "-print_final_stats=1",
        str(work),
        str(harnesses.CORPUS / name),
    ]
    if runs:
        args.insert(1, f"-runs={runs}")
    atheris.Setup(args, test_one)
    atheris.Fuzz()


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# -- driver ------------------------------------------------------------------------------------

_DONE = re.compile(r"Done (\d+) runs in (\d+) second")
_STAT_RUNS = re.compile(r"stat::number_of_executed_units:\s*(\d+)")
_ARTIFACT = re.compile(r"Test unit written to (\S+)")
_EXC = re.compile(
    r"^(?:=== Uncaught Python exception: ===\n)?(\w+(?:Error|Exception|Timeout)\b.*)$", re.M
)


def _worker_cmd(
    name: str, seconds: float, runs: int, pure: bool, seed: int, input_timeout: float
) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "tests.fuzz",
        "--harness",
        name,
        "--time",
        str(seconds),
        "--runs",
        str(runs),
        "--seed",
        str(seed),
        "--input-timeout",
        str(input_timeout),
    ]
    return [*cmd, "--pure"] if pure else cmd


def _parse_worker(name: str, out: str, rc: int, pure: bool) -> dict[str, object]:
    if pure:
        for line in out.splitlines():
            if line.startswith(SUMMARY):
                return dict(json.loads(line[len(SUMMARY) :]))
        return {"harness": name, "engine": "pure", "runs": 0, "findings": {f"rc={rc}": out[-400:]}}
    runs = 0
    for rx in (_STAT_RUNS, _DONE):
        m = rx.search(out)
        if m:
            runs = int(m.group(1))
            break
    findings: dict[str, str] = {}
    artifact = _ARTIFACT.search(out)
    if artifact:
        exc = _EXC.findall(out)
        signature = exc[-1][:160] if exc else f"rc={rc}"
        findings[signature] = str(Path(artifact.group(1)).relative_to(HERE.resolve()))
    elif rc != 0:
        findings[f"worker rc={rc}"] = out[-400:]
    return {"harness": name, "engine": "atheris", "runs": runs, "findings": findings}


def drive(args: argparse.Namespace) -> int:
    from .harnesses import HARNESSES

    names = args.only or list(HARNESSES)
    pure = args.pure or not have_atheris()
    budget = {n: (args.crypto_time if HARNESSES[n].crypto else args.time) for n in names}
    totals: dict[str, dict[str, object]] = {
        n: {
            "harness": n,
            "engine": "pure" if pure else "atheris",
            "runs": 0,
            "findings": {},
            "seconds": 0.0,
        }
        for n in names
    }
    queue = list(names)
    running: dict[str, tuple[subprocess.Popen[str], float, Path]] = {}
    restarts = dict.fromkeys(names, 0)
    seed = args.seed
    while queue or running:
        while queue and len(running) < args.jobs:
            name = queue.pop(0)
            left = budget[name] - float(totals[name]["seconds"])  # type: ignore[arg-type]
            log = Path(tempfile.mkstemp(prefix=f"fuzz-{name}-", suffix=".log")[1])
            seed += 1
            cmd = _worker_cmd(name, max(1.0, left), args.runs, pure, seed, args.input_timeout)
            with log.open("w") as fh:
                proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True)
            running[name] = (proc, time.monotonic(), log)
        time.sleep(0.5)
        for name, (proc, started, log) in list(running.items()):
            if proc.poll() is None:
                if time.monotonic() - started > budget[name] + 120:
                    proc.kill()  # our own child, by PID
                    proc.wait()
                else:
                    continue
            del running[name]
            out = log.read_text(errors="replace")
            log.unlink()
            part = _parse_worker(name, out, proc.returncode, pure)
            total = totals[name]
            total["runs"] = int(total["runs"]) + int(part["runs"])  # type: ignore[call-overload]
            total["seconds"] = float(total["seconds"]) + time.monotonic() - started  # type: ignore[arg-type]
            total["findings"].update(part["findings"])  # type: ignore[attr-defined]
            left = budget[name] - float(total["seconds"])  # type: ignore[arg-type]
            if (
                part["findings"]
                and left > 5
                and restarts[name] < args.max_restarts
                and not args.runs
            ):
                restarts[name] += 1
                queue.append(name)
            else:
                print(_line(total), flush=True)
    if args.report:
        _write_report(Path(args.report), list(totals.values()))
    return 1 if any(t["findings"] for t in totals.values()) else 0


def _line(total: dict[str, object]) -> str:
    return (
        f"{total['harness']:<18} {total['engine']:<8} runs={total['runs']:<9} "
        f"seconds={float(total['seconds']):.0f} findings={len(total['findings'])}"  # type: ignore[arg-type]
    )


def _write_report(path: Path, totals: list[dict[str, object]]) -> None:
    lines = ["| harness | engine | inputs | seconds | findings |", "|---|---|---:|---:|---|"]
    for t in totals:
        found = "; ".join(f"`{k}` -> `{v}`" for k, v in t["findings"].items()) or "none"  # type: ignore[attr-defined]
        lines.append(
            f"| {t['harness']} | {t['engine']} | {t['runs']} | {float(t['seconds']):.0f} | {found} |"  # type: ignore[arg-type]
        )
    path.write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fuzz", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--harness", help="run one harness in this process (worker mode)")
    parser.add_argument("--only", nargs="*", help="driver: harnesses to run (default: all)")
    parser.add_argument("--runs", type=int, default=0, help="stop after N inputs (0: no limit)")
    parser.add_argument("--time", type=float, default=60.0, help="seconds per parser harness")
    parser.add_argument("--crypto-time", type=float, default=30.0, help="seconds per responder")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--input-timeout", type=float, default=1.0)
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--pure", action="store_true", help="pure-Python fuzzer even with atheris")
    parser.add_argument("--report", help="driver: write a Markdown table of the results here")
    args = parser.parse_args()
    if args.harness is None:
        return drive(args)
    limit_memory()
    if args.pure or not have_atheris():
        summary = run_pure(
            args.harness, args.runs or sys.maxsize, args.time, args.input_timeout, args.seed
        )
        print(SUMMARY + json.dumps(summary), flush=True)
        return 0
    run_atheris(args.harness, args.runs, args.time, args.input_timeout, args.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
