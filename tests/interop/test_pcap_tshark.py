"""``mikey pcap`` on captures tshark made (not our writer) of real sessions on loopback.

Each test starts tshark on ``lo`` with a capture filter on the test's signalling port (and RTP by
its version bits), runs a session, stops tshark by its PID, and runs ``mikey pcap``:

* GStreamer rtspsrc playing our RTSP server (media over UDP and TCP interleaved);
* our SIP call over TCP (``mikey sip listen`` / ``mikey sip call``), both directions keyed;
* our RTSP client playing gst-rtsp-server (keys from its DESCRIBE);
* the SIP capture with one byte of the KEMAC changed: refused, nothing decrypted.

Oracles: the tone each side sent, measured in the WAV ``mikey pcap`` writes (dominant frequency),
the packet counts the peers themselves report, and tshark's capture itself. As root every peer
must be present (missing = failure).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from mikey.codec import parse_message
from mikey.exchange import ExchangeConfig
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource, dominant_frequency, read_wav
from rtspglue.server import RtspServer
from srtp.gsa import GsaRegistry

from .peers import GST_PYTHON, missing_peer, require_peer, stop_wrapped

pytestmark = pytest.mark.interop

HERE = Path(__file__).parent
MIKEY = [sys.executable, "-m", "mikey_cli"]
PSK = "000102030405060708090a0b0c0d0e0f"
RTP_FILTER = "(udp and udp[8] & 0xc0 = 0x80)"  # RTP/RTCP version 2 (RFC 3550 §5.1)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def tshark_capture(path: Path, capture_filter: str) -> Iterator[Path]:
    """tshark writing ``path`` (pcapng) from ``lo``; stopped by its PID when the block ends."""
    tshark = require_peer("tshark")
    log = path.with_suffix(".log")
    with log.open("wb") as err:
        proc = subprocess.Popen(
            ["timeout", "120", tshark, "-n", "-q", "-i", "lo", "-f", capture_filter,
             "-w", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=err,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while "Capture started" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"tshark did not start: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.1)
        time.sleep(0.3)
        yield path
        time.sleep(0.5)  # the last packets reach the capture
    finally:
        stop_wrapped(proc)  # type: ignore[arg-type]
    assert path.exists() and path.stat().st_size > 0, log.read_text(errors="replace")


def mikey_pcap(*args: str, check_rc: int = 0) -> dict[str, Any]:
    proc = subprocess.run(
        ["timeout", "120", *MIKEY, "pcap", *args, "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == check_rc, proc.stderr
    assert "Traceback" not in proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def keyed_streams(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["ssrc"]: s for s in result["streams"] if s["keyed"]}


def wav_frequency(path: str) -> float:
    samples = read_wav(path)
    assert len(samples) >= 4000, path
    return dominant_frequency(samples[-4000:])


# --- GStreamer rtspsrc <- our RTSP server -----------------------------------------------------


async def _stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if proc.returncode is None:
        proc.send_signal(sig)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def _rtspsrc_session(port: int, protocols: str, out: Path) -> None:
    gst_launch = require_peer("gst-launch-1.0")
    registry = GsaRegistry()
    keying = MikeyServerKeying(ExchangeConfig(), registry=registry, allow_null_kemac=True)
    from rtspglue.server import ServerConfig

    config = ServerConfig(host="127.0.0.1", port=port)
    async with RtspServer({"/tone": lambda: ToneSource(1250)}, config=config, keying=keying) as srv:
        proc = await asyncio.create_subprocess_exec(
            "timeout", "--foreground", "30", gst_launch, "-e", "-q",
            "rtspsrc", f"location={srv.url('tone')}", f"protocols={protocols}", "!",
            "rtppcmudepay", "!", "mulawdec", "!", "audioconvert", "!", "wavenc", "!",
            "filesink", f"location={out}",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:

            async def enough_audio() -> None:
                while not out.exists() or out.stat().st_size < 44 + 16000:
                    if proc.returncode is not None:
                        return
                    await asyncio.sleep(0.1)

            await asyncio.wait_for(enough_audio(), 25)
        finally:
            await _stop(proc, signal.SIGINT)
    keying.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("protocols", ["udp", "tcp"])
def test_rtspsrc_session_with_our_server(tmp_path: Path, protocols: str) -> None:
    port = free_port()
    pcap = tmp_path / "rtsp.pcapng"
    with tshark_capture(pcap, f"tcp port {port} or {RTP_FILTER}"):
        asyncio.run(_rtspsrc_session(port, protocols, tmp_path / "gst.wav"))
    wavs = tmp_path / "wav"
    result = mikey_pcap(str(pcap), "--peer-profile", "gstreamer", "--wav-dir", str(wavs))
    methods = [row["message"].split()[0] for row in result["ladder"]]
    assert {"DESCRIBE", "SETUP", "PLAY"} <= set(methods)
    found = [m for row in result["ladder"] for m in row["mikey"]]
    assert any(m["where"].startswith("SDP") and m["type"] == "PSK_INIT" for m in found)
    assert any(m["where"] == "KeyMgmt" for m in found)  # rtspsrc's SETUP keys
    assert all("refused" not in x for x in result["exchanges"]), result["exchanges"]
    streams = keyed_streams(result)
    ours = [s for s in streams.values() if s["decrypted"] > 25]
    assert ours, result["streams"]
    (tone,) = ours
    assert tone["auth_failures"] == 0 and tone["transport"] == protocols
    assert wav_frequency(str(wavs / f"ssrc-{tone['ssrc'][2:]}.wav")) == pytest.approx(1250, abs=2)


# --- our SIP call over TCP ---------------------------------------------------------------------


def _sip_call(port: int) -> None:
    listen = subprocess.Popen(
        ["timeout", "60", *MIKEY, "sip", "listen", "--bind", f"127.0.0.1:{port}",
         "--transport", "tcp", "--psk", PSK, "--once", "--freq", "1000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert listen.stdout is not None
        assert json.loads(listen.stdout.readline())["event"] == "listening"
        r = subprocess.run(
            ["timeout", "60", *MIKEY, "sip", "call", f"sip:bob@127.0.0.1:{port};transport=tcp",
             "--psk", PSK, "--duration", "1.5", "--freq", "440", "--expect-media"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stdout + r.stderr
        listen.wait(30)
    finally:
        if listen.poll() is None:
            os.kill(listen.pid, signal.SIGTERM)
            listen.wait(10)


@pytest.fixture(scope="module")
def sip_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    port = free_port()
    pcap = tmp_path_factory.mktemp("sip") / "sip.pcapng"
    with tshark_capture(pcap, f"tcp port {port} or {RTP_FILTER}"):
        _sip_call(port)
    return pcap


def _invite_mikey(result: dict[str, Any]) -> dict[str, Any]:
    (invite,) = [r for r in result["ladder"] if r["message"].startswith("INVITE")]
    (m,) = invite["mikey"]
    return m  # type: ignore[no-any-return]


@pytest.mark.timeout(120)
def test_sip_call_over_tcp(sip_capture: Path, tmp_path: Path) -> None:
    wavs = tmp_path / "wav"
    rtp = tmp_path / "rtp"
    result = mikey_pcap(str(sip_capture), "--psk", PSK, "--wav-dir", str(wavs), "--rtp-dir",
                        str(rtp))  # fmt: skip
    starts = [r["message"].split()[0] for r in result["ladder"] if r["transport"] == "tcp"]
    assert starts.count("INVITE") == 1 and "BYE" in starts and "ACK" in starts
    m = _invite_mikey(result)
    assert m["type"] == "PSK_INIT" and m["where"] == "SDP session"
    caller_ssrc = m["ssrcs"][0]
    assert result["exchanges"] == [
        {"time": result["exchanges"][0]["time"], "csb_id": m["csb_id"], "type": "PSK_INIT",
         "keys": 2},
    ]  # fmt: skip
    streams = keyed_streams(result)
    assert len(streams) == 2, result["streams"]
    for s in streams.values():
        assert s["decrypted"] == s["packets"] > 50 and s["auth_failures"] == 0
        assert s["rtcp_decrypted"] == s["rtcp_packets"]
        assert s["payload_types"] == [0]
    (callee_ssrc,) = set(streams) - {caller_ssrc}
    assert wav_frequency(str(wavs / f"ssrc-{caller_ssrc[2:]}.wav")) == pytest.approx(440, abs=2)
    assert wav_frequency(str(wavs / f"ssrc-{callee_ssrc[2:]}.wav")) == pytest.approx(1000, abs=2)
    # the decrypted RTP pcap: tshark reads it as RTP (plain PCMU now) of both SSRCs
    tshark = require_peer("tshark")
    out = subprocess.run(
        ["timeout", "60", tshark, "-r", str(rtp / "decrypted-rtp.pcap"), "-d",
         "udp.port==1-65535,rtp", "-T", "fields", "-e", "rtp.ssrc", "-e", "rtp.p_type"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    seen = {line.split("\t")[0] for line in out.splitlines() if line.strip()}
    assert {int(x, 16) for x in seen} == {int(caller_ssrc, 16), int(callee_ssrc, 16)}
    # the keys are printed only when asked for
    assert all("master_key" not in k for k in result["keys"])
    shown = mikey_pcap(str(sip_capture), "--psk", PSK, "--show-keys")
    assert all(len(k["master_key"]) == 32 for k in shown["keys"])


@pytest.mark.timeout(120)
def test_tampered_kemac_is_reported_and_nothing_decrypted(
    sip_capture: Path, tmp_path: Path
) -> None:
    data = sip_capture.read_bytes()
    hit = re.search(rb"a=key-mgmt:mikey ([A-Za-z0-9+/=]+)", data)
    assert hit is not None
    raw = bytearray(base64.b64decode(hit.group(1)))
    assert parse_message(bytes(raw)).payloads[-1].__class__.__name__ == "Kemac"
    raw[-25] ^= 0x01  # inside the KEMAC's encrypted key data (before its 20-byte MAC)
    tampered = base64.b64encode(bytes(raw))
    assert len(tampered) == len(hit.group(1))
    bad = tmp_path / "tampered.pcapng"
    bad.write_bytes(data[: hit.start(1)] + tampered + data[hit.end(1) :])
    result = mikey_pcap(str(bad), "--psk", PSK)
    (x,) = result["exchanges"]
    assert x["keys"] == 0 and "authentication failed" in x["refused"]
    assert result["keys"] == []
    assert sum(s["decrypted"] for s in result["streams"]) == 0
    assert sum(s["packets"] for s in result["streams"]) > 100
    # a wrong PSK is refused the same way
    wrong = mikey_pcap(str(sip_capture), "--psk", "ff" * 16)
    assert "authentication failed" in wrong["exchanges"][0]["refused"]
    assert sum(s["decrypted"] for s in wrong["streams"]) == 0


# --- our RTSP client -> gst-rtsp-server ---------------------------------------------------------


async def _play_gst_server(url: str) -> int:
    registry = GsaRegistry()
    keying = MikeyClientKeying(ExchangeConfig(), registry=registry, allow_null_kemac=True)
    async with RtspClient(url, keying=keying) as client:
        await client.describe()
        await client.setup(interleaved=False)
        await client.play()
        await asyncio.wait_for(client.wait_for_samples(8000), 20)
        await client.teardown()
    keying.close()
    return keying.stats.decrypted


@pytest.mark.timeout(120)
def test_our_client_with_gst_rtsp_server(tmp_path: Path) -> None:
    if not Path(GST_PYTHON).exists():
        missing_peer(f"{GST_PYTHON} is missing")
    server = subprocess.Popen(
        ["timeout", "60", GST_PYTHON, str(HERE / "gst_rtsp_server.py"), "0", "1100", "/tone",
         "--savp"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("READY "):
            missing_peer("gst-rtsp-server did not start")
        port = int(line.split()[1])
        pcap = tmp_path / "gst.pcapng"
        with tshark_capture(pcap, f"tcp port {port} or {RTP_FILTER}"):
            decrypted = asyncio.run(_play_gst_server(f"rtsp://127.0.0.1:{port}/tone"))
    finally:
        stop_wrapped(server)  # type: ignore[arg-type]
    assert decrypted > 0
    wavs = tmp_path / "wav"
    result = mikey_pcap(str(pcap), "--peer-profile", "gstreamer", "--wav-dir", str(wavs))
    (describe,) = [r for r in result["ladder"] if r["message"].startswith("RTSP/1.0 200")
                   and any(m["where"].startswith("SDP") for m in r["mikey"])]  # fmt: skip
    assert describe["mikey"][0]["type"] == "PSK_INIT"
    # audiotestsrc sends 1024 samples per buffer: about 8 packets a second
    tone = [s for s in keyed_streams(result).values() if s["decrypted"] >= 5]
    assert len(tone) == 1, result["streams"]
    assert tone[0]["auth_failures"] == 0
    # the server's stream, as our client decrypted it (the capture may end a little later)
    assert tone[0]["decrypted"] >= decrypted
    assert wav_frequency(str(wavs / f"ssrc-{tone[0]['ssrc'][2:]}.wav")) == pytest.approx(
        1100, abs=2
    )
