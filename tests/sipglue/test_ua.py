from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest

from sipglue.errors import CallError
from sipglue.transaction import TimerConfig
from sipglue.transport import LossyDatagramWrapper, UdpTransport
from sipglue.ua import CallState, TerminationReason, UserAgent

from .helpers import Recorder, offer, response_for

FAST = TimerConfig(t1=0.05, t2=0.4, t4=0.5)


async def make_pair(
    transport: str, uas_handler: Recorder | None = None, **kw: object
) -> tuple[UserAgent, UserAgent, Recorder, Recorder]:
    uac_h, uas_h = Recorder(), uas_handler or Recorder()
    uac = UserAgent(uac_h, transport=transport, user="alice", timers=FAST, **kw)  # type: ignore[arg-type]
    uas = UserAgent(uas_h, transport=transport, user="bob", timers=FAST, **kw)  # type: ignore[arg-type]
    await uac.listen()
    await uas.listen()
    return uac, uas, uac_h, uas_h


@pytest.fixture(params=["udp", "tcp"])
async def pair(
    request: pytest.FixtureRequest,
) -> AsyncIterator[tuple[UserAgent, UserAgent, Recorder, Recorder]]:
    uac, uas, a, b = await make_pair(request.param)
    yield uac, uas, a, b
    await uac.close()
    await uas.close()


@pytest.mark.timeout(20)
async def test_call_reinvite_bye(pair: tuple[UserAgent, UserAgent, Recorder, Recorder]) -> None:
    uac, uas, uac_h, uas_h = pair
    call = await uac.invite(f"sip:bob@127.0.0.1:{uas.port}", offer(blob=b"first"))
    assert call.state == CallState.CONFIRMED
    remote = await asyncio.wait_for(uas.incoming.get(), 5)
    await remote.wait_confirmed()
    assert remote.id is not None and call.id is not None
    # dialog ids mirror each other (Call-ID; local tag; remote tag)
    cid, ltag, rtag = call.id.split(";")
    assert remote.id == f"{cid};{rtag};{ltag}"
    # the key-mgmt line went through unchanged and the derived answer came back
    assert uas_h.offers[0].key_mgmt(None)[0].data == "Zmlyc3Q="
    assert uac_h.answers[0].key_mgmt(None)[0].data == response_for("Zmlyc3Q=")
    answer = await call.reinvite(offer(port=40002, blob=b"second"))
    assert answer.key_mgmt(None)[0].data == response_for("c2Vjb25k")
    assert len(uas_h.offers) == 2 and uas_h.offers[1].media[0].port == 40002
    await call.bye()
    assert await asyncio.wait_for(remote.wait_terminated(), 5) == TerminationReason.REMOTE_BYE
    assert call.reason == TerminationReason.LOCAL_BYE
    assert uac_h.terminated == [(call.call_id, TerminationReason.LOCAL_BYE)]
    assert uas_h.terminated == [(call.call_id, TerminationReason.REMOTE_BYE)]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("status", [488, 606])
async def test_rejected_offer(status: int) -> None:
    uac, uas, uac_h, uas_h = await make_pair("udp", Recorder(reject_with=status))
    try:
        with pytest.raises(CallError) as info:
            await uac.invite(f"sip:bob@127.0.0.1:{uas.port}", offer())
        assert info.value.status_code == status
        assert [r for _, r in uac_h.terminated] == [TerminationReason.REJECTED]
        assert [r for _, r in uas_h.terminated] == [TerminationReason.REJECTED]
    finally:
        await uac.close()
        await uas.close()


@pytest.mark.timeout(20)
async def test_answer_refused_acks_then_byes() -> None:
    uac, uas, _uac_h, _uas_h = await make_pair("udp")
    uac.handler = Recorder(refuse_answer=True)
    try:
        with pytest.raises(CallError):
            await uac.invite(f"sip:bob@127.0.0.1:{uas.port}", offer())
        remote = await asyncio.wait_for(uas.incoming.get(), 5)
        assert await asyncio.wait_for(remote.wait_terminated(), 5) == TerminationReason.REMOTE_BYE
        assert remote._ack_received.is_set()  # the ACK came before the BYE
    finally:
        await uac.close()
        await uas.close()


@pytest.mark.timeout(20)
async def test_garbage_and_malformed_requests_do_not_crash() -> None:
    uac, uas, _, _ = await make_pair("udp")
    loop = asyncio.get_running_loop()
    got: asyncio.Queue[bytes] = asyncio.Queue()

    class Probe(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            got.put_nowait(data)

    probe, _ = await loop.create_datagram_endpoint(Probe, local_addr=("127.0.0.1", 0))
    try:
        rnd = random.Random(7)
        for _ in range(50):
            probe.sendto(
                bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 300))),
                ("127.0.0.1", uas.port),
            )
        port = probe.get_extra_info("sockname")[1]
        bad = (
            f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKq\r\n"
            "From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>\r\nCall-ID: x\r\nCSeq: nonsense\r\nContent-Length: 0\r\n\r\n"
        )
        probe.sendto(bad.encode(), ("127.0.0.1", uas.port))
        reply = await asyncio.wait_for(got.get(), 5)
        assert reply.startswith(b"SIP/2.0 400 ")
        # and the UA still works
        call = await uac.invite(f"sip:bob@127.0.0.1:{uas.port}", offer())
        await call.bye()
    finally:
        probe.close()
        await uac.close()
        await uas.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_lossy_udp_calls_complete(seed: int) -> None:
    wrappers: list[LossyDatagramWrapper] = []

    def lossy(inner: UdpTransport) -> LossyDatagramWrapper:
        w = LossyDatagramWrapper(
            inner,
            seed=seed * 10 + len(wrappers),
            loss=0.2,
            duplicate=0.1,
            reorder=0.1,
            reorder_delay=0.02,
        )
        wrappers.append(w)
        return w

    uac, uas, uac_h, _uas_h = await make_pair("udp", transport_factory=lossy)
    try:
        for _ in range(3):
            call = await uac.invite(f"sip:bob@127.0.0.1:{uas.port}", offer())
            await call.reinvite(offer(port=40010))
            await call.bye()
            assert call.reason == TerminationReason.LOCAL_BYE
        assert sum(w.dropped for w in wrappers) > 0
        assert sum(w.duplicated for w in wrappers) > 0
        assert len(uac_h.answers) == 6
    finally:
        await uac.close()
        await uas.close()


@pytest.mark.timeout(20)
async def test_tcp_connection_loss_terminates_call() -> None:
    uac, uas, _uac_h, _uas_h = await make_pair("tcp")
    try:
        call = await uac.invite(f"sip:bob@127.0.0.1:{uas.port};transport=tcp", offer())
        remote = await asyncio.wait_for(uas.incoming.get(), 5)
        assert uac.transport is not None
        uac.transport.close()
        assert (
            await asyncio.wait_for(remote.wait_terminated(), 5) == TerminationReason.CONNECTION_LOST
        )
        assert call.state == CallState.CONFIRMED or call.reason is not None
    finally:
        await uac.close()
        await uas.close()
