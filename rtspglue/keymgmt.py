"""The RTSP ``KeyMgmt`` header and the MIKEY parameter bodies (RFC 4567 §3.2, ONVIF, GStreamer).

Grammar accepted (RFC 4567 §3.2, relaxed to what peers send)::

    KeyMgmt       = "KeyMgmt" ":" key-mgmt-spec 0*("," key-mgmt-spec)
    key-mgmt-spec = "prot" "=" KMPID ";" ["uri" "=" DQUOTE URI DQUOTE ";"] "data" "=" value

Parameters are split on ``;`` and specs on ``,`` only outside double quotes, whitespace around
them is ignored (GStreamer writes none, VLC one space), quotes are optional on input and the uri
may be empty. The formatter always writes the RFC form ``prot=mikey; uri="..."; data="..."``.
Base64 is validated strictly; an error names the field, never its content (MIKEY messages may
carry keys under NULL encryption).

The SDP ``a=key-mgmt`` attribute (RFC 4567 §3.1) is not here: it is the :mod:`sdp` package's
(:class:`sdp.KeyMgmtAttr`), and so are the prtcl-id grammar and the one strict base64 decoder this
module uses for the header's and the parameters' data. ``parse_key_mgmt_attribute`` and
``format_key_mgmt_attribute`` remain as thin adapters onto it for existing callers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sdp.errors import SdpError, SdpLimitError
from sdp.keymgmt import (
    MAX_KEY_MGMT_DATA,
    KeyMgmtAttr,
    decode_key_mgmt_data,
    encode_key_mgmt_data,
    is_kmpid,
)

from .errors import KeyMgmtError
from .message import split_outside_quotes

__all__ = [
    "MAX_KEYMGMT_DATA",
    "KeyMgmtSpec",
    "decode_base64",
    "format_key_mgmt_attribute",
    "format_keymgmt",
    "format_mikey_parameter",
    "is_mikey_parameter_request",
    "parse_key_mgmt_attribute",
    "parse_keymgmt",
    "parse_mikey_parameter",
    "parse_set_parameter_keying",
]

MAX_KEYMGMT_DATA = MAX_KEY_MGMT_DATA


def decode_base64(text: str, *, what: str = "key-mgmt data") -> bytes:
    """Strict standard base64 (RFC 4648 §4, padded) to bytes; raise KeyMgmtError otherwise.

    Whitespace around the value is a header's and is dropped; the decoding is
    :func:`sdp.keymgmt.decode_key_mgmt_data`'s.
    """
    text = text.strip()
    if not text:
        raise KeyMgmtError(f"empty {what}")
    try:
        return decode_key_mgmt_data(text)
    except SdpLimitError:
        raise KeyMgmtError(f"{what} too long") from None
    except SdpError:
        raise KeyMgmtError(f"{what} is not valid base64") from None


def _encode_base64(data: bytes) -> str:
    try:
        return encode_key_mgmt_data(data)
    except SdpLimitError:
        raise KeyMgmtError("key-mgmt data too long") from None
    except SdpError:
        raise KeyMgmtError("empty key-mgmt data") from None


@dataclass(frozen=True, slots=True)
class KeyMgmtSpec:
    """One key-mgmt-spec: protocol id, the media URI it applies to ("" = all) and the message."""

    prot: str
    uri: str
    data: bytes = field(repr=False)

    def encode(self) -> str:
        """RFC 4567 form: ``prot=mikey; uri="..."; data="..."``."""
        if not is_kmpid(self.prot):  # RFC 4567 §3.2: prot = KMPID
            raise KeyMgmtError("invalid key management protocol id")
        if '"' in self.uri or any(ord(c) < 0x21 for c in self.uri):
            raise KeyMgmtError("invalid key-mgmt uri")
        return f'prot={self.prot}; uri="{self.uri}"; data="{_encode_base64(self.data)}"'


def _split(value: str, sep: str) -> list[str]:
    return split_outside_quotes(value, sep, KeyMgmtError)


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    if '"' in value:
        raise KeyMgmtError("misplaced quote in KeyMgmt")
    return value


def _parse_spec(text: str) -> KeyMgmtSpec:
    params: dict[str, str] = {}
    for part in _split(text, ";"):
        if not part.strip():
            continue
        key, eq, val = part.partition("=")
        key = key.strip().lower()
        if not eq or key not in ("prot", "uri", "data"):
            # RFC 4567 §3.2 defines only these; anything else is malformed, not ignorable.
            raise KeyMgmtError("unknown KeyMgmt parameter")
        if key in params:
            raise KeyMgmtError(f"duplicate KeyMgmt parameter {key}")
        params[key] = _unquote(val)
    if "prot" not in params or "data" not in params:
        raise KeyMgmtError("KeyMgmt spec needs prot and data")
    prot = params["prot"]
    if not is_kmpid(prot):  # RFC 4567 §3.2: prot = KMPID
        raise KeyMgmtError("invalid key management protocol id")
    uri = params.get("uri", "")
    if any(ord(c) < 0x20 for c in uri):
        raise KeyMgmtError("invalid key-mgmt uri")
    return KeyMgmtSpec(prot.lower(), uri, decode_base64(params["data"]))


def parse_keymgmt(value: str) -> tuple[KeyMgmtSpec, ...]:
    """Parse a ``KeyMgmt`` header value (one or more comma-separated specs)."""
    specs = tuple(_parse_spec(part) for part in _split(value, ",") if part.strip())
    if not specs:
        raise KeyMgmtError("empty KeyMgmt header")
    return specs


def format_keymgmt(specs: Iterable[KeyMgmtSpec]) -> str:
    """Format specs as one ``KeyMgmt`` header value in the RFC 4567 spelling."""
    specs = tuple(specs)
    if not specs:
        raise KeyMgmtError("no key-mgmt spec to format")
    return ", ".join(spec.encode() for spec in specs)


# --- adapters onto the one SDP a=key-mgmt codec (sdp.keymgmt, RFC 4567 §3.1) ----------------


def parse_key_mgmt_attribute(value: str) -> tuple[str, bytes]:
    """The a=key-mgmt value to (protocol id in lower case, message bytes), by
    :meth:`sdp.KeyMgmtAttr.parse_value`; its errors as :class:`KeyMgmtError`."""
    try:
        attr = KeyMgmtAttr.parse_value(value)
    except SdpError:
        raise KeyMgmtError("malformed a=key-mgmt value") from None
    return attr.prot.lower(), attr.message


def format_key_mgmt_attribute(prot: str, data: bytes) -> str:
    """The a=key-mgmt value ``prot base64`` (RFC 4567 §3.1), by :class:`sdp.KeyMgmtAttr`."""
    try:
        return KeyMgmtAttr.from_message(prot, data).encode_value()
    except SdpError:
        raise KeyMgmtError("invalid key management protocol id or data") from None


# --- GET/SET_PARAMETER bodies (ONVIF Streaming Spec §5.x, GStreamer rtspsrc) -----------------


def _body_lines(body: bytes) -> list[str]:
    if len(body) > MAX_KEYMGMT_DATA * 2:
        raise KeyMgmtError("parameter body too long")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise KeyMgmtError("parameter body is not UTF-8") from None
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n") if line.strip()]


def parse_set_parameter_keying(body: bytes) -> tuple[KeyMgmtSpec, ...]:
    """MIKEY messages in a SET_PARAMETER body, in either form peers use.

    ONVIF: ``mikey: <base64>`` (uri ""), GStreamer: ``KeyMgmt: prot=mikey;uri="...";data="..."``.
    Other parameter lines are ignored; an empty result means the body carries no keying.
    """
    out: list[KeyMgmtSpec] = []
    for line in _body_lines(body):
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip().lower()
        if name == "mikey":
            out.append(KeyMgmtSpec("mikey", "", decode_base64(value, what="mikey parameter")))
        elif name == "keymgmt":
            out.extend(parse_keymgmt(value))
    return tuple(out)


def is_mikey_parameter_request(body: bytes) -> bool:
    """True when a GET_PARAMETER body asks for the ``mikey`` parameter (ONVIF)."""
    try:
        lines = _body_lines(body)
    except KeyMgmtError:
        return False
    return any(line.lower() == "mikey" for line in lines)


def format_mikey_parameter(data: bytes) -> bytes:
    """The GET_PARAMETER response / SET_PARAMETER body ``mikey: <base64>\\r\\n``."""
    return f"mikey: {_encode_base64(data)}\r\n".encode("ascii")


def parse_mikey_parameter(body: bytes) -> bytes:
    """The MIKEY message from a ``mikey: <base64>`` body; KeyMgmtError when absent."""
    for line in _body_lines(body):
        name, colon, value = line.partition(":")
        if colon and name.strip().lower() == "mikey":
            return decode_base64(value, what="mikey parameter")
    raise KeyMgmtError("no mikey parameter in body")
