"""RTSP 1.0 (RFC 2326) message codec and incremental stream parser.

:class:`RtspParser` is a small state machine over a byte buffer. Between messages it looks at
the first byte: ``$`` starts a TCP-interleaved binary frame (RFC 2326 §10.12: ``$``, channel,
16-bit length, data); anything else starts a text message whose header block ends at the first
empty line, followed by exactly ``Content-Length`` body bytes (RFC 2326 §4.3; absent means 0).
Every limit is checked before the bytes are buffered further, so a peer can never make the parser
hold more than ``max_header_bytes + max_body_bytes`` bytes. Once a :class:`RtspParseError` has
been raised the parser is failed for good: the stream cannot be resynchronised.

Header values with structure (``Transport``, ``Session``) have their own frozen models here; their
parse errors are :class:`RtspParseError` as well.
"""

from __future__ import annotations

import enum
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from .errors import RtspLimitError, RtspParseError

__all__ = [
    "STATUS_REASONS",
    "InterleavedFrame",
    "Limits",
    "RtspMessage",
    "RtspParser",
    "RtspRequest",
    "RtspResponse",
    "SessionHeader",
    "StatusCode",
    "TransportSpec",
    "encode_interleaved",
    "format_transports",
    "parse_npt_range",
    "parse_retry_after",
    "parse_rtp_info",
    "parse_transports",
    "parse_uint",
]

RTSP_VERSION = "RTSP/1.0"


class StatusCode(enum.IntEnum):
    """RTSP/1.0 status codes (RFC 2326 §7.1.1, RFC 4567 §3.2 for 463)."""

    CONTINUE = 100
    OK = 200
    CREATED = 201
    LOW_ON_STORAGE_SPACE = 250
    MULTIPLE_CHOICES = 300
    MOVED_PERMANENTLY = 301
    MOVED_TEMPORARILY = 302
    SEE_OTHER = 303
    NOT_MODIFIED = 304
    USE_PROXY = 305
    BAD_REQUEST = 400
    UNAUTHORIZED = 401
    PAYMENT_REQUIRED = 402
    FORBIDDEN = 403
    NOT_FOUND = 404
    METHOD_NOT_ALLOWED = 405
    NOT_ACCEPTABLE = 406
    PROXY_AUTHENTICATION_REQUIRED = 407
    REQUEST_TIMEOUT = 408
    GONE = 410
    LENGTH_REQUIRED = 411
    PRECONDITION_FAILED = 412
    REQUEST_ENTITY_TOO_LARGE = 413
    REQUEST_URI_TOO_LARGE = 414
    UNSUPPORTED_MEDIA_TYPE = 415
    PARAMETER_NOT_UNDERSTOOD = 451
    CONFERENCE_NOT_FOUND = 452
    NOT_ENOUGH_BANDWIDTH = 453
    SESSION_NOT_FOUND = 454
    METHOD_NOT_VALID_IN_THIS_STATE = 455
    HEADER_FIELD_NOT_VALID = 456
    INVALID_RANGE = 457
    PARAMETER_IS_READ_ONLY = 458
    AGGREGATE_OPERATION_NOT_ALLOWED = 459
    ONLY_AGGREGATE_OPERATION_ALLOWED = 460
    UNSUPPORTED_TRANSPORT = 461
    DESTINATION_UNREACHABLE = 462
    KEY_MANAGEMENT_FAILURE = 463
    INTERNAL_SERVER_ERROR = 500
    NOT_IMPLEMENTED = 501
    BAD_GATEWAY = 502
    SERVICE_UNAVAILABLE = 503
    GATEWAY_TIMEOUT = 504
    RTSP_VERSION_NOT_SUPPORTED = 505
    OPTION_NOT_SUPPORTED = 551


STATUS_REASONS: dict[int, str] = {
    100: "Continue",
    200: "OK",
    201: "Created",
    250: "Low on Storage Space",
    300: "Multiple Choices",
    301: "Moved Permanently",
    302: "Moved Temporarily",
    303: "See Other",
    304: "Not Modified",
    305: "Use Proxy",
    400: "Bad Request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    407: "Proxy Authentication Required",
    408: "Request Time-out",
    410: "Gone",
    411: "Length Required",
    412: "Precondition Failed",
    413: "Request Entity Too Large",
    414: "Request-URI Too Large",
    415: "Unsupported Media Type",
    451: "Parameter Not Understood",
    452: "Conference Not Found",
    453: "Not Enough Bandwidth",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    456: "Header Field Not Valid for Resource",
    457: "Invalid Range",
    458: "Parameter Is Read-Only",
    459: "Aggregate operation not allowed",
    460: "Only aggregate operation allowed",
    461: "Unsupported transport",
    462: "Destination unreachable",
    463: "Key Management Failure",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Time-out",
    505: "RTSP Version not supported",
    551: "Option not supported",
}

