"""What an exchange is configured with and what it produces: immutable values, no state."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from cryptography import x509

from .._frozen import fast_init
from ..codec import Leniency
from ..crypto import SignHash
from ..errors import IdentityError, MikeyError
from ..identity import IdentityTable, certificate_uris, matches_any, single_identity
from ..keying import KeyingResult, Mode, SrtpPolicy
from ..pki import Credentials, PskStore, TrustStore
from ..policy import AES_CM_128_HMAC_SHA1_80, AcceptablePolicies, SpStyle
from ..registry import DhGroup, EncrAlg, KeyDataType, MacAlg, PrfFunc, SignType, TsType

__all__ = [
    "ANY_INITIATOR",
    "ExchangeCompleted",
    "ExchangeConfig",
    "ExchangeRefused",
    "Rng",
    "StreamSpec",
]

#: randomness: ``rng(n)`` returns ``n`` bytes (the shells pass the OS's; tests a seeded one)
Rng = Callable[[int], bytes]

_SIGNED_MODES = frozenset({Mode.PK, Mode.DH, Mode.RSA_R})


class _Any(enum.Enum):
    ANY = "any"


#: ``Responder.respond(expected_initiator=...)`` default: any authenticated identity.
ANY_INITIATOR = _Any.ANY
AnyInitiator = _Any


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """One endpoint's MIKEY configuration (safe defaults: real crypto, NULL refused).

    Immutable: the state an endpoint accumulates (replay cache, crypto session bundles) lives in
    its :class:`~mikey.exchange.Endpoint`.
    """

    mode: Mode = Mode.PSK
    identity: str | None = None
    peer_identity: str | None = None
    psk: PskStore | None = field(default=None, repr=False)
    credentials: Credentials | None = field(default=None, repr=False)
    trust: TrustStore | None = None
    peer_certificate: x509.Certificate | None = None
    offered: tuple[SrtpPolicy, ...] = (AES_CM_128_HMAC_SHA1_80,)
    acceptable: AcceptablePolicies = field(default_factory=AcceptablePolicies)
    kemac_encr: EncrAlg = EncrAlg.AES_CM_128
    kemac_mac: MacAlg = MacAlg.HMAC_SHA_1_160
    allow_null_kemac: bool = False
    prf: PrfFunc = PrfFunc.MIKEY_1
    accepted_prfs: frozenset[PrfFunc] = frozenset(PrfFunc)
    dh_group: DhGroup = DhGroup.OAKLEY_5
    accepted_dh_groups: frozenset[DhGroup] = frozenset(DhGroup)
    sign_type: SignType = SignType.RSA_PKCS1_1_5
    sign_hash: SignHash = SignHash.SHA_256
    key_type: KeyDataType = KeyDataType.TGK
    tgk_length: int = 16
    mki_length: int = 0
    verify: bool = False
    ts_type: TsType = TsType.NTP_UTC
    sp_style: SpStyle = SpStyle.FULL
    lenient: bool = False
    accepted_leniencies: frozenset[Leniency] = frozenset()
    send_identities: bool = True
    minisip_compat: bool = False
    #: explicit (SHA-256 fingerprint, identity) pairs for peer certificates without a SAN URI
    cert_identities: IdentityTable = ()
    #: a PK initiator sends CHASH (RFC 3830 §3.2: RECOMMENDED, not required); minisip's CHASH
    #: parser is a stub that aborts on it (docs/PROFILES.md)
    send_chash: bool = True
    #: an NTP-UTC T that is not a plausible NTP time is read as a Windows FILETIME (Genetec /
    #: Hanwha ONVIF clients, docs/WIRE.md §Windows FILETIME); needs Leniency.NON_NTP_TIMESTAMP
    filetime_timestamps: bool = False
    #: the 3GPP code points (TS 33.180 ID roles, general extension types) parse strictly
    threegpp_code_points: bool = False

    def __post_init__(self) -> None:
        creds = self.credentials
        if creds is None or self.mode not in _SIGNED_MODES:
            return
        if self.identity is None:
            # a party given no identity is the one its certificate names (when it names one)
            object.__setattr__(self, "identity", single_identity(creds.certificate))
            return
        uris = certificate_uris(creds.certificate)
        if uris and not matches_any(self.identity, uris):
            raise IdentityError(
                f"own identity {self.identity} is not in the own certificate's SAN URIs "
                f"({', '.join(uris)})"
            )

    def gstreamer_profile(self) -> ExchangeConfig:
        """The explicit opt-in NULL-KEMAC profile GStreamer/ONVIF peers need (RTSPS only).

        Idempotent, and it keeps what a profile added before it (``apply_profile(..., "onvif")``:
        its further leniencies and the TEK + salt split), so the RTSP glue may apply it again.
        """
        tek_salt = self.key_type == KeyDataType.TEK_SALT
        return replace(
            self,
            mode=Mode.PSK,
            kemac_encr=EncrAlg.NULL,
            kemac_mac=MacAlg.NULL,
            allow_null_kemac=True,
            key_type=KeyDataType.TEK_SALT if tek_salt else KeyDataType.TEK,
            sp_style=SpStyle.GSTREAMER,
            lenient=True,
            accepted_leniencies=self.accepted_leniencies
            | frozenset(
                {
                    Leniency.TEK_WITH_SALT,
                    Leniency.SRTP_TAG_IN_AUTH_KEY_LEN,
                    Leniency.TRAILING_BYTES,
                    Leniency.PSK_WITHOUT_RAND,
                }
            ),
        )


@fast_init
@dataclass(frozen=True, slots=True)
class StreamSpec:
    """One crypto session the initiator offers: SSRC (0 = the responder fills it), ROC, policy."""

    ssrc: int = 0
    roc: int = 0
    policy_no: int = 0


@fast_init
@dataclass(frozen=True, slots=True)
class ExchangeCompleted:
    """The exchange produced keys; ``answer`` is the R_MESSAGE to send (None when none).

    A responder's result is *staged*: hand it to :meth:`Endpoint.commit` once the session it
    keys is established, or to :meth:`Endpoint.discard` when that fails.
    """

    answer: bytes | None
    result: KeyingResult


@fast_init
@dataclass(frozen=True, slots=True)
class ExchangeRefused:
    """The exchange failed; ``answer`` is the MIKEY error message to send, where allowed."""

    answer: bytes | None
    error: MikeyError
