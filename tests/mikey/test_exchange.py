"""MIKEY exchanges end to end in memory (RFC 3830 §3, RFC 4650, RFC 4738).

The oracle is the other side of the exchange (both parties must hold byte-identical Data SAs),
the docs/WIRE.md §Worked PSK exchange (exact R_MESSAGE bytes, TEK and salt) and GStreamer's own MIKEY
builder (``gst_mikey_message_new_from_caps`` through GI in Debian's python3).
"""

from __future__ import annotations

import base64
import subprocess
from dataclasses import replace

import pytest

from mikey import prf as mprf
from mikey.codec import (
    IdPayload,
    KeyData,
    KeySpi,
    Leniency,
    Message,
    Rand,
    Timestamp,
    encode_sub_payloads,
    parse_message,
)
from mikey.crypto import SignHash
from mikey.errors import ProtocolError, StateError
from mikey.exchange import (
    ExchangeCompleted,
    ExchangeConfig,
    ExchangeRefused,
    Initiator,
    Responder,
    State,
    StreamSpec,
)
from mikey.keying import DataSaEntry, KeyingResult, Mode, SrtpPolicy
from mikey.pki import StaticPskStore
from mikey.policy import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AES_256_CM_HMAC_SHA1_80,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
)
from mikey.registry import (
    DhGroup,
    EncrAlg,
    ErrorNo,
    IdType,
    KeyDataType,
    MacAlg,
    PrfFunc,
    SignType,
)
from mikey.replay import unix_from_ntp

from . import vectors
from .pair import ALICE, NOW, PSK, configs, ep, keys, refused, seeded_rng

ALL_POLICIES = (
    AES_CM_128_HMAC_SHA1_80,
    AES_256_CM_HMAC_SHA1_80,
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AES_CM_128_HMAC_SHA1_32,
)
# Several crypto sessions: every policy, SSRC 0 (filled by the responder) and ROCs.
MULTI_STREAMS = (
    StreamSpec(0x11111111, 7, 0),
    StreamSpec(0, 0, 1),
    StreamSpec(0x33333333, 0, 2),
    StreamSpec(0, 1, 3),
    StreamSpec(0x55555555, 2, 4),
)
LOCAL_SSRCS = (0xAAAA0001, 0xAAAA0002)
TGK_TYPES = (KeyDataType.TGK, KeyDataType.TGK_SALT)
TEK_TYPES = (KeyDataType.TEK, KeyDataType.TEK_SALT)


def sa_view(entry: DataSaEntry) -> tuple[object, ...]:
    return (
        entry.cs_id,
        entry.ssrc,
        entry.roc,
        entry.policy_no,
        entry.policy,
        bytes(entry.master_key),
        bytes(entry.master_salt),
        entry.mki,
    )


def run_exchange(
    init_cfg: ExchangeConfig,
    resp_cfg: ExchangeConfig,
    streams: tuple[StreamSpec, ...],
    *,
    seed: int = 1,
    now: float = NOW,
) -> tuple[KeyingResult, KeyingResult, bytes, bytes | None]:
    initiator = Initiator(ep(init_cfg), seeded_rng(seed))
    responder = Responder(ep(resp_cfg), seeded_rng(seed + 1000))
    i_msg = initiator.start(now, streams)
    reply = responder.respond(i_msg, now + 0.5, local_ssrcs=LOCAL_SSRCS)
    assert isinstance(reply, ExchangeCompleted), reply
    assert responder.state is State.DONE
    ep(resp_cfg).commit(reply.result)  # the session is up: its CSB is recorded
    answer = reply.answer
    assert (answer is not None) == initiator.expects_response
    i_res = keys(initiator.finish(answer, now + 1))
    assert initiator.state is State.DONE
    return i_res, reply.result, i_msg, answer


