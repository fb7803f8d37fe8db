"""SDP (RFC 4566) model and codec and THE ``a=key-mgmt`` codec (RFC 4567 §3.1).

This package sits below the glue: it imports nothing of ours, and both :mod:`sipglue` (offer and
answer, RFC 3264) and :mod:`rtspglue` (DESCRIBE) build on it. :mod:`.model` holds the lossless
line model (:class:`SessionDescription`, :class:`MediaDescription`, :class:`SdpLine`) with its
bounds; :mod:`.keymgmt` holds the one ``a=key-mgmt`` codec, whose parsed attribute carries the
decoded MIKEY bytes, and the integrator helpers :func:`key_mgmt_line` / :func:`parse_key_mgmt`.
"""

from __future__ import annotations

from .errors import KeyMgmtDataError, SdpError, SdpLimitError
from .helpers import key_mgmt_line, parse_key_mgmt
from .keymgmt import (
    MAX_KEY_MGMT_DATA,
    KeyMgmtAttr,
    decode_key_mgmt_data,
    encode_key_mgmt_data,
    is_kmpid,
)
from .model import (
    MAX_MEDIA,
    MAX_SDP_BYTES,
    MAX_SDP_LINES,
    Connection,
    MediaDescription,
    Origin,
    RtpMap,
    SdpLine,
    SessionDescription,
)
from .numbers import parse_uint

__all__ = [
    "MAX_KEY_MGMT_DATA",
    "MAX_MEDIA",
    "MAX_SDP_BYTES",
    "MAX_SDP_LINES",
    "Connection",
    "KeyMgmtAttr",
    "KeyMgmtDataError",
    "MediaDescription",
    "Origin",
    "RtpMap",
    "SdpError",
    "SdpLimitError",
    "SdpLine",
    "SessionDescription",
    "decode_key_mgmt_data",
    "encode_key_mgmt_data",
    "is_kmpid",
    "key_mgmt_line",
    "parse_key_mgmt",
    "parse_uint",
]
