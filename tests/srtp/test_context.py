"""Data SA -> libsrtp streams: policy mapping, ROC, MKI and no-MKI re-keying, key intervals.

Each test checks one side against the other side of the exchange (an independently created
context with the same Data SA) and, where pylibsrtp exposes the profile, against pylibsrtp.
"""

from __future__ import annotations

import pylibsrtp
import pytest

from mikey.keying import SrtpPolicy
from mikey.registry import SrtpAuthAlg, SrtpEncrAlg, SrtpPrf
from srtp.context import InboundStream, OutboundStream, crypto_policies, streams_for
from srtp.errors import (
    KeyExpiredError,
    KeyMaterialError,
    SrtpAuthenticationError,
    SrtpError,
    UnsupportedPolicyError,
)

from .helpers import (
    AES_CM_128_32,
    AES_CM_128_80,
    AES_CM_256_80,
    GCM_128,
    GCM_256,
    SPEC_SALT,
    SPEC_TEK,
    SSRC,
    entry,
    rtcp_sr,
    rtp,
)


def pair(policy: SrtpPolicy = AES_CM_128_80, **kw: object) -> tuple[OutboundStream, InboundStream]:
    return OutboundStream([entry(policy, **kw)]), InboundStream([entry(policy, **kw)])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "overhead"),
    [
        (AES_CM_128_80, 10),
        (AES_CM_128_32, 4),
        (AES_CM_256_80, 10),
        (SrtpPolicy(encr_key_len=32, auth_tag_len=4), 4),
        (GCM_128, 16),
        (GCM_256, 16),
    ],
)
def test_round_trip_rtp_and_rtcp(policy: SrtpPolicy, overhead: int) -> None:
    tx, rx = pair(policy)
    for seq in range(1, 50):
        p = tx.protect(rtp(seq))
        assert len(p) == len(rtp(seq)) + overhead
        assert p[12:] != rtp(seq)[12:]
        assert rx.unprotect(p) == rtp(seq)
    assert rx.unprotect_rtcp(tx.protect_rtcp(rtcp_sr())) == rtcp_sr()
    tx.close()
    rx.close()


def test_spec_master_key_against_pylibsrtp() -> None:
    e = entry(key=SPEC_TEK, salt=SPEC_SALT)
    tx = OutboundStream([e])
    raw = pylibsrtp.Session(
        pylibsrtp.Policy(SPEC_TEK + SPEC_SALT, pylibsrtp.Policy.SSRC_ANY_INBOUND)
    )
    assert raw.unprotect(tx.protect(rtp(1))) == rtp(1)
    tx.close()


def test_srtp_encryption_off_and_auth_off() -> None:
    tx, rx = pair(SrtpPolicy(srtp_encr=False))
    p = tx.protect(rtp(1, b"abc" * 20))
    assert p[:-10] == rtp(1, b"abc" * 20)
    assert rx.unprotect(p) == rtp(1, b"abc" * 20)
    tx.close()
    rx.close()
    tx, rx = pair(SrtpPolicy(srtp_auth=False))
    p = tx.protect(rtp(1))
    assert len(p) == len(rtp(1))
    assert rx.unprotect(p) == rtp(1)
    tx.close()
    rx.close()
    tx, rx = pair(SrtpPolicy(encr_alg=SrtpEncrAlg.NULL))
    p = tx.protect(rtp(1, b"xyz" * 20))
    assert p[:-10] == rtp(1, b"xyz" * 20)
    assert rx.unprotect(p) == rtp(1, b"xyz" * 20)
    tx.close()
    rx.close()


@pytest.mark.parametrize(
    "policy",
    [
        SrtpPolicy(encr_alg=SrtpEncrAlg.AES_F8),
        SrtpPolicy(encr_alg=SrtpEncrAlg.SEED_CTR),
        SrtpPolicy(encr_alg=SrtpEncrAlg.ARIA_CTR),
        SrtpPolicy(key_derivation_rate=1 << 16),
        SrtpPolicy(prefix_len=4),
        SrtpPolicy(fec_order=1),
        SrtpPolicy(auth_alg=SrtpAuthAlg.RCCM1),
        SrtpPolicy(prf=SrtpPrf.SEED_CTR),
        SrtpPolicy(encr_key_len=20),
        SrtpPolicy(auth_tag_len=7),
    ],
)
def test_unsupported_policies_refused(policy: SrtpPolicy) -> None:
    with pytest.raises(UnsupportedPolicyError):
        crypto_policies(policy)
    with pytest.raises(SrtpError):
        OutboundStream([entry(policy)])


def test_wrong_key_lengths_refused() -> None:
    with pytest.raises(KeyMaterialError):
        OutboundStream([entry(key=b"\x01" * 15)])
    with pytest.raises(KeyMaterialError):
        OutboundStream([entry(salt=b"\x01" * 12)])


