"""``mikey sip listen`` and ``mikey sip call``: MIKEY-keyed SIP calls with SRTP audio from a shell.

``listen`` runs a :class:`~sipglue.ua.UserAgent` with :class:`~sipglue.keying.MikeyCallKeying`:
it answers every call, sends a tone back and receives the caller's SRTP audio, and prints one
JSON line per event (``listening``, ``refused``, ``call`` summaries) until SIGINT/SIGTERM, or with
``--once`` until its first keyed call ends. ``call`` places one call, sends a tone or a WAV file
for ``--duration`` seconds, hangs up and prints a JSON summary; it exits 0 only when the call was
keyed and established and its GSA torn down (and, with ``--expect-media``, audio from the peer was
decrypted). Media runs through aiortc over :class:`srtp.media.SrtpMediaTransport`.

Identities (RFC 4567 §5): the SIP parties are the MIKEY parties. Our identity is ``--identity``,
else the configuration's (in the signed modes the own certificate's single SAN URI), and when
there is one the UA's From carries it (Contact ``sip:<its user>@<host>:<port>``); without one
the From is the old fixed ``sip:caller@HOST:PORT`` / ``sip:mikey@HOST:PORT``. ``call`` expects
the callee to be the AOR of the target (``scheme:user@host``, no port or parameters) unless
``--peer-identity`` names it; ``listen`` expects each caller to be the AOR of its From. A call
refused by the peer reports the peer's Warning text as ``warning``; an answer refused here, or an
offer that cannot be built, a one-sentence ``detail`` (local only).

``--pcap FILE`` writes every SIP message the UA sent or received (received ones as parsed and
re-encoded; each message one datagram, also over TCP) and every SRTP/SRTCP datagram of the call
as classic libpcap records, LINKTYPE_RAW with synthesized IPv4/UDP headers.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mikey.exchange import ExchangeConfig
from mikey_cli import CliError, add_credential_options, config_from_args
from mikey_cli.pcap import PcapWriter
from srtp.gsa import GsaRegistry

from .errors import CallError, SipError, SipParseError
from .keying import (
    CallKeyingFailed,
    KeyingError,
    LocalMedia,
    MikeyCallKeying,
    RegistryStreamSource,
)
from .message import Message, SipUri
from .sdp import SessionDescription
from .transport import Address, Transport
from .ua import Call, TerminationReason, UserAgent

__all__ = ["PcapWriter", "exchange_config", "register"]

# -- pcap: the writer lives in mikey_cli.pcap (shared with mikey rtsp --pcap) -------------------


class _CapturingUA(UserAgent):
    """A UserAgent that copies every SIP message it sends or receives into a pcap."""

    pcap: PcapWriter | None = None

    def message_received(self, message: Message, source: Address, transport: Transport) -> None:
        if self.pcap is not None:
            self.pcap.record(source, (self.host, self.port), message.encode())
        super().message_received(message, source, transport)

    async def _send(self, data: bytes, dest: Address) -> None:
        await super()._send(data, dest)
        if self.pcap is not None:
            self.pcap.record((self.host, self.port), dest, data)


# -- media -----------------------------------------------------------------------------------


@dataclass(eq=False)
class _Media:
    """One call's SRTP media: the transport (opened before the offer/answer), sender, receiver."""

    transport: Any  # srtp.media.SrtpMediaTransport (imported lazily: aiortc is heavy)
    source: RegistryStreamSource
    ssrc: int
    pcap: PcapWriter | None = None
    sender: Any = None
    receiver: Any = None
    recorder: Any = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(
        cls, registry: GsaRegistry, host: str, ssrc: int, pcap: PcapWriter | None
    ) -> _Media:
        from srtp.media import MediaBridgeError, SrtpMediaTransport

        source = RegistryStreamSource(registry, "")
        try:
            transport = await SrtpMediaTransport.open(source, local=(host, 0))
        except MediaBridgeError as exc:
            raise CliError(str(exc)) from None
        if pcap is not None:
            transport.set_packet_observer(pcap.record)
        return cls(transport, source, ssrc, pcap)

    @property
    def port(self) -> int:
        return int(self.transport.local_address[1])

    async def start(
        self, key: str, remote: Address | None, remote_ssrc: int, wav: str | None, freq: float
    ) -> None:
        """Point the transport at the call's GSA and peer, start sending and receiving audio."""
        from srtp.audio import PcmRecorder, ToneTrack, wav_track
        from srtp.media import receive_audio, start_audio

        self.source.key = key
        if remote is not None:
            # the peer's media address comes from its SDP (no symmetric-RTP latching needed)
            self.transport.set_remote(remote)
        track = wav_track(wav) if wav else ToneTrack(freq, sample_rate=8000)
        self.sender = await start_audio(self.transport, track, ssrc=self.ssrc)
        self.receiver, remote_track = await receive_audio(
            self.transport, remote_ssrc=remote_ssrc or None, rtcp_ssrc=self.ssrc
        )
        self.recorder = PcmRecorder(remote_track)
        self.recorder.start()

    async def stop(self) -> None:
        for part in (self.sender, self.receiver):
            if part is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(part.stop(), 2)
        if self.recorder is not None:
            await self.recorder.stop()
        self.transport.close()

    def counts(self) -> dict[str, int]:
        c = self.transport.counters
        return {
            "sent": c.sent_rtp,
            "received": c.received,
            "decrypted": c.decrypted_rtp,
            "auth_failures": c.auth_failures,
        }


