"""``mikey pcap``: the MIKEY exchanges and SRTP media of a capture, opened with given credentials.

The file is read with dpkt (pcap and pcapng); SIP over UDP and TCP and RTSP over TCP (with
interleaved media, RFC 2326 §10.12) are reassembled per direction; every MIKEY message is found
(SDP ``a=key-mgmt`` at session and media level and RTSP ``KeyMgmt``, RFC 4567; ONVIF/GStreamer
GET/SET_PARAMETER bodies; raw MIKEY on UDP port 2269, RFC 3830 §7); a ladder of the signalling is
printed; each I_MESSAGE is processed as its responder would with the credentials given (PSK, or
the responder's own certificate and key for PK), so its Data SAs are derived (RFC 3830 §4.1.3)
and the SRTP/SRTCP streams of those SSRCs are decrypted (counts, authentication failures, ROC
wraps); PCMU/PCMA streams can be written as WAV files and the decrypted RTP as a new pcap.

Bounded on hostile input: every read is capped by the file's size, TCP reassembly keeps at most
:data:`MAX_PENDING` bytes out of order per direction, headers and bodies have size limits
(:data:`MAX_HEADER`, :data:`MAX_BODY`), flows, messages and streams are counted and capped. A
capture that cannot be read is a :class:`PcapError` with one sentence; a capture that breaks off
is read up to the break and the break is a warning.

The sans-IO rule holds: nothing here is in ``mikey``; the exchange code runs unchanged on the
bytes found, with the packet's capture time as its clock.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import io
import json
import os
import re
import socket
import struct
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO

import dpkt  # type: ignore[import-untyped]
from cryptography import x509

from mikey.codec import Cert, Message, Timestamp, parse_message
from mikey.errors import MikeyError
from mikey.exchange import (
    MODE_OF_INIT,
    MODE_OF_RESP,
    Endpoint,
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    PeerProfile,
    Responder,
    apply_profile,
)
from mikey.keying import DataSaEntry, Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore
from mikey.registry import CertType, DataType
from mikey.replay import ReplayGuard, TimestampPolicy, unix_from_ntp
from srtp.context import InboundStream
from srtp.errors import SrtpAuthenticationError, SrtpError

from .common import CliError
from .exchange import data_sa_row

__all__ = [
    "MAX_BODY",
    "MAX_HEADER",
    "MAX_PENDING",
    "Capture",
    "OpenCredentials",
    "PcapError",
    "PcapWriter",
    "Source",
    "analyse",
    "credentials_of",
    "open_answer",
    "open_message",
    "register",
    "render_text",
    "report",
]

MAX_HEADER = 16 * 1024  # bytes of a SIP/RTSP start line and headers
MAX_BODY = 256 * 1024  # Content-Length accepted
MAX_PENDING = 1 << 20  # out-of-order TCP bytes kept per direction
MAX_SEGMENTS = 512  # out-of-order TCP segments kept per direction
MAX_FLOWS = 4096  # TCP directions tracked
MAX_MESSAGES = 20_000  # signalling messages in the ladder
MAX_STREAMS = 1024  # SRTP streams (SSRCs) tracked
MAX_RECORD = 256 * 1024  # one pcap record or pcapng block
MAX_WAV_SECONDS = 3600
MAX_WAV_TOTAL = 256 << 20  # bytes of WAV audio held for all streams together
MAX_FOUND = 20_000  # MIKEY messages found
MIKEY_PORT = 2269  # RFC 3830 §7 (IANA)

_SIP_START = re.compile(rb"^(?:[A-Z_]{3,20} \S+ (?:SIP|RTSP)/\d\.\d|(?:SIP|RTSP)/\d\.\d \d{3})")
_KEY_MGMT = re.compile(r"^a=key-mgmt:\s*mikey\s+(\S+)", re.IGNORECASE)
_KEYMGMT_DATA = re.compile(r'prot\s*=\s*"?mikey"?[^,]*?data\s*=\s*"?([A-Za-z0-9+/=]+)"?', re.I)
_SSRC_SDP = re.compile(r"^a=ssrc:(\d+)", re.IGNORECASE)
_SSRC_TRANSPORT = re.compile(r"ssrc=([0-9a-fA-F]{1,8})", re.IGNORECASE)
_RTCP_TYPES = range(200, 205)


class PcapError(CliError):
    """A capture that cannot be read or analysed (exit status 2, one sentence)."""


# --- the pcap writer both glue CLIs use ------------------------------------------------------

LINKTYPE_RAW = 101  # raw IPv4/IPv6 (tcpdump.org link-layer header types)
_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIBBHHH")

Address = tuple[str, int]


def _checksum(header: bytes) -> int:
    total: int = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """Classic libpcap file (LINKTYPE_RAW): one synthesized IPv4/UDP packet per datagram, and
    IPv4/TCP segments for stream bytes (``mikey sip --pcap``, ``mikey rtsp serve/play --pcap``)."""

    def __init__(self, path: str | Path) -> None:
        try:
            self._file: BinaryIO | None = open(path, "wb")  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise CliError(f"cannot write {path}: {exc.strerror}") from None
        self._ident = 0
        self._seq: dict[tuple[Address, Address], int] = {}
        self.records = 0
        self._file.write(_PCAP_HEADER.pack(0xA1B2C3D4, 2, 4, 0, 0, 65535, LINKTYPE_RAW))

    def record(
        self, source: Address, destination: Address, payload: bytes, when: float | None = None
    ) -> None:
        """Append one datagram from ``source`` to ``destination`` (IPv4 only; others skipped),
        stamped ``when`` (Unix seconds; now by default)."""
        if self._file is None:
            return
        try:
            src = socket.inet_aton(source[0])
            dst = socket.inet_aton(destination[0])
        except OSError:
            return
        payload = payload[: 65535 - 28]
        self._ident = (self._ident + 1) & 0xFFFF
        udp = _UDP.pack(source[1], destination[1], 8 + len(payload), 0)  # checksum 0: none
        ip = _IPV4.pack(0x45, 0, 28 + len(payload), self._ident, 0x4000, 64, 17, 0, src, dst)
        ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
        self._write(ip + udp + payload, when)

    def record_stream(
        self, source: Address, destination: Address, data: bytes, when: float | None = None
    ) -> None:
        """Append bytes of a TCP connection as one synthesized IPv4/TCP segment (PSH|ACK),
        numbered per direction, so a reader reassembles the stream (IPv4 only)."""
        if self._file is None or not data:
            return
        try:
            src = socket.inet_aton(source[0])
            dst = socket.inet_aton(destination[0])
        except OSError:
            return
        for i in range(0, len(data), 65000):
            chunk = data[i : i + 65000]
            key = (source, destination)
            seq = self._seq.get(key, 1)
            self._seq[key] = (seq + len(chunk)) & 0xFFFFFFFF
            tcp = _TCP.pack(source[1], destination[1], seq, 0, 5 << 4, 0x18, 65535, 0, 0)
            total = 20 + len(tcp) + len(chunk)
            self._ident = (self._ident + 1) & 0xFFFF
            ip = _IPV4.pack(0x45, 0, total, self._ident, 0x4000, 64, 6, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            self._write(ip + tcp + chunk, when)

    def _write(self, packet: bytes, when: float | None) -> None:
        assert self._file is not None
        now = time.time() if when is None else when
        sec = int(now)
        self._file.write(
            _PCAP_RECORD.pack(sec, int((now - sec) * 1_000_000), len(packet), len(packet))
        )
        self._file.write(packet)
        self.records += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


# --- reading ---------------------------------------------------------------------------------


class _Bounded(io.RawIOBase):
    """A file whose reads never ask for more than is left (or than one record may hold), so a
    hostile length field cannot make the parser allocate gigabytes."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        self._f = f
        self._left = size
        self.short = False  # a read found fewer bytes than asked for: the file breaks off

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._left
        want = n
        n = min(n, self._left, MAX_RECORD)
        data = self._f.read(n)
        self._left -= len(data)
        if data and len(data) < want:
            self.short = True
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)


