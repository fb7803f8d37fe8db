"""What an unauthenticated DESCRIBE may cost the server in the modes whose I_MESSAGE is signed or
needs a DH exponentiation (PK, DH, DHHMAC, RSA-R).

* A repeated DESCRIBE on the same connection and path gets the pending message again: N
  DESCRIBEs, one message built (oracle: the distinct ``a=key-mgmt`` values on the wire and the
  server's own count of messages built); the reused message still keys a working session.
* A token bucket per source address bounds the new messages: past the burst DESCRIBE gets 503
  with Retry-After, the refusals are counted, one INFO line names the source, and a client from
  another source is served meanwhile (loopback 127.0.0.2 floods, 127.0.0.1 plays).
"""

from __future__ import annotations

import logging

import pytest

from mikey.keying import Mode
from mikey.ratelimit import SourceRateLimiter, source_key
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.message import RtspResponse
from rtspglue.server import RtspServer, ServerConfig
from srtp import _libsrtp
from srtp.gsa import GsaRegistry
from tests.mikey.pair import configs
from tests.rtspglue.rig import RawConnection, decrypts_on

FLOOD_SOURCE = "127.0.0.2"
ACCEPT = (("Accept", "application/sdp"),)


@pytest.fixture(autouse=True)
def _no_leaked_contexts() -> None:
    assert _libsrtp.live_sessions() == 0


def _key_mgmt(response: RtspResponse) -> str | None:
    for line in response.body.decode().splitlines():
        if line.startswith("a=key-mgmt:"):
            return line
    return None


async def test_repeated_describe_on_one_connection_builds_one_message() -> None:
    server_cfg, client_cfg = configs(Mode.DH)
    skeying = MikeyServerKeying(server_cfg)
    sources = {"/tone": lambda: ToneSource(700), "/other": lambda: ToneSource(900)}
    async with RtspServer(sources, keying=skeying) as server:
        async with RawConnection(server.port) as conn:
            for _ in range(25):
                conn.send("DESCRIBE", server.url("tone"), ACCEPT)
            answers = await conn.responses(25)
            assert {a.status for a in answers} == {200}
            assert len({_key_mgmt(a) for a in answers}) == 1  # one I_MESSAGE on the wire
            assert (skeying.describe_stats.built, skeying.describe_stats.reused) == (1, 24)
            other = await conn.ask("DESCRIBE", server.url("other"), ACCEPT)  # another path
            assert _key_mgmt(other) not in {_key_mgmt(answers[0]), None}
        async with RawConnection(server.port) as second:  # another connection
            fresh = await second.ask("DESCRIBE", server.url("tone"), ACCEPT)
            assert _key_mgmt(fresh) not in {_key_mgmt(answers[0]), None}
        assert skeying.describe_stats.built == 3
        # The message a client got several times still keys its session.
        creg = GsaRegistry()
        keying = MikeyClientKeying(client_cfg, registry=creg)
        async with RtspClient(server.url("tone"), keying=keying) as client:
            first = await client.describe()
            for _ in range(3):
                assert (await client.describe()).key_mgmt == first.key_mgmt
            await client.setup(interleaved=True)
            await client.play()
            await decrypts_on(client, keying)
            await client.teardown()
        assert skeying.describe_stats.built == 4
    skeying.close()
    assert skeying.pending == 0 and creg.audit().clean


async def test_reuse_can_be_turned_off() -> None:
    server_cfg, _ = configs(Mode.PK)
    skeying = MikeyServerKeying(server_cfg, describe_reuse_ttl=0.0)
    server = RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying)
    async with server, RawConnection(server.port) as conn:
        for _ in range(4):
            conn.send("DESCRIBE", server.url("tone"), ACCEPT)
        answers = await conn.responses(4)
    assert len({_key_mgmt(a) for a in answers}) == 4
    assert skeying.describe_stats.built == 4 and skeying.pending == 0


