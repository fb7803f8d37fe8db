"""``python -m bench [--quick] [--json FILE] [--only NAME]``: one table of ratios.

Every benchmark module ``bench/bench_<name>.py`` exposes ``run(quick) -> list[row]`` where a row
is ``{metric, ours, baseline, ratio, goal, passed}``; each figure is measured against a baseline
taken in the same process run (interleaved trials, medians), because machines here are noisy.
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path
from typing import Any

Row = dict[str, Any]


def discover() -> list[str]:
    here = Path(__file__).parent
    return sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules([str(here)])
        if m.name.startswith("bench_")
    )


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v == 0 or 0.01 <= abs(v) < 100_000:
            return f"{v:.3g}" if abs(v) < 10 else f"{v:,.0f}"
        return f"{v:.3e}"
    return "" if v is None else str(v)


def render(rows: list[Row]) -> str:
    cols = ["bench", "metric", "ours", "baseline", "ratio", "goal", "passed"]
    table = [cols] + [
        [
            _fmt(r.get("bench")),
            _fmt(r.get("metric")),
            _fmt(r.get("ours")),
            _fmt(r.get("baseline")),
            _fmt(r.get("ratio")),
            _fmt(r.get("goal")),
            {True: "pass", False: "FAIL", None: "-"}.get(r.get("passed"), str(r.get("passed"))),
        ]
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _key_schedule() -> str:
    import mikey

    return "C accelerator" if mikey.accelerated() else "pure Python"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="short run (under a minute)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--only", metavar="NAME", action="append", help="run only these")
    args = parser.parse_args(argv)
    names = discover()
    if args.only:
        unknown = set(args.only) - set(names)
        if unknown:
            parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
        names = [n for n in names if n in args.only]
    rows: list[Row] = []
    started = time.perf_counter()
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        t0 = time.perf_counter()
        try:
            got = module.run(args.quick)
        except Exception as exc:  # a broken benchmark is reported, not fatal to the table
            got = [
                {
                    "metric": "error",
                    "ours": None,
                    "baseline": None,
                    "ratio": None,
                    "goal": str(exc)[:60],
                    "passed": False,
                }
            ]
        for r in got:
            r.setdefault("bench", name)
            rows.append(r)
        print(f"# {name}: {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python "
        f"{platform.python_version()}; mikey key schedule: {_key_schedule()}; "
        f"{time.perf_counter() - started:.0f}s total"
    )
    print(render(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
