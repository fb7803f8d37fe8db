"""`python -m bench --quick --json FILE` produces a well-formed table (never a timing assertion)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEYS = {"bench", "metric", "ours", "baseline", "ratio", "goal", "passed"}


def test_quick_bench_table_is_well_formed(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [
            "timeout",
            "-s",
            "TERM",
            "58",
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--json",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and rows
    for row in rows:
        assert set(row) >= KEYS, row
        assert isinstance(row["metric"], str) and row["metric"]
        assert row["metric"] != "error", row  # a benchmark that raised is reported as this row
        assert row["passed"] in (True, False, None), row
        for key in ("ours", "baseline", "ratio"):
            assert row[key] is None or isinstance(row[key], int | float), row
    benches = {p.stem.removeprefix("bench_") for p in (ROOT / "bench").glob("bench_*.py")}
    assert {row["bench"] for row in rows} == benches
    # The printed table has a header, a rule and one line per row.
    lines = proc.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("bench "))
    assert set(lines[header + 1].replace(" ", "")) == {"-"}
    assert len(lines) - header - 2 == len(rows)
