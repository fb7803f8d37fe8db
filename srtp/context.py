"""Live SRTP contexts built from MIKEY Data SA entries (RFC 3830 §4.1.3, RFC 3711 §3.2, §8.2).

One :class:`OutboundStream` or :class:`InboundStream` per SSRC wraps a libsrtp session. It is
created from one or more :class:`~mikey.keying.DataSaEntry` of that SSRC: several entries must
carry MKIs and become the stream's master keys, selected by the MKI in each packet.

Re-keying (RFC 3830 §4.5) never drops a packet:

* with MKI, an inbound stream holds the old and new keys side by side (libsrtp picks by MKI,
  ``srtp_update_stream`` keeps ROC and replay index); an outbound stream switches at once;
* without MKI, an inbound stream keeps the old libsrtp session next to the new one and tries new
  then old; an outbound stream switches at once, carrying its ROC forward.

:meth:`finish_rekey` ends the overlap and forgets the old key. Streams reference, but do not own,
the entries' key buffers: the GSA that handed them in wipes them. A stream is not thread-safe.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from mikey import wipe
from mikey.keying import DataSaEntry, SrtpPolicy
from mikey.registry import SrtpAuthAlg, SrtpEncrAlg, SrtpPrf

from . import _libsrtp as L
from .errors import (
    KeyExpiredError,
    KeyMaterialError,
    SrtpAuthenticationError,
    UnsupportedPolicyError,
)

#: RFC 3711 §3.3.2 recommends a replay window of at least 64 packets; libsrtp defaults to 128.
DEFAULT_WINDOW_SIZE = 128


@functools.lru_cache(maxsize=64)  # policies repeat; both are immutable; failures not cached
def crypto_policies(policy: SrtpPolicy) -> tuple[L.CryptoPolicy, L.CryptoPolicy]:
    """Map a MIKEY SP policy to libsrtp (RTP, RTCP) transforms, or raise UnsupportedPolicyError.

    Unsupported choices are refused during the MIKEY exchange already; reaching one here is a
    programming error, reported clearly rather than keyed wrongly.
    """
    if policy.prf != SrtpPrf.AES_CM:
        raise UnsupportedPolicyError(f"SRTP PRF {policy.prf.name} is not supported by libsrtp")
    if policy.key_derivation_rate != 0:  # RFC 3711 §4.3.1: libsrtp derives once (kdr 0)
        raise UnsupportedPolicyError("key derivation rate != 0 is not supported by libsrtp")
    if policy.prefix_len != 0:  # RFC 3711 §4.1: keystream prefix is for SRTP with RCCm
        raise UnsupportedPolicyError("keystream prefix length != 0 is not supported")
    if policy.fec_order != 0:  # RFC 3830 §6.10.1: 0 = FEC-SRTP (FEC before SRTP)
        raise UnsupportedPolicyError("FEC order other than FEC-SRTP is not supported")
    if policy.auth_alg not in (SrtpAuthAlg.NULL, SrtpAuthAlg.HMAC_SHA_1):
        raise UnsupportedPolicyError(f"auth algorithm {policy.auth_alg.name} is not supported")
    hmac = policy.auth_alg == SrtpAuthAlg.HMAC_SHA_1
    if hmac and policy.auth_key_len != 20:
        raise UnsupportedPolicyError("HMAC-SHA1 needs a 20-byte session authentication key")
    rtp_tag = policy.auth_tag_len if hmac and policy.srtp_auth else 0
    rtcp_tag = 10 if hmac else 0  # RFC 3711 §3.4: SRTCP authentication is mandatory (80 bits)
    if rtp_tag not in (0, 4, 10):
        raise UnsupportedPolicyError("HMAC-SHA1 tag must be 4 or 10 bytes")
    if policy.encr_alg == SrtpEncrAlg.AES_CM:
        if policy.salt_key_len != 14:
            raise UnsupportedPolicyError("AES-CM needs a 14-byte salt (RFC 3711 §4.1.1)")

        def services(encr: bool, tag: int) -> L.SecServ:
            flags = L.SecServ.CONF if encr else L.SecServ.NONE
            return flags | L.SecServ.AUTH if tag else flags

        return (
            L.aes_cm(policy.encr_key_len, rtp_tag, services(policy.srtp_encr, rtp_tag)),
            L.aes_cm(policy.encr_key_len, rtcp_tag, services(policy.srtcp_encr, rtcp_tag)),
        )
    if policy.encr_alg == SrtpEncrAlg.NULL:
        if policy.encr_key_len != 16 or policy.salt_key_len != 14:
            raise UnsupportedPolicyError("NULL cipher keys as AES-CM-128: 16-byte key, 14 salt")
        return L.null_cipher(rtp_tag), L.null_cipher(rtcp_tag)
    if policy.encr_alg == SrtpEncrAlg.AES_GCM:  # RFC 7714
        if policy.salt_key_len != 12:
            raise UnsupportedPolicyError("AES-GCM needs a 12-byte salt (RFC 7714 §8.1)")
        if not (policy.srtp_encr and policy.srtcp_encr):
            raise UnsupportedPolicyError("AES-GCM without encryption is not supported")
        pol = L.aes_gcm(policy.encr_key_len, policy.aead_tag_len)
        return pol, pol
    raise UnsupportedPolicyError(f"encryption {policy.encr_alg.name} is not supported by libsrtp")


def _master_key(entry: DataSaEntry) -> L.MasterKey:
    pol = entry.policy
    if len(entry.master_key) != pol.master_key_len:
        raise KeyMaterialError(f"master key must be {pol.master_key_len} bytes")
    if len(entry.master_salt) != pol.master_salt_len:
        raise KeyMaterialError(f"master salt must be {pol.master_salt_len} bytes")
    return L.MasterKey(entry.master_key + entry.master_salt, entry.mki)


def _session(
    entries: Sequence[DataSaEntry], ssrc_type: L.SsrcType, window_size: int, allow_repeat_tx: bool
) -> L.LibsrtpSession:
    first = entries[0]
    rtp, rtcp = crypto_policies(first.policy)
    keys = [_master_key(e) for e in entries]
    try:
        return L.LibsrtpSession(
            ssrc_type=ssrc_type,
            ssrc=first.ssrc,
            rtp=rtp,
            rtcp=rtcp,
            keys=keys,
            window_size=window_size,
            allow_repeat_tx=allow_repeat_tx,
            roc=max(e.roc for e in entries),
        )
    finally:
        wipe(*(k.key_and_salt for k in keys))


def _check_group(entries: Sequence[DataSaEntry]) -> None:
    if not entries:
        raise KeyMaterialError("a stream needs at least one Data SA entry")
    first = entries[0]
    for e in entries[1:]:
        if e.ssrc != first.ssrc:
            raise KeyMaterialError("all entries of a stream must share one SSRC")
        if e.policy != first.policy:
            raise UnsupportedPolicyError("all master keys of a stream must share one policy")
    if len(entries) > 1 and any(e.mki is None for e in entries):
        raise KeyMaterialError("several master keys for one SSRC need MKIs (RFC 3711 §3.1)")


class _Stream:
    """Shared state of one SSRC's SRTP stream."""

    # Slots: protect() runs per packet for many streams at once; no per-stream __dict__ to load.
    __slots__ = (
        "_allow_repeat_tx",
        "_entries",
        "_interval",
        "_mki_index",
        "_old",
        "_old_entries",
        "_session",
        "_window_size",
        "policy",
        "ssrc",
    )

    _SSRC_TYPE_WILDCARD = L.SsrcType.ANY_INBOUND

    def __init__(
        self,
        entries: Sequence[DataSaEntry],
        *,
        window_size: int = DEFAULT_WINDOW_SIZE,
        allow_repeat_tx: bool = False,
    ) -> None:
        _check_group(entries)
        self.ssrc = entries[0].ssrc
        self.policy = entries[0].policy
        self._window_size = window_size
        self._allow_repeat_tx = allow_repeat_tx
        ssrc_type = L.SsrcType.SPECIFIC if self.ssrc else self._SSRC_TYPE_WILDCARD
        self._entries: list[DataSaEntry] = list(entries)
        self._session = _session(entries, ssrc_type, window_size, allow_repeat_tx)
        self._old: L.LibsrtpSession | None = None  # no-MKI overlap (inbound only)
        self._old_entries: list[DataSaEntry] = []
        self._mki_index = len(entries) - 1
        self._interval = self._compute_interval()

    @property
    def closed(self) -> bool:
        return self._session.closed

    @property
    def uses_mki(self) -> bool:
        return self._entries[0].mki is not None

    @property
    def rekeying(self) -> bool:
        """True while an old master key is still accepted."""
        return bool(self._old_entries)

    @property
    def libsrtp_sessions(self) -> int:
        """Number of live libsrtp sessions this stream holds (0 after close)."""
        return sum(1 for s in (self._session, self._old) if s is not None and not s.closed)

    @property
    def entries(self) -> tuple[DataSaEntry, ...]:
        return tuple(self._old_entries + self._entries)

    @property
    def roc(self) -> int:
        """The stream's current rollover counter."""
        return self._session.get_roc()

    def _compute_interval(self) -> tuple[int, int] | None:
        e = self._entries[-1]
        if e.valid_from is None and e.valid_to is None:
            return None
        return (e.valid_from or 0, 0xFFFFFFFFFFFF if e.valid_to is None else e.valid_to)

    def _check_interval(self, packet: bytes) -> None:
        # RFC 3711 §8.1 <From, To>: the 48-bit index ROC || SEQ must lie inside the interval.
        if self._interval is None:
            return
        index = (self._session.get_roc() << 16) | int.from_bytes(packet[2:4], "big")
        low, high = self._interval
        if not low <= index <= high:
            raise KeyExpiredError("packet index outside the master key's <From, To> interval")

    def rekey(self, new_entries: DataSaEntry | Sequence[DataSaEntry]) -> None:
        """Install a new master key (RFC 3830 §4.5) without losing a packet; see module doc."""
        new = [new_entries] if isinstance(new_entries, DataSaEntry) else list(new_entries)
        _check_group(new)
        if new[0].ssrc != self.ssrc:
            raise KeyMaterialError("re-key entry is for another SSRC")
        if new[0].policy != self.policy:
            raise UnsupportedPolicyError("re-keying cannot change the SRTP policy of a stream")
        if self.rekeying:
            self.finish_rekey()
        if (new[0].mki is None) != (not self.uses_mki):
            raise KeyMaterialError("a re-key must keep using MKIs or keep not using them")
        live_roc = self._session.get_roc() if self.ssrc else 0
        roc = max([live_roc, *(e.roc for e in new)])
        if self.uses_mki:
            old = list(self._entries)
            if {e.mki for e in old} & {e.mki for e in new}:
                raise KeyMaterialError("a new master key needs a new MKI")
            keep = self._keep_old_on_rekey()
            group = (old + new) if keep else new
            keys = [_master_key(e) for e in group]
            try:
                self._session.update_keys(keys)
            finally:
                wipe(*(k.key_and_salt for k in keys))
            if self.ssrc and roc > self._session.get_roc():
                self._session.set_roc(roc)
            self._old_entries = old if keep else []
            self._entries = new
            self._mki_index = len(group) - 1
        else:
            ssrc_type = L.SsrcType.SPECIFIC if self.ssrc else self._SSRC_TYPE_WILDCARD
            fresh = _session(
                [_with_roc(e, roc) for e in new],
                ssrc_type,
                self._window_size,
                self._allow_repeat_tx,
            )
            old_session, self._session = self._session, fresh
            if self._keep_old_on_rekey():
                self._old = old_session
                self._old_entries = list(self._entries)
            else:
                old_session.close()
            self._entries = new
            self._mki_index = 0
        self._interval = self._compute_interval()

    def _keep_old_on_rekey(self) -> bool:
        return False

    def finish_rekey(self) -> None:
        """End the re-key overlap: the old master key is no longer accepted."""
        if not self._old_entries:
            return
        if self._old is not None:
            self._old.close()
            self._old = None
        elif not self._session.closed:
            keys = [_master_key(e) for e in self._entries]
            try:
                self._session.update_keys(keys)
            finally:
                wipe(*(k.key_and_salt for k in keys))
            self._mki_index = len(self._entries) - 1
        self._old_entries = []

    def close(self) -> None:
        """Deallocate every libsrtp session of this stream; idempotent."""
        if self._old is not None:
            self._old.close()
            self._old = None
        self._session.close()
        self._old_entries = []


