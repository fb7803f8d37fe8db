"""`make demo` end to end: both SIP calls and the RTSP session keyed, media heard, GSAs gone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_runs_clean() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "samples.demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert out.count("ok    ") == 3
    assert "INVITE [a=key-mgmt:mikey]" in out and "200 OK (INVITE) [a=key-mgmt:mikey]" in out
    assert "RTSP TEARDOWN" in out
    assert out.count("live_gsas=0, live_contexts=0, unwiped_buffers=0") == 6