def assert_same_keys(
    i_res: KeyingResult,
    r_res: KeyingResult,
    streams: tuple[StreamSpec, ...],
    policies: tuple[SrtpPolicy, ...],
    *,
    mki_length: int = 0,
    answered: bool = True,
) -> None:
    """Equal Data SAs; without a response the initiator cannot learn the filled SSRCs."""
    i_view = [sa_view(e) for e in i_res.data_sa]
    r_view = [sa_view(e) for e in r_res.data_sa]
    if not answered:
        for entry, spec in zip(i_res.data_sa, streams, strict=True):
            assert entry.ssrc == spec.ssrc
        i_view = [v[:1] + v[2:] for v in i_view]
        r_view = [v[:1] + v[2:] for v in r_view]
    assert i_view == r_view
    fill = list(LOCAL_SSRCS)
    for i, (entry, spec) in enumerate(zip(r_res.data_sa, streams, strict=True), 1):
        assert entry.cs_id == i
        assert entry.ssrc == (spec.ssrc or fill.pop(0))
        assert entry.roc == spec.roc
        assert entry.policy == policies[spec.policy_no]
        assert len(entry.master_key) == entry.policy.master_key_len
        assert len(entry.master_salt) == entry.policy.master_salt_len
        assert any(entry.master_key)
        assert (entry.mki is None) == (mki_length == 0)
        if entry.mki is not None:
            assert len(entry.mki) == mki_length
    reg_i, reg_r = i_res.registration, r_res.registration
    assert (reg_i.csb_id, reg_i.rand, reg_i.t_initiator) == (
        reg_r.csb_id,
        reg_r.rand,
        reg_r.t_initiator,
    )


def kemac_plain_len(
    key_type: KeyDataType, key_len: int, salt_len: int, mki: int, ident: str | None
) -> int:
    subs: list[IdPayload | KeyData] = []
    if ident:
        subs.append(IdPayload(IdType.URI, ident.encode()))
    salt = bytes(salt_len) if key_type in (KeyDataType.TGK_SALT, KeyDataType.TEK_SALT) else None
    kv = KeySpi(bytes(mki)) if mki else None
    subs.append(KeyData(key_type, bytes(key_len), salt, kv))
    return len(encode_sub_payloads(subs))


def kw_sizes(key_type: KeyDataType, policy: SrtpPolicy, ident: str | None) -> tuple[int, int]:
    """(tgk_length, mki_length) making the AES-KW-128 plaintext a multiple of 8 bytes."""
    for mki in range(8):
        for tgk in (16, 20, 24, 28, 32, 36):
            if key_type in TGK_TYPES:
                key_len, salt_len = tgk, policy.master_salt_len
            elif key_type == KeyDataType.TEK:
                key_len, salt_len = policy.master_key_len + policy.master_salt_len, 0
            else:
                key_len, salt_len = policy.master_key_len, policy.master_salt_len
            if kemac_plain_len(key_type, key_len, salt_len, mki, ident) % 8 == 0:
                return tgk, mki
    raise AssertionError("no AES-KW size found")


# --- KEMAC-carrying modes: PSK (with and without V) and PK -----------------------------------


KEMAC_CASES = [
    (mode, v, encr, mac, prf, kt)
    for mode in (Mode.PSK, Mode.PK)
    for v in (False, True)
    for encr in (EncrAlg.AES_CM_128, EncrAlg.AES_CM_256, EncrAlg.AES_KW_128)
    for mac in (MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256)
    for prf in (PrfFunc.MIKEY_1, PrfFunc.PRF_HMAC_SHA_256)
    for kt in (*TGK_TYPES, *TEK_TYPES)
    # PK is slower (RSA): one PRF per algorithm pair is enough there.
    if mode == Mode.PSK
    or prf == (PrfFunc.MIKEY_1 if mac == MacAlg.HMAC_SHA_1_160 else PrfFunc.PRF_HMAC_SHA_256)
]


