"""gst-rtsp-server's live DESCRIBE keys through ``mikey answer --peer-profile gstreamer``.

The oracle is GStreamer itself: gst-rtsp-server (SAVP profile) generates the SRTP key and sends
it in its DESCRIBE answer (``a=key-mgmt:mikey``, PSK with a NULL KEMAC, 30-byte TEK, the tag
length in SP param 3); the profile must key it, the default must refuse it, and the NULL-KEMAC
switch alone must refuse it too (it does not accept the TEK and SP quirks).
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .peers import GST_PYTHON, missing_peer, stop_wrapped

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent


def _describe(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            f"DESCRIBE rtsp://127.0.0.1:{port}/tone RTSP/1.0\r\nCSeq: 1\r\n"
            "Accept: application/sdp\r\n\r\n".encode()
        )
        data = b""
        deadline = time.monotonic() + 10
        while b"a=key-mgmt" not in data or not data.endswith(b"\r\n"):
            chunk = s.recv(65536)
            if not chunk or time.monotonic() > deadline:
                break
            data += chunk
    return data.decode("utf-8", "replace")


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["timeout", "60", sys.executable, "-m", "mikey_cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.timeout(90)
def test_live_gst_rtsp_server_describe_keys_with_gstreamer_profile() -> None:
    if not Path(GST_PYTHON).exists():
        missing_peer(f"{GST_PYTHON} is missing")
    server = subprocess.Popen(
        ["timeout", "60", GST_PYTHON, str(HERE / "gst_rtsp_server.py"), "0", "1100", "/tone",
         "--savp"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            missing_peer("gst-rtsp-server did not start")
        answer = _describe(int(line.split()[1]))
    finally:
        stop_wrapped(server)  # type: ignore[arg-type]
    hit = re.search(r"^a=key-mgmt:mikey \S+", answer, re.MULTILINE)
    assert hit is not None, answer
    key_line = hit.group(0)
    ok = mikey("answer", "--peer-profile", "gstreamer", "--show-keys", key_line)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (sa,) = json.loads(ok.stdout)["data_sa"]
    assert len(bytes.fromhex(sa["master_key"])) == 16
    assert len(bytes.fromhex(sa["master_salt"])) == 14
    assert sa["policy"].startswith("AES_CM_128_HMAC_SHA1")
    for refused in (
        mikey("answer", "--psk", "00" * 16, key_line),
        mikey("answer", "--allow-null-kemac", "--psk", "00" * 16, key_line),
    ):
        assert refused.returncode == 2, refused.stdout
        assert json.loads(refused.stdout)["error"]
