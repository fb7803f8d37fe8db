"""The README's "Library use" block is a complete program: run exactly that text."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _library_use_block() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Library use", 1)[1].split("\n## ", 1)[0]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found is not None, "the Library use section has no python block"
    return found.group(1)


def test_readme_library_use_runs_and_keys_both_directions(tmp_path: Path) -> None:
    program = tmp_path / "library_use.py"
    program.write_text(_library_use_block(), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        ["timeout", "60", sys.executable, str(program)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "keyed both ways, 3 SRTP packets each way, torn down"
