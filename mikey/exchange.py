"""MIKEY key exchanges (RFC 3830 §3, RFC 4650, RFC 4738) as small sans-IO state machines.

Each exchange has two roles. The :class:`Initiator` builds the I_MESSAGE (``start``), then
processes the answer (``finish``); the :class:`Responder` processes an I_MESSAGE and builds the
R_MESSAGE or an error message in one call (``respond``). Time (``now``, Unix seconds) and
randomness (``rng(n) -> bytes``) are passed in, so every exchange is reproducible.

States and transitions (anything else is a :class:`StateError` and the machine ends FAILED)::

    Initiator: IDLE --start--> AWAITING --finish(ok)--> DONE
                                        --finish(bad)--> FAILED
    Responder: IDLE --respond(ok)--> DONE
                    --respond(bad)--> FAILED

Processing order on receipt (cheap checks first, nothing unauthenticated enters shared state):
decode -> composition -> timestamp window -> identity / credentials -> authentication
(MAC or signature; every failure is the same AUTH_FAILURE, no oracle) -> replay cache ->
policy -> keys. An exchange that fails leaves no keys behind: every intermediate key buffer is
wiped on every path.
"""

from __future__ import annotations

import datetime
import enum
import functools
import hashlib
import os
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from . import crypto, dh
from ._accel import wipe as _wipe
from ._frozen import fast_init
from .codec import (
    Cert,
    Chash,
    DhPayload,
    Err,
    GeneralExt,
    Header,
    IdPayload,
    IdrPayload,
    Kemac,
    KemacSubPayload,
    KeyData,
    KeySpi,
    Leniency,
    Message,
    Payload,
    Pke,
    Rand,
    SecurityPolicy,
    Sign,
    SrtpIdEntry,
    Timestamp,
    Verification,
    encode_sub_payloads,
    parse_message,
    parse_sub_payloads,
)
from .crypto import SignHash
from .errors import (
    AuthenticationError,
    CertificateError,
    DecodeError,
    IdentityError,
    MikeyError,
    PeerError,
    PolicyError,
    ProtocolError,
    StateError,
    TimestampError,
)
from .identity import (
    IdentityTable,
    bind_certificate,
    certificate_uris,
    matches_any,
    same_identity,
    single_identity,
)
from .keying import DataSaEntry, KeyingResult, Mode, RegistrationSa, Role, SrtpPolicy
from .pki import Credentials, PskStore, TrustStore
from .policy import AES_CM_128_HMAC_SHA1_80, AcceptablePolicies, SpStyle, policy_from_sp
from .policy import sp_from_policy as _sp_from_policy
from .prf import TransportKeys, derive_tek_salt, derive_transport_keys
from .registry import (
    MAC_LENGTH,
    CertType,
    CsIdMapType,
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    HashFunc,
    IdType,
    KeyDataType,
    MacAlg,
    PayloadType,
    PkeCache,
    PrfFunc,
    SignType,
    TsType,
)
from .replay import ReplayGuard, make_timestamp

Rng = Callable[[int], bytes]
_V = TypeVar("_V")

INIT_TYPE = {
    Mode.PSK: DataType.PSK_INIT,
    Mode.PK: DataType.PK_INIT,
    Mode.DH: DataType.DH_INIT,
    Mode.DHHMAC: DataType.DHHMAC_INIT,
    Mode.RSA_R: DataType.RSA_R_INIT,
}
RESP_TYPE = {
    Mode.PSK: DataType.PSK_RESP,
    Mode.PK: DataType.PK_RESP,
    Mode.DH: DataType.DH_RESP,
    Mode.DHHMAC: DataType.DHHMAC_RESP,
    Mode.RSA_R: DataType.RSA_R_RESP,
}
MODE_OF_INIT = {v: k for k, v in INIT_TYPE.items()}
_PRF_FUNCS: dict[int, PrfFunc] = {int(f): f for f in PrfFunc}
MODE_OF_RESP = {v: k for k, v in RESP_TYPE.items()}

RAND_LENGTH = 16
_SIGNED_MODES = frozenset({Mode.PK, Mode.DH, Mode.RSA_R})
_RESPONDER_SIGNS = frozenset({Mode.DH, Mode.RSA_R})  # the R_MESSAGE carries SIGN (and CERT)
ENV_KEY_LENGTH = 20  # not a multiple of 32 (minisip's PRF bug, MIKEY-SPEC §4.1)
MAX_CERTS = 8


def default_rng(n: int) -> bytes:
    """Operating-system randomness; the asyncio shells pass this in."""
    return os.urandom(n)


class _Any(enum.Enum):
    ANY = "any"


#: ``Responder.respond(expected_initiator=...)`` default: any authenticated identity.
ANY_INITIATOR = _Any.ANY


