"""SRTP security policy: SP payloads <-> resolved :class:`SrtpPolicy`, and local acceptance.

:func:`policy_from_sp` reads an SP payload (RFC 3830 §6.10, §6.10.1; RFC 4771; RFC 7714 §14)
and fills absent parameters with the RFC 3711 §8.2 defaults, so the result is always complete.
The defaults depend on the algorithms: AES-GCM has a 12-byte salt, a 16-byte AEAD tag and no
separate authentication (auth alg NULL, auth key and tag length 0); NULL authentication has no
key and no tag. Values that cannot describe any SRTP context are refused there with
``INVALID_SPPAR``. Results are *canonical*: for AES-GCM the auth fields are always
``NULL/0/0/on``, whatever the peer wrote, so equal offers compare equal.

:func:`sp_from_policy` writes a policy in one of three :class:`SpStyle`\\ s (every parameter,
GStreamer's form, only the non-defaults). ``policy_from_sp(sp_from_policy(p, n)) == p`` holds for
every canonical policy in the FULL and MINIMAL styles.

:class:`AcceptablePolicies` is the local decision: the responder checks each SP that the CS map
references, and everything the data path (libsrtp) cannot honour is refused here with
``INVALID_SPPAR`` rather than discovered when the SRTP context is created.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from .codec import SecurityPolicy, SpParam
from .errors import PolicyError
from .keying import SrtpPolicy
from .registry import ErrorNo, ProtType, SrtpAuthAlg, SrtpEncrAlg, SrtpParam, SrtpPrf

__all__ = [
    "AEAD_AES_128_GCM",
    "AEAD_AES_256_GCM",
    "AES_256_CM_HMAC_SHA1_32",
    "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_128_HMAC_SHA1_32",
    "AES_CM_128_HMAC_SHA1_80",
    "NAMED_POLICIES",
    "AcceptablePolicies",
    "SpStyle",
    "canonical",
    "policy_by_name",
    "policy_from_sp",
    "sp_from_policy",
]

AES_CM_128_HMAC_SHA1_80 = SrtpPolicy()
AES_CM_128_HMAC_SHA1_32 = SrtpPolicy(auth_tag_len=4)
AES_256_CM_HMAC_SHA1_80 = SrtpPolicy(encr_key_len=32)
AES_256_CM_HMAC_SHA1_32 = SrtpPolicy(encr_key_len=32, auth_tag_len=4)
AEAD_AES_128_GCM = SrtpPolicy(
    encr_alg=SrtpEncrAlg.AES_GCM,
    encr_key_len=16,
    auth_alg=SrtpAuthAlg.NULL,
    auth_key_len=0,
    salt_key_len=12,
    auth_tag_len=0,
    aead_tag_len=16,
)
AEAD_AES_256_GCM = replace(AEAD_AES_128_GCM, encr_key_len=32)

NAMED_POLICIES: Mapping[str, SrtpPolicy] = {
    "AES_CM_128_HMAC_SHA1_80": AES_CM_128_HMAC_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": AES_CM_128_HMAC_SHA1_32,
    "AES_256_CM_HMAC_SHA1_80": AES_256_CM_HMAC_SHA1_80,
    "AES_256_CM_HMAC_SHA1_32": AES_256_CM_HMAC_SHA1_32,
    "AEAD_AES_128_GCM": AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": AEAD_AES_256_GCM,
}

# Other spellings: libsrtp's SRTP_* protection profile names (RFC 5764 §4.1.2 / RFC 7714 §14.2),
# the SDES crypto-suite names (RFC 4568 §6.2, RFC 6188) and GStreamer cipher/auth pairs.
_ALIASES: Mapping[str, str] = {
    "SRTP_AES128_CM_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AES128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "SRTP_AES128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "SRTP_AES256_CM_SHA1_80": "AES_256_CM_HMAC_SHA1_80",
    "SRTP_AES256_CM_SHA1_32": "AES_256_CM_HMAC_SHA1_32",
    "SRTP_AEAD_AES_128_GCM": "AEAD_AES_128_GCM",
    "SRTP_AEAD_AES_256_GCM": "AEAD_AES_256_GCM",
    "AES_CM_256_HMAC_SHA1_80": "AES_256_CM_HMAC_SHA1_80",
    "AES_CM_256_HMAC_SHA1_32": "AES_256_CM_HMAC_SHA1_32",
    "AES_128_CM_HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "AES_128_CM_HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "AES_128_ICM/HMAC_SHA1_80": "AES_CM_128_HMAC_SHA1_80",
    "AES_128_ICM/HMAC_SHA1_32": "AES_CM_128_HMAC_SHA1_32",
    "AES_256_ICM/HMAC_SHA1_80": "AES_256_CM_HMAC_SHA1_80",
    "AES_256_ICM/HMAC_SHA1_32": "AES_256_CM_HMAC_SHA1_32",
    "AES_128_GCM/AES_128_GCM": "AEAD_AES_128_GCM",
    "AES_256_GCM/AES_256_GCM": "AEAD_AES_256_GCM",
}


def policy_by_name(name: str) -> SrtpPolicy:
    """The standard policy called ``name`` (libsrtp, SDES or GStreamer ``cipher/auth`` name)."""
    key = name.strip().upper().replace("-", "_")
    key = _ALIASES.get(key, key)
    try:
        return NAMED_POLICIES[key]
    except KeyError:
        raise PolicyError(f"unknown SRTP policy name {name!r}") from None


class SpStyle(enum.Enum):
    """How :func:`sp_from_policy` writes the parameters."""

    FULL = "full"  # every RFC 3830 parameter (live555 / gortsplib form)
    GSTREAMER = "gstreamer"  # gst_mikey_message_new_from_caps: 0,1,2,3 (= tag length!),7,8,10
    MINIMAL = "minimal"  # only parameters that differ from the defaults


_P = SrtpParam
_ONE_BYTE = frozenset(int(p) for p in SrtpParam) - {int(_P.KEY_DERIVATION_RATE)}
_KEY_LENGTHS = {SrtpEncrAlg.AES_CM: (16, 24, 32), SrtpEncrAlg.AES_GCM: (16, 32)}
_SALT_LENGTHS = {SrtpEncrAlg.AES_CM: 14, SrtpEncrAlg.AES_GCM: 12}
_AEAD_TAGS = (8, 12, 16)  # RFC 5116 §5.1 / RFC 7714 §14: GCM tags SRTP may name
_HMAC_SHA1_LEN = 20


def _bad(message: str) -> PolicyError:
    return PolicyError(message, error_no=ErrorNo.INVALID_SPPAR)


def _defaults(encr: SrtpEncrAlg, auth: SrtpAuthAlg) -> dict[int, int]:
    """RFC 3711 §8.2 defaults for absent parameters, given the two algorithms."""
    no_auth = auth == SrtpAuthAlg.NULL
    return {
        _P.ENCR_KEY_LEN: 16,
        _P.AUTH_KEY_LEN: 0 if no_auth else _HMAC_SHA1_LEN,
        _P.SALT_KEY_LEN: _SALT_LENGTHS.get(encr, 14),
        _P.SRTP_PRF: SrtpPrf.AES_CM,
        _P.KEY_DERIVATION_RATE: 0,
        _P.SRTP_ENCR: 1,
        _P.SRTCP_ENCR: 1,
        _P.FEC_ORDER: 0,
        _P.SRTP_AUTH: 1,
        _P.AUTH_TAG_LEN: 0 if no_auth else 10,
        _P.PREFIX_LEN: 0,
        _P.AEAD_AUTH_TAG_LEN: 16,
    }


def _default_auth(encr: SrtpEncrAlg) -> SrtpAuthAlg:
    # RFC 7714 §14: AEAD transforms carry no separate authentication.
    return SrtpAuthAlg.NULL if encr == SrtpEncrAlg.AES_GCM else SrtpAuthAlg.HMAC_SHA_1


def canonical(policy: SrtpPolicy) -> SrtpPolicy:
    """``policy`` with the fields AES-GCM ignores set to their canonical values."""
    if policy.encr_alg == SrtpEncrAlg.AES_GCM:
        return replace(
            policy, auth_alg=SrtpAuthAlg.NULL, auth_key_len=0, auth_tag_len=0, srtp_auth=True
        )
    return policy


def _enum_value(cls: type[enum.IntEnum], value: int, what: str) -> int:
    try:
        return int(cls(value))
    except ValueError:
        raise _bad(f"unknown {what} {value}") from None


def _read_params(sp: SecurityPolicy) -> dict[int, int]:
    values: dict[int, int] = {}
    for p in sp.params:
        if p.type not in _ONE_BYTE and p.type != _P.KEY_DERIVATION_RATE:
            raise _bad(f"unknown SRTP policy parameter type {p.type}")  # RFC 3830 §6.10.1
        if p.type in values:
            raise _bad(f"SRTP policy parameter {p.type} repeated")
        if p.type == _P.KEY_DERIVATION_RATE:
            if not 1 <= len(p.value) <= 4:
                raise _bad("key derivation rate must be 1..4 bytes")
        elif len(p.value) != 1:
            raise _bad(f"SRTP policy parameter {p.type} must be 1 byte, not {len(p.value)}")
        values[p.type] = p.int_value
    return values


def _pair(values: dict[int, int], common: int, srtp: int, srtcp: int, what: str) -> int | None:
    """RFC 4771 §5: params 14-19 override 2/3/11 for SRTP and SRTCP separately."""
    base = values.get(common)
    a = values.get(srtp, base)
    b = values.get(srtcp, base)
    if a != b:
        raise _bad(f"different SRTP and SRTCP {what} cannot be represented")
    return a


def policy_from_sp(sp: SecurityPolicy, *, tag_in_auth_key_len: bool = False) -> SrtpPolicy:
    """Resolve an SRTP SP payload into a complete, canonical :class:`SrtpPolicy`.

    ``tag_in_auth_key_len`` reads GStreamer's form: param 3 = 4 or 10 without param 11 is the
    tag length, and the auth key length is the HMAC-SHA1 default of 20 bytes.
    """
    if sp.prot_type != ProtType.SRTP:  # RFC 3830 §6.10: only SRTP is keyed here
        raise PolicyError(f"security protocol {int(sp.prot_type)} is not SRTP")
    v = _read_params(sp)
    encr = SrtpEncrAlg(
        _enum_value(SrtpEncrAlg, v.get(_P.ENCR_ALG, SrtpEncrAlg.AES_CM), "encryption algorithm")
    )
    gcm = encr == SrtpEncrAlg.AES_GCM

    # RFC 4771: RCCm applies to SRTP only, SRTCP keeps HMAC-SHA1 (param 15 or 2).
    srtp_alg = v.get(_P.SRTP_AUTH_ALG, v.get(_P.AUTH_ALG))
    srtcp_alg = v.get(_P.SRTCP_AUTH_ALG, v.get(_P.AUTH_ALG))
    for raw in (srtp_alg, srtcp_alg):
        if raw is not None:
            _enum_value(SrtpAuthAlg, raw, "authentication algorithm")
    rccm = (SrtpAuthAlg.RCCM1, SrtpAuthAlg.RCCM2, SrtpAuthAlg.RCCM3)
    if srtp_alg in rccm and srtcp_alg in (None, SrtpAuthAlg.HMAC_SHA_1):
        auth_raw: int | None = srtp_alg
    elif srtp_alg != srtcp_alg:
        raise _bad("different SRTP and SRTCP authentication algorithms cannot be represented")
    else:
        auth_raw = srtp_alg
    auth = _default_auth(encr) if auth_raw is None else SrtpAuthAlg(auth_raw)
    if _P.ROC_TX_RATE in v and v[_P.ROC_TX_RATE] == 0:  # RFC 4771 §3: R >= 1
        raise _bad("ROC transmission rate 0")

    d = _defaults(encr, auth)
    key_len = _pair(v, _P.AUTH_KEY_LEN, _P.SRTP_AUTH_KEY_LEN, _P.SRTCP_AUTH_KEY_LEN, "auth keys")
    tag_len = _pair(v, _P.AUTH_TAG_LEN, _P.SRTP_AUTH_TAG_LEN, _P.SRTCP_AUTH_TAG_LEN, "tags")
    if (
        tag_in_auth_key_len
        and key_len in (4, 10)
        and tag_len is None
        and _P.SRTP_AUTH_KEY_LEN not in v
        and _P.SRTCP_AUTH_KEY_LEN not in v
    ):
        tag_len, key_len = key_len, _HMAC_SHA1_LEN  # GStreamer; docs/WIRE.md §SP parameter quirks
    auth_key_len = d[_P.AUTH_KEY_LEN] if key_len is None else key_len
    auth_tag_len = d[_P.AUTH_TAG_LEN] if tag_len is None else tag_len

    def get(p: SrtpParam) -> int:
        return v.get(p, d[p])

    def flag(p: SrtpParam) -> bool:
        value = get(p)
        if value not in (0, 1):
            raise _bad(f"{p.name} must be 0 or 1, not {value}")
        return value == 1

    encr_key_len = get(_P.ENCR_KEY_LEN)
    salt_len = get(_P.SALT_KEY_LEN)
    prf = SrtpPrf(_enum_value(SrtpPrf, get(_P.SRTP_PRF), "SRTP PRF"))
    kdr = get(_P.KEY_DERIVATION_RATE)
    aead_tag = get(_P.AEAD_AUTH_TAG_LEN)
    srtp_encr, srtcp_encr, srtp_auth = flag(_P.SRTP_ENCR), flag(_P.SRTCP_ENCR), flag(_P.SRTP_AUTH)

    if encr in _KEY_LENGTHS and encr_key_len not in _KEY_LENGTHS[encr]:
        raise _bad(f"{encr.name} session key length {encr_key_len}")
    if encr in _SALT_LENGTHS and salt_len != _SALT_LENGTHS[encr]:
        raise _bad(f"{encr.name} session salt length {salt_len}")
    if kdr and (kdr & (kdr - 1) or kdr > 1 << 24):  # RFC 3711 §4.3.1: 0 or 2^0..2^24
        raise _bad(f"key derivation rate {kdr}")
    if aead_tag not in _AEAD_TAGS:
        raise _bad(f"AEAD tag length {aead_tag}")
    if gcm:
        # RFC 7714 §14: the AEAD tag authenticates; there is no separate auth key or tag.
        if auth != SrtpAuthAlg.NULL:
            raise _bad("AES-GCM with a separate authentication algorithm")
        if not srtp_auth:
            raise _bad("AES-GCM cannot switch authentication off")
        return canonical(
            SrtpPolicy(
                encr_alg=encr,
                encr_key_len=encr_key_len,
                salt_key_len=salt_len,
                prf=prf,
                key_derivation_rate=kdr,
                srtp_encr=srtp_encr,
                srtcp_encr=srtcp_encr,
                fec_order=get(_P.FEC_ORDER),
                prefix_len=get(_P.PREFIX_LEN),
                aead_tag_len=aead_tag,
            )
        )
    if auth == SrtpAuthAlg.HMAC_SHA_1:
        if auth_tag_len > _HMAC_SHA1_LEN:
            raise _bad(f"HMAC-SHA1 tag length {auth_tag_len}")
        if srtp_auth and auth_tag_len == 0:
            raise _bad("authentication on with a tag length of 0")
        if auth_key_len == 0:
            raise _bad("HMAC-SHA1 with an empty key")
    return SrtpPolicy(
        encr_alg=encr,
        encr_key_len=encr_key_len,
        auth_alg=auth,
        auth_key_len=auth_key_len,
        salt_key_len=salt_len,
        prf=prf,
        key_derivation_rate=kdr,
        srtp_encr=srtp_encr,
        srtcp_encr=srtcp_encr,
        fec_order=get(_P.FEC_ORDER),
        srtp_auth=srtp_auth,
        auth_tag_len=auth_tag_len,
        prefix_len=get(_P.PREFIX_LEN),
        aead_tag_len=aead_tag,
    )


def _values(policy: SrtpPolicy) -> dict[int, int]:
    return {
        _P.ENCR_ALG: int(policy.encr_alg),
        _P.ENCR_KEY_LEN: policy.encr_key_len,
        _P.AUTH_ALG: int(policy.auth_alg),
        _P.AUTH_KEY_LEN: policy.auth_key_len,
        _P.SALT_KEY_LEN: policy.salt_key_len,
        _P.SRTP_PRF: int(policy.prf),
        _P.KEY_DERIVATION_RATE: policy.key_derivation_rate,
        _P.SRTP_ENCR: int(policy.srtp_encr),
        _P.SRTCP_ENCR: int(policy.srtcp_encr),
        _P.FEC_ORDER: policy.fec_order,
        _P.SRTP_AUTH: int(policy.srtp_auth),
        _P.AUTH_TAG_LEN: policy.auth_tag_len,
        _P.PREFIX_LEN: policy.prefix_len,
        _P.AEAD_AUTH_TAG_LEN: policy.aead_tag_len,
    }


_FULL_ORDER = (0, 1, 2, 3, 4, 5, 7, 8, 10, 11)
_GST_ORDER = (0, 1, 2, 3, 7, 8, 10)


def _param(ptype: int, value: int) -> SpParam:
    if ptype == _P.KEY_DERIVATION_RATE:
        if not 0 <= value < 1 << 32:
            raise PolicyError(f"key derivation rate {value} does not fit in 4 bytes")
        return SpParam(int(ptype), value.to_bytes(max(1, (value.bit_length() + 7) // 8), "big"))
    if not 0 <= value <= 0xFF:
        raise PolicyError(f"SRTP policy parameter {ptype} value {value} does not fit in a byte")
    return SpParam(int(ptype), bytes([value]))


def sp_from_policy(
    policy: SrtpPolicy, policy_no: int, *, style: SpStyle = SpStyle.FULL
) -> SecurityPolicy:
    """The SRTP SP payload (RFC 3830 §6.10) numbered ``policy_no`` that describes ``policy``."""
    policy = canonical(policy)
    values = _values(policy)
    d = _defaults(policy.encr_alg, policy.auth_alg)
    if style is SpStyle.GSTREAMER:
        if policy.encr_alg == SrtpEncrAlg.AES_GCM or policy.auth_alg == SrtpAuthAlg.NULL:
            tag = 0
        else:
            tag = policy.auth_tag_len
        values[_P.AUTH_KEY_LEN] = tag  # GStreamer writes the tag length into param 3
        order: tuple[int, ...] = _GST_ORDER
    elif style is SpStyle.FULL:
        extra = tuple(p for p in (6, 9, 12) if values[p] != d[p])
        if policy.encr_alg == SrtpEncrAlg.AES_GCM or values[20] != d[20]:
            extra += (20,)
        order = tuple(sorted(_FULL_ORDER + extra))
    else:
        order = tuple(
            p
            for p in sorted(values)
            if (p == _P.ENCR_ALG and policy.encr_alg != SrtpEncrAlg.AES_CM)
            or (p == _P.AUTH_ALG and policy.auth_alg != _default_auth(policy.encr_alg))
            or (p in d and values[p] != d[p])
        )
    sp = SecurityPolicy(policy_no, ProtType.SRTP, tuple(_param(p, values[p]) for p in order))
    if style is SpStyle.GSTREAMER and policy_from_sp(sp, tag_in_auth_key_len=True) != policy:
        # Only what GStreamer can read back unchanged (docs/WIRE.md §SP parameter quirks).
        raise PolicyError(f"{policy.profile_name} cannot be written in GStreamer's form")
    return sp


_DEFAULT_ACCEPTABLE = frozenset(NAMED_POLICIES.values())


@dataclass(frozen=True, slots=True)
class AcceptablePolicies:
    """The SRTP policies a party accepts from its peer."""

    policies: frozenset[SrtpPolicy] = field(default=_DEFAULT_ACCEPTABLE)
    allow_null_srtp: bool = False

    def check(self, policy: SrtpPolicy) -> None:
        """Raise :class:`PolicyError` unless ``policy`` is acceptable and usable by libsrtp."""
        p = canonical(policy)
        self._check_supported(p)
        flags_off = not (p.srtp_encr and p.srtcp_encr)
        if p.encr_alg != SrtpEncrAlg.AES_GCM:
            flags_off = flags_off or not p.srtp_auth
        null_alg = p.encr_alg == SrtpEncrAlg.NULL or (
            p.encr_alg != SrtpEncrAlg.AES_GCM and p.auth_alg == SrtpAuthAlg.NULL
        )
        if not self.allow_null_srtp:
            if flags_off:
                raise _bad(f"{p.profile_name}: SRTP/SRTCP encryption or authentication off")
            if null_alg or p.is_null:
                raise PolicyError(f"{p.profile_name}: unprotected SRTP is not allowed")
        elif flags_off or null_alg or p.is_null:
            return  # RFC 3711 §3.4 NULL protection, explicitly allowed
        if p not in {canonical(q) for q in self.policies}:
            raise PolicyError(f"{p.profile_name} is not an acceptable SRTP policy")

    @staticmethod
    def _check_supported(p: SrtpPolicy) -> None:
        # What libsrtp 2.x can run (srtp_crypto_policy_set_*): refuse now, not at context setup.
        if p.key_derivation_rate != 0:
            raise _bad("key derivation rate other than 0 is not supported")
        if p.fec_order != 0:
            raise _bad("FEC order other than FEC-SRTP is not supported")
        if p.prefix_len != 0:
            raise _bad("SRTP prefix length other than 0 is not supported")
        if p.prf != SrtpPrf.AES_CM:
            raise _bad(f"SRTP PRF {p.prf.name} is not supported")
        if p.encr_alg not in (SrtpEncrAlg.NULL, SrtpEncrAlg.AES_CM, SrtpEncrAlg.AES_GCM):
            raise _bad(f"encryption algorithm {p.encr_alg.name} is not supported")
        if p.encr_alg == SrtpEncrAlg.NULL and (p.encr_key_len, p.salt_key_len) != (16, 14):
            raise _bad("NULL cipher needs a 16-byte master key and 14-byte salt")
        if p.encr_alg == SrtpEncrAlg.AES_GCM:
            if p.aead_tag_len != 16:
                raise _bad(f"AES-GCM tag length {p.aead_tag_len} is not supported")
            return
        if p.auth_alg not in (SrtpAuthAlg.NULL, SrtpAuthAlg.HMAC_SHA_1):
            raise _bad(f"authentication algorithm {p.auth_alg.name} is not supported")
        if p.auth_alg == SrtpAuthAlg.HMAC_SHA_1 and p.srtp_auth:
            if p.auth_key_len != _HMAC_SHA1_LEN:
                raise _bad(f"HMAC-SHA1 auth key length {p.auth_key_len} is not supported")
            if p.auth_tag_len not in (4, 10):
                raise _bad(f"HMAC-SHA1 tag length {p.auth_tag_len} is not supported")
