"""MIKEY-keyed calls through Kamailio (a real record-routing stateful proxy) between our UAs.

Kamailio does not speak MIKEY; it must relay the SDP untouched. Oracles: the UAS's responder
accepts the I_MESSAGE that crossed the proxy and the UAC's initiator verifies the response that
came back (MACs/signatures over the exact bytes), both GSAs hold equal keys, SRTP protected on
one side decrypts on the other, ACK and BYE carry the proxy's Via (they followed the route set),
and both registries are empty afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mikey.keying import Mode
from sipglue.keying import MikeyCallKeying
from sipglue.transaction import TimerConfig
from sipglue.ua import TerminationReason
from srtp.gsa import GsaRegistry
from tests.interop.peers import require_peer
from tests.interop.test_sip_kamailio import CONFIG, MODULES, RecordingUA, free_udp_port
from tests.mikey.pair import configs
from tests.sipglue.test_keying import (
    Side,
    answered,
    assert_clean,
    assert_equal_keys,
    media_both_ways,
)

pytestmark = pytest.mark.interop


@pytest.fixture
async def kamailio(tmp_path: Path) -> AsyncIterator[int]:
    binary = require_peer("kamailio")
    port = free_udp_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CONFIG.format(port=port, modules=MODULES))
    check = subprocess.run(
        ["timeout", "20", binary, "-c", "-f", str(cfg)], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr[-2000:]
    proc = await asyncio.create_subprocess_exec(
        "timeout", "60", binary, "-DD", "-E", "-f", str(cfg), "-P", str(tmp_path / "k.pid"),
        "-Y", str(tmp_path), "-w", str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield port
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def side(mode: Mode, initiator: bool, user: str) -> tuple[Side, RecordingUA]:
    i_cfg, r_cfg = configs(mode, verify=True)
    registry = GsaRegistry()
    keying = MikeyCallKeying(i_cfg if initiator else r_cfg, registry=registry)
    ua = RecordingUA(keying, user=user, timers=TimerConfig(t1=0.1))
    ua.received = []
    await ua.listen()
    return Side(ua, keying, registry, []), ua


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("mode", "bye_from"), [(Mode.PSK, "uac"), (Mode.DH, "uas")])
async def test_keyed_call_through_kamailio(kamailio: int, mode: Mode, bye_from: str) -> None:
    uac, uac_ua = await side(mode, True, "alice")
    uas, uas_ua = await side(mode, False, "bob")
    try:
        call = await uac.keying.invite(
            uac.ua, f"sip:bob@127.0.0.1:{uas.ua.port}", proxy=("127.0.0.1", kamailio)
        )
        remote = await answered(uas)
        invite = next(r for r in uas_ua.received if r.method == "INVITE")
        assert len(invite.vias) == 2 and invite.vias[0].port == kamailio
        # the key-mgmt line crossed the proxy byte for byte, at session level
        assert call.local_sdp is not None and remote.remote_sdp is not None
        assert remote.remote_sdp.key_mgmt(None) == call.local_sdp.key_mgmt(None)
        assert call.remote_sdp is not None and remote.local_sdp is not None
        assert call.remote_sdp.key_mgmt(None) == remote.local_sdp.key_mgmt(None)
        assert len(call.remote_sdp.key_mgmt(None)) == 1
        assert_equal_keys(uac, call, uas, remote)
        ta, tb = await media_both_ways(uac, call, uas, remote)
        ta.close()
        tb.close()
        ack = next(r for r in uas_ua.received if r.method == "ACK")
        assert len(ack.vias) == 2 and ack.vias[0].port == kamailio
        if bye_from == "uac":
            await call.bye()
            ended = await asyncio.wait_for(remote.wait_terminated(), 10)
            bye = next(r for r in uas_ua.received if r.method == "BYE")
        else:
            await remote.bye()
            ended = await asyncio.wait_for(call.wait_terminated(), 10)
            bye = next(r for r in uac_ua.received if r.method == "BYE")
        assert ended == TerminationReason.REMOTE_BYE
        assert len(bye.vias) == 2 and bye.vias[0].port == kamailio
        assert_clean(uac, uas)
    finally:
        for s in (uac, uas):
            await s.ua.close()
            await s.keying.close()
