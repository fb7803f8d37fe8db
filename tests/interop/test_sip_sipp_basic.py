"""SIP interop with sipp (a real, independent SIP UA): our UAC -> sipp UAS, sipp UAC -> our UAS.

The oracle is sipp itself: its scenarios extract the a=key-mgmt line with ``ereg check_it`` (a
missing or different line fails the call and sipp exits non-zero), and the sipp UAS echoes the
extracted value back, which our UAC compares with what it sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
from pathlib import Path

import pytest

from sipglue.sdp import KeyMgmtAttr, SessionDescription, build_audio_offer
from sipglue.ua import Call, TerminationReason, UserAgent
from tests.interop.peers import require_peer
from tests.sipglue.helpers import Recorder, response_for

pytestmark = pytest.mark.interop

SCENARIOS = Path(__file__).parent / "sipp"
BLOB = base64.b64encode(b"\x01\x00\x05I_MESSAGE-bytes" * 3).decode()


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_sipp(args: list[str], cwd: Path) -> asyncio.subprocess.Process:
    sipp = require_peer("sipp")
    return await asyncio.create_subprocess_exec(
        "timeout",
        "25",
        sipp,
        *args,
        "-i",
        "127.0.0.1",
        "-m",
        "1",
        "-nostdin",
        "-timeout",
        "15",
        "-timeout_error",
        "-trace_err",
        "-trace_msg",
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def finish(proc: asyncio.subprocess.Process, cwd: Path) -> tuple[int, str]:
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    logs = "".join(p.read_text(errors="replace")[-3000:] for p in cwd.glob("*_errors.log"))
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")[-2000:] + logs


class EchoChecker(Recorder):
    """UAC handler: the answer must carry exactly the key-mgmt data we offered (sipp echoes)."""

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        self.answers.append(answer)
        assert call.local_sdp is not None
        if answer.effective_key_mgmt(0) != call.local_sdp.effective_key_mgmt(0):
            raise ValueError("key-mgmt not echoed")


@pytest.mark.timeout(60)
async def test_our_uac_to_sipp_uas(tmp_path: Path) -> None:
    port = free_udp_port()
    proc = await run_sipp(["-sf", str(SCENARIOS / "uas_keymgmt.xml"), "-p", str(port)], tmp_path)
    handler = EchoChecker()
    ua = UserAgent(handler, user="alice")
    await ua.listen()
    try:
        offer = build_audio_offer(
            "127.0.0.1", 40000, session_id=5, key_mgmt=[KeyMgmtAttr("mikey", BLOB)]
        )
        call = await ua.invite(f"sip:sipp@127.0.0.1:{port}", offer)
        (km,) = handler.answers[0].key_mgmt(None)
        assert km.data == BLOB
        await call.bye()
        code, log = await finish(proc, tmp_path)
        assert code == 0, log
        assert handler.terminated == [(call.call_id, TerminationReason.LOCAL_BYE)]
    finally:
        await ua.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _sipp_uac(tmp_path: Path, port: int, expected: str) -> asyncio.subprocess.Process:
    """sipp as UAC offering BLOB to our UAS on ``port``; it fails unless the answer's key-mgmt
    matches the regular expression ``expected``."""
    scenario = (SCENARIOS / "uac_keymgmt.xml").read_text().replace("@EXPECTED@", expected)
    (tmp_path / "uac.xml").write_text(scenario)
    return await run_sipp(
        [
            "-sf",
            "uac.xml",
            "-key",
            "km",
            BLOB,
            "-s",
            "bob",
            "-p",
            str(free_udp_port()),
            f"127.0.0.1:{port}",
        ],
        tmp_path,
    )


@pytest.mark.timeout(60)
async def test_sipp_uac_to_our_uas(tmp_path: Path) -> None:
    handler = Recorder()
    ua = UserAgent(handler, user="bob")
    _, port = await ua.listen()
    proc = await _sipp_uac(tmp_path, port, response_for(BLOB).replace("+", "\\+"))
    try:
        code, log = await finish(proc, tmp_path)
        assert code == 0, log
        (offer,) = handler.offers
        assert offer.key_mgmt(None) == [KeyMgmtAttr("mikey", BLOB)]
        call = await asyncio.wait_for(ua.incoming.get(), 5)
        assert await asyncio.wait_for(call.wait_terminated(), 5) == TerminationReason.REMOTE_BYE
        assert call._ack_received.is_set()
    finally:
        await ua.close()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.timeout(60)
async def test_sipp_uac_detects_wrong_answer(tmp_path: Path) -> None:
    """Negative control: the same scenario fails when the expected answer is different."""
    handler = Recorder()
    ua = UserAgent(handler, user="bob")
    _, port = await ua.listen()
    proc = await _sipp_uac(tmp_path, port, "bm90LXRoaXM=")
    try:
        code, _ = await finish(proc, tmp_path)
        assert code != 0
    finally:
        await ua.close()
