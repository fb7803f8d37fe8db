"""The ctypes shim over pylibsrtp's bundled libsrtp: layout, transforms, ROC and MKI.

Oracles: pylibsrtp's own (cffi, compiler-checked) Session on the same library for the profiles it
exposes, and the other side of each exchange for the ones it does not.
"""

from __future__ import annotations

import ctypes
import struct

import pylibsrtp
import pytest

from srtp import _libsrtp as L
from srtp.errors import (
    ContextClosedError,
    KeyMaterialError,
    PacketSizeError,
    SrtpAuthenticationError,
    SrtpReplayError,
)

SSRC = 0xDEADBEEF
KEY = bytes(range(1, 31))


def rtp(seq: int, payload: bytes = bytes(160), ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHII", 0x80, 0, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc) + payload


def rtcp_sr(ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)


def session(
    rtp_p: L.CryptoPolicy | None = None,
    keys: list[L.MasterKey] | None = None,
    roc: int = 0,
    **kw: object,
) -> L.LibsrtpSession:
    p = rtp_p or L.aes_cm(16, 10)
    return L.LibsrtpSession(
        ssrc_type=L.SsrcType.SPECIFIC,
        ssrc=SSRC,
        rtp=p,
        rtcp=L.aes_cm(16, 10) if p.cipher != L.CipherType.AES_GCM_128 else p,
        keys=keys or [L.MasterKey(bytearray(KEY))],
        roc=roc,
        **kw,  # type: ignore[arg-type]
    )


def test_struct_layout_matches_compiled_pylibsrtp() -> None:
    ffi = pylibsrtp._binding.ffi
    assert ffi.sizeof("srtp_policy_t") == ctypes.sizeof(L._Policy)
    for name, fld in ffi.typeof("srtp_policy_t").fields:
        assert getattr(L._Policy, name).offset == fld.offset


@pytest.mark.parametrize(
    ("profile", "tag"),
    [
        (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80, 10),
        (pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32, 4),
    ],
)
def test_aes_cm_128_both_ways_with_pylibsrtp(profile: int, tag: int) -> None:
    ours_tx, ours_rx = session(L.aes_cm(16, tag)), session(L.aes_cm(16, tag))
    raw_rx = pylibsrtp.Session(pylibsrtp.Policy(KEY, pylibsrtp.Policy.SSRC_ANY_INBOUND, 0, profile))
    raw_tx = pylibsrtp.Session(
        pylibsrtp.Policy(KEY, pylibsrtp.Policy.SSRC_ANY_OUTBOUND, 0, profile)
    )
    for seq in range(1, 20):
        p = ours_tx.protect(rtp(seq))
        assert len(p) == len(rtp(seq)) + tag
        assert raw_rx.unprotect(p) == rtp(seq)
        assert ours_rx.unprotect(raw_tx.protect(rtp(seq))) == rtp(seq)
    c = ours_tx.protect_rtcp(rtcp_sr())
    assert raw_rx.unprotect_rtcp(c) == rtcp_sr()
    assert ours_rx.unprotect_rtcp(raw_tx.protect_rtcp(rtcp_sr())) == rtcp_sr()
    for s in (ours_tx, ours_rx):
        s.close()


@pytest.mark.parametrize("key_len", [16, 32])
def test_gcm_with_pylibsrtp(key_len: int) -> None:
    profile = {
        16: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
        32: pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
    }[key_len]
    key = bytes(range(7, 7 + key_len + 12))
    pol = L.aes_gcm(key_len)
    tx = L.LibsrtpSession(
        ssrc_type=L.SsrcType.SPECIFIC,
        ssrc=SSRC,
        rtp=pol,
        rtcp=pol,
        keys=[L.MasterKey(bytearray(key))],
    )
    raw_rx = pylibsrtp.Session(pylibsrtp.Policy(key, pylibsrtp.Policy.SSRC_ANY_INBOUND, 0, profile))
    p = tx.protect(rtp(3))
    assert len(p) == len(rtp(3)) + 16
    assert raw_rx.unprotect(p) == rtp(3)
    assert raw_rx.unprotect_rtcp(tx.protect_rtcp(rtcp_sr())) == rtcp_sr()
    tx.close()


def test_null_cipher_leaves_payload_clear_but_authenticated() -> None:
    tx, rx = session(L.null_cipher(10)), session(L.null_cipher(10))
    p = tx.protect(rtp(1, b"hello world!" * 10))
    assert p[:-10] == rtp(1, b"hello world!" * 10)
    assert rx.unprotect(p) == rtp(1, b"hello world!" * 10)
    bad = bytearray(tx.protect(rtp(2)))
    bad[20] ^= 1
    with pytest.raises(SrtpAuthenticationError):
        rx.unprotect(bytes(bad))
    tx.close()
    rx.close()


def test_auth_only_aes_cm_does_not_encrypt() -> None:
    pol = L.aes_cm(16, 10, L.SecServ.AUTH)
    tx, rx = session(pol), session(pol)
    p = tx.protect(rtp(1, b"x" * 40))
    assert p[:-10] == rtp(1, b"x" * 40)
    assert rx.unprotect(p) == rtp(1, b"x" * 40)
    tx.close()
    rx.close()


def test_roc_set_on_both_sides_and_differs_from_roc_zero() -> None:
    tx, rx5, rx0 = session(roc=5), session(roc=5), session()
    p = tx.protect(rtp(100))
    assert rx5.unprotect(p) == rtp(100)
    assert tx.get_roc() == 5
    assert rx5.get_roc() == 5
    with pytest.raises((SrtpAuthenticationError, SrtpReplayError)):
        rx0.unprotect(p)
    for s in (tx, rx5, rx0):
        s.close()


def test_mki_selects_key_and_unknown_mki_is_refused() -> None:
    k1, k2 = bytearray(KEY), bytearray(range(100, 130))
    tx = session(keys=[L.MasterKey(k1, b"\x00\x01"), L.MasterKey(k2, b"\x00\x02")])
    rx = session(keys=[L.MasterKey(k1, b"\x00\x01"), L.MasterKey(k2, b"\x00\x02")])
    only1 = session(keys=[L.MasterKey(k1, b"\x00\x01")])
    p1, p2 = tx.protect(rtp(1), 0), tx.protect(rtp(2), 1)
    assert p1[-12:-10] == b"\x00\x01"
    assert p2[-12:-10] == b"\x00\x02"
    assert rx.unprotect(p1) == rtp(1)
    assert rx.unprotect(p2) == rtp(2)
    assert only1.unprotect(p1) == rtp(1)
    with pytest.raises(SrtpAuthenticationError):
        only1.unprotect(p2)
    with pytest.raises(KeyMaterialError):
        tx.protect(rtp(3), 2)
    for s in (tx, rx, only1):
        s.close()


def test_update_keys_keeps_roc() -> None:
    tx = session(roc=7)
    tx.protect(rtp(9))
    tx.update_keys([L.MasterKey(bytearray(range(50, 80)))])
    assert tx.get_roc() == 7
    tx.close()


def test_errors_and_live_count() -> None:
    before = L.live_sessions()
    s = session()
    assert L.live_sessions() == before + 1
    with pytest.raises(PacketSizeError):
        s.protect(b"\x80" * 5)
    with pytest.raises(PacketSizeError):
        s.protect(rtp(1, bytes(L.MAX_PACKET_LEN)))
    with pytest.raises(KeyMaterialError):
        session(keys=[L.MasterKey(bytearray(10))])
    with pytest.raises(KeyMaterialError):
        session(keys=[L.MasterKey(bytearray(30))])  # wiped key
    assert L.live_sessions() == before + 1
    s.close()
    s.close()
    assert L.live_sessions() == before
    with pytest.raises(ContextClosedError):
        s.protect(rtp(1))


def test_key_copy_is_scrubbed_and_caller_buffer_untouched() -> None:
    buf = bytearray(KEY)
    s = session(keys=[L.MasterKey(buf)])
    assert buf == bytearray(KEY)
    s.close()


def test_largest_packet_round_trips() -> None:
    tx, rx = session(), session()
    big = rtp(1, bytes(L.MAX_PACKET_LEN - 12))
    assert rx.unprotect(tx.protect(big)) == big
    tx.close()
    rx.close()
