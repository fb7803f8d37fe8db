"""Two helpers for integrators with their own SIP or RTSP stack (RFC 4567 §3.1).

``key_mgmt_line(mikey_bytes)`` is the ``a=key-mgmt:mikey <base64>`` line to put in an offer or
answer; ``parse_key_mgmt(text)`` gives the MIKEY bytes back from that line or from a whole SDP
body, or raises an :class:`~sdp.errors.SdpError` naming the cause.
"""

from __future__ import annotations

from .errors import KeyMgmtDataError
from .keymgmt import KeyMgmtAttr
from .model import SessionDescription

__all__ = ["key_mgmt_line", "parse_key_mgmt"]

_PREFIX = "key-mgmt:"


def key_mgmt_line(mikey_bytes: bytes) -> str:
    """The SDP line ``a=key-mgmt:mikey <base64>`` (no line ending) carrying a MIKEY message."""
    return KeyMgmtAttr.from_message("mikey", mikey_bytes).to_line().encode()


def _one_line(text: str) -> bytes:
    line = text.removesuffix("\n").removesuffix("\r")
    value = line.removeprefix("a=")
    if not value.startswith(_PREFIX):
        raise KeyMgmtDataError("not an a=key-mgmt line (RFC 4567 §3.1)")
    attr = KeyMgmtAttr.parse_value(value[len(_PREFIX) :])
    if not attr.is_mikey:
        raise KeyMgmtDataError("the a=key-mgmt protocol is not mikey (RFC 4567 §3.1)")
    return attr.message


def parse_key_mgmt(sdp_or_line: str) -> bytes:
    """The MIKEY message of one ``a=key-mgmt`` line or of a whole SDP body.

    A line may be given with or without its ``a=`` and line ending. In a body the MIKEY
    attribute must be unique (at session level or in one media section); none, several, another
    protocol, or invalid data raise :class:`~sdp.errors.KeyMgmtDataError`, and a malformed body
    its own :class:`~sdp.errors.SdpError`.
    """
    if not sdp_or_line.startswith("v="):
        return _one_line(sdp_or_line)
    sdp = SessionDescription.parse(sdp_or_line)
    found = [a for a in sdp.key_mgmt(None) if a.is_mikey]
    for index in range(len(sdp.media)):
        found.extend(a for a in sdp.key_mgmt(index, inherit=False) if a.is_mikey)
    if not found:
        raise KeyMgmtDataError("no a=key-mgmt:mikey attribute in the SDP (RFC 4567 §3.1)")
    if len(found) > 1:
        raise KeyMgmtDataError("several a=key-mgmt:mikey attributes in the SDP")
    return found[0].message