@dataclass(frozen=True, slots=True)
class _Segment:
    ts: float
    src: Address
    dst: Address
    tcp: bool
    payload: bytes
    seq: int = 0
    syn: bool = False
    fin_or_rst: bool = False


def _ip_of(link: int, buf: bytes) -> Any:
    if link == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if link == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    if link == 276:  # LINKTYPE_LINUX_SLL2
        return dpkt.sll2.SLL2(buf).data
    if link in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        return dpkt.loopback.Loopback(buf).data
    if link in (LINKTYPE_RAW, 12, 14):
        if buf and buf[0] >> 4 == 6:
            return dpkt.ip6.IP6(buf)
        return dpkt.ip.IP(buf)
    raise PcapError(f"link-layer type {link} is not supported (Ethernet, Linux cooked, raw IP)")


def _segment(link: int, ts: float, buf: bytes) -> _Segment | None:
    ip = _ip_of(link, buf)
    if isinstance(ip, dpkt.ip.IP):
        if ip.offset & dpkt.ip.IP_OFFMASK or ip.mf:
            return None  # fragment: not reassembled
        src, dst = (
            socket.inet_ntop(socket.AF_INET, ip.src),
            socket.inet_ntop(socket.AF_INET, ip.dst),
        )
    elif isinstance(ip, dpkt.ip6.IP6):
        src = socket.inet_ntop(socket.AF_INET6, ip.src)
        dst = socket.inet_ntop(socket.AF_INET6, ip.dst)
    else:
        return None
    l4 = ip.data
    if isinstance(l4, dpkt.udp.UDP):
        return _Segment(ts, (src, l4.sport), (dst, l4.dport), False, bytes(l4.data))
    if isinstance(l4, dpkt.tcp.TCP):
        return _Segment(
            ts,
            (src, l4.sport),
            (dst, l4.dport),
            True,
            bytes(l4.data),
            l4.seq,
            bool(l4.flags & dpkt.tcp.TH_SYN),
            bool(l4.flags & (dpkt.tcp.TH_FIN | dpkt.tcp.TH_RST)),
        )
    return None


#: a capture: a file path, or its bytes (the fuzz harness)
Source = str | Path | bytes


def _segments(source: Source, warnings: list[str]) -> Iterator[_Segment]:
    """Every UDP datagram and TCP segment of the capture, in file order."""
    if isinstance(source, bytes):
        f: BinaryIO = io.BytesIO(source)
        size = len(source)
        path = "the capture"
    else:
        path = str(source)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below
            size = os.fstat(f.fileno()).st_size
        except OSError as exc:
            raise PcapError(f"cannot read {path}: {exc.strerror}") from None
    with f:
        magic = f.read(4)
        f.seek(0)
        bounded = _Bounded(f, size)
        try:
            if magic == b"\x0a\x0d\x0d\x0a":
                reader: Any = dpkt.pcapng.Reader(bounded)
            else:
                reader = dpkt.pcap.Reader(bounded)
            link = int(reader.datalink())
        except (dpkt.Error, ValueError, struct.error, EOFError, KeyError) as exc:
            raise PcapError(f"{path} is not a readable pcap or pcapng file ({exc})") from None
        count = 0
        it = iter(reader)
        while True:
            try:
                ts, buf = next(it)
            except StopIteration:
                if bounded.short:
                    warnings.append(f"the capture breaks off in packet {count + 1} (truncated)")
                return
            except (dpkt.Error, ValueError, struct.error, EOFError, KeyError, IndexError):
                warnings.append(
                    f"the capture breaks off after {count} packets (truncated or corrupt)"
                )
                return
            count += 1
            try:
                seg = _segment(link, float(ts), bytes(buf))
            except PcapError:
                raise
            except (dpkt.Error, ValueError, struct.error, IndexError, OSError):
                continue  # a malformed packet: skipped
            if seg is not None:
                yield seg