def _with_roc(entry: DataSaEntry, roc: int) -> DataSaEntry:
    if entry.roc >= roc:
        return entry
    return DataSaEntry(
        cs_id=entry.cs_id,
        ssrc=entry.ssrc,
        roc=roc,
        policy_no=entry.policy_no,
        policy=entry.policy,
        master_key=entry.master_key,
        master_salt=entry.master_salt,
        mki=entry.mki,
        valid_from=entry.valid_from,
        valid_to=entry.valid_to,
    )


class OutboundStream(_Stream):
    """Protects RTP and RTCP sent with one SSRC."""

    __slots__ = ()

    _SSRC_TYPE_WILDCARD = L.SsrcType.ANY_OUTBOUND

    def protect(self, packet: bytes) -> bytes:
        """RTP -> SRTP (RFC 3711 §3.3) with the newest master key."""
        out = self._session.protect(packet, self._mki_index)
        if self._interval is not None:
            self._check_interval(packet)
        return out

    def protect_rtcp(self, packet: bytes) -> bytes:
        """RTCP -> SRTCP (RFC 3711 §3.4) with the newest master key."""
        return self._session.protect_rtcp(packet, self._mki_index)


class InboundStream(_Stream):
    """Verifies and decrypts SRTP and SRTCP received from one SSRC."""

    __slots__ = ()

    def _keep_old_on_rekey(self) -> bool:
        return True

    def unprotect(self, packet: bytes) -> bytes:
        """SRTP -> RTP; raises SrtpAuthenticationError / SrtpReplayError on a bad packet."""
        old = self._old
        if old is None:
            out = self._session.unprotect(packet)
        else:
            try:
                out = self._session.unprotect(packet)
            except SrtpAuthenticationError:
                return old.unprotect(packet)
        if self._interval is not None:
            self._check_interval(packet)
        return out

    def unprotect_rtcp(self, packet: bytes) -> bytes:
        """SRTCP -> RTCP."""
        old = self._old
        if old is None:
            return self._session.unprotect_rtcp(packet)
        try:
            return self._session.unprotect_rtcp(packet)
        except SrtpAuthenticationError:
            return old.unprotect_rtcp(packet)


def streams_for(
    entries: Sequence[DataSaEntry],
    outbound_ssrcs: frozenset[int] | set[int],
    *,
    window_size: int = DEFAULT_WINDOW_SIZE,
    allow_repeat_tx: bool = False,
) -> tuple[dict[int, OutboundStream], dict[int, InboundStream]]:
    """Group Data SA entries by SSRC and build one stream per SSRC; closes all on failure."""
    groups: dict[int, list[DataSaEntry]] = {}
    for e in entries:
        groups.setdefault(e.ssrc, []).append(e)
    out: dict[int, OutboundStream] = {}
    inb: dict[int, InboundStream] = {}
    try:
        for ssrc, group in groups.items():
            if ssrc in outbound_ssrcs:
                out[ssrc] = OutboundStream(
                    group, window_size=window_size, allow_repeat_tx=allow_repeat_tx
                )
            else:
                inb[ssrc] = InboundStream(group, window_size=window_size)
    except BaseException:
        for s in (*out.values(), *inb.values()):
            s.close()
        raise
    return out, inb
