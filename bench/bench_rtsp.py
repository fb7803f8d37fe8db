"""RTSP + MIKEY + SRTP server capacity, each figure against a same-run baseline without keying.

* ``sessions/s``: SETUP (client-provided PSK keys in KeyMgmt) + PLAY + TEARDOWN, one TCP
  connection per session, 16 clients in parallel, in the server's process. Baseline: the same
  sessions over plain RTP/AVP. Goal >= 500/s.
* ``late packets``: N concurrent 50 packet/s SRTP streams from one server (UDP to a sink socket
  nobody reads); a packet is late when it leaves more than one ptime (20 ms) after its slot.
  Baseline: the same streams through a pass-through (no SRTP) keying hook. Goal < 1% at 1000.
(Memory per idle GSA and its growth with the number of GSAs: ``bench_gsa``.)

``run(quick)`` returns rows ``{metric, ours, baseline, ratio, goal, passed}``; quick < 20 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

from mikey.exchange import ExchangeConfig
from mikey.pki import StaticPskStore
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.keymgmt import KeyMgmtSpec
from rtspglue.media import ToneSource
from rtspglue.message import RtspParser, RtspRequest, RtspResponse, TransportSpec
from rtspglue.server import (
    ConnectionInfo,
    MediaInfo,
    RtspServer,
    ServerConfig,
    SessionContext,
    TeardownReason,
)
from srtp.gsa import GsaRegistry

Row = dict[str, Any]
PSK = bytes(range(16))
PTIME = 0.020


def _config() -> ExchangeConfig:
    return ExchangeConfig(psk=StaticPskStore({}, default=PSK))


class _PassThrough:
    """A ServerKeying with no keys: the baseline for per-packet timing (SAVP, no SRTP)."""

    def __init__(self) -> None:
        self.timings: dict[str, list[float]] = {}

    def describe_key_mgmt(self, connection: ConnectionInfo, media: MediaInfo) -> str | None:
        return None

    def on_setup_key_mgmt(self, session: SessionContext, offers: object) -> str | None:
        return None

    def on_set_parameter_mikey(self, session: SessionContext, specs: object) -> None:
        return None

    def on_get_parameter_mikey(self, session: SessionContext) -> bytes:
        return b""

    def protector(self, session: SessionContext, ssrc: int) -> Callable[[bytes], bytes]:
        return _timed(self.timings.setdefault(session.session_id, []), lambda p: p)

    def on_teardown(self, session: SessionContext, reason: TeardownReason) -> None:
        return None

    def on_connection_closed(self, connection: ConnectionInfo) -> None:
        return None


def _timed(times: list[float], inner: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    clock = time.monotonic

    def protect(packet: bytes) -> bytes:
        times.append(clock())
        return inner(packet)

    return protect


class _TimedMikey(MikeyServerKeying):
    timings: dict[str, list[float]]

    def protector(self, session: SessionContext, ssrc: int) -> Callable[[bytes], bytes]:
        inner = super().protector(session, ssrc)
        return _timed(self.timings.setdefault(session.session_id, []), inner)


# --- sessions per second ---------------------------------------------------------------------


async def _sessions_per_second(keyed: bool, count: int, parallel: int = 16) -> float:
    registry = GsaRegistry()
    keying = MikeyServerKeying(_config(), registry=registry, server_keys=False) if keyed else None
    # one load generator is one source: the per-source budgets would measure themselves
    config = ServerConfig(
        max_sessions=4 * parallel,
        max_connections=4 * parallel,
        source_burst=1_000_000,
        max_connections_per_source=4 * parallel,
    )
    async with RtspServer({"/tone": lambda: ToneSource(440)}, config=config, keying=keying) as srv:
        url = srv.url("tone")
        client_registry = GsaRegistry()
        queue = list(range(count))

        async def worker() -> None:
            while queue:
                queue.pop()
                ck = (
                    MikeyClientKeying(_config(), registry=client_registry, client_keys=True)
                    if keyed
                    else None
                )
                client = RtspClient(url, keying=ck, keepalive=False)
                await client.connect()
                if not keyed:
                    client.media = None
                await _setup_play_teardown(client, keyed)
                await client.close()

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(parallel)))
        elapsed = time.perf_counter() - start
    if not registry.audit().clean:
        raise RuntimeError("sessions left GSAs behind")
    return count / elapsed


async def _setup_play_teardown(client: RtspClient, keyed: bool) -> None:
    # No DESCRIBE: the control URL is known and the client provides the keys (ONVIF style).
    from rtspglue.client import DescribedMedia

    proto = "RTP/SAVP" if keyed else "RTP/AVP"
    client.media = DescribedMedia(client.url + "/stream=0", proto, ("0",), ())
    await client.setup(interleaved=True)
    await client.play()
    await client.teardown()


# --- concurrent streams ----------------------------------------------------------------------


async def _raw_setup(
    host: str, port: int, url: str, keymgmt: str | None, sink_port: int, keyed: bool
) -> tuple[asyncio.StreamWriter, str]:
    reader, writer = await asyncio.open_connection(host, port)
    parser = RtspParser()
    transport = TransportSpec("SAVP", "UDP", True, client_port=(sink_port, sink_port + 1))
    headers = [("CSeq", "1"), ("Transport", transport.encode())]
    if keymgmt is not None:
        headers.append(("KeyMgmt", keymgmt))

    async def ask(request: RtspRequest) -> RtspResponse:
        writer.write(request.encode())
        while True:
            for message in parser.feed(await reader.read(65536)):
                if isinstance(message, RtspResponse):
                    if not message.ok:
                        raise RuntimeError(f"{request.method}: {message.status}")
                    return message

    response = await ask(RtspRequest("SETUP", url + "/stream=0", tuple(headers)))
    session = (response.header("Session") or "").split(";")[0]
    await ask(RtspRequest("PLAY", url, (("CSeq", "2"), ("Session", session))))
    return writer, session


async def _late_fraction(keyed: bool, streams: int, seconds: float) -> float:
    registry = GsaRegistry()
    hook: _TimedMikey | _PassThrough
    if keyed:
        hook = _TimedMikey(_config(), registry=registry, server_keys=False)
        hook.timings = {}
    else:
        hook = _PassThrough()
    config = ServerConfig(
        max_sessions=streams + 8,
        max_connections=streams + 8,
        ptime=PTIME,
        source_burst=1_000_000,  # one source opens every stream (see above)
        max_connections_per_source=streams + 8,
    )
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sink.bind(("127.0.0.1", 0))
    sink_port = sink.getsockname()[1]
    writers: list[asyncio.StreamWriter] = []
    try:
        async with RtspServer(
            {"/tone": lambda: ToneSource(440)}, config=config, keying=hook
        ) as srv:
            url = srv.url("tone")
            for _ in range(streams):
                keymgmt = None
                if keyed:
                    ck = MikeyClientKeying(_config(), client_keys=True)
                    message = ck.setup_key_mgmt(url, ())
                    ck.close()
                    assert message is not None
                    keymgmt = KeyMgmtSpec("mikey", url + "/stream=0", message).encode()
                writer, _ = await _raw_setup("127.0.0.1", srv.port, url, keymgmt, sink_port, keyed)
                writers.append(writer)
            for timings in hook.timings.values():
                timings.clear()  # measure the steady state only, from now on
            await asyncio.sleep(seconds)
            late = total = 0
            for times in hook.timings.values():
                if not times:
                    continue
                first = times[0]
                for k, t in enumerate(times):
                    total += 1
                    late += t - (first + k * PTIME) > PTIME
            expected = streams * seconds / PTIME
            missing = max(0.0, expected * 0.98 - total)  # never-sent packets count as late
    finally:
        for w in writers:
            w.close()
        sink.close()
    if not registry.audit().clean:
        raise RuntimeError("streams left GSAs behind")
    return (late + missing) / max(1.0, total + missing)


# --- memory ----------------------------------------------------------------------------------


# --- rows ------------------------------------------------------------------------------------


def _row(metric: str, ours: float, baseline: float | None, goal: str, passed: bool) -> Row:
    ratio = None if not baseline else ours / baseline
    return {
        "metric": metric,
        "ours": ours,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "passed": passed,
    }


def _raise_fd_limit(need: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


def run(quick: bool) -> list[Row]:
    """Measure; quick mode finishes in under 20 s."""
    sessions = 300 if quick else 2000
    streams = 200 if quick else 1000
    seconds = 2.0 if quick else 8.0
    _raise_fd_limit(6 * streams + 256)
    rows: list[Row] = []
    ours = asyncio.run(_sessions_per_second(True, sessions))
    base = asyncio.run(_sessions_per_second(False, sessions))
    rows.append(_row("SETUP(KeyMgmt)+PLAY+TEARDOWN /s (PSK)", ours, base, ">= 500", ours >= 500))
    late = asyncio.run(_late_fraction(True, streams, seconds))
    late_base = asyncio.run(_late_fraction(False, streams, seconds))
    rows.append(
        _row(
            f"late packets, {streams} SRTP streams x 50/s",
            late,
            late_base,
            "< 1% at 1000 streams",
            late < 0.01,
        )
    )
    return rows


if __name__ == "__main__":
    for row in run(quick=False):
        print(row)