@pytest.mark.parametrize("mode", [Mode.DH, Mode.RSA_R])
async def test_token_bucket_answers_503_and_another_source_is_served(
    mode: Mode, caplog: pytest.LogCaptureFixture
) -> None:
    server_cfg, client_cfg = configs(mode)
    sreg, creg = GsaRegistry(), GsaRegistry()
    skeying = MikeyServerKeying(server_cfg, registry=sreg, describe_burst=3, describe_rate=0.2)
    caplog.set_level(logging.INFO, logger="rtspglue.keying")
    config = ServerConfig(max_connections=64)
    async with RtspServer(
        {"/tone": lambda: ToneSource(700)}, config=config, keying=skeying
    ) as server:
        answers: list[RtspResponse] = []
        for _ in range(12):  # a new connection each time: no reuse to lean on
            async with RawConnection(server.port, FLOOD_SOURCE) as flood:
                answers.append(await flood.ask("DESCRIBE", server.url("tone"), ACCEPT))
        assert [a.status for a in answers] == [200] * 3 + [503] * 9
        for busy in answers[3:]:
            retry = busy.header("Retry-After")
            assert retry is not None and int(retry) >= 1  # RFC 2326 §12.31
            assert busy.body == b""
        stats = skeying.describe_stats
        assert (stats.built, stats.limited) == (3, 9)
        named = [r for r in caplog.records if FLOOD_SOURCE in r.getMessage()]
        assert len(named) == 1 and named[0].levelno == logging.INFO
        # Repeats on one connection are reused, so they cost no token either.
        async with RawConnection(server.port, FLOOD_SOURCE) as flood:
            assert (await flood.ask("DESCRIBE", server.url("tone"), ACCEPT)).status == 503
        # A legitimate client from another source: served in full, meanwhile.
        keying = MikeyClientKeying(client_cfg, registry=creg)
        async with RtspClient(server.url("tone"), keying=keying) as client:
            await client.describe()
            await client.setup(interleaved=True)
            await client.play()
            await decrypts_on(client, keying)
            await client.teardown()
        assert skeying.describe_stats.built == 4
    skeying.close()
    assert skeying.pending == 0
    assert sreg.audit().clean and creg.audit().clean


async def test_psk_describe_is_not_rate_limited() -> None:
    server_cfg, _ = configs(Mode.PSK)
    skeying = MikeyServerKeying(server_cfg, describe_burst=1, describe_rate=0.1)
    assert skeying.describe_limiter is None  # no signature, no exponentiation: no bound needed
    async with RtspServer({"/tone": lambda: ToneSource(700)}, keying=skeying) as server:
        for _ in range(10):
            async with RawConnection(server.port, FLOOD_SOURCE) as conn:
                assert (await conn.ask("DESCRIBE", server.url("tone"), ACCEPT)).status == 200
    assert skeying.describe_stats.limited == 0
    skeying.close()


# -- the bucket itself ------------------------------------------------------------------------


def test_bucket_refills_at_the_rate_and_reports_the_wait() -> None:
    bucket = SourceRateLimiter(rate=2.0, burst=3)
    assert [bucket.take("192.0.2.1", 100.0) for _ in range(3)] == [(0.0, False)] * 3
    wait, first = bucket.take("192.0.2.1", 100.0)
    assert wait == pytest.approx(0.5) and first
    assert bucket.take("192.0.2.1", 100.1)[1] is False  # same episode: no second log line
    assert bucket.take("192.0.2.2", 100.1) == (0.0, False)  # another source has its own
    assert bucket.take("192.0.2.1", 100.6) == (0.0, False)  # refilled after 0.5 s
    assert bucket.take("192.0.2.1", 99.0)[0] > 0  # a clock stepping back refills nothing
    assert bucket.take("192.0.2.1", 1000.0) == (0.0, False)  # never more than the burst ...
    assert [bucket.take("192.0.2.1", 1000.0)[0] for _ in range(3)] == [0.0, 0.0, 0.5]


def test_bucket_table_is_bounded() -> None:
    bucket = SourceRateLimiter(rate=1.0, burst=1, max_sources=100)
    for i in range(10_000):
        bucket.take(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}", 0.0)
    assert len(bucket) == 100


def test_ipv6_sources_share_a_bucket_per_64() -> None:
    assert (
        source_key("2001:db8:1:2::1") == source_key("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    )
    assert source_key("2001:db8:1:3::1") != source_key("2001:db8:1:2::1")
    assert source_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert source_key("fe80::1%eth0") == "fe80::/64"
    bucket = SourceRateLimiter(rate=1.0, burst=1)
    assert bucket.take("2001:db8::1", 0.0)[0] == 0.0
    assert bucket.take("2001:db8::2", 0.0)[0] > 0  # same /64, same bucket