# --- TCP reassembly and SIP/RTSP framing -----------------------------------------------------


@dataclass(slots=True)
class Msg:
    """One SIP or RTSP message found in the capture."""

    ts: float
    src: Address
    dst: Address
    transport: str
    start: str
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> list[str]:
        low = name.lower()
        return [v for n, v in self.headers if n.lower() == low]


@dataclass(slots=True)
class _Interleaved:
    ts: float
    src: Address
    dst: Address
    channel: int
    data: bytes


def _parse_head(head: bytes) -> tuple[str, list[tuple[str, str]]]:
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:  # folded header (RFC 3261 §7.3.1)
            n, v = headers[-1]
            headers[-1] = (n, v + " " + line.strip())
            continue
        name, sep, value = line.partition(":")
        if sep:
            headers.append((name.strip(), value.strip()))
    return lines[0], headers


_COMPACT_CL = {"content-length", "l"}


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    for n, v in headers:
        if n.lower() in _COMPACT_CL:
            try:
                return int(v)
            except ValueError:
                return -1
    return None


class _Framer:
    """SIP/RTSP messages and ``$``-framed interleaved data out of one TCP direction's bytes."""

    __slots__ = ("broken", "buf")

    def __init__(self) -> None:
        self.buf = bytearray()
        self.broken: str | None = None

    def feed(
        self, data: bytes, seg: _Segment, out: list[Msg | _Interleaved], warnings: list[str]
    ) -> None:
        if self.broken is not None:
            return
        self.buf += data
        buf = self.buf
        while buf:
            if buf[0] == 0x24:  # '$' channel, 16-bit length (RFC 2326 §10.12)
                if len(buf) < 4:
                    return
                n = int.from_bytes(buf[2:4], "big")
                if len(buf) < 4 + n:
                    return
                out.append(_Interleaved(seg.ts, seg.src, seg.dst, buf[1], bytes(buf[4 : 4 + n])))
                del buf[: 4 + n]
                continue
            if buf[:2] == b"\r\n":  # keep-alive CRLF (RFC 5626 §4.4.1)
                del buf[:2]
                continue
            end = buf.find(b"\r\n\r\n", 0, MAX_HEADER + 4)
            if end < 0:
                if len(buf) > MAX_HEADER or (len(buf) >= 8 and not _SIP_START.match(bytes(buf))):
                    self._break(seg, "no SIP/RTSP message framing", warnings)
                return
            head = bytes(buf[:end])
            if not _SIP_START.match(head):
                self._break(seg, "no SIP/RTSP message framing", warnings)
                return
            start, headers = _parse_head(head)
            cl = _content_length(headers)
            if cl is None:
                cl = 0
            if cl < 0 or cl > MAX_BODY:
                self._break(seg, f"Content-Length beyond {MAX_BODY} bytes or invalid", warnings)
                return
            if len(buf) < end + 4 + cl:
                return
            body = bytes(buf[end + 4 : end + 4 + cl])
            del buf[: end + 4 + cl]
            out.append(Msg(seg.ts, seg.src, seg.dst, "tcp", start, headers, body))

    def _break(self, seg: _Segment, why: str, warnings: list[str]) -> None:
        self.broken = why
        self.buf.clear()
        warnings.append(f"TCP {_ep(seg.src)} -> {_ep(seg.dst)}: {why}; the rest is skipped")


