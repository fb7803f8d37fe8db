"""The result of a MIKEY exchange: a Registration SA and the Data SA entries it keys.

This is the hand-over point between the sans-IO core and the SRTP data path (RFC 4046 §3.2):
``mikey`` builds a :class:`KeyingResult`; ``srtp`` turns its Data SA entries into live contexts
and owns (and wipes) the key buffers from then on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from ._accel import wipe
from ._frozen import fast_init
from .registry import PrfFunc, SrtpAuthAlg, SrtpEncrAlg, SrtpPrf


class Mode(enum.Enum):
    """MIKEY key exchange method."""

    PSK = "psk"
    PK = "pk"
    DH = "dh"
    DHHMAC = "dhhmac"
    RSA_R = "rsa-r"

    # Members are singletons compared by identity: the identity hash, in C, serves the per-mode
    # dict lookups of every exchange (Enum's own __hash__ is a Python call hashing the name).
    __hash__ = object.__hash__


class Role(enum.Enum):
    INITIATOR = "initiator"
    RESPONDER = "responder"


class TeardownReason(enum.Enum):
    """Why a call, a session or their keys ended (RFC 4046 §4.4: the end of a registration).

    The one vocabulary of the GSA registry (srtp), the SIP UA and the RTSP server: each end of a
    call or session is torn down with its own reason, and the GSA records that same reason.
    """

    BYE = "bye"  # a BYE, when it does not matter which side sent it
    LOCAL_BYE = "local-bye"  # SIP: we hung up
    REMOTE_BYE = "remote-bye"  # SIP: the peer hung up
    TEARDOWN = "teardown"  # RTSP TEARDOWN
    CANCEL = "cancel"  # SIP CANCEL before the call was answered
    TIMEOUT = "timeout"  # a transaction, session or idle timer expired
    CONNECTION_LOST = "connection-lost"
    REJECTED = "rejected"  # SIP: a non-2xx final response, or the offer was refused
    ANSWER_REFUSED = "answer-refused"  # SIP UAC refused the answer: ACK, then BYE
    SETUP_FAILED = "setup-failed"  # the keys could not be installed
    KEYING_FAILED = "keying-failed"  # RTSP: the key exchange of a SETUP failed
    KEY_EXPIRED = "key-expired"  # the keys' lifetime ended
    SHUTDOWN = "shutdown"

    __hash__ = object.__hash__  # singletons, hashed by identity (as Mode)


@dataclass(frozen=True, slots=True)
class SrtpPolicy:
    """SRTP parameters of one SP payload with RFC 3711 §8.2 defaults filled in."""

    encr_alg: SrtpEncrAlg = SrtpEncrAlg.AES_CM
    encr_key_len: int = 16
    auth_alg: SrtpAuthAlg = SrtpAuthAlg.HMAC_SHA_1
    auth_key_len: int = 20
    salt_key_len: int = 14
    prf: SrtpPrf = SrtpPrf.AES_CM
    key_derivation_rate: int = 0
    srtp_encr: bool = True
    srtcp_encr: bool = True
    fec_order: int = 0
    srtp_auth: bool = True
    auth_tag_len: int = 10
    prefix_len: int = 0
    aead_tag_len: int = 16

    @property
    def is_null(self) -> bool:
        """True when this policy gives neither confidentiality nor integrity."""
        no_encr = self.encr_alg == SrtpEncrAlg.NULL or not (self.srtp_encr or self.srtcp_encr)
        no_auth = self.encr_alg != SrtpEncrAlg.AES_GCM and (
            self.auth_alg == SrtpAuthAlg.NULL or not self.srtp_auth
        )
        return no_encr and no_auth

    @property
    def profile_name(self) -> str:
        """libsrtp-style profile name, e.g. ``AES_CM_128_HMAC_SHA1_80``."""
        if self.encr_alg == SrtpEncrAlg.AES_GCM:
            return f"AEAD_AES_{self.encr_key_len * 8}_GCM"
        cipher = {SrtpEncrAlg.NULL: "NULL", SrtpEncrAlg.AES_CM: f"AES_CM_{self.encr_key_len * 8}"}
        name = cipher.get(self.encr_alg, self.encr_alg.name)
        if self.auth_alg == SrtpAuthAlg.NULL or not self.srtp_auth:
            return f"{name}_NULL_AUTH"
        return f"{name}_HMAC_SHA1_{self.auth_tag_len * 8}"

    @property
    def master_key_len(self) -> int:
        return self.encr_key_len

    @property
    def master_salt_len(self) -> int:
        return self.salt_key_len


@fast_init
@dataclass(frozen=True, slots=True, eq=False)
class DataSaEntry:
    """Keys and parameters of one crypto session (one SSRC) — a Data SA entry (RFC 4046 §3.2).

    ``master_key`` and ``master_salt`` are mutable buffers owned by whoever holds the entry;
    :meth:`wipe` overwrites them.
    """

    cs_id: int
    ssrc: int
    roc: int
    policy_no: int
    policy: SrtpPolicy
    master_key: bytearray = field(repr=False)
    master_salt: bytearray = field(repr=False)
    mki: bytes | None = None
    valid_from: int | None = None
    valid_to: int | None = None

    def wipe(self) -> None:
        """Overwrite the key buffers with zeros."""
        wipe(self.master_key, self.master_salt)

    @property
    def wiped(self) -> bool:
        return not any(self.master_key) and not any(self.master_salt)

    def public_view(self) -> dict[str, object]:
        """Non-secret description (for logs, JSON output)."""
        return {
            "cs_id": self.cs_id,
            "ssrc": self.ssrc,
            "roc": self.roc,
            "policy_no": self.policy_no,
            "policy": self.policy.profile_name,
            "mki": None if self.mki is None else self.mki.hex(),
        }


@fast_init
@dataclass(frozen=True, slots=True)
class RegistrationSa:
    """Context and identities of the exchange that established (or updated) a CSB."""

    mode: Mode
    role: Role
    csb_id: int
    prf: PrfFunc
    rand: bytes
    t_initiator: bytes
    t_responder: bytes | None
    initiator_id: str | None
    responder_id: str | None


@fast_init
@dataclass(frozen=True, slots=True, eq=False)
class KeyingResult:
    """Registration SA plus the Data SA entries it produced (one per crypto session)."""

    registration: RegistrationSa
    data_sa: tuple[DataSaEntry, ...]
    rekey: bool = False

    def wipe(self) -> None:
        for entry in self.data_sa:
            entry.wipe()
