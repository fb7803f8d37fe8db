"""``mikey rtsp serve --pcap`` and ``mikey rtsp play --pcap``: signalling and media on file.

Oracles: tshark reading each file (RTSP requests and responses, the MIKEY of the DESCRIBE), and
``mikey pcap`` keying the file with the PSK both processes used and decrypting every packet the
client reports it received, to the tone the server sent.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mikey_cli.pcap import OpenCredentials, analyse
from rtspglue.media import dominant_frequency
from tests.interop.peers import require_peer, stop_wrapped

MIKEY = [sys.executable, "-m", "mikey_cli"]
PSK = "000102030405060708090a0b0c0d0e0f"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(90)
@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_serve_and_play_write_pcaps(tmp_path: Path, transport: str) -> None:
    port = free_port()
    served, played = tmp_path / "serve.pcap", tmp_path / "play.pcap"
    server = subprocess.Popen(
        ["timeout", "60", *MIKEY, "rtsp", "serve", "--bind", f"127.0.0.1:{port}", "--psk", PSK,
         "--freq", "700", "--once", "--pcap", str(served)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("READY ")
        r = subprocess.run(
            ["timeout", "60", *MIKEY, "rtsp", "play", f"rtsp://127.0.0.1:{port}/tone", "--psk",
             PSK, "--duration", "1.5", "--transport", transport, "--pcap", str(played)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        summary = json.loads(r.stdout)
        deadline = time.monotonic() + 20
        while server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_wrapped(server)  # type: ignore[arg-type]
    received = summary["packets_received"]
    assert received > 50
    tshark = require_peer("tshark")
    for pcap in (served, played):
        cap = analyse(pcap, OpenCredentials(psk=bytes.fromhex(PSK)))
        starts = [m.start.split()[0] for m in cap.messages]
        assert {"DESCRIBE", "SETUP", "PLAY", "TEARDOWN"} <= set(starts)
        assert [f.where for f in cap.mikey if f.where.startswith("SDP")]
        (stream,) = [s for s in cap.streams.values() if s.keyed]
        assert stream.transport == transport and stream.auth_failures == 0
        assert stream.decrypted >= received
        out = subprocess.run(
            ["timeout", "60", tshark, "-r", str(pcap), "-d", f"tcp.port=={port},rtsp",
             "-Y", "rtsp", "-T", "fields", "-e", "rtsp.method", "-e", "rtsp.status"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "DESCRIBE" in out and "200" in out
    cap = analyse(served, OpenCredentials(psk=bytes.fromhex(PSK)), want_wav=True)
    (stream,) = [s for s in cap.streams.values() if s.keyed]
    samples = [
        int.from_bytes(stream.samples[i : i + 2], "little", signed=True)
        for i in range(0, len(stream.samples), 2)
    ]
    assert dominant_frequency(samples[-4000:]) == pytest.approx(700, abs=2)


@pytest.mark.timeout(90)
def test_gstreamer_profile_on_serve_and_play(tmp_path: Path) -> None:
    """--peer-profile gstreamer on both CLIs: the NULL-KEMAC shape GStreamer uses, keyed; the
    capture opens with the same profile and no PSK, and not without the profile."""
    port = free_port()
    served = tmp_path / "serve.pcap"
    server = subprocess.Popen(
        ["timeout", "60", *MIKEY, "rtsp", "serve", "--bind", f"127.0.0.1:{port}",
         "--peer-profile", "gstreamer", "--freq", "900", "--once", "--pcap", str(served)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith("READY ")
        r = subprocess.run(
            ["timeout", "60", *MIKEY, "rtsp", "play", f"rtsp://127.0.0.1:{port}/tone",
             "--peer-profile", "gstreamer", "--duration", "1", "--transport", "tcp"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["frequency"] == pytest.approx(900, abs=2)
        deadline = time.monotonic() + 20
        while server.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop_wrapped(server)  # type: ignore[arg-type]
    cap = analyse(served, OpenCredentials(profile="gstreamer"))
    assert any(s.decrypted > 25 for s in cap.streams.values())
    plain = analyse(served, OpenCredentials())
    assert all("refused" in x for x in plain.key_reports)
    assert sum(s.decrypted for s in plain.streams.values()) == 0
