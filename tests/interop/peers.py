"""Helpers for tests that drive real peers (docs/INTEROP.md).

A missing peer skips the test only for a developer without root; as root (CI, where
``make peers`` installs them) a missing peer is a failure, never a silent skip. Every process is
bounded by coreutils ``timeout`` and runs to completion (no servers here).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import pytest

GST_PYTHON = "/usr/bin/python3"  # Debian's Python with python3-gi (not the project venv)
LIBGSTSDP = "libgstsdp-1.0.so.0"
AGGREGATOR = "|"  # joins repeated occurrences of a field (no test value contains it)


def is_root() -> bool:
    return os.geteuid() == 0


def missing_peer(reason: str) -> NoReturn:
    """Skip (developer machine without root) or fail (root/CI must have every peer)."""
    if is_root():
        pytest.fail(f"peer missing while running as root: {reason}")
    pytest.skip(reason)


def stop_wrapped(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """Stop a peer started under coreutils ``timeout``, by its PID.

    SIGTERM goes to the ``timeout`` wrapper, which forwards it to the peer; SIGKILL only if
    that does not end it. Killing the wrapper outright would orphan the peer.
    """
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(timeout=10)


def require_peer(name: str) -> str:
    """The absolute path of the peer binary ``name``; skip or fail when it is missing."""
    path = shutil.which(name)
    if path is None:
        missing_peer(f"{name} is not installed (see docs/INTEROP.md)")
    return path


def require_gst_sdp() -> str:
    """Debian's python3 with GI GstSdp 1.0 and libgstsdp; returns the interpreter path."""
    if not Path(GST_PYTHON).exists():
        missing_peer(f"{GST_PYTHON} is missing")
    probe = (
        "import ctypes, gi; gi.require_version('GstSdp', '1.0'); "
        f"from gi.repository import GstSdp; ctypes.CDLL('{LIBGSTSDP}')"
    )
    r = subprocess.run(
        ["timeout", "30", GST_PYTHON, "-c", probe], capture_output=True, text=True, check=False
    )
    if r.returncode != 0:
        missing_peer(f"GstSdp GI / {LIBGSTSDP} unavailable: {r.stderr.strip()[-300:]}")
    return GST_PYTHON


def hexdump(data: bytes) -> str:
    """The ``od -An -tx1`` + offset form text2pcap reads; offset 0 starts a new packet."""
    return "".join(
        f"{off:06x} " + " ".join(f"{x:02x}" for x in data[off : off + 16]) + "\n"
        for off in range(0, len(data), 16)
    )


def tshark_fields_many(
    messages: Sequence[bytes], fields: Sequence[str], *, timeout: int = 60
) -> list[list[str]]:
    """Decode each MIKEY message (raw bytes on UDP 2269) with one tshark run.

    Returns one row per message with one string per field; repeated occurrences are joined
    with :data:`AGGREGATOR`; an absent field is the empty string.
    """
    text2pcap = require_peer("text2pcap")
    tshark = require_peer("tshark")
    if not messages:
        return []
    with tempfile.TemporaryDirectory(prefix="mikey-tshark-") as tmp:
        hexfile = Path(tmp) / "m.hex"
        pcap = Path(tmp) / "m.pcap"
        hexfile.write_text("".join(hexdump(m) for m in messages))
        subprocess.run(
            ["timeout", str(timeout), text2pcap, "-q", "-u", "2269,2269", str(hexfile), str(pcap)],
            check=True,
            capture_output=True,
        )
        cmd = ["timeout", str(timeout), tshark, "-n", "-r", str(pcap), "-T", "fields"]
        cmd += ["-E", "separator=/t", "-E", "occurrence=a", "-E", f"aggregator={AGGREGATOR}"]
        cmd += ["-E", "quote=n", "-e", "frame.number"]
        for f in fields:
            cmd += ["-e", f]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    rows = [line.split("\t") for line in out.splitlines() if line.strip()]
    if len(rows) != len(messages):
        raise AssertionError(f"tshark decoded {len(rows)} frames for {len(messages)} messages")
    for i, row in enumerate(rows, 1):
        if row[0] != str(i) or len(row) != len(fields) + 1:
            raise AssertionError(f"unexpected tshark row {row!r}")
    return [row[1:] for row in rows]


def tshark_fields(mikey_bytes: bytes, fields: Sequence[str]) -> list[str]:
    """The values tshark decodes for ``fields`` in one MIKEY message."""
    return tshark_fields_many([mikey_bytes], fields)[0]