# -- configuration ---------------------------------------------------------------------------


def exchange_config(args: argparse.Namespace) -> ExchangeConfig:
    """The MIKEY configuration the credential flags describe (safe defaults otherwise)."""
    return config_from_args(args)


def sip_identity(config: ExchangeConfig) -> SipUri | None:
    """Our identity as the From AOR (``--identity``, else the config's); CliError if not SIP."""
    if config.identity is None:
        return None
    try:
        return SipUri.parse(config.identity)
    except SipParseError:
        raise CliError(
            f"identity {config.identity} is not a sip: or sips: URI, so no SIP From can carry it"
        ) from None


def _failure(exc: BaseException) -> dict[str, object]:
    """What a failed call or re-key tells the local user: error, status, warning, detail."""
    out: dict[str, object] = {
        "error": str(exc) or type(exc).__name__,
        "status": getattr(exc, "status_code", None),
    }
    if isinstance(exc, CallError) and exc.warning:
        out["warning"] = exc.warning
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, KeyingError):
            out["detail"] = cause.detail
            break
        cause = cause.__cause__
    return out


def _hostport(value: str, flag: str) -> Address:
    host, colon, port = value.rpartition(":")
    if not colon or not host:
        raise CliError(f"{flag} must be HOST:PORT")
    try:
        number = int(port)
    except ValueError:
        raise CliError(f"{flag} port is not a number") from None
    if not 0 <= number <= 65535:
        raise CliError(f"{flag} port out of range")
    return host, number


def _emit(obj: dict[str, object]) -> None:
    print(json.dumps(obj), flush=True)


def _emit_refusals(keying: MikeyCallKeying) -> None:
    for event in keying.drain_events():
        if isinstance(event, CallKeyingFailed):
            refused: dict[str, object] = {
                "event": "refused",
                "call_id": event.call_id,
                "status": event.status,
                "warning": event.warning,
            }
            if event.detail is not None:
                refused["detail"] = event.detail  # the local cause: shown here, never sent
            _emit(refused)


# -- listen ----------------------------------------------------------------------------------


class _ListenHandler:
    """The keying binder plus per-call media: opened before answering, closed at the end."""

    def __init__(self, keying: MikeyCallKeying, host: str, pcap: PcapWriter | None) -> None:
        self.keying = keying
        self.host = host
        self.pcap = pcap
        self.media: dict[str, _Media] = {}
        keying._local_media = self._local_media

    async def _local_media(self, call: Call, offer: SessionDescription) -> LocalMedia:
        media = await _Media.open(
            self.keying.registry, self.host, self.keying.new_ssrc(), self.pcap
        )
        self.media[call.call_id] = media
        return LocalMedia(self.host, media.port, media.ssrc)

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        try:
            return await self.keying.on_offer(call, offer)
        finally:
            _emit_refusals(self.keying)
            if call.call_id in self.media and call.id not in self.keying.calls:
                await self.media.pop(call.call_id).stop()

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        await self.keying.on_answer(call, answer)

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        await self.keying.on_terminated(call, reason)


async def _serve_call(
    handler: _ListenHandler, call: Call, args: argparse.Namespace
) -> dict[str, object]:
    keying = handler.keying
    keys = keying.calls.get(call.id or "")
    media = handler.media.get(call.call_id)
    summary: dict[str, object] = {"event": "call", "call_id": call.call_id, "keyed": False}
    if keys is not None and media is not None:
        summary.update(keyed=True, mode=keys.mode.value, csb_id=keys.registration.csb_id)
        await call.wait_confirmed()
        if not call.ended:
            summary["established"] = True
            try:
                await media.start(keys.key, keys.remote_media, keys.remote_ssrc, None, args.freq)
            except Exception as exc:  # media is best effort for a listener
                summary["media_error"] = type(exc).__name__
    reason = await call.wait_terminated()
    if media is not None:
        handler.media.pop(call.call_id, None)
        await media.stop()
        summary.update(media.counts())
    summary["reason"] = reason.name
    summary["torn_down"] = call.id is None or call.id not in keying.registry
    summary["rekeys"] = keys.rekeys if keys is not None else 0
    return summary