class _TcpDirection:
    """In-order bytes of one TCP direction: duplicates and overlaps trimmed, gaps bounded."""

    __slots__ = ("framer", "next_seq", "pending", "pending_bytes")

    def __init__(self) -> None:
        self.next_seq: int | None = None
        self.pending: dict[int, bytes] = {}
        self.pending_bytes = 0
        self.framer = _Framer()

    def segment(self, seg: _Segment, out: list[Msg | _Interleaved], warnings: list[str]) -> None:
        if seg.syn:
            self.next_seq = (seg.seq + 1) & 0xFFFFFFFF
            self.pending.clear()
            self.pending_bytes = 0
            self.framer = _Framer()
            return
        if not seg.payload:
            return
        if self.next_seq is None:
            self.next_seq = seg.seq  # capture started mid-connection
        self._add(seg.seq, seg.payload, seg, out, warnings)
        self._drain(seg, out, warnings)

    def _offset(self, seq: int) -> int:
        assert self.next_seq is not None
        return ((seq - self.next_seq + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)

    def _add(
        self, seq: int, data: bytes, seg: _Segment, out: list[Msg | _Interleaved], w: list[str]
    ) -> None:
        d = self._offset(seq)
        if d <= 0:
            if -d >= len(data):
                return  # a retransmission of what was delivered
            data = data[-d:]
            assert self.next_seq is not None
            self.next_seq = (self.next_seq + len(data)) & 0xFFFFFFFF
            self.framer.feed(data, seg, out, w)
            return
        have = self.pending.get(seq)
        if have is not None and len(have) >= len(data):
            return
        if self.pending_bytes + len(data) > MAX_PENDING or len(self.pending) >= MAX_SEGMENTS:
            # a gap that does not fill: give up on the missing bytes and resynchronise
            w.append(f"TCP {_ep(seg.src)} -> {_ep(seg.dst)}: a gap that never filled; skipped")
            self.pending.clear()
            self.pending_bytes = 0
            self.framer = _Framer()
            self.next_seq = seq
            self._add(seq, data, seg, out, w)
            return
        self.pending_bytes += len(data) - (len(have) if have else 0)
        self.pending[seq] = data

    def _drain(self, seg: _Segment, out: list[Msg | _Interleaved], w: list[str]) -> None:
        while self.pending:
            ready = [s for s in self.pending if self._offset(s) <= 0]
            if not ready:
                return
            for s in ready:
                data = self.pending.pop(s)
                self.pending_bytes -= len(data)
                self._add(s, data, seg, out, w)


def _ep(a: Address) -> str:
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


# --- MIKEY in the signalling -----------------------------------------------------------------


@dataclass(slots=True)
class Found:
    """One MIKEY message: where it was and what it says."""

    ts: float
    src: Address
    dst: Address
    where: str  # "SDP session", "SDP media 1", "KeyMgmt", "UDP 2269", ...
    data: bytes
    msg: Message | None = None
    error: str | None = None


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _mikey_in(m: Msg) -> list[tuple[str, bytes]]:
    found: list[tuple[str, bytes]] = []
    for value in m.header("KeyMgmt"):
        for hit in _KEYMGMT_DATA.finditer(value):
            data = _b64(hit.group(1))
            if data:
                found.append(("KeyMgmt", data))
    text = m.body.decode("utf-8", "replace")
    level = "SDP session"
    media = 0
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if line.startswith("m="):
            media += 1
            level = f"SDP media {media}"
        line_hit = _KEY_MGMT.match(line)
        if line_hit:
            data = _b64(line_hit.group(1))
            if data:
                found.append((level, data))
            continue
        if line.lower().startswith("mikey:"):  # ONVIF SET/GET_PARAMETER "mikey: <base64>"
            data = _b64(line.split(":", 1)[1].strip())
            if data:
                found.append(("parameter body", data))
            continue
        if line.lower().startswith(("keymgmt:", "prot=")):  # GStreamer parameter bodies
            for k in _KEYMGMT_DATA.finditer(line):
                data = _b64(k.group(1))
                if data:
                    found.append(("parameter body", data))
    ctype = " ".join(m.header("Content-Type")).lower()
    if "mikey" in ctype and not found:
        data = _b64("".join(text.split()))
        if data:
            found.append(("MIKEY body", data))
    return found


def _ssrcs_of(m: Msg) -> list[int]:
    out: list[int] = []
    for line in m.body.decode("utf-8", "replace").splitlines():
        hit = _SSRC_SDP.match(line.strip())
        if hit:
            out.append(int(hit.group(1)) & 0xFFFFFFFF)
    for value in m.header("Transport"):
        out += [int(h, 16) for h in _SSRC_TRANSPORT.findall(value)]
    return sorted(set(out))


# --- keying --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OpenCredentials:
    """What ``mikey pcap`` / ``mikey decode`` open KEMACs with."""

    psk: bytes | None = field(default=None, repr=False)
    credentials: Credentials | None = field(default=None, repr=False)
    profile: str = "rfc"


@dataclass(slots=True)
class Opened:
    """The outcome of opening one I_MESSAGE: its Data SAs, or why not."""

    keys: list[DataSaEntry]
    reason: str | None


def _pinned_trust(msg: Message) -> TrustStore | None:
    certs = []
    for p in msg.payloads:
        if isinstance(p, Cert) and p.cert_type in (CertType.X509V3, CertType.X509V3_SIGN):
            try:
                certs.append(x509.load_der_x509_certificate(p.data))
            except ValueError:
                continue
    return TrustStore(certs) if certs else None


def _t_seconds(msg: Message) -> float | None:
    t = msg.find(Timestamp)
    if t is None or len(t.value) not in (4, 8):
        return None
    try:
        return unix_from_ntp(t.value)
    except MikeyError:
        return None


def open_message(data: bytes, creds: OpenCredentials, now: float | None = None) -> Opened:
    """Run the responder of ``data`` (an I_MESSAGE) with ``creds`` at ``now`` (default: its
    own T), with a fresh replay cache, and return the Data SAs or the one-sentence reason."""
    from .exchange import refusal_reason  # the same sentences as mikey answer

    base = apply_profile(ExchangeConfig(), creds.profile)
    try:
        msg = parse_message(data, lenient=True, threegpp=base.threegpp_code_points)
    except MikeyError as exc:
        return Opened([], f"not a MIKEY message: {exc}")
    mode = MODE_OF_INIT.get(msg.data_type)  # type: ignore[call-overload]
    if mode is None:
        return Opened([], "not an I_MESSAGE (the keys are in the initiator's message)")
    if mode in (Mode.DH, Mode.DHHMAC):
        return Opened(
            [], "a DH exchange: its keys need a private DH value, which no capture carries"
        )
    if mode == Mode.RSA_R:
        return Opened([], "RSA-R: the keys are in the answer (opened with the initiator's key)")
    kw: dict[str, Any] = {"mode": mode}
    if mode == Mode.PSK:
        if creds.psk is None and not base.allow_null_kemac:
            return Opened([], "a PSK exchange: give the pre-shared key with --psk")
        kw["psk"] = StaticPskStore({}, default=creds.psk or os.urandom(16))
    else:
        if creds.credentials is None:
            return Opened([], "a PK exchange: give the responder's --cert and --key")
        kw["credentials"] = creds.credentials
        kw["trust"] = _pinned_trust(msg)
    if now is None:
        now = _t_seconds(msg) or time.time()
    try:
        cfg = apply_profile(ExchangeConfig(**kw), creds.profile)
        if cfg.mode != mode:  # gstreamer/onvif are PSK profiles
            cfg = replace(cfg, mode=mode)
        replay = ReplayGuard(TimestampPolicy(skew=10 * 365 * 86400.0))
        reply = Responder(Endpoint(cfg, os.urandom, replay=replay)).respond(data, now)
    except MikeyError as exc:
        return Opened([], refusal_reason(exc))
    if not isinstance(reply, ExchangeCompleted):
        return Opened([], refusal_reason(reply.error))
    return Opened(list(reply.result.data_sa), None)


def open_answer(
    i_data: bytes, r_data: bytes, creds: OpenCredentials, now: float | None = None
) -> Opened:
    """RSA-R (RFC 4738): the answer ``r_data`` to the I_MESSAGE ``i_data``, opened with the
    initiator's own key (``creds.credentials``); the responder's signature is checked against
    the certificate the answer carries (pinned)."""
    from .exchange import refusal_reason

    if creds.credentials is None:
        return Opened([], "an RSA-R exchange: give the initiator's --cert and --key")
    base = apply_profile(ExchangeConfig(), creds.profile)
    try:
        r_msg = parse_message(r_data, lenient=True, threegpp=base.threegpp_code_points)
        cfg = apply_profile(
            ExchangeConfig(
                mode=Mode.RSA_R, credentials=creds.credentials, trust=_pinned_trust(r_msg)
            ),
            creds.profile,
        )
        if cfg.mode != Mode.RSA_R:
            cfg = replace(cfg, mode=Mode.RSA_R)
        if now is None:
            now = _t_seconds(r_msg) or time.time()
        replay = ReplayGuard(TimestampPolicy(skew=10 * 365 * 86400.0))
        initiator = Initiator.resume_rsa_r(Endpoint(cfg, os.urandom, replay=replay), i_data)
        outcome = initiator.finish(r_data, now)
    except MikeyError as exc:
        return Opened([], refusal_reason(exc))
    if not isinstance(outcome, ExchangeCompleted):
        return Opened([], refusal_reason(outcome.error))
    return Opened(list(outcome.result.data_sa), None)


# --- media ---------------------------------------------------------------------------------


def _ulaw(b: int) -> int:
    b = ~b & 0xFF
    t = ((b & 0x0F) << 3) + 0x84
    t <<= (b & 0x70) >> 4
    return (0x84 - t) if b & 0x80 else (t - 0x84)


def _alaw(b: int) -> int:
    b ^= 0x55
    t = (b & 0x0F) << 4
    seg = (b & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if b & 0x80 else -t


_G711 = {0: [_ulaw(i) for i in range(256)], 8: [_alaw(i) for i in range(256)]}


@dataclass(slots=True)
class StreamStats:
    """One SSRC's SRTP/SRTCP in the capture."""

    ssrc: int
    src: Address
    dst: Address
    transport: str
    packets: int = 0
    decrypted: int = 0
    auth_failures: int = 0
    other_failures: int = 0
    rtcp_packets: int = 0
    rtcp_decrypted: int = 0
    roc_wraps: int = 0
    payload_types: set[int] = field(default_factory=set)
    keyed: bool = False
    last_seq: int | None = None
    samples: bytearray = field(default_factory=bytearray, repr=False)


def _rtp_ssrc(data: bytes) -> tuple[bool, int] | None:
    """(is RTCP, SSRC) of an RTP/RTCP packet (RFC 3550 §5.1, §6.4), or None."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    if data[1] in _RTCP_TYPES:
        return True, int.from_bytes(data[4:8], "big")
    return False, int.from_bytes(data[8:12], "big")


# --- the analysis --------------------------------------------------------------------------


@dataclass(slots=True)
class Capture:
    """Everything ``mikey pcap`` found."""

    messages: list[Msg] = field(default_factory=list)
    mikey: list[Found] = field(default_factory=list)
    keys: dict[int, list[DataSaEntry]] = field(default_factory=dict)
    unassigned: list[DataSaEntry] = field(default_factory=list)
    key_reports: list[dict[str, Any]] = field(default_factory=list)
    rsa_r_offers: dict[int, bytes] = field(default_factory=dict)  # CSB ID -> I_MESSAGE
    streams: dict[int, StreamStats] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: where the decrypted RTP goes as it is decrypted (``--rtp-dir``), never kept in memory
    rtp_out: PcapWriter | None = None
    wav_bytes: int = 0  # WAV audio held, all streams


def _reassemble(
    flows: dict[tuple[Address, Address], _TcpDirection],
    seg: _Segment,
    items: list[Msg | _Interleaved],
    warnings: list[str],
) -> None:
    """Feed a TCP segment to its direction's reassembly (at most MAX_FLOWS directions at once;
    a FIN or RST ends one), appending what completes to ``items``."""
    key = (seg.src, seg.dst)
    flow = flows.get(key)
    if flow is None:
        if len(flows) >= MAX_FLOWS:
            return
        flow = flows[key] = _TcpDirection()
    flow.segment(seg, items, warnings)
    if seg.fin_or_rst:
        flows.pop(key, None)


def _signal_pass(path: Source, cap: Capture, creds: OpenCredentials) -> None:
    flows: dict[tuple[Address, Address], _TcpDirection] = {}
    seen: set[bytes] = set()
    items: list[Msg | _Interleaved] = []
    for seg in _segments(path, cap.warnings):
        items.clear()
        if seg.tcp:
            _reassemble(flows, seg, items, cap.warnings)
        elif seg.payload:
            if MIKEY_PORT in (seg.src[1], seg.dst[1]) and seg.payload[:1] == b"\x01":
                _found(cap, seen, creds, Found(seg.ts, seg.src, seg.dst, "UDP 2269", seg.payload))
                continue
            head_end = seg.payload.find(b"\r\n\r\n", 0, MAX_HEADER)
            if head_end > 0 and _SIP_START.match(seg.payload):
                start, headers = _parse_head(seg.payload[:head_end])
                body = seg.payload[head_end + 4 : head_end + 4 + MAX_BODY]
                items.append(Msg(seg.ts, seg.src, seg.dst, "udp", start, headers, body))
        for item in items:
            if isinstance(item, Msg) and len(cap.messages) < MAX_MESSAGES:
                cap.messages.append(item)
                for where, data in _mikey_in(item):
                    _found(cap, seen, creds, Found(item.ts, item.src, item.dst, where, data))


def _found(cap: Capture, seen: set[bytes], creds: OpenCredentials, f: Found) -> None:
    base = apply_profile(ExchangeConfig(), creds.profile)
    try:
        f.msg = parse_message(f.data, lenient=True, threegpp=base.threegpp_code_points)
    except MikeyError as exc:
        f.error = str(exc)
    if len(cap.mikey) >= MAX_FOUND:
        if len(cap.mikey) == MAX_FOUND:
            cap.warnings.append(f"more than {MAX_FOUND} MIKEY messages: the rest are skipped")
            cap.mikey.append(f)  # once: marks the warning as given
        return
    cap.mikey.append(f)
    digest = hashlib.sha256(f.data).digest()
    if digest in seen or f.msg is None:
        return  # the same message again (a retransmission, or DESCRIBE repeated)
    seen.add(digest)
    msg = f.msg
    if msg.data_type in MODE_OF_RESP:
        offer = cap.rsa_r_offers.pop(msg.csb_id, None)
        if msg.data_type == DataType.RSA_R_RESP and offer is not None:
            _add_keys(cap, f, msg, open_answer(offer, f.data, creds, now=f.ts))
        else:
            _fill_from_answer(cap, msg)
        return
    if MODE_OF_INIT.get(msg.data_type) is None:  # type: ignore[call-overload]
        return
    if msg.data_type == DataType.RSA_R_INIT:  # its keys come with the answer
        if len(cap.rsa_r_offers) < MAX_FOUND:
            cap.rsa_r_offers[msg.csb_id] = f.data
        return
    _add_keys(cap, f, msg, open_message(f.data, creds, now=f.ts))


def _add_keys(cap: Capture, f: Found, msg: Message, opened: Opened) -> None:
    report: dict[str, Any] = {
        "time": f.ts,
        "csb_id": f"0x{msg.csb_id:08x}",
        "type": _dt_name(msg.data_type),
        "keys": len(opened.keys),
    }
    if opened.reason:
        report["refused"] = opened.reason
    cap.key_reports.append(report)
    for e in opened.keys:
        if e.ssrc:
            cap.keys.setdefault(e.ssrc, []).append(e)
        else:
            cap.unassigned.append(e)


def _fill_from_answer(cap: Capture, msg: Message) -> None:
    """SSRCs the responder filled in (RFC 3830 §6.1.1: SSRC 0 in the offer)."""
    entries = msg.header.srtp_entries
    still: list[DataSaEntry] = []
    for e in cap.unassigned:
        idx = e.cs_id - 1
        if 0 <= idx < len(entries) and entries[idx].ssrc:
            filled = replace(e, ssrc=entries[idx].ssrc)
            cap.keys.setdefault(filled.ssrc, []).append(filled)
        else:
            still.append(e)
    cap.unassigned = still


def _dt_name(dt: int) -> str:
    return dt.name if isinstance(dt, DataType) else str(dt)


def _media_pass(path: Source, cap: Capture, want_rtp: bool, want_wav: bool) -> None:
    flows: dict[tuple[Address, Address], _TcpDirection] = {}
    contexts: dict[int, InboundStream | None] = {}
    items: list[Msg | _Interleaved] = []
    try:
        for seg in _segments(path, []):
            items.clear()
            if seg.tcp:
                _reassemble(flows, seg, items, [])
                for item in items:
                    if isinstance(item, _Interleaved):
                        _media(cap, contexts, item.ts, item.src, item.dst, "tcp", item.data,
                               want_rtp, want_wav)  # fmt: skip
            elif seg.payload and not _SIP_START.match(seg.payload):
                _media(cap, contexts, seg.ts, seg.src, seg.dst, "udp", seg.payload,
                       want_rtp, want_wav)  # fmt: skip
    finally:
        for ctx in contexts.values():
            if ctx is not None:
                ctx.close()


def _context(cap: Capture, contexts: dict[int, InboundStream | None], ssrc: int) -> Any:
    if ssrc in contexts:
        return contexts[ssrc]
    entries = cap.keys.get(ssrc)
    ctx: InboundStream | None = None
    if entries:
        try:
            ctx = InboundStream(entries[-1:], window_size=1024)
        except SrtpError as exc:
            cap.warnings.append(f"SSRC 0x{ssrc:08x}: no SRTP context ({exc})")
    contexts[ssrc] = ctx
    return ctx


def _adopt(
    cap: Capture, contexts: dict[int, InboundStream | None], ssrc: int, packet: bytes
) -> bytes | None:
    """A key offered with SSRC 0 (the responder's to fill, RFC 3830 §6.1.1) whose SSRC the
    signalling never named: the stream whose packet it authenticates is that SSRC's."""
    for e in list(cap.unassigned):
        try:
            trial = InboundStream([replace(e, ssrc=ssrc)], window_size=1024)
        except SrtpError:
            continue
        try:
            plain = trial.unprotect(packet)
        except SrtpError:
            trial.close()
            continue
        cap.unassigned.remove(e)
        cap.keys[ssrc] = [replace(e, ssrc=ssrc)]
        old = contexts.get(ssrc)
        if old is not None:
            old.close()
        contexts[ssrc] = trial
        return plain
    return None


_TRIALS = 3  # packets of an unkeyed stream tried against the keys without an SSRC


def _media(  # noqa: PLR0917 - one packet and where it goes
    cap: Capture,
    contexts: dict[int, InboundStream | None],
    ts: float,
    src: Address,
    dst: Address,
    transport: str,
    data: bytes,
    want_rtp: bool,
    want_wav: bool,
) -> None:
    head = _rtp_ssrc(data)
    if head is None:
        return
    rtcp, ssrc = head
    st = cap.streams.get(ssrc)
    if st is None:
        if len(cap.streams) >= MAX_STREAMS:
            return
        st = cap.streams[ssrc] = StreamStats(ssrc, src, dst, transport)
    ctx = _context(cap, contexts, ssrc)
    adopted: bytes | None = None
    if ctx is None and not rtcp and cap.unassigned and st.packets < _TRIALS:
        adopted = _adopt(cap, contexts, ssrc, data)
        ctx = contexts.get(ssrc)
    st.keyed = ctx is not None
    if rtcp:
        st.rtcp_packets += 1
        if ctx is not None:
            try:
                ctx.unprotect_rtcp(data)
                st.rtcp_decrypted += 1
            except SrtpError:
                pass
        return
    st.packets += 1
    seq = int.from_bytes(data[2:4], "big")
    if st.last_seq is not None and seq < st.last_seq and st.last_seq - seq > 0x8000:
        st.roc_wraps += 1  # RFC 3711 §3.3.1: the sequence number wrapped, ROC + 1
    st.last_seq = seq
    if ctx is None:
        return
    try:
        plain = adopted if adopted is not None else ctx.unprotect(data)
    except SrtpAuthenticationError:
        st.auth_failures += 1
        return
    except SrtpError:
        st.other_failures += 1
        return
    st.decrypted += 1
    pt = plain[1] & 0x7F
    st.payload_types.add(pt)
    if want_rtp and cap.rtp_out is not None:
        cap.rtp_out.record(src, dst, plain, when=ts)
    if (
        want_wav
        and pt in _G711
        and len(st.samples) < MAX_WAV_SECONDS * 16000
        and cap.wav_bytes < MAX_WAV_TOTAL
    ):
        table = _G711[pt]
        cc = plain[0] & 0x0F
        off = 12 + 4 * cc
        if plain[0] & 0x10 and len(plain) >= off + 4:  # header extension (RFC 3550 §5.3.1)
            off += 4 + 4 * int.from_bytes(plain[off + 2 : off + 4], "big")
        end = len(plain) - (plain[-1] if plain[0] & 0x20 and plain else 0)
        pcm = b"".join(struct.pack("<h", table[b]) for b in plain[off:end])
        st.samples += pcm
        cap.wav_bytes += len(pcm)


def analyse(
    path: Source,
    creds: OpenCredentials,
    *,
    rtp_out: PcapWriter | None = None,
    want_wav: bool = False,
) -> Capture:
    """Read the capture (a path, or its bytes) twice: signalling and keys first, then the
    media those keys open. Raises only :class:`PcapError` (a capture that cannot be read)."""
    cap = Capture(rtp_out=rtp_out)
    _signal_pass(path, cap, creds)
    _media_pass(path, cap, rtp_out is not None, want_wav)
    for e in cap.unassigned:  # offered with SSRC 0 and no stream authenticated under it
        cap.warnings.append(f"CS {e.cs_id}: SSRC left to the responder; no stream matched its key")
    return cap


# --- output --------------------------------------------------------------------------------


def _ladder_rows(cap: Capture) -> list[dict[str, Any]]:
    by_msg: dict[int, list[Found]] = {}
    t0 = min([m.ts for m in cap.messages] + [f.ts for f in cap.mikey], default=0.0)
    rows: list[dict[str, Any]] = []
    for f in cap.mikey:
        by_msg.setdefault(id(f), []).append(f)
    mikey_by_time: dict[tuple[float, Address, Address], list[Found]] = {}
    for f in cap.mikey:
        mikey_by_time.setdefault((f.ts, f.src, f.dst), []).append(f)
    used: set[int] = set()
    for m in cap.messages:
        fs = mikey_by_time.get((m.ts, m.src, m.dst), [])
        used.update(id(f) for f in fs)
        rows.append(
            _row(
                m.ts - t0,
                m.src,
                m.dst,
                transport=m.transport,
                start=m.start,
                found=fs,
                ssrcs=_ssrcs_of(m),
            )
        )
    for f in cap.mikey:
        if id(f) not in used:
            rows.append(
                _row(f.ts - t0, f.src, f.dst, transport="udp", start="MIKEY", found=[f], ssrcs=[])
            )
    rows.sort(key=lambda r: r["time"])
    return rows


def _row(
    t: float,
    src: Address,
    dst: Address,
    *,
    transport: str,
    start: str,
    found: list[Found],
    ssrcs: list[int],
) -> dict[str, Any]:
    mikey: list[dict[str, Any]] = []
    for f in found:
        if f.msg is None:
            mikey.append({"where": f.where, "error": f.error})
            continue
        h = f.msg.header
        mikey.append(
            {
                "where": f.where,
                "type": _dt_name(h.data_type),
                "csb_id": f"0x{h.csb_id:08x}",
                "ssrcs": [f"0x{e.ssrc:08x}" for e in h.srtp_entries],
            }
        )
    return {
        "time": round(t, 6),
        "src": _ep(src),
        "dst": _ep(dst),
        "transport": transport,
        "message": start[:120],
        "mikey": mikey,
        "ssrcs": [f"0x{s:08x}" for s in ssrcs],
    }


def _stream_rows(cap: Capture) -> list[dict[str, Any]]:
    out = []
    for st in cap.streams.values():
        out.append(
            {
                "ssrc": f"0x{st.ssrc:08x}",
                "src": _ep(st.src),
                "dst": _ep(st.dst),
                "transport": st.transport,
                "keyed": st.keyed,
                "packets": st.packets,
                "decrypted": st.decrypted,
                "auth_failures": st.auth_failures,
                "other_failures": st.other_failures,
                "rtcp_packets": st.rtcp_packets,
                "rtcp_decrypted": st.rtcp_decrypted,
                "roc_wraps": st.roc_wraps,
                "payload_types": sorted(st.payload_types),
            }
        )
    return out


def _key_rows(cap: Capture, show_keys: bool) -> list[dict[str, Any]]:
    return [
        data_sa_row(e, show_keys, ssrc=f"0x{ssrc:08x}")
        for ssrc, entries in cap.keys.items()
        for e in entries
    ]


def _write_wavs(cap: Capture, directory: str) -> list[str]:
    written = []
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
        for st in cap.streams.values():
            if not st.samples:
                continue
            path = d / f"ssrc-{st.ssrc:08x}.wav"
            with wave.open(str(path), "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(8000)
                w.writeframes(bytes(st.samples))
            written.append(str(path))
    except OSError as exc:
        raise PcapError(f"cannot write WAV files to {directory}: {exc.strerror}") from None
    return written


def _rtp_writer(directory: str) -> tuple[PcapWriter, str]:
    d = Path(directory)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PcapError(f"cannot write to {directory}: {exc.strerror}") from None
    path = d / "decrypted-rtp.pcap"
    return PcapWriter(path), str(path)


def credentials_of(args: argparse.Namespace) -> OpenCredentials:
    from .exchange import _psk, _read  # the flag forms mikey offer/answer accept

    psk = _psk(args.psk) if getattr(args, "psk", None) else None
    creds = None
    if getattr(args, "cert", None) or getattr(args, "key", None):
        if not (args.cert and args.key):
            raise CliError("--cert and --key go together")
        creds = Credentials.from_pem(_read(args.key, "key"), _read(args.cert, "certificate"))
    return OpenCredentials(psk, creds, args.peer_profile)


def report(cap: Capture, *, show_keys: bool = False) -> dict[str, Any]:
    """The JSON form of what :func:`analyse` found (keys only with ``show_keys``)."""
    return {
        "ladder": _ladder_rows(cap),
        "exchanges": cap.key_reports,
        "keys": _key_rows(cap, show_keys),
        "streams": _stream_rows(cap),
        "warnings": cap.warnings,
    }


def render_text(result: dict[str, Any]) -> str:
    """The text form of :func:`report`'s result."""
    return _text(result)


def _cmd_pcap(args: argparse.Namespace) -> int:
    creds = credentials_of(args)
    rtp_out, rtp_path = _rtp_writer(args.rtp_dir) if args.rtp_dir else (None, None)
    try:
        cap = analyse(args.file, creds, rtp_out=rtp_out, want_wav=bool(args.wav_dir))
    finally:
        if rtp_out is not None:
            rtp_out.close()
    result = report(cap, show_keys=args.show_keys)
    if args.wav_dir:
        result["wav"] = _write_wavs(cap, args.wav_dir)
    if rtp_path:
        result["rtp_pcap"] = rtp_path
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(_text(result))
    return 0


def _text(r: dict[str, Any]) -> str:
    lines = ["Ladder:"]
    for row in r["ladder"]:
        lines.append(
            f"  {row['time']:10.6f}  {row['src']:>21} -> {row['dst']:<21} {row['transport']}  "
            f"{row['message']}"
        )
        for m in row["mikey"]:
            if "error" in m:
                lines.append(f"{'':14}MIKEY ({m['where']}): undecodable: {m['error']}")
            else:
                lines.append(
                    f"{'':14}MIKEY ({m['where']}): {m['type']} CSB {m['csb_id']} "
                    f"SSRC {', '.join(m['ssrcs']) or '-'}"
                )
        if row["ssrcs"]:
            lines.append(f"{'':14}SSRC (signalled): {', '.join(row['ssrcs'])}")
    lines.append("Exchanges:")
    for x in r["exchanges"]:
        state = f"refused: {x['refused']}" if "refused" in x else f"{x['keys']} Data SA(s)"
        lines.append(f"  {x['type']} CSB {x['csb_id']}: {state}")
    lines.append("Keys:")
    for k in r["keys"]:
        extra = f" key {k['master_key']} salt {k['master_salt']}" if "master_key" in k else ""
        lines.append(f"  SSRC {k['ssrc']} CS {k['cs_id']} {k['policy']} MKI {k['mki']}{extra}")
    lines.append("Streams:")
    for s in r["streams"]:
        lines.append(
            f"  SSRC {s['ssrc']} {s['src']} -> {s['dst']} {s['transport']}: {s['packets']} RTP, "
            f"{s['decrypted']} decrypted, {s['auth_failures']} auth failures, "
            f"{s['rtcp_packets']} RTCP ({s['rtcp_decrypted']} decrypted), "
            f"{s['roc_wraps']} ROC wraps{'' if s['keyed'] else ', no key'}"
        )
    for w in r.get("wav", []):
        lines.append(f"WAV: {w}")
    if r.get("rtp_pcap"):
        lines.append(f"Decrypted RTP: {r['rtp_pcap']}")
    for w in r["warnings"]:
        lines.append(f"Warning: {w}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``mikey pcap``."""
    p = sub.add_parser(
        "pcap",
        help="find the MIKEY exchanges of a capture, derive their keys, decrypt the SRTP",
        description="Reads pcap/pcapng (docs/PCAP.md). Keys are printed only with --show-keys.",
    )
    p.add_argument("file", help="pcap or pcapng file")
    p.add_argument("--psk", help="pre-shared key: HEX or @file holding hex")
    p.add_argument("--cert", help="own certificate: the PK responder's, or the RSA-R initiator's")
    p.add_argument("--key", help="the RSA private key of --cert (PEM)")
    p.add_argument(
        "--peer-profile",
        choices=[x.value for x in PeerProfile],
        default="rfc",
        help="open the messages as this peer profile does (docs/PROFILES.md)",
    )
    p.add_argument("--show-keys", action="store_true", help="print master keys and salts")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--wav-dir", help="write one WAV per PCMU/PCMA SSRC here")
    p.add_argument("--rtp-dir", help="write the decrypted RTP here as decrypted-rtp.pcap")
    p.set_defaults(func=_cmd_pcap)
