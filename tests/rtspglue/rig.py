"""Helpers for the identity / session-binding tests: raw RTSP requests over their own TCP
connection (optionally from another loopback source address) and a playing keyed client."""

from __future__ import annotations

import asyncio
import base64

from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying
from rtspglue.keymgmt import KeyMgmtSpec, format_keymgmt
from rtspglue.message import RtspParser, RtspRequest, RtspResponse


class RawConnection:
    """One TCP connection of our own to an RTSP server, speaking raw requests."""

    def __init__(self, port: int, source: str | None = None) -> None:
        self.port = port
        self.source = source
        self._cseq = 0
        self._parser = RtspParser()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._ready: list[RtspResponse] = []

    async def __aenter__(self) -> RawConnection:
        local = (self.source, 0) if self.source is not None else None
        self._reader, self._writer = await asyncio.open_connection(
            "127.0.0.1", self.port, local_addr=local
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()

    def send(
        self,
        method: str,
        uri: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> None:
        """Write one request (pipelined: read the answers with :meth:`responses`)."""
        assert self._writer is not None
        self._cseq += 1
        request = RtspRequest(method, uri, (("CSeq", str(self._cseq)), *headers), body)
        self._writer.write(request.encode())

    async def responses(self, count: int, timeout: float = 10.0) -> list[RtspResponse]:
        """The next ``count`` responses (interleaved frames skipped)."""
        assert self._reader is not None
        out: list[RtspResponse] = []

        async def read() -> None:
            assert self._reader is not None
            while len(self._ready) < count:
                data = await self._reader.read(65536)
                if not data:
                    raise ConnectionError("server closed the connection")
                self._ready.extend(
                    m for m in self._parser.feed(data) if isinstance(m, RtspResponse)
                )

        await asyncio.wait_for(read(), timeout)
        out, self._ready = self._ready[:count], self._ready[count:]
        return out

    async def ask(
        self,
        method: str,
        uri: str,
        headers: tuple[tuple[str, str], ...] = (),
        body: bytes = b"",
    ) -> RtspResponse:
        """One request, its response."""
        self.send(method, uri, headers, body)
        (response,) = await self.responses(1)
        return response


def mikey_body(message: bytes) -> bytes:
    """ONVIF SET_PARAMETER body ``mikey: <base64>``."""
    return b"mikey: " + base64.b64encode(message) + b"\r\n"


def keymgmt_body(control: str, message: bytes) -> bytes:
    """GStreamer SET_PARAMETER body ``KeyMgmt: prot=mikey;uri=...;data=...``."""
    return f"KeyMgmt: {format_keymgmt([KeyMgmtSpec('mikey', control, message)])}\r\n".encode()


def parameters(session_id: str) -> tuple[tuple[str, str], ...]:
    return (("Session", session_id), ("Content-Type", "text/parameters"))


async def decrypts_on(client: RtspClient, keying: MikeyClientKeying, packets: int = 10) -> None:
    """Wait until the client has decrypted ``packets`` more packets (and rejected none more)."""
    decrypted, rejected = keying.stats.decrypted, keying.stats.rejected
    count = len(client.samples)
    await asyncio.wait_for(client.wait_for_samples(count + packets * 160), 10)
    assert keying.stats.decrypted >= decrypted + packets
    assert keying.stats.rejected == rejected
