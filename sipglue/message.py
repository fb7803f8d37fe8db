"""SIP message model and codec (RFC 3261 §7, §18.3, §20, §25).

:class:`Request` and :class:`Response` are frozen; headers are an ordered tuple of
``(canonical-name, value)`` pairs. Parsing expands compact forms (§7.3.3), unfolds continuation
lines (§7.3.1) and splits comma-joined values of list headers (Via, Route, Contact, ...) into
separate entries without breaking at commas inside quotes or angle brackets. ``encode`` always
writes a Content-Length that matches the body. Datagrams are parsed with :func:`parse_message`;
stream transports feed bytes to a :class:`StreamParser`, which frames by Content-Length (§18.3).
Every malformed input raises :class:`SipParseError` and nothing else.

Typed helpers parse header values on demand: :class:`SipUri`, :class:`NameAddr`, :class:`Via`,
:class:`CSeq`; :func:`make_response` builds a response per §8.2.6.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from .errors import SipParseError

__all__ = [
    "BRANCH_MAGIC",
    "CSeq",
    "Message",
    "NameAddr",
    "Request",
    "Response",
    "SipUri",
    "StreamParser",
    "Via",
    "make_response",
    "new_branch",
    "new_call_id",
    "new_tag",
    "parse_message",
    "parse_uint",
    "split_header_values",
    "warning_text",
]

BRANCH_MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7
MAX_MESSAGE_SIZE = 65535
MAX_HEADER_BYTES = 16384
MAX_HEADERS = 256

Rng = Callable[[int], bytes]
HeaderList = tuple[tuple[str, str], ...]

# RFC 3261 §7.3.3 plus the IANA compact forms registered later.
COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_CANONICAL = {
    name.lower(): name
    for name in (
        *COMPACT_FORMS.values(),
        "Accept",
        "Accept-Encoding",
        "Accept-Language",
        "Alert-Info",
        "Allow",
        "Authorization",
        "Call-Info",
        "Content-Disposition",
        "Content-Language",
        "CSeq",
        "Date",
        "Error-Info",
        "Expires",
        "In-Reply-To",
        "Max-Forwards",
        "MIME-Version",
        "Min-Expires",
        "Organization",
        "Priority",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "Proxy-Require",
        "Reason",
        "Record-Route",
        "Reply-To",
        "Require",
        "Retry-After",
        "Route",
        "Server",
        "Timestamp",
        "Unsupported",
        "User-Agent",
        "Warning",
        "WWW-Authenticate",
    )
}
# Headers whose comma-separated values are separate header field values (§7.3.1).
LIST_HEADERS = frozenset(
    {
        "via",
        "route",
        "record-route",
        "contact",
        "allow",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "allow-events",
        "in-reply-to",
    }
)

REASON_PHRASES = {
    100: "Trying",
    180: "Ringing",
    181: "Call Is Being Forwarded",
    183: "Session Progress",
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
    513: "Message Too Large",
    603: "Decline",
    606: "Not Acceptable",
}

_NAME_PATTERN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_NAME_PATTERN)
_STATUS_RE = re.compile(r"SIP/2\.0 ([1-6][0-9][0-9]) ?(.*)", re.IGNORECASE)
_REQUEST_RE = re.compile(rf"({_NAME_PATTERN}) (\S+) SIP/2\.0", re.IGNORECASE)
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SPACE_RE = re.compile(r"\s")  # str.isspace() characters
_ANGLE_RE = re.compile(r"[<>]")


# RFC 3261 §25.1: DIGIT is the ASCII range %x30-39 (RFC 2234 core rules), never another script's
# digit: str.isdigit() accepts '²' (int() then raises ValueError) and '٣' (int() reads 3).
_UINT_RE = re.compile(r"[0-9]{1,10}")
# RFC 3261 §25.1 LWS is SP and HTAB only; str.strip() and str.split() also take U+2003, U+00A0 ...
_LWS = " \t"
_LWS_RE = re.compile(r"[ \t]+")
MAX_UINT_DIGITS = 10


def parse_uint(text: str, what: str, max_value: int, *, min_value: int = 0) -> int:
    """``text`` as a decimal number of ASCII digits in ``[min_value, max_value]``.

    The one number grammar of the SIP codec (RFC 3261 §25.1, ``1*DIGIT``): 1 to
    :data:`MAX_UINT_DIGITS` characters ``0``-``9`` and nothing else (no sign, space, underscore,
    full-width or other Unicode digit). Anything else raises :class:`SipParseError` naming
    ``what``; so does a number out of bounds.
    """
    if not _UINT_RE.fullmatch(text):
        raise SipParseError(f"malformed {what} (RFC 3261 §25.1: 1*DIGIT)")
    value = int(text)
    if not min_value <= value <= max_value:
        raise SipParseError(f"{what} out of range")
    return value


def canonical_name(name: str) -> str:
    """The canonical long form of a header name (compact forms expanded, §7.3.3)."""
    lower = name.lower()
    if lower in COMPACT_FORMS:
        return COMPACT_FORMS[lower]
    return _CANONICAL.get(lower, name)


def split_header_values(value: str) -> list[str]:
    """Split a comma-joined header value, ignoring commas in quotes and angle brackets."""
    if "," not in value and '"' not in value:
        # one element (the common case): only the bracket balance is left to check
        depth = 0
        for bracket in _ANGLE_RE.findall(value):
            if bracket == "<":
                depth += 1
            elif depth:
                depth -= 1
        if depth:
            raise SipParseError("unbalanced quotes or angle brackets in header value")
        element = value.strip()
        if not element:
            raise SipParseError("empty element in comma-separated header")
        return [element]
    out: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    angle = 0
    for ch in value:
        if escaped:
            escaped = False
        elif quoted and ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch == "<":
            angle += 1
        elif not quoted and ch == ">" and angle:
            angle -= 1
        elif ch == "," and not quoted and not angle:
            out.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    if quoted or angle:
        raise SipParseError("unbalanced quotes or angle brackets in header value")
    out.append("".join(current).strip())
    if any(not part for part in out):
        raise SipParseError("empty element in comma-separated header")
    return out


# -- header value types -----------------------------------------------------------------------


def _parse_params(text: str) -> tuple[tuple[str, str | None], ...]:
    """``;a=b;c`` -> (("a", "b"), ("c", None)). Leading ';' optional."""
    out: list[tuple[str, str | None]] = []
    for raw in _split_unquoted(text, ";"):
        item = raw.strip()
        if not item:
            continue
        name, sep, val = item.partition("=")
        name = name.strip()
        if not _TOKEN_RE.fullmatch(name):
            raise SipParseError("invalid header or URI parameter name")
        out.append((name, val.strip() if sep else None))
    return tuple(out)


def _split_unquoted(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if quoted:
        raise SipParseError("unterminated quoted string")
    parts.append("".join(current))
    return parts


def _encode_params(params: Iterable[tuple[str, str | None]]) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def _param(params: Iterable[tuple[str, str | None]], name: str) -> str | None:
    for k, v in params:
        if k.lower() == name:
            return v if v is not None else ""
    return None


def _with_param(
    params: tuple[tuple[str, str | None], ...], name: str, value: str | None
) -> tuple[tuple[str, str | None], ...]:
    kept = tuple((k, v) for k, v in params if k.lower() != name.lower())
    return (*kept, (name, value))


_HOST_RE = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+")


def _split_hostport(text: str) -> tuple[str, int | None]:
    match = _HOST_RE.match(text)
    if not match:
        raise SipParseError("invalid host")
    host = match.group(0)
    rest = text[match.end() :]
    if not rest:
        return host, None
    if not rest.startswith(":") or len(rest) > 6:
        raise SipParseError("invalid port")
    return host, parse_uint(rest[1:], "port", 65535, min_value=1)


@dataclass(frozen=True, slots=True)
class SipUri:
    """A ``sip:``/``sips:`` URI (RFC 3261 §19.1): user, host, port, params, headers."""

    host: str
    user: str | None = None
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: str | None = None
    scheme: str = "sip"
    password: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, sep, rest = text.partition(":")
        if not sep or scheme.lower() not in ("sip", "sips"):
            raise SipParseError("not a sip: or sips: URI")
        if not rest or _SPACE_RE.search(rest):
            raise SipParseError("invalid characters in SIP URI")
        rest, qsep, headers = rest.partition("?")
        user = password = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
            user, psep, pw = userinfo.partition(":")
            password = pw if psep else None
            if not user:
                raise SipParseError("empty user part in SIP URI")
        hostport, _, params = rest.partition(";")
        host, port = _split_hostport(hostport)
        return cls(
            host=host,
            user=user,
            port=port,
            params=_parse_params(params),
            headers=headers if qsep else None,
            scheme=scheme.lower(),
            password=password,
        )

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = f"?{self.headers}" if self.headers is not None else ""
        return f"{self.scheme}:{userinfo}{self.host}{port}{_encode_params(self.params)}{headers}"

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    @property
    def transport(self) -> str | None:
        value = self.param("transport")
        return value.lower() if value else None

    @property
    def lr(self) -> bool:
        return self.param("lr") is not None

    def with_param(self, name: str, value: str | None) -> SipUri:
        return replace(self, params=_with_param(self.params, name, value))

    def aor(self) -> str:
        """The address-of-record this URI names: ``scheme:user@host`` (RFC 3261 §10.3).

        Port, URI parameters, headers and any password are dropped; the scheme stays what it is
        (``sips`` stays ``sips``) and the user and host are kept as written, so the result compares
        with a MIKEY identity under RFC 3261 §19.1.4 (:func:`mikey.identity.same_identity`).
        """
        userinfo = f"{self.user}@" if self.user is not None else ""
        return f"{self.scheme}:{userinfo}{self.host}"


_WARNING_RE = re.compile(r'\s*[0-9]{3}\s+\S+\s+"((?:[^"\\]|\\.)*)"', re.DOTALL)


def warning_text(value: str | None) -> str | None:
    """The warn-text of a Warning header value (``code agent "text"``, RFC 3261 §20.43).

    Only the first warning value is read; ``None`` for a missing or malformed header. The text is
    the peer's: callers show it to the local user, never act on it.
    """
    if not value:
        return None
    match = _WARNING_RE.match(value)
    if match is None:
        return None
    text = re.sub(r"\\(.)", r"\1", match.group(1))
    return "".join(c for c in text if c.isprintable())[:200]


_NAME_ADDR_RE = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>(.*)', re.DOTALL)


@dataclass(frozen=True, slots=True)
class NameAddr:
    """A From/To/Contact/Route value: optional display name, URI, header params (§20.10)."""

    uri: SipUri
    display: str | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        match = _NAME_ADDR_RE.fullmatch(text)
        if match:
            display = match.group(1) if match.group(1) is not None else match.group(2).strip()
            return cls(
                uri=SipUri.parse(match.group(3).strip()),
                display=display or None,
                params=_parse_params(match.group(4)),
            )
        if "<" in text or ">" in text:
            raise SipParseError("malformed name-addr")
        # addr-spec form: parameters after the URI belong to the header (§20.10)
        uri_text, _, params = text.strip().partition(";")
        return cls(uri=SipUri.parse(uri_text.strip()), params=_parse_params(params))

    def __str__(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        return f"{display}<{self.uri}>{_encode_params(self.params)}"

    @property
    def tag(self) -> str | None:
        value = _param(self.params, "tag")
        return value or None

    def with_tag(self, tag: str) -> NameAddr:
        return replace(self, params=_with_param(self.params, "tag", tag))


_VIA_RE = re.compile(r"\s*SIP\s*/\s*2\.0\s*/\s*([A-Za-z0-9\-]+)\s+([^;\s]+)\s*(;.*)?", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via header value (§20.42)."""

    transport: str
    host: str
    port: int | None = None
    params: tuple[tuple[str, str | None], ...] = ()

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA_RE.fullmatch(text)
        if not match:
            raise SipParseError("malformed Via header")
        host, port = _split_hostport(match.group(2))
        return cls(match.group(1).upper(), host, port, _parse_params(match.group(3) or ""))

    def __str__(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"SIP/2.0/{self.transport} {self.host}{port}{_encode_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return _param(self.params, "branch") or None

    def param(self, name: str) -> str | None:
        return _param(self.params, name.lower())

    @property
    def rport(self) -> int | None:
        """The ``rport`` port (RFC 3581 §3); None when absent or empty (a request for one)."""
        value = self.param("rport")
        return parse_uint(value, "Via rport", 65535, min_value=1) if value else None

    def with_param(self, name: str, value: str | None) -> Via:
        return replace(self, params=_with_param(self.params, name, value))


@dataclass(frozen=True, slots=True)
class CSeq:
    """A CSeq value: sequence number and method (§20.16)."""

    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        parts = _LWS_RE.split(text.strip(_LWS))
        if len(parts) != 2:
            raise SipParseError("malformed CSeq header")
        seq = parse_uint(parts[0], "CSeq number", 2**31 - 1)  # §8.1.1.5: less than 2**31
        if not _TOKEN_RE.fullmatch(parts[1]):
            raise SipParseError("malformed CSeq method")
        return cls(seq, parts[1])

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


# -- messages -----------------------------------------------------------------------------------


class _HeadersMixin:
    __slots__ = ()
    headers: HeaderList
    body: bytes

    def get(self, name: str) -> str | None:
        """The first value of a header (case-insensitive, compact forms accepted)."""
        wanted = canonical_name(name).lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None

    def get_all(self, name: str) -> list[str]:
        wanted = canonical_name(name).lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise SipParseError(f"missing {canonical_name(name)} header")
        return value

    @property
    def call_id(self) -> str:
        return self.require("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return CSeq.parse(self.require("CSeq"))

    @property
    def from_(self) -> NameAddr:
        return NameAddr.parse(self.require("From"))

    @property
    def to(self) -> NameAddr:
        return NameAddr.parse(self.require("To"))

    @property
    def vias(self) -> list[Via]:
        return [Via.parse(v) for v in self.get_all("Via")]

    @property
    def top_via(self) -> Via:
        return Via.parse(self.require("Via"))

    @property
    def contacts(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.get_all("Contact") if v.strip() != "*"]

    @property
    def record_route(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.get_all("Record-Route")]

    @property
    def routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.get_all("Route")]

    def _number(self, name: str, max_value: int) -> int | None:
        value = self.get(name)
        return None if value is None else parse_uint(value.strip(_LWS), f"{name} header", max_value)

    @property
    def max_forwards(self) -> int | None:
        """Max-Forwards (RFC 3261 §20.22: 1*DIGIT, 0-255 in practice); None when absent."""
        return self._number("Max-Forwards", 255)

    @property
    def expires(self) -> int | None:
        """Expires in seconds (RFC 3261 §20.19: delta-seconds, at most 2**32-1); None if absent."""
        return self._number("Expires", 2**32 - 1)

    @property
    def retry_after(self) -> int | None:
        """Retry-After delta-seconds (RFC 3261 §20.33), comment and parameters dropped."""
        value = self.get("Retry-After")
        if value is None:
            return None
        seconds = value.partition(";")[0].partition("(")[0].strip(_LWS)
        return parse_uint(seconds, "Retry-After header", 2**32 - 1)

    @property
    def content_type(self) -> str | None:
        value = self.get("Content-Type")
        return value.split(";")[0].strip().lower() if value else None

    def _encode_headers(self) -> bytes:
        lines = [
            f"{name}: {value}\r\n"
            for name, value in self.headers
            if name.lower() != "content-length"
        ]
        lines.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        return "".join(lines).encode("utf-8")


def _check_headers(headers: Iterable[tuple[str, str]]) -> HeaderList:
    out = tuple(headers)
    for name, value in out:
        if not _TOKEN_RE.fullmatch(name) or _CTL_RE.search(value):
            raise SipParseError("invalid header name or control characters in header value")
    return out


@dataclass(frozen=True, slots=True)
class Request(_HeadersMixin):
    """A SIP request."""

    method: str
    uri: str
    headers: HeaderList = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        if not _TOKEN_RE.fullmatch(self.method) or not self.uri or _CTL_RE.search(self.uri):
            raise SipParseError("invalid request method or URI")
        if " " in self.uri:
            raise SipParseError("space in Request-URI")
        _check_headers(self.headers)

    def encode(self) -> bytes:
        return f"{self.method} {self.uri} SIP/2.0\r\n".encode() + self._encode_headers() + self.body

    @property
    def branch(self) -> str | None:
        return self.top_via.branch

    def with_headers(self, headers: Iterable[tuple[str, str]]) -> Request:
        return replace(self, headers=tuple(headers))


@dataclass(frozen=True, slots=True)
class Response(_HeadersMixin):
    """A SIP response."""

    status: int
    reason: str = ""
    headers: HeaderList = ()
    body: bytes = b""

    def __post_init__(self) -> None:
        if not 100 <= self.status <= 699 or _CTL_RE.search(self.reason):
            raise SipParseError("invalid status code or reason phrase")
        _check_headers(self.headers)

    def encode(self) -> bytes:
        reason = self.reason or REASON_PHRASES.get(self.status, "")
        return f"SIP/2.0 {self.status} {reason}\r\n".encode() + self._encode_headers() + self.body

    @property
    def provisional(self) -> bool:
        return self.status < 200


Message = Request | Response


def _parse_head(head: bytes, body: bytes | None = None) -> tuple[Message, int | None]:
    """Parse start line + headers. Returns the message and Content-Length.

    With ``body``, the message carries it, cut to Content-Length (which must not exceed it,
    §18.3); without, its body is empty. Either way the message is built (and checked) once.
    """
    if len(head) > MAX_HEADER_BYTES:
        raise SipParseError("header section too large")
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SipParseError("header section is not UTF-8") from exc
    lines = text.replace("\r\n", "\n").split("\n")
    start = lines[0]
    raw_headers: list[str] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):  # §7.3.1 folding
            if not raw_headers:
                raise SipParseError("continuation line before first header")
            raw_headers[-1] += " " + line.strip(_LWS)
        elif line:
            raw_headers.append(line)
    if len(raw_headers) > MAX_HEADERS:
        raise SipParseError("too many headers")
    headers: list[tuple[str, str]] = []
    for raw in raw_headers:
        name, sep, value = raw.partition(":")
        name = name.strip()
        if not sep or not _TOKEN_RE.fullmatch(name):
            raise SipParseError("malformed header line")
        name = canonical_name(name)
        value = value.strip(_LWS)
        if name.lower() in LIST_HEADERS and not (name == "Contact" and value == "*"):
            headers.extend((name, part) for part in split_header_values(value))
        else:
            headers.append((name, value))
        if len(headers) > MAX_HEADERS:
            raise SipParseError("too many headers")
    content_length: int | None = None
    lengths = [v for k, v in headers if k == "Content-Length"]
    if len(lengths) > 1:
        # one reading of the framing (RFC 7230 §3.3.3 item 4, §18.3): a second Content-Length
        # is refused whether or not it repeats the first (``l:`` and ``Content-Length:`` too)
        raise SipParseError("more than one Content-Length header")
    if lengths:
        content_length = parse_uint(lengths[0], "Content-Length", 999_999_999)
    if body is None:
        body = b""
    elif content_length is not None:
        if content_length > len(body):
            raise SipParseError("body shorter than Content-Length (RFC 3261 §18.3)")
        body = body[:content_length]
    status = _STATUS_RE.fullmatch(start)
    message: Message
    if status:
        code = parse_uint(status.group(1), "status code", 699, min_value=100)
        message = Response(code, status.group(2), tuple(headers), body)
    else:
        request = _REQUEST_RE.fullmatch(start)
        if not request:
            if start.upper().startswith("SIP/") or start.upper().endswith(("SIP/1.0", "SIP/3.0")):
                raise SipParseError("unsupported SIP version (RFC 3261 §7.1)")
            raise SipParseError("malformed start line")
        message = Request(request.group(1).upper(), request.group(2), tuple(headers), body)
    return message, content_length


