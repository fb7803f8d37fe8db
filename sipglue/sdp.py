"""SDP model (RFC 4566) with lossless round trip, RFC 4567 key-mgmt and RFC 3264 helpers.

A body is kept as its lines: :class:`SessionDescription` holds the session-level lines and a
tuple of :class:`MediaDescription` (each starting with its ``m=`` line). Lines the model does not
understand are kept verbatim and in order, so ``SessionDescription.parse(b).encode()`` equals the
input up to line endings (``\\r\\n`` is always written) and dropped blank lines. Typed accessors
(media fields, connection, attributes, key-mgmt) parse on demand and raise :class:`SdpError`;
setters return a new, immutable description.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from .errors import SdpError, SdpNegotiationError

__all__ = [
    "MAX_SDP_BYTES",
    "MAX_SDP_LINES",
    "AudioCodec",
    "Connection",
    "KeyMgmtAttr",
    "MediaDescription",
    "SdpLine",
    "SessionDescription",
    "build_audio_answer",
    "build_audio_offer",
    "choose_key_mgmt",
]

MAX_SDP_BYTES = 65536
MAX_SDP_LINES = 2048
MAX_MEDIA = 64

_KMPID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# RFC 4567 §3.1 key-mgmt data is base64 text; the check deletes every base64 byte and expects
# nothing left (a table lookup per byte: several times faster than a regex on the kilobytes of
# a public-key I_MESSAGE, and every offer and answer is checked a few times)
_BASE64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


def _is_base64_text(data: str) -> bool:
    return bool(data) and data.isascii() and not data.encode("ascii").translate(None, _BASE64_BYTES)


_TOKEN_RE = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")

KNOWN_PROTOS = ("RTP/AVP", "RTP/SAVP", "RTP/SAVPF", "RTP/AVPF", "UDP/TLS/RTP/SAVPF", "udp")


@dataclass(frozen=True, slots=True)
class SdpLine:
    """One ``<type>=<value>`` line, kept verbatim."""

    type: str
    value: str

    def __post_init__(self) -> None:
        # plain string tests: every line of every body passes here, and they beat two regexes
        kind, value = self.type, self.value
        if not (isinstance(kind, str) and len(kind) == 1 and "a" <= kind <= "z"):
            raise SdpError("SDP line type must be one lower-case letter (RFC 4566 §5)")
        if "\r" in value or "\n" in value or "\x00" in value:
            raise SdpError("SDP line value contains CR, LF or NUL")

    def encode(self) -> str:
        return f"{self.type}={self.value}"

    @property
    def attribute(self) -> tuple[str, str | None] | None:
        """``(name, value)`` for an ``a=`` line (value None for a property attribute)."""
        if self.type != "a":
            return None
        name, sep, value = self.value.partition(":")
        return (name, value if sep else None)


@dataclass(frozen=True, slots=True)
class KeyMgmtAttr:
    """An ``a=key-mgmt:<prot> <data>`` attribute (RFC 4567 §3.1). ``data`` is base64 text."""

    prot: str
    data: str = field(repr=False)

    def __post_init__(self) -> None:
        if not _KMPID_RE.fullmatch(self.prot):
            raise SdpError("invalid key-mgmt protocol identifier (RFC 4567 §3.1)")
        if not (isinstance(self.data, str) and _is_base64_text(self.data)):
            raise SdpError("key-mgmt data is not base64 text (RFC 4567 §3.1)")

    @classmethod
    def parse_value(cls, value: str) -> KeyMgmtAttr:
        """Parse the attribute value after ``key-mgmt:`` (0*1 SP, prtcl-id, SP, data)."""
        text = value[1:] if value.startswith(" ") else value
        prot, sep, data = text.partition(" ")
        if not sep or not prot or not data:
            raise SdpError("key-mgmt attribute needs '<prot> <data>' (RFC 4567 §3.1)")
        return cls(prot, data)

    def to_line(self) -> SdpLine:
        return SdpLine("a", f"key-mgmt:{self.prot} {self.data}")


@dataclass(frozen=True, slots=True)
class Connection:
    """A ``c=`` line: network type, address type, connection address."""

    nettype: str
    addrtype: str
    address: str

    @classmethod
    def parse_value(cls, value: str) -> Connection:
        parts = value.split()
        if len(parts) != 3:
            raise SdpError("c= line needs '<nettype> <addrtype> <address>' (RFC 4566 §5.7)")
        return cls(parts[0], parts[1], parts[2])

    def to_line(self) -> SdpLine:
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
        port, _, count = parts[1].partition("/")
        if not port.isdigit() or int(port) > 65535 or (count and not count.isdigit()):
            raise SdpError("m= line has an invalid port (RFC 4566 §5.14)")
        if not _TOKEN_RE.fullmatch(parts[0]):
            raise SdpError("m= line has an invalid media type")

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
        return int(self._m[1].partition("/")[0])

    @property
    def port_count(self) -> int | None:
        count = self._m[1].partition("/")[2]
        return int(count) if count else None

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
        return _key_mgmt_of(self.lines)

    def with_port(self, port: int) -> MediaDescription:
        parts = self._m
        if not 0 <= port <= 65535:
            raise SdpError("media port out of range")
        parts[1] = str(port)
        return replace(self, lines=(SdpLine("m", " ".join(parts)), *self.lines[1:]))

    def with_key_mgmt(self, attrs: Sequence[KeyMgmtAttr]) -> MediaDescription:
        return replace(self, lines=_replace_key_mgmt(self.lines, attrs, 1))

    def encode_lines(self) -> list[str]:
        return [line.encode() for line in self.lines]


_VERSION_LINE = SdpLine("v", "0")
# Lines that recur in nearly every body share one immutable instance: fewer objects built per
# body and fewer kept alive with every call's offer and answer.
_COMMON_LINES = {
    line.encode(): line
    for line in (
        _VERSION_LINE,
        SdpLine("s", "-"),
        SdpLine("t", "0 0"),
        *(SdpLine("a", d) for d in ("sendrecv", "sendonly", "recvonly", "inactive", "rtcp-mux")),
        *(
            SdpLine("a", f"rtpmap:{pt} {enc}")
            for pt, enc in (("0", "PCMU/8000"), ("8", "PCMA/8000"), ("111", "opus/48000/2"))
        ),
    )
}


def _line(kind: str, value: str) -> SdpLine:
    """An SDP line, shared when it is one of the common ones."""
    return _COMMON_LINES.get(f"{kind}={value}") or SdpLine(kind, value)


@dataclass(frozen=True, slots=True)
class SessionDescription:
    """A whole SDP body: session-level lines (starting with ``v=``) and media sections."""

    session: tuple[SdpLine, ...]
    media: tuple[MediaDescription, ...] = ()

    def __post_init__(self) -> None:
        if not self.session or self.session[0] != _VERSION_LINE:
            raise SdpError("SDP must start with v=0 (RFC 4566 §5.1)")
        if any(line.type == "m" for line in self.session):
            raise SdpError("m= line at session level")
        if len(self.media) > MAX_MEDIA:
            raise SdpError("too many media sections")

    @classmethod
    def parse(cls, data: bytes | str) -> SessionDescription:
        """Parse a body; accepts CRLF or LF line endings. Raises :class:`SdpError`."""
        if len(data) > MAX_SDP_BYTES:
            raise SdpError("SDP body too large")
        if isinstance(data, bytes):
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError("SDP body is not UTF-8 (RFC 4566 §5)") from exc
        else:
            text = data
        raw_lines = text.split("\n")
        if len(raw_lines) > MAX_SDP_LINES:
            raise SdpError("too many SDP lines")
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
                    raise SdpError("too many media sections")
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
            raise SdpError("SDP body too large")
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
        self._media_at(index)
        items = list(self.media)
        items[index] = media
        return replace(self, media=tuple(items))


# -- builders and RFC 3264 offer/answer -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """An RTP payload format we can offer or accept."""

    payload_type: int
    encoding: str  # "PCMU/8000", "opus/48000/2"
    fmtp: str | None = None

    @property
    def name(self) -> str:
        return self.encoding.split("/")[0].lower()

    def lines(self) -> list[SdpLine]:
        out = [_line("a", f"rtpmap:{self.payload_type} {self.encoding}")]
        if self.fmtp:
            out.append(SdpLine("a", f"fmtp:{self.payload_type} {self.fmtp}"))
        return out


PCMU = AudioCodec(0, "PCMU/8000")
OPUS = AudioCodec(111, "opus/48000/2")
STATIC_ENCODINGS = {"0": "pcmu", "8": "pcma", "9": "g722", "18": "g729"}


def _session_head(
    address: str, session_id: int, session_version: int, username: str
) -> list[SdpLine]:
    addrtype = "IP6" if ":" in address else "IP4"
    return [
        _VERSION_LINE,
        SdpLine("o", f"{username} {session_id} {session_version} IN {addrtype} {address}"),
        _line("s", "-"),
        SdpLine("c", f"IN {addrtype} {address}"),
        _line("t", "0 0"),
    ]


def build_audio_offer(
    address: str,
    port: int,
    *,
    session_id: int,
    session_version: int = 0,
    username: str = "-",
    proto: str = "RTP/SAVP",
    opus: bool = False,
    key_mgmt: Sequence[KeyMgmtAttr] = (),
    key_mgmt_at_media: bool = False,
) -> SessionDescription:
    """A one-stream audio offer: PCMU/8000 (and Opus first if ``opus``), sendrecv."""
    codecs = [OPUS, PCMU] if opus else [PCMU]
    head = _session_head(address, session_id, session_version, username)
    km_lines = [a.to_line() for a in key_mgmt]
    if not key_mgmt_at_media:
        head.extend(km_lines)
    media_lines: list[SdpLine] = []
    for codec in codecs:
        media_lines.extend(codec.lines())
    media_lines.append(_line("a", "sendrecv"))
    if key_mgmt_at_media:
        media_lines.extend(km_lines)
    m = MediaDescription.build(
        "audio", port, proto, [str(c.payload_type) for c in codecs], media_lines
    )
    return SessionDescription(tuple(head), (m,))


def choose_key_mgmt(
    offer: SessionDescription, media_index: int, supported: Sequence[str]
) -> KeyMgmtAttr | None:
    """The first offered key-mgmt (offer preference order) whose protocol we support.

    Returns None when the media has no key-mgmt at all; raises :class:`SdpNegotiationError`
    (488) when key-mgmt is offered but none of its protocols is supported (RFC 4567 §3.1).
    """
    return _choose(offer.effective_key_mgmt(media_index), supported)


def _choose(offered: Sequence[KeyMgmtAttr], supported: Sequence[str]) -> KeyMgmtAttr | None:
    if not offered:
        return None
    wanted = {p.lower() for p in supported}
    for attr in offered:
        if attr.prot.lower() in wanted:
            return attr
    raise SdpNegotiationError("no offered key management protocol is supported", status_code=488)


def _accepted_codecs(media: MediaDescription, codecs: Sequence[AudioCodec]) -> list[AudioCodec]:
    rtpmap = media.rtpmap()
    out: list[AudioCodec] = []
    for fmt in media.formats:
        encoding = rtpmap.get(fmt)
        name = encoding.split("/")[0].lower() if encoding else STATIC_ENCODINGS.get(fmt)
        for codec in codecs:
            if codec.name == name and (
                encoding is None or encoding.lower() == codec.encoding.lower()
            ):
                if fmt.isdigit():
                    # RFC 3264 §6.1: answer with the offerer's payload type numbers.
                    out.append(AudioCodec(int(fmt), encoding or codec.encoding, codec.fmtp))
                break
    return out


def build_audio_answer(
    offer: SessionDescription,
    address: str,
    port: int,
    *,
    session_id: int,
    session_version: int = 0,
    username: str = "-",
    codecs: Sequence[AudioCodec] = (PCMU, OPUS),
    protos: Sequence[str] = ("RTP/SAVP", "RTP/SAVPF"),
    supported_key_mgmt: Sequence[str] = ("mikey",),
    require_key_mgmt: bool = True,
    key_mgmt: KeyMgmtAttr | None = None,
) -> SessionDescription:
    """An RFC 3264 answer accepting the first usable audio stream of ``offer``.

    Every offered media gets an m= line in the same order (RFC 3264 §6); streams offered with
    port 0, non-audio, unsupported proto or no common codec are rejected with port 0. The chosen
    stream must carry a supported key-mgmt protocol (unless ``require_key_mgmt`` is False); the
    answerer declines with :class:`SdpNegotiationError` otherwise. ``key_mgmt`` (the answerer's
    response message) is placed at the level the offer used for that stream (RFC 4567 §3.1).
    """
    head = _session_head(address, session_id, session_version, username)
    answer_media: list[MediaDescription] = []
    chosen: int | None = None
    for index, media in enumerate(offer.media):
        accepted: list[AudioCodec] = []
        if (
            chosen is None
            and media.port != 0  # RFC 3264 §6: a stream offered with port 0 stays rejected
            and media.media == "audio"
            and media.proto in protos
        ):
            accepted = _accepted_codecs(media, codecs)
        if accepted:
            # the media's own key-mgmt overrides the session's (RFC 4567 §3.1); parsed once
            offered = media.key_mgmt
            at_media = bool(offered)
            if not at_media:
                offered = _key_mgmt_of(offer.session)
            if _choose(offered, supported_key_mgmt) is None and require_key_mgmt:
                raise SdpNegotiationError("offer has no key management for the audio stream")
            chosen = index
            lines: list[SdpLine] = []
            for codec in accepted:
                lines.extend(codec.lines())
            lines.append(_line("a", "sendrecv"))
            if key_mgmt is not None:
                # the answerer's key-mgmt goes at the level the offer used (RFC 4567 §3.1)
                (lines if at_media else head).append(key_mgmt.to_line())
            answer_media.append(
                MediaDescription.build(
                    "audio", port, media.proto, [str(c.payload_type) for c in accepted], lines
                )
            )
        else:
            answer_media.append(
                MediaDescription.build(
                    media.media, 0, media.proto, list(media.formats[:1]) or ["0"]
                )
            )
    if chosen is None:
        raise SdpNegotiationError("no acceptable media stream in the offer")
    return SessionDescription(tuple(head), tuple(answer_media))


def accepted_media_index(answer: SessionDescription) -> int | None:
    """Index of the first media the answer accepted (port != 0), if any."""
    for index, media in enumerate(answer.media):
        if media.port != 0:
            return index
    return None
