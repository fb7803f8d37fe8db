"""Peer profiles (docs/PROFILES.md) and the 3GPP code points (TS 33.180).

Oracles, independent of the code under test: the RFC 3830 §4.1.2 PRF written naively here (with
minisip's last-piece bug as docs/WIRE.md describes it), AES-CM per RFC 3830 §4.2.3 from
``cryptography``, and ``cryptography``'s own PKCS#1 v1.5 / SHA-1 signature verification. The
GStreamer and ONVIF/Genetec messages are those of tests/mikey/vectors.py (their sources are named
there); the MCPTT message is built from the layout of TS 33.180 §E (IDR roles 8/9, general
extension type 7).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from mikey.codec import (
    Chash,
    GeneralExt,
    Header,
    IdrPayload,
    Kemac,
    KeyData,
    Message,
    Rand,
    Sign,
    Timestamp,
    parse_message,
    parse_sub_payloads,
)
from mikey.crypto import SignHash
from mikey.errors import AuthenticationError, DecodeError, MikeyError
from mikey.exchange import (
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    PeerProfile,
    Responder,
    StreamSpec,
    apply_profile,
)
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from mikey.registry import (
    DataType,
    GeneralExtType3gpp,
    IdRole3gpp,
    IdType,
    KeyDataType,
    SignType,
    TsType,
)
from mikey.replay import ntp_from_unix

from . import vectors
from .pair import ALICE, BOB, NOW, PSK, Pair, configs, ep, keys, refused, seeded_rng

# --- the independent oracle: RFC 3830 §4.1.2 written out ---------------------------------------


def _p(s: bytes, label: bytes, m: int) -> bytes:
    """P(s, label, m) of RFC 3830 §4.1.2 with HMAC-SHA-1."""
    a, out = label, b""
    for _ in range(m):
        a = hmac.new(s, a, hashlib.sha1).digest()
        out += hmac.new(s, a + label, hashlib.sha1).digest()
    return out


def naive_prf(inkey: bytes, label: bytes, length: int, *, minisip: bool = False) -> bytes:
    """PRF(inkey, label) of RFC 3830 §4.1.2; ``minisip`` cuts the last piece to len % 32."""
    m = -(-length * 8 // 160)
    n = -(-len(inkey) // 32)
    pieces = [inkey[i * 32 : (i + 1) * 32] for i in range(n)]
    if minisip and len(inkey) % 32 == 0:
        pieces[-1] = b""  # docs/WIRE.md §minisip PRF bug: an empty HMAC key for the last piece
    out = bytes(m * 20)
    for s in pieces:
        out = bytes(x ^ y for x, y in zip(out, _p(s, label, m), strict=True))
    return out[:length]


def rfc_label(const: int, cs_id: int, csb_id: int, rand: bytes) -> bytes:
    """label = constant || CS ID || CSB ID || RAND (RFC 3830 §4.1.3)."""
    return const.to_bytes(4, "big") + bytes([cs_id]) + csb_id.to_bytes(4, "big") + rand


def aes_cm_decrypt(key: bytes, salt: bytes, csb_id: int, t: bytes, data: bytes) -> bytes:
    """AES-CM of the KEMAC (RFC 3830 §4.2.3): IV = S XOR (0x0000 || CSB ID || T) || 0x0000."""
    head = int.from_bytes(salt, "big") ^ int.from_bytes(b"\0\0" + csb_id.to_bytes(4, "big") + t)
    iv = head.to_bytes(14, "big") + b"\0\0"
    d = Cipher(algorithms.AES(key), modes.CTR(iv)).decryptor()
    return d.update(data) + d.finalize()


def _psk_configs(profile: PeerProfile, **kw: Any) -> tuple[ExchangeConfig, ExchangeConfig]:
    i_cfg = ExchangeConfig(mode=Mode.PSK, psk=StaticPskStore({}, default=PSK), **kw)
    return apply_profile(i_cfg, profile), apply_profile(i_cfg, profile)


# --- minisip ---------------------------------------------------------------------------------


def test_minisip_profile_fields() -> None:
    cfg = apply_profile(ExchangeConfig(), "minisip")
    assert cfg.sign_hash == SignHash.SHA_1 and cfg.minisip_compat and not cfg.send_chash
    assert cfg.tgk_length == 192
    rfc = apply_profile(ExchangeConfig(), "rfc")
    assert rfc == ExchangeConfig()  # the default accepts neither SHA-1 nor the PRF bug
    assert rfc.sign_hash == SignHash.SHA_256 and not rfc.minisip_compat and rfc.send_chash


def test_minisip_psk_192_byte_tgk_against_naive_prf() -> None:
    """Our minisip-profile I_MESSAGE, opened and derived here without the library's PRF."""
    i_cfg, r_cfg = _psk_configs(PeerProfile.MINISIP)
    initiator = Initiator(ep(i_cfg), seeded_rng(5))
    raw = initiator.start(NOW, (StreamSpec(0x1234),))
    msg = parse_message(raw)
    kem, rand, t = msg.find(Kemac), msg.find(Rand), msg.find(Timestamp)
    assert kem is not None and rand is not None and t is not None
    # transport keys from the 16-byte PSK (RFC 3830 §4.1.4; CS ID 0xFF)
    enc = naive_prf(PSK, rfc_label(0x150533E1, 0xFF, msg.csb_id, rand.value), 16)
    salt = naive_prf(PSK, rfc_label(0x29B88916, 0xFF, msg.csb_id, rand.value), 14)
    plain = aes_cm_decrypt(enc, salt, msg.csb_id, t.value, kem.encr_data)
    subs, _ = parse_sub_payloads(plain)
    tgk = next(s for s in subs if isinstance(s, KeyData))
    assert tgk.key_type == KeyDataType.TGK and len(tgk.key) == 192
    # TEK and salt of CS 1 (RFC 3830 §4.1.3) with minisip's bug, and the RFC's value differs
    tek = naive_prf(tgk.key, rfc_label(0x2AD01C64, 1, msg.csb_id, rand.value), 16, minisip=True)
    srtp_salt = naive_prf(
        tgk.key, rfc_label(0x39A2C14B, 1, msg.csb_id, rand.value), 14, minisip=True
    )
    rfc_tek = naive_prf(tgk.key, rfc_label(0x2AD01C64, 1, msg.csb_id, rand.value), 16)
    assert tek != rfc_tek
    r_keys = keys(Responder(ep(r_cfg), seeded_rng(6)).respond(raw, NOW))
    i_done = initiator.finish(None, NOW)
    assert isinstance(i_done, ExchangeCompleted)
    for result in (r_keys, i_done.result):
        sa = result.data_sa[0]
        assert (bytes(sa.master_key), bytes(sa.master_salt)) == (tek, srtp_salt)
    # a responder not asked for the minisip PRF derives the RFC keys: no agreement
    plain_cfg = ExchangeConfig(mode=Mode.PSK, psk=StaticPskStore({}, default=PSK))
    rfc_keys = keys(Responder(ep(plain_cfg), seeded_rng(7)).respond(raw, NOW))
    assert bytes(rfc_keys.data_sa[0].master_key) == rfc_tek


