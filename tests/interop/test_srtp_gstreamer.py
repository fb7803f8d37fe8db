"""GStreamer 1.22 srtpenc/srtpdec (libsrtp, configured by caps) against our Data SA contexts.

GStreamer is an independent oracle for the knobs pylibsrtp lacks: a receiver told ROC=5 in its
caps must decode our ROC-5 stream, and AES-256-CM must interoperate both ways. Audio is compared
after decoding (440 Hz in, 440 Hz out).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from mikey.keying import SrtpPolicy
from srtp.context import InboundStream, OutboundStream

from ..srtp.helpers import SPEC_SALT, SPEC_TEK, entry
from ..srtp.media import (
    dominant_frequency,
    free_udp_port_pair,
    receive_all,
    rtp_packets,
    rtp_payload,
    tone_ulaw,
    ulaw_decode,
    wait_bound,
)
from .peers import missing_peer, stop_wrapped


def _has_srtp_plugin() -> bool:
    if shutil.which("gst-inspect-1.0") is None:
        return False
    probe = subprocess.run(
        ["timeout", "20", "gst-inspect-1.0", "srtpenc"], capture_output=True, check=False
    )
    return probe.returncode == 0


pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _srtp_plugin() -> None:
    if not _has_srtp_plugin():
        missing_peer("GStreamer srtp plugin (gstreamer1.0-plugins-bad) not installed")


SSRC = 0x5EED1234
KEY_256 = bytes(range(0x40, 0x60))
CASES = [
    pytest.param(16, 0, id="aes-128-icm"),
    pytest.param(16, 5, id="aes-128-icm-roc5"),
    pytest.param(32, 0, id="aes-256-icm"),
    pytest.param(32, 5, id="aes-256-icm-roc5"),
]


def keys(key_len: int) -> tuple[bytes, bytes]:
    return (SPEC_TEK, SPEC_SALT) if key_len == 16 else (KEY_256, SPEC_SALT)


def cipher(key_len: int) -> str:
    return f"aes-{key_len * 8}-icm"


def wait_playing(proc: subprocess.Popen[bytes]) -> None:
    """Read gst-launch's progress lines until the pipeline is PLAYING (EOF means it died)."""
    assert proc.stdout is not None
    while True:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError("gst-launch exited before PLAYING")
        if b"PLAYING" in line:
            return


def wait_written(path: Path, size: int, alive: object, limit: float = 15.0) -> None:
    """Poll until the pipeline has written ``size`` bytes, it exits, or a hang guard expires."""
    end = time.monotonic() + limit
    while time.monotonic() < end and alive():  # type: ignore[operator]
        if path.exists() and path.stat().st_size >= size:
            return
        time.sleep(0.05)


@pytest.mark.parametrize(("key_len", "roc"), CASES)
def test_srtpdec_decodes_our_stream(tmp_path: Path, key_len: int, roc: int) -> None:
    key, salt = keys(key_len)
    port = free_udp_port_pair()
    out = tmp_path / "out.ulaw"
    caps = (
        "application/x-srtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0,"
        f"ssrc=(uint){SSRC},srtp-key=(buffer){(key + salt).hex()},"
        f"srtp-cipher={cipher(key_len)},srtp-auth=hmac-sha1-80,"
        f"srtcp-cipher={cipher(key_len)},srtcp-auth=hmac-sha1-80,roc=(uint){roc}"
    )
    proc = subprocess.Popen(
        [
            "timeout",
            "30",
            "gst-launch-1.0",
            "-e",
            "udpsrc",
            "address=127.0.0.1",
            f"port={port}",
            f"caps={caps}",
            "!",
            "srtpdec",
            "!",
            "rtppcmudepay",
            "!",
            "filesink",
            "sync=false",
            "buffer-mode=unbuffered",
            f"location={out}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    policy = SrtpPolicy(encr_key_len=key_len)
    tx = OutboundStream([entry(policy, ssrc=SSRC, roc=roc, key=key, salt=salt)])
    try:
        wait_playing(proc)
        wait_bound(port, lambda: proc.poll() is None)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for pkt in rtp_packets(tone_ulaw(440, 1.5), SSRC, seq0=1000):
                sock.sendto(tx.protect(pkt), ("127.0.0.1", port))
                time.sleep(0.002)
        assert tx.roc == roc
        wait_written(out, 8000, lambda: proc.poll() is None)
        proc.send_signal(signal.SIGINT)  # timeout(1) forwards it; -e turns it into EOS
        proc.wait(timeout=20)
    finally:
        tx.close()
        stop_wrapped(proc)
    samples = ulaw_decode(out.read_bytes())
    assert len(samples) >= 8000, proc.stderr.read() if proc.stderr else b""
    assert abs(dominant_frequency(samples) - 440) <= 10


@pytest.mark.parametrize("key_len", [16, 32])
def test_we_decode_srtpenc_stream(key_len: int) -> None:
    key, salt = keys(key_len)
    port = free_udp_port_pair()
    rx = InboundStream([entry(SrtpPolicy(encr_key_len=key_len), ssrc=SSRC, key=key, salt=salt)])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sock.bind(("127.0.0.1", port))
        proc = subprocess.Popen(
            [
                "timeout",
                "30",
                "gst-launch-1.0",
                "-q",
                "audiotestsrc",
                "freq=440",
                "num-buffers=100",
                "samplesperbuffer=160",
                "!",
                "audio/x-raw,rate=8000,channels=1",
                "!",
                "mulawenc",
                "!",
                "rtppcmupay",
                f"ssrc={SSRC}",
                "!",
                "srtpenc",
                f"key={(key + salt).hex()}",
                f"rtp-cipher={cipher(key_len)}",
                "rtp-auth=hmac-sha1-80",
                f"rtcp-cipher={cipher(key_len)}",
                "rtcp-auth=hmac-sha1-80",
                "!",
                "udpsink",
                "host=127.0.0.1",
                f"port={port}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            packets = receive_all(sock)
            proc.wait(timeout=30)
        finally:
            stop_wrapped(proc)
    try:
        assert packets, proc.stderr.read() if proc.stderr else b""
        audio = b"".join(rtp_payload(rx.unprotect(p))[1] for p in packets)
    finally:
        rx.close()
    samples = ulaw_decode(audio)
    assert len(samples) >= 8000
    assert abs(dominant_frequency(samples) - 440) <= 10