class CsbTable:
    """Crypto session bundles a responder has keyed: owner identity, RAND and last T.

    Bounded (oldest entries dropped first); a rekey for a CSB ID must come from the same peer
    identity and carry a newer timestamp (RFC 3830 §4.5, RFC 4046 §4.2).
    """

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._entries: OrderedDict[int, tuple[str | None, bytes, int]] = OrderedDict()

    def get(self, csb_id: int) -> tuple[str | None, bytes, int] | None:
        return self._entries.get(csb_id)

    def put(self, csb_id: int, peer: str | None, rand: bytes, t: int) -> None:
        self._entries[csb_id] = (peer, rand, t)
        self._entries.move_to_end(csb_id)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def forget(self, csb_id: int) -> None:
        self._entries.pop(csb_id, None)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """One endpoint's MIKEY configuration (safe defaults: real crypto, NULL refused)."""

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
    replay: ReplayGuard = field(default_factory=ReplayGuard, repr=False)
    csbs: CsbTable = field(default_factory=CsbTable, repr=False)
    minisip_compat: bool = False
    #: explicit (SHA-256 fingerprint, identity) pairs for peer certificates without a SAN URI
    cert_identities: IdentityTable = ()

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
        """The explicit opt-in NULL-KEMAC profile GStreamer/ONVIF peers need (RTSPS only)."""
        return replace(
            self,
            mode=Mode.PSK,
            kemac_encr=EncrAlg.NULL,
            kemac_mac=MacAlg.NULL,
            allow_null_kemac=True,
            key_type=KeyDataType.TEK,
            sp_style=SpStyle.GSTREAMER,
            lenient=True,
            accepted_leniencies=frozenset(
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
    """The exchange produced keys; ``answer`` is the R_MESSAGE to send (None when none)."""

    answer: bytes | None
    result: KeyingResult


@fast_init
@dataclass(frozen=True, slots=True)
class ExchangeRefused:
    """The exchange failed; ``answer`` is the MIKEY error message to send, where allowed."""

    answer: bytes | None
    error: MikeyError


class State(enum.Enum):
    IDLE = "idle"
    AWAITING = "awaiting"
    DONE = "done"
    FAILED = "failed"

    # Members are singletons compared by identity: the identity hash, in C, serves the
    # transition table lookups (Enum's own __hash__ is a Python call hashing the name).
    __hash__ = object.__hash__


class Input(enum.Enum):
    START = "start"
    FINISH = "finish"
    RESPOND = "respond"

    __hash__ = object.__hash__  # as State


_INITIATOR_TABLE = {
    (State.IDLE, Input.START): State.AWAITING,
    (State.AWAITING, Input.FINISH): State.DONE,
}
_RESPONDER_TABLE = {(State.IDLE, Input.RESPOND): State.DONE}


def _now_dt(now: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(now, datetime.UTC)


@functools.lru_cache(maxsize=1024)  # IdPayload is immutable; identities repeat
def _id_payload(identity: str) -> IdPayload:
    kind = IdType.URI if ":" in identity else IdType.NAI
    return IdPayload(kind, identity.encode("utf-8"))


# ---------------------------------------------------------------------------------------------
# Shared pieces


class _Exchange:
    """What both roles share: configuration, randomness, state table, key derivation."""

    _table: dict[tuple[State, Input], State] = {}

    def __init__(self, config: ExchangeConfig, rng: Rng = default_rng) -> None:
        self.config = config
        self.rng = rng
        self.state = State.IDLE

    def _advance(self, inp: Input) -> State:
        nxt = self._table.get((self.state, inp))
        if nxt is None:
            prev = self.state
            self.state = State.FAILED
            raise StateError(f"{inp.value} not allowed in state {prev.value}")
        return nxt

    def _policy_for(
        self, sps: dict[int, SecurityPolicy], policy_no: int, lenient: bool
    ) -> SrtpPolicy:
        sp = sps.get(policy_no)
        if sp is None:
            if not sps:
                return SrtpPolicy()  # RFC 3830 §6.10: no SP -> the protocol's defaults
            raise PolicyError(
                f"no SP payload with policy no {policy_no}", error_no=ErrorNo.INVALID_SP
            )
        return _cached_policy_from_sp(sp, lenient)


class _IdentityMemo(Generic[_V]):
    """Results of pure functions of immutable objects, keyed by the objects' identities.

    Hashing a frozen dataclass costs a hash per field; the objects here are long-lived
    (configurations, parsed SP parameter tuples, which the codec memoises) so their ids are the
    cheap key. Each entry keeps its objects alive, so an id cannot be reused by another object
    meanwhile. Bounded: cleared when full (fresh objects, e.g. lenient parses, churn it). Only
    results are stored, so a computation that raises is repeated (and raises) every time.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._entries: dict[tuple[Hashable, ...], tuple[tuple[object, ...], _V]] = {}

    def get(self, key: tuple[Hashable, ...], objs: tuple[object, ...]) -> _V | None:
        """The stored result for ``key`` if it was computed from these very ``objs``."""
        hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] == objs else None

    def put(self, key: tuple[Hashable, ...], objs: tuple[object, ...], value: _V) -> _V:
        if len(self._entries) >= self._size:
            self._entries.clear()
        self._entries[key] = (objs, value)
        return value


# Policies repeat across exchanges: their conversions and checks are memoised (_IdentityMemo).
_POLICIES: _IdentityMemo[SrtpPolicy] = _IdentityMemo()
_SPS: _IdentityMemo[SecurityPolicy] = _IdentityMemo()
_CHECKED: _IdentityMemo[bool] = _IdentityMemo()


def _cached_policy_from_sp(sp: SecurityPolicy, lenient: bool) -> SrtpPolicy:
    key = (id(sp.params), int(sp.prot_type), lenient)
    hit = _POLICIES.get(key, (sp.params,))
    if hit is None:
        hit = _POLICIES.put(key, (sp.params,), policy_from_sp(sp, tag_in_auth_key_len=lenient))
    return hit


def _cached_sp(policy: SrtpPolicy, policy_no: int, style: SpStyle) -> SecurityPolicy:
    """The SP payload offering ``policy``."""
    key = (id(policy), policy_no, style)
    hit = _SPS.get(key, (policy,))
    if hit is None:
        hit = _SPS.put(key, (policy,), _sp_from_policy(policy, policy_no, style=style))
    return hit


def _cached_check(acceptable: AcceptablePolicies, policy: SrtpPolicy) -> None:
    """``acceptable.check(policy)``; only successful checks are remembered."""
    key = (id(acceptable), id(policy))
    if _CHECKED.get(key, (acceptable, policy)) is None:
        acceptable.check(policy)
        _CHECKED.put(key, (acceptable, policy), True)


def _derive_data_sa(
    *,
    tgk: bytearray | None,
    keys: Sequence[KeyData],
    csb_id: int,
    rand: bytes,
    prf: PrfFunc,
    cs_map: Sequence[SrtpIdEntry],
    policies: dict[int, SrtpPolicy],
    minisip_compat: bool,
) -> tuple[DataSaEntry, ...]:
    """Per-crypto-session SRTP master key and salt (RFC 3830 §4.1.3; TEK types used as is)."""
    entries: list[DataSaEntry] = []
    per_cs = len(keys) == len(cs_map) and len(keys) > 1
    for i, cs in enumerate(cs_map, 1):
        policy = policies[cs.policy_no]
        kd = keys[i - 1] if per_cs else (keys[0] if keys else None)
        mki = valid_from = valid_to = None
        if kd is not None:
            mki = kd.mki
            if kd.kv is not None and not isinstance(kd.kv, KeySpi):
                valid_from, valid_to = kd.kv.from_index, kd.kv.to_index
        if kd is not None and kd.key_type in _TEK_TYPES:
            master_key, master_salt = _tek_as_is(kd, policy)
        else:
            if not tgk:
                raise ProtocolError(
                    "no key material for crypto session", error_no=ErrorNo.UNSPECIFIED
                )
            salt_len = policy.salt_key_len
            # TGK+SALT: the salt is transported, only the TEK is derived
            transported = kd is not None and kd.salt is not None and len(kd.salt) == salt_len
            master_key, master_salt = derive_tek_salt(
                tgk,
                i,
                csb_id,
                rand,
                policy.encr_key_len,
                0 if transported else salt_len,
                prf,
                minisip_compat=minisip_compat,
            )
            if transported:
                master_salt = bytearray(kd.salt)  # type: ignore[union-attr, arg-type]
        entries.append(
            DataSaEntry(
                i,
                cs.ssrc,
                cs.roc,
                cs.policy_no,
                policy,
                master_key,
                master_salt,
                mki,
                valid_from,
                valid_to,
            )
        )
    return tuple(entries)


_TEK_TYPES = frozenset((KeyDataType.TEK, KeyDataType.TEK_SALT))


def _tek_as_is(kd: KeyData, policy: SrtpPolicy) -> tuple[bytearray, bytearray]:
    """Master key and salt carried in TEK / TEK+SALT key data (no derivation)."""
    raw = bytearray(kd.key)
    if kd.salt is not None:
        master_key, master_salt = raw, bytearray(kd.salt)
    elif len(raw) == policy.master_key_len + policy.master_salt_len:
        # GStreamer form: TEK = master key || master salt (MIKEY-SPEC §2.12)
        master_key, master_salt = raw[: policy.master_key_len], raw[policy.master_key_len :]
        _wipe(raw)
    else:
        _wipe(raw)
        raise ProtocolError("TEK carries no salt", error_no=ErrorNo.INVALID_SPPAR)
    if len(master_key) != policy.master_key_len or len(master_salt) != policy.master_salt_len:
        _wipe(master_key, master_salt)
        raise PolicyError("TEK length does not match the policy", error_no=ErrorNo.INVALID_SPPAR)
    return master_key, master_salt


def _kemac_mac_alone(
    encr_alg: EncrAlg, encr_data: bytes, mac_alg: MacAlg, auth_key: bytearray
) -> Kemac:
    """A KEMAC whose MAC covers the KEMAC payload alone with NP = 0 (PK and RSA-R, the minisip
    form, MIKEY-SPEC §4.7)."""
    maclen = MAC_LENGTH[mac_alg]
    unsigned = Kemac(encr_alg, encr_data, mac_alg, bytes(maclen))
    covered = unsigned.encode(0)[:-maclen] if maclen else b""
    return Kemac(encr_alg, encr_data, mac_alg, crypto.mac(mac_alg, auth_key, covered))


def _sign_message(
    creds: Credentials, body_without_sig: bytes, sign_type: SignType, hash_alg: SignHash
) -> bytes:
    return crypto.sign(creds.private_key, body_without_sig, sign_type, hash_alg)


def _cert_payloads(creds: Credentials) -> list[Payload]:
    """CERT payloads of our chain, leaf first (RFC 3830 §6.7)."""
    return [Cert(CertType.X509V3_SIGN, der) for der in creds.chain_der()]


def _encode_maced(
    hdr: Header, payloads: Sequence[Payload], alg: MacAlg, key: bytearray, extra: bytes = b""
) -> bytes:
    """Encode with a MAC over everything before it (|| ``extra``) as the message's last field.

    The last payload (KEMAC or V) carries a zero placeholder of the MAC's length (RFC 3830 §5.2).
    """
    maclen = MAC_LENGTH[alg]
    raw = Message(hdr, tuple(payloads)).encode()
    body = raw[: len(raw) - maclen]  # (a NULL MAC is 0 bytes: never slice with -0)
    return body + crypto.mac(alg, key, body + extra)


def _encode_signed(
    hdr: Header,
    payloads: list[Payload],
    creds: Credentials,
    *,
    sign_type: SignType,
    hash_alg: SignHash,
    extra: bytes = b"",
) -> bytes:
    """Encode with a SIGN payload covering everything but the signature value (§4.7)."""
    siglen = creds.private_key.key_size // 8
    placeholder = Message(hdr, (*payloads, Sign(sign_type, bytes(siglen)))).encode()
    body = placeholder[:-siglen]
    sig = _sign_message(creds, body + extra, sign_type, hash_alg)
    if len(sig) != siglen:
        raise MikeyError("unexpected signature length")
    return body + sig


def _verify_signed(
    raw: bytes,
    msg: Message,
    cert: x509.Certificate,
    hash_alg: SignHash,
    extra: bytes = b"",
) -> None:
    sign = msg.payloads[-1] if msg.payloads else None
    if not isinstance(sign, Sign):
        raise AuthenticationError()
    body = raw[: len(raw) - len(msg.trailing) - len(sign.signature)]
    if not isinstance(sign.sign_type, SignType) or sign.sign_type == SignType.ECCSI:
        raise AuthenticationError()
    try:
        crypto.verify_signature(
            _rsa_pub(cert), body + extra, sign.signature, sign.sign_type, hash_alg
        )
    except (AuthenticationError, CertificateError):
        raise AuthenticationError() from None


def _certs_from(msg: Message) -> list[x509.Certificate]:
    return [_load_cert(c.data) for c in msg.find_all(Cert)[:MAX_CERTS]]


# Peers send the same certificates in every message: each distinct DER is parsed once (bounded
# LRU of certificates up to 8 KiB, so at most ~2 MB of unauthenticated input; certificates are
# immutable; a DER that does not parse is never stored).
_CERTS: OrderedDict[bytes, x509.Certificate] = OrderedDict()
_CERTS_MAX = 256
_CERT_MEMO_MAX_BYTES = 8192


def _load_cert(der: bytes) -> x509.Certificate:
    cert = _CERTS.get(der)
    if cert is not None:
        _CERTS.move_to_end(der)
        return cert
    try:
        cert = x509.load_der_x509_certificate(der)
    except (ValueError, x509.InvalidVersion):
        raise CertificateError("CERT payload is not a DER X.509 certificate") from None
    if len(der) > _CERT_MEMO_MAX_BYTES:
        return cert
    _CERTS[der] = cert
    while len(_CERTS) > _CERTS_MAX:
        _CERTS.popitem(last=False)
    return cert


@functools.lru_cache(maxsize=64)  # our own certificate, per hash function the peers use
def _own_cert_hash(func: HashFunc | int, der: bytes) -> bytes:
    return crypto.cert_hash(func, der)


@functools.lru_cache(maxsize=256)
def _chash(cert: x509.Certificate) -> Chash:
    """CHASH of a peer certificate (RFC 3830 §6.8): SHA-256 of its DER."""
    return Chash(HashFunc.SHA_256, crypto.cert_hash(HashFunc.SHA_256, cert.public_bytes(_DER)))


def _same_party(a: str | None, b: str | None) -> bool:
    """Two optional identities name the same party (both absent counts as the same)."""
    if a is None or b is None:
        return a is b
    return same_identity(a, b)


def _identity_of(msg: Message, role: int) -> str | None:
    """IDi (role 1) / IDr (role 2). IDR payloads (RFC 6043) name their role; plain ID payloads
    come in the sender's order: IDi then IDr in an I_MESSAGE, IDr then IDi in a response."""
    return _identities(msg)[role - 1]


def _identities(msg: Message) -> tuple[str | None, str | None]:
    """(IDi, IDr) in one pass over the payloads (see :func:`_identity_of`)."""
    ids: list[IdPayload] = []
    by_role: dict[int, str] = {}
    for p in msg.payloads:
        if isinstance(p, IdPayload):
            ids.append(p)
        elif isinstance(p, IdrPayload) and p.role not in by_role:
            by_role[p.role] = p.text
    texts = [p.text for p in ids[:2]] + [None, None]
    if msg.data_type in MODE_OF_RESP:  # sender's own ID first
        texts[0], texts[1] = texts[1], texts[0]
    return by_role.get(1, texts[0]), by_role.get(2, texts[1])


# ---------------------------------------------------------------------------------------------
# Initiator


class Initiator(_Exchange):
    """The party that starts an exchange (the SIP offerer / RTSP key sender)."""

    _table = _INITIATOR_TABLE

    def __init__(self, config: ExchangeConfig, rng: Rng = default_rng) -> None:
        super().__init__(config, rng)
        self._i_raw = b""
        self._t_i = b""
        self._rand = b""
        self._csb_id = 0
        self._cs_map: tuple[SrtpIdEntry, ...] = ()
        self._policies: dict[int, SrtpPolicy] = {}
        self._tgk: bytearray | None = None
        self._keys: tuple[KeyData, ...] = ()
        self._transport: TransportKeys | None = None
        self._dh_x: int | None = None
        self._dh_i = b""
        self._rekey = False
        self._now = 0.0
        self.result: KeyingResult | None = None

    @property
    def expects_response(self) -> bool:
        """False only for PSK/PK without the V flag (no R_MESSAGE will come)."""
        if self.config.mode in (Mode.PSK, Mode.PK):
            return self.config.verify
        return True

    def start(
        self,
        now: float,
        streams: Sequence[StreamSpec] = (StreamSpec(),),
        *,
        csb_id: int | None = None,
        rekey_of: RegistrationSa | None = None,
    ) -> bytes:
        """Build the I_MESSAGE. ``rekey_of`` keeps the CSB ID of an established bundle."""
        nxt = self._advance(Input.START)
        try:
            out = self._build(now, streams, csb_id, rekey_of)
        except BaseException:
            self.state = State.FAILED
            self._cleanup()
            raise
        self.state = nxt
        if not self.expects_response:
            self.result = self._result(t_r=None, responder_id=self.config.peer_identity)
        return out

    def _build(
        self,
        now: float,
        streams: Sequence[StreamSpec],
        csb_id: int | None,
        rekey_of: RegistrationSa | None,
    ) -> bytes:
        cfg = self.config
        self._now = now
        if not streams or len(streams) > 255:
            raise MikeyError("an offer needs 1..255 crypto sessions")
        if rekey_of is not None:
            csb_id = rekey_of.csb_id
            self._rekey = True
        if csb_id is None:
            csb_id = int.from_bytes(self.rng(4), "big")
        self._csb_id = csb_id
        self._cs_map = tuple(SrtpIdEntry(s.policy_no, s.ssrc, s.roc) for s in streams)
        sps: list[SecurityPolicy] = []
        for no in sorted({s.policy_no for s in streams}):
            if no >= len(cfg.offered):
                raise MikeyError(f"stream refers to policy {no}, only {len(cfg.offered)} offered")
            pol = cfg.offered[no]
            self._policies[no] = pol
            sps.append(_cached_sp(pol, no, cfg.sp_style))
        hdr = Header(
            data_type=INIT_TYPE[cfg.mode],
            csb_id=csb_id,
            cs_map=self._cs_map,
            v=cfg.verify if cfg.mode in (Mode.PSK, Mode.PK) else True,
            prf=cfg.prf,
        )
        t = make_timestamp(now, cfg.ts_type)
        self._t_i = t.value
        self._rand = self.rng(RAND_LENGTH)
        payloads: list[Payload] = [t, Rand(self._rand)]
        ids: list[Payload] = []
        if cfg.send_identities and cfg.identity:
            ids.append(_id_payload(cfg.identity))
            if cfg.peer_identity and cfg.mode in (Mode.PSK, Mode.DHHMAC):
                ids.append(_id_payload(cfg.peer_identity))
        mode = cfg.mode
        if mode == Mode.PSK:
            raw = self._build_psk(hdr, [*payloads, *ids, *sps])
        elif mode == Mode.PK:
            raw = self._build_pk(hdr, payloads, ids, sps)
        elif mode in (Mode.DH, Mode.DHHMAC):
            raw = self._build_dh(hdr, payloads, ids, sps)
        else:
            raw = self._build_rsa_r(hdr, payloads, ids, sps)
        self._i_raw = raw
        return raw

    def _psk(self) -> bytes | bytearray:
        store = self.config.psk
        key = store.lookup(self.config.peer_identity) if store is not None else None
        if not key:
            raise IdentityError("no pre-shared key for the peer")
        return key

    def _new_keys(self) -> tuple[KeyData, ...]:
        cfg = self.config
        kv = KeySpi(self.rng(cfg.mki_length)) if cfg.mki_length else None
        if cfg.key_type == KeyDataType.TGK:
            tgk = bytearray(self.rng(cfg.tgk_length))
            self._tgk = tgk  # the key data shares this buffer; _cleanup wipes it
            return (KeyData(KeyDataType.TGK, tgk, None, kv),)
        if cfg.key_type == KeyDataType.TGK_SALT:
            tgk = bytearray(self.rng(cfg.tgk_length))
            self._tgk = tgk
            salt = bytearray(self.rng(self._policies[min(self._policies)].master_salt_len))
            return (KeyData(KeyDataType.TGK_SALT, tgk, salt, kv),)
        pol = self._policies[min(self._policies)]
        if cfg.key_type == KeyDataType.TEK_SALT:
            return (
                KeyData(
                    KeyDataType.TEK_SALT,
                    bytearray(self.rng(pol.master_key_len)),
                    bytearray(self.rng(pol.master_salt_len)),
                    kv,
                ),
            )
        # TEK carrying master key || salt (the GStreamer/ONVIF form)
        tek = bytearray(self.rng(pol.master_key_len + pol.master_salt_len))
        return (KeyData(KeyDataType.TEK, tek, None, kv),)

    def _kemac_plain(self, with_id: str | None) -> bytearray:
        self._keys = self._new_keys()
        subs: list[KemacSubPayload] = []
        if with_id:
            subs.append(_id_payload(with_id))
        subs.extend(self._keys)
        plain = encode_sub_payloads(subs)
        if self.config.kemac_encr == EncrAlg.AES_KW_128 and len(plain) % 8:
            _wipe(plain)
            raise MikeyError(
                "AES-KW-128 needs key data of a multiple of 8 bytes; adjust key length"
            )
        return plain

    def _psk_transport_keys(self, encr_alg: EncrAlg) -> TransportKeys:
        """encr/salt/auth keys from the PSK for our KEMAC (RFC 3830 §4.1.4); kept for V/ERR."""
        cfg = self.config
        psk = self._psk()
        try:
            tk = derive_transport_keys(
                psk,
                self._csb_id,
                self._rand,
                cfg.prf,
                encr_alg,
                cfg.kemac_mac,
                minisip_compat=cfg.minisip_compat,
            )
        finally:
            if isinstance(psk, bytearray):  # the store's copy (PskStore.lookup)
                _wipe(psk)
        self._transport = tk
        return tk

    def _build_psk(self, hdr: Header, payloads: list[Payload]) -> bytes:
        cfg = self.config
        tk = self._psk_transport_keys(cfg.kemac_encr)
        plain = self._kemac_plain(None)
        try:
            enc = crypto.encrypt_kemac(cfg.kemac_encr, tk, self._csb_id, self._t_i, plain)
        finally:
            _wipe(plain)
        kemac = Kemac(cfg.kemac_encr, enc, cfg.kemac_mac, bytes(MAC_LENGTH[cfg.kemac_mac]))
        return _encode_maced(hdr, (*payloads, kemac), cfg.kemac_mac, tk.auth_key)

    def _signed_head(
        self, payloads: list[Payload], ids: list[Payload], creds: Credentials
    ) -> list[Payload]:
        """T, RAND, IDi, our certificate chain and IDr: how a signed I_MESSAGE starts."""
        head = [*payloads, *ids, *_cert_payloads(creds)]
        if self.config.peer_identity and ids:
            # plain ID payloads are read in order (IDi, then IDr): an IDr alone would be IDi
            head.append(_id_payload(self.config.peer_identity))
        return head

    def _build_pk(
        self, hdr: Header, payloads: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        cfg = self.config
        creds = cfg.credentials
        peer = cfg.peer_certificate
        if creds is None or peer is None:
            raise CertificateError(
                "public-key mode needs own credentials and the peer's certificate"
            )
        if cfg.trust is not None:
            cfg.trust.verify_chain(peer, (), _now_dt(self._now), "encrypt")
        if cfg.peer_identity is not None:
            # the envelope key goes to the certificate's holder: it must be the peer we call
            bind_certificate(peer, None, cfg.peer_identity, cfg.cert_identities, field="IDr")
        env_key = bytearray(self.rng(ENV_KEY_LENGTH))
        try:
            tk = derive_transport_keys(
                env_key, self._csb_id, self._rand, cfg.prf, cfg.kemac_encr, cfg.kemac_mac
            )
            self._transport = tk
            plain = self._kemac_plain(cfg.identity)
            try:
                enc = crypto.encrypt_kemac(cfg.kemac_encr, tk, self._csb_id, self._t_i, plain)
            finally:
                _wipe(plain)
            kemac = _kemac_mac_alone(cfg.kemac_encr, enc, cfg.kemac_mac, tk.auth_key)
            pke = Pke(PkeCache.NO_CACHE, crypto.rsa_encrypt_envelope(_rsa_pub(peer), env_key))
        finally:
            _wipe(env_key)
        body = [*self._signed_head(payloads, ids, creds), *sps, kemac, _chash(peer), pke]
        return _encode_signed(hdr, body, creds, sign_type=cfg.sign_type, hash_alg=cfg.sign_hash)

    def _build_dh(
        self, hdr: Header, payloads: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        cfg = self.config
        group = cfg.dh_group
        self._dh_x = dh.generate_private(group, self.rng)
        self._dh_i = dh.public_value(group, self._dh_x)
        dhi = DhPayload(group, self._dh_i)
        if cfg.mode == Mode.DH:
            creds = cfg.credentials
            if creds is None:
                raise CertificateError("DH mode needs own credentials")
            body = [*self._signed_head(payloads, ids, creds), *sps, dhi]
            return _encode_signed(hdr, body, creds, sign_type=cfg.sign_type, hash_alg=cfg.sign_hash)
        # DHHMAC (RFC 4650): KEMAC with no keys, MAC over the whole message
        tk = self._psk_transport_keys(EncrAlg.NULL)
        if cfg.kemac_mac == MacAlg.NULL:
            raise MikeyError("DHHMAC needs a MAC algorithm")
        kemac = Kemac(EncrAlg.NULL, b"", cfg.kemac_mac, bytes(MAC_LENGTH[cfg.kemac_mac]))
        return _encode_maced(hdr, (*payloads, *ids, *sps, dhi, kemac), cfg.kemac_mac, tk.auth_key)

    def _build_rsa_r(
        self, hdr: Header, payloads: list[Payload], ids: list[Payload], sps: list[SecurityPolicy]
    ) -> bytes:
        cfg = self.config
        creds = cfg.credentials
        if creds is None:
            raise CertificateError("RSA-R mode needs own credentials")
        body = [*self._signed_head(payloads, ids, creds), *sps]
        return _encode_signed(hdr, body, creds, sign_type=cfg.sign_type, hash_alg=cfg.sign_hash)

    # -- processing the answer ------------------------------------------------------------

    def finish(self, data: bytes | None, now: float) -> KeyingResult:
        """Process the R_MESSAGE (or ``None`` when no response is expected) and return keys.

        Raises :class:`PeerError` for a MIKEY error message, another :class:`MikeyError` for
        anything unacceptable; in both cases no keys survive.
        """
        nxt = self._advance(Input.FINISH)
        try:
            if data is None:
                if self.expects_response or self.result is None:
                    raise ProtocolError("a response message was expected")
                result = self.result
            else:
                if not self.expects_response:
                    raise ProtocolError("no response was expected in this mode")
                result = self._process(bytes(data), now)
        except BaseException:
            self.state = State.FAILED
            if self.result is not None:
                self.result.wipe()
                self.result = None
            self._cleanup()
            raise
        self.state = nxt
        self.result = result
        self._cleanup()
        return result

    def abort(self) -> None:
        """Give up: wipe everything this initiator holds."""
        self.state = State.FAILED
        if self.result is not None:
            self.result.wipe()
            self.result = None
        self._cleanup()

    def _cleanup(self) -> None:
        _wipe(self._tgk)
        _wipe_keys(self._keys)
        if self._transport is not None:
            self._transport.wipe()
        self._dh_x = None

    def _process(self, raw: bytes, now: float) -> KeyingResult:
        cfg = self.config
        try:
            msg = parse_message(raw, lenient=cfg.lenient)
        except DecodeError:
            raise
        _check_leniencies(msg, cfg, rekey=False)
        if msg.csb_id != self._csb_id:
            raise ProtocolError("response for another CSB ID", error_no=ErrorNo.UNSPECIFIED)
        if msg.data_type == DataType.ERROR:
            self._raise_peer_error(raw, msg)
        if msg.data_type != RESP_TYPE[cfg.mode]:
            raise ProtocolError(
                f"unexpected data type {msg.data_type}", error_no=ErrorNo.INVALID_DT
            )
        t = msg.find(Timestamp)
        if t is None:
            raise ProtocolError("response without T", error_no=ErrorNo.INVALID_TS)
        mode = cfg.mode
        claimed = _identity_of(msg, 2)
        expected = cfg.peer_identity
        if mode in (Mode.PSK, Mode.PK):
            self._verify_v(raw, msg)
        elif mode == Mode.DHHMAC:
            self._check_dh_echo(msg)
            kem = msg.payloads[-1] if msg.payloads else None
            if not isinstance(kem, Kemac) or self._transport is None:
                raise AuthenticationError()
            maclen = len(kem.mac)
            if kem.mac_alg != cfg.kemac_mac:
                raise AuthenticationError()
            crypto.verify_mac(
                cfg.kemac_mac,
                self._transport.auth_key,
                raw[: len(raw) - len(msg.trailing) - maclen],
                kem.mac,
            )
        responder_id: str | None
        if mode in _RESPONDER_SIGNS:
            cert = self._peer_cert(msg, now)
            if mode == Mode.RSA_R:
                extra = (claimed or "").encode() + t.value
                _verify_signed(raw, msg, cert, cfg.sign_hash, extra)
            else:
                _verify_signed(raw, msg, cert, cfg.sign_hash)
                self._check_dh_echo(msg)
            # RFC 3830 §4.3: IDr (or, without one, the expected peer) must be the certificate's
            responder_id = bind_certificate(
                cert, claimed, expected, cfg.cert_identities, field="IDr"
            )
        else:
            if claimed and expected and not same_identity(claimed, expected):
                raise IdentityError(f"IDr {claimed} is not the expected peer {expected}")
            responder_id = claimed or expected
        cfg.replay.check(
            t, peer=responder_id or "", csb_id=msg.csb_id, digest=_digest(raw), now=now
        )
        cs_map = self._merge_map(msg)
        if mode in (Mode.DH, Mode.DHHMAC):
            dhr = self._dh_r(msg)
            assert self._dh_x is not None
            y = dh.validate_peer_value(cfg.dh_group, dhr.value)
            self._tgk = dh.shared_secret(cfg.dh_group, self._dh_x, y)
            self._keys = ()
        elif mode == Mode.RSA_R:
            self._rsa_r_keys(msg, t)
        self._cs_map = cs_map
        return self._result(t_r=t.value, responder_id=responder_id)

    def _raise_peer_error(self, raw: bytes, msg: Message) -> None:
        errs = tuple(
            ErrorNo(e.error_no) if isinstance(e.error_no, ErrorNo) else ErrorNo.UNSPECIFIED
            for e in msg.find_all(Err)
        )
        authenticated = False
        v = msg.find(Verification)
        if v is not None and self._transport is not None and len(self._transport.auth_key):
            try:
                self._verify_v(raw, msg)
                authenticated = True
            except AuthenticationError:
                authenticated = False
        names = ", ".join(e.name for e in errs) or "no ERR payload"
        raise PeerError(f"peer refused the exchange: {names}", errs, authenticated=authenticated)

    def _verify_v(self, raw: bytes, msg: Message) -> None:
        v = msg.payloads[-1] if msg.payloads else None
        if (
            not isinstance(v, Verification)
            or self._transport is None
            or v.auth_alg != self._v_alg()
        ):
            raise AuthenticationError()
        end = len(raw) - len(msg.trailing)
        data = raw[: end - len(v.data)] + self._t_i  # RFC 3830 §5.2: V covers R_MESSAGE || T_i
        crypto.verify_mac(v.auth_alg, self._transport.auth_key, data, v.data)

    def _v_alg(self) -> MacAlg:
        """V (and authenticated ERR) use the MAC algorithm the transport auth_key was made for."""
        return MacAlg.HMAC_SHA_1_160 if self.config.mode == Mode.DH else self.config.kemac_mac

    def _peer_cert(self, msg: Message, now: float) -> x509.Certificate:
        cfg = self.config
        certs = _certs_from(msg)
        if certs:
            if cfg.trust is None:
                raise CertificateError("no trust store to verify the peer's certificate")
            cfg.trust.verify_chain(certs[0], certs[1:], _now_dt(now), "sign")
            return certs[0]
        if cfg.peer_certificate is not None:
            return cfg.peer_certificate
        raise CertificateError("the peer sent no certificate")

    def _dh_r(self, msg: Message) -> DhPayload:
        dhs = msg.find_all(DhPayload)
        if len(dhs) != 2:
            raise ProtocolError("response needs DHr and DHi", error_no=ErrorNo.INVALID_DH)
        if dhs[0].group != self.config.dh_group:
            raise ProtocolError("DH group changed", error_no=ErrorNo.INVALID_DH)
        return dhs[0]

    def _check_dh_echo(self, msg: Message) -> None:
        dhs = msg.find_all(DhPayload)
        if len(dhs) != 2 or dhs[1].value != self._dh_i:
            raise AuthenticationError()

    def _merge_map(self, msg: Message) -> tuple[SrtpIdEntry, ...]:
        theirs = msg.header.srtp_entries
        if len(theirs) != len(self._cs_map) or msg.header.cs_map_type != CsIdMapType.SRTP_ID:
            raise ProtocolError("response changes the CS ID map", error_no=ErrorNo.UNSPECIFIED)
        out = []
        for mine, resp in zip(self._cs_map, theirs, strict=True):
            if mine.policy_no != resp.policy_no or (mine.ssrc and mine.ssrc != resp.ssrc):
                raise ProtocolError("response changes the CS ID map", error_no=ErrorNo.UNSPECIFIED)
            out.append(SrtpIdEntry(mine.policy_no, resp.ssrc, mine.roc))
        return tuple(out)

    def _rsa_r_keys(self, msg: Message, t: Timestamp) -> None:
        cfg = self.config
        creds = cfg.credentials
        kem = msg.find(Kemac)
        pke = msg.find(Pke)
        if creds is None or kem is None or pke is None:
            raise ProtocolError("RSA-R response needs KEMAC and PKE", error_no=ErrorNo.UNSPECIFIED)
        env_key = crypto.rsa_decrypt_envelope(creds.private_key, pke.data, None, self.rng)
        try:
            keys, _ = _open_kemac(
                kem,
                env_key,
                csb_id=self._csb_id,
                rand=self._rand,
                ts_value=t.value,
                prf=_msg_prf(msg),
                cfg=cfg,
                first=PayloadType.ID,
                mac_scope_kemac_only=True,
                msg=msg,
                raw=None,
            )
        finally:
            _wipe(env_key)
        self._take_keys(keys)

    def _take_keys(self, keys: tuple[KeyData, ...]) -> None:
        self._keys = keys
        tgks = [k for k in keys if k.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT)]
        if tgks:
            self._tgk = bytearray(tgks[0].key)

    def _result(self, *, t_r: bytes | None, responder_id: str | None) -> KeyingResult:
        data_sa = _derive_data_sa(
            tgk=self._tgk,
            keys=self._keys,
            csb_id=self._csb_id,
            rand=self._rand,
            prf=self.config.prf,
            cs_map=self._cs_map,
            policies=self._policies,
            minisip_compat=self.config.minisip_compat,
        )
        reg = RegistrationSa(
            mode=self.config.mode,
            role=Role.INITIATOR,
            csb_id=self._csb_id,
            prf=self.config.prf,
            rand=self._rand,
            t_initiator=self._t_i,
            t_responder=t_r,
            initiator_id=self.config.identity,
            responder_id=responder_id,
        )
        return KeyingResult(reg, data_sa, rekey=self._rekey)


_DER = Encoding.DER


def _rsa_pub(cert: x509.Certificate) -> rsa.RSAPublicKey:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise CertificateError("certificate key is not RSA")
    return key


def _digest(raw: bytes) -> bytes:
    """The message's fingerprint in the replay cache: BLAKE2b-128 (cheaper to start than
    OpenSSL's SHA-256 for a message this short; 128 bits as before)."""
    return hashlib.blake2b(raw, digest_size=16).digest()


def _parse_initiator_message(raw: bytes, cfg: ExchangeConfig) -> Message:
    """Parse an I_MESSAGE; a strict parser still lets a CSB update omit RAND (RFC 3830 §4.5).

    Whether the update really is one (a known CSB ID) is decided later by _check_leniencies.
    """
    try:
        return parse_message(raw, lenient=cfg.lenient)
    except DecodeError:
        if cfg.lenient:
            raise
        retry = parse_message(raw, lenient=True)
        if set(retry.leniencies) != {Leniency.PSK_WITHOUT_RAND}:
            raise
        return retry


def _check_leniencies(msg: Message, cfg: ExchangeConfig, *, rekey: bool) -> None:
    for q in msg.leniencies:
        if q == Leniency.PSK_WITHOUT_RAND and rekey:
            continue
        if q not in cfg.accepted_leniencies:
            raise DecodeError(f"peer quirk {q.value} not accepted by policy")


def _msg_prf(msg: Message) -> PrfFunc:
    prf = _PRF_FUNCS.get(msg.header.prf)
    if prf is None:
        raise ProtocolError("PRF not supported", error_no=ErrorNo.INVALID_PRF)
    return prf


def _open_kemac(
    kem: Kemac,
    k: bytes | bytearray,
    *,
    csb_id: int,
    rand: bytes,
    ts_value: bytes,
    prf: PrfFunc,
    cfg: ExchangeConfig,
    first: int,
    mac_scope_kemac_only: bool,
    msg: Message,
    raw: bytes | None,
    keep: _RespCtx | None = None,
) -> tuple[tuple[KeyData, ...], str | None]:
    """Verify the KEMAC MAC, then decrypt and parse its sub-payloads. Any failure: AUTH_FAILURE."""
    if not isinstance(kem.encr_alg, EncrAlg) or not isinstance(kem.mac_alg, MacAlg):
        raise ProtocolError("unsupported KEMAC algorithm", error_no=ErrorNo.INVALID_EA)
    if kem.encr_alg == EncrAlg.NULL and not cfg.allow_null_kemac:
        raise PolicyError("NULL KEMAC encryption refused by policy", error_no=ErrorNo.INVALID_EA)
    if kem.mac_alg == MacAlg.NULL and not cfg.allow_null_kemac:
        raise PolicyError("NULL KEMAC MAC refused by policy", error_no=ErrorNo.INVALID_MAC)
    tk = derive_transport_keys(
        k,
        csb_id,
        rand,
        prf,
        kem.encr_alg,
        kem.mac_alg,
        minisip_compat=cfg.minisip_compat,
    )
    try:
        maclen = len(kem.mac)
        if kem.mac_alg != MacAlg.NULL:
            if mac_scope_kemac_only:
                covered = kem.encode(0)[:-maclen]
            else:
                assert raw is not None
                covered = raw[: len(raw) - len(msg.trailing) - maclen]
            crypto.verify_mac(kem.mac_alg, tk.auth_key, covered, kem.mac)
        try:
            plain = crypto.decrypt_kemac(kem.encr_alg, tk, csb_id, ts_value, kem.encr_data)
        except MikeyError:
            raise AuthenticationError() from None
        try:
            subs, _ = parse_sub_payloads(plain, first=first, lenient=cfg.lenient)
        except DecodeError:
            if first == PayloadType.ID:
                try:
                    subs, _ = parse_sub_payloads(plain, lenient=cfg.lenient)
                except DecodeError:
                    raise AuthenticationError() from None
            else:
                raise AuthenticationError() from None
        finally:
            _wipe(plain)
    finally:
        if keep is None:
            tk.wipe()
        else:
            keep.transport = tk  # reused for V / ERR; the context wipes it
    ident = next((s.text for s in subs if isinstance(s, IdPayload)), None)
    keys = tuple(s for s in subs if isinstance(s, KeyData))
    try:
        if not keys:
            raise ProtocolError("KEMAC carries no key data", error_no=ErrorNo.UNSPECIFIED)
        for kd in keys:
            if kd.key_type not in _KEY_TYPES:
                raise ProtocolError("unsupported key data type", error_no=ErrorNo.UNSPECIFIED)
            if not kd.key:
                raise ProtocolError("empty key data", error_no=ErrorNo.UNSPECIFIED)
    except BaseException:
        _wipe_keys(keys)
        raise
    return keys, ident


_KEY_TYPES = frozenset(
    (KeyDataType.TGK, KeyDataType.TGK_SALT, KeyDataType.TEK, KeyDataType.TEK_SALT)
)


def _wipe_keys(keys: Sequence[KeyData]) -> None:
    for kd in keys:
        kd.wipe()


# ---------------------------------------------------------------------------------------------
# Responder


class Responder(_Exchange):
    """The party that answers (the SIP answerer / RTSP key receiver)."""

    _table = _RESPONDER_TABLE

    def __init__(self, config: ExchangeConfig, rng: Rng = default_rng) -> None:
        super().__init__(config, rng)
        self.result: KeyingResult | None = None

    def _own_identities(self) -> tuple[str, ...]:
        """Who this responder is: its configured identity, else its certificate's SAN URIs."""
        cfg = self.config
        if cfg.identity:
            return (cfg.identity,)
        if cfg.credentials is not None:
            return certificate_uris(cfg.credentials.certificate)
        return ()

    def respond(
        self,
        data: bytes,
        now: float,
        *,
        local_ssrcs: Sequence[int] = (),
        expected_csb: int | None = None,
        expected_initiator: str | _Any | None = ANY_INITIATOR,
    ) -> ExchangeCompleted | ExchangeRefused:
        """Process an I_MESSAGE; return the keys and the R_MESSAGE, or the refusal.

        ``local_ssrcs`` fill the crypto sessions whose SSRC the initiator left at 0 (in order).
        ``expected_csb`` restricts the message to a rekey of that CSB (RFC 3830 §4.5), and
        ``expected_initiator`` to the identity that owns it (checked once the message is
        authenticated, before anything is remembered): a signalling session keyed by one peer
        cannot be rekeyed by another authenticated peer.
        """
        nxt = self._advance(Input.RESPOND)
        ctx = _RespCtx()
        ctx.expected_initiator = expected_initiator
        try:
            result, answer = self._respond(bytes(data), now, tuple(local_ssrcs), expected_csb, ctx)
        except MikeyError as exc:
            self.state = State.FAILED
            answer = self._error_message(exc, ctx, now)
            ctx.wipe()
            return ExchangeRefused(answer, exc)
        except BaseException:
            self.state = State.FAILED
            ctx.wipe()
            raise
        ctx.wipe()
        self.state = nxt
        self.result = result
        return ExchangeCompleted(answer, result)

    def _respond(
        self,
        raw: bytes,
        now: float,
        local_ssrcs: tuple[int, ...],
        expected_csb: int | None,
        ctx: _RespCtx,
    ) -> tuple[KeyingResult, bytes | None]:
        cfg = self.config
        if len(raw) < 10:
            raise DecodeError("message too short for a MIKEY header", 0)
        msg = _parse_initiator_message(raw, cfg)
        ctx.msg = msg
        mode = MODE_OF_INIT.get(msg.data_type)  # type: ignore[call-overload]
        if mode is None:
            if msg.data_type in (DataType.ERROR,) or isinstance(msg.data_type, DataType):
                raise ProtocolError(
                    f"not an initiator message: {msg.data_type}",
                    error_no=ErrorNo.INVALID_DT,
                )
            raise ProtocolError("unknown data type", error_no=ErrorNo.INVALID_DT)
        if mode != cfg.mode:
            raise ProtocolError(
                f"{mode.value} exchange not configured here",
                error_no=ErrorNo.UNSUPPORTED_MESSAGE_TYPE
                if mode == Mode.RSA_R
                else ErrorNo.INVALID_DT,
            )
        prf = _PRF_FUNCS.get(msg.header.prf)
        if prf is None or prf not in cfg.accepted_prfs:
            raise ProtocolError("PRF not supported", error_no=ErrorNo.INVALID_PRF)
        entries = msg.header.srtp_entries
        if msg.header.cs_map_type != CsIdMapType.SRTP_ID or not entries:
            raise ProtocolError("only SRTP-ID CS maps are supported", error_no=ErrorNo.UNSPECIFIED)
        known = cfg.csbs.get(msg.csb_id)
        rekey = known is not None
        if expected_csb is not None and msg.csb_id != expected_csb:
            raise ProtocolError(
                "message for another crypto session bundle", error_no=ErrorNo.UNSPECIFIED
            )
        _check_leniencies(msg, cfg, rekey=rekey)
        t = msg.find(Timestamp)
        if t is None:
            raise ProtocolError("I_MESSAGE without T", error_no=ErrorNo.INVALID_TS)
        ctx.t_i = t.value
        rand_p = msg.find(Rand)
        if rand_p is not None:
            rand = rand_p.value
        elif known is not None:
            rand = known[1]  # CSB update without RAND keeps the initial one (RFC 3830 §4.5)
        elif (
            Leniency.PSK_WITHOUT_RAND in cfg.accepted_leniencies
            and msg.data_type == DataType.PSK_INIT
        ):
            rand = b""
        else:
            raise ProtocolError("I_MESSAGE without RAND", error_no=ErrorNo.UNSPECIFIED)
        if rand_p is not None and len(rand) < RAND_LENGTH and not cfg.allow_null_kemac:
            raise ProtocolError("RAND shorter than 128 bits", error_no=ErrorNo.UNSPECIFIED)
        ctx.rand = rand
        cfg.replay.check_window(t, now)  # cheap, before any cryptography (RFC 3830 §5.4)
        claimed, peer_says_responder = _identities(msg)
        if peer_says_responder is not None:
            own = self._own_identities()
            if own and not matches_any(peer_says_responder, own):
                raise IdentityError(f"IDr {peer_says_responder} names another responder")
        expected = ctx.expected_initiator
        signalled = expected if isinstance(expected, str) else None

        keys: tuple[KeyData, ...] = ()
        tgk: bytearray | None = None
        cert: x509.Certificate | None = None
        initiator_id: str | None
        if mode in (Mode.PSK, Mode.DHHMAC):
            # Without IDi the signalling names the initiator: its PSK is the one looked up.
            initiator_id = claimed if claimed is not None else signalled
            keys = ctx.keys = self._check_psk_message(msg, raw, initiator_id, rand, prf, t, ctx)
        else:
            cert = self._initiator_cert(msg, now)
            _verify_signed(raw, msg, cert, cfg.sign_hash)
            kem_id: str | None = None
            if mode == Mode.PK:
                keys, kem_id = self._open_pk(msg, raw, t, rand, ctx)
                ctx.keys = keys
                if kem_id is not None and claimed is not None and kem_id != claimed:
                    raise AuthenticationError()
            # RFC 3830 §4.3: IDi (or the signalled initiator) must be the certificate's
            initiator_id = bind_certificate(
                cert,
                claimed if claimed is not None else kem_id,
                signalled,
                cfg.cert_identities,
                field="IDi",
            )
        if expected is not ANY_INITIATOR and not _same_party(expected, initiator_id):
            if known is not None or signalled is None:
                raise IdentityError("rekey of a crypto session bundle by another identity")
            raise IdentityError(f"IDi {initiator_id} is not the signalled initiator {signalled}")
        if known is not None:
            owner, _, last_t = known
            if not _same_party(owner, initiator_id):
                raise IdentityError("rekey of a crypto session bundle by another identity")
            if int.from_bytes(t.value, "big") <= last_t:
                raise TimestampError("rekey not newer than the last message for this CSB")
        # Authenticated: now the replay cache may remember it.
        cfg.replay.check(
            t, peer=initiator_id or "", csb_id=msg.csb_id, digest=_digest(raw), now=now
        )
        ctx.authenticated = True

        sps = {sp.policy_no: sp for sp in msg.find_all(SecurityPolicy)}
        lenient_tag = Leniency.SRTP_TAG_IN_AUTH_KEY_LEN in msg.leniencies
        policies: dict[int, SrtpPolicy] = {}
        for cs in entries:
            if cs.policy_no not in policies:
                pol = self._policy_for(sps, cs.policy_no, lenient_tag)
                _cached_check(cfg.acceptable, pol)
                policies[cs.policy_no] = pol
        cs_map = list(entries)
        fill = list(local_ssrcs)
        for i, cs in enumerate(cs_map):
            if cs.ssrc == 0 and fill:
                cs_map[i] = SrtpIdEntry(cs.policy_no, fill.pop(0), cs.roc)

        answer: bytes | None = None
        t_r: Timestamp | None = None
        if mode in (Mode.PSK, Mode.PK):
            if msg.header.v:  # only V needs an R_MESSAGE (RFC 3830 §3.1, §3.2)
                t_r, r_hdr, ids = self._answer_head(msg, cs_map, now)
                answer = self._v_message(r_hdr, [t_r, *ids], ctx)
        else:
            t_r, r_hdr, ids = self._answer_head(msg, cs_map, now)
            if mode in (Mode.DH, Mode.DHHMAC):
                answer, tgk = self._answer_dh(msg, ctx, r_hdr, t_r, ids)
            else:  # RSA-R (RFC 4738): the responder supplies the TGK under the initiator's key
                assert cert is not None
                answer, tgk, keys = self._answer_rsa_r(msg, ctx, cert, rand, prf, r_hdr, t_r, ids)

        if tgk is None:
            tgk = _tgk_from(keys)  # a copy of the transported TGK: wiped below
        try:
            data_sa = _derive_data_sa(
                tgk=tgk,
                keys=keys,
                csb_id=msg.csb_id,
                rand=rand,
                prf=prf,
                cs_map=cs_map,
                policies=policies,
                minisip_compat=cfg.minisip_compat,
            )
        finally:
            _wipe(tgk)
        cfg.csbs.put(msg.csb_id, initiator_id, rand, int.from_bytes(t.value, "big"))
        reg = RegistrationSa(
            mode=mode,
            role=Role.RESPONDER,
            csb_id=msg.csb_id,
            prf=prf,
            rand=rand,
            t_initiator=t.value,
            t_responder=t_r.value if answer is not None and t_r is not None else None,
            initiator_id=initiator_id,
            responder_id=cfg.identity,
        )
        return KeyingResult(reg, data_sa, rekey=rekey), answer

    def _check_psk_message(  # noqa: PLR0917 (one call site)
        self,
        msg: Message,
        raw: bytes,
        initiator_id: str | None,
        rand: bytes,
        prf: PrfFunc,
        t: Timestamp,
        ctx: _RespCtx,
    ) -> tuple[KeyData, ...]:
        """Authenticate a PSK or DHHMAC I_MESSAGE with the initiator's PSK; the PSK keys."""
        cfg = self.config
        mode = cfg.mode
        kem = msg.payloads[-1] if msg.payloads else None
        psk = cfg.psk.lookup(initiator_id) if cfg.psk is not None else None
        try:
            if not psk and mode == Mode.PSK and cfg.allow_null_kemac and _null_kemac(msg):
                # NULL/NULL KEMAC (opt-in, RTSPS peers): no key protects it, so none is needed.
                psk = bytearray(b"\0")
            if not psk:
                raise IdentityError("unknown initiator identity")
            if mode == Mode.PSK:
                if not isinstance(kem, Kemac):
                    raise ProtocolError(
                        "PSK I_MESSAGE must end with KEMAC", error_no=ErrorNo.UNSPECIFIED
                    )
                keys, _ = _open_kemac(
                    kem,
                    psk,
                    csb_id=msg.csb_id,
                    rand=rand,
                    ts_value=t.value,
                    prf=prf,
                    cfg=cfg,
                    first=PayloadType.KEY_DATA,
                    mac_scope_kemac_only=False,
                    msg=msg,
                    raw=raw,
                    keep=ctx,
                )
                ctx.v_alg = MacAlg(kem.mac_alg)
                return keys
            if (
                not isinstance(kem, Kemac)
                or kem.mac_alg == MacAlg.NULL
                or not isinstance(kem.mac_alg, MacAlg)
            ):
                raise AuthenticationError()
            tk = derive_transport_keys(
                psk,
                msg.csb_id,
                rand,
                prf,
                EncrAlg.NULL,
                kem.mac_alg,
                minisip_compat=cfg.minisip_compat,
            )
            ctx.transport = tk
            ctx.v_alg = kem.mac_alg
            crypto.verify_mac(
                kem.mac_alg,
                tk.auth_key,
                raw[: len(raw) - len(msg.trailing) - len(kem.mac)],
                kem.mac,
            )
            return ()
        finally:
            if isinstance(psk, bytearray):  # the store hands out a copy for us to wipe
                _wipe(psk)

    def _answer_dh(
        self, msg: Message, ctx: _RespCtx, r_hdr: Header, t_r: Timestamp, ids: list[Payload]
    ) -> tuple[bytes, bytearray]:
        """DH-signed / DHHMAC: our DH value, the shared TGK and the signed or MACed answer."""
        cfg = self.config
        mode = cfg.mode
        dhi = msg.find(DhPayload)
        if dhi is None or len(msg.find_all(DhPayload)) != 1:
            raise ProtocolError("I_MESSAGE needs one DH payload", error_no=ErrorNo.INVALID_DH)
        if dhi.group not in cfg.accepted_dh_groups:
            raise ProtocolError("DH group not supported", error_no=ErrorNo.INVALID_DH)
        y = dh.validate_peer_value(dhi.group, dhi.value)
        x = dh.generate_private(dhi.group, self.rng)
        dhr = DhPayload(dhi.group, dh.public_value(dhi.group, x))
        tgk = dh.shared_secret(dhi.group, x, y)
        del x
        try:
            if mode == Mode.DH:
                creds = self._own_creds()
                certs = _cert_payloads(creds)
                answer = _encode_signed(
                    r_hdr,
                    [t_r, *ids, *certs, dhr, dhi],
                    creds,
                    sign_type=cfg.sign_type,
                    hash_alg=cfg.sign_hash,
                )
            else:
                assert ctx.transport is not None
                mac_alg = ctx.v_alg  # the I_MESSAGE's KEMAC MAC, checked in _check_psk_message
                kemac = Kemac(EncrAlg.NULL, b"", mac_alg, bytes(MAC_LENGTH[mac_alg]))
                answer = _encode_maced(
                    r_hdr, (t_r, *ids, dhr, dhi, kemac), mac_alg, ctx.transport.auth_key
                )
        except BaseException:
            _wipe(tgk)
            raise
        return answer, tgk

    def _answer_rsa_r(  # noqa: PLR0917 (one call site)
        self,
        msg: Message,
        ctx: _RespCtx,
        cert: x509.Certificate,
        rand: bytes,
        prf: PrfFunc,
        r_hdr: Header,
        t_r: Timestamp,
        ids: list[Payload],
    ) -> tuple[bytes, bytearray, tuple[KeyData, ...]]:
        """RSA-R (RFC 4738): a fresh TGK in a KEMAC under an envelope key for the initiator."""
        cfg = self.config
        creds = self._own_creds()
        tgk = bytearray(self.rng(cfg.tgk_length))
        env_key = bytearray(self.rng(ENV_KEY_LENGTH))
        try:
            tk = derive_transport_keys(
                env_key,
                msg.csb_id,
                rand,
                prf,
                cfg.kemac_encr,
                cfg.kemac_mac,
            )
            ctx.transport = tk
            ctx.v_alg = cfg.kemac_mac
            kv = KeySpi(self.rng(cfg.mki_length)) if cfg.mki_length else None
            keys = (KeyData(KeyDataType.TGK, tgk, None, kv),)  # shares tgk: wiped with it
            subs: list[KemacSubPayload] = []
            if cfg.identity:
                subs.append(_id_payload(cfg.identity))
            subs.extend(keys)
            plain = encode_sub_payloads(subs)
            try:
                enc = crypto.encrypt_kemac(cfg.kemac_encr, tk, msg.csb_id, t_r.value, plain)
            finally:
                _wipe(plain)
            kemac = _kemac_mac_alone(cfg.kemac_encr, enc, cfg.kemac_mac, tk.auth_key)
            pke = Pke(PkeCache.NO_CACHE, crypto.rsa_encrypt_envelope(_rsa_pub(cert), env_key))
            certs = _cert_payloads(creds)
            extra = (cfg.identity or "").encode() + t_r.value
            answer = _encode_signed(
                r_hdr,
                [t_r, *ids, *certs, kemac, pke],
                creds,
                sign_type=cfg.sign_type,
                hash_alg=cfg.sign_hash,
                extra=extra,
            )
        except BaseException:
            _wipe(tgk)
            raise
        finally:
            _wipe(env_key)
        return answer, tgk, keys

    def _answer_head(
        self, msg: Message, cs_map: list[SrtpIdEntry], now: float
    ) -> tuple[Timestamp, Header, list[Payload]]:
        """T, header and our ID payload for the R_MESSAGE."""
        cfg = self.config
        t_r = make_timestamp(now, cfg.ts_type)
        r_hdr = Header(
            data_type=RESP_TYPE[cfg.mode],
            csb_id=msg.csb_id,
            cs_map=tuple(cs_map),
            v=False,
            prf=msg.header.prf,
        )
        ids: list[Payload] = (
            [_id_payload(cfg.identity)] if cfg.identity and cfg.send_identities else []
        )
        return t_r, r_hdr, ids

    def _own_creds(self) -> Credentials:
        if self.config.credentials is None:
            raise CertificateError("this mode needs own credentials")
        return self.config.credentials

    def _initiator_cert(self, msg: Message, now: float) -> x509.Certificate:
        cfg = self.config
        certs = _certs_from(msg)
        if certs:
            if cfg.trust is None:
                raise CertificateError("no trust store to verify the initiator's certificate")
            cfg.trust.verify_chain(certs[0], certs[1:], _now_dt(now), "sign")
            return certs[0]
        if cfg.peer_certificate is not None:
            return cfg.peer_certificate
        raise CertificateError("the initiator sent no certificate")

    def _open_pk(
        self, msg: Message, raw: bytes, t: Timestamp, rand: bytes, ctx: _RespCtx
    ) -> tuple[tuple[KeyData, ...], str | None]:
        cfg = self.config
        creds = self._own_creds()
        kem = msg.find(Kemac)
        pke = msg.find(Pke)
        if kem is None or pke is None:
            raise ProtocolError("PK I_MESSAGE needs KEMAC and PKE", error_no=ErrorNo.UNSPECIFIED)
        chash = msg.find(Chash)
        if chash is not None:
            mine = _own_cert_hash(chash.hash_func, creds.chain_der()[0])
            if mine != chash.digest:
                raise CertificateError("envelope encrypted to another certificate")
        env_key = crypto.rsa_decrypt_envelope(creds.private_key, pke.data, None, self.rng)
        try:
            result = _open_kemac(
                kem,
                env_key,
                csb_id=msg.csb_id,
                rand=rand,
                ts_value=t.value,
                prf=_msg_prf(msg),
                cfg=cfg,
                first=PayloadType.ID,
                mac_scope_kemac_only=True,
                msg=msg,
                raw=raw,
                keep=ctx,  # its auth_key (made for the KEMAC's MAC algorithm) also serves V
            )
            if isinstance(kem.mac_alg, MacAlg):
                ctx.v_alg = kem.mac_alg
        finally:
            _wipe(env_key)
        return result

    def _v_message(self, hdr: Header, payloads: list[Payload], ctx: _RespCtx) -> bytes:
        assert ctx.transport is not None
        alg = ctx.v_alg  # the KEMAC's MAC algorithm: the auth_key was derived for it
        v = Verification(alg, bytes(MAC_LENGTH[alg]))
        # RFC 3830 §5.2: V covers the R_MESSAGE and the initiator's T
        return _encode_maced(hdr, (*payloads, v), alg, ctx.transport.auth_key, ctx.t_i)

    def _error_message(self, exc: MikeyError, ctx: _RespCtx, now: float) -> bytes | None:
        """The ERR message (RFC 3830 §5.1.2), authenticated with V or SIGN when possible."""
        msg = ctx.msg
        if msg is None or isinstance(exc, DecodeError):
            return None  # nothing to bind an error message to
        mode = MODE_OF_INIT.get(msg.data_type)  # type: ignore[call-overload]
        # Echo the CS ID map only when it is one we can encode strictly; a reserved map type
        # (accepted by lenient parsing) must not leak into our own answer.
        known_map = isinstance(msg.header.cs_map_type, CsIdMapType) and not (
            msg.header.raw_map_info or msg.header.map_padding
        )
        hdr = Header(
            data_type=DataType.ERROR,
            csb_id=msg.csb_id,
            cs_map=msg.header.cs_map if known_map else (),
            cs_map_type=msg.header.cs_map_type if known_map else CsIdMapType.SRTP_ID,
            v=False,
            prf=msg.header.prf if isinstance(msg.header.prf, PrfFunc) else PrfFunc.MIKEY_1,
        )
        payloads: list[Payload] = [make_timestamp(now, self.config.ts_type), Err(exc.error_no)]
        try:
            if (
                ctx.authenticated
                and ctx.transport is not None
                and ctx.t_i
                and mode in (Mode.PSK, Mode.PK, Mode.DHHMAC, Mode.RSA_R)
            ):
                return self._v_message(hdr, payloads, ctx)
            if ctx.authenticated and mode in (Mode.DH, Mode.RSA_R) and self.config.credentials:
                return _encode_signed(
                    hdr,
                    payloads,
                    self.config.credentials,
                    sign_type=self.config.sign_type,
                    hash_alg=self.config.sign_hash,
                )
            return Message(hdr, tuple(payloads)).encode()
        except MikeyError:
            return None


def _null_kemac(msg: Message) -> bool:
    kem = msg.payloads[-1] if msg.payloads else None
    return isinstance(kem, Kemac) and kem.encr_alg == EncrAlg.NULL and kem.mac_alg == MacAlg.NULL


def _tgk_from(keys: tuple[KeyData, ...]) -> bytearray | None:
    for k in keys:
        if k.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT):
            return bytearray(k.key)
    return None


class _RespCtx:
    """Scratch state of one responder call, wiped on every path."""

    __slots__ = (
        "authenticated",
        "expected_initiator",
        "keys",
        "msg",
        "rand",
        "t_i",
        "transport",
        "v_alg",
    )

    def __init__(self) -> None:
        self.msg: Message | None = None
        self.keys: tuple[KeyData, ...] = ()  # decrypted key data, wiped with the context
        self.t_i = b""
        self.rand = b""
        self.transport: TransportKeys | None = None
        self.v_alg = MacAlg.HMAC_SHA_1_160
        self.authenticated = False
        self.expected_initiator: str | _Any | None = ANY_INITIATOR

    def wipe(self) -> None:
        if self.transport is not None:
            self.transport.wipe()
            self.transport = None
        _wipe_keys(self.keys)


def sp_from_policy(
    policy: SrtpPolicy, policy_no: int, style: SpStyle = SpStyle.FULL
) -> SecurityPolicy:
    """Re-export for callers building offers by hand."""
    return _sp_from_policy(policy, policy_no, style=style)


def offer_streams(ssrcs: Sequence[int], policy_no: int = 0) -> tuple[StreamSpec, ...]:
    """Stream specs for a list of SSRCs (ROC 0, one policy)."""
    return tuple(StreamSpec(ssrc, 0, policy_no) for s in [0] for ssrc in ssrcs)


__all__ = [
    "CsbTable",
    "ExchangeCompleted",
    "ExchangeConfig",
    "ExchangeRefused",
    "GeneralExt",
    "Initiator",
    "Responder",
    "State",
    "StreamSpec",
    "default_rng",
    "offer_streams",
]