@pytest.mark.parametrize(
    ("mode", "verify", "encr", "mac", "prf", "key_type"),
    KEMAC_CASES,
    ids=[
        f"{m.value}-v{int(v)}-{e.name}-{a.name}-{p.name}-{k.name}"
        for m, v, e, a, p, k in KEMAC_CASES
    ],
)
def test_kemac_modes_agree(
    mode: Mode, verify: bool, encr: EncrAlg, mac: MacAlg, prf: PrfFunc, key_type: KeyDataType
) -> None:
    if key_type in TGK_TYPES:
        # TGK: one key, every policy derived from it (RFC 3830 §4.1.3).
        offered: tuple[SrtpPolicy, ...] = ALL_POLICIES
        streams: tuple[StreamSpec, ...] = MULTI_STREAMS
    else:
        # TEK types carry one SRTP master key: one policy, shared by the sessions.
        offered = (AES_256_CM_HMAC_SHA1_80,) if encr == EncrAlg.AES_CM_256 else (AEAD_AES_128_GCM,)
        streams = (StreamSpec(0x1234, 3, 0), StreamSpec(0, 0, 0))
    tgk_length, mki_length = 16, 4
    if encr == EncrAlg.AES_KW_128:
        tgk_length, mki_length = kw_sizes(key_type, offered[0], ALICE if mode == Mode.PK else None)
    i_cfg, r_cfg = configs(
        mode,
        kemac_encr=encr,
        kemac_mac=mac,
        prf=prf,
        key_type=key_type,
        tgk_length=tgk_length,
        mki_length=mki_length,
        i_verify=verify,
        i_offered=offered,
    )
    if key_type == KeyDataType.TEK:
        # A TEK without salt field carries master key || salt: the GStreamer quirk (§2.12).
        r_cfg = replace(
            r_cfg, lenient=True, accepted_leniencies=frozenset({Leniency.TEK_WITH_SALT})
        )
    i_res, r_res, i_msg, answer = run_exchange(i_cfg, r_cfg, streams)
    assert_same_keys(
        i_res, r_res, streams, offered, mki_length=mki_length, answered=answer is not None
    )
    assert parse_message(i_msg).header.v == verify
    assert (answer is not None) == verify
    assert i_res.registration.t_responder == r_res.registration.t_responder
    if key_type == KeyDataType.TGK:
        # Independent derivation from the TGK the initiator generated (RFC 3830 §4.1.3):
        # replay the initiator's randomness (CSB ID, RAND, [envelope key], MKI, TGK).
        rng = seeded_rng(1)
        csb = int.from_bytes(rng(4), "big")
        rand = rng(16)
        assert csb == r_res.registration.csb_id and rand == r_res.registration.rand
        if mode == Mode.PK:
            rng(20)
        assert (rng(mki_length) or None) == r_res.data_sa[0].mki
        key = rng(tgk_length)
        entry = r_res.data_sa[0]
        label = mprf.label(mprf.KeyConst.TEK, 1, csb, rand)
        assert bytes(entry.master_key) == mprf.prf(key, label, entry.policy.master_key_len, prf)


def test_null_kemac_only_when_allowed() -> None:
    i_cfg, r_cfg = configs(
        Mode.PSK, kemac_encr=EncrAlg.NULL, kemac_mac=MacAlg.NULL, allow_null_kemac=True
    )
    streams = (StreamSpec(0x1234, 0, 0),)
    i_res, r_res, _, _ = run_exchange(i_cfg, r_cfg, streams)
    assert_same_keys(i_res, r_res, streams, (AES_CM_128_HMAC_SHA1_80,))
    refused = Responder(ep(replace(r_cfg, allow_null_kemac=False)), seeded_rng(9)).respond(
        Initiator(ep(i_cfg), seeded_rng(2)).start(NOW, streams), NOW
    )
    assert isinstance(refused, ExchangeRefused)
    assert refused.error.error_no == ErrorNo.INVALID_EA


# --- signed and DH modes -----------------------------------------------------------------------