async def _listen(args: argparse.Namespace) -> int:
    host, port = _hostport(args.bind, "--bind")
    config = exchange_config(args)
    pcap = PcapWriter(args.pcap) if args.pcap else None
    registry = GsaRegistry()
    aor = sip_identity(config)
    keying = MikeyCallKeying(config, registry=registry, address=host)
    handler = _ListenHandler(keying, host, pcap)
    ua = _CapturingUA(
        handler, host=host, port=port, transport=args.transport, user="mikey", aor=aor
    )
    ua.pcap = pcap
    try:
        await ua.listen()
    except OSError as exc:
        raise CliError(f"cannot listen on {args.bind}: {exc.strerror}") from None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    _emit(
        {
            "event": "listening",
            "address": f"{host}:{ua.port}",
            "transport": args.transport,
            "identity": config.identity,
        }
    )
    served: list[dict[str, object]] = []
    tasks: set[asyncio.Task[None]] = set()

    async def serve(call: Call) -> None:
        summary = await _serve_call(handler, call, args)
        served.append(summary)
        _emit(summary)
        if args.once and summary.get("keyed"):
            stop.set()

    async def accept() -> None:
        while True:
            call = await ua.incoming.get()
            task = asyncio.ensure_future(serve(call))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    acceptor = asyncio.ensure_future(accept())
    await stop.wait()
    acceptor.cancel()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # shutdown is bounded; a repeated signal (coreutils timeout signals the child and its
        # process group) must not kill us half-way through tearing the GSAs down
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
    await ua.close()  # ends every live call: on_terminated tears its GSA down
    if tasks:
        await asyncio.wait(tasks, timeout=5)
    for media in list(handler.media.values()):
        await media.stop()
    await keying.close()
    _emit_refusals(keying)
    report = registry.audit()
    _emit(
        {
            "event": "stopped",
            "calls": len(served),
            "refused": keying.refused,
            "live_gsas": report.live_gsas,
            "unwiped_buffers": report.unwiped_buffers,
        }
    )
    if pcap is not None:
        pcap.close()
    if args.once:
        ok = bool(served) and all(s.get("keyed") and s.get("torn_down") for s in served)
        return 0 if ok and report.live_gsas == 0 else 1
    return 0 if report.live_gsas == 0 else 1


# -- call ------------------------------------------------------------------------------------


async def _call(args: argparse.Namespace) -> int:
    try:
        uri = SipUri.parse(args.target)
    except SipError as exc:
        raise CliError(f"bad target URI: {exc}") from None
    transport = uri.transport or "udp"
    if transport.lower() not in ("udp", "tcp"):
        raise CliError("transport must be udp or tcp")
    host, port = _hostport(args.bind, "--bind")
    proxy = _hostport(args.proxy, "--proxy") if args.proxy else None
    if args.wav and not Path(args.wav).is_file():
        raise CliError(f"WAV file not found: {args.wav}")
    config = exchange_config(args)
    aor = sip_identity(config)
    expected = config.peer_identity or uri.aor()
    pcap = PcapWriter(args.pcap) if args.pcap else None
    registry = GsaRegistry()
    keying = MikeyCallKeying(config, registry=registry, address=host)
    ua = _CapturingUA(keying, host=host, port=port, transport=transport, user="caller", aor=aor)
    ua.pcap = pcap
    summary: dict[str, object] = {
        "event": "call",
        "target": args.target,
        "identity": config.identity,
        "peer_identity": expected,
        "keyed": False,
    }
    media: _Media | None = None
    ok = False
    try:
        await ua.listen()
        media = await _Media.open(registry, host, keying.new_ssrc(), pcap)
        local = LocalMedia(host, media.port, media.ssrc)
        try:
            call = await asyncio.wait_for(keying.invite(ua, uri, local, proxy=proxy), args.timeout)
        except (SipError, TimeoutError) as exc:
            summary.update(_failure(exc))
            warning = summary.get("warning")
            if isinstance(warning, str) and warning.startswith("MIKEY: INVALID_ID"):
                summary.setdefault(
                    "detail",
                    f"The callee refused the MIKEY identities: this call presented "
                    f"{config.identity or 'no identity'} and expected the callee to be "
                    f"{expected}"
                    + ("" if config.peer_identity else " (the target's AOR; see --peer-identity)"),
                )
        else:
            keys = keying.keys(call)
            summary.update(
                keyed=True,
                established=True,
                mode=keys.mode.value,
                csb_id=keys.registration.csb_id,
                call_id=call.call_id,
            )
            await media.start(keys.key, keys.remote_media, keys.remote_ssrc, args.wav, args.freq)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.wait_terminated(), args.duration)
            if args.rekey and not call.ended:
                try:
                    await keying.rekey(call)
                except SipError as exc:
                    summary["rekeyed"] = False
                    summary["rekey_failure"] = _failure(exc)
                else:
                    summary["rekeyed"] = True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(call.wait_terminated(), args.duration)
            if not call.ended:
                with contextlib.suppress(SipError):
                    await call.bye()
            summary["reason"] = call.reason.name if call.reason else None
            summary["torn_down"] = keys.key not in registry
    finally:
        if media is not None:
            await media.stop()
            summary.update(media.counts())
        await ua.close()
        await keying.close()
        if pcap is not None:
            pcap.close()
            summary["pcap_records"] = pcap.records
    report = registry.audit()
    summary["live_gsas"] = report.live_gsas
    summary["unwiped_buffers"] = report.unwiped_buffers
    ok = bool(summary.get("keyed") and summary.get("torn_down")) and report.live_gsas == 0
    if args.expect_media:
        decrypted = summary.get("decrypted", 0)
        ok = ok and isinstance(decrypted, int) and decrypted > 0
    if args.rekey:
        ok = ok and summary.get("rekeyed") is True
    summary["ok"] = ok
    _emit(summary)
    return 0 if ok else 1


