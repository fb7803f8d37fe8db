"""aiortc bridge: RTCRtpSender / RTCRtpReceiver over MIKEY-keyed SRTP on UDP, no RTCPeerConnection.

aiortc's sender and receiver talk to their transport (normally ``RTCDtlsTransport``) through a
small private surface: ``state``, ``_send_rtp``, ``_register_rtp_sender`` /
``_register_rtp_receiver``, their ``_unregister_*`` twins, ``_stats_id`` and ``_get_stats``.
:class:`SrtpMediaTransport` offers exactly that surface over an asyncio UDP socket, with the SRTP
keys of a :class:`~srtp.gsa.Gsa` (or any :class:`StreamSource`) in place of DTLS-SRTP. This module
is the only one in the project touching aiortc private API; it refuses to import unless aiortc is
1.16.x (:func:`check_aiortc_version`).

Data path, per datagram (RTP and RTCP share one port, RFC 5761 §4 demultiplexing):

* out: aiortc hands plain RTP/RTCP to ``_send_rtp``; the SSRC in the header picks the
  :class:`~srtp.context.OutboundStream` (RFC 3711 §3.3 / §3.4 protect); a packet whose SSRC has
  no key, or that libsrtp refuses, is dropped and counted, never sent in clear;
* in: the header SSRC (in clear in SRTP and SRTCP) picks the
  :class:`~srtp.context.InboundStream`; authentication failures (RFC 3711 §3.3.2 step 5) and
  replays (§3.3.2 step 2) are dropped and counted; authenticated packets are queued (bounded) and
  a single task routes them, in order, to the registered receiver/sender with aiortc's own
  ``RtpRouter``.

A transport without a remote address latches onto the source of the first *authenticated* packet
(symmetric RTP, RFC 4961); once the remote is known, datagrams from other addresses are dropped.
The transport never owns the SRTP streams: the GSA (or whoever built them) closes and wipes them.
:meth:`SrtpMediaTransport.close` is idempotent and ends every registered receiver's track.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, cast

from .context import InboundStream, OutboundStream
from .errors import (
    KeyMaterialError,
    SrtpAuthenticationError,
    SrtpError,
    SrtpReplayError,
)

__all__ = [
    "SUPPORTED_AIORTC",
    "AiortcVersionError",
    "AudioCodec",
    "MediaBridgeError",
    "PacketObserver",
    "SrtpMediaTransport",
    "StreamSet",
    "StreamSource",
    "TransportCounters",
    "audio_codec",
    "check_aiortc_version",
    "receive_audio",
    "start_audio",
]


class MediaBridgeError(SrtpError):
    """Base of the aiortc bridge's errors (bad codec, unkeyed SSRC, closed transport)."""


class AiortcVersionError(MediaBridgeError, ImportError):
    """aiortc is missing or not the minor version whose private API this bridge was written for."""


#: The aiortc minor version this module's private-API contact was written against.
SUPPORTED_AIORTC = (1, 16)


def check_aiortc_version(version: str) -> None:
    """Raise AiortcVersionError unless ``version`` is an aiortc 1.16.x version string."""
    parts = version.split(".")
    try:
        found = (int(parts[0]), int(parts[1]))
    except (IndexError, ValueError):
        raise AiortcVersionError(f"cannot parse aiortc version {version!r}") from None
    if found != SUPPORTED_AIORTC:
        want = ".".join(map(str, SUPPORTED_AIORTC))
        raise AiortcVersionError(
            f"srtp.media uses aiortc private API and supports aiortc {want}.x only; "
            f"found {version} (pin aiortc~={want}.0)"
        )


try:
    import aiortc as _aiortc
except ImportError:  # pragma: no cover - the media extra is not installed
    raise AiortcVersionError(
        "srtp.media needs aiortc 1.16 (install the project's 'media' extra)"
    ) from None
check_aiortc_version(_aiortc.__version__)