SIGN_CASES = [
    (st, sh)
    for st in (SignType.RSA_PKCS1_1_5, SignType.RSA_PSS)
    for sh in SignHash
    if sh in (SignHash.SHA_1, SignHash.SHA_256)
]


@pytest.mark.parametrize(("sign_type", "sign_hash"), SIGN_CASES)
@pytest.mark.parametrize("mode", [Mode.PK, Mode.DH, Mode.RSA_R])
def test_signature_algorithms(mode: Mode, sign_type: SignType, sign_hash: SignHash) -> None:
    i_cfg, r_cfg = configs(
        mode,
        sign_type=sign_type,
        sign_hash=sign_hash,
        dh_group=DhGroup.OAKLEY_1,
        i_offered=ALL_POLICIES,
    )
    i_res, r_res, _, answer = run_exchange(i_cfg, r_cfg, MULTI_STREAMS)
    assert_same_keys(i_res, r_res, MULTI_STREAMS, ALL_POLICIES, answered=answer is not None)


DH_CASES = [
    (mode, group, mac, prf)
    for mode in (Mode.DH, Mode.DHHMAC)
    for group in (DhGroup.OAKLEY_1, DhGroup.OAKLEY_2, DhGroup.OAKLEY_5)
    for mac in (MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256)
    for prf in (PrfFunc.MIKEY_1, PrfFunc.PRF_HMAC_SHA_256)
    if mode == Mode.DHHMAC or mac == MacAlg.HMAC_SHA_1_160
]


@pytest.mark.parametrize(("mode", "group", "mac", "prf"), DH_CASES)
def test_dh_modes_agree(mode: Mode, group: DhGroup, mac: MacAlg, prf: PrfFunc) -> None:
    i_cfg, r_cfg = configs(mode, dh_group=group, kemac_mac=mac, prf=prf, i_offered=ALL_POLICIES)
    i_res, r_res, _, answer = run_exchange(i_cfg, r_cfg, MULTI_STREAMS)
    assert answer is not None  # DH responses are mandatory (RFC 3830 §3.3)
    assert_same_keys(i_res, r_res, MULTI_STREAMS, ALL_POLICIES)


RSA_R_CASES = [
    (encr, mac, prf, mki)
    for encr in (EncrAlg.AES_CM_128, EncrAlg.AES_CM_256, EncrAlg.AES_KW_128)
    for mac in (MacAlg.HMAC_SHA_1_160, MacAlg.HMAC_SHA_256_256)
    for prf in (PrfFunc.MIKEY_1, PrfFunc.PRF_HMAC_SHA_256)
    for mki in (0, 4)
    if (mac == MacAlg.HMAC_SHA_1_160) == (prf == PrfFunc.MIKEY_1) or mki == 0
]


@pytest.mark.parametrize(("encr", "mac", "prf", "mki"), RSA_R_CASES)
def test_rsa_r_kemac_algorithms(encr: EncrAlg, mac: MacAlg, prf: PrfFunc, mki: int) -> None:
    tgk_length = 16
    if encr == EncrAlg.AES_KW_128:
        # The responder's KEMAC plaintext is IDr || TGK (RFC 4738).
        tgk_length, mki = kw_sizes(KeyDataType.TGK, AES_CM_128_HMAC_SHA1_80, "sip:bob@example.com")
    i_cfg, r_cfg = configs(
        Mode.RSA_R,
        kemac_encr=encr,
        kemac_mac=mac,
        prf=prf,
        tgk_length=tgk_length,
        mki_length=mki,
        i_offered=ALL_POLICIES,
    )
    i_res, r_res, _, _ = run_exchange(i_cfg, r_cfg, MULTI_STREAMS)
    assert_same_keys(i_res, r_res, MULTI_STREAMS, ALL_POLICIES, mki_length=mki)


# --- docs/WIRE.md §Worked PSK exchange and GStreamer's builder ---------------------------------

SPEC_PSK = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")


