"""Our UAC -> Kamailio (stateful, record-routing proxy) -> our UAS.

Kamailio is a real, independent SIP proxy: it must relay the INVITE with the SDP untouched (the
a=key-mgmt line survives), insert Record-Route, and the in-dialog ACK and BYE (both directions)
must come through it following the route set (loose routing), which the UAS sees as a second Via.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import subprocess
from pathlib import Path

import pytest

from sipglue.message import Message, Request
from sipglue.sdp import KeyMgmtAttr, build_audio_offer
from sipglue.transport import Address, Transport
from sipglue.ua import TerminationReason, UserAgent
from tests.interop.peers import require_peer
from tests.sipglue.helpers import Recorder, response_for

pytestmark = pytest.mark.interop

MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
CONFIG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
disable_tcp=yes
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK")) {{
            if (t_check_trans()) {{
                t_relay();
            }}
            exit;
        }}
        sl_send_reply("404", "Not Here");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    record_route();
    if (!t_relay()) {{
        sl_reply_error();
    }}
}}
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RecordingUA(UserAgent):
    """Our UA, also keeping every request it received (to see the path they took)."""

    received: list[Request]

    def message_received(self, message: Message, source: Address, transport: Transport) -> None:
        if isinstance(message, Request):
            self.received.append(message)
        super().message_received(message, source, transport)


@pytest.mark.timeout(90)
@pytest.mark.parametrize("bye_from", ["uac", "uas"])
async def test_call_through_kamailio(tmp_path: Path, bye_from: str) -> None:
    kamailio = require_peer("kamailio")
    port = free_udp_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CONFIG.format(port=port, modules=MODULES))
    check = subprocess.run(
        ["timeout", "20", kamailio, "-c", "-f", str(cfg)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stderr[-2000:]
    proc = await asyncio.create_subprocess_exec(
        "timeout",
        "60",
        kamailio,
        "-DD",
        "-E",
        "-f",
        str(cfg),
        "-P",
        str(tmp_path / "k.pid"),
        "-Y",
        str(tmp_path),
        "-w",
        str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    uac_h, uas_h = Recorder(), Recorder()
    uac = RecordingUA(uac_h, user="alice")
    uas = RecordingUA(uas_h, user="bob")
    uac.received, uas.received = [], []
    await uac.listen()
    await uas.listen()
    try:
        blob = base64.b64encode(b"MIKEY through a proxy").decode()
        offer = build_audio_offer(
            "127.0.0.1", 40000, session_id=3, key_mgmt=[KeyMgmtAttr("mikey", blob)]
        )
        call = await uac.invite(f"sip:bob@127.0.0.1:{uas.port}", offer, proxy=("127.0.0.1", port))
        # the key-mgmt line survived the proxy in both directions
        assert uas_h.offers[0].key_mgmt(None) == [KeyMgmtAttr("mikey", blob)]
        assert uac_h.answers[0].key_mgmt(None)[0].data == response_for(blob)
        invite = next(r for r in uas.received if r.method == "INVITE")
        assert len(invite.vias) == 2 and invite.vias[0].port == port
        assert [rr.uri.port for rr in invite.record_route] == [port]
        assert call.dialog is not None and [r.uri.port for r in call.dialog.route_set] == [port]
        remote = await asyncio.wait_for(uas.incoming.get(), 10)
        await asyncio.wait_for(remote.wait_confirmed(), 10)
        ack = next(r for r in uas.received if r.method == "ACK")
        assert len(ack.vias) == 2 and ack.vias[0].port == port  # ACK followed the route set
        if bye_from == "uac":
            await call.bye()
            assert (
                await asyncio.wait_for(remote.wait_terminated(), 10) == TerminationReason.REMOTE_BYE
            )
            bye = next(r for r in uas.received if r.method == "BYE")
        else:
            await remote.bye()
            assert (
                await asyncio.wait_for(call.wait_terminated(), 10) == TerminationReason.REMOTE_BYE
            )
            bye = next(r for r in uac.received if r.method == "BYE")
        assert len(bye.vias) == 2 and bye.vias[0].port == port  # BYE followed the route set
        assert bye.uri.startswith("sip:")
    finally:
        await uac.close()
        await uas.close()
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
