"""protect+unprotect throughput of our Data SA contexts vs raw pylibsrtp, same packets, same run.

Trials alternate (ours, raw, ours, raw, ...) so machine noise hits both; the median of each side is
compared. Goal: ours >= 0.95x raw.
"""

from __future__ import annotations

import statistics
import struct
import time

import pylibsrtp

from mikey.keying import DataSaEntry, SrtpPolicy
from srtp.context import InboundStream, OutboundStream

GOAL = 0.95
SSRC = 0xDEADBEEF
KEY = bytes(range(1, 17))
SALT = bytes(range(100, 114))


def _packets(n: int) -> list[bytes]:
    return [
        struct.pack("!BBHII", 0x80, 0, i & 0xFFFF, i * 160 & 0xFFFFFFFF, SSRC) + bytes(160)
        for i in range(n)
    ]


def _entry() -> DataSaEntry:
    return DataSaEntry(
        cs_id=1,
        ssrc=SSRC,
        roc=0,
        policy_no=0,
        policy=SrtpPolicy(),
        master_key=bytearray(KEY),
        master_salt=bytearray(SALT),
    )


def _ours(packets: list[bytes]) -> float:
    tx, rx = OutboundStream([_entry()]), InboundStream([_entry()])
    try:
        protect, unprotect = tx.protect, rx.unprotect
        start = time.perf_counter()
        for p in packets:
            unprotect(protect(p))
        return len(packets) / (time.perf_counter() - start)
    finally:
        tx.close()
        rx.close()


def _raw(packets: list[bytes]) -> float:
    tx = pylibsrtp.Session(pylibsrtp.Policy(KEY + SALT, pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    rx = pylibsrtp.Session(pylibsrtp.Policy(KEY + SALT, pylibsrtp.Policy.SSRC_ANY_INBOUND))
    protect, unprotect = tx.protect, rx.unprotect
    start = time.perf_counter()
    for p in packets:
        unprotect(protect(p))
    return len(packets) / (time.perf_counter() - start)


def run(quick: bool) -> list[dict[str, object]]:
    """One row: protect+unprotect pairs/s of 172-byte RTP packets, ours vs raw pylibsrtp."""
    packets = _packets(5_000 if quick else 30_000)
    trials = 5 if quick else 11
    ours: list[float] = []
    raw: list[float] = []
    for _ in range(trials):
        ours.append(_ours(packets))
        raw.append(_raw(packets))
    o, r = statistics.median(ours), statistics.median(raw)
    ratio = o / r
    return [
        {
            "metric": "srtp protect+unprotect pairs/s (172 B, AES_CM_128_HMAC_SHA1_80)",
            "ours": round(o),
            "baseline": round(r),
            "ratio": round(ratio, 3),
            "goal": f">= {GOAL}x raw pylibsrtp",
            "passed": ratio >= GOAL,
        }
    ]


if __name__ == "__main__":
    import sys

    for row in run(quick="--quick" in sys.argv):
        print(
            f"{row['metric']}: ours {row['ours']}/s, pylibsrtp {row['baseline']}/s, "
            f"ratio {row['ratio']}x (goal {row['goal']}): {'PASS' if row['passed'] else 'FAIL'}"
        )