def test_spec_vector_exact_r_message() -> None:
    """docs/WIRE.md §Worked PSK exchange: its I_MESSAGE gives exactly its R_MESSAGE, TEK and salt."""
    cfg = ExchangeConfig(mode=Mode.PSK, psk=StaticPskStore({}, default=SPEC_PSK))
    t_i = unix_from_ntp(vectors.SPEC_T_I)
    reply = Responder(ep(cfg), seeded_rng(0)).respond(vectors.PSK_I_MESSAGE, t_i + 1.0)
    assert isinstance(reply, ExchangeCompleted)
    assert reply.answer == vectors.PSK_R_MESSAGE
    (entry,) = reply.result.data_sa
    assert entry.ssrc == 0xDEADBEEF
    assert bytes(entry.master_key) == bytes.fromhex("1b3c86914d2e99652f57470a969a845a")
    assert bytes(entry.master_salt) == bytes.fromhex("d4d883ced237bdca4ec8eb8235b1")
    assert reply.result.registration.rand == vectors.SPEC_RAND


GST_BUILD = """
import sys, gi
gi.require_version('Gst', '1.0'); gi.require_version('GstSdp', '1.0')
from gi.repository import Gst, GstSdp
Gst.init(None)
caps = Gst.Caps.from_string('application/x-srtp, srtp-cipher=(string)aes-128-icm, '
    'srtp-auth=(string)hmac-sha1-80, srtcp-cipher=(string)aes-128-icm, '
    'srtcp-auth=(string)hmac-sha1-80')
caps.set_value('srtp-key', Gst.Buffer.new_wrapped(bytes(range(1, 31))))
msg = GstSdp.MIKEYMessage.new_from_caps(caps)
msg.add_cs_srtp(0, 0x12345678, 5)
print(msg.base64_encode())
"""


def test_gstreamer_null_profile() -> None:
    """GStreamer's NULL-KEMAC TEK (key || salt, 30 bytes) message needs the explicit profile."""
    from tests.interop.peers import require_gst_sdp

    python = require_gst_sdp()
    out = subprocess.run(
        ["timeout", "60", python, "-c", GST_BUILD], capture_output=True, text=True, check=True
    ).stdout
    raw = base64.b64decode(out.strip())
    msg = parse_message(raw, lenient=True)
    t = msg.find(Timestamp)
    assert t is not None
    now = unix_from_ntp(t.value)
    # A pre-shared key is configured but unused: the NULL KEMAC has neither MAC nor encryption.
    base = ExchangeConfig(mode=Mode.PSK, psk=StaticPskStore({}, default=PSK))
    refused = Responder(ep(base), seeded_rng(1)).respond(raw, now)
    assert isinstance(refused, ExchangeRefused)
    reply = Responder(ep(base.gstreamer_profile()), seeded_rng(1)).respond(raw, now)
    assert isinstance(reply, ExchangeCompleted)
    assert reply.answer is None
    (entry,) = reply.result.data_sa
    assert (entry.ssrc, entry.roc) == (0x12345678, 5)
    assert entry.policy == AES_CM_128_HMAC_SHA1_80
    assert bytes(entry.master_key) + bytes(entry.master_salt) == bytes(range(1, 31))


def test_our_gstreamer_profile_round_trip() -> None:
    i_cfg, r_cfg = configs(Mode.PSK)
    i_cfg, r_cfg = i_cfg.gstreamer_profile(), r_cfg.gstreamer_profile()
    streams = (StreamSpec(0x1234, 0, 0),)
    i_res, r_res, i_msg, answer = run_exchange(i_cfg, r_cfg, streams)
    assert answer is None
    assert_same_keys(i_res, r_res, streams, (AES_CM_128_HMAC_SHA1_80,))
    refused = Responder(ep(configs(Mode.PSK)[1]), seeded_rng(4)).respond(i_msg, NOW)
    assert isinstance(refused, ExchangeRefused)


