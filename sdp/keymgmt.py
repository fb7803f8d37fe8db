"""THE ``a=key-mgmt`` codec (RFC 4567 §3.1), used by SIP offer/answer and RTSP DESCRIBE alike.

Grammar (RFC 4567 §3.1, with the base64 of RFC 4648 §4)::

    key-mgmt     = "a=key-mgmt:" att-value
    att-value    = 0*1SP prtcl-id SP keymgmt-data
    prtcl-id     = KMPID                       ; 1*(ALPHA / DIGIT), e.g. "mikey"
    keymgmt-data = base64                      ; padded, no whitespace

The data is decoded here, once and strictly, when a :class:`KeyMgmtAttr` is made, so every
parsed attribute carries its MIKEY bytes (``message``) next to the text it came from (``data``,
kept for the lossless round trip). :func:`decode_key_mgmt_data` is the only base64 decoder of
key-mgmt data in the tree; the RTSP ``KeyMgmt`` header and parameter bodies use it too.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

from .errors import KeyMgmtDataError, SdpLimitError
from .line import SdpLine

__all__ = [
    "MAX_KEY_MGMT_DATA",
    "MAX_KMPID",
    "KeyMgmtAttr",
    "decode_key_mgmt_data",
    "encode_key_mgmt_data",
    "is_kmpid",
]

MAX_KEY_MGMT_DATA = 16384
"""Largest key-mgmt message accepted or written, in decoded bytes (a bound, not an RFC value)."""
MAX_KMPID = 32
_MAX_TEXT = (MAX_KEY_MGMT_DATA + 2) // 3 * 4
# deleting every base64 character and expecting nothing left is a table lookup per byte: several
# times faster than a regex on the kilobytes of a public-key I_MESSAGE
_BASE64_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def is_kmpid(prot: str) -> bool:
    """True for an RFC 4567 §3.1 prtcl-id: 1 to 32 ASCII letters or digits (no other digits)."""
    return 0 < len(prot) <= MAX_KMPID and prot.isascii() and prot.isalnum()


def decode_key_mgmt_data(text: str) -> bytes:
    """Strict padded base64 (RFC 4567 §3.1, RFC 4648 §4) to the message bytes.

    Refuses the empty string, whitespace, characters outside the base64 alphabet (non-ASCII
    ones included), misplaced or missing padding, and more than :data:`MAX_KEY_MGMT_DATA` bytes.
    """
    if not text:
        raise KeyMgmtDataError("empty key-mgmt data (RFC 4567 §3.1)")
    if len(text) > _MAX_TEXT:
        raise SdpLimitError("key-mgmt data too long")
    body = text.rstrip("=")
    if (
        len(text) % 4  # RFC 4648 §4: padded to a multiple of 4
        or len(text) - len(body) > 2
        or not body.isascii()
        or body.encode("ascii").translate(None, _BASE64_CHARS)
    ):
        raise KeyMgmtDataError("key-mgmt data is not base64 (RFC 4567 §3.1)")
    try:
        message = binascii.a2b_base64(text, strict_mode=True)
    except binascii.Error:
        raise KeyMgmtDataError("key-mgmt data is not base64 (RFC 4567 §3.1)") from None
    if not message:
        raise KeyMgmtDataError("empty key-mgmt data (RFC 4567 §3.1)")
    return message


def encode_key_mgmt_data(message: bytes) -> str:
    """The base64 text of a key-mgmt message (non-empty, at most :data:`MAX_KEY_MGMT_DATA`)."""
    if not message:
        raise KeyMgmtDataError("empty key-mgmt data (RFC 4567 §3.1)")
    if len(message) > MAX_KEY_MGMT_DATA:
        raise SdpLimitError("key-mgmt data too long")
    return base64.b64encode(message).decode("ascii")


@dataclass(frozen=True, slots=True)
class KeyMgmtAttr:
    """An ``a=key-mgmt:<prot> <data>`` attribute (RFC 4567 §3.1).

    ``data`` is the base64 text as written; ``message`` is its decoded bytes, checked and decoded
    once when the attribute is made (an invalid prtcl-id or data raises
    :class:`KeyMgmtDataError`). ``prot`` keeps its spelling; compare it case-insensitively.
    """

    prot: str
    data: str = field(repr=False)
    message: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (isinstance(self.prot, str) and is_kmpid(self.prot)):
            raise KeyMgmtDataError("invalid key-mgmt protocol identifier (RFC 4567 §3.1)")
        if not isinstance(self.data, str):
            raise KeyMgmtDataError("key-mgmt data is not base64 text (RFC 4567 §3.1)")
        object.__setattr__(self, "message", decode_key_mgmt_data(self.data))

    @classmethod
    def from_message(cls, prot: str, message: bytes) -> KeyMgmtAttr:
        """The attribute carrying ``message`` (base64-encoded for the wire)."""
        return cls(prot, encode_key_mgmt_data(bytes(message)))

    @classmethod
    def parse_value(cls, value: str) -> KeyMgmtAttr:
        """Parse the attribute value after ``key-mgmt:`` (0*1SP, prtcl-id, SP, data)."""
        text = value[1:] if value.startswith(" ") else value  # RFC 4567 §3.1: 0*1SP
        prot, sep, data = text.partition(" ")
        if not sep or not prot or not data:
            raise KeyMgmtDataError("key-mgmt attribute needs '<prot> <data>' (RFC 4567 §3.1)")
        return cls(prot, data)

    @property
    def is_mikey(self) -> bool:
        """True when the protocol is MIKEY (prtcl-id ``mikey``, RFC 4567 §3.1)."""
        return self.prot.lower() == "mikey"

    def encode_value(self) -> str:
        """The attribute value ``<prot> <data>`` (what follows ``a=key-mgmt:``)."""
        return f"{self.prot} {self.data}"

    def to_line(self) -> SdpLine:
        """The ``a=key-mgmt:<prot> <data>`` line."""
        return SdpLine("a", f"key-mgmt:{self.prot} {self.data}")
