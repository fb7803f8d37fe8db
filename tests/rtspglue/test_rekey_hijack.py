"""SET_PARAMETER rekey of someone else's RTSP session (issue "hostile input").

Mallory is a legitimate user of the server (it holds her PSK) and knows Alice's session id and
CSB ID. Her MIKEY update for Alice's CSB, sent on Alice's session from her own connection, must
be refused and leave Alice's keys in place; Alice's own rekey still works. Since sessions are
bound to their connection the refusal is 454 Session Not Found (it was 463 before: the answer
no longer tells a live session id from a guess). Oracle: the server's GSA for the session (its
Registration SA and master keys) and the RTSP status codes.
"""

from __future__ import annotations

import asyncio
import base64
import time

import pytest

from mikey.exchange import ExchangeConfig, Initiator, StreamSpec
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.server import RtspServer
from srtp.gsa import GsaRegistry
from tests.mikey.pair import ep

ALICE, MALLORY, SERVER = "sip:alice@example.com", "sip:mallory@example.com", "rtsp:server"
K_ALICE, K_MALLORY = bytes(range(16)), bytes(range(100, 116))


async def _set_parameter(server: RtspServer, session_id: str, mikey: bytes) -> int:
    body = b"mikey: " + base64.b64encode(mikey) + b"\r\n"
    request = (
        f"SET_PARAMETER {server.url('tone')} RTSP/1.0\r\nCSeq: 1\r\nSession: {session_id}\r\n"
        f"Content-Type: text/parameters\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        writer.write(request)
        status_line = await asyncio.wait_for(reader.readline(), 5)
    finally:
        writer.close()
    return int(status_line.split()[1])


def _config(identity: str, psk: bytes, peer: str = SERVER) -> ExchangeConfig:
    return ExchangeConfig(
        mode=Mode.PSK, identity=identity, peer_identity=peer, psk=StaticPskStore({peer: psk})
    )


@pytest.mark.parametrize("client_keys", [True, False], ids=["client-keys", "server-keys"])
async def test_rekey_of_another_users_session_is_refused(client_keys: bool) -> None:
    server_cfg = ExchangeConfig(
        mode=Mode.PSK,
        identity=SERVER,
        peer_identity=ALICE,
        psk=StaticPskStore({ALICE: K_ALICE, MALLORY: K_MALLORY}),
    )
    sreg, creg = GsaRegistry(), GsaRegistry()
    skeying = MikeyServerKeying(server_cfg, registry=sreg, server_keys=not client_keys)
    async with RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying) as server:
        alice_keying = MikeyClientKeying(
            _config(ALICE, K_ALICE), registry=creg, client_keys=client_keys
        )
        alice = RtspClient(server.url("tone"), keying=alice_keying)
        async with alice:
            await alice.describe()
            await alice.setup(interleaved=True)
            await alice.play()
            (session_id,) = server.sessions
            gsa = sreg.get(session_id)
            csb, ssrc = gsa.csb_id, next(iter(gsa.outbound))
            before = bytes(gsa.outbound[ssrc].entries[-1].master_key)

            # Mallory: a valid MIKEY update for Alice's CSB, authenticated with her own PSK
            forged = Initiator(ep(_config(MALLORY, K_MALLORY))).start(
                time.time(), [StreamSpec(ssrc, 0, 0)], csb_id=csb
            )
            # ... sent on her own connection with Alice's session id (known or sniffed)
            assert await _set_parameter(server, session_id, forged) == 454
            gsa = sreg.get(session_id)
            assert bytes(gsa.outbound[ssrc].entries[-1].master_key) == before
            assert gsa.rekey_sa is None or gsa.rekey_sa.initiator_id != MALLORY

            if client_keys:  # Alice's own update is still accepted
                await alice.set_mikey(alice_keying.rekey_message())
            await alice.teardown()
    assert sreg.audit().clean and creg.audit().clean
