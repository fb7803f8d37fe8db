"""RTP audio for the RTSP glue: G.711 mu-law, RTP header codec, sources, pacing, analysis.

* G.711 mu-law (ITU-T G.711 Table 2a) with lookup tables built once at import: 16384 entries for
  the 14-bit linear input and 256 for decoding. No ``audioop`` (removed in Python 3.13).
* :class:`RtpPacket` is the RFC 3550 §5.1 fixed header (+ CSRCs, extension, padding on input).
* Audio sources yield 16-bit signed samples at 8 kHz; :class:`PcmuPacketizer` cuts them into
  20 ms (160-sample) PCMU packets with consecutive sequence numbers and timestamps. A tone is
  periodic: :class:`ToneSource` synthesises and mu-law encodes one exact period once (shared by
  every source of that tone) and loops it, so a packet costs a slice, not 160 sines.
* :func:`pace` sends packets on a drift-free schedule: packet *k* is due at ``start + k * ptime``
  on ``loop.time()``, so a late wake-up is never accumulated.
* :func:`dominant_frequency` is a Goertzel scan (coarse grid, then 1 Hz refinement) used to check
  a received tone without numpy.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import struct
import wave
from array import array
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol, TypeVar

from .errors import MediaError

__all__ = [
    "PCMU_CLOCK_RATE",
    "PCMU_PAYLOAD_TYPE",
    "SAMPLES_PER_PACKET",
    "AudioSource",
    "PcmuPacketizer",
    "RtpPacket",
    "ToneSource",
    "WavSource",
    "dominant_frequency",
    "pace",
    "pcmu_decode",
    "pcmu_encode",
    "read_wav",
    "write_wav",
]

PCMU_PAYLOAD_TYPE = 0  # RFC 3551 §6, Table 4
PCMU_CLOCK_RATE = 8000
SAMPLES_PER_PACKET = 160  # 20 ms at 8 kHz
log = logging.getLogger(__name__)
PTIME = 0.020

# --- G.711 mu-law ---------------------------------------------------------------------------

_BIAS = 0x84
_CLIP = 8159  # in 14-bit units
_SEG_END = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)


def _ulaw_from_14bit(value: int) -> int:
    if value < 0:
        value, mask = -value, 0x7F
    else:
        mask = 0xFF
    value = min(value, _CLIP) + (_BIAS >> 2)
    for seg, end in enumerate(_SEG_END):
        if value <= end:
            return ((seg << 4) | ((value >> (seg + 1)) & 0x0F)) ^ mask
    return 0x7F ^ mask  # unreachable after clipping


def _linear_from_ulaw(code: int) -> int:
    code = ~code & 0xFF
    magnitude = (((code & 0x0F) << 3) + _BIAS) << ((code & 0x70) >> 4)
    return _BIAS - magnitude if code & 0x80 else magnitude - _BIAS


# Index: the 14-bit two's complement value (sample >> 2) & 0x3FFF.
_ENCODE = bytes(_ulaw_from_14bit(i - 0x4000 if i & 0x2000 else i) for i in range(0x4000))
_DECODE = tuple(_linear_from_ulaw(c) for c in range(256))


def pcmu_encode(samples: Iterable[int]) -> bytes:
    """16-bit signed linear samples to G.711 mu-law bytes."""
    table = _ENCODE
    try:
        return bytes(table[(s >> 2) & 0x3FFF] for s in samples)
    except TypeError:
        raise MediaError("samples must be integers") from None


def pcmu_decode(data: bytes) -> array[int]:
    """G.711 mu-law bytes to 16-bit signed linear samples."""
    table = _DECODE
    return array("h", [table[b] for b in data])


# --- RTP header (RFC 3550 §5.1) -------------------------------------------------------------

_RTP_HEADER = struct.Struct("!BBHII")


@dataclass(frozen=True, slots=True)
class RtpPacket:
    """An RTP packet. ``parse`` accepts CSRCs, a header extension and padding."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = field(default=b"", repr=False)
    marker: bool = False
    csrcs: tuple[int, ...] = ()

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Decode an RTP packet; MediaError when it is not one."""
        if len(data) < _RTP_HEADER.size:
            raise MediaError("RTP packet shorter than 12 bytes")
        b0, b1, seq, ts, ssrc = _RTP_HEADER.unpack_from(data)
        if b0 >> 6 != 2:
            raise MediaError("RTP version is not 2")
        offset = _RTP_HEADER.size
        count = b0 & 0x0F
        if len(data) < offset + 4 * count:
            raise MediaError("RTP packet truncated in CSRC list")
        csrcs = struct.unpack_from(f"!{count}I", data, offset)
        offset += 4 * count
        if b0 & 0x10:
            if len(data) < offset + 4:
                raise MediaError("RTP packet truncated in header extension")
            (words,) = struct.unpack_from("!H", data, offset + 2)
            offset += 4 + 4 * words
        end = len(data)
        if b0 & 0x20:
            if end == offset or data[-1] == 0:
                raise MediaError("invalid RTP padding")
            end -= data[-1]
        if end < offset:
            raise MediaError("RTP packet truncated")
        return cls(b1 & 0x7F, seq, ts, ssrc, bytes(data[offset:end]), bool(b1 & 0x80), csrcs)

    def encode(self) -> bytes:
        """The packet on the wire (no padding, no extension)."""
        if not 0 <= self.payload_type <= 127 or len(self.csrcs) > 15:
            raise MediaError("RTP payload type or CSRC count out of range")
        if not (0 <= self.sequence <= 0xFFFF and 0 <= self.timestamp <= 0xFFFFFFFF):
            raise MediaError("RTP sequence or timestamp out of range")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise MediaError("RTP SSRC out of range")
        head = _RTP_HEADER.pack(
            0x80 | len(self.csrcs),
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        )
        return head + struct.pack(f"!{len(self.csrcs)}I", *self.csrcs) + self.payload


# --- sources ------------------------------------------------------------------------------


_Seq = TypeVar("_Seq", bytes, "array[int]")


class AudioSource(Protocol):
    """Endless mono 16-bit audio at 8 kHz."""

    def read(self, count: int) -> list[int]:
        """The next ``count`` samples."""
        ...


#: Longest tone period kept as a table, in seconds of samples (a 0.1 Hz grid fits).
MAX_TONE_PERIOD_SECONDS = 10


def _tone_period(frequency: float, rate: int) -> int | None:
    """Samples after which ``sin(2 pi f n / rate)`` repeats exactly, if a table is worth it."""
    f = Fraction(frequency).limit_denominator(1000)
    if float(f) != frequency:
        return None
    period = (f / rate).denominator
    return period if period <= MAX_TONE_PERIOD_SECONDS * rate else None


@functools.lru_cache(maxsize=64)
def _tone_table(frequency: float, peak: float, rate: int, period: int) -> tuple[array[int], bytes]:
    """One period of the tone (samples) and its mu-law encoding, each doubled so that any
    read of up to one period is a single slice."""
    step = 2 * math.pi * frequency / rate
    samples = array("h", [round(peak * math.sin(step * i)) for i in range(period)])
    return samples * 2, pcmu_encode(samples) * 2


class ToneSource:
    """A sine tone at ``frequency`` Hz, continuous in phase across reads."""

    __slots__ = ("_encoded", "_n", "_peak", "_period", "_step", "frequency", "rate")

    def __init__(self, frequency: float, *, amplitude: float = 0.5, rate: int = 8000) -> None:
        if not 0 < frequency < rate / 2 or not 0 <= amplitude <= 1:
            raise MediaError("tone frequency must be below Nyquist and amplitude in [0, 1]")
        self.frequency = frequency
        self.rate = rate
        self._peak = amplitude * 32767
        self._step = 2 * math.pi * frequency / rate
        self._n = 0
        self._period = _tone_period(frequency, rate)
        self._encoded = b""  # the doubled mu-law period, looked up once (read_pcmu is hot)
        if self._period is not None:
            _, self._encoded = _tone_table(frequency, self._peak, rate, self._period)

    def read(self, count: int) -> list[int]:
        start = self._n
        self._n += count
        if self._period is not None:
            samples, _ = _tone_table(self.frequency, self._peak, self.rate, self._period)
            return self._loop(samples, start, count).tolist()
        peak, step = self._peak, self._step
        return [round(peak * math.sin(step * (start + i))) for i in range(count)]

    def read_pcmu(self, count: int) -> bytes:
        """The next ``count`` samples, already G.711 mu-law encoded (same as ``read``)."""
        period = self._period
        if period is None:
            return pcmu_encode(self.read(count))
        start = self._n
        self._n = start + count
        if count <= period:  # one slice: what every 20 ms packet takes
            at = start % period
            return self._encoded[at : at + count]
        return self._loop(self._encoded, start, count)

    def _loop(self, doubled: _Seq, start: int, count: int) -> _Seq:
        period = len(doubled) // 2
        at = start % period
        if count <= period:
            return doubled[at : at + count]
        whole, rest = divmod(count, period)
        return doubled[at : at + period] * whole + doubled[at : at + rest]


def read_wav(path: str | Path, *, rate: int = 8000, max_seconds: float = 600.0) -> array[int]:
    """Samples of a 16-bit PCM mono WAV file, resampled (linear) to ``rate`` if needed."""
    try:
        with wave.open(str(path), "rb") as wav:
            if wav.getsampwidth() != 2 or wav.getnchannels() != 1:
                raise MediaError("only 16-bit PCM mono WAV files are supported")
            source_rate = wav.getframerate()
            frames = wav.getnframes()
            if frames > max_seconds * source_rate:
                raise MediaError("WAV file too long")
            raw = wav.readframes(frames)
    except (wave.Error, EOFError, OSError) as exc:
        raise MediaError(f"cannot read WAV file: {type(exc).__name__}") from None
    samples = array("h")
    samples.frombytes(raw[: len(raw) // 2 * 2])
    if struct.pack("=H", 1) != b"\x01\x00":
        samples.byteswap()
    if source_rate == rate or not samples:
        return samples
    if source_rate <= 0:
        raise MediaError("invalid WAV sample rate")
    ratio = source_rate / rate
    count = int(len(samples) / ratio)
    last = len(samples) - 1
    out = array("h")
    for i in range(count):
        pos = i * ratio
        j = int(pos)
        frac = pos - j
        nxt = samples[min(j + 1, last)]
        out.append(round(samples[j] * (1 - frac) + nxt * frac))
    return out


class WavSource:
    """Loops the samples of a WAV file (see :func:`read_wav`)."""

    def __init__(self, path: str | Path) -> None:
        self._samples = read_wav(path)
        if not self._samples:
            raise MediaError("WAV file has no samples")
        self._pos = 0

    def read(self, count: int) -> list[int]:
        out: list[int] = []
        samples = self._samples
        while len(out) < count:
            take = min(count - len(out), len(samples) - self._pos)
            out.extend(samples[self._pos : self._pos + take])
            self._pos = (self._pos + take) % len(samples)
        return out


def write_wav(path: str | Path, samples: Sequence[int], *, rate: int = 8000) -> None:
    """Write 16-bit PCM mono samples to a WAV file."""
    data = array("h", samples)
    if struct.pack("=H", 1) != b"\x01\x00":
        data.byteswap()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.tobytes())


# --- packetisation and pacing --------------------------------------------------------------


class PcmuPacketizer:
    """Cuts a source into 20 ms PCMU RTP packets (RFC 3551 §4.5.14)."""

    __slots__ = ("_first", "_read_pcmu", "payload_type", "sequence", "source", "ssrc", "timestamp")

    def __init__(
        self,
        source: AudioSource,
        ssrc: int,
        *,
        sequence: int = 0,
        timestamp: int = 0,
        payload_type: int = PCMU_PAYLOAD_TYPE,
    ) -> None:
        self.source = source
        self.ssrc = ssrc & 0xFFFFFFFF
        self.sequence = sequence & 0xFFFF
        self.timestamp = timestamp & 0xFFFFFFFF
        if not 0 <= payload_type <= 127:
            raise MediaError("RTP payload type out of range")
        self.payload_type = payload_type
        self._first = True
        # Sources that keep their audio encoded (ToneSource) skip the per-sample mu-law step.
        read_pcmu: Callable[[int], bytes] | None = getattr(source, "read_pcmu", None)
        self._read_pcmu = read_pcmu

    def next_packet(self) -> bytes:
        """The next packet; sequence and timestamp advance by 1 and 160."""
        if self._read_pcmu is not None:
            payload = self._read_pcmu(SAMPLES_PER_PACKET)
        else:
            payload = pcmu_encode(self.source.read(SAMPLES_PER_PACKET))
        # RFC 3550 §5.1 header (V=2, no padding/extension/CSRC); fields are kept in range above.
        head = _RTP_HEADER.pack(
            0x80,
            (0x80 if self._first else 0) | self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        )
        self._first = False
        self.sequence = (self.sequence + 1) & 0xFFFF
        self.timestamp = (self.timestamp + SAMPLES_PER_PACKET) & 0xFFFFFFFF
        return head + payload


async def pace(
    next_packet: Callable[[], bytes],
    send: Callable[[bytes], None],
    *,
    ptime: float = PTIME,
    count: int | None = None,
) -> int:
    """Send ``next_packet()`` every ``ptime`` seconds until cancelled (or ``count`` sent).

    Packet k is due at ``start + k * ptime``; after a stall the sender catches up at once
    instead of drifting. Returns the number of packets sent.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    sent = 0
    while count is None or sent < count:
        delay = start + sent * ptime - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        send(next_packet())
        sent += 1
    return sent