def _verify_sha1(cert_key: rsa.RSAPublicKey, raw: bytes, msg: Message) -> None:
    sign = msg.payloads[-1]
    assert isinstance(sign, Sign)
    body = raw[: len(raw) - len(sign.signature)]
    cert_key.verify(sign.signature, body, padding.PKCS1v15(), hashes.SHA1())


def test_minisip_pk_sha1_signature_and_no_chash() -> None:
    i_cfg, r_cfg = configs(Mode.PK)
    i_cfg, r_cfg = apply_profile(i_cfg, "minisip"), apply_profile(r_cfg, "minisip")
    raw = Initiator(ep(i_cfg), seeded_rng(11)).start(NOW, (StreamSpec(0x42),))
    msg = parse_message(raw)
    assert msg.find(Chash) is None  # minisip's CHASH parser is a stub (docs/PROFILES.md)
    sign = msg.payloads[-1]
    assert isinstance(sign, Sign) and sign.sign_type == SignType.RSA_PKCS1_1_5
    creds = i_cfg.credentials
    assert creds is not None
    pub = creds.certificate.public_key()
    assert isinstance(pub, rsa.RSAPublicKey)
    _verify_sha1(pub, raw, msg)  # cryptography's SHA-1 check: the signature is over SHA-1
    with pytest.raises(InvalidSignature):
        pub.verify(sign.signature, raw[: -len(sign.signature)], padding.PKCS1v15(), hashes.SHA256())
    tek = keys(Responder(ep(r_cfg), seeded_rng(12)).respond(raw, NOW)).data_sa[0].master_key
    assert len(tek) == 16
    # refused unless asked for: an RFC responder verifies SHA-256 only
    _, rfc_resp = configs(Mode.PK)
    refused(AuthenticationError, Responder(ep(rfc_resp), seeded_rng(13)).respond(raw, NOW))
    # a tampered message is refused by the minisip-profile responder too
    bad = bytearray(raw)
    bad[len(bad) - len(sign.signature) - 3] ^= 1
    fresh = replace(r_cfg, peer_identity=None)
    refused(MikeyError, Responder(ep(fresh), seeded_rng(14)).respond(bytes(bad), NOW))


