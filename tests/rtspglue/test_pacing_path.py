"""The RTP hot path: the slotted Pacer's schedule and the server's accounting of lost packets.

Counts, not timings: a stall must be caught up without skipping a packet, streams must spread
over the pacer's slots, and a datagram the kernel refuses must be counted as dropped while the
stream keeps going.
"""

from __future__ import annotations

import asyncio
import socket
import time

from rtspglue.media import Pacer, ToneSource
from rtspglue.message import RtspParser, RtspRequest, RtspResponse, TransportSpec
from rtspglue.server import RtspServer, ServerConfig

from .test_pacer import _until


async def test_a_stall_is_caught_up_without_skipping_or_drifting() -> None:
    pacer = Pacer(0.01)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    stream = pacer.add(lambda: stamps.append(loop.time()))
    await _until(lambda: len(stamps) >= 3)
    time.sleep(0.2)  # block the event loop: about 20 packets fall due meanwhile
    await asyncio.sleep(0.1)
    await pacer.close()
    # Packet k leaves at first + k * ptime or later, never earlier by more than a slot, and
    # after the stall the stream has sent everything that fell due (nothing skipped).
    first = stamps[0]
    for k, t in enumerate(stamps):
        assert t >= first + k * 0.01 - 0.003
    elapsed = stamps[-1] - first
    assert len(stamps) >= round(elapsed / 0.01)
    assert stream.sent == len(stamps)


async def test_streams_spread_over_the_slots() -> None:
    pacer = Pacer(0.02, slack=0.002)  # ten slots
    # The pacer serves one slot per event-loop iteration (it yields between slots), and this
    # ticker advances once per iteration: streams served at the same tick shared a slot. (Wall
    # time cannot tell: after a VM stall two slots are caught up within the same 0.1 ms.)
    tick = 0

    async def ticker() -> None:
        nonlocal tick
        while True:
            tick += 1
            await asyncio.sleep(0)

    ticking = asyncio.create_task(ticker())
    served_at: dict[int, int] = {}

    def step(i: int) -> None:
        served_at.setdefault(i, tick)

    try:
        for i in range(100):
            pacer.add(lambda i=i: step(i))
        await _until(lambda: len(served_at) == 100)
        await pacer.close()
    finally:
        ticking.cancel()
    # Ten streams per slot: the first packets go out in ten groups, not at once.
    groups: dict[int, int] = {}
    for t in served_at.values():
        groups[t] = groups.get(t, 0) + 1
    assert len(groups) >= 10 and max(groups.values()) <= 10


async def _play_to(port: int, client_port: int) -> tuple[asyncio.StreamWriter, str, int]:
    """SETUP and PLAY over UDP; the connection, the session id and RTP-Info's first seq."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parser = RtspParser()
    url = f"rtsp://127.0.0.1:{port}/tone"

    async def ask(request: RtspRequest) -> RtspResponse:
        writer.write(request.encode())
        while True:
            for message in parser.feed(await reader.read(65536)):
                if isinstance(message, RtspResponse):
                    assert message.ok, message.status
                    return message

    transport = TransportSpec("AVP", "UDP", True, client_port=(client_port, client_port + 1))
    setup = RtspRequest(
        "SETUP", url + "/stream=0", (("CSeq", "1"), ("Transport", transport.encode()))
    )
    session = ((await ask(setup)).header("Session") or "").split(";")[0]
    play = await ask(RtspRequest("PLAY", url, (("CSeq", "2"), ("Session", session))))
    info = dict(f.split("=", 1) for f in (play.header("RTP-Info") or "").split(";")[1:])
    return writer, session, int(info["seq"])


async def test_refused_datagrams_are_counted_and_the_stream_goes_on() -> None:
    # A port nobody listens on: the RTP socket is connected to it, so the kernel reports the
    # ICMP port-unreachable as ECONNREFUSED on a later send; that packet is dropped and counted.
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    config = ServerConfig(ptime=0.005)
    async with RtspServer({"/tone": lambda: ToneSource(440)}, config=config) as server:
        writer, session_id, first_seq = await _play_to(server.port, closed_port)
        session = server.sessions[session_id]
        await _until(lambda: session.packets_dropped >= 3 and session.packets_sent >= 3)
        sent = session.packets_sent
        await _until(lambda: session.packets_sent > sent)  # still streaming
        pk = session._packetizer
        assert pk is not None
        # Every packet made is accounted for: sent or dropped, none vanished.
        made = (pk.sequence - first_seq) % 0x10000
        assert session.packets_sent + session.packets_dropped == made
        writer.close()


async def test_packets_reach_a_listening_client_in_order() -> None:
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setblocking(False)
    got: list[bytes] = []
    config = ServerConfig(ptime=0.005)
    try:
        async with RtspServer({"/tone": lambda: ToneSource(440)}, config=config) as server:
            writer, session_id, first_seq = await _play_to(server.port, sink.getsockname()[1])
            loop = asyncio.get_running_loop()
            while len(got) < 20:
                got.append(await asyncio.wait_for(loop.sock_recv(sink, 2048), 5))
            assert server.sessions[session_id].packets_dropped == 0
            writer.close()
    finally:
        sink.close()
    sequences = [int.from_bytes(p[2:4], "big") for p in got]
    assert sequences == [(first_seq + k) % 0x10000 for k in range(20)]
