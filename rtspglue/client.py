"""Asyncio RTSP 1.0 client that plays one PCMU audio stream, with MIKEY/SRTP hooks.

One reader task owns the TCP connection: responses are matched to the waiting request by CSeq,
interleaved frames on the RTP channel go to the receive path, anything else is dropped. Requests
are serialised (RFC 2326 allows pipelining; we never need it). The receive path (UDP socket or
interleaved channel) passes each packet through ``ClientKeying.unprotector`` (SRTP unprotect),
parses RTP and decodes PCMU into :attr:`RtspClient.samples`; packets that fail are counted and
dropped, never raised.

The client ends exactly once (TEARDOWN, connection loss, or leaving the ``async with`` block);
``ClientKeying.on_teardown`` is called then with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from array import array
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from sdp.errors import KeyMgmtDataError, SdpError
from sdp.model import SessionDescription

from .errors import (
    KeyMgmtError,
    RtspConnectionError,
    RtspError,
    RtspParseError,
    RtspStatusError,
)
from .hooks import ClientKeying, TeardownReason
from .keymgmt import (
    KeyMgmtSpec,
    format_keymgmt,
    format_mikey_parameter,
    parse_keymgmt,
    parse_mikey_parameter,
)
from .media import PCMU_PAYLOAD_TYPE, RtpPacket, pcmu_decode
from .message import (
    InterleavedFrame,
    Limits,
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    TransportSpec,
    parse_transports,
)
from .server import bind_rtp_pair

__all__ = ["ClientKeying", "DescribedMedia", "RtspClient", "SetupResult"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DescribedMedia:
    """An audio stream found in DESCRIBE."""

    control: str
    proto: str
    formats: tuple[str, ...]
    key_mgmt: tuple[KeyMgmtSpec, ...]


@dataclass(frozen=True, slots=True)
class SetupResult:
    """What SETUP established."""

    session_id: str
    timeout: int | None
    transport: TransportSpec
    keymgmt: tuple[KeyMgmtSpec, ...]


class _RtpReceiver(asyncio.DatagramProtocol):
    def __init__(self, client: RtspClient) -> None:
        self._client = client

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        if addr and addr[0] == self._client.server_host:
            self._client._receive_rtp(data)


class RtspClient:
    """Plays ``url`` (the presentation URL). Use as ``async with RtspClient(url) as c``."""

    def __init__(
        self,
        url: str,
        *,
        keying: ClientKeying | None = None,
        limits: Limits | None = None,
        request_timeout: float = 10.0,
        keepalive: bool = True,
        user_agent: str = "rtspglue",
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "rtsp" or not parts.hostname:
            raise RtspError("URL must be rtsp://host[:port]/path")
        self.url = url
        self.server_host = parts.hostname
        self.server_port = parts.port or 554
        self.keying = keying
        self.limits = limits or Limits()
        self.request_timeout = request_timeout
        self.keepalive = keepalive
        self.user_agent = user_agent
        self.samples: array[int] = array("h")
        self.packets_received = 0
        self.packets_dropped = 0
        self.ssrc: int | None = None
        self.session: SetupResult | None = None
        self.media: DescribedMedia | None = None
        self.teardown_reason: TeardownReason | None = None
        self._teardown_sent = False
        self._cseq = 0
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._read_task: asyncio.Task[None] | None = None
        self._keepalive_task: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[RtspResponse]] = {}
        self._lock = asyncio.Lock()
        self._udp: list[asyncio.DatagramTransport] = []
        self._rtp_channel: int | None = None
        self._unprotect: Callable[[bytes], bytes] | None = None
        self._sample_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._closed = False

    # -- connection -------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the TCP connection."""
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.server_host, self.server_port),
                self.request_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise RtspConnectionError(f"cannot connect: {type(exc).__name__}") from None
        self._read_task = asyncio.create_task(self._read_loop())

    async def __aenter__(self) -> RtspClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """TEARDOWN (best effort) and close everything; idempotent."""
        if self.session is not None and self.teardown_reason is None and self._connected:
            with contextlib.suppress(RtspError):
                await self.teardown()
        self._end(TeardownReason.SHUTDOWN)
        if self._writer is not None:
            self._writer.close()
        if self._read_task is not None:
            self._read_task.cancel()
            await asyncio.gather(self._read_task, return_exceptions=True)

    async def abort(self) -> None:
        """Drop the connection without TEARDOWN (the server sees a connection loss)."""
        if self._writer is not None:
            self._writer.transport.abort()
        if self._read_task is not None:
            await asyncio.gather(self._read_task, return_exceptions=True)
        self._end(TeardownReason.CONNECTION_LOST)

    @property
    def _connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing() and not self._closed

    async def _read_loop(self) -> None:
        assert self._reader is not None
        parser = RtspParser(self.limits)
        try:
            while True:
                data = await self._reader.read(65536)
                if not data:
                    break
                for message in parser.feed(data):
                    if isinstance(message, InterleavedFrame):
                        if message.channel == self._rtp_channel:
                            self._receive_rtp(message.data)
                    elif isinstance(message, RtspResponse):
                        waiter = self._waiting.pop(message.cseq or -1, None)
                        if waiter is not None and not waiter.done():
                            waiter.set_result(message)
                    else:
                        self._answer_server_request(message)
        except (RtspParseError, ConnectionError, OSError):
            log.debug("RTSP connection failed", exc_info=True)
        finally:
            self._closed = True
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(RtspConnectionError("connection lost"))
            self._waiting.clear()
            if self.session is not None:
                # A server may close right after answering TEARDOWN: that is still a TEARDOWN.
                self._end(
                    TeardownReason.TEARDOWN
                    if self._teardown_sent
                    else TeardownReason.CONNECTION_LOST
                )

    def _answer_server_request(self, request: RtspRequest) -> None:
        if self._writer is None or request.cseq is None:
            return
        response = RtspResponse(501, headers=(("CSeq", str(request.cseq)),))
        self._writer.write(response.encode())

    # -- requests ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        uri: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> RtspResponse:
        """Send one request and return its response, whatever its status."""
        async with self._lock:
            if not self._connected or self._writer is None:
                raise RtspConnectionError("not connected")
            self._cseq += 1
            cseq = self._cseq
            all_headers = [("CSeq", str(cseq)), ("User-Agent", self.user_agent)]
            if self.session is not None and method not in ("OPTIONS", "DESCRIBE", "SETUP"):
                all_headers.append(("Session", self.session.session_id))
            all_headers.extend(headers)
            request = RtspRequest(method, uri or self.url, tuple(all_headers), body)
            future: asyncio.Future[RtspResponse] = asyncio.get_running_loop().create_future()
            self._waiting[cseq] = future
            try:
                self._writer.write(request.encode())
                await self._writer.drain()
                return await asyncio.wait_for(future, self.request_timeout)
            except TimeoutError:
                raise RtspConnectionError(f"{method} timed out") from None
            except (ConnectionError, OSError):
                raise RtspConnectionError("connection lost") from None
            finally:
                self._waiting.pop(cseq, None)

    async def _checked(
        self,
        method: str,
        uri: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> RtspResponse:
        response = await self.request(method, uri, headers, body)
        if not response.ok:
            raise RtspStatusError(response.status, response.reason, method)
        return response

    async def options(self) -> tuple[str, ...]:
        """The server's public methods."""
        response = await self._checked("OPTIONS")
        return tuple(m.strip() for m in (response.header("Public") or "").split(",") if m.strip())

    async def describe(self) -> DescribedMedia:
        """DESCRIBE: find the first audio stream, its control URL and its key-mgmt."""
        response = await self._checked("DESCRIBE", headers=(("Accept", "application/sdp"),))
        base = response.header("Content-Base") or response.header("Content-Location") or self.url
        try:
            sdp = SessionDescription.parse(response.body)
            index = next(i for i, m in enumerate(sdp.media) if m.media == "audio")
            media = sdp.media[index]
            control = _control_url(base, sdp.attributes("control"), media.attributes("control"))
            # the sdp package's a=key-mgmt codec has decoded each message already (RFC 4567 §3.1)
            offered = tuple(
                KeyMgmtSpec(attr.prot.lower(), control, attr.message)
                for attr in sdp.effective_key_mgmt(index)
            )
            described = DescribedMedia(control, media.proto, media.formats, offered)
        except StopIteration:
            raise RtspParseError("DESCRIBE has no audio stream") from None
        except KeyMgmtDataError:
            raise KeyMgmtError("malformed a=key-mgmt value") from None
        except SdpError:
            raise RtspParseError("DESCRIBE body is not valid SDP") from None
        self.media = described
        return described

    async def setup(self, *, interleaved: bool = False) -> SetupResult:
        """SETUP the described stream over UDP (127.0.0.1 ports) or TCP interleaved."""
        media = self.media or await self.describe()
        profile = "SAVP" if media.proto.upper() == "RTP/SAVP" else "AVP"
        headers: list[tuple[str, str]] = []
        if self.keying is not None:
            message = self.keying.setup_key_mgmt(media.control, media.key_mgmt)
            if message is not None:
                headers.append(
                    ("KeyMgmt", format_keymgmt([KeyMgmtSpec("mikey", media.control, message)]))
                )
        if interleaved:
            offer = TransportSpec(profile, "TCP", True, interleaved=(0, 1), mode="PLAY")
        else:
            offer = TransportSpec(profile, "UDP", True, client_port=await self._open_udp())
        headers.insert(0, ("Transport", offer.encode()))
        try:
            response = await self._checked("SETUP", media.control, tuple(headers))
            session = SessionHeader.parse(response.header("Session") or "")
            transport = parse_transports(response.header("Transport") or "")[0]
            keymgmt = tuple(s for v in response.header_all("KeyMgmt") for s in parse_keymgmt(v))
        except BaseException:
            self._close_udp()
            raise
        if transport.lower != offer.lower or (interleaved and transport.interleaved is None):
            self._close_udp()
            raise RtspParseError("server answered SETUP with another transport")
        self._rtp_channel = transport.interleaved[0] if transport.interleaved else None
        self.ssrc = transport.ssrc
        result = SetupResult(session.session_id, session.timeout, transport, keymgmt)
        self.session = result
        if self.keying is not None:
            try:
                self.keying.on_setup_reply(keymgmt, transport.ssrc)
                self._unprotect = self.keying.unprotector(transport.ssrc)
            except (RtspError, KeyMgmtError):
                await self.close()
                raise
        if self.keepalive and session.timeout:
            self._keepalive_task = asyncio.create_task(self._keepalive(session.timeout))
        return result

    async def play(self) -> RtspResponse:
        """PLAY from the start (live)."""
        return await self._checked("PLAY", self._session_url(), (("Range", "npt=0.000-"),))

    async def pause(self) -> RtspResponse:
        """PAUSE."""
        return await self._checked("PAUSE", self._session_url())

    async def teardown(self) -> None:
        """TEARDOWN the session and release the receive ports."""
        if self.session is None:
            raise RtspError("no session")
        self._teardown_sent = True
        try:
            await self._checked("TEARDOWN", self._session_url())
        finally:
            self._end(TeardownReason.TEARDOWN)

    async def get_parameter(self, body: bytes = b"") -> RtspResponse:
        """GET_PARAMETER (an empty body is a keep-alive)."""
        headers = (("Content-Type", "text/parameters"),) if body else ()
        return await self._checked("GET_PARAMETER", self._session_url(), headers, body)

    async def set_parameter(self, body: bytes) -> RtspResponse:
        """SET_PARAMETER with a text/parameters body."""
        headers = (("Content-Type", "text/parameters"),)
        return await self._checked("SET_PARAMETER", self._session_url(), headers, body)

    async def get_mikey(self) -> bytes:
        """The server's current MIKEY message (ONVIF GET_PARAMETER ``mikey``)."""
        response = await self.get_parameter(b"mikey\r\n")
        return parse_mikey_parameter(response.body)

    async def set_mikey(self, message: bytes, *, gstreamer_style: bool = False) -> None:
        """Send a re-key: ONVIF ``mikey: <b64>`` body, or GStreamer's ``KeyMgmt:`` body."""
        if gstreamer_style:
            control = self.media.control if self.media is not None else self.url
            value = format_keymgmt([KeyMgmtSpec("mikey", control, message)])
            body = f"KeyMgmt: {value}\r\n".encode()
        else:
            body = format_mikey_parameter(message)
        await self.set_parameter(body)

    def _session_url(self) -> str:
        if self.session is None:
            raise RtspError("no session: SETUP first")
        return self.url

    async def _keepalive(self, timeout: int) -> None:
        interval = max(0.5, timeout / 2)
        while True:
            await asyncio.sleep(interval)
            try:
                await self.request("GET_PARAMETER", self.url)
            except RtspError:
                return

    # -- media ------------------------------------------------------------------------------

    async def _open_udp(self) -> tuple[int, int]:
        rtp_sock, rtcp_sock = bind_rtp_pair("127.0.0.1")
        loop = asyncio.get_running_loop()
        rtp, _ = await loop.create_datagram_endpoint(lambda: _RtpReceiver(self), sock=rtp_sock)
        rtcp, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=rtcp_sock)
        self._udp = [rtp, rtcp]
        return rtp_sock.getsockname()[1], rtcp_sock.getsockname()[1]

    def _close_udp(self) -> None:
        for transport in self._udp:
            transport.close()
        self._udp = []

    def _receive_rtp(self, data: bytes) -> None:
        try:
            if self._unprotect is not None:
                data = self._unprotect(data)
            elif self.keying is not None:
                raise RtspError("no unprotector yet")
            packet = RtpPacket.parse(data)
            if packet.payload_type != PCMU_PAYLOAD_TYPE:
                raise RtspError("unexpected payload type")
            if self.ssrc is not None and packet.ssrc != self.ssrc:
                raise RtspError("unexpected SSRC")
        except Exception:
            self.packets_dropped += 1
            return
        self.packets_received += 1
        self.samples.extend(pcmu_decode(packet.payload))
        for count, waiter in list(self._sample_waiters):
            if len(self.samples) >= count and not waiter.done():
                waiter.set_result(None)

    async def wait_for_samples(self, count: int) -> array[int]:
        """Wait until at least ``count`` samples have arrived; return them all."""
        if len(self.samples) < count:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            entry = (count, waiter)
            self._sample_waiters.append(entry)
            try:
                await waiter
            finally:
                self._sample_waiters.remove(entry)
        return self.samples

    def _end(self, reason: TeardownReason) -> None:
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
            self._keepalive_task = None
        self._close_udp()
        self._unprotect = None
        if self.session is None or self.teardown_reason is not None:
            return
        self.teardown_reason = reason
        if self.keying is not None:
            try:
                self.keying.on_teardown(reason)
            except Exception:
                log.exception("keying teardown hook failed")


def _control_url(
    base: str, session_controls: list[str | None], media_controls: list[str | None]
) -> str:
    """Resolve the media's a=control against Content-Base (RFC 2326 §C.1.1)."""
    control = next((c for c in media_controls if c), None)
    if control is None or control == "*":
        return base
    if control.startswith("rtsp://"):
        return control
    if not base.endswith("/"):
        base += "/"
    return urljoin(base, control) if "://" in base else base + control
