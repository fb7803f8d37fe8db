"""Session binding: keying requests for a session are honoured on the connection that set it up.

Attack: Mallory learns Alice's session id (a sniffed ``Session`` header) and, from a connection
of her own, asks GET_PARAMETER ``mikey`` (which used to make the server re-key Alice's outbound
stream and hand Mallory the message: Alice stopped decrypting) or sends SET_PARAMETER with keys
of her own. Both get 454, exactly what an unknown session gets, and nothing changes. Oracles:
the server's GSA for the session (CSB, Registration SAs, every master key), Alice's client
still decrypting (its decrypted-packet count keeps rising past the server's switch delay), and
the byte-for-byte comparison with the answer to an unknown session id.

A client that comes back on a new connection may still re-key by SET_PARAMETER when its fresh
I_MESSAGE authenticates as the identity that keyed the session (PSK with identities, PK); a
session keyed without an identity cannot be re-keyed from elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import pytest

from mikey.exchange import ExchangeConfig, Initiator, StreamSpec
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.message import RtspResponse
from rtspglue.server import RtspServer
from srtp import _libsrtp
from srtp.gsa import Gsa, GsaRegistry
from tests.mikey.pair import configs, ep
from tests.rtspglue.rig import RawConnection, decrypts_on, keymgmt_body, mikey_body, parameters

ANON_PSK = bytes(range(16))


@pytest.fixture(autouse=True)
def _no_leaked_contexts() -> None:
    assert _libsrtp.live_sessions() == 0


@dataclass
class Victim:
    server: RtspServer
    server_keying: MikeyServerKeying
    server_registry: GsaRegistry
    client: RtspClient
    keying: MikeyClientKeying
    session_id: str

    @property
    def gsa(self) -> Gsa:
        return self.server_registry.get(self.session_id)


@contextlib.asynccontextmanager
async def _victim(
    server_cfg: ExchangeConfig, client_cfg: ExchangeConfig, *, client_keys: bool
) -> AsyncIterator[Victim]:
    sreg, creg = GsaRegistry(), GsaRegistry()
    skeying = MikeyServerKeying(server_cfg, registry=sreg, server_keys=not client_keys)
    async with RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying) as server:
        keying = MikeyClientKeying(client_cfg, registry=creg, client_keys=client_keys)
        client = RtspClient(server.url("tone"), keying=keying)
        async with client:
            await client.describe()
            await client.setup(interleaved=True)
            await client.play()
            await decrypts_on(client, keying)
            (session_id,) = server.sessions
            yield Victim(server, skeying, sreg, client, keying, session_id)
            await client.teardown()
    skeying.close()
    assert sreg.audit().clean and creg.audit().clean


def _snapshot(gsa: Gsa) -> tuple[object, ...]:
    """Everything of a GSA a re-key would change: CSB, Registration SAs, every master key."""
    keys = tuple(
        (ssrc, tuple(bytes(e.master_key) for e in stream.entries))
        for streams in (gsa.outbound, gsa.inbound)
        for ssrc, stream in sorted(streams.items())
    )
    return gsa.csb_id, gsa.registration, gsa.rekey_sa, keys


def _comparable(response: RtspResponse) -> tuple[object, ...]:
    headers = tuple((k, v) for k, v in response.headers if k.lower() not in ("cseq",))
    return response.status, headers, response.body


def _anonymous() -> ExchangeConfig:
    return ExchangeConfig(psk=StaticPskStore({}, default=ANON_PSK))


async def _unknown_session_answer(conn: RawConnection, url: str, body: bytes) -> RtspResponse:
    bogus = random.Random(1).randbytes(12).hex()
    return await conn.ask("SET_PARAMETER", url, parameters(bogus), body)


# -- GET_PARAMETER mikey -----------------------------------------------------------------------


async def test_get_parameter_mikey_from_another_connection_is_454_and_changes_nothing() -> None:
    server_cfg, client_cfg = configs(Mode.PSK)  # server keys (server = initiator, PSK)
    async with _victim(server_cfg, client_cfg, client_keys=False) as v:
        before = _snapshot(v.gsa)
        url = v.server.url("tone")
        async with RawConnection(v.server.port) as mallory:
            stolen = await mallory.ask("GET_PARAMETER", url, parameters(v.session_id), b"mikey\r\n")
            unknown = await mallory.ask("GET_PARAMETER", url, parameters("0" * 24), b"mikey\r\n")
        assert stolen.status == 454 and stolen.body == b""
        assert _comparable(stolen) == _comparable(unknown)  # indistinguishable from a guess
        await asyncio.sleep(3 * v.server_keying.switch_delay)  # past any key switch
        await decrypts_on(v.client, v.keying, packets=25)
        assert _snapshot(v.gsa) == before
        assert v.keying.stats.rejected == 0 and v.client.packets_dropped == 0
        # On its own connection the same request still works (and the victim keeps up).
        message = await v.client.get_mikey()
        v.keying.accept_server_message(message)
        await asyncio.sleep(3 * v.server_keying.switch_delay)
        await decrypts_on(v.client, v.keying)
        assert _snapshot(v.gsa) != before


# -- SET_PARAMETER from another connection -----------------------------------------------------


@pytest.mark.parametrize("style", ["onvif", "keymgmt"])
async def test_set_parameter_keys_from_another_connection_are_454(style: str) -> None:
    # Anonymous PSK: the session's keying identity is None, so nobody may re-key it from
    # another connection, not even with a message the server would accept on the owner's.
    async with _victim(_anonymous(), _anonymous(), client_keys=True) as v:
        before = _snapshot(v.gsa)
        ssrc = v.client.ssrc
        assert ssrc is not None
        # Mallory knows the shared PSK: a valid update of the victim's CSB with keys of hers.
        forged = Initiator(ep(_anonymous())).start(
            time.time(), [StreamSpec(ssrc, 0, 0)], csb_id=v.gsa.csb_id
        )
        control = v.client.media.control if v.client.media else v.server.url("tone")
        body = mikey_body(forged) if style == "onvif" else keymgmt_body(control, forged)
        url = v.server.url("tone")
        async with RawConnection(v.server.port) as mallory:
            answer = await mallory.ask("SET_PARAMETER", url, parameters(v.session_id), body)
            malformed = await mallory.ask(
                "SET_PARAMETER", url, parameters(v.session_id), b"mikey: !!!\r\n"
            )
            unknown = await _unknown_session_answer(mallory, url, body)
        assert answer.status == malformed.status == 454
        assert _comparable(answer) == _comparable(unknown) == _comparable(malformed)
        await asyncio.sleep(3 * v.server_keying.switch_delay)
        await decrypts_on(v.client, v.keying, packets=25)
        assert _snapshot(v.gsa) == before


async def test_reconnect_without_identity_is_454_but_same_message_works_on_own_connection() -> None:
    async with _victim(_anonymous(), _anonymous(), client_keys=True) as v:
        before = _snapshot(v.gsa)
        message = v.keying.rekey_message()  # genuine, from the victim itself
        url = v.server.url("tone")
        async with RawConnection(v.server.port) as again:
            answer = await again.ask(
                "SET_PARAMETER", url, parameters(v.session_id), mikey_body(message)
            )
        assert answer.status == 454
        assert _snapshot(v.gsa) == before
        await v.client.set_mikey(message)  # the owning connection: accepted
        assert _snapshot(v.gsa) != before
        await decrypts_on(v.client, v.keying)


@pytest.mark.parametrize("mode", [Mode.PSK, Mode.PK], ids=["psk-identities", "pk-signed"])
async def test_reconnecting_owner_may_rekey_from_a_new_connection(mode: Mode) -> None:
    init_cfg, resp_cfg = configs(mode)  # client keys: client = initiator ALICE, server BOB
    async with _victim(resp_cfg, init_cfg, client_keys=True) as v:
        before = _snapshot(v.gsa)
        owner = v.gsa.registration.initiator_id
        assert owner == "sip:alice@example.com"
        url = v.server.url("tone")
        message = v.keying.rekey_message()
        async with RawConnection(v.server.port) as again:
            answer = await again.ask(
                "SET_PARAMETER", url, parameters(v.session_id), mikey_body(message)
            )
            assert answer.status == 200, answer
            assert (answer.header("Session") or "").startswith(v.session_id)
            # ... but a replay of it, or a GET_PARAMETER mikey, is still refused there
            replayed = await again.ask(
                "SET_PARAMETER", url, parameters(v.session_id), mikey_body(message)
            )
            stolen = await again.ask("GET_PARAMETER", url, parameters(v.session_id), b"mikey\r\n")
        assert replayed.status == 454 and stolen.status == 454
        after = _snapshot(v.gsa)
        assert after != before and after[0] == before[0]  # same CSB, new keys
        assert v.gsa.rekey_sa is not None and v.gsa.rekey_sa.initiator_id == owner
        await decrypts_on(v.client, v.keying)


async def test_another_identity_from_a_new_connection_is_454() -> None:
    carol = "sip:carol@example.com"
    init_cfg, resp_cfg = configs(Mode.PSK)
    k_carol = b"carol's 16 B key"
    server_cfg = replace(
        resp_cfg, psk=StaticPskStore({"sip:alice@example.com": bytes(range(16)), carol: k_carol})
    )
    async with _victim(server_cfg, init_cfg, client_keys=True) as v:
        before = _snapshot(v.gsa)
        ssrc = v.client.ssrc
        assert ssrc is not None
        carol_cfg = ExchangeConfig(
            identity=carol,
            peer_identity="sip:bob@example.com",
            psk=StaticPskStore({"sip:bob@example.com": k_carol}),
        )
        forged = Initiator(ep(carol_cfg)).start(
            time.time(), [StreamSpec(ssrc, 0, 0)], csb_id=v.gsa.csb_id
        )
        url = v.server.url("tone")
        async with RawConnection(v.server.port) as carol_conn:
            answer = await carol_conn.ask(
                "SET_PARAMETER", url, parameters(v.session_id), mikey_body(forged)
            )
        assert answer.status == 454
        assert _snapshot(v.gsa) == before
        await decrypts_on(v.client, v.keying)


async def test_plain_requests_from_another_connection_are_unchanged() -> None:
    # Binding covers keying only: a keep-alive from elsewhere is still answered (RFC 2326 allows
    # a session to span connections), without revealing anything about keys.
    async with _victim(_anonymous(), _anonymous(), client_keys=True) as v:
        async with RawConnection(v.server.port) as other:
            alive = await other.ask(
                "GET_PARAMETER", v.server.url("tone"), (("Session", v.session_id),)
            )
        assert alive.status == 200


# -- the injected RNG --------------------------------------------------------------------------


class _Recorder:
    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.outputs: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        data = self._rng.randbytes(n)
        self.outputs.append(data)
        return data


async def test_session_ids_ssrcs_and_sdp_come_from_the_injected_rng() -> None:
    rng = _Recorder(5)
    server = RtspServer({"/tone": lambda: ToneSource(700)}, rng=rng)
    async with server, RtspClient(server.url("tone")) as client:
        await client.describe()
        result = await client.setup(interleaved=True)
        await client.play()
        await client.teardown()
    session_id = result.session_id
    assert len(session_id) == 24  # 96 bits
    assert bytes.fromhex(session_id) in rng.outputs
    assert result.transport.ssrc is not None
    assert result.transport.ssrc.to_bytes(4, "big") in rng.outputs


async def test_an_rng_that_repeats_itself_cannot_hang_setup() -> None:
    server = RtspServer({"/tone": lambda: ToneSource(700)}, rng=bytes)  # always zeros
    async with server, RtspClient(server.url("tone")) as first:
        await first.setup(interleaved=True)
        async with RawConnection(server.port) as second:
            answer = await second.ask(
                "SETUP",
                server.url("tone") + "/stream=0",
                (("Transport", "RTP/AVP/TCP;unicast;interleaved=0-1"),),
            )
        assert answer.status == 500
        assert list(server.sessions) == ["00" * 12]
        await first.teardown()