def test_default_pk_still_sends_chash_and_no_chash_switch() -> None:
    i_cfg, _ = configs(Mode.PK)
    assert parse_message(Initiator(ep(i_cfg), seeded_rng(1)).start(NOW)).find(Chash) is not None
    no = replace(i_cfg, send_chash=False)
    assert parse_message(Initiator(ep(no), seeded_rng(1)).start(NOW)).find(Chash) is None


# --- GStreamer / ONVIF -------------------------------------------------------------------------


def mikey(*args: str, check_rc: int = 0) -> subprocess.CompletedProcess[str]:
    cmd = ["timeout", "60", sys.executable, "-m", "mikey_cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == check_rc, (proc.stdout, proc.stderr)
    return proc


GST_NOW = "1704067200"  # the T of the NULL-mode message: 2024-01-01


def test_gstreamer_null_mode_message_keys_only_with_profile() -> None:
    text = base64.b64encode(vectors.NULL_MODE_MESSAGE).decode()
    out = json.loads(
        mikey("answer", "--peer-profile", "gstreamer", "--now", GST_NOW, "--show-keys", text).stdout
    )
    assert out["data_sa"] and len(bytes.fromhex(out["data_sa"][0]["master_key"])) == 16
    # the NULL-KEMAC switch alone does not accept the 30-byte TEK / tag length quirks
    mikey("answer", "--allow-null", "--psk", "00" * 16, "--now", GST_NOW, text, check_rc=2)
    mikey("answer", "--allow-null-kemac", "--psk", "00" * 16, "--now", GST_NOW, text, check_rc=2)
    mikey("answer", "--psk", "00" * 16, "--now", GST_NOW, text, check_rc=2)


def test_gstreamer_test_suite_messages_decode_with_profile() -> None:
    for raw in (vectors.GST_CREATE_PAYLOADS,):
        out = mikey("decode", "--peer-profile", "gstreamer", raw.hex()).stdout
        assert "KEMAC" in out


GENETEC_NOW = datetime.datetime(2018, 1, 15, 16, 0, tzinfo=datetime.UTC).timestamp()


def test_onvif_filetime_message_keys_through_onvif_profile() -> None:
    text = vectors.genetec_message().hex()
    now = str(GENETEC_NOW)
    out = json.loads(
        mikey("answer", "--peer-profile", "onvif", "--now", now, "--show-keys", text).stdout
    )
    sa = out["data_sa"][0]
    assert sa["mki"] == "00000001" and sa["master_key"] == bytes(range(0x40, 0x50)).hex()
    assert sa["master_salt"] == bytes(range(0x50, 0x5E)).hex()
    # gstreamer does not accept a T that is no NTP time (it would read as January 2037)
    err = json.loads(
        mikey("answer", "--peer-profile", "gstreamer", "--now", now, text, check_rc=2).stdout
    )
    assert "non_ntp_timestamp" in err["detail"]


def test_onvif_profile_round_trip_tek_salt_split_and_mki() -> None:
    i_cfg, r_cfg = _psk_configs(PeerProfile.ONVIF)
    raw = Initiator(ep(i_cfg), seeded_rng(21)).start(NOW, (StreamSpec(0x77),))
    kem = parse_message(raw, lenient=True).find(Kemac)
    assert kem is not None
    (kd,) = [s for s in kem.plain or () if isinstance(s, KeyData)]
    assert kd.key_type == KeyDataType.TEK_SALT and kd.salt is not None and len(kd.mki or b"") == 4
    sa = keys(Responder(ep(r_cfg), seeded_rng(22)).respond(raw, NOW)).data_sa[0]
    assert bytes(sa.master_key) == kd.key and bytes(sa.master_salt) == kd.salt


# --- offer --state keeps the profile ---------------------------------------------------------


def test_state_file_keeps_profile(tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    common = ["--mode", "psk", "--psk", PSK.hex(), "--now", str(NOW)]
    offer = mikey(
        "offer", *common, "--peer-profile", "minisip", "--v", "--state", str(state)
    ).stdout.strip()
    saved = json.loads(state.read_text())["opts"]
    assert saved["peer_profile"] == "minisip"
    ans = json.loads(
        mikey("answer", *common, "--peer-profile", "minisip", "--show-keys", offer).stdout
    )
    done = json.loads(
        mikey(
            "finish", "--state", str(state), "--now", str(NOW), "--show-keys", ans["answer"]
        ).stdout
    )
    assert done["data_sa"][0]["master_key"] == ans["data_sa"][0]["master_key"]
    # an RFC responder derives other keys from the same 192-byte TGK (the bug is opt-in)
    rfc = json.loads(mikey("answer", *common, "--show-keys", offer).stdout)
    assert rfc["data_sa"][0]["master_key"] != ans["data_sa"][0]["master_key"]


def test_single_switches_reach_the_config() -> None:
    import argparse

    from mikey_cli.exchange import add_credential_options, config_from_args

    p = argparse.ArgumentParser()
    add_credential_options(p)
    cfg = config_from_args(
        p.parse_args(["--sign-hash", "sha1", "--no-chash", "--prf-compat", "minisip"])
    )
    assert cfg.sign_hash == SignHash.SHA_1 and not cfg.send_chash and cfg.minisip_compat
    assert not cfg.allow_null_kemac
    cfg = config_from_args(p.parse_args(["--allow-null"]))
    assert cfg.allow_null_kemac
    cfg = config_from_args(p.parse_args([]))
    assert cfg.sign_hash == SignHash.SHA_256 and cfg.send_chash and not cfg.allow_null_kemac


@pytest.mark.parametrize(
    "cmd", [["offer"], ["answer"], ["sip", "listen"], ["sip", "call"], ["rtsp", "serve"]]
)
def test_every_command_has_the_profile_flag(cmd: list[str]) -> None:
    out = mikey(*cmd, "--help").stdout
    for flag in (
        "--peer-profile",
        "--sign-hash",
        "--no-chash",
        "--prf-compat",
        "--allow-null-kemac",
    ):
        assert flag in out
    assert "minisip" in out and "mcptt" in out


# --- 3GPP code points -------------------------------------------------------------------------

UID_I = hashlib.sha256(b"sip:alice@mcptt.example").digest()  # binary, as TS 33.180 §F.2.1
UID_R = hashlib.sha256(b"sip:bob@mcptt.example").digest()


def mcptt_message() -> bytes:
    """A MIKEY-SAKKE I_MESSAGE shape (TS 33.180 §E.1): IDRi/IDRr UIDs, KMS URIs, ext type 7."""
    hdr = Header(DataType.SAKKE_MSG, 0x1000_0042, (), cs_map_type=1)
    payloads = (
        Timestamp(TsType.NTP_UTC, ntp_from_unix(NOW)),
        Rand(bytes(range(16))),
        IdrPayload(IdRole3gpp.UID_INITIATOR, IdType.BYTE_STRING, UID_I),
        IdrPayload(IdRole3gpp.UID_RESPONDER, IdType.BYTE_STRING, UID_R),
        IdrPayload(6, IdType.URI, b"kms.mcptt.example"),
        IdrPayload(7, IdType.URI, b"kms.mcptt.example"),
        GeneralExt(GeneralExtType3gpp.MCX_KEY_PARAMETERS, bytes(range(20))),
        Sign(SignType.ECCSI, bytes(129)),
    )
    return Message(hdr, payloads).encode()


def test_3gpp_code_points_strict_only_with_threegpp() -> None:
    raw = mcptt_message()
    with pytest.raises(DecodeError):
        parse_message(raw)
    msg = parse_message(raw, threegpp=True)
    assert msg.encode() == raw and not msg.leniencies
    roles = [p.role for p in msg.payloads if isinstance(p, IdrPayload)]
    assert roles[:2] == [IdRole3gpp.UID_INITIATOR, IdRole3gpp.UID_RESPONDER]
    ext = msg.find(GeneralExt)
    assert ext is not None and ext.ext_type is GeneralExtType3gpp.MCX_KEY_PARAMETERS
    lenient = parse_message(raw, lenient=True)
    assert lenient.encode() == raw
    assert [p.role for p in lenient.payloads if isinstance(p, IdrPayload)][:2] == [8, 9]
    for n in range(len(raw)):
        with pytest.raises(DecodeError):
            parse_message(raw[:n], threegpp=True)


def test_mcptt_profile_sets_code_points() -> None:
    assert apply_profile(ExchangeConfig(), "mcptt").threegpp_code_points
    assert not ExchangeConfig().threegpp_code_points


def test_decode_renders_binary_uids_as_hex() -> None:
    text = base64.b64encode(mcptt_message()).decode()
    mikey("decode", text, check_rc=2)
    tree = mikey("decode", "--peer-profile", "mcptt", text).stdout
    assert f"role UID_INITIATOR, BYTE_STRING hex {UID_I.hex()}" in tree
    assert "MCX_KEY_PARAMETERS" in tree and "purpose PCK" in tree
    assert "'kms.mcptt.example'" in tree
    assert "\ufffd" not in tree
    named = mikey("decode", "--lenient", text).stdout
    assert "role 8 (3GPP UID_INITIATOR; --peer-profile mcptt)" in named
    assert "7 (3GPP MCX_KEY_PARAMETERS" in named


def test_profile_names_are_the_cli_choices() -> None:
    assert [p.value for p in PeerProfile] == ["rfc", "minisip", "gstreamer", "onvif", "mcptt"]
    assert ALICE != BOB


# --- every mode under the minisip profile: agreement, and every tampered message refused ------


@pytest.mark.parametrize("mode", [Mode.PSK, Mode.PK, Mode.DH, Mode.DHHMAC, Mode.RSA_R])
@pytest.mark.parametrize("verify", [False, True])
def test_minisip_profile_every_mode_agrees_and_refuses_tampering(mode: Mode, verify: bool) -> None:
    i_cfg, r_cfg = configs(mode, verify=verify)
    i_cfg, r_cfg = apply_profile(i_cfg, "minisip"), apply_profile(r_cfg, "minisip")
    i_res, r_res, i_msg, answer = Pair(i_cfg, r_cfg, seed=31).run()
    for a, b in zip(i_res.data_sa, r_res.data_sa, strict=True):
        assert bytes(a.master_key) == bytes(b.master_key)
        assert bytes(a.master_salt) == bytes(b.master_salt)
    assert parse_message(i_msg).find(Chash) is None
    # a changed I_MESSAGE byte (inside the authenticated part) is refused by the responder
    bad = bytearray(i_msg)
    bad[12] ^= 0x01
    fresh_i, fresh_r = configs(mode, verify=verify)
    fresh_r = apply_profile(fresh_r, "minisip")
    refused(MikeyError, Responder(ep(fresh_r), seeded_rng(32)).respond(bytes(bad), NOW))
    # and a changed answer by the initiator
    if answer is not None:
        pair = Pair(apply_profile(fresh_i, "minisip"), fresh_r, seed=33)
        offer = pair.offer()
        reply = pair.responder.respond(offer, NOW + 0.5, local_ssrcs=[0x5678])
        assert isinstance(reply, ExchangeCompleted) and reply.answer is not None
        tampered = bytearray(reply.answer)
        tampered[-3] ^= 0x01
        out = pair.initiator.finish(bytes(tampered), NOW + 1)
        refused(MikeyError, out)