def _split_head(data: bytes) -> tuple[bytes, int] | None:
    """(header section, offset of the body) at the first empty line (CRLF or bare LF)."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return None
    if lf < 0 or 0 <= crlf < lf:
        return data[:crlf], crlf + 4
    return data[:lf].rstrip(b"\r"), lf + 2


def parse_message(data: bytes, *, max_size: int = MAX_MESSAGE_SIZE) -> Message:
    """Parse one datagram. Content-Length, if present, must not exceed the body (§18.3)."""
    if len(data) > max_size:
        raise SipParseError("message too large")
    data = data.lstrip(b"\r\n")
    parts = _split_head(data)
    if parts is None:
        raise SipParseError("no end of header section")
    head, offset = parts
    return _parse_head(head, data[offset:])[0]


class StreamParser:
    """Incremental parser for stream transports; frames by Content-Length (§18.3)."""

    def __init__(self, *, max_size: int = MAX_MESSAGE_SIZE) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._pending: tuple[Message, int] | None = None

    @property
    def pending(self) -> bool:
        """True while part of a message is buffered."""
        return bool(self._buffer) or self._pending is not None

    def feed(self, data: bytes) -> list[Message]:
        """Add bytes; return every complete message. Raises SipParseError (then unusable)."""
        self._buffer += data
        out: list[Message] = []
        while True:
            if self._pending is None:
                while self._buffer[:2] == b"\r\n" or self._buffer[:1] == b"\n":
                    del self._buffer[: 2 if self._buffer[:1] == b"\r" else 1]  # keep-alives
                parts = _split_head(bytes(self._buffer[: MAX_HEADER_BYTES + 4]))
                if parts is None:
                    if len(self._buffer) > MAX_HEADER_BYTES:
                        raise SipParseError("header section too large")
                    return out
                head, offset = parts
                message, length = _parse_head(head)
                if length is None:
                    raise SipParseError("Content-Length required on stream transports (§18.3)")
                if offset + length > self.max_size:
                    raise SipParseError("message too large")
                del self._buffer[:offset]
                self._pending = (message, length)
            message, length = self._pending
            if len(self._buffer) < length:
                return out
            body = bytes(self._buffer[:length])
            del self._buffer[:length]
            self._pending = None
            out.append(replace(message, body=body))


# -- builders and identifiers -------------------------------------------------------------------


def _hex(rng: Rng, n: int) -> str:
    return rng(n).hex()


def new_branch(rng: Rng) -> str:
    """A fresh RFC 3261 branch (magic cookie + 64 random bits, §8.1.1.7)."""
    return BRANCH_MAGIC + _hex(rng, 8)


def new_tag(rng: Rng) -> str:
    """A fresh From/To tag (at least 32 random bits, §19.3)."""
    return _hex(rng, 6)


def new_call_id(rng: Rng, host: str) -> str:
    """A fresh Call-ID (§8.1.1.4)."""
    return f"{_hex(rng, 12)}@{host}"


def make_response(
    request: Request,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
) -> Response:
    """A response to ``request`` per RFC 3261 §8.2.6.2 (Via, From, To+tag, Call-ID, CSeq)."""
    out: list[tuple[str, str]] = [("Via", v) for v in request.get_all("Via")]
    if 100 < status < 300 and request.method == "INVITE":  # §12.1.1
        out.extend(("Record-Route", v) for v in request.get_all("Record-Route"))
    out.append(("From", request.require("From")))
    to_value = request.require("To")
    if to_tag is not None and status != 100:
        to = NameAddr.parse(to_value)
        if to.tag is None:
            to_value = str(to.with_tag(to_tag))
    out.append(("To", to_value))
    out.append(("Call-ID", request.require("Call-ID")))
    out.append(("CSeq", request.require("CSeq")))
    if status == 100 and request.get("Timestamp") is not None:  # §8.2.6.1
        out.append(("Timestamp", request.require("Timestamp")))
    out.extend(headers)
    return Response(status, reason or REASON_PHRASES.get(status, ""), tuple(out), body)
