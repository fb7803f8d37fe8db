"""MIKEY in SIP against sipp (a real, independent SIP UA that knows no MIKEY).

* sipp as UAS: our UAC's INVITE must carry a session-level ``a=key-mgmt:mikey`` (sipp's
  ``ereg check_it`` fails the call otherwise); sipp logs the extracted I_MESSAGE and the test
  decodes it with ``mikey decode`` (a subprocess): CSB ID and CS map must be what our GSA holds.
* sipp as UAC: the test builds a fresh I_MESSAGE with ``mikey offer --v --state``; sipp sends it
  to ``mikey sip listen``, extracts our 200 OK's MIKEY response and logs it; ``mikey finish``
  (the initiator, verifying the V MAC with the PSK) must accept it. A second sipp call replaying
  the same I_MESSAGE must get 488 with a ``MIKEY:`` Warning (sipp's check_it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from mikey.exchange import ExchangeConfig
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from sipglue.errors import CallError
from sipglue.keying import MikeyCallKeying
from sipglue.ua import TerminationReason, UserAgent
from srtp.gsa import GsaRegistry
from tests.interop.peers import require_peer
from tests.sipglue.test_cli import Listener, free_port

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "sipp"
MIKEY = [sys.executable, "-m", "mikey_cli"]
PSK = "000102030405060708090a0b0c0d0e0f"


def sipp_cmd(args: list[str]) -> list[str]:
    sipp = require_peer("sipp")
    return [
        "timeout", "25", sipp, *args, "-i", "127.0.0.1", "-m", "1", "-nostdin",
        "-timeout", "15", "-timeout_error", "-trace_err", "-trace_logs",
    ]  # fmt: skip


def logged(cwd: Path, tag: str) -> list[str]:
    """Values the scenario wrote with <log message="TAG value"/>."""
    out: list[str] = []
    for path in cwd.glob("*_logs.log"):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith(tag + " "):
                out.append(line[len(tag) + 1 :].strip())
    return out


def errors(cwd: Path) -> str:
    return "".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*_errors.log"))


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["timeout", "30", *MIKEY, *args], capture_output=True, text=True, check=False
    )


def config(verify: bool) -> ExchangeConfig:
    return ExchangeConfig(
        mode=Mode.PSK, psk=StaticPskStore({}, default=bytes.fromhex(PSK)), verify=verify
    )


async def sipp_uas(tmp_path: Path) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *sipp_cmd(["-sf", str(SCENARIOS / "mikey_uas.xml"), "-p", str(port)]),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    return proc, port


async def wait_proc(proc: asyncio.subprocess.Process) -> int:
    try:
        await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    assert proc.returncode is not None
    return proc.returncode


@pytest.mark.timeout(60)
async def test_our_uac_to_sipp_uas(tmp_path: Path) -> None:
    proc, port = await sipp_uas(tmp_path)
    registry = GsaRegistry()
    keying = MikeyCallKeying(config(verify=False), registry=registry)
    ua = UserAgent(keying, user="alice")
    await ua.listen()
    try:
        await asyncio.sleep(0.3)  # sipp binds its port
        call = await keying.invite(ua, f"sip:sipp@127.0.0.1:{port}")
        keys = keying.keys(call)
        gsa = registry.get(keys.key)
        csb_id, ssrc = gsa.csb_id, keys.local.ssrc
        assert keys.remote_ssrc == 0  # no response: the peer's stream is keyed as SSRC-any
        assert call.local_sdp is not None
        (sent,) = call.local_sdp.key_mgmt(None)
        await call.bye()
        assert call.reason == TerminationReason.LOCAL_BYE
        assert await wait_proc(proc) == 0, errors(tmp_path)
        # the BYE tore our GSA down: nothing live, nothing unwiped
        report = registry.audit()
        assert report.live_gsas == 0 and report.unwiped_buffers == 0
        assert keying.calls == {}
    finally:
        await ua.close()
        await keying.close()
    (extracted,) = logged(tmp_path, "OFFER")
    assert extracted == sent.data
    r = mikey("decode", "--json", extracted)
    assert r.returncode == 0, r.stderr
    msg = json.loads(r.stdout)
    assert msg["data_type"] == "PSK_INIT" and msg["v"] is False
    assert msg["csb_id"] == csb_id
    assert [cs["ssrc"] for cs in msg["cs"]] == [ssrc, 0]
    assert {p["type"] for p in msg["payloads"]} >= {"T", "RAND", "SP", "KEMAC"}


@pytest.mark.timeout(60)
async def test_uac_expecting_response_refuses_sipp_answer(tmp_path: Path) -> None:
    """With V, an answer without the MIKEY response is refused: ACK, BYE, and no keys left."""
    proc, port = await sipp_uas(tmp_path)
    registry = GsaRegistry()
    keying = MikeyCallKeying(config(verify=True), registry=registry)
    ua = UserAgent(keying, user="alice")
    await ua.listen()
    try:
        await asyncio.sleep(0.3)
        with pytest.raises(CallError):
            await keying.invite(ua, f"sip:sipp@127.0.0.1:{port}")
        assert await wait_proc(proc) == 0, errors(tmp_path)  # sipp got ACK and BYE
        assert registry.audit().live_gsas == 0 and keying.pending == 0
    finally:
        await ua.close()
        await keying.close()


def run_sipp_uac(scenario: str, km: str, port: int, cwd: Path) -> int:
    r = subprocess.run(
        sipp_cmd(
            ["-sf", str(SCENARIOS / scenario), "-key", "km", km, "-s", "bob",
             "-p", str(free_port()), f"127.0.0.1:{port}"]
        ),
        cwd=cwd, capture_output=True, text=True, check=False,
    )  # fmt: skip
    return r.returncode


@pytest.mark.timeout(90)
def test_sipp_uac_to_mikey_sip_listen(tmp_path: Path) -> None:
    require_peer("sipp")
    port = free_port()
    listener = Listener("--psk", PSK, port=port)
    try:
        state = tmp_path / "offer.state"
        r = mikey(
            "offer", "--mode", "psk", "--v", "--psk", PSK, "--ssrc", "0x1234,0",
            "--state", str(state),
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        i_message = r.stdout.strip()
        first, second = tmp_path / "first", tmp_path / "second"
        first.mkdir()
        second.mkdir()
        assert run_sipp_uac("mikey_uac.xml", i_message, port, first) == 0, errors(first)
        (answer,) = logged(first, "ANSWER")
        # the test's initiator verifies our response (V MAC under the PSK)
        r = mikey("finish", "--state", str(state), answer)
        assert r.returncode == 0, r.stdout + r.stderr
        data_sa = json.loads(r.stdout)["data_sa"]
        ssrcs = [e["ssrc"] for e in data_sa]
        assert ssrcs[0] == 0x1234 and ssrcs[1] != 0  # the listener filled in its SSRC
        # a replay of the same I_MESSAGE in a new call: 488 with a MIKEY Warning
        assert run_sipp_uac("mikey_uac_refused.xml", i_message, port, second) == 0, errors(second)
        (warning,) = logged(second, "WARNING")
        assert "MIKEY: " in warning
    finally:
        rc, events = listener.finish()
    calls = [e for e in events if e["event"] == "call"]
    refused = [e for e in events if e["event"] == "refused"]
    (stopped,) = [e for e in events if e["event"] == "stopped"]
    assert len(calls) == 1 and calls[0]["keyed"] and calls[0]["torn_down"]
    assert calls[0]["reason"] == "REMOTE_BYE"
    assert len(refused) == 1 and refused[0]["status"] == 488
    assert stopped["live_gsas"] == 0 and rc == 0