class PacedStream:
    """A stream registered with a :class:`Pacer`; ``cancel()`` stops it (idempotent)."""

    __slots__ = ("cancelled", "sent", "step")

    def __init__(self, step: Callable[[], None]) -> None:
        self.step = step  # makes and sends one packet
        self.sent = 0
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class Pacer:
    """One timer task pacing many streams of the same ptime.

    The ptime is cut into slots about ``slack`` long; each stream joins the least crowded slot
    and sends one packet every time that slot's turn comes, once per ptime. The task wakes once
    per slot and sends the slot's packets in one go, so packet k of a stream leaves at
    ``first + k * ptime`` (its first packet within one ptime of :meth:`add`) and a thousand
    50 packet/s streams cost about 500 wake-ups a second, not 50,000. Slots take turns on a
    fixed grid: after a stall every due slot is served in order at once (nothing is skipped,
    nothing drifts), as :func:`pace` does for one stream. Spreading streams evenly over the
    slots keeps each burst short.
    """

    def __init__(self, ptime: float = PTIME, *, slack: float = 0.002) -> None:
        self.ptime = ptime
        self.slack = slack
        count = max(1, round(ptime / slack))
        self._width = ptime / count  # time between two slots' turns
        self._slots: list[list[PacedStream]] = [[] for _ in range(count)]
        self._turn = 0  # the slot served next ...
        self._due = 0.0  # ... at this loop time
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return sum(1 for slot in self._slots for s in slot if not s.cancelled)

    def add(self, step: Callable[[], None]) -> PacedStream:
        """Start a stream: ``step()`` (make and send one packet) runs once per ptime."""
        stream = PacedStream(step)
        slots = self._slots
        min(slots, key=len).append(stream)
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._turn, self._due = 0, loop.time()
            self._task = loop.create_task(self._run())
        return stream

    async def close(self) -> None:
        for slot in self._slots:
            for stream in slot:
                stream.cancel()
            slot.clear()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        slots, width = self._slots, self._width
        while any(slots):
            delay = self._due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                continue
            slot = slots[self._turn]
            self._turn = (self._turn + 1) % len(slots)
            self._due += width
            if self._serve(slot):
                slot[:] = [s for s in slot if not s.cancelled]
            await asyncio.sleep(0)  # let the connections' reads and writes run between slots

    @staticmethod
    def _serve(slot: list[PacedStream]) -> bool:
        """One packet for every stream of ``slot``; True if some stream is cancelled."""
        cancelled = False
        for stream in slot:
            if stream.cancelled:
                cancelled = True
                continue
            try:
                stream.step()
            except Exception:  # one broken stream must not stop the others
                log.exception("paced stream failed; stopping it")
                stream.cancel()
                cancelled = True
                continue
            stream.sent += 1
        return cancelled


