"""MIKEY-keyed SRTP over RTSP with GStreamer 1.22 (a real peer), both directions.

* rtspsrc plays our server (``allow_null_kemac``: PSK, NULL KEMAC, 30-byte TEK, GStreamer SP):
  its srtpdec decrypts and the WAV it writes holds the tone we sent; the KeyMgmt rtspsrc sends in
  SETUP (keys for its RTCP) is accepted into a GSA of its own.
* Our client plays gst-rtsp-server with the SAVP profile: the keys from its DESCRIBE decrypt the
  stream to its test tone, and our SETUP KeyMgmt is accepted ("update key" in rtspstream:5).

Oracles: the tone frequency measured at the far end and GStreamer's own debug log. As root every
peer must be present (missing = failure).
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mikey.exchange import ExchangeConfig
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource, dominant_frequency, read_wav
from rtspglue.server import RtspServer
from srtp.gsa import GsaRegistry

from .peers import GST_PYTHON, missing_peer, require_peer

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent


async def _stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_rtspsrc_decrypts_our_mikey_keyed_tone(tmp_path: Path) -> None:
    gst_launch = require_peer("gst-launch-1.0")
    out = tmp_path / "x.wav"
    registry = GsaRegistry()
    keying = MikeyServerKeying(ExchangeConfig(), registry=registry, allow_null_kemac=True)
    async with RtspServer({"/tone": lambda: ToneSource(1250)}, keying=keying) as server:
        proc = await asyncio.create_subprocess_exec(
            "timeout", "--foreground", "30", gst_launch, "-e", "-q",
            "rtspsrc", f"location={server.url('tone')}", "protocols=tcp", "!",
            "rtppcmudepay", "!", "mulawdec", "!", "audioconvert", "!", "wavenc", "!",
            "filesink", f"location={out}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:

            async def enough_audio() -> None:
                while not out.exists() or out.stat().st_size < 44 + 16000:  # 1 s of audio
                    if proc.returncode is not None:
                        return
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(enough_audio(), 25)
            (session,) = server.sessions.values()
            assert session.transport.profile == "SAVP"
            assert session.session_id in registry  # server keys from DESCRIBE
            assert f"{session.session_id}#peer" in registry  # rtspsrc's SETUP KeyMgmt
            assert keying.refused == 0 and session.packets_dropped == 0
        finally:
            # -e: EOS lets wavenc finalise the file. --foreground above: without it, timeout
            # forwards SIGINT to gst-launch *and* its process group (a second SIGINT that kills
            # gst-launch while it waits for EOS).
            await _stop(proc, signal.SIGINT)
        assert proc.returncode == 0, (await proc.stderr.read()).decode()[-500:]  # type: ignore[union-attr]
    assert registry.audit().clean, registry.audit()
    samples = read_wav(out)
    assert len(samples) >= 8000
    assert dominant_frequency(samples[-4000:]) == pytest.approx(1250, abs=2)


@pytest.fixture
async def gst_savp_server(tmp_path: Path) -> AsyncIterator[tuple[str, Path]]:
    if not Path(GST_PYTHON).exists():
        missing_peer(f"{GST_PYTHON} is missing")
    log = tmp_path / "gst-rtsp-server.log"
    env = dict(os.environ, GST_DEBUG="rtspstream:5", GST_DEBUG_NO_COLOR="1")
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            "timeout", "60", GST_PYTHON, str(HERE / "gst_rtsp_server.py"), "0", "1100", "/tone",
            "--savp",
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
            env=env,
        )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        if not line.startswith("READY "):
            missing_peer(f"gst-rtsp-server did not start: {log.read_text()[-300:]}")
        yield f"rtsp://127.0.0.1:{int(line.split()[1])}/tone", log
    finally:
        await _stop(proc)


@pytest.mark.parametrize("tcp", [True, False], ids=["tcp", "udp"])
async def test_our_client_decrypts_gst_rtsp_server_savp(
    gst_savp_server: tuple[str, Path], tcp: bool
) -> None:
    url, log = gst_savp_server
    registry = GsaRegistry()
    keying = MikeyClientKeying(ExchangeConfig(), registry=registry, allow_null_kemac=True)
    async with RtspClient(url, keying=keying) as client:
        media = await client.describe()
        assert media.proto == "RTP/SAVP" and len(media.key_mgmt) == 1
        await client.setup(interleaved=tcp)
        await client.play()
        samples = await asyncio.wait_for(client.wait_for_samples(8000), 20)
        assert dominant_frequency(samples[-4000:]) == pytest.approx(1100, abs=2)
        assert keying.stats.decrypted == client.packets_received and keying.stats.rejected == 0
        assert keying.own_ssrc is not None
        await client.teardown()
    keying.close()
    assert registry.audit().clean
    text = log.read_text(errors="replace")
    assert "failed to parse MIKEY message" not in text
    assert f"update key for {keying.own_ssrc:08x}" in text, text[-2000:]
