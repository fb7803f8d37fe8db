"""SDP offer/answer for SIP calls (RFC 3264) on top of the :mod:`sdp` model and codec.

The SDP model, its codec and the one ``a=key-mgmt`` codec live in the top-level :mod:`sdp`
package (shared with RTSP); this module adds what a SIP call needs: the audio offer and answer
builders, the choice of key-management protocol and the accepted-stream lookup. The model's
names stay importable from here for existing callers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sdp.keymgmt import KeyMgmtAttr
from sdp.model import (
    KNOWN_PROTOS,
    MAX_MEDIA,
    MAX_SDP_BYTES,
    MAX_SDP_LINES,
    VERSION_LINE,
    Connection,
    MediaDescription,
    SdpLine,
    SessionDescription,
    shared_line,
)

from .errors import SdpError, SdpNegotiationError

__all__ = [
    "KNOWN_PROTOS",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "MAX_SDP_LINES",
    "OPUS",
    "PCMU",
    "AudioCodec",
    "Connection",
    "KeyMgmtAttr",
    "MediaDescription",
    "SdpError",
    "SdpLine",
    "SessionDescription",
    "accepted_media_index",
    "build_audio_answer",
    "build_audio_offer",
    "choose_key_mgmt",
]


@dataclass(frozen=True, slots=True)
class AudioCodec:
    """An RTP payload format we can offer or accept."""

    payload_type: int
    encoding: str  # "PCMU/8000", "opus/48000/2"
    fmtp: str | None = None

    @property
    def name(self) -> str:
        """The encoding name, lower case (``"pcmu"``)."""
        return self.encoding.split("/")[0].lower()

    def lines(self) -> list[SdpLine]:
        """Its ``a=rtpmap`` (and ``a=fmtp``) lines."""
        out = [shared_line("a", f"rtpmap:{self.payload_type} {self.encoding}")]
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
        VERSION_LINE,
        SdpLine("o", f"{username} {session_id} {session_version} IN {addrtype} {address}"),
        shared_line("s", "-"),
        SdpLine("c", f"IN {addrtype} {address}"),
        shared_line("t", "0 0"),
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
    media_lines.append(shared_line("a", "sendrecv"))
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
                offered = offer.key_mgmt(None)
            if _choose(offered, supported_key_mgmt) is None and require_key_mgmt:
                raise SdpNegotiationError("offer has no key management for the audio stream")
            chosen = index
            lines: list[SdpLine] = []
            for codec in accepted:
                lines.extend(codec.lines())
            lines.append(shared_line("a", "sendrecv"))
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
