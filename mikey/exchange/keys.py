"""Key transport and key derivation: KEMAC in and out, the Data SA from the TGK or TEKs.

Every function here either returns the key buffers it made or wipes them before raising; the
callers (the roles) own what is returned and wipe it on every path.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import crypto
from .._accel import wipe
from ..codec import (
    IdPayload,
    Kemac,
    KemacSubPayload,
    KeyData,
    KeySpi,
    Message,
    SrtpIdEntry,
    encode_sub_payloads,
    parse_sub_payloads,
)
from ..errors import AuthenticationError, DecodeError, MikeyError, PolicyError, ProtocolError
from ..keying import DataSaEntry, SrtpPolicy
from ..prf import TransportKeys, derive_tek_salt, derive_transport_keys
from ..registry import MAC_LENGTH, EncrAlg, ErrorNo, KeyDataType, MacAlg, PayloadType, PrfFunc
from .config import ExchangeConfig, Rng
from .memo import id_payload

__all__ = [
    "derive_data_sa",
    "kemac_mac_alone",
    "kemac_plaintext",
    "new_key_data",
    "open_kemac",
    "tgk_from",
    "wipe_keys",
]

_TEK_TYPES = frozenset((KeyDataType.TEK, KeyDataType.TEK_SALT))
_KEY_TYPES = frozenset(
    (KeyDataType.TGK, KeyDataType.TGK_SALT, KeyDataType.TEK, KeyDataType.TEK_SALT)
)


def wipe_keys(keys: Sequence[KeyData]) -> None:
    """Overwrite every key data's key and salt."""
    for kd in keys:
        kd.wipe()


def tgk_from(keys: tuple[KeyData, ...]) -> bytearray | None:
    """A copy of the transported TGK (TGK or TGK+SALT key data), or None."""
    for k in keys:
        if k.key_type in (KeyDataType.TGK, KeyDataType.TGK_SALT):
            return bytearray(k.key)
    return None


def kemac_plaintext(identity: str | None, keys: Sequence[KeyData], encr: EncrAlg) -> bytearray:
    """The KEMAC's plaintext: optional ID, then the key data sub-payloads (RFC 3830 §6.2)."""
    subs: list[KemacSubPayload] = []
    if identity:
        subs.append(id_payload(identity))
    subs.extend(keys)
    plain = encode_sub_payloads(subs)
    if encr == EncrAlg.AES_KW_128 and len(plain) % 8:
        wipe(plain)
        raise MikeyError("AES-KW-128 needs key data of a multiple of 8 bytes; adjust key length")
    return plain


def kemac_mac_alone(
    encr_alg: EncrAlg, encr_data: bytes, mac_alg: MacAlg, auth_key: bytearray
) -> Kemac:
    """A KEMAC whose MAC covers the KEMAC payload alone with NP = 0 (PK and RSA-R, the minisip
    form; docs/WIRE.md §MAC, V and SIGN coverage)."""
    maclen = MAC_LENGTH[mac_alg]
    unsigned = Kemac(encr_alg, encr_data, mac_alg, bytes(maclen))
    covered = unsigned.encode(0)[:-maclen] if maclen else b""
    return Kemac(encr_alg, encr_data, mac_alg, crypto.mac(mac_alg, auth_key, covered))


def open_kemac(
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
) -> tuple[tuple[KeyData, ...], str | None, TransportKeys]:
    """Verify the KEMAC MAC, then decrypt and parse its sub-payloads (RFC 3830 §5.2, §6.2).

    Returns the key data, the ID inside (if any) and the transport keys (kept for V and ERR;
    the caller wipes them). Any MAC, decryption or parse failure is AUTH_FAILURE.
    """
    if not isinstance(kem.encr_alg, EncrAlg) or not isinstance(kem.mac_alg, MacAlg):
        raise ProtocolError("unsupported KEMAC algorithm", error_no=ErrorNo.INVALID_EA)
    if kem.encr_alg == EncrAlg.NULL and not cfg.allow_null_kemac:
        raise PolicyError("NULL KEMAC encryption refused by policy", error_no=ErrorNo.INVALID_EA)
    if kem.mac_alg == MacAlg.NULL and not cfg.allow_null_kemac:
        raise PolicyError("NULL KEMAC MAC refused by policy", error_no=ErrorNo.INVALID_MAC)
    tk = derive_transport_keys(
        k, csb_id, rand, prf, kem.encr_alg, kem.mac_alg, minisip_compat=cfg.minisip_compat
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
            if first != PayloadType.ID:
                raise AuthenticationError() from None
            try:
                subs, _ = parse_sub_payloads(plain, lenient=cfg.lenient)
            except DecodeError:
                raise AuthenticationError() from None
        finally:
            wipe(plain)
    except BaseException:
        tk.wipe()
        raise
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
        wipe_keys(keys)
        tk.wipe()
        raise
    return keys, ident, tk


def new_key_data(
    cfg: ExchangeConfig, draw: Rng, policy: SrtpPolicy
) -> tuple[tuple[KeyData, ...], bytearray | None]:
    """Fresh key data of the configured type; returns it and the TGK buffer it shares (if any)."""
    kv = KeySpi(draw(cfg.mki_length)) if cfg.mki_length else None
    if cfg.key_type == KeyDataType.TGK:
        tgk = bytearray(draw(cfg.tgk_length))
        return (KeyData(KeyDataType.TGK, tgk, None, kv),), tgk
    if cfg.key_type == KeyDataType.TGK_SALT:
        tgk = bytearray(draw(cfg.tgk_length))
        salt = bytearray(draw(policy.master_salt_len))
        return (KeyData(KeyDataType.TGK_SALT, tgk, salt, kv),), tgk
    if cfg.key_type == KeyDataType.TEK_SALT:
        key = bytearray(draw(policy.master_key_len))
        salt = bytearray(draw(policy.master_salt_len))
        return (KeyData(KeyDataType.TEK_SALT, key, salt, kv),), None
    # TEK carrying master key || salt (the GStreamer/ONVIF form)
    tek = bytearray(draw(policy.master_key_len + policy.master_salt_len))
    return (KeyData(KeyDataType.TEK, tek, None, kv),), None


def derive_data_sa(
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


def _tek_as_is(kd: KeyData, policy: SrtpPolicy) -> tuple[bytearray, bytearray]:
    """Master key and salt carried in TEK / TEK+SALT key data (no derivation)."""
    raw = bytearray(kd.key)
    if kd.salt is not None:
        master_key, master_salt = raw, bytearray(kd.salt)
    elif len(raw) == policy.master_key_len + policy.master_salt_len:
        # GStreamer form: TEK = master key || master salt (docs/WIRE.md §TEK carrying key and salt)
        master_key, master_salt = raw[: policy.master_key_len], raw[policy.master_key_len :]
        wipe(raw)
    else:
        wipe(raw)
        raise ProtocolError("TEK carries no salt", error_no=ErrorNo.INVALID_SPPAR)
    if len(master_key) != policy.master_key_len or len(master_salt) != policy.master_salt_len:
        wipe(master_key, master_salt)
        raise PolicyError("TEK length does not match the policy", error_no=ErrorNo.INVALID_SPPAR)
    return master_key, master_salt
