"""Identities bound end to end over RTSP: who may re-key a session, who may key a presentation.

* The RTSP client installs a server-initiated re-key (GET_PARAMETER ``mikey``) only when it
  authenticates as the server identity that keyed the session; a message authenticated by a
  third identity the client also trusts (a PSK or a certificate of the same CA) is refused and
  the media keeps decrypting with the keys in force.
* ``MikeyServerKeying(required_identities=...)`` admits to a presentation only clients that
  authenticate as an allowed identity (compared per RFC 3261 §19.1.4): client keys by their
  I_MESSAGE, server keys by a signed answer (DH, RSA-R); anything else is 463 with nothing kept.

Oracles: our real client and server over sockets, the GSAs of both registries, the CSB table of
the server's MIKEY configuration and the RTSP status codes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest

from mikey.exchange import ExchangeConfig, Initiator, StreamSpec
from mikey.keying import Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore
from rtspglue.client import RtspClient
from rtspglue.errors import KeyMgmtFailure, RtspStatusError
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.server import RtspServer
from srtp import _libsrtp
from srtp.gsa import Gsa, GsaRegistry
from tests.mikey import certs
from tests.mikey.pair import ALICE, BOB, PSK, configs, ep
from tests.rtspglue.rig import decrypts_on

MALLORY = "sip:mallory@example.com"
CAROL = "sip:carol@example.com"
K_MALLORY = b"mallory's 16 B k"
K_CAROL = b"carol's 16 B key"


@pytest.fixture(autouse=True)
def _no_leaked_contexts() -> None:
    assert _libsrtp.live_sessions() == 0


def _snapshot(gsa: Gsa) -> tuple[object, ...]:
    keys = tuple(
        (ssrc, tuple(bytes(e.master_key) for e in stream.entries))
        for streams in (gsa.outbound, gsa.inbound)
        for ssrc, stream in sorted(streams.items())
    )
    return gsa.csb_id, gsa.registration, gsa.rekey_sa, keys


def _signed(name: str, mode: Mode, peer: str, peer_name: str) -> ExchangeConfig:
    """A certificate party of the test CA (``name`` -> ``sip:name@example.com``)."""
    leaf = certs.leaf(name, san_uri=f"sip:{name}@example.com")
    peer_leaf = certs.leaf(peer_name, san_uri=peer)
    return ExchangeConfig(
        mode=mode,
        identity=f"sip:{name}@example.com",
        peer_identity=peer,
        credentials=Credentials(leaf.key, (leaf.cert,)),
        trust=TrustStore([certs.ca().cert]),
        peer_certificate=peer_leaf.cert if mode is Mode.PK else None,
    )


# -- the client accepts re-keys from the server that keyed the session only ------------------


@pytest.mark.parametrize(
    ("mode", "client_keys"),
    [(Mode.PSK, True), (Mode.PSK, False), (Mode.PK, True)],
    ids=["psk-client-keys", "psk-server-keys", "pk-client-keys"],
)
async def test_client_refuses_a_server_rekey_by_a_third_identity(
    mode: Mode, client_keys: bool
) -> None:
    init_cfg, resp_cfg = configs(mode)  # initiator ALICE, responder BOB
    if client_keys:  # the client is ALICE (initiator), the server BOB
        server_cfg, client_cfg, client_id = resp_cfg, init_cfg, ALICE
        if mode is Mode.PK:  # to re-key by GET_PARAMETER the server encrypts to ALICE's key
            alice = certs.leaf("alice", san_uri=ALICE)
            server_cfg = replace(server_cfg, peer_certificate=alice.cert)
    else:  # the server is ALICE (initiator), the client BOB
        server_cfg, client_cfg, client_id = init_cfg, resp_cfg, BOB
    if mode is Mode.PSK:  # the client also shares a key with Mallory
        psk = StaticPskStore({ALICE: PSK, BOB: PSK, MALLORY: K_MALLORY})
        client_cfg = replace(client_cfg, psk=psk)
        mallory = ExchangeConfig(
            identity=MALLORY, peer_identity=client_id, psk=StaticPskStore({client_id: K_MALLORY})
        )
    else:  # ... or Mallory has a certificate of the same CA
        mallory = _signed("mallory", mode, client_id, client_id.split(":")[1].split("@")[0])
    sreg, creg = GsaRegistry(), GsaRegistry()
    skeying = MikeyServerKeying(server_cfg, registry=sreg, server_keys=not client_keys)
    async with RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying) as server:
        keying = MikeyClientKeying(client_cfg, registry=creg, client_keys=client_keys)
        async with RtspClient(server.url("tone"), keying=keying) as client:
            await client.setup(interleaved=True)
            await client.play()
            await decrypts_on(client, keying)
            assert keying.registration is not None and client.ssrc is not None
            before = _snapshot(creg.get(keying.key))
            forged = Initiator(ep(mallory)).start(
                time.time(),
                [StreamSpec(client.ssrc, 0, 0)],  # the stream has not wrapped: ROC 0
                csb_id=keying.registration.csb_id,
            )
            with pytest.raises(KeyMgmtFailure):
                keying.accept_server_message(forged)
            assert _snapshot(creg.get(keying.key)) == before
            assert keying.stats.rekeys == 0
            await decrypts_on(client, keying, packets=20)
            # The server that keyed the session still may (PSK and PK re-key without answer).
            keying.accept_server_message(await client.get_mikey())
            assert keying.stats.rekeys == 1
            await asyncio.sleep(3 * skeying.switch_delay)  # the server now uses the new key
            await decrypts_on(client, keying)
            await client.teardown()
    skeying.close()
    assert sreg.audit().clean and creg.audit().clean


# -- required identities per presentation ------------------------------------------------------


def _client_keys_configs(mode: Mode, who: str) -> ExchangeConfig:
    """``who`` (alice or carol) sending its own keys to BOB."""
    if mode is Mode.PSK:
        key = PSK if who == "alice" else K_CAROL
        return ExchangeConfig(
            identity=f"sip:{who}@example.com", peer_identity=BOB, psk=StaticPskStore({BOB: key})
        )
    return _signed(who, mode, BOB, "bob")


@pytest.mark.parametrize("mode", [Mode.PSK, Mode.PK], ids=["psk", "pk"])
async def test_required_identity_with_client_keys(mode: Mode) -> None:
    _, server_cfg = configs(mode)  # BOB
    server_cfg = replace(server_cfg, psk=StaticPskStore({ALICE: PSK, CAROL: K_CAROL}))
    sreg = GsaRegistry()
    # The host part of a SIP URI compares without regard to case (RFC 3261 §19.1.4).
    required = {"tone": ["sip:alice@EXAMPLE.com"]}
    skeying = MikeyServerKeying(
        server_cfg, registry=sreg, server_keys=False, required_identities=required
    )
    sources = {"/tone": lambda: ToneSource(700), "/open": lambda: ToneSource(900)}
    async with RtspServer(sources, keying=skeying) as server:
        csbs = len(skeying.endpoint.csbs)
        for who, path, allowed in [
            ("carol", "tone", False),
            ("alice", "tone", True),
            ("carol", "open", True),
        ]:
            ck = MikeyClientKeying(_client_keys_configs(mode, who), client_keys=True)
            async with RtspClient(server.url(path), keying=ck) as client:
                if not allowed:
                    with pytest.raises(RtspStatusError) as info:
                        await client.setup(interleaved=True)
                    assert info.value.status == 463
                    assert not server.sessions and sreg.audit().live_gsas == 0
                    assert len(skeying.endpoint.csbs) == csbs  # nothing kept of the exchange
                    assert skeying.refused == 1
                else:
                    await client.setup(interleaved=True)
                    await client.play()
                    await decrypts_on(client, ck)
                    (session,) = server.sessions.values()
                    assert sreg.get(session.session_id).registration.initiator_id == (
                        f"sip:{who}@example.com"
                    )
                    await client.teardown()
            ck.close()
            assert ck.registry.audit().clean
    skeying.close()
    assert sreg.audit().clean


@pytest.mark.parametrize("mode", [Mode.DH, Mode.RSA_R], ids=["dh", "rsa-r"])
@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "refused"])
async def test_required_identity_with_server_keys(mode: Mode, allowed: bool) -> None:
    init_cfg, client_cfg = configs(mode)  # server ALICE offers keys, the client is BOB
    # The server names no peer: it learns who answered from the signed R_MESSAGE.
    server_cfg = replace(init_cfg, peer_identity=None)
    required = {"/tone": frozenset({BOB if allowed else CAROL})}
    sreg, creg = GsaRegistry(), GsaRegistry()
    skeying = MikeyServerKeying(server_cfg, registry=sreg, required_identities=required)
    async with RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying) as server:
        keying = MikeyClientKeying(client_cfg, registry=creg)
        async with RtspClient(server.url("tone"), keying=keying) as client:
            media = await client.describe()
            assert media.key_mgmt  # signed answers name the client: server keys are offered
            if allowed:
                await client.setup(interleaved=True)
                await client.play()
                await decrypts_on(client, keying)
                await client.teardown()
            else:
                with pytest.raises(RtspStatusError) as info:
                    await client.setup(interleaved=True)
                assert info.value.status == 463
                assert not server.sessions and sreg.audit().live_gsas == 0
                assert skeying.refused == 1
        keying.close()
    skeying.close()
    assert sreg.audit().clean and creg.audit().clean


@pytest.mark.parametrize("mode", [Mode.PSK, Mode.PK, Mode.DHHMAC])
async def test_server_keys_that_cannot_name_the_client_are_not_offered(mode: Mode) -> None:
    server_cfg, _ = configs(mode)
    skeying = MikeyServerKeying(server_cfg, required_identities={"/tone": [BOB]})
    sources = {"/tone": lambda: ToneSource(700), "/open": lambda: ToneSource(900)}
    async with RtspServer(sources, keying=skeying) as server:
        async with RtspClient(server.url("tone")) as client:
            assert (await client.describe()).key_mgmt == ()  # no answer would name the client
        async with RtspClient(server.url("open")) as client:
            assert (await client.describe()).key_mgmt != ()
    skeying.close()
    assert skeying.pending == 0


async def test_null_kemac_authenticates_nobody() -> None:
    cfg = ExchangeConfig(identity=ALICE, psk=StaticPskStore({}, default=bytes(16)))
    skeying = MikeyServerKeying(
        cfg, allow_null_kemac=True, server_keys=False, required_identities={"/tone": [ALICE]}
    )
    async with RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying) as server:
        # The GStreamer profile: the IDi it sends is a claim nothing authenticates.
        ck = MikeyClientKeying(cfg, allow_null_kemac=True, client_keys=True)
        async with RtspClient(server.url("tone"), keying=ck) as client:
            with pytest.raises(RtspStatusError) as info:
                await client.setup(interleaved=True)
            assert info.value.status == 463
        ck.close()
    skeying.close()
    assert skeying.registry.audit().clean
