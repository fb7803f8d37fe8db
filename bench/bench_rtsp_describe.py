"""What a DESCRIBE flood costs an RTSP server whose I_MESSAGE is expensive (DH: a Diffie-Hellman
exponentiation and an RSA signature per message, before the client has proved anything).

* ``messages built per DESCRIBE, on one connection``: N DESCRIBEs pipelined on one connection
  for one path. Ours: the defaults (the pending message is sent again). Baseline: reuse and the
  per-source bound turned off (what every DESCRIBE cost before). Goal: one message for all N.
* ``messages built per DESCRIBE, from N connections of one source``: one DESCRIBE per new
  connection, all from 127.0.0.2. Ours: the default token bucket (burst 20, 5/s). Baseline: no
  bound. Goal: no more than burst + rate x elapsed messages.
* ``legitimate DESCRIBE during a flood``: a client on 127.0.0.1 DESCRIBEs on a fresh connection
  while four flooding threads in another process DESCRIBE from 127.0.0.2 as fast as they are
  answered. Ours: the median latency with the default bound; baseline: the same client against
  a quiet server. A second row shows the flood without the bound, for contrast.

Counts come from the server's own ``describe_stats`` (the real code path, nothing mocked);
latencies are medians of interleaved samples. ``run(quick) -> rows``; quick takes a few seconds.
"""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from typing import Any

from mikey.keying import Mode
from rtspglue.keying import MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.message import RtspParser, RtspRequest, RtspResponse
from rtspglue.server import RtspServer, ServerConfig
from tests.mikey.pair import configs

Row = dict[str, Any]
FLOOD_SOURCE = "127.0.0.2"
ACCEPT = (("Accept", "application/sdp"),)

#: the flooder: THREADS threads, each a loop of connect / DESCRIBE / read the answer / close
_FLOODER = r"""
import socket, sys, threading, time
port, seconds, source = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
request = (f"DESCRIBE rtsp://127.0.0.1:{port}/tone RTSP/1.0\r\nCSeq: 1\r\n"
           "Accept: application/sdp\r\n\r\n").encode()
end = time.monotonic() + seconds
def flood():
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 5, (source, 0)) as s:
                s.sendall(request)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            time.sleep(0.001)
threads = [threading.Thread(target=flood) for _ in range(4)]
for t in threads: t.start()
print("FLOODING", flush=True)
for t in threads: t.join()
"""


def _keying(limit: bool, reuse: bool = True) -> MikeyServerKeying:
    server_cfg, _ = configs(Mode.DH)
    return MikeyServerKeying(
        server_cfg,
        describe_rate=5.0 if limit else None,
        describe_reuse_ttl=10.0 if reuse else 0.0,
        max_pending=100_000,
    )


def _server(keying: MikeyServerKeying) -> RtspServer:
    config = ServerConfig(max_connections=1024)
    return RtspServer({"/tone": lambda: ToneSource(440)}, config=config, keying=keying)


async def _read(reader: asyncio.StreamReader, parser: RtspParser, count: int) -> list[int]:
    statuses: list[int] = []
    while len(statuses) < count:
        data = await reader.read(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        statuses.extend(m.status for m in parser.feed(data) if isinstance(m, RtspResponse))
    return statuses


async def _one_connection(count: int, limit: bool, reuse: bool) -> float:
    """Messages built per DESCRIBE for ``count`` DESCRIBEs pipelined on one connection."""
    keying = _keying(limit, reuse)
    async with _server(keying) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        parser = RtspParser()
        url = server.url("tone")
        try:
            for start in range(0, count, 50):
                batch = min(50, count - start)
                for i in range(batch):
                    request = RtspRequest("DESCRIBE", url, (("CSeq", str(start + i + 1)), *ACCEPT))
                    writer.write(request.encode())
                statuses = await _read(reader, parser, batch)
                if set(statuses) != {200}:
                    raise RuntimeError(f"DESCRIBE on one connection: {sorted(set(statuses))}")
        finally:
            writer.close()
    keying.close()
    return keying.describe_stats.built / count


async def _many_connections(count: int, limit: bool) -> tuple[float, float]:
    """(messages built per DESCRIBE, the bound burst + rate x elapsed) for ``count``
    connections of one source, one DESCRIBE each, 16 at a time."""
    keying = _keying(limit)
    async with _server(keying) as server:
        url = server.url("tone")
        queue = list(range(count))

        async def worker() -> None:
            while queue:
                queue.pop()
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", server.port, local_addr=(FLOOD_SOURCE, 0)
                )
                try:
                    writer.write(RtspRequest("DESCRIBE", url, (("CSeq", "1"), *ACCEPT)).encode())
                    await _read(reader, RtspParser(), 1)
                finally:
                    writer.close()

        start = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(16)))
        elapsed = time.monotonic() - start
    keying.close()
    bound = 20 + 5.0 * elapsed
    return keying.describe_stats.built / count, bound / count