# -- argparse --------------------------------------------------------------------------------


_LISTEN_IDENTITY = """\
Answer MIKEY-keyed calls and exchange SRTP audio.

Identities (RFC 4567 section 5): each caller must key its call as the AOR of its From
(scheme:user@host; no port or parameters), so a caller whose MIKEY IDi or certificate names
someone else is refused with 488 and Warning "MIKEY: INVALID_ID: ...". Our own identity is
--identity, else the own certificate's single SAN URI (signed modes); a caller's IDr must be it.
A re-INVITE may re-key a call only as the identity that keyed it.
"""

_CALL_IDENTITY = """\
Place a MIKEY-keyed call, send audio, hang up; print a JSON summary.

Identities (RFC 4567 section 5): our identity is --identity, else the own certificate's single
SAN URI (signed modes), and the From header carries it. The callee must be the AOR of the target
(sip:bob@127.0.0.1:5070 expects sip:bob@127.0.0.1: its certificate must carry that SAN URI),
unless --peer-identity names the identity to expect instead (e.g. sip:bob@example.com when
calling by IP address). A refusal shows the peer's Warning ("warning") or, when we refused the
answer, a one-sentence "detail".
"""


def _keying_options(p: argparse.ArgumentParser) -> None:
    add_credential_options(p, verify_flag=True)
    p.add_argument("--freq", type=float, default=440.0, help="tone frequency in Hz")
    p.add_argument("--pcap", help="write the call's SIP and SRTP to this pcap file")


def _run(
    coro_fn: Callable[[argparse.Namespace], Coroutine[Any, Any, int]],
) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(coro_fn(args))
        except KeyboardInterrupt:
            return 130
        except SipError as exc:
            print(f"mikey sip: {exc}", file=sys.stderr)
            return 1

    return run


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mikey sip listen|call``."""
    sip = sub.add_parser("sip", help="MIKEY-keyed SIP calls with SRTP audio")
    cmds = sip.add_subparsers(dest="sip_command", required=True)

    p = cmds.add_parser(
        "listen",
        help="answer MIKEY-keyed calls and exchange SRTP audio",
        description=_LISTEN_IDENTITY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--bind", default="127.0.0.1:5070", help="HOST:PORT to listen on")
    p.add_argument("--transport", choices=("udp", "tcp"), default="udp")
    p.add_argument("--once", action="store_true", help="exit after the first keyed call ends")
    _keying_options(p)
    p.set_defaults(func=_run(_listen))

    p = cmds.add_parser(
        "call",
        help="place a MIKEY-keyed call, send audio, hang up",
        description=_CALL_IDENTITY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", help="sip:user@host:port[;transport=tcp]")
    p.add_argument("--bind", default="127.0.0.1:0", help="local HOST:PORT for SIP")
    p.add_argument("--proxy", help="send the INVITE to this HOST:PORT (outbound proxy)")
    p.add_argument("--duration", type=float, default=2.0, help="seconds of audio")
    p.add_argument("--wav", help="send this WAV file instead of a tone")
    p.add_argument("--expect-media", action="store_true", help="require decrypted peer audio")
    p.add_argument(
        "--rekey",
        action="store_true",
        help="after --duration, re-key by re-INVITE and send for another --duration",
    )
    p.add_argument("--timeout", type=float, default=15.0, help="call setup timeout (s)")
    _keying_options(p)
    p.set_defaults(func=_run(_call))