def test_receiver_with_roc_5_decrypts_first_packet_of_running_stream() -> None:
    tx, rx = pair(roc=5)
    late = InboundStream([entry(roc=5)])
    for seq in range(65530, 65540):  # crosses a wrap: ROC 5 -> 6
        p = tx.protect(rtp(seq))
        assert rx.unprotect(p) == rtp(seq)
    assert tx.roc == 6
    assert rx.roc == 6
    p = tx.protect(rtp(65540))
    with pytest.raises(SrtpAuthenticationError):
        late.unprotect(p)  # ROC 5 guess for a ROC-6 packet: wrong index, tag fails
    late.close()
    late6 = InboundStream([entry(roc=6)])
    assert late6.unprotect(tx.protect(rtp(65541))) == rtp(65541)
    for s in (tx, rx, late6):
        s.close()


def test_mki_switch_mid_stream_no_packet_lost() -> None:
    tx = OutboundStream([entry(mki=b"\x00\x00\x00\x01")])
    rx = InboundStream([entry(mki=b"\x00\x00\x00\x01")])
    sent = [tx.protect(rtp(s)) for s in range(1, 11)]
    tx.rekey(entry(seed=99, mki=b"\x00\x00\x00\x02"))
    rx.rekey(entry(seed=99, mki=b"\x00\x00\x00\x02"))
    assert rx.rekeying
    sent += [tx.protect(rtp(s)) for s in range(11, 21)]
    assert sent[-1][-14:-10] == b"\x00\x00\x00\x02"
    # reorder across the switch: late old-key packets still decrypt during the overlap
    order = [*list(range(8)), 10, 11, 8, 9, *list(range(12, 20))]
    assert [rx.unprotect(sent[i]) for i in order] == [rtp(i + 1) for i in order]
    rx.finish_rekey()
    assert not rx.rekeying
    with pytest.raises(SrtpAuthenticationError):
        rx.unprotect(OutboundStream([entry(mki=b"\x00\x00\x00\x01")]).protect(rtp(40)))
    assert rx.unprotect(tx.protect(rtp(21))) == rtp(21)
    tx.close()
    rx.close()


def test_no_mki_rekey_overlap_then_old_destroyed() -> None:
    tx, rx = pair()
    sent = [tx.protect(rtp(s)) for s in range(1, 6)]
    tx.rekey(entry(seed=50))
    rx.rekey(entry(seed=50))
    assert tx.libsrtp_sessions == 1
    assert rx.libsrtp_sessions == 2
    sent += [tx.protect(rtp(s)) for s in range(6, 11)]
    order = [0, 1, 2, 5, 3, 6, 4, 7, 8, 9]
    assert [rx.unprotect(sent[i]) for i in order] == [rtp(i + 1) for i in order]
    rx.finish_rekey()
    assert rx.libsrtp_sessions == 1
    old_tx = OutboundStream([entry()])
    with pytest.raises(SrtpAuthenticationError):
        rx.unprotect(old_tx.protect(rtp(30)))
    for s in (tx, rx, old_tx):
        s.close()
    assert rx.libsrtp_sessions == 0


def test_no_mki_rekey_carries_roc_forward() -> None:
    tx, rx = pair(roc=3)
    for seq in (65534, 65535, 0, 1):
        rx.unprotect(tx.protect(rtp(seq)))
    tx.rekey(entry(seed=9))  # entry says ROC 0, the live stream is at ROC 4
    rx.rekey(entry(seed=9))
    assert rx.unprotect(tx.protect(rtp(2))) == rtp(2)
    assert tx.roc == 4
    tx.close()
    rx.close()


def test_several_keys_need_mki_and_same_ssrc() -> None:
    with pytest.raises(KeyMaterialError):
        OutboundStream([entry(), entry(seed=2)])
    with pytest.raises(KeyMaterialError):
        OutboundStream([entry(mki=b"\x01"), entry(seed=2, mki=b"\x02", ssrc=5)])
    s = InboundStream([entry(mki=b"\x01"), entry(seed=2, mki=b"\x02")])
    tx2 = OutboundStream([entry(seed=2, mki=b"\x02")])
    assert s.unprotect(tx2.protect(rtp(1))) == rtp(1)
    s.close()
    tx2.close()


def test_key_interval_enforced() -> None:
    tx = OutboundStream([entry(valid_from=0, valid_to=10)])
    rx = InboundStream([entry(valid_from=5, valid_to=100)])
    for seq in range(11):
        p = tx.protect(rtp(seq))
        if seq < 5:
            with pytest.raises(KeyExpiredError):
                rx.unprotect(p)
        else:
            assert rx.unprotect(p) == rtp(seq)
    with pytest.raises(KeyExpiredError):
        tx.protect(rtp(11))
    tx.close()
    rx.close()


def test_streams_for_groups_by_ssrc_and_direction() -> None:
    out, inb = streams_for([entry(ssrc=1), entry(ssrc=2, seed=3)], {1})
    assert set(out) == {1}
    assert set(inb) == {2}
    assert inb[2].unprotect(OutboundStream([entry(ssrc=2, seed=3)]).protect(rtp(1, ssrc=2))) == rtp(
        1, ssrc=2
    )
    for s in (*out.values(), *inb.values()):
        s.close()


def test_close_is_idempotent_and_wipes_nothing_it_does_not_own() -> None:
    e = entry()
    s = OutboundStream([e])
    s.close()
    s.close()
    assert not e.wiped
    assert s.ssrc == SSRC
