"""Shared builders for srtp tests: Data SA entries and RTP packets."""

from __future__ import annotations

import struct

from mikey.keying import DataSaEntry, KeyingResult, Mode, RegistrationSa, Role, SrtpPolicy
from mikey.registry import PrfFunc, SrtpAuthAlg, SrtpEncrAlg

SSRC = 0xDEADBEEF
# docs/WIRE.md §Worked PSK exchange: TEK / SALT of crypto session 1.
SPEC_TEK = bytes.fromhex("1b3c86914d2e99652f57470a969a845a")
SPEC_SALT = bytes.fromhex("d4d883ced237bdca4ec8eb8235b1")

AES_CM_128_80 = SrtpPolicy()
AES_CM_128_32 = SrtpPolicy(auth_tag_len=4)
AES_CM_256_80 = SrtpPolicy(encr_key_len=32)
GCM_128 = SrtpPolicy(encr_alg=SrtpEncrAlg.AES_GCM, salt_key_len=12, auth_alg=SrtpAuthAlg.NULL)
GCM_256 = SrtpPolicy(
    encr_alg=SrtpEncrAlg.AES_GCM, encr_key_len=32, salt_key_len=12, auth_alg=SrtpAuthAlg.NULL
)


def entry(
    policy: SrtpPolicy = AES_CM_128_80,
    *,
    ssrc: int = SSRC,
    roc: int = 0,
    seed: int = 1,
    mki: bytes | None = None,
    key: bytes | None = None,
    salt: bytes | None = None,
    valid_from: int | None = None,
    valid_to: int | None = None,
) -> DataSaEntry:
    k = key if key is not None else bytes((seed + i) & 0xFF for i in range(policy.master_key_len))
    s = (
        salt
        if salt is not None
        else bytes((seed * 7 + i) & 0xFF for i in range(policy.master_salt_len))
    )
    return DataSaEntry(
        cs_id=1,
        ssrc=ssrc,
        roc=roc,
        policy_no=0,
        policy=policy,
        master_key=bytearray(k),
        master_salt=bytearray(s),
        mki=mki,
        valid_from=valid_from,
        valid_to=valid_to,
    )


def keying(*entries: DataSaEntry, rekey: bool = False) -> KeyingResult:
    reg = RegistrationSa(
        mode=Mode.PSK,
        role=Role.INITIATOR,
        csb_id=0x12345678,
        prf=PrfFunc.MIKEY_1,
        rand=bytes(16),
        t_initiator=bytes(8),
        t_responder=None,
        initiator_id=None,
        responder_id=None,
    )
    return KeyingResult(registration=reg, data_sa=tuple(entries), rekey=rekey)


def rtp(seq: int, payload: bytes = bytes(160), ssrc: int = SSRC, pt: int = 0) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, ssrc) + payload


def rtcp_sr(ssrc: int = SSRC) -> bytes:
    return struct.pack("!BBHIIIIII", 0x80, 200, 6, ssrc, 1, 2, 3, 4, 5)