# Private aiortc API: pinned to 1.16 by the check above.
from aiortc import clock as _clock  # noqa: E402
from aiortc.mediastreams import MediaStreamTrack  # noqa: E402
from aiortc.rtcdtlstransport import RtpReceiver, RtpRouter, RtpSender  # noqa: E402
from aiortc.rtcrtpparameters import (  # noqa: E402
    RTCRtcpParameters,
    RTCRtpCodecParameters,
    RTCRtpDecodingParameters,
    RTCRtpEncodingParameters,
    RTCRtpReceiveParameters,
    RTCRtpSendParameters,
)
from aiortc.rtcrtpreceiver import RemoteStreamTrack, RTCRtpReceiver  # noqa: E402
from aiortc.rtcrtpsender import RTCRtpSender  # noqa: E402
from aiortc.rtp import HeaderExtensionsMap, RtcpPacket, RtpPacket  # noqa: E402
from aiortc.stats import RTCStatsReport, RTCTransportStats  # noqa: E402

if TYPE_CHECKING:
    from aiortc.rtcdtlstransport import RTCDtlsTransport

logger = logging.getLogger(__name__)

Address = tuple[str, int]
#: ``observer(source, destination, datagram)``, see :meth:`SrtpMediaTransport.set_packet_observer`.
PacketObserver = Callable[[Address, Address, bytes], None]
AudioCodec = Literal["PCMU", "opus"]

_MIN_RTP = 12  # RFC 3550 §5.1 fixed header
_MIN_RTCP = 8  # RFC 3550 §6.4.1 header + SSRC
_QUEUE_LIMIT = 512


class StreamSource(Protocol):
    """Where the transport finds SRTP streams by SSRC; :class:`~srtp.gsa.Gsa` is one.

    Both methods raise :class:`~srtp.errors.SrtpError` (``KeyMaterialError``) for an SSRC without
    keys. Looking streams up per packet means a GSA re-key or teardown takes effect at once.
    """

    def outbound_stream(self, ssrc: int) -> OutboundStream: ...

    def inbound_stream(self, ssrc: int) -> InboundStream: ...


class StreamSet:
    """A :class:`StreamSource` over streams given directly (no GSA); :meth:`close` closes them."""

    def __init__(
        self, outbound: Iterable[OutboundStream] = (), inbound: Iterable[InboundStream] = ()
    ) -> None:
        self.outbound = {s.ssrc: s for s in outbound}
        self.inbound = {s.ssrc: s for s in inbound}

    def outbound_stream(self, ssrc: int) -> OutboundStream:
        try:
            return self.outbound[ssrc]
        except KeyError:
            raise KeyMaterialError(f"no outbound SRTP stream for SSRC {ssrc:#010x}") from None

    def inbound_stream(self, ssrc: int) -> InboundStream:
        stream = self.inbound.get(ssrc) or self.inbound.get(0)  # 0: wildcard stream
        if stream is None:
            raise KeyMaterialError(f"no inbound SRTP stream for SSRC {ssrc:#010x}")
        return stream

    def close(self) -> None:
        """Close every stream (idempotent)."""
        for s in (*self.outbound.values(), *self.inbound.values()):
            s.close()


@dataclass(frozen=True, slots=True)
class TransportCounters:
    """A snapshot of a transport's packet counters."""

    sent_rtp: int = 0
    sent_rtcp: int = 0
    send_dropped: int = 0  # no key for the SSRC, libsrtp refused, or no remote yet
    received: int = 0  # every datagram read from the socket
    decrypted_rtp: int = 0
    decrypted_rtcp: int = 0
    auth_failures: int = 0
    replays: int = 0
    unknown_ssrc: int = 0
    malformed: int = 0  # too short, not RTP version 2, or unparsable after decryption
    rejected: int = 0  # other SRTP errors (key expired, closed context, size)
    foreign_source: int = 0  # from an address other than the remote
    overflow: int = 0  # dropped because the delivery queue was full
    delivered: int = 0  # handed to a registered aiortc receiver or sender


def _is_rtcp(data: bytes) -> bool:
    # RFC 5761 §4: RTCP packet types 192-223 occupy the second byte; RTP PTs there are avoided.
    return 192 <= data[1] <= 223


def _ssrc_of(data: bytes, rtcp: bool) -> int:
    offset = 4 if rtcp else 8
    return int.from_bytes(data[offset : offset + 4], "big")


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SrtpMediaTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._owner._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        logger.debug("UDP error on SRTP media transport: %s", type(exc).__name__)


