"""ToneSource's looped period table against direct synthesis (the formula is the oracle)."""

from __future__ import annotations

import math

import pytest

from rtspglue.media import PcmuPacketizer, RtpPacket, ToneSource, pcmu_encode

CHUNKS = (1, 160, 7, 199, 200, 201, 8000, 9001, 160, 3)


def formula(frequency: float, start: int, count: int, rate: int = 8000) -> list[int]:
    peak, step = 0.5 * 32767, 2 * math.pi * frequency / rate
    return [round(peak * math.sin(step * n)) for n in range(start, start + count)]


@pytest.mark.parametrize("frequency", [440, 523, 1250, 440.5, 1000 / 3])
def test_reads_follow_the_formula_across_chunk_sizes(frequency: float) -> None:
    source, encoded = ToneSource(frequency), ToneSource(frequency)
    at = 0
    for count in CHUNKS:
        want = formula(frequency, at, count)
        got = source.read(count)
        assert len(got) == count
        # Float error of sin() at large arguments may move a rounding by one step.
        assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 1
        assert encoded.read_pcmu(count) == pcmu_encode(got)
        at += count


def test_packets_from_the_table_match_encoding_the_samples() -> None:
    table = PcmuPacketizer(ToneSource(700), 0x01020304, sequence=5, timestamp=9)
    samples = ToneSource(700)
    for k in range(60):
        packet = RtpPacket.parse(table.next_packet())
        assert packet.payload == pcmu_encode(samples.read(160))
        assert (packet.sequence, packet.timestamp, packet.marker) == (5 + k, 9 + 160 * k, k == 0)
        assert (packet.ssrc, packet.payload_type) == (0x01020304, 0)
