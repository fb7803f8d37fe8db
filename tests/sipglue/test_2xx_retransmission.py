"""UAS 2xx retransmission until ACK (RFC 3261 §13.3.1.4), driven by a raw UDP peer."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from sipglue.transaction import TimerConfig
from sipglue.ua import TerminationReason, UserAgent

from .helpers import Recorder, offer

T1 = 0.02
TIMERS = TimerConfig(t1=T1, t2=4.0, t4=0.1)


class _Peer(asyncio.DatagramProtocol):
    """Records every datagram with its arrival time (loop clock)."""

    def __init__(self) -> None:
        self.got: list[tuple[float, bytes]] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: object) -> None:
        self.got.append((asyncio.get_running_loop().time(), data))
        self.arrived.set()

    def oks(self) -> list[float]:
        return [t for t, d in self.got if d.startswith(b"SIP/2.0 200 ")]


def _invite(port: int) -> bytes:
    body = offer().encode()
    return (
        f"INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKretx1\r\n"
        f"From: <sip:alice@127.0.0.1:{port}>;tag=a1\r\nTo: <sip:bob@127.0.0.1>\r\n"
        f"Call-ID: retx@127.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:{port}>\r\n"
        f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _ack(port: int, to_tag: str) -> bytes:
    return (
        f"ACK sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKretx2\r\n"
        f"From: <sip:alice@127.0.0.1:{port}>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag={to_tag}\r\n"
        f"Call-ID: retx@127.0.0.1\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
    ).encode()


async def _answered(peer: _Peer) -> tuple[UserAgent, asyncio.DatagramTransport, int]:
    uas = UserAgent(Recorder(), timers=TIMERS)
    await uas.listen()
    loop = asyncio.get_running_loop()
    sock, _ = await loop.create_datagram_endpoint(lambda: peer, local_addr=("127.0.0.1", 0))
    port = sock.get_extra_info("sockname")[1]
    sock.sendto(_invite(port), ("127.0.0.1", uas.port))
    while not peer.oks():
        peer.arrived.clear()
        await asyncio.wait_for(peer.arrived.wait(), 5)
    return uas, sock, port


@pytest.mark.timeout(20)
async def test_2xx_resent_with_doubling_gaps_then_call_times_out() -> None:
    peer = _Peer()
    uas, sock, _ = await _answered(peer)
    try:
        (call,) = uas.calls.values()
        assert await asyncio.wait_for(call.wait_terminated(), 10) == TerminationReason.TIMEOUT
        oks = peer.oks()
        # sent, then resent after gaps of T1, 2T1, 4T1 ... until 64*T1: 5 resends at T1 = 20 ms
        assert 4 <= len(oks) - 1 <= 6
        gaps = [b - a for a, b in itertools.pairwise(oks)]
        assert all(later > earlier * 1.3 for earlier, later in itertools.pairwise(gaps))
        assert oks[-1] - oks[0] < 64 * T1
    finally:
        sock.close()
        await uas.close()


@pytest.mark.timeout(20)
async def test_ack_stops_2xx_retransmission() -> None:
    peer = _Peer()
    uas, sock, port = await _answered(peer)
    try:
        (call,) = uas.calls.values()
        assert call.dialog is not None
        sock.sendto(_ack(port, call.dialog.local_tag), ("127.0.0.1", uas.port))
        await asyncio.wait_for(call.wait_confirmed(), 5)
        sent = len(peer.oks())
        await asyncio.sleep(70 * T1)  # past every retransmission time and the give-up
        assert len(peer.oks()) == sent
        assert not call.ended  # the ACK cancelled the give-up too
    finally:
        sock.close()
        await uas.close()