# --- analysis -------------------------------------------------------------------------------


def _goertzel_power(samples: Sequence[float], coeff: float) -> float:
    s1 = s2 = 0.0
    for x in samples:
        s0 = x + coeff * s1 - s2
        s2 = s1
        s1 = s0
    return s1 * s1 + s2 * s2 - coeff * s1 * s2


def dominant_frequency(
    samples: Sequence[int],
    rate: int = 8000,
    *,
    low: float = 50.0,
    high: float | None = None,
    max_samples: int = 4000,
) -> float:
    """The strongest frequency (Hz, 1 Hz resolution) in ``samples`` by a Goertzel scan."""
    if len(samples) < 64:
        raise MediaError("need at least 64 samples to estimate a frequency")
    high = rate / 2 - 1 if high is None else high
    window = samples[:max_samples]
    mean = sum(window) / len(window)
    data = [float(x) - mean for x in window]

    def best(data: list[float], freqs: Iterable[float]) -> float:
        top, top_power = low, -1.0
        for f in freqs:
            power = _goertzel_power(data, 2 * math.cos(2 * math.pi * f / rate))
            if power > top_power:
                top, top_power = f, power
        return top

    # Coarse grid on a short window (bin width rate/len), then 1 Hz steps on the whole window.
    short = data[:800]
    coarse_step = max(1.0, rate / len(short))
    n = int((high - low) / coarse_step) + 1
    coarse = best(short, (low + i * coarse_step for i in range(n)))
    span = math.ceil(coarse_step)
    return best(data, (coarse + d for d in range(-span, span + 1) if low <= coarse + d <= high))
