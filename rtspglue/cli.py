"""``mikey rtsp serve`` and ``mikey rtsp play``: MIKEY-keyed SRTP audio over RTSP from a shell.

``serve`` runs an :class:`~rtspglue.server.RtspServer` with :class:`MikeyServerKeying` until
SIGINT/SIGTERM (or, with ``--once``, until its first session ends), then tears every session and
GSA down and prints the GSA audit; it prints ``READY <url>`` once listening. ``play`` DESCRIBEs,
SETUPs (answering the server's keys, or ``--client-keys``), PLAYs for ``--duration`` seconds,
TEARDOWNs and prints a summary; it exits 0 only when media was decrypted and the GSA was torn
down with nothing left alive. Credentials use the flags of ``mikey offer/answer``.

``serve --require-identity PATH=URI`` (repeatable) admits to presentation PATH only clients that
authenticate as one of the URIs given for it (463 otherwise); ``--describe-rate`` and
``--describe-burst`` bound the signed / DH DESCRIBE messages built per source address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from mikey.errors import MikeyError, reason
from mikey.exchange import ExchangeConfig
from mikey_cli import CliError, add_credential_options, config_from_args
from mikey_cli.pcap import PcapWriter
from srtp.gsa import AuditReport, GsaRegistry

from .client import RtspClient
from .errors import RtspError, RtspStatusError
from .keying import MikeyClientKeying, MikeyServerKeying
from .media import AudioSource, ToneSource, WavSource, dominant_frequency, write_wav
from .message import StatusCode
from .server import RtspServer, ServerConfig

__all__ = ["exchange_config", "register"]


def exchange_config(args: argparse.Namespace) -> ExchangeConfig:
    """The MIKEY configuration the credential flags describe (safe defaults otherwise)."""
    return config_from_args(args)


def _audit_json(report: AuditReport) -> dict[str, int]:
    return {
        "live_gsas": report.live_gsas,
        "live_contexts": report.live_contexts,
        "unwiped_buffers": report.unwiped_buffers,
    }


# --- --pcap ------------------------------------------------------------------------------------


Address = tuple[str, int]


def _address(value: object) -> Address:
    if isinstance(value, tuple) and len(value) >= 2:
        return str(value[0]), int(value[1])
    return "0.0.0.0", 0


class _CapturingReader:
    """Delegates to an asyncio StreamReader and records what it reads (peer -> local)."""

    def __init__(self, inner: Any, pcap: PcapWriter, src: Address, dst: Address) -> None:
        self._inner, self._pcap, self._src, self._dst = inner, pcap, src, dst

    async def read(self, n: int = -1) -> bytes:
        data: bytes = await self._inner.read(n)
        self._pcap.record_stream(self._src, self._dst, data)
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _CapturingWriter:
    """Delegates to an asyncio StreamWriter and records what it writes (local -> peer)."""

    def __init__(self, inner: Any, pcap: PcapWriter, src: Address, dst: Address) -> None:
        self._inner, self._pcap, self._src, self._dst = inner, pcap, src, dst

    def write(self, data: bytes) -> None:
        self._pcap.record_stream(self._src, self._dst, bytes(data))
        self._inner.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _capturing(reader: Any, writer: Any, pcap: PcapWriter) -> tuple[Any, Any]:
    local = _address(writer.get_extra_info("sockname"))
    peer = _address(writer.get_extra_info("peername"))
    return (
        _CapturingReader(reader, pcap, peer, local),
        _CapturingWriter(writer, pcap, local, peer),
    )


class _CapturingServer(RtspServer):
    """An RtspServer that copies its signalling, interleaved and UDP media into a pcap."""

    def __init__(self, *args: Any, pcap: PcapWriter, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._pcap = pcap

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        r, w = _capturing(reader, writer, self._pcap)
        await super()._serve(r, w)

    async def _open_udp(self, request: Any) -> Any:
        effects = await super()._open_udp(request)
        session = request.session
        send = getattr(session, "_send", None)
        socks = getattr(session, "_sockets", [])
        if send is not None and socks:
            sock = socks[0]
            try:
                src, dst = _address(sock.getsockname()), _address(sock.getpeername())
            except OSError:
                return effects
            pcap = self._pcap

            def send_and_record(packet: bytes) -> object:
                result = send(packet)
                pcap.record(src, dst, packet)
                return result

            session._send = send_and_record
        return effects


class _CapturingClient(RtspClient):
    """An RtspClient that copies its signalling and its media into a pcap."""

    def __init__(self, *args: Any, pcap: PcapWriter, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self._pcap = pcap
        self._interleaved = False
        self._peer: Address = ("0.0.0.0", 0)
        self._local: Address = ("0.0.0.0", 0)

    async def connect(self) -> None:
        await super().connect()
        # the read loop task has not run yet: it reads through the capturing reader
        writer = self._writer
        if writer is not None:
            self._local = _address(writer.get_extra_info("sockname"))
            self._peer = _address(writer.get_extra_info("peername"))
            self._reader, self._writer = _capturing(self._reader, writer, self._pcap)

    async def setup(self, *, interleaved: bool = False) -> Any:
        self._interleaved = interleaved
        return await super().setup(interleaved=interleaved)

    def _receive_rtp(self, data: bytes) -> None:
        if not self._interleaved:  # interleaved media is in the TCP stream already
            self._pcap.record((self._peer[0], 0), (self._local[0], 0), data)
        super()._receive_rtp(data)


# --- serve ------------------------------------------------------------------------------------


def _bind(value: str) -> tuple[str, int]:
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise CliError("--bind must be HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise CliError("--bind port is not a number") from None
    if not 0 <= number <= 65535:
        raise CliError("--bind port out of range")
    return host, number


def _source_factory(source: str, freq: float) -> Callable[[], AudioSource]:
    if source == "tone":
        return lambda: ToneSource(freq)
    path = Path(source)
    try:
        WavSource(path)  # fail now, not at the first SETUP
    except RtspError as exc:
        raise CliError(str(exc)) from None
    return lambda: WavSource(path)


def _required_identities(values: list[str] | None) -> dict[str, frozenset[str]]:
    """``--require-identity PATH=URI`` values as path -> allowed identities."""
    out: dict[str, set[str]] = {}
    for value in values or ():
        path, eq, uri = value.partition("=")
        path, uri = path.strip(), uri.strip()
        if not eq or not path or not uri:
            raise CliError("--require-identity must be PATH=URI")
        out.setdefault("/" + path.strip("/"), set()).add(uri)
    return {p: frozenset(u) for p, u in out.items()}


async def _serve(args: argparse.Namespace) -> int:
    host, port = _bind(args.bind)
    required = _required_identities(args.require_identity)
    if args.describe_rate < 0 or args.describe_burst < 1:
        raise CliError("--describe-rate must be >= 0 and --describe-burst >= 1")
    registry = GsaRegistry()
    config = exchange_config(args)
    keying = MikeyServerKeying(
        config,
        registry=registry,
        allow_null_kemac=config.allow_null_kemac,
        server_keys=not args.no_server_keys,
        required_identities=required,
        describe_rate=args.describe_rate or None,
        describe_burst=args.describe_burst,
    )
    factory = _source_factory(args.source, args.freq)
    server_config = ServerConfig(host=host, port=port, session_timeout=args.session_timeout)
    pcap = PcapWriter(args.pcap) if args.pcap else None
    if pcap is not None:
        server: RtspServer = _CapturingServer(
            {args.path: factory}, config=server_config, keying=keying, pcap=pcap
        )
    else:
        server = RtspServer({args.path: factory}, config=server_config, keying=keying)
    try:
        await server.start()
    except OSError as exc:
        raise CliError(f"cannot listen on {args.bind}: {exc.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"READY {server.url(args.path)}", flush=True)
    seen = 0
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.1)
            seen = max(seen, len(server.sessions))
            if args.once and seen and not server.sessions:
                break
    finally:
        await server.close()
        keying.close()
        if pcap is not None:
            pcap.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    report = registry.audit()
    summary: dict[str, object] = {"audit": _audit_json(report), "refused": keying.refused}
    if keying.describe_stats.limited:
        summary["describe_limited"] = keying.describe_stats.limited
    print(json.dumps(summary), flush=True)
    return 0 if report.clean else 1


# --- play -------------------------------------------------------------------------------------


async def _play(args: argparse.Namespace) -> int:
    registry = GsaRegistry()
    config = exchange_config(args)
    keying = MikeyClientKeying(
        config,
        registry=registry,
        allow_null_kemac=config.allow_null_kemac,
        client_keys=args.client_keys,
    )
    status: int | None = None
    detail: str | None = None
    pcap = PcapWriter(args.pcap) if args.pcap else None
    if pcap is not None:
        client: RtspClient = _CapturingClient(
            args.url, keying=keying, request_timeout=args.timeout, pcap=pcap
        )
    else:
        client = RtspClient(args.url, keying=keying, request_timeout=args.timeout)
    try:
        async with client:
            await client.describe()
            await client.setup(interleaved=args.transport == "tcp")
            await client.play()
            await asyncio.sleep(args.duration)
            await client.teardown()
    except RtspStatusError as exc:
        status = exc.status
        if status == StatusCode.KEY_MANAGEMENT_FAILURE:
            # the server says no more than 463 (no oracle): our side of the exchange was sound
            detail = "the server refused our key management (463): check --mode, keys and identity"
        print(f"mikey rtsp play: {exc}", file=sys.stderr)
    except (RtspError, MikeyError) as exc:
        detail = getattr(exc, "detail", None) or (
            reason(exc) if isinstance(exc, MikeyError) else None
        )
        print(f"mikey rtsp play: {exc}" + (f": {detail}" if detail else ""), file=sys.stderr)
        status = -1
    finally:
        keying.close()
        if pcap is not None:
            pcap.close()
    report = registry.audit()
    samples = client.samples
    if args.out and samples:
        write_wav(args.out, samples)
    summary: dict[str, object] = {
        "packets_received": client.packets_received,
        "packets_dropped": client.packets_dropped,
        "decrypted": keying.stats.decrypted,
        "rejected": keying.stats.rejected,
        "keys_from": keying.side,
        "torn_down": None if keying.torn_down is None else keying.torn_down.value,
        "audit": _audit_json(report),
    }
    if status is not None:
        summary["status"] = status
    if detail is not None:
        summary["detail"] = detail
    if len(samples) >= 800:
        summary["frequency"] = round(dominant_frequency(samples[-4000:]), 1)
    print(json.dumps(summary), flush=True)
    ok = status is None and keying.stats.decrypted > 0 and keying.torn_down is not None
    return 0 if ok and report.clean else 1


# --- parser -----------------------------------------------------------------------------------


def _keying_options(p: argparse.ArgumentParser) -> None:
    # --allow-null-kemac (the GStreamer/ONVIF NULL-KEMAC opt-in, RTSPS only) and
    # --peer-profile come with the credential flags.
    add_credential_options(p, verify_flag=True)
    p.add_argument("--pcap", help="write the RTSP signalling and the SRTP media to this pcap file")


def _run(
    coro_fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(coro_fn(args))
        except KeyboardInterrupt:
            return 130

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mikey rtsp serve|play``."""
    rtsp = sub.add_parser("rtsp", help="MIKEY-keyed SRTP audio over RTSP")
    cmds = rtsp.add_subparsers(dest="rtsp_command", required=True)

    p = cmds.add_parser("serve", help="serve a tone or a WAV file over RTSP with SRTP")
    p.add_argument("--bind", default="127.0.0.1:8554", help="HOST:PORT to listen on")
    p.add_argument("--path", default="/tone", help="presentation path")
    p.add_argument("--source", default="tone", help="'tone' or a WAV file")
    p.add_argument("--freq", type=float, default=440.0, help="tone frequency in Hz")
    p.add_argument("--once", action="store_true", help="exit after the first session ends")
    p.add_argument("--session-timeout", type=float, default=60.0, help="idle timeout (s)")
    p.add_argument(
        "--no-server-keys", action="store_true", help="offer no keys in DESCRIBE (client keys)"
    )
    p.add_argument(
        "--require-identity",
        action="append",
        metavar="PATH=URI",
        help="only clients authenticated as URI may key PATH (repeatable)",
    )
    p.add_argument(
        "--describe-rate",
        type=float,
        default=5.0,
        help="new signed/DH DESCRIBE messages per second per source (0: unbounded)",
    )
    p.add_argument(
        "--describe-burst", type=int, default=20, help="burst of the --describe-rate bound"
    )
    _keying_options(p)
    p.set_defaults(func=_run(_serve))

    p = cmds.add_parser("play", help="play an RTSP/SRTP stream and tear it down")
    p.add_argument("url", help="rtsp://host:port/path")
    p.add_argument("--out", help="write the decoded audio as 16-bit PCM WAV")
    p.add_argument("--duration", type=float, default=3.0, help="seconds to play")
    p.add_argument("--transport", choices=("tcp", "udp"), default="tcp")
    p.add_argument("--timeout", type=float, default=10.0, help="request timeout (s)")
    p.add_argument("--client-keys", action="store_true", help="send our own keys in SETUP (ONVIF)")
    _keying_options(p)
    p.set_defaults(func=_run(_play))
