"""Plain (RTP/AVP) RTSP interop with GStreamer 1.22: rtspsrc vs our server, our client vs
gst-rtsp-server. The tone frequency measured at the far end is the oracle."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rtspglue.client import RtspClient
from rtspglue.media import ToneSource, dominant_frequency, read_wav
from rtspglue.server import RtspServer

from .peers import missing_peer, require_peer

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent
SYSTEM_PYTHON = "/usr/bin/python3"


def _have_gst_server() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = "import gi; gi.require_version('GstRtspServer', '1.0')"
    result = subprocess.run(
        ["timeout", "10", SYSTEM_PYTHON, "-c", probe], capture_output=True, check=False
    )
    return result.returncode == 0


@pytest.fixture
def gst_launch() -> None:
    require_peer("gst-launch-1.0")


@pytest.fixture
def gst_rtsp_server_gi() -> None:
    if not _have_gst_server():
        missing_peer("gst-rtsp-server GI missing")


needs_gst_launch = pytest.mark.usefixtures("gst_launch")
needs_gst_server = pytest.mark.usefixtures("gst_rtsp_server_gi")


async def _stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


@needs_gst_launch
async def test_gstreamer_rtspsrc_plays_our_tone(tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    async with RtspServer({"/tone": lambda: ToneSource(1250)}) as server:
        # --foreground: timeout forwards our SIGINT to gst-launch only. Without it, it also
        # signals its own process group, gst-launch gets a second SIGINT while handling the
        # first (EOS) and dies of it now and then (returncode -2).
        proc = await asyncio.create_subprocess_exec(
            "timeout", "--foreground", "30", "gst-launch-1.0", "-e", "-q",
            "rtspsrc", f"location={server.url('tone')}", "protocols=tcp", "!",
            "rtppcmudepay", "!", "mulawdec", "!", "audioconvert", "!", "wavenc", "!",
            "filesink", f"location={out}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:

            async def enough_audio() -> None:
                # 44-byte header + 1 s of 16-bit audio (8000 samples).
                while not out.exists() or out.stat().st_size < 44 + 16000:
                    if proc.returncode is not None:
                        return
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(enough_audio(), 25)
            assert len(server.sessions) == 1
        finally:
            await _stop(proc, signal.SIGINT)  # -e: SIGINT sends EOS, wavenc finalises the file
        assert proc.returncode == 0, (await proc.stderr.read()).decode()[-500:]  # type: ignore[union-attr]
    samples = read_wav(out)
    assert len(samples) >= 8000
    assert dominant_frequency(samples[-4000:]) == pytest.approx(1250, abs=2)


@pytest.fixture
async def gst_server() -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        "timeout", "60", SYSTEM_PYTHON, str(HERE / "gst_rtsp_server.py"), "0", "1100", "/tone",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert line.startswith("READY "), line
        yield f"rtsp://127.0.0.1:{int(line.split()[1])}/tone"
    finally:
        await _stop(proc)


@needs_gst_server
@pytest.mark.parametrize("tcp", [False, True])
async def test_our_client_plays_gst_rtsp_server(gst_server: str, tcp: bool) -> None:
    async with RtspClient(gst_server) as client:
        methods = await client.options()
        assert "DESCRIBE" in methods and "SETUP" in methods
        media = await client.describe()
        assert media.proto == "RTP/AVP" and "0" in media.formats and media.key_mgmt == ()
        result = await client.setup(interleaved=tcp)
        assert (result.transport.interleaved is not None) == tcp
        await client.play()
        samples = await asyncio.wait_for(client.wait_for_samples(8000), 20)
        assert dominant_frequency(samples[-4000:]) == pytest.approx(1100, abs=2)
        assert client.packets_dropped == 0
        await client.teardown()
