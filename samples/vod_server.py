"""A media-on-demand RTSP server: every WAV file in a directory, MIKEY-keyed SRTP (RFC 4567).

    python -m samples.vod_server DIRECTORY --psk HEX [--port 8554] [--allow-null-kemac]

Each ``name.wav`` is served at ``rtsp://127.0.0.1:PORT/name``. The server offers its keys in
DESCRIBE (``a=key-mgmt:mikey``, PSK with a real KEMAC) and also accepts client-provided keys in
SETUP (ONVIF); ``--allow-null-kemac`` switches to the NULL-KEMAC profile GStreamer's rtspsrc
speaks (use it only under RTSPS). Play one with ``mikey rtsp play rtsp://127.0.0.1:8554/name
--psk HEX --out copy.wav``. Ctrl-C tears every session and GSA down.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from mikey.exchange import ExchangeConfig
from mikey.pki import StaticPskStore
from rtspglue.keying import MikeyServerKeying
from rtspglue.media import AudioSource, WavSource
from rtspglue.server import RtspServer, ServerConfig
from srtp.gsa import GsaRegistry


def wav_sources(directory: Path) -> dict[str, Callable[[], AudioSource]]:
    """``{"/name": factory}`` for every readable ``name.wav`` in ``directory``."""
    sources: dict[str, Callable[[], AudioSource]] = {}
    for path in sorted(directory.glob("*.wav")):
        WavSource(path)  # raises MediaError for a file we cannot stream

        def factory(path: Path = path) -> AudioSource:
            return WavSource(path)

        sources[f"/{path.stem}"] = factory
    return sources


async def serve(directory: Path, psk: bytes, port: int, allow_null_kemac: bool) -> None:
    """Serve until SIGINT/SIGTERM, then tear everything down."""
    registry = GsaRegistry()
    keying = MikeyServerKeying(
        ExchangeConfig(psk=StaticPskStore({}, default=psk)),
        registry=registry,
        allow_null_kemac=allow_null_kemac,
    )
    sources = wav_sources(directory)
    server = RtspServer(sources, config=ServerConfig(port=port), keying=keying)
    await server.start()
    for path in sources:
        print(f"serving {server.url(path)}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.close()
        keying.close()
    print(f"stopped; GSA audit: {registry.audit()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--psk", required=True, help="pre-shared key (hex)")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument("--allow-null-kemac", action="store_true")
    args = parser.parse_args(argv)
    asyncio.run(serve(args.directory, bytes.fromhex(args.psk), args.port, args.allow_null_kemac))
    return 0


if __name__ == "__main__":
    sys.exit(main())