async def _legit_describe_ms(server: RtspServer) -> float:
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        request = RtspRequest("DESCRIBE", server.url("tone"), (("CSeq", "1"), *ACCEPT))
        writer.write(request.encode())
        (status,) = await _read(reader, RtspParser(), 1)
    finally:
        writer.close()
    if status != 200:
        raise RuntimeError(f"legitimate DESCRIBE answered {status}")
    return (time.perf_counter() - start) * 1000


async def _legit_latency(samples: int, gap: float) -> tuple[float, float, float]:
    """Median ms of a legitimate DESCRIBE: (flood with the bound, quiet, flood without)."""
    results: dict[str, list[float]] = {"limited": [], "quiet": [], "unlimited": []}
    for name in ("quiet", "limited", "unlimited"):
        keying = _keying(limit=name != "unlimited")
        async with _server(keying) as server:
            flooder = None
            if name != "quiet":
                seconds = samples * (gap + 0.05) + 1.0
                flooder = subprocess.Popen(
                    [sys.executable, "-c", _FLOODER, str(server.port), str(seconds), FLOOD_SOURCE],
                    stdout=subprocess.PIPE,
                    text=True,
                )
                assert flooder.stdout is not None
                await asyncio.get_running_loop().run_in_executor(None, flooder.stdout.readline)
                await asyncio.sleep(0.2)  # the flood is in full swing (and the burst spent)
            try:
                for _ in range(samples):
                    results[name].append(await _legit_describe_ms(server))
                    await asyncio.sleep(gap)
            finally:
                if flooder is not None:
                    flooder.kill()
                    await asyncio.get_running_loop().run_in_executor(None, flooder.wait)
        keying.close()
    return (
        statistics.median(results["limited"]),
        statistics.median(results["quiet"]),
        statistics.median(results["unlimited"]),
    )


def _row(metric: str, ours: float, baseline: float | None, goal: str, passed: bool | None) -> Row:
    ratio = None if not baseline else ours / baseline
    return {
        "metric": metric,
        "ours": ours,
        "baseline": baseline,
        "ratio": ratio,
        "goal": goal,
        "passed": passed,
    }


def run(quick: bool) -> list[Row]:
    """Measure; quick mode takes a few seconds."""
    count = 200 if quick else 1000
    samples, gap = (8, 0.05) if quick else (30, 0.1)
    rows: list[Row] = []
    ours = asyncio.run(_one_connection(count, limit=True, reuse=True))
    base = asyncio.run(_one_connection(count, limit=False, reuse=False))
    rows.append(
        _row(
            f"DH messages built per DESCRIBE, {count} on one connection (reuse vs none)",
            ours,
            base,
            "one message for all",
            ours * count <= 1,
        )
    )
    ours, bound = asyncio.run(_many_connections(count, limit=True))
    base, _ = asyncio.run(_many_connections(count, limit=False))
    rows.append(
        _row(
            f"DH messages built per DESCRIBE, {count} connections of one source (bound vs none)",
            ours,
            base,
            f"<= burst + rate x time = {bound:.3f}",
            ours <= bound,
        )
    )
    limited, quiet, unlimited = asyncio.run(_legit_latency(samples, gap))
    rows.append(
        _row(
            "legitimate DESCRIBE ms during a DH DESCRIBE flood (bound) vs quiet server",
            limited,
            quiet,
            "info: the ratio is the flood's cost to others",
            None,
        )
    )
    rows.append(
        _row(
            "legitimate DESCRIBE ms during a DH DESCRIBE flood (no bound) vs quiet server",
            unlimited,
            quiet,
            "info: what the bound saves",
            None,
        )
    )
    return rows


if __name__ == "__main__":
    for row in run(quick="--quick" in sys.argv):
        print(row)
