"""A BYE (or re-INVITE) that names a live dialog but comes from another transport address.

Issue "hostile input": BYE spoofing must not tear down a keyed call. The oracle is the call itself
and its GSA: both survive the spoofed request, which gets 403; the genuine BYE still works.
"""

from __future__ import annotations

import asyncio
import copy
import socket

import pytest

from mikey.keying import Mode
from sipglue.message import Response, parse_message
from sipglue.ua import TerminationReason

from .test_keying import Side, answered, assert_clean, call_pair, sides, target

__all__ = ["sides"]  # the fixture, re-exported for pytest


def _rogue_send(data: bytes, dest: tuple[str, int]) -> Response:
    """Send from a fresh UDP socket (another port) and read the answer."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        sock.sendto(data, dest)
        while True:
            reply = parse_message(sock.recv(65535))
            if isinstance(reply, Response) and reply.status >= 200:
                return reply


@pytest.mark.timeout(30)
@pytest.mark.parametrize("method", ["BYE", "INVITE"])
async def test_in_dialog_request_from_another_address_is_refused(
    sides: list[Side], method: str
) -> None:
    uac, uas = await call_pair(sides, Mode.PSK, True)
    call = await uac.keying.invite(uac.ua, target(uas))
    remote = await answered(uas)
    assert call.dialog is not None and remote.id is not None
    # what the attacker knows: Call-ID, both tags and a plausible CSeq (a copy of the dialog)
    forged = copy.deepcopy(call.dialog).create_request(
        method, f"SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKspoof{method}"
    )
    reply = await asyncio.to_thread(_rogue_send, forged.encode(), ("127.0.0.1", uas.ua.port))
    assert reply.status == 403
    await asyncio.sleep(0.1)
    assert not remote.ended and remote.id in uas.registry and call.id in uac.registry
    await call.bye()  # the genuine BYE, from the dialog's peer, still ends the call
    assert await asyncio.wait_for(remote.wait_terminated(), 5) == TerminationReason.REMOTE_BYE
    assert_clean(uac, uas)
