"""Test-only media helpers: G.711 mu-law, a 440 Hz tone, dominant-frequency estimate, UDP ports.

Pure Python (no numpy, no audioop) so the interop tests can compare decoded audio, not packets.
"""

from __future__ import annotations

import math
import os
import socket
import struct
import time
from collections.abc import Iterator

RATE = 8000
_BIAS = 0x84
_CLIP = 32635


def ulaw_encode_sample(sample: int) -> int:
    """ITU-T G.711 mu-law encoding of one 16-bit sample."""
    sign = 0x80 if sample < 0 else 0
    magnitude = min(-sample if sample < 0 else sample, _CLIP) + _BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def ulaw_decode(data: bytes) -> list[int]:
    out = []
    for byte in data:
        u = ~byte & 0xFF
        t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
        out.append(_BIAS - t if u & 0x80 else t - _BIAS)
    return out


def tone_ulaw(freq: float, seconds: float, amplitude: int = 8000) -> bytes:
    n = int(RATE * seconds)
    return bytes(
        ulaw_encode_sample(int(amplitude * math.sin(2 * math.pi * freq * i / RATE)))
        for i in range(n)
    )


def goertzel_power(samples: list[int], freq: float) -> float:
    coeff = 2 * math.cos(2 * math.pi * freq / RATE)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + coeff * s1 - s2, s1
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dominant_frequency(samples: list[int], lo: int = 100, hi: int = 2000, step: int = 10) -> int:
    """Frequency (Hz, on a ``step`` grid) with the largest Goertzel power."""
    window = samples[: RATE // 2]
    if len(window) < RATE // 10:
        raise AssertionError(f"only {len(samples)} samples decoded")
    return max(range(lo, hi + 1, step), key=lambda f: goertzel_power(window, f))


def rtp_packets(payload: bytes, ssrc: int, *, seq0: int = 1, ptime: int = 160) -> Iterator[bytes]:
    for i in range(0, len(payload) - ptime + 1, ptime):
        n = i // ptime
        yield (
            struct.pack("!BBHII", 0x80, 0, (seq0 + n) & 0xFFFF, i & 0xFFFFFFFF, ssrc)
            + (payload[i : i + ptime])
        )


def rtp_payload(packet: bytes) -> tuple[int, bytes]:
    """(sequence number, payload) of a plain RTP packet (CSRCs, extension, padding handled)."""
    first = packet[0]
    offset = 12 + 4 * (first & 0x0F)
    if first & 0x10:
        offset += 4 + 4 * int.from_bytes(packet[offset + 2 : offset + 4], "big")
    end = len(packet) - (packet[-1] if first & 0x20 else 0)
    return int.from_bytes(packet[2:4], "big"), packet[offset:end]


def free_udp_port_pair() -> int:
    """An even port P with P and P+1 free on 127.0.0.1 (RTP and RTCP)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1] & ~1
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no free UDP port pair")


def udp_port_bound(port: int) -> bool:
    """True when some process has a UDP socket bound to ``port`` (/proc/net/udp)."""
    hexport = f":{port:04X}"
    for path in ("/proc/net/udp", "/proc/net/udp6"):
        if not os.path.exists(path):
            continue
        with open(path) as fh:
            for line in fh.readlines()[1:]:
                if line.split()[1].endswith(hexport):
                    return True
    return False


def wait_bound(port: int, proc_alive: object, limit: float = 15.0) -> None:
    """Poll until ``port`` is bound; the limit only guards against a hang."""
    end = time.monotonic() + limit
    while not udp_port_bound(port):
        if not proc_alive() or time.monotonic() > end:  # type: ignore[operator]
            raise AssertionError(f"peer never bound UDP port {port}")
        time.sleep(0.05)


def receive_all(sock: socket.socket, idle: float = 1.5) -> list[bytes]:
    """Datagrams until the socket stays silent for ``idle`` seconds."""
    sock.settimeout(idle)
    out = []
    while True:
        try:
            out.append(sock.recv(4096))
        except TimeoutError:
            return out
