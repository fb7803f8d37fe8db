"""Peer profiles: named configurations for the deployed MIKEY peers nobody here wrote.

A profile is a pure function from an :class:`ExchangeConfig` to another one; it changes only the
fields the peer needs (credentials, identities and modes stay as given) and every change is
documented in docs/PROFILES.md with its source. ``rfc`` (the default) changes nothing: accepting
SHA-1 signatures, a NULL KEMAC or any peer quirk is never a default.
"""

from __future__ import annotations

import enum
from dataclasses import replace

from ..codec import Leniency, Timestamp
from ..crypto import SignHash
from ..errors import TimestampError
from ..keying import Mode
from ..registry import KeyDataType
from ..replay import ntp_from_unix
from .config import ExchangeConfig

__all__ = ["PROFILE_HELP", "PeerProfile", "apply_profile", "filetime_as_ntp"]


class PeerProfile(enum.Enum):
    """The peers a named profile makes us agree with."""

    RFC = "rfc"
    MINISIP = "minisip"
    GSTREAMER = "gstreamer"
    ONVIF = "onvif"
    MCPTT = "mcptt"


#: one line per profile: what it changes and why (``--help`` and docs/PROFILES.md)
PROFILE_HELP: dict[PeerProfile, str] = {
    PeerProfile.RFC: "RFC 3830 as written; no quirk accepted (default)",
    PeerProfile.MINISIP: (
        "minisip libmikey: RSA signatures PKCS#1 v1.5 over SHA-1, its PRF bug for in-keys of "
        "a multiple of 32 bytes, a 192-byte TGK like minisip's, no CHASH (its parser aborts)"
    ),
    PeerProfile.GSTREAMER: (
        "GStreamer (gst-rtsp-server, rtspsrc): PSK with a NULL KEMAC (RTSPS only), a 30-byte "
        "TEK carrying key and salt, the SRTP tag length in SP param 3"
    ),
    PeerProfile.ONVIF: (
        "ONVIF cameras and clients (Hanwha, Genetec): the gstreamer set plus Windows FILETIME "
        "in T, PSK without RAND, TEK and salt as separate fields, a 4-byte MKI"
    ),
    PeerProfile.MCPTT: (
        "3GPP MCPTT MIKEY-SAKKE (TS 33.180): the 3GPP ID roles and general extension types "
        "parse strictly under their names"
    ),
}

_GSTREAMER_QUIRKS = frozenset(
    {
        Leniency.TEK_WITH_SALT,
        Leniency.SRTP_TAG_IN_AUTH_KEY_LEN,
        Leniency.TRAILING_BYTES,
        Leniency.PSK_WITHOUT_RAND,
    }
)


def apply_profile(config: ExchangeConfig, profile: PeerProfile | str) -> ExchangeConfig:
    """``config`` changed as ``profile`` needs (docs/PROFILES.md); ``rfc`` returns it unchanged."""
    p = PeerProfile(profile)
    if p is PeerProfile.RFC:
        return config
    if p is PeerProfile.MINISIP:
        # docs/WIRE.md §minisip PRF bug; the SIGN payload names no hash (RFC 3830 §6.5), so the
        # hash is agreed out of band: minisip signs and verifies SHA-1 only.
        return replace(
            config, sign_hash=SignHash.SHA_1, minisip_compat=True, send_chash=False, tgk_length=192
        )
    if p is PeerProfile.GSTREAMER:
        return config.gstreamer_profile()
    if p is PeerProfile.ONVIF:
        # The Genetec/Hanwha SETUP: FILETIME in T, no RAND, TEK + salt split, 4-byte MKI
        # (docs/WIRE.md §Windows FILETIME, §PSK without RAND).
        base = config.gstreamer_profile()
        return replace(
            base,
            mode=Mode.PSK,
            key_type=KeyDataType.TEK_SALT,
            mki_length=4,
            filetime_timestamps=True,
            accepted_leniencies=base.accepted_leniencies | {Leniency.NON_NTP_TIMESTAMP},
        )
    # MCPTT: TS 33.180 code points known to the strict codec.
    return replace(config, threegpp_code_points=True)


#: seconds from 1601-01-01 (the FILETIME epoch) to 1970-01-01
_FILETIME_UNIX_OFFSET = 11_644_473_600


def filetime_as_ntp(t: Timestamp) -> Timestamp:
    """An NTP-UTC T whose 64 bits are a Windows FILETIME (100 ns ticks since 1601), as NTP.

    Genetec Omnicast and Hanwha clients write FILETIME into an NTP-UTC T (docs/WIRE.md §Windows
    FILETIME in an NTP-UTC T); read as NTP it lands in 1900 or 2037 and fails every skew window.
    """
    if len(t.value) != 8:
        raise TimestampError("a FILETIME T has 8 bytes")
    unix = int.from_bytes(t.value, "big") / 10_000_000 - _FILETIME_UNIX_OFFSET
    return Timestamp(t.ts_type, ntp_from_unix(unix))
