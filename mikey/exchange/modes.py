"""The exchange modes as one table: each mode is an authentication and a key transport.

=========  ================  ======================  ===========================================
mode       data types        authentication          key transport
=========  ================  ======================  ===========================================
PSK        PSK_INIT/RESP     MAC (PSK auth key)      PSK_KEMAC: KEMAC under the PSK's keys
PK         PK_INIT/RESP      SIGN (initiator cert)   ENVELOPE: KEMAC under an envelope key (PKE)
DH         DH_INIT/RESP      SIGN (both certs)       DH: g^xy is the TGK
DHHMAC     DHHMAC_INIT/RESP  MAC (PSK auth key)      DH: g^xy is the TGK (RFC 4650)
RSA-R      RSA_R_INIT/RESP   SIGN (both certs)       RSA_R: the responder's KEMAC (RFC 4738)
=========  ================  ======================  ===========================================

PSK and PK answer only when the initiator asks for V (RFC 3830 §3.1, §3.2), with a V payload
under the transport auth key; the DH and RSA-R transports always answer, authenticated the same
way as the I_MESSAGE. The roles dispatch on :data:`MODES` (the way frame parsers dispatch on a
frame type); nothing else in the exchange asks which mode it runs.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ..keying import Mode
from ..registry import DataType, ErrorNo, MacAlg

__all__ = [
    "INIT_TYPE",
    "MODES",
    "MODE_OF_INIT",
    "MODE_OF_RESP",
    "RESP_TYPE",
    "Auth",
    "ModeSpec",
    "Transport",
]


class Auth(enum.Enum):
    """How a message is authenticated."""

    MAC = "mac"  # a MAC under a key derived from the PSK (KEMAC MAC)
    SIGN = "sign"  # a SIGN payload by the sender's certificate key

    __hash__ = object.__hash__  # singletons: hashed by identity, in C


class Transport(enum.Enum):
    """How the TGK (or TEKs) gets to both sides."""

    PSK_KEMAC = "psk-kemac"
    ENVELOPE = "envelope"
    DH = "dh"
    RSA_R = "rsa-r"

    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class ModeSpec:
    """One row of the mode table (the derived flags are fixed at construction)."""

    mode: Mode
    init_type: DataType
    resp_type: DataType
    auth: Auth
    transport: Transport
    #: the ERR number for an I_MESSAGE of this mode where another mode is configured
    not_configured: ErrorNo = ErrorNo.INVALID_DT
    #: an R_MESSAGE always follows (DH, DHHMAC, RSA-R); PSK and PK answer only with V
    always_answers: bool = field(init=False)
    #: the R_MESSAGE carries CERT and SIGN: the initiator binds IDr to a certificate
    responder_signs: bool = field(init=False)
    #: the MAC of V and of an authenticated ERR when the configured KEMAC MAC is not used:
    #: DH-signed has no KEMAC, so RFC 3830's default HMAC-SHA-1
    fixed_v_mac: MacAlg | None = field(init=False)

    def __post_init__(self) -> None:
        always = self.transport in (Transport.DH, Transport.RSA_R)
        object.__setattr__(self, "always_answers", always)
        object.__setattr__(self, "responder_signs", always and self.auth is Auth.SIGN)
        dh_signed = self.transport is Transport.DH and self.auth is Auth.SIGN
        object.__setattr__(self, "fixed_v_mac", MacAlg.HMAC_SHA_1_160 if dh_signed else None)


MODES: dict[Mode, ModeSpec] = {
    Mode.PSK: ModeSpec(
        Mode.PSK, DataType.PSK_INIT, DataType.PSK_RESP, Auth.MAC, Transport.PSK_KEMAC
    ),
    Mode.PK: ModeSpec(Mode.PK, DataType.PK_INIT, DataType.PK_RESP, Auth.SIGN, Transport.ENVELOPE),
    Mode.DH: ModeSpec(Mode.DH, DataType.DH_INIT, DataType.DH_RESP, Auth.SIGN, Transport.DH),
    Mode.DHHMAC: ModeSpec(
        Mode.DHHMAC, DataType.DHHMAC_INIT, DataType.DHHMAC_RESP, Auth.MAC, Transport.DH
    ),
    Mode.RSA_R: ModeSpec(
        Mode.RSA_R,
        DataType.RSA_R_INIT,
        DataType.RSA_R_RESP,
        Auth.SIGN,
        Transport.RSA_R,
        not_configured=ErrorNo.UNSUPPORTED_MESSAGE_TYPE,
    ),
}

INIT_TYPE = {m: s.init_type for m, s in MODES.items()}
RESP_TYPE = {m: s.resp_type for m, s in MODES.items()}
MODE_OF_INIT = {s.init_type: m for m, s in MODES.items()}
MODE_OF_RESP = {s.resp_type: m for m, s in MODES.items()}
