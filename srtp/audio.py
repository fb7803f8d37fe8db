"""Audio tracks and a PCM recorder for the aiortc bridge, on aiortc's and PyAV's public API.

* :class:`ToneTrack` is a live sine source: 20 ms mono s16 frames paced on the event loop's
  clock (frame *k* is due at ``start + k * 20 ms``, so a late wake-up is not accumulated), ending
  after ``duration`` seconds if one is given.
* :func:`wav_track` plays a WAV file (any format FFmpeg reads) through
  ``aiortc.contrib.media.MediaPlayer``.
* :class:`PcmRecorder` consumes a track (e.g. the one :func:`srtp.media.receive_audio` returns),
  converts every frame to 16-bit mono PCM at one rate with ``av.AudioResampler`` and keeps the
  samples, which :meth:`PcmRecorder.write_wav` stores as a WAV file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fractions
import math
import sys
import wave
from array import array
from pathlib import Path

import av
from aiortc.contrib.media import MediaPlayer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .errors import SrtpError

__all__ = ["AudioTrackError", "PcmRecorder", "ToneTrack", "wav_track"]

PTIME = 0.020


class AudioTrackError(SrtpError):
    """Bad tone parameters, an unreadable WAV file, or a recorder misuse."""


class ToneTrack(MediaStreamTrack):
    """A sine tone at ``frequency`` Hz as a live aiortc audio track (see the module docstring)."""

    kind = "audio"

    def __init__(
        self,
        frequency: float,
        *,
        sample_rate: int = 48000,
        amplitude: float = 0.5,
        duration: float | None = None,
    ) -> None:
        super().__init__()
        if sample_rate <= 0 or sample_rate % 50:
            raise AudioTrackError("sample rate must be a positive multiple of 50 Hz")
        if not 0 < frequency < sample_rate / 2 or not 0 <= amplitude <= 1:
            raise AudioTrackError("tone frequency must be below Nyquist and amplitude in [0, 1]")
        if duration is not None and duration <= 0:
            raise AudioTrackError("duration must be positive")
        self.frequency = frequency
        self.sample_rate = sample_rate
        self._per_frame = int(sample_rate * PTIME)
        self._peak = amplitude * 32767
        self._step = 2 * math.pi * frequency / sample_rate
        self._limit = None if duration is None else round(duration / PTIME)
        self._count = 0
        self._start: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._limit is not None and self._count >= self._limit:
            self.stop()
            raise MediaStreamError
        loop = asyncio.get_running_loop()
        if self._start is None:
            self._start = loop.time()
        delay = self._start + self._count * PTIME - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        n = self._per_frame
        first = self._count * n
        peak, step = self._peak, self._step
        samples = array("h", (round(peak * math.sin(step * (first + i))) for i in range(n)))
        frame = av.AudioFrame(format="s16", layout="mono", samples=n)
        frame.planes[0].update(samples.tobytes())
        frame.pts = first
        frame.sample_rate = self.sample_rate
        frame.time_base = fractions.Fraction(1, self.sample_rate)
        self._count += 1
        return frame


def wav_track(path: str | Path, *, loop: bool = False) -> MediaStreamTrack:
    """The audio track of a WAV file, decoded and paced by aiortc's MediaPlayer."""
    if not Path(path).is_file():
        raise AudioTrackError("WAV file not found")
    try:
        player = MediaPlayer(str(path), loop=loop)
    except (av.FFmpegError, OSError) as exc:
        raise AudioTrackError(f"cannot open WAV file: {type(exc).__name__}") from None
    track = player.audio
    if track is None:
        raise AudioTrackError("the file has no audio stream")
    return track


class PcmRecorder:
    """Collects a track's audio as 16-bit mono samples at ``rate`` Hz."""

    def __init__(self, track: MediaStreamTrack, *, rate: int = 8000) -> None:
        if track.kind != "audio":
            raise AudioTrackError("PcmRecorder needs an audio track")
        if rate <= 0:
            raise AudioTrackError("rate must be positive")
        self.track = track
        self.rate = rate
        self.samples: array[int] = array("h")
        self.frames = 0
        self._resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
        self._task: asyncio.Task[None] | None = None
        self.ended = asyncio.Event()

    def start(self) -> None:
        """Start consuming the track (until it ends or :meth:`stop`)."""
        if self._task is not None:
            raise AudioTrackError("recorder already started")
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            while True:
                try:
                    frame = await self.track.recv()
                except MediaStreamError:
                    return
                if not isinstance(frame, av.AudioFrame):
                    continue
                self.frames += 1
                for out in self._resampler.resample(frame):
                    self._append(out)
        finally:
            self.ended.set()

    def _append(self, frame: av.AudioFrame) -> None:
        chunk = array("h")
        chunk.frombytes(bytes(frame.planes[0])[: frame.samples * 2])  # s16: native order
        self.samples.extend(chunk)

    async def wait(self, samples: int) -> None:
        """Return once ``samples`` samples are recorded or the track ended."""
        while len(self.samples) < samples and not self.ended.is_set():
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        """Stop consuming; idempotent."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.ended.set()

    def write_wav(self, path: str | Path) -> None:
        """Store the recorded samples as a 16-bit PCM mono WAV file."""
        data = array("h", self.samples)
        if sys.byteorder != "little":
            data.byteswap()
        with wave.open(str(path), "wb") as wav:
            wav.setnchannels(1)
            wav.setsampwidth(2)
            wav.setframerate(self.rate)
            wav.writeframes(data.tobytes())
