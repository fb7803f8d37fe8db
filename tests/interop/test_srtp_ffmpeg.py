"""ffmpeg's own SRTP implementation (not libsrtp) against our Data SA contexts, both ways.

Key material: TEK/SALT of docs/WIRE.md §Worked PSK exchange (crypto session 1). The oracle is the
decoded audio: a 440 Hz tone must come out as a 440 Hz tone.
"""

from __future__ import annotations

import base64
import socket
import subprocess
import time
import wave
from pathlib import Path

import pytest

from srtp.context import InboundStream, OutboundStream
from srtp.errors import SrtpError

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
from .peers import require_peer, stop_wrapped

pytestmark = pytest.mark.interop


@pytest.fixture(autouse=True)
def _ffmpeg() -> None:
    require_peer("ffmpeg")


SSRC = 0x1234ABCD
INLINE = base64.b64encode(SPEC_TEK + SPEC_SALT).decode()


def test_ffmpeg_decrypts_our_srtp(tmp_path: Path) -> None:
    port = free_udp_port_pair()
    sdp = tmp_path / "rx.sdp"
    sdp.write_text(
        "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{INLINE}\r\n"
    )
    out = tmp_path / "out.wav"
    proc = subprocess.Popen(
        [
            "timeout",
            "30",
            "ffmpeg",
            "-nostdin",
            "-loglevel",
            "error",
            "-protocol_whitelist",
            "file,udp,rtp,srtp",
            "-i",
            str(sdp),
            "-t",
            "1.0",
            "-y",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    tx = OutboundStream([entry(ssrc=SSRC, key=SPEC_TEK, salt=SPEC_SALT)])
    try:
        wait_bound(port, lambda: proc.poll() is None)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for pkt in rtp_packets(tone_ulaw(440, 4.0), SSRC):
                if proc.poll() is not None:
                    break
                sock.sendto(tx.protect(pkt), ("127.0.0.1", port))
                time.sleep(0.004)
        proc.wait(timeout=30)
    finally:
        tx.close()
        stop_wrapped(proc)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""
    with wave.open(str(out)) as w:
        assert w.getframerate() == 8000
        frames = w.readframes(w.getnframes())
    samples = [
        int.from_bytes(frames[i : i + 2], "little", signed=True) for i in range(0, len(frames), 2)
    ]
    assert abs(dominant_frequency(samples) - 440) <= 10


def test_we_decrypt_ffmpeg_srtp(tmp_path: Path) -> None:
    port = free_udp_port_pair()
    rx = InboundStream([entry(ssrc=0, key=SPEC_TEK, salt=SPEC_SALT)])  # ffmpeg picks the SSRC
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp_sock,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtcp_sock,
    ):
        rtp_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        rtp_sock.bind(("127.0.0.1", port))
        rtcp_sock.bind(("127.0.0.1", port + 1))
        proc = subprocess.Popen(
            [
                "timeout",
                "30",
                "ffmpeg",
                "-nostdin",
                "-loglevel",
                "error",
                "-f",
                "lavfi",
                "-i",
                "sine=f=440:sample_rate=8000:duration=2",
                "-c:a",
                "pcm_mulaw",
                "-f",
                "rtp",
                "-srtp_out_suite",
                "AES_CM_128_HMAC_SHA1_80",
                "-srtp_out_params",
                INLINE,
                f"srtp://127.0.0.1:{port}?pkt_size=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            packets = receive_all(rtp_sock)
            proc.wait(timeout=30)
        finally:
            stop_wrapped(proc)
    try:
        assert packets, proc.stderr.read() if proc.stderr else b""
        audio = [rtp_payload(rx.unprotect(p))[1] for p in packets]  # loopback keeps order
        # a flipped bit must not decrypt (we really verify ffmpeg's tags)
        bad = bytearray(packets[-1])
        bad[-1] ^= 1
        with pytest.raises(SrtpError):
            rx.unprotect(bytes(bad))
    finally:
        rx.close()
    samples = ulaw_decode(b"".join(audio))
    assert len(samples) >= 8000
    assert abs(dominant_frequency(samples) - 440) <= 10
