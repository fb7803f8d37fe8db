"""G.711 against the stdlib reference (audioop, where present), RTP header, sources, pacing."""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct
import warnings
import wave
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtspglue.errors import MediaError, RtspError
from rtspglue.media import (
    PcmuPacketizer,
    RtpPacket,
    ToneSource,
    WavSource,
    dominant_frequency,
    pace,
    pcmu_decode,
    pcmu_encode,
    read_wav,
    write_wav,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    try:
        import audioop
    except ImportError:  # Python >= 3.13
        audioop = None  # type: ignore[assignment]


@pytest.mark.skipif(audioop is None, reason="audioop (the reference) not available")
def test_pcmu_matches_audioop_for_every_sample() -> None:
    every = list(range(-32768, 32768))
    assert pcmu_encode(every) == audioop.lin2ulaw(array("h", every).tobytes(), 2)
    ref = array("h", audioop.ulaw2lin(bytes(range(256)), 2))
    assert pcmu_decode(bytes(range(256))) == ref


def test_pcmu_known_codes() -> None:
    # ITU-T G.711 mu-law: 0 -> 0xFF, max positive -> 0x80, max negative -> 0x00.
    assert pcmu_encode([0, 32767, -32768]) == b"\xff\x80\x00"
    assert list(pcmu_decode(b"\xff\x7f\x80\x00")) == [0, 0, 32124, -32124]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-32768, 32767), max_size=50))
def test_pcmu_roundtrip_error_bounded(samples: list[int]) -> None:
    decoded = pcmu_decode(pcmu_encode(samples))
    for x, y in zip(samples, decoded, strict=True):
        assert abs(x - y) <= max(8, abs(x) // 16 + 8)  # segment quantisation step


def test_rtp_header_rfc3550_layout() -> None:
    raw = RtpPacket(0, 0x1234, 0xA0B0C0D0, 0xDEADBEEF, b"\xff" * 3, marker=True).encode()
    assert raw == bytes.fromhex("80801234a0b0c0d0deadbeef") + b"\xff" * 3
    assert RtpPacket.parse(raw) == RtpPacket(0, 0x1234, 0xA0B0C0D0, 0xDEADBEEF, b"\xff" * 3, True)


def test_rtp_parse_csrc_extension_padding() -> None:
    raw = (
        bytes([0xB1, 0x08])
        + struct.pack("!HII", 7, 8, 9)
        + struct.pack("!I", 5)
        + struct.pack("!HH", 0xBEDE, 1)
        + b"\x00" * 4
        + b"pay"
        + b"\x00\x02"
    )
    pkt = RtpPacket.parse(raw)
    assert (pkt.payload_type, pkt.sequence, pkt.csrcs, pkt.payload) == (8, 7, (5,), b"pay")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x80" * 11,
        b"\x40" + b"\x00" * 11,
        b"\x81" + b"\x00" * 11,
        b"\x90" + b"\x00" * 11,
        b"\xa0" + b"\x00" * 12,
        b"\xa0" + b"\x00" * 11 + b"\x20",
    ],
)
def test_rtp_malformed(raw: bytes) -> None:
    with pytest.raises(MediaError):
        RtpPacket.parse(raw)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80))
def test_rtp_fuzz(raw: bytes) -> None:
    with contextlib.suppress(RtspError):
        RtpPacket.parse(raw)


def test_packetizer_sequence_timestamp_and_tone() -> None:
    pk = PcmuPacketizer(ToneSource(700), 0x11223344, sequence=0xFFFF, timestamp=0xFFFFFF00)
    packets = [RtpPacket.parse(pk.next_packet()) for _ in range(30)]
    assert [p.sequence for p in packets[:3]] == [0xFFFF, 0, 1]
    assert [p.timestamp for p in packets[:3]] == [0xFFFFFF00, 0xFFFFFFA0, 0x40]
    assert packets[0].marker and not packets[1].marker
    assert all(len(p.payload) == 160 and p.ssrc == 0x11223344 for p in packets)
    samples = [s for p in packets for s in pcmu_decode(p.payload)]
    assert dominant_frequency(samples) == pytest.approx(700, abs=2)


@pytest.mark.parametrize("freq", [300.0, 440.0, 1000.0, 2500.0, 3333.0])
def test_dominant_frequency_against_formula(freq: float) -> None:
    samples = [round(8000 * math.sin(2 * math.pi * freq * n / 8000 + 0.3)) for n in range(4000)]
    assert dominant_frequency(samples) == pytest.approx(freq, abs=1)
    with pytest.raises(MediaError):
        dominant_frequency(samples[:10])


def test_wav_write_read_and_resample(tmp_path: Path) -> None:
    path = tmp_path / "t.wav"
    tone = ToneSource(500, rate=16000).read(16000)
    write_wav(path, tone, rate=16000)
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16000, 1, 2)
    resampled = read_wav(path)
    assert len(resampled) == 8000
    assert dominant_frequency(resampled) == pytest.approx(500, abs=2)
    source = WavSource(path)
    assert len(source.read(20000)) == 20000  # loops


def test_wav_rejects_stereo_and_garbage(tmp_path: Path) -> None:
    stereo = tmp_path / "s.wav"
    with wave.open(str(stereo), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00" * 400)
    with pytest.raises(MediaError, match="mono"):
        WavSource(stereo)
    junk = tmp_path / "j.wav"
    junk.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(MediaError):
        WavSource(junk)
    with pytest.raises(MediaError):
        WavSource(tmp_path / "missing.wav")


def test_tone_parameters() -> None:
    with pytest.raises(MediaError):
        ToneSource(4000)
    with pytest.raises(MediaError):
        ToneSource(100, amplitude=2)


async def test_pace_schedule_is_drift_free() -> None:
    # The k-th packet is never sent before start + k * ptime (measured on the loop's clock).
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    start = loop.time()
    counter = iter(range(1000))
    sent = await pace(
        lambda: bytes([next(counter)]), lambda b: stamps.append(loop.time()), ptime=0.005, count=20
    )
    assert sent == 20
    assert all(t >= start + k * 0.005 - 1e-6 for k, t in enumerate(stamps))