# --- re-keying (RFC 3830 §4.5) -----------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode))
def test_rekey_same_csb(mode: Mode) -> None:
    i_cfg, r_cfg = configs(mode, dh_group=DhGroup.OAKLEY_1, i_verify=True)
    streams = (StreamSpec(0x1234, 0, 0),)
    first_i, first_r, _, _ = run_exchange(i_cfg, r_cfg, streams, seed=1)
    assert not first_r.rekey
    initiator = Initiator(ep(i_cfg), seeded_rng(77))
    i_msg = initiator.start(NOW + 10, streams, rekey_of=first_i.registration)
    assert parse_message(i_msg).csb_id == first_i.registration.csb_id
    reply = Responder(ep(r_cfg), seeded_rng(78)).respond(i_msg, NOW + 10.5)
    assert isinstance(reply, ExchangeCompleted), reply
    second_i = keys(initiator.finish(reply.answer, NOW + 11))
    assert second_i.rekey and reply.result.rekey
    assert [sa_view(e) for e in second_i.data_sa] == [sa_view(e) for e in reply.result.data_sa]
    assert bytes(second_i.data_sa[0].master_key) != bytes(first_i.data_sa[0].master_key)


def test_rekey_from_another_identity_refused() -> None:
    i_cfg, r_cfg = configs(Mode.PSK)
    mallory = "sip:mallory@example.com"
    r_cfg = replace(r_cfg, psk=StaticPskStore({ALICE: PSK, mallory: b"m" * 16}))
    first_i, _, _, _ = run_exchange(i_cfg, r_cfg, (StreamSpec(1, 0, 0),))
    m_cfg = replace(i_cfg, identity=mallory, psk=StaticPskStore({"sip:bob@example.com": b"m" * 16}))
    i_msg = Initiator(ep(m_cfg), seeded_rng(5)).start(
        NOW + 5, (StreamSpec(1, 0, 0),), rekey_of=first_i.registration
    )
    reply = Responder(ep(r_cfg), seeded_rng(6)).respond(i_msg, NOW + 5)
    assert isinstance(reply, ExchangeRefused)
    assert reply.error.error_no == ErrorNo.INVALID_ID


def test_psk_update_without_rand_keeps_initial_rand() -> None:
    """An update omitting RAND is keyed with the RAND of the CSB's first exchange (§4.5)."""
    i_cfg, r_cfg = configs(Mode.PSK, send_identities=True)
    first_i, first_r, _, _ = run_exchange(i_cfg, r_cfg, (StreamSpec(1, 0, 0),))
    initial_rand = first_r.registration.rand
    csb = first_r.registration.csb_id
    # Build the update by hand: HDR, T, IDi, IDr, SP, KEMAC (no RAND), keyed with initial RAND.
    template = parse_message(
        Initiator(ep(i_cfg), seeded_rng(8)).start(
            NOW + 20, (StreamSpec(1, 0, 0),), rekey_of=first_i.registration
        )
    )
    t = template.find(Timestamp)
    assert t is not None
    tgk = bytes(range(100, 116))
    tk = mprf.derive_transport_keys(PSK, csb, initial_rand)
    from mikey import crypto
    from mikey.codec import Kemac, SecurityPolicy

    plain = encode_sub_payloads([KeyData(KeyDataType.TGK, tgk)])
    enc = crypto.encrypt_kemac(EncrAlg.AES_CM_128, tk, csb, t.value, plain)
    body = [p for p in template.payloads if isinstance(p, (Timestamp, IdPayload, SecurityPolicy))]
    assert not any(isinstance(p, Rand) for p in body)
    raw = Message(
        template.header, (*body, Kemac(EncrAlg.AES_CM_128, enc, MacAlg.HMAC_SHA_1_160, bytes(20)))
    ).encode()
    raw = raw[:-20] + crypto.mac(MacAlg.HMAC_SHA_1_160, tk.auth_key, raw[:-20])
    reply = Responder(ep(r_cfg), seeded_rng(9)).respond(raw, NOW + 20)
    assert isinstance(reply, ExchangeCompleted), reply
    assert reply.result.rekey
    assert reply.result.registration.rand == initial_rand
    entry = reply.result.data_sa[0]
    assert bytes(entry.master_key) == mprf.prf(
        tgk, mprf.label(mprf.KeyConst.TEK, 1, csb, initial_rand), 16
    )
    assert bytes(entry.master_salt) == mprf.prf(
        tgk, mprf.label(mprf.KeyConst.SALT, 1, csb, initial_rand), 14
    )
    # The same message for an unknown CSB has no RAND to fall back on.
    fresh = Responder(ep(configs(Mode.PSK)[1]), seeded_rng(10)).respond(raw, NOW + 20)
    assert isinstance(fresh, ExchangeRefused)