_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(r"^RTSP/[0-9]\.[0-9]$")
_INTERLEAVED_HEADER = struct.Struct("!cBH")
# Every C0 control but HT, and DEL. CR and LF are in it: lines are split at LF and one trailing
# CR is removed before the test, so any CR or LF left is inside a value (RFC 2326 §15: a header
# value is TEXT, which has no CTL), and a reply echoing it could carry a header of the peer's.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")

# RFC 2326 §15.1: DIGIT is ASCII 0-9 ("1*DIGIT"); str.isdigit() and int() read other scripts'
# digits ('٣' as 3) and choke on superscripts ('²' raises ValueError), so neither is used.
MAX_UINT_DIGITS = 20
_UINT_RE = re.compile(rf"[0-9]{{1,{MAX_UINT_DIGITS}}}")
_HEX_RE = re.compile(r"[0-9A-Fa-f]{1,8}")
_LWS = " \t"  # RFC 2326 §15.1 LWS: SP and HT only (str.strip() would take U+2003 and others)


def parse_uint(text: str, what: str, max_value: int, *, min_value: int = 0) -> int:
    """``text`` as 1 to :data:`MAX_UINT_DIGITS` ASCII digits within ``[min_value, max_value]``.

    The one number grammar of the RTSP codec (RFC 2326 §15.1 ``1*DIGIT``): no sign, space,
    underscore or non-ASCII digit. Raises :class:`RtspParseError` naming ``what`` otherwise.
    """
    if not _UINT_RE.fullmatch(text):
        raise RtspParseError(f"malformed {what} (RFC 2326 §15.1: 1*DIGIT)")
    value = int(text)
    if not min_value <= value <= max_value:
        raise RtspParseError(f"{what} out of range")
    return value


def _parse_hex32(text: str, what: str) -> int:
    """1 to 8 ASCII hex digits (RFC 2326 §12.39 ``ssrc = 8*8(HEX)``, shorter ones tolerated)."""
    if not _HEX_RE.fullmatch(text):
        raise RtspParseError(f"invalid {what}")
    return int(text, 16)


Headers = tuple[tuple[str, str], ...]


def _check_header_value(name: str, value: str) -> None:
    if not _TOKEN.match(name):
        raise RtspParseError("invalid header name")
    if any(c in value for c in "\r\n\0"):
        raise RtspParseError(f"control character in {name} header value")


def _encode_headers(headers: Headers, body: bytes) -> bytes:
    lines = []
    for name, value in headers:
        _check_header_value(name, value)
        if name.lower() == "content-length":
            continue
        lines.append(f"{name}: {value}\r\n")
    if body:
        lines.append(f"Content-Length: {len(body)}\r\n")
    return "".join(lines).encode("utf-8")


def _get(headers: Headers, name: str) -> str | None:
    lname = name.lower()
    for key, value in headers:
        if key.lower() == lname:
            return value
    return None


def _get_all(headers: Headers, name: str) -> list[str]:
    lname = name.lower()
    return [value for key, value in headers if key.lower() == lname]


