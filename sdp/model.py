"""SDP model and codec (RFC 4566) with a lossless round trip.

A body is kept as its lines: :class:`SessionDescription` holds the session-level lines and a
tuple of :class:`MediaDescription` (each starting with its ``m=`` line). Lines the model does not
understand are kept verbatim and in order, so ``SessionDescription.parse(b).encode()`` equals the
input up to line endings (``\\r\\n`` is always written) and dropped blank lines. Typed accessors
(media fields, connection, attributes, key-mgmt) parse on demand and raise :class:`SdpError`;
setters return a new, immutable description. Bounds: :data:`MAX_SDP_BYTES`,
:data:`MAX_SDP_LINES`, :data:`MAX_MEDIA` (:class:`SdpLimitError` beyond them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from .errors import SdpError, SdpLimitError
from .keymgmt import KeyMgmtAttr
from .line import SdpLine
from .numbers import parse_uint

__all__ = [
    "KNOWN_PROTOS",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "MAX_SDP_LINES",
    "VERSION_LINE",
    "Connection",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpLine",
    "SessionDescription",
    "shared_line",
]

MAX_SDP_BYTES = 65536
MAX_SDP_LINES = 2048
MAX_MEDIA = 64

_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")

KNOWN_PROTOS = ("RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "RTP/AVPF", "UDP/TLS/RTP/SAVPF", "udp")


_U64 = 2**64 - 1
_U32 = 2**32 - 1


def _port_field(text: str) -> tuple[int, int | None]:
    """``<port>[/<number of ports>]`` of an m= line (RFC 4566 §5.14)."""
    port, sep, count = text.partition("/")
    number = parse_uint(port, "m= port", 65535)
    return number, parse_uint(count, "m= number of ports", 65535, min_value=1) if sep else None


def _bandwidth(lines: Iterable[SdpLine]) -> list[tuple[str, int]]:
    """``(bwtype, kilobits per second)`` of each ``b=`` line (RFC 4566 §5.8)."""
    out: list[tuple[str, int]] = []
    for line in lines:
        if line.type == "b":
            kind, sep, value = line.value.partition(":")
            if not sep or not _TOKEN_RE.fullmatch(kind):
                raise SdpError("b= line needs '<bwtype>:<bandwidth>' (RFC 4566 §5.8)")
            out.append((kind, parse_uint(value, "b= bandwidth", _U64)))
    return out


@dataclass(frozen=True, slots=True)
class Origin:
    """An ``o=`` line (RFC 4566 §5.2); session id and version are numbers (§9 ``1*DIGIT``)."""

    username: str
    session_id: int
    session_version: int
    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse_value(cls, value: str) -> Origin:
        """Parse an ``o=`` value."""
        parts = value.split(" ")
        if len(parts) != 6 or not all(parts):
            raise SdpError("o= line needs six fields (RFC 4566 §5.2)")
        sid = parse_uint(parts[1], "o= sess-id", _U64)
        version = parse_uint(parts[2], "o= sess-version", _U64)
        return cls(parts[0], sid, version, parts[3], parts[4], parts[5])


@dataclass(frozen=True, slots=True)
class RtpMap:
    """An ``a=rtpmap:<pt> <encoding>/<clock rate>[/<channels>]`` value (RFC 4566 §6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    @classmethod
    def parse_value(cls, value: str) -> RtpMap:
        """Parse an rtpmap attribute value."""
        pt, _, rest = value.partition(" ")
        fields = rest.strip().split("/")
        if len(fields) not in (2, 3) or not _TOKEN_RE.fullmatch(fields[0]):
            raise SdpError("a=rtpmap needs '<pt> <encoding>/<clock rate>' (RFC 4566 §6)")
        return cls(
            parse_uint(pt, "rtpmap payload type", 127),
            fields[0],
            parse_uint(fields[1], "rtpmap clock rate", _U32, min_value=1),
            parse_uint(fields[2], "rtpmap channels", 255, min_value=1)
            if len(fields) == 3
            else None,
        )


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line: network type, address type, connection address."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse_value(cls, value: str) -> Connection:
        """Parse a ``c=`` value (RFC 4566 §5.7)."""
        parts = value.split()
        if len(parts) != 3:
            raise SdpError("c= line needs '<nettype> <addrtype> <address>' (RFC 4566 §5.7)")
        return cls(parts[0], parts[1], parts[2])

    def to_line(self) -> SdpLine:
        """The ``c=`` line."""
        return SdpLine("c", f"{self.nettype} {self.addrtype} {self.address}")


def _is_key_mgmt(line: SdpLine) -> bool:
    attr = line.attribute
    return attr is not None and attr[0] == "key-mgmt"


def _key_mgmt_of(lines: Iterable[SdpLine]) -> list[KeyMgmtAttr]:
    out: list[KeyMgmtAttr] = []
    for line in lines:
        attr = line.attribute
        if attr is not None and attr[0] == "key-mgmt":
            out.append(KeyMgmtAttr.parse_value(attr[1] or ""))
    return out


def _replace_key_mgmt(
    lines: tuple[SdpLine, ...], attrs: Sequence[KeyMgmtAttr], floor: int
) -> tuple[SdpLine, ...]:
    """Replace every key-mgmt line; new ones go where the first old one was, else at the end."""
    new = [a.to_line() for a in attrs]
    out: list[SdpLine] = []
    inserted = False
    for index, line in enumerate(lines):
        if index >= floor and _is_key_mgmt(line):
            if not inserted:
                out.extend(new)
                inserted = True
            continue
        out.append(line)
    if not inserted:
        out.extend(new)
    return tuple(out)


def _attributes(lines: Iterable[SdpLine], name: str) -> list[str | None]:
    return [a[1] for line in lines if (a := line.attribute) is not None and a[0] == name]


@dataclass(frozen=True, slots=True)
class MediaDescription:
    """A media section: its ``m=`` line first, then its other lines in order (RFC 4566 §5.14)."""

    lines: tuple[SdpLine, ...]

    def __post_init__(self) -> None:
        if not self.lines or self.lines[0].type != "m":
            raise SdpError("a media section starts with an m= line")
        parts = self.lines[0].value.split()
        if len(parts) < 3:
            raise SdpError("m= line needs '<media> <port> <proto> <fmt> ...' (RFC 4566 §5.14)")
        _port_field(parts[1])  # raises SdpError naming the port or the number of ports
        if not _TOKEN_RE.fullmatch(parts[0]):
            raise SdpError("m= line has an invalid media type")
        # RFC 4566 §5.14 fmt is a token (ASCII): no '²' or '٣' for a reader's isdigit() to take
        if any(not _TOKEN_RE.fullmatch(f) for f in parts[3:]):
            raise SdpError("m= line has an invalid format (RFC 4566 §5.14)")

    @classmethod
    def build(
        cls,
        media: str,
        port: int,
        proto: str,
        formats: Sequence[str],
        lines: Iterable[SdpLine] = (),
    ) -> MediaDescription:
        """Build a media section from its m= fields and following lines."""
        if not 0 <= port <= 65535:
            raise SdpError("media port out of range")
        if any(not _TOKEN_RE.fullmatch(f) for f in formats) or not _TOKEN_RE.fullmatch(media):
            raise SdpError("invalid media type or format")
        fmt = " ".join(formats)
        value = f"{media} {port} {proto} {fmt}" if formats else f"{media} {port} {proto}"
        return cls((SdpLine("m", value), *lines))

    @property
    def _m(self) -> list[str]:
        return self.lines[0].value.split()

    @property
    def media(self) -> str:
        return self._m[0]

    @property
    def port(self) -> int:
        return _port_field(self._m[1])[0]

    @property
    def port_count(self) -> int | None:
        return _port_field(self._m[1])[1]

    @property
    def payload_types(self) -> tuple[int, ...]:
        """The formats as RTP payload types (0-127, RFC 4566 §5.14, RFC 3551 §6)."""
        return tuple(parse_uint(f, "m= payload type", 127) for f in self._m[3:])

    def rtpmaps(self) -> list[RtpMap]:
        """Every media-level ``a=rtpmap``, typed (payload type, clock rate, channels)."""
        return [RtpMap.parse_value(v or "") for v in self.attributes("rtpmap")]

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (RFC 4566 §6), None when absent."""
        values = self.attributes("ptime")
        return parse_uint((values[0] or "").strip(), "a=ptime", 65535) if values else None

    @property
    def bandwidth(self) -> list[tuple[str, int]]:
        """The section's ``b=`` lines as ``(bwtype, kb/s)`` (RFC 4566 §5.8)."""
        return _bandwidth(self.lines)

    @property
    def proto(self) -> str:
        return self._m[2]

    @property
    def formats(self) -> tuple[str, ...]:
        return tuple(self._m[3:])

    @property
    def connection(self) -> Connection | None:
        for line in self.lines:
            if line.type == "c":
                return Connection.parse_value(line.value)
        return None

    def attributes(self, name: str) -> list[str | None]:
        """Values of every media-level ``a=<name>`` line, in order."""
        return _attributes(self.lines, name)

    def rtpmap(self) -> dict[str, str]:
        """Payload type -> encoding (``"PCMU/8000"``) from media-level ``a=rtpmap``."""
        out: dict[str, str] = {}
        for value in self.attributes("rtpmap"):
            pt, _, enc = (value or "").partition(" ")
            if pt and enc:
                out.setdefault(pt, enc.strip())
        return out

    @property
    def key_mgmt(self) -> list[KeyMgmtAttr]:
        """The section's own ``a=key-mgmt`` attributes, in order (RFC 4567 §3.1)."""
        return _key_mgmt_of(self.lines)

    def with_port(self, port: int) -> MediaDescription:
        """The same section with another port on its m= line."""
        parts = self._m
        if not 0 <= port <= 65535:
            raise SdpError("media port out of range")
        parts[1] = str(port)
        return replace(self, lines=(SdpLine("m", " ".join(parts)), *self.lines[1:]))

    def with_key_mgmt(self, attrs: Sequence[KeyMgmtAttr]) -> MediaDescription:
        """The same section with every key-mgmt line replaced by ``attrs``."""
        return replace(self, lines=_replace_key_mgmt(self.lines, attrs, 1))

    def encode_lines(self) -> list[str]:
        """The section's lines as text, without line endings."""
        return [line.encode() for line in self.lines]


VERSION_LINE = SdpLine("v", "0")
# Lines that recur in nearly every body share one immutable instance: fewer objects built per
# body and fewer kept alive with every call's offer and answer.
_COMMON_LINES = {
    line.encode(): line
    for line in (
        VERSION_LINE,
        SdpLine("s", "-"),
        SdpLine("t", "0 0"),
        *(SdpLine("a", d) for d in ("sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux")),
        *(
            SdpLine("a", f"rtpmap:{pt} {enc}")
            for pt, enc in (("0", "PCMU/8000"), ("8", "PCMA/8000"), ("111", "opus/48000/2"))
        ),
    )
}


def shared_line(kind: str, value: str) -> SdpLine:
    """An SDP line, shared when it is one of the common ones."""
    return _COMMON_LINES.get(f"{kind}={value}") or SdpLine(kind, value)


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body: session-level lines (starting with ``v=``) and media sections."""

    session: tuple[SdpLine, ...]
    media: tuple[MediaDescription, ...] = ()

    def __post_init__(self) -> None:
        if not self.session or self.session[0] != VERSION_LINE:
            raise SdpError("SDP must start with v=0 (RFC 4566 §5.1)")
        if any(line.type == "m" for line in self.session):
            raise SdpError("m= line at session level")
        if len(self.media) > MAX_MEDIA:
            raise SdpLimitError("too many media sections")

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse a body; accepts CRLF or LF line endings. Raises :class:`SdpError`."""
        if len(data) > MAX_SDP_BYTES:
            raise SdpLimitError("SDP body too large")
        if isinstance(data, bytes):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError("SDP body is not UTF-8 (RFC 4566 §5)") from exc
        else:
            text = data
        raw_lines = text.split("\n")
        if len(raw_lines) > MAX_SDP_LINES:
            raise SdpLimitError("too many SDP lines")
        session: list[SdpLine] = []
        sections: list[list[SdpLine]] = []
        for number, raw in enumerate(raw_lines, 1):
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line:
                continue
            if len(line) < 2 or line[1] != "=":
                raise SdpError(f"SDP line {number} is not '<type>=<value>'")
            sdp_line = _COMMON_LINES.get(line) or SdpLine(line[0], line[2:])
            if sdp_line.type == "m":
                if len(sections) >= MAX_MEDIA:
                    raise SdpLimitError("too many media sections")
                sections.append([sdp_line])
            elif sections:
                sections[-1].append(sdp_line)
            else:
                session.append(sdp_line)
        return cls(tuple(session), tuple(MediaDescription(tuple(s)) for s in sections))

    def encode(self) -> bytes:
        """Serialise with CRLF line endings."""
        lines = [line.encode() for line in self.session]
        for m in self.media:
            lines.extend(m.encode_lines())
        body = ("\r\n".join(lines) + "\r\n").encode("utf-8")
        if len(body) > MAX_SDP_BYTES:
            raise SdpLimitError("SDP body too large")
        return body

    def __bytes__(self) -> bytes:
        return self.encode()

    # -- accessors -------------------------------------------------------------------------

    def _media_at(self, index: int) -> MediaDescription:
        if not 0 <= index < len(self.media):
            raise SdpError(f"no media section {index}")
        return self.media[index]

    def attributes(self, name: str) -> list[str | None]:
        """Values of every session-level ``a=<name>`` line, in order."""
        return _attributes(self.session, name)

    @property
    def origin(self) -> Origin | None:
        """The ``o=`` line, typed (RFC 4566 §5.2); None when absent."""
        for line in self.session:
            if line.type == "o":
                return Origin.parse_value(line.value)
        return None

    @property
    def times(self) -> list[tuple[int, int]]:
        """``(start, stop)`` NTP seconds of each ``t=`` line (RFC 4566 §5.9)."""
        out: list[tuple[int, int]] = []
        for line in self.session:
            if line.type == "t":
                parts = line.value.split(" ")
                if len(parts) != 2:
                    raise SdpError("t= line needs '<start-time> <stop-time>' (RFC 4566 §5.9)")
                out.append(
                    (
                        parse_uint(parts[0], "t= start-time", _U64),
                        parse_uint(parts[1], "t= stop-time", _U64),
                    )
                )
        return out

    @property
    def bandwidth(self) -> list[tuple[str, int]]:
        """The session-level ``b=`` lines as ``(bwtype, kb/s)`` (RFC 4566 §5.8)."""
        return _bandwidth(self.session)

    @property
    def connection(self) -> Connection | None:
        for line in self.session:
            if line.type == "c":
                return Connection.parse_value(line.value)
        return None

    def effective_connection(self, media_index: int) -> Connection | None:
        """The media's c= line, else the session's (RFC 4566 §5.7)."""
        return self._media_at(media_index).connection or self.connection

    def key_mgmt(self, media_index: int | None, *, inherit: bool = True) -> list[KeyMgmtAttr]:
        """Key-mgmt attributes for a level (None = session level), in offer order.

        For a media index, media-level attributes override the session level (RFC 4567 §3.1);
        with ``inherit=False`` only that media's own lines are returned.
        """
        if media_index is None:
            return _key_mgmt_of(self.session)
        own = self._media_at(media_index).key_mgmt
        if own or not inherit:
            return own
        return _key_mgmt_of(self.session)

    def effective_key_mgmt(self, media_index: int) -> list[KeyMgmtAttr]:
        """Key-mgmt that applies to a media section (media level overrides session level)."""
        return self.key_mgmt(media_index, inherit=True)

    def key_mgmt_level(self, media_index: int) -> int | None:
        """Where the effective key-mgmt of a media comes from: its index, or None (session)."""
        return media_index if self._media_at(media_index).key_mgmt else None

    # -- setters (return a new description) ------------------------------------------------

    def with_key_mgmt(
        self, media_index: int | None, attrs: Sequence[KeyMgmtAttr]
    ) -> SessionDescription:
        """Replace every key-mgmt attribute at a level (empty sequence removes them)."""
        if media_index is None:
            return replace(self, session=_replace_key_mgmt(self.session, attrs, 1))
        media = list(self.media)
        media[media_index] = self._media_at(media_index).with_key_mgmt(attrs)
        return replace(self, media=tuple(media))

    def add_key_mgmt(self, media_index: int | None, attr: KeyMgmtAttr) -> SessionDescription:
        """Append a key-mgmt attribute at a level, replacing one with the same protocol."""
        current = [a for a in self.key_mgmt(media_index, inherit=False) if a.prot != attr.prot]
        return self.with_key_mgmt(media_index, [*current, attr])

    def with_media(self, index: int, media: MediaDescription) -> SessionDescription:
        """The same description with media section ``index`` replaced."""
        self._media_at(index)
        items = list(self.media)
        items[index] = media
        return replace(self, media=tuple(items))