# --- state machines ------------------------------------------------------------------------------


def _initiator_in(state: State, cfg: ExchangeConfig) -> tuple[Initiator, bytes | None]:
    init = Initiator(ep(cfg), seeded_rng(3))
    if state is State.IDLE:
        return init, None
    i_msg = init.start(NOW, (StreamSpec(1, 0, 0),))
    reply = Responder(ep(configs(Mode.PSK, i_verify=True)[1]), seeded_rng(4)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted)
    if state is State.AWAITING:
        return init, reply.answer
    if state is State.DONE:
        keys(init.finish(reply.answer, NOW))
        return init, reply.answer
    init.abort()
    return init, reply.answer


INITIATOR_OK = {(State.IDLE, "start"): State.AWAITING, (State.AWAITING, "finish"): State.DONE}


@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("inp", ["start", "finish"])
def test_initiator_state_table(state: State, inp: str) -> None:
    cfg = configs(Mode.PSK, i_verify=True)[0]
    init, answer = _initiator_in(state, cfg)
    assert init.state is state
    expected = INITIATOR_OK.get((state, inp))

    def call() -> object:
        if inp == "start":
            return init.start(NOW, (StreamSpec(1, 0, 0),))
        return init.finish(answer, NOW)

    if expected is None:
        with pytest.raises(StateError):
            call()
        assert init.state is State.FAILED
        if state is not State.DONE:  # after DONE the keys belong to the caller of finish()
            assert init.result is None or all(e.wiped for e in init.result.data_sa)
    else:
        call()
        assert init.state is expected


@pytest.mark.parametrize("state", [State.IDLE, State.DONE, State.FAILED])
def test_responder_state_table(state: State) -> None:
    i_cfg, r_cfg = configs(Mode.PSK)
    resp = Responder(ep(r_cfg), seeded_rng(5))
    i_msg = Initiator(ep(i_cfg), seeded_rng(6)).start(NOW, (StreamSpec(1, 0, 0),))
    if state is State.DONE:
        assert isinstance(resp.respond(i_msg, NOW), ExchangeCompleted)
    elif state is State.FAILED:
        assert isinstance(resp.respond(b"garbage-garbage", NOW), ExchangeRefused)
    assert resp.state is state
    fresh = Initiator(ep(i_cfg), seeded_rng(7)).start(NOW + 1, (StreamSpec(1, 0, 0),))
    if state is State.IDLE:
        assert isinstance(resp.respond(fresh, NOW), ExchangeCompleted)
        assert resp.state is State.DONE
    else:
        with pytest.raises(StateError):
            resp.respond(fresh, NOW)
        assert resp.state is State.FAILED


def test_finish_failure_wipes_psk_result() -> None:
    """PSK without V holds keys after start(); a failed finish() wipes them."""
    init = Initiator(ep(configs(Mode.PSK)[0]), seeded_rng(1))
    init.start(NOW, (StreamSpec(1, 0, 0),))
    held = init.result
    assert held is not None and not held.data_sa[0].wiped
    refused(ProtocolError, init.finish(b"\x01\x01", NOW))  # a response where none is expected
    assert init.state is State.FAILED and init.result is None and held.data_sa[0].wiped