class _HeaderAccess:
    """Header lookups shared by requests and responses."""

    __slots__ = ()
    headers: Headers

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        return _get(self.headers, name)

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` in order (case-insensitive)."""
        return _get_all(self.headers, name)

    @property
    def cseq(self) -> int | None:
        """The CSeq number, or None when absent or not a number."""
        return _parse_cseq(self.header("CSeq"))


@dataclass(frozen=True, slots=True)
class RtspRequest(_HeaderAccess):
    """One RTSP request (RFC 2326 §6). ``headers`` keep their order and spelling."""

    method: str
    uri: str
    headers: Headers = ()
    body: bytes = b""
    version: str = RTSP_VERSION

    def encode(self) -> bytes:
        """The request on the wire; Content-Length is derived from ``body``."""
        if not _TOKEN.match(self.method):
            raise RtspParseError("invalid method token")
        if not self.uri or any(c.isspace() for c in self.uri):
            raise RtspParseError("invalid request URI")
        start = f"{self.method} {self.uri} {self.version}\r\n".encode()
        return start + _encode_headers(self.headers, self.body) + b"\r\n" + self.body


@dataclass(frozen=True, slots=True)
class RtspResponse(_HeaderAccess):
    """One RTSP response (RFC 2326 §7)."""

    status: int
    reason: str = ""
    headers: Headers = ()
    body: bytes = b""
    version: str = RTSP_VERSION

    @property
    def ok(self) -> bool:
        """True for a 2xx status."""
        return 200 <= self.status < 300

    def encode(self) -> bytes:
        """The response on the wire; an empty reason takes the standard phrase."""
        if not 100 <= self.status <= 999:
            raise RtspParseError("status code out of range")
        reason = self.reason or STATUS_REASONS.get(self.status, "Unknown")
        if any(c in reason for c in "\r\n"):
            raise RtspParseError("control character in reason phrase")
        start = f"{self.version} {self.status} {reason}\r\n".encode()
        return start + _encode_headers(self.headers, self.body) + b"\r\n" + self.body


@dataclass(frozen=True, slots=True)
class InterleavedFrame:
    """A binary frame interleaved on the RTSP TCP connection (RFC 2326 §10.12)."""

    channel: int
    data: bytes = field(repr=False)

    def encode(self) -> bytes:
        """``$``, channel, 16-bit length, data."""
        return encode_interleaved(self.channel, self.data)


RtspMessage = RtspRequest | RtspResponse | InterleavedFrame


def encode_interleaved(channel: int, data: bytes) -> bytes:
    """Frame ``data`` for TCP-interleaved channel ``channel`` (RFC 2326 §10.12)."""
    if not 0 <= channel <= 255:
        raise RtspParseError("interleaved channel out of range")
    if len(data) > 0xFFFF:
        raise RtspLimitError("interleaved frame longer than 65535 bytes")
    return _INTERLEAVED_HEADER.pack(b"$", channel, len(data)) + data


def _parse_cseq(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_uint(value.strip(_LWS), "CSeq", 2**32 - 1)
    except RtspParseError:
        return None


@dataclass(frozen=True, slots=True)
class Limits:
    """Resource limits applied by :class:`RtspParser`."""

    max_header_bytes: int = 8192
    max_header_lines: int = 64
    max_body_bytes: int = 65536
    max_frame_bytes: int = 0xFFFF


class _State(enum.Enum):
    IDLE = enum.auto()
    BODY = enum.auto()
    FAILED = enum.auto()


class RtspParser:
    """Incremental parser of an RTSP byte stream; ``feed`` returns every complete message."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buffer = bytearray()
        self._state = _State.IDLE
        self._pending: _Head | None = None
        self._body_length = 0

    @property
    def failed(self) -> bool:
        """True once a parse error has been raised."""
        return self._state is _State.FAILED

    @property
    def pending(self) -> bool:
        """True while part of a message (or interleaved frame) is buffered."""
        return bool(self._buffer) or self._state != _State.IDLE

    def feed(self, data: bytes) -> list[RtspMessage]:
        """Consume ``data``; return the messages it completed, in order."""
        if self._state is _State.FAILED:
            raise RtspParseError("parser already failed")
        self._buffer += data
        out: list[RtspMessage] = []
        try:
            while True:
                message = self._next()
                if message is None:
                    break
                out.append(message)
        except RtspParseError:
            self._state = _State.FAILED
            self._buffer.clear()
            raise
        return out

    def _next(self) -> RtspMessage | None:
        buf = self._buffer
        if self._state is _State.BODY:
            if len(buf) < self._body_length:
                return None
            body = bytes(buf[: self._body_length])
            del buf[: self._body_length]
            self._state = _State.IDLE
            assert self._pending is not None
            pending, self._pending = self._pending, None
            return _build(pending, body)
        # Empty lines between messages are tolerated (RFC 2326 §15.1 keep-alive CRLF).
        while buf[:2] == b"\r\n" or buf[:1] == b"\n":
            del buf[: 2 if buf[:1] == b"\r" else 1]
        if not buf:
            return None
        if buf[0] == 0x24:  # '$'
            if len(buf) < 4:
                return None
            _, channel, length = _INTERLEAVED_HEADER.unpack_from(buf)
            if length > self.limits.max_frame_bytes:
                raise RtspLimitError("interleaved frame too long")
            if len(buf) < 4 + length:
                return None
            data = bytes(buf[4 : 4 + length])
            del buf[: 4 + length]
            return InterleavedFrame(channel, data)
        end, sep = _find_header_end(buf)
        if end < 0:
            if len(buf) > self.limits.max_header_bytes:
                raise RtspLimitError("header block too long")
            return None
        if end > self.limits.max_header_bytes:
            raise RtspLimitError("header block too long")
        block = bytes(buf[:end])
        del buf[: end + sep]
        pending = self._parse_head(block)
        lengths = _get_all(pending.headers, "Content-Length")
        if len(lengths) > 1:
            # one reading of the framing (RFC 7230 §3.3.3 item 4): a second Content-Length is
            # refused, conflicting or identical, so no two parsers can split the stream apart
            raise RtspParseError("more than one Content-Length header")
        length = 0
        if lengths:
            length = parse_uint(lengths[0], "Content-Length", 999_999_999)
            if length > self.limits.max_body_bytes:
                raise RtspLimitError("body too long")
        self._pending = pending
        self._body_length = length
        self._state = _State.BODY
        return self._next()

    def _parse_head(self, block: bytes) -> _Head:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise RtspParseError("header block is not UTF-8") from None
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if len(lines) > self.limits.max_header_lines + 1:
            raise RtspLimitError("too many header lines")
        start = lines[0]
        if any(_CONTROL.search(line) for line in lines):  # CR, LF or NUL inside a line too
            raise RtspParseError("control character in header block")
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t"):
                if not headers:
                    raise RtspParseError("continuation line before first header")
                name, value = headers[-1]
                headers[-1] = (name, f"{value} {line.strip(_LWS)}".strip(_LWS))
                continue
            name, colon, value = line.partition(":")
            name = name.strip()
            if not colon or not _TOKEN.match(name):
                raise RtspParseError("malformed header line")
            headers.append((name, value.strip(_LWS)))
        parts = start.split(" ")
        if parts[0].startswith("RTSP/") and len(parts) >= 2:
            version, code, reason = parts[0], parts[1], " ".join(parts[2:])
            if not _VERSION.match(version) or len(code) != 3:
                raise RtspParseError("malformed status line")
            status = parse_uint(code, "status code", 999, min_value=100)  # RFC 2326 §7.1.1
            return _Head(None, "", version, status, reason, tuple(headers))
        if len(parts) != 3:
            raise RtspParseError("malformed request line")
        method, uri, version = parts
        if not _TOKEN.match(method) or not uri or not _VERSION.match(version):
            raise RtspParseError("malformed request line")
        return _Head(method, uri, version, 0, "", tuple(headers))


def _find_header_end(buf: bytearray) -> tuple[int, int]:
    """Index of the empty line ending the header block and the separator length, or (-1, 0)."""
    crlf = buf.find(b"\r\n\r\n")
    lf = buf.find(b"\n\n")
    candidates = [(i, n) for i, n in ((crlf, 4), (lf, 2)) if i >= 0]
    if not candidates:
        return -1, 0
    return min(candidates)


@dataclass(frozen=True, slots=True)
class _Head:
    method: str | None
    uri: str
    version: str
    status: int
    reason: str
    headers: Headers


def _build(head: _Head, body: bytes) -> RtspMessage:
    if head.method is not None:
        return RtspRequest(head.method, head.uri, head.headers, body, head.version)
    return RtspResponse(head.status, head.reason, head.headers, body, head.version)


# --- Transport header (RFC 2326 §12.39) -----------------------------------------------------


def _port_range(value: str, name: str) -> tuple[int, int]:
    first, dash, second = value.partition("-")
    low = parse_uint(first, name, 65535, min_value=1)
    high = parse_uint(second, name, 65535, min_value=1) if dash else low + 1
    if high > 65535:
        raise RtspParseError(f"{name} out of range")
    return low, high


def _channel_range(value: str) -> tuple[int, int]:
    first, dash, second = value.partition("-")
    low = parse_uint(first, "interleaved channel", 255)
    high = parse_uint(second, "interleaved channel", 255) if dash else low + 1
    if high > 255:
        raise RtspParseError("interleaved channel out of range")
    return low, high


@dataclass(frozen=True, slots=True)
class TransportSpec:
    """One transport specification of a Transport header (RFC 2326 §12.39).

    ``profile`` is ``AVP`` or ``SAVP`` (RFC 3711 §12), ``lower`` is ``UDP`` or ``TCP``. Parameters
    this model does not name are kept verbatim in ``extra`` so a reply can echo them.
    """

    profile: str = "AVP"
    lower: str = "UDP"
    unicast: bool = True
    client_port: tuple[int, int] | None = None
    server_port: tuple[int, int] | None = None
    interleaved: tuple[int, int] | None = None
    ssrc: int | None = None
    mode: str | None = None
    destination: str | None = None
    source: str | None = None
    extra: tuple[str, ...] = ()

    @property
    def secure(self) -> bool:
        """True for RTP/SAVP."""
        return self.profile == "SAVP"

    @classmethod
    def parse(cls, value: str) -> TransportSpec:
        """Parse one transport-spec, e.g. ``RTP/SAVP/TCP;unicast;interleaved=0-1``."""
        params = [p.strip(_LWS) for p in value.strip(_LWS).split(";")]
        proto = params[0].upper().split("/")
        if len(proto) not in (2, 3) or proto[0] != "RTP" or proto[1] not in ("AVP", "SAVP"):
            raise RtspParseError("unsupported transport protocol")
        lower = proto[2] if len(proto) == 3 else "UDP"
        if lower not in ("UDP", "TCP"):
            raise RtspParseError("unsupported lower transport")
        fields: dict[str, object] = {"profile": proto[1], "lower": lower}
        extra: list[str] = []
        for param in params[1:]:
            if not param:
                continue
            key, eq, val = param.partition("=")
            key = key.strip(_LWS).lower()
            val = val.strip(_LWS).strip('"')
            if key == "unicast" and not eq:
                fields["unicast"] = True
            elif key == "multicast" and not eq:
                fields["unicast"] = False
            elif key == "client_port" and eq:
                fields["client_port"] = _port_range(val, "client_port")
            elif key == "server_port" and eq:
                fields["server_port"] = _port_range(val, "server_port")
            elif key == "interleaved" and eq:
                fields["interleaved"] = _channel_range(val)
            elif key == "ssrc" and eq:
                fields["ssrc"] = _parse_hex32(val, "ssrc")
            elif key == "ttl" and eq:
                parse_uint(val, "ttl", 255)  # RFC 2326 §12.39: multicast TTL; kept in extra
                extra.append(param)
            elif key == "mode" and eq:
                if not val or not all(_TOKEN.match(m.strip()) for m in val.split(",")):
                    raise RtspParseError("invalid mode")
                fields["mode"] = val.upper()
            elif key == "destination" and eq:
                fields["destination"] = val
            elif key == "source" and eq:
                fields["source"] = val
            else:
                if any(c in param for c in "\r\n,"):
                    raise RtspParseError("invalid transport parameter")
                extra.append(param)
        fields["extra"] = tuple(extra)
        return cls(**fields)  # type: ignore[arg-type]

    def encode(self) -> str:
        """The transport-spec text."""
        parts = [f"RTP/{self.profile}" + ("/TCP" if self.lower == "TCP" else "")]
        parts.append("unicast" if self.unicast else "multicast")
        if self.destination is not None:
            parts.append(f"destination={self.destination}")
        if self.source is not None:
            parts.append(f"source={self.source}")
        if self.client_port is not None:
            parts.append(f"client_port={self.client_port[0]}-{self.client_port[1]}")
        if self.server_port is not None:
            parts.append(f"server_port={self.server_port[0]}-{self.server_port[1]}")
        if self.interleaved is not None:
            parts.append(f"interleaved={self.interleaved[0]}-{self.interleaved[1]}")
        if self.ssrc is not None:
            parts.append(f"ssrc={self.ssrc:08X}")
        if self.mode is not None:
            parts.append(f'mode="{self.mode}"')
        parts.extend(self.extra)
        return ";".join(parts)


def parse_transports(value: str) -> tuple[TransportSpec, ...]:
    """Parse a Transport header: comma-separated alternatives in preference order."""
    specs = tuple(TransportSpec.parse(v) for v in split_outside_quotes(value, ",") if v.strip())
    if not specs:
        raise RtspParseError("empty Transport header")
    return specs


def format_transports(specs: Iterable[TransportSpec]) -> str:
    """Format transport alternatives as one Transport header value."""
    return ",".join(s.encode() for s in specs)


def split_outside_quotes(
    value: str, sep: str, error: type[RtspParseError] = RtspParseError
) -> list[str]:
    """Split ``value`` on ``sep`` except inside double quotes; ``error`` on an open quote."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            out.append("".join(current))
            current = []
        else:
            current.append(char)
    if quoted:
        raise error("unterminated quoted string")
    out.append("".join(current))
    return out


# --- Session header (RFC 2326 §12.37) -------------------------------------------------------

_SESSION_ID = re.compile(r"^[A-Za-z0-9$\-_.+]{1,64}$")


@dataclass(frozen=True, slots=True)
class SessionHeader:
    """``Session: id[;timeout=N]`` (RFC 2326 §12.37)."""

    session_id: str
    timeout: int | None = None

    @classmethod
    def parse(cls, value: str) -> SessionHeader:
        """Parse a Session header value; unknown parameters are ignored."""
        parts = [p.strip(_LWS) for p in value.split(";")]
        if not _SESSION_ID.match(parts[0]):
            raise RtspParseError("invalid session id")
        timeout: int | None = None
        for param in parts[1:]:
            key, _, val = param.partition("=")
            if key.strip().lower() == "timeout":
                timeout = parse_uint(val.strip(_LWS), "Session timeout", 2**32 - 1)
        return cls(parts[0], timeout)

    def encode(self) -> str:
        """The header value."""
        if not _SESSION_ID.match(self.session_id):
            raise RtspParseError("invalid session id")
        if self.timeout is None:
            return self.session_id
        return f"{self.session_id};timeout={self.timeout}"


# --- Range, RTP-Info, Retry-After (RFC 2326 §3.6, §12.29, §12.33, §12.31) -------------------

_NPT_TIME = re.compile(r"([0-9]{1,20})(?:\.([0-9]{0,9}))?")


def _npt_time(text: str) -> float:
    """npt-sec ``1*DIGIT [ "." *DIGIT ]`` (RFC 2326 §3.6); "now" and npt-hhmmss are not taken."""
    match = _NPT_TIME.fullmatch(text)
    if match is None:
        raise RtspParseError("malformed npt time (RFC 2326 §3.6)")
    whole = parse_uint(match.group(1), "npt seconds", 2**32 - 1)
    fraction = match.group(2) or ""
    return whole + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)


def parse_npt_range(value: str) -> tuple[float, float | None]:
    """``npt=<start>-[<end>]`` of a Range header as seconds (RFC 2326 §3.6, §12.29).

    Parameters after ``;`` (``time=``) are dropped. Raises :class:`RtspParseError` for another
    unit or any number outside the ASCII grammar.
    """
    spec = value.partition(";")[0].strip(_LWS)
    unit, eq, times = spec.partition("=")
    if not eq or unit.strip().lower() != "npt":
        raise RtspParseError("Range is not an npt range")
    first, dash, second = times.strip(_LWS).partition("-")
    if not dash:
        raise RtspParseError("malformed npt range (RFC 2326 §3.6)")
    start = _npt_time(first)
    end = _npt_time(second) if second else None
    return start, end


def parse_rtp_info(value: str) -> list[tuple[str, int | None, int | None]]:
    """``(url, seq, rtptime)`` of each stream of an RTP-Info header (RFC 2326 §12.33).

    ``seq`` is 16 bits and ``rtptime`` 32 bits, both ASCII decimal; a missing one is None.
    """
    out: list[tuple[str, int | None, int | None]] = []
    for stream in split_outside_quotes(value, ","):
        url: str | None = None
        seq: int | None = None
        rtptime: int | None = None
        for param in stream.split(";"):
            key, eq, val = param.strip().partition("=")
            key = key.strip().lower()
            if key == "url" and eq:
                url = val.strip()
            elif key == "seq" and eq:
                seq = parse_uint(val.strip(_LWS), "RTP-Info seq", 0xFFFF)
            elif key == "rtptime" and eq:
                rtptime = parse_uint(val.strip(_LWS), "RTP-Info rtptime", 0xFFFFFFFF)
        if not url:
            raise RtspParseError("RTP-Info stream without url (RFC 2326 §12.33)")
        out.append((url, seq, rtptime))
    return out


def parse_retry_after(value: str) -> int:
    """Retry-After as delta-seconds (RFC 2326 §12.31; the HTTP-date form is refused)."""
    return parse_uint(value.strip(_LWS), "Retry-After", 2**32 - 1)