class SrtpMediaTransport:
    """A UDP endpoint aiortc's RTCRtpSender/RTCRtpReceiver can run over, keyed by MIKEY.

    Build one with :meth:`open`; see the module docstring for the data path.
    """

    def __init__(self, source: StreamSource, remote: Address | None = None) -> None:
        self.source = source
        self._remote = remote
        self._udp: asyncio.DatagramTransport | None = None
        self._closed = False
        self._counts: dict[str, int] = dict.fromkeys(TransportCounters.__slots__, 0)
        self._bytes_sent = 0
        self._bytes_received = 0
        self._queue: asyncio.Queue[tuple[bool, bytes, int]] = asyncio.Queue(_QUEUE_LIMIT)
        self._task: asyncio.Task[None] | None = None
        self._rtp_router = RtpRouter()
        self._rtp_header_extensions_map = HeaderExtensionsMap()
        self._stats_id = f"transport_{uuid.uuid4()}"
        self._observer: PacketObserver | None = None

    @classmethod
    async def open(
        cls,
        source: StreamSource,
        *,
        local: Address = ("127.0.0.1", 0),
        remote: Address | None = None,
    ) -> SrtpMediaTransport:
        """Bind ``local`` (UDP) and start delivering; ``remote=None`` latches (module doc)."""
        self = cls(source, remote)
        loop = asyncio.get_running_loop()
        try:
            udp, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), local_addr=local)
        except OSError as exc:
            raise MediaBridgeError(
                f"cannot bind UDP {local[0]}:{local[1]}: {exc.strerror}"
            ) from None
        self._udp = udp
        self._task = asyncio.ensure_future(self._deliver())
        return self

    # -- what aiortc reads -------------------------------------------------------------------

    @property
    def state(self) -> str:
        """``"connected"`` while open, ``"closed"`` after :meth:`close` (RTCDtlsTransport.state)."""
        return "closed" if self._closed else "connected"

    @property
    def local_address(self) -> Address:
        if self._udp is None:
            raise MediaBridgeError("transport is not open")
        host, port = self._udp.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    @property
    def remote_address(self) -> Address | None:
        return self._remote

    def set_remote(self, remote: Address) -> None:
        """Send to (and accept packets only from) ``remote`` from now on, e.g. the peer's RTP
        address learnt from its SDP answer. ``remote`` must be a numeric IP address."""
        self._remote = (str(remote[0]), int(remote[1]))

    def set_packet_observer(self, observer: PacketObserver | None) -> None:
        """Call ``observer(source, destination, datagram)`` with every datagram this transport
        sends or receives, as it is on the wire (SRTP/SRTCP, before any check), e.g. to write a
        capture file. ``None`` removes it. An observer that raises is logged and ignored: it
        cannot stop the media."""
        self._observer = observer

    def _observe(self, source: Address, destination: Address, data: bytes) -> None:
        observer = self._observer
        if observer is None:
            return
        try:
            observer(source, destination, data)
        except Exception as exc:  # a capture must not break the call
            logger.debug("packet observer failed: %s", type(exc).__name__)

    @property
    def counters(self) -> TransportCounters:
        return TransportCounters(**self._counts)

    def _count(self, name: str) -> None:
        self._counts[name] += 1

    def _register_rtp_sender(self, sender: RtpSender, parameters: RTCRtpSendParameters) -> None:
        self._rtp_header_extensions_map.configure(parameters)
        self._rtp_router.register_sender(sender, ssrc=sender._ssrc)

    def _unregister_rtp_sender(self, sender: RtpSender) -> None:
        self._rtp_router.unregister_sender(sender)

    def _register_rtp_receiver(
        self, receiver: RtpReceiver, parameters: RTCRtpReceiveParameters
    ) -> None:
        self._rtp_header_extensions_map.configure(parameters)
        self._rtp_router.register_receiver(
            receiver,
            ssrcs=sorted({e.ssrc for e in parameters.encodings}),
            payload_types=[c.payloadType for c in parameters.codecs if c.payloadType is not None],
            mid=parameters.muxId or None,
        )

    def _unregister_rtp_receiver(self, receiver: RtpReceiver) -> None:
        self._rtp_router.unregister_receiver(receiver)

    def _get_stats(self) -> RTCStatsReport:
        report = RTCStatsReport()
        c = self._counts
        report.add(
            RTCTransportStats(
                timestamp=_clock.current_datetime(),
                type="transport",
                id=self._stats_id,
                packetsSent=c["sent_rtp"] + c["sent_rtcp"],
                packetsReceived=c["received"],
                bytesSent=self._bytes_sent,
                bytesReceived=self._bytes_received,
                iceRole="none",
                dtlsState=self.state,
            )
        )
        return report

    async def _send_rtp(self, data: bytes) -> None:
        """Protect and send one RTP or RTCP packet (aiortc's name; it carries both)."""
        if self._closed or self._udp is None:
            raise ConnectionError("SRTP media transport is closed")  # aiortc expects this type
        self.send_packet(data)

    # -- public data path ----------------------------------------------------------------------

    def send_packet(self, data: bytes) -> bool:
        """Protect one plain RTP/RTCP packet with its SSRC's key and send it; False if dropped."""
        if self._closed or self._udp is None:
            raise MediaBridgeError("SRTP media transport is closed")
        rtcp = len(data) >= 2 and _is_rtcp(data)
        if len(data) < (_MIN_RTCP if rtcp else _MIN_RTP) or self._remote is None:
            self._count("send_dropped")
            return False
        try:
            stream = self.source.outbound_stream(_ssrc_of(data, rtcp))
            out = stream.protect_rtcp(data) if rtcp else stream.protect(data)
        except SrtpError as exc:
            logger.debug("SRTP protect refused: %s", type(exc).__name__)
            self._count("send_dropped")
            return False
        self._udp.sendto(out, self._remote)
        if self._observer is not None:
            self._observe(self.local_address, self._remote, out)
        self._bytes_sent += len(out)
        self._count("sent_rtcp" if rtcp else "sent_rtp")
        return True

    def _datagram_received(self, data: bytes, addr: Address) -> None:
        if self._closed:
            return
        if self._observer is not None:
            self._observe((str(addr[0]), int(addr[1])), self.local_address, data)
        self._count("received")
        self._bytes_received += len(data)
        if self._remote is not None and tuple(addr[:2]) != self._remote:
            self._count("foreign_source")
            return
        if len(data) < _MIN_RTP or data[0] >> 6 != 2:  # RFC 3550 §5.1 version 2
            self._count("malformed")
            return
        rtcp = _is_rtcp(data)
        try:
            stream = self.source.inbound_stream(_ssrc_of(data, rtcp))
        except SrtpError:
            self._count("unknown_ssrc")
            return
        try:
            plain = stream.unprotect_rtcp(data) if rtcp else stream.unprotect(data)
        except SrtpAuthenticationError:
            self._count("auth_failures")
            return
        except SrtpReplayError:
            self._count("replays")
            return
        except SrtpError as exc:
            logger.debug("SRTP unprotect refused: %s", type(exc).__name__)
            self._count("rejected")
            return
        self._count("decrypted_rtcp" if rtcp else "decrypted_rtp")
        if self._remote is None:
            self._remote = (str(addr[0]), int(addr[1]))
        try:
            self._queue.put_nowait((rtcp, plain, _clock.current_ms()))
        except asyncio.QueueFull:
            self._count("overflow")

    async def _deliver(self) -> None:
        while True:
            rtcp, plain, arrival_ms = await self._queue.get()
            try:
                if rtcp:
                    await self._deliver_rtcp(plain)
                else:
                    await self._deliver_rtp(plain, arrival_ms)
            except asyncio.CancelledError:
                raise
            except Exception:  # a receiver bug must not stop the transport
                logger.exception("aiortc receiver failed on a packet")

    async def _deliver_rtp(self, plain: bytes, arrival_ms: int) -> None:
        try:
            packet = RtpPacket.parse(plain, self._rtp_header_extensions_map)
        except ValueError:
            self._count("malformed")
            return
        receiver = self._rtp_router.route_rtp(packet)
        if receiver is not None:
            self._count("delivered")
            await receiver._handle_rtp_packet(packet, arrival_time_ms=arrival_ms)

    async def _deliver_rtcp(self, plain: bytes) -> None:
        try:
            packets = RtcpPacket.parse(plain)
        except ValueError:
            self._count("malformed")
            return
        for packet in packets:
            recipients = self._rtp_router.route_rtcp(packet)
            if recipients:
                self._count("delivered")
            for recipient in recipients:
                await recipient._handle_rtcp_packet(packet)

    def close(self) -> None:
        """Stop receiving and sending and end the receivers' tracks; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            self._task = None
        if self._udp is not None:
            self._udp.close()
        for receiver in list(self._rtp_router.receivers):
            receiver._handle_disconnect()

    async def __aenter__(self) -> SrtpMediaTransport:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


# -- sender / receiver set-up -------------------------------------------------------------------

_CODECS: dict[str, tuple[str, int, int | None, int]] = {
    # name: (mimeType, clockRate, channels, payloadType)
    "pcmu": ("audio/PCMU", 8000, None, 0),  # RFC 3551 §6 Table 4
    "opus": ("audio/opus", 48000, 2, 111),  # RFC 7587 §7 (dynamic PT, as aiortc offers it)
}


def _codec(name: str) -> tuple[RTCRtpCodecParameters, int]:
    try:
        mime, rate, channels, pt = _CODECS[name.lower()]
    except (KeyError, AttributeError):
        raise MediaBridgeError(f"unsupported audio codec {name!r} (PCMU or opus)") from None
    return RTCRtpCodecParameters(
        mimeType=mime, clockRate=rate, channels=channels, payloadType=pt
    ), pt


def audio_codec(name: str) -> RTCRtpCodecParameters:
    """aiortc codec parameters for ``"PCMU"`` (8000, PT 0) or ``"opus"`` (48000/2, PT 111)."""
    return _codec(name)[0]


def _as_dtls(transport: SrtpMediaTransport) -> RTCDtlsTransport:
    if transport.state == "closed":
        raise MediaBridgeError("SRTP media transport is closed")
    return cast("RTCDtlsTransport", transport)


def _check_keyed(transport: SrtpMediaTransport, ssrc: int) -> None:
    if not 0 < ssrc <= 0xFFFFFFFF:
        raise MediaBridgeError("an SSRC is a non-zero 32-bit value")
    try:
        transport.source.outbound_stream(ssrc)
    except SrtpError:
        raise MediaBridgeError(f"SSRC {ssrc:#010x} has no outbound SRTP key") from None


async def start_audio(
    transport: SrtpMediaTransport,
    track: MediaStreamTrack,
    *,
    ssrc: int,
    codec: AudioCodec = "PCMU",
    cname: str | None = None,
) -> RTCRtpSender:
    """Start an aiortc sender of ``track`` over ``transport`` as the keyed SSRC ``ssrc``.

    Stop it with ``await sender.stop()`` (it then sends an SRTCP BYE).
    """
    if track.kind != "audio":
        raise MediaBridgeError("start_audio needs an audio track")
    params, pt = _codec(codec)
    _check_keyed(transport, ssrc)
    sender = RTCRtpSender(track, _as_dtls(transport))
    sender._ssrc = ssrc  # the Data SA's SSRC, not aiortc's random one
    await sender.send(
        RTCRtpSendParameters(
            codecs=[params],
            encodings=[RTCRtpEncodingParameters(ssrc=ssrc, payloadType=pt)],
            rtcp=RTCRtcpParameters(cname=cname or f"{uuid.uuid4()}", ssrc=ssrc, mux=True),
        )
    )
    return sender


async def receive_audio(
    transport: SrtpMediaTransport,
    codec: AudioCodec = "PCMU",
    *,
    remote_ssrc: int | None = None,
    rtcp_ssrc: int | None = None,
) -> tuple[RTCRtpReceiver, MediaStreamTrack]:
    """Start an aiortc receiver on ``transport``; returns it and the track of decoded audio.

    ``remote_ssrc`` pins the peer's SSRC (otherwise the payload type routes). With ``rtcp_ssrc``
    (one of our keyed outbound SSRCs) the receiver sends SRTCP receiver reports as that SSRC.
    """
    params, pt = _codec(codec)
    if rtcp_ssrc is not None:
        _check_keyed(transport, rtcp_ssrc)
    if remote_ssrc is not None and not 0 < remote_ssrc <= 0xFFFFFFFF:
        raise MediaBridgeError("an SSRC is a non-zero 32-bit value")
    receiver = RTCRtpReceiver("audio", _as_dtls(transport))
    track = RemoteStreamTrack(kind="audio")
    receiver._track = track
    if rtcp_ssrc is not None:
        receiver._set_rtcp_ssrc(rtcp_ssrc)
    encodings = (
        [RTCRtpDecodingParameters(ssrc=remote_ssrc, payloadType=pt)]
        if remote_ssrc is not None
        else []
    )
    await receiver.receive(
        RTCRtpReceiveParameters(codecs=[params], encodings=encodings, rtcp=RTCRtcpParameters())
    )
    return receiver, track
