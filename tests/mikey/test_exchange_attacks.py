"""Negative matrix for the MIKEY exchanges: every refusal has its exact RFC 3830 §6.12 error
number, leaves no Data SA behind (responder ``result`` None, initiator result wiped) and never
shows key material in an exception.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

import pytest

from mikey import crypto
from mikey.codec import (
    DhPayload,
    Err,
    Header,
    Kemac,
    Message,
    Payload,
    Pke,
    Rand,
    Sign,
    Timestamp,
    Verification,
    parse_message,
)
from mikey.dh import DH_PARAMS
from mikey.errors import (
    AuthenticationError,
    DecodeError,
    MikeyError,
    PeerError,
    ProtocolError,
    ReplayError,
)
from mikey.exchange import (
    CsbTable,
    ExchangeCompleted,
    ExchangeConfig,
    ExchangeRefused,
    Initiator,
    Responder,
    State,
    StreamSpec,
)
from mikey.identity import certificate_fingerprint
from mikey.keying import KeyingResult, Mode, SrtpPolicy
from mikey.pki import Credentials, StaticPskStore, TrustStore
from mikey.prf import derive_transport_keys
from mikey.registry import (
    DataType,
    DhGroup,
    EncrAlg,
    ErrorNo,
    MacAlg,
    SrtpAuthAlg,
    SrtpEncrAlg,
    SrtpPrf,
)
from mikey.replay import ReplayGuard, TimestampPolicy, make_timestamp

from . import certs
from .pair import ALICE, BOB, NOW, PSK, Pair, configs, ep, keys, refused, seeded_rng

STREAMS = (StreamSpec(0x1234, 0, 0),)
MODES_WITH_RESPONSE = [
    (Mode.PSK, True),
    (Mode.PK, True),
    (Mode.DH, False),
    (Mode.DHHMAC, False),
    (Mode.RSA_R, False),
]
ALL_MODES = [(Mode.PSK, False), (Mode.PK, False), *MODES_WITH_RESPONSE]


def mode_configs(mode: Mode, verify: bool, **kw: object) -> tuple[ExchangeConfig, ExchangeConfig]:
    return configs(mode, dh_group=DhGroup.OAKLEY_1, i_verify=verify, **kw)


def secrets_of(*results: KeyingResult | None) -> list[bytes]:
    out = [PSK]
    for res in results:
        if res is not None:
            for e in res.data_sa:
                out += [bytes(e.master_key), bytes(e.master_salt)]
    return out


def assert_no_leak(exc: BaseException, secrets: Iterable[bytes]) -> None:
    text = f"{exc} {exc!r} {exc.args!r}"
    for s in secrets:
        assert s.hex() not in text and repr(s) not in text and s.hex().upper() not in text


def refuse(cfg: ExchangeConfig, data: bytes, now: float = NOW, seed: int = 50) -> MikeyError:
    """The responder must refuse ``data``: returns the error; asserts no keys were produced."""
    resp = Responder(ep(cfg), seeded_rng(seed))
    reply = resp.respond(data, now)
    assert isinstance(reply, ExchangeRefused), "tampered message accepted"
    assert resp.result is None and resp.state is State.FAILED
    assert isinstance(reply.error, MikeyError)
    assert_no_leak(reply.error, secrets_of())
    return reply.error


def genuine(mode: Mode, verify: bool, seed: int = 1) -> tuple[bytes, bytes | None]:
    """A deterministic valid I_MESSAGE and its answer (fresh configs, nothing remembered)."""
    i_cfg, r_cfg = mode_configs(mode, verify)
    i_msg = Initiator(ep(i_cfg), seeded_rng(seed)).start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(seed + 1)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted)
    return i_msg, reply.answer


def positions(data: bytes) -> list[int]:
    """Every byte of small messages; for big (certificate-carrying) ones the first and last
    bytes of every payload region densely and the certificates/modular values sampled."""
    n = len(data)
    if n <= 400:
        return list(range(n))
    head = set(range(160))
    tail = set(range(max(0, n - 640), n))
    middle = set(range(160, n, 13))
    return sorted(head | tail | middle)


def flip(data: bytes, pos: int, bit: int = 0) -> bytes:
    b = bytearray(data)
    b[pos] ^= 1 << bit
    return bytes(b)


def resign(msg: Message, payloads: list[Payload], key: Credentials) -> bytes:
    """Re-encode ``payloads`` under ``msg``'s header with a fresh SIGN by ``key`` (§4.7)."""
    siglen = key.private_key.key_size // 8
    sign = msg.payloads[-1]
    assert isinstance(sign, Sign)
    body = Message(msg.header, (*payloads, Sign(sign.sign_type, bytes(siglen)))).encode()[:-siglen]
    return body + crypto.sign(key.private_key, body)


def alice_creds() -> Credentials:
    alice = certs.leaf("alice", san_uri=ALICE)
    return Credentials(alice.key, (alice.cert,))


def bob_creds() -> Credentials:
    bob = certs.leaf("bob", san_uri=BOB)
    return Credentials(bob.key, (bob.cert,))


# --- bit flips, truncation, extension ---------------------------------------------------------


@pytest.mark.parametrize(("mode", "verify"), ALL_MODES, ids=str)
def test_flipped_bit_in_i_message(mode: Mode, verify: bool) -> None:
    i_msg, _ = genuine(mode, verify)
    _, r_cfg = mode_configs(mode, verify)
    for pos in positions(i_msg):
        err = refuse(ep(r_cfg, replay=ReplayGuard()), flip(i_msg, pos, pos % 8))
        assert err.error_no in ErrorNo
        if pos >= len(i_msg) - 20 and mode in (Mode.PSK, Mode.DHHMAC):
            assert err.error_no == ErrorNo.AUTH_FAILURE  # inside the KEMAC MAC value
        if pos >= len(i_msg) - 256 and mode in (Mode.PK, Mode.DH, Mode.RSA_R):
            assert err.error_no == ErrorNo.AUTH_FAILURE  # inside the signature value


@pytest.mark.parametrize(("mode", "verify"), MODES_WITH_RESPONSE, ids=str)
def test_flipped_bit_in_r_message(mode: Mode, verify: bool) -> None:
    i_cfg, r_cfg = mode_configs(mode, verify)
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted) and reply.answer is not None
    answer = reply.answer
    secrets = secrets_of(reply.result)
    for pos in positions(answer):
        init = Initiator(ep(i_cfg), seeded_rng(1))
        again = init.start(NOW, STREAMS)  # the same pending exchange (PKCS#1 pads randomly)
        assert again == i_msg or mode == Mode.PK
        info = refused(MikeyError, init.finish(flip(answer, pos, (pos * 3) % 8), NOW))
        assert init.state is State.FAILED and init.result is None
        assert_no_leak(info.value, secrets)
        if pos >= len(answer) - 20 and mode in (Mode.PSK, Mode.PK, Mode.DHHMAC):
            assert info.value.error_no == ErrorNo.AUTH_FAILURE
        if pos >= len(answer) - 256 and mode in (Mode.DH, Mode.RSA_R):
            assert info.value.error_no == ErrorNo.AUTH_FAILURE


@pytest.mark.parametrize(("mode", "verify"), ALL_MODES, ids=str)
def test_truncations_and_extensions(mode: Mode, verify: bool) -> None:
    i_msg, _ = genuine(mode, verify)
    _, r_cfg = mode_configs(mode, verify)
    cuts = range(len(i_msg)) if len(i_msg) < 400 else [*range(0, len(i_msg), 37), len(i_msg) - 1]
    for cut in cuts:
        err = refuse(r_cfg, i_msg[:cut])
        assert isinstance(err, DecodeError) and err.error_no == ErrorNo.UNSPECIFIED
    for extra in (b"\x00", b"\x01", b"\x00\x00", bytes(range(40))):
        err = refuse(r_cfg, i_msg + extra)
        assert isinstance(err, DecodeError) and err.error_no == ErrorNo.UNSPECIFIED


def test_extra_payload_breaks_the_mac() -> None:
    i_msg, _ = genuine(Mode.PSK, False)
    msg = parse_message(i_msg)
    payloads = list(msg.payloads)
    payloads.insert(2, Rand(bytes(16)))  # a second RAND in the MAC-protected body
    err = refuse(mode_configs(Mode.PSK, False)[1], Message(msg.header, tuple(payloads)).encode())
    assert err.error_no == ErrorNo.AUTH_FAILURE


# --- replay, reflection, timestamps -----------------------------------------------------------


@pytest.mark.parametrize(("mode", "verify"), ALL_MODES, ids=str)
def test_replayed_i_message(mode: Mode, verify: bool) -> None:
    i_cfg, r_cfg = mode_configs(mode, verify)
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted)
    ep(r_cfg).commit(reply.result)
    # A fresh CSB table: the replay cache alone must catch it.
    err = refuse(ep(r_cfg, csbs=CsbTable()), i_msg, NOW + 1)
    assert isinstance(err, ReplayError) and err.error_no == ErrorNo.INVALID_TS
    # Through the CSB table (same CSB, not newer): also INVALID_TS.
    err = refuse(ep(r_cfg, replay=ReplayGuard()), i_msg, NOW + 1)
    assert err.error_no == ErrorNo.INVALID_TS


@pytest.mark.parametrize(("mode", "verify"), MODES_WITH_RESPONSE, ids=str)
def test_reflected_messages(mode: Mode, verify: bool) -> None:
    i_cfg, r_cfg = mode_configs(mode, verify)
    init = Initiator(ep(i_cfg), seeded_rng(1))
    i_msg = init.start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted) and reply.answer is not None
    err = refuse(ep(r_cfg, replay=ReplayGuard(), csbs=CsbTable()), reply.answer)
    assert err.error_no == ErrorNo.INVALID_DT
    info = refused(ProtocolError, init.finish(i_msg, NOW))  # its own I_MESSAGE reflected back
    assert info.value.error_no == ErrorNo.INVALID_DT
    assert init.result is None and init.state is State.FAILED


@pytest.mark.parametrize("offset", [-301.0, 301.0, -86400.0 * 365, 86400.0 * 365])
@pytest.mark.parametrize(("mode", "verify"), ALL_MODES, ids=str)
def test_stale_and_future_timestamps(mode: Mode, verify: bool, offset: float) -> None:
    i_msg, _ = genuine(mode, verify)
    err = refuse(mode_configs(mode, verify)[1], i_msg, NOW - offset)
    assert err.error_no == ErrorNo.INVALID_TS


def test_stale_r_message() -> None:
    i_cfg, r_cfg = mode_configs(Mode.PSK, True)
    init = Initiator(ep(i_cfg), seeded_rng(1))
    i_msg = init.start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted) and reply.answer is not None
    info = refused(MikeyError, init.finish(reply.answer, NOW + 1000))
    assert info.value.error_no == ErrorNo.INVALID_TS and init.result is None


# --- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [Mode.PSK, Mode.DHHMAC])
def test_wrong_psk_and_unknown_identity(mode: Mode) -> None:
    i_msg, _ = genuine(mode, mode == Mode.PSK)
    _, r_cfg = mode_configs(mode, False)
    wrong = replace(r_cfg, psk=StaticPskStore({ALICE: b"w" * 16}))
    assert refuse(wrong, i_msg).error_no == ErrorNo.AUTH_FAILURE
    unknown = replace(r_cfg, psk=StaticPskStore({"sip:carol@example.com": PSK}))
    assert refuse(unknown, i_msg).error_no == ErrorNo.INVALID_ID


BAD_CERTS = {
    "untrusted": {"issuer": "other"},
    "self-signed": {"issuer": "self"},
    "expired": {"expired": True},
    "encrypt-only": {"key_usage": "encrypt"},
    "no-usage": {"key_usage": "none"},
}


@pytest.mark.parametrize("kind", sorted(BAD_CERTS))
@pytest.mark.parametrize("mode", [Mode.PK, Mode.DH, Mode.RSA_R])
def test_bad_initiator_certificate(mode: Mode, kind: str) -> None:
    bad = certs.leaf(f"alice-{kind}", san_uri=ALICE, **BAD_CERTS[kind])  # type: ignore[arg-type]
    i_cfg, r_cfg = mode_configs(mode, False, i_credentials=Credentials(bad.key, (bad.cert,)))
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    assert refuse(r_cfg, i_msg).error_no == ErrorNo.INVALID_CERT


@pytest.mark.parametrize("mode", [Mode.PK, Mode.DH, Mode.RSA_R])
def test_wrong_signature(mode: Mode) -> None:
    """Alice's certificate, Mallory's signature."""
    i_msg, _ = genuine(mode, False)
    msg = parse_message(i_msg)
    mallory = certs.leaf("mallory", san_uri="sip:mallory@example.com")
    forged = resign(msg, list(msg.payloads[:-1]), Credentials(mallory.key, (mallory.cert,)))
    assert refuse(mode_configs(mode, False)[1], forged).error_no == ErrorNo.AUTH_FAILURE


def bad_dh_values(group: DhGroup) -> list[bytes]:
    p, n = DH_PARAMS[group].p, DH_PARAMS[group].length
    return [bytes(n), (1).to_bytes(n, "big"), (p - 1).to_bytes(n, "big"), p.to_bytes(n, "big")]


def test_bad_dh_values_from_initiator() -> None:
    """A trusted attacker's correctly signed I_MESSAGE with a degenerate DHi (RFC 3830 §6.4)."""
    mallory = certs.leaf("mallory", san_uri="sip:mallory@example.com")
    m_creds = Credentials(mallory.key, (mallory.cert,))
    i_cfg, r_cfg = mode_configs(
        Mode.DH, False, i_credentials=m_creds, i_identity="sip:mallory@example.com"
    )
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    msg = parse_message(i_msg)
    for value in bad_dh_values(DhGroup.OAKLEY_1):
        payloads = [
            DhPayload(p.group, value) if isinstance(p, DhPayload) else p for p in msg.payloads[:-1]
        ]
        forged = resign(msg, payloads, m_creds)
        err = refuse(ep(r_cfg, replay=ReplayGuard()), forged)
        assert err.error_no == ErrorNo.INVALID_DH


def test_bad_dh_values_from_responder() -> None:
    i_cfg, _ = mode_configs(Mode.DH, False)
    i_msg, answer = genuine(Mode.DH, False)
    assert answer is not None
    msg = parse_message(answer)
    for value in bad_dh_values(DhGroup.OAKLEY_1):
        dhr_done = False
        payloads: list[Payload] = []
        for p in msg.payloads[:-1]:
            if isinstance(p, DhPayload) and not dhr_done:
                p, dhr_done = DhPayload(p.group, value), True
            payloads.append(p)
        forged = resign(msg, payloads, bob_creds())
        init = Initiator(ep(i_cfg, replay=ReplayGuard()), seeded_rng(1))
        assert init.start(NOW, STREAMS) == i_msg
        info = refused(ProtocolError, init.finish(forged, NOW))
        assert info.value.error_no == ErrorNo.INVALID_DH and init.result is None


# --- policy downgrades -------------------------------------------------------------------------


def test_null_kemac_downgrade_refused() -> None:
    for encr, mac, err_no in (
        (EncrAlg.NULL, MacAlg.NULL, ErrorNo.INVALID_EA),
        (EncrAlg.NULL, MacAlg.HMAC_SHA_1_160, ErrorNo.INVALID_EA),
        (EncrAlg.AES_CM_128, MacAlg.NULL, ErrorNo.INVALID_MAC),
    ):
        i_cfg, r_cfg = configs(
            Mode.PSK, i_kemac_encr=encr, i_kemac_mac=mac, i_allow_null_kemac=True
        )
        i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
        assert refuse(r_cfg, i_msg).error_no == err_no
        ok = Responder(ep(replace(r_cfg, allow_null_kemac=True)), seeded_rng(3)).respond(i_msg, NOW)
        assert isinstance(ok, ExchangeCompleted)


NULL_SRTP = SrtpPolicy(encr_alg=SrtpEncrAlg.NULL, auth_alg=SrtpAuthAlg.NULL, auth_key_len=0)


def test_null_srtp_policy_refused_unless_allowed() -> None:
    i_cfg, r_cfg = configs(Mode.PSK, i_offered=(NULL_SRTP,))
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    assert refuse(r_cfg, i_msg).error_no == ErrorNo.INVALID_SP
    allowed = replace(r_cfg, acceptable=replace(r_cfg.acceptable, allow_null_srtp=True))
    assert isinstance(Responder(ep(allowed), seeded_rng(2)).respond(i_msg, NOW), ExchangeCompleted)


@pytest.mark.parametrize(
    "policy",
    [
        SrtpPolicy(key_derivation_rate=16),
        SrtpPolicy(fec_order=1),
        SrtpPolicy(prefix_len=4),
        SrtpPolicy(encr_alg=SrtpEncrAlg.AES_F8),
        SrtpPolicy(prf=SrtpPrf(1)) if len(SrtpPrf) > 1 else SrtpPolicy(fec_order=2),
    ],
    ids=["kdr", "fec", "prefix", "aes-f8", "prf"],
)
def test_unsupported_sp_parameters(policy: SrtpPolicy) -> None:
    i_cfg, r_cfg = configs(Mode.PSK, i_offered=(policy,))
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    assert refuse(r_cfg, i_msg).error_no == ErrorNo.INVALID_SPPAR


def test_rekey_from_another_identity() -> None:
    mallory = "sip:mallory@example.com"
    i_cfg, r_cfg = configs(Mode.PSK)
    r_cfg = replace(r_cfg, psk=StaticPskStore({ALICE: PSK, mallory: b"m" * 16}))
    first = Initiator(ep(i_cfg), seeded_rng(1))
    i_msg = first.start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeCompleted)
    ep(r_cfg).commit(reply.result)
    first_res = keys(first.finish(None, NOW))
    m_cfg = replace(i_cfg, identity=mallory, psk=StaticPskStore({BOB: b"m" * 16}))
    rekey = Initiator(ep(m_cfg), seeded_rng(5)).start(
        NOW + 5, STREAMS, rekey_of=first_res.registration
    )
    assert refuse(r_cfg, rekey, NOW + 5).error_no == ErrorNo.INVALID_ID


# --- error messages ------------------------------------------------------------------------------


def test_forged_err_message_is_unauthenticated() -> None:
    i_cfg, _ = mode_configs(Mode.PSK, True)
    init = Initiator(ep(i_cfg), seeded_rng(1))
    i_msg = parse_message(init.start(NOW, STREAMS))
    hdr = Header(DataType.ERROR, i_msg.csb_id, i_msg.header.cs_map)
    forged = Message(
        hdr,
        (
            make_timestamp(NOW),
            Err(ErrorNo.INVALID_SP),
            Verification(MacAlg.HMAC_SHA_1_160, bytes(20)),
        ),
    ).encode()
    info = refused(PeerError, init.finish(forged, NOW))
    assert info.value.authenticated is False
    assert info.value.errors == (ErrorNo.INVALID_SP,)
    assert init.result is None and init.state is State.FAILED


def test_genuine_err_message_is_authenticated() -> None:
    """A refusal after authentication (policy) carries a V the initiator can verify."""
    i_cfg, r_cfg = configs(Mode.PSK, i_verify=True, i_offered=(NULL_SRTP,))
    init = Initiator(ep(i_cfg), seeded_rng(1))
    i_msg = init.start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW)
    assert isinstance(reply, ExchangeRefused) and reply.answer is not None
    info = refused(PeerError, init.finish(reply.answer, NOW))
    assert info.value.authenticated is True
    assert info.value.error_no == ErrorNo.INVALID_SP


# --- resource bounds -----------------------------------------------------------------------------


def test_replay_cache_pressure() -> None:
    guard = ReplayGuard(TimestampPolicy(skew=300.0), max_entries=64)
    i_cfg, r_cfg = configs(Mode.PSK, i_verify=True)
    r_cfg = ep(r_cfg, replay=guard, csbs=CsbTable(max_entries=64))
    refused = 0
    for n in range(400):
        i_msg = Initiator(ep(i_cfg), seeded_rng(10_000 + n)).start(NOW + n * 0.01, STREAMS)
        reply = Responder(ep(r_cfg), seeded_rng(n)).respond(i_msg, NOW + n * 0.01)
        if isinstance(reply, ExchangeRefused):
            assert reply.error.error_no == ErrorNo.INVALID_TS
            refused += 1
        else:
            r_cfg.commit(reply.result)  # every session established: the CSB table fills too
        assert len(guard) <= 64 and len(ep(r_cfg).csbs) <= 64
    assert refused > 0  # the cache refused rather than grew
    # A legitimate exchange once the (load-shrunk) window has moved on.
    later = NOW + 4 + 300 / 16 + 1
    init = Initiator(ep(i_cfg), seeded_rng(99))
    reply = Responder(ep(r_cfg), seeded_rng(98)).respond(init.start(later, STREAMS), later)
    assert isinstance(reply, ExchangeCompleted)
    res = keys(init.finish(reply.answer, later))
    assert bytes(res.data_sa[0].master_key) == bytes(reply.result.data_sa[0].master_key)


# --- no oracle -----------------------------------------------------------------------------------


def _answer_shape(answer: bytes | None) -> tuple[object, ...]:
    if answer is None:
        return (None,)
    msg = parse_message(answer)
    return (len(answer), tuple(type(p).__name__ for p in msg.payloads), msg.find(Err))


def test_psk_mac_and_decryption_failures_look_alike() -> None:
    i_cfg, r_cfg = configs(Mode.PSK, kemac_encr=EncrAlg.AES_KW_128, tgk_length=20, i_verify=True)
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    msg = parse_message(i_msg)
    bad_mac = flip(i_msg, len(i_msg) - 1)
    # Valid MAC over a corrupted AES-KW ciphertext: the unwrap integrity check fails.
    kem = msg.payloads[-1]
    assert isinstance(kem, Kemac)
    rand = msg.find(Rand)
    assert rand is not None
    tk = derive_transport_keys(PSK, msg.csb_id, rand.value, encr_alg=EncrAlg.AES_KW_128)
    broken = replace(kem, encr_data=flip(kem.encr_data, 3))
    raw = Message(msg.header, (*msg.payloads[:-1], broken)).encode()
    bad_unwrap = raw[:-20] + crypto.mac(MacAlg.HMAC_SHA_1_160, tk.auth_key, raw[:-20])
    outcomes = []
    for data in (bad_mac, bad_unwrap):
        resp = Responder(ep(r_cfg, replay=ReplayGuard()), seeded_rng(2))
        reply = resp.respond(data, NOW)
        assert isinstance(reply, ExchangeRefused) and resp.result is None
        outcomes.append(
            (type(reply.error), reply.error.error_no, str(reply.error), _answer_shape(reply.answer))
        )
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][:2] == (AuthenticationError, ErrorNo.AUTH_FAILURE)


def test_pk_signature_pkcs1_and_mac_failures_look_alike() -> None:
    i_cfg, r_cfg = mode_configs(Mode.PK, True)
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    msg = parse_message(i_msg)
    body = list(msg.payloads[:-1])
    bad_sig = flip(i_msg, len(i_msg) - 5)
    bad_pkcs1 = resign(
        msg,
        [Pke(p.cache, bytes(len(p.data))) if isinstance(p, Pke) else p for p in body],
        alice_creds(),
    )
    bad_kemac = resign(
        msg,
        [replace(p, mac=flip(p.mac, 0)) if isinstance(p, Kemac) else p for p in body],
        alice_creds(),
    )
    outcomes = []
    for data in (bad_sig, bad_pkcs1, bad_kemac):
        resp = Responder(ep(r_cfg, replay=ReplayGuard()), seeded_rng(2))
        reply = resp.respond(data, NOW)
        assert isinstance(reply, ExchangeRefused) and resp.result is None
        outcomes.append(
            (type(reply.error), reply.error.error_no, str(reply.error), _answer_shape(reply.answer))
        )
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert outcomes[0][:2] == (AuthenticationError, ErrorNo.AUTH_FAILURE)


def test_timestamp_type_is_checked() -> None:
    """A message whose T was swapped for another (valid-looking) one fails authentication."""
    i_msg, _ = genuine(Mode.PSK, False)
    msg = parse_message(i_msg)
    swapped = Message(
        msg.header,
        tuple(make_timestamp(NOW + 1) if isinstance(p, Timestamp) else p for p in msg.payloads),
    ).encode()
    assert refuse(mode_configs(Mode.PSK, False)[1], swapped).error_no == ErrorNo.AUTH_FAILURE


# --- identities bound to certificates (RFC 3830 §4.3, RFC 4567 §5) ------------------------------

SIGNED_MODES = [Mode.PK, Mode.DH, Mode.RSA_R]
RESPONDER_SIGNS = [Mode.DH, Mode.RSA_R]  # the R_MESSAGE carries CERT and SIGN
MALLORY = "sip:mallory@example.com"


def _creds(issued: certs.Issued) -> Credentials:
    return Credentials(issued.key, (issued.cert,))


def _claiming(cfg: ExchangeConfig, identity: str | None) -> ExchangeConfig:
    """A peer that asserts ``identity`` whatever its certificate says (a hostile peer does not
    run our configuration checks)."""
    out = replace(cfg)
    object.__setattr__(out, "identity", identity)
    return out


def refuse_leaving_nothing(
    cfg: ExchangeConfig, data: bytes, now: float = NOW, **kw: object
) -> MikeyError:
    """As :func:`refuse`, and neither the CSB table nor the replay cache changed."""
    party = ep(cfg)
    csbs, cached = len(party.csbs), len(party.replay)
    owners = {k: party.csbs.get(k) for k in list(party.csbs._entries)}
    resp = Responder(ep(cfg), seeded_rng(77))
    reply = resp.respond(data, now, **kw)  # type: ignore[arg-type]
    assert isinstance(reply, ExchangeRefused), "hostile message accepted"
    assert resp.result is None and resp.state is State.FAILED
    assert len(party.csbs) == csbs and len(party.replay) == cached
    assert {k: party.csbs.get(k) for k in owners} == owners
    assert_no_leak(reply.error, secrets_of())
    return reply.error


def initiator_refuses(init: Initiator, answer: bytes | None, now: float = NOW) -> MikeyError:
    info = refused(MikeyError, init.finish(answer, now))
    assert init.result is None and init.state is State.FAILED
    assert_no_leak(info.value, secrets_of())
    return info.value


SANLESS = {
    "no-san": {"san_uri": None},
    "dns-san-only": {"san_uri": None, "san_dns": "www.example.com"},
}


@pytest.mark.parametrize("kind", sorted(SANLESS))
@pytest.mark.parametrize("mode", SIGNED_MODES)
def test_certificate_without_san_uri_cannot_claim_an_identity(mode: Mode, kind: str) -> None:
    """A CA-issued leaf without a SAN URI (e.g. an ordinary TLS server certificate) asserts no
    identity: claiming alice's, or none at all, is refused with INVALID_CERT."""
    eve = certs.leaf("eve", **SANLESS[kind])  # type: ignore[arg-type]
    # (PK carries IDi inside its KEMAC too: it has no form without an identity)
    for claimed in (ALICE,) if mode == Mode.PK else (ALICE, None):
        i_cfg, r_cfg = mode_configs(mode, False, i_credentials=_creds(eve))
        i_msg = Initiator(ep(_claiming(i_cfg, claimed)), seeded_rng(1)).start(NOW, STREAMS)
        err = refuse_leaving_nothing(r_cfg, i_msg)
        assert err.error_no == ErrorNo.INVALID_CERT and "SAN URI" in str(err)


@pytest.mark.parametrize("mode", SIGNED_MODES)
def test_valid_certificate_cannot_claim_another_identity(mode: Mode) -> None:
    mallory = certs.leaf("mallory", san_uri=MALLORY)
    i_cfg, r_cfg = mode_configs(mode, False, i_credentials=_creds(mallory), i_identity=None)
    i_msg = Initiator(ep(_claiming(i_cfg, ALICE)), seeded_rng(1)).start(NOW, STREAMS)
    err = refuse_leaving_nothing(r_cfg, i_msg)
    assert err.error_no == ErrorNo.INVALID_ID
    assert ALICE in str(err) and MALLORY in str(err)


@pytest.mark.parametrize("mode", SIGNED_MODES)
def test_signalled_initiator_must_be_the_certificates(mode: Mode) -> None:
    """The SIP From (or another signalled party) is alice: mallory's own valid certificate and
    identity do not pass, and alice's pass only as alice."""
    mallory = certs.leaf("mallory", san_uri=MALLORY)
    i_cfg, r_cfg = mode_configs(mode, False, i_credentials=_creds(mallory), i_identity=MALLORY)
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    err = refuse_leaving_nothing(r_cfg, i_msg, expected_initiator=ALICE)
    assert err.error_no == ErrorNo.INVALID_ID
    # no IDs at all (PK: IDi only inside the KEMAC): the certificate's SAN is the identity
    i_cfg, r_cfg = mode_configs(mode, False, i_send_identities=False)
    i_msg = Initiator(ep(i_cfg), seeded_rng(2)).start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(3)).respond(i_msg, NOW, expected_initiator=ALICE)
    assert isinstance(reply, ExchangeCompleted)
    assert reply.result.registration.initiator_id == ALICE


@pytest.mark.parametrize("mode", [Mode.PSK, Mode.DHHMAC])
def test_psk_is_looked_up_by_the_signalled_identity(mode: Mode) -> None:
    """Without IDi the PSK of the signalled party is used: alice's PSK does not key a call that
    the signalling says comes from bob, and an IDi that contradicts the signalling is refused."""
    store = StaticPskStore({ALICE: PSK, BOB: b"b" * 16})
    i_cfg, r_cfg = mode_configs(mode, False, r_psk=store, i_identity=None)
    i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    err = refuse_leaving_nothing(r_cfg, i_msg, expected_initiator=BOB)
    assert err.error_no == ErrorNo.AUTH_FAILURE
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW, expected_initiator=ALICE)
    assert isinstance(reply, ExchangeCompleted)
    assert reply.result.registration.initiator_id == ALICE
    i_cfg, r_cfg = mode_configs(mode, False, r_psk=store)  # IDi alice, signalling says bob
    i_msg = Initiator(ep(i_cfg), seeded_rng(3)).start(NOW + 1, STREAMS)
    err = refuse_leaving_nothing(r_cfg, i_msg, NOW + 1, expected_initiator=BOB)
    assert err.error_no == ErrorNo.INVALID_ID


@pytest.mark.parametrize(("mode", "verify"), ALL_MODES)
def test_idr_naming_another_responder_is_refused_in_every_mode(mode: Mode, verify: bool) -> None:
    i_cfg, r_cfg = mode_configs(
        mode, verify, i_peer_identity=MALLORY, i_psk=StaticPskStore({MALLORY: PSK})
    )
    if mode == Mode.PK:  # the PK initiator refuses to encrypt to bob's certificate for mallory
        with pytest.raises(MikeyError) as info:
            Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
        assert info.value.error_no == ErrorNo.INVALID_ID
        # encrypting to mallory's own certificate, the message names mallory as responder
        i_cfg = replace(i_cfg, peer_certificate=certs.leaf("mallory", san_uri=MALLORY).cert)
        i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    else:
        i_msg = Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    err = refuse_leaving_nothing(r_cfg, i_msg)
    assert err.error_no == ErrorNo.INVALID_ID and MALLORY in str(err)


@pytest.mark.parametrize("mode", RESPONDER_SIGNS)
def test_initiator_checks_idr_against_the_responders_certificate(mode: Mode) -> None:
    """A responder holding mallory's valid certificate cannot answer as bob (IDr bob), and
    answering as mallory does not pass for bob either."""
    mallory = _creds(certs.leaf("mallory", san_uri=MALLORY))
    for claimed, needle in ((BOB, MALLORY), (MALLORY, BOB)):
        # an initiator that sends no IDs (so the hostile responder has no IDr to refuse)
        i_cfg, r_cfg = mode_configs(
            mode, False, r_credentials=mallory, r_identity=None, i_send_identities=False
        )
        init = Initiator(ep(i_cfg), seeded_rng(1))
        i_msg = init.start(NOW, STREAMS)
        reply = Responder(ep(_claiming(r_cfg, claimed)), seeded_rng(2)).respond(i_msg, NOW)
        assert isinstance(reply, ExchangeCompleted)
        err = initiator_refuses(init, reply.answer)
        assert err.error_no == ErrorNo.INVALID_ID and needle in str(err)


@pytest.mark.parametrize("kind", sorted(SANLESS))
@pytest.mark.parametrize("mode", RESPONDER_SIGNS)
def test_initiator_refuses_a_responder_certificate_without_san_uri(mode: Mode, kind: str) -> None:
    eve = _creds(certs.leaf("eve", **SANLESS[kind]))  # type: ignore[arg-type]
    i_cfg, r_cfg = mode_configs(mode, False, r_credentials=eve, r_identity=BOB)
    init = Initiator(ep(i_cfg), seeded_rng(1))
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(init.start(NOW, STREAMS), NOW)
    assert isinstance(reply, ExchangeCompleted)
    assert initiator_refuses(init, reply.answer).error_no == ErrorNo.INVALID_CERT


@pytest.mark.parametrize("mode", RESPONDER_SIGNS)
def test_initiator_without_expected_peer_reports_the_certificates_identity(mode: Mode) -> None:
    i_cfg, r_cfg = mode_configs(mode, False, i_peer_identity=None, r_identity=None)
    i_res, _, _, _ = Pair(i_cfg, r_cfg).run()
    assert i_res.registration.responder_id == BOB


def test_pk_initiator_refuses_a_peer_certificate_of_another_party() -> None:
    mallory = certs.leaf("mallory", san_uri=MALLORY).cert
    i_cfg, _ = mode_configs(Mode.PK, False, i_peer_certificate=mallory)
    with pytest.raises(MikeyError) as info:
        Initiator(ep(i_cfg), seeded_rng(1)).start(NOW, STREAMS)
    assert info.value.error_no == ErrorNo.INVALID_ID and MALLORY in str(info.value)


@pytest.mark.parametrize("mode", SIGNED_MODES)
def test_rekey_by_a_sanless_certificate_claiming_the_owner_is_refused(mode: Mode) -> None:
    """The rekey hijack of a live CSB: eve's SAN-less CA-issued certificate names alice."""
    i_cfg, r_cfg = mode_configs(mode, False)
    first = Initiator(ep(i_cfg), seeded_rng(1))
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(first.start(NOW, STREAMS), NOW)
    assert isinstance(reply, ExchangeCompleted)
    ep(r_cfg).commit(reply.result)
    if reply.answer is not None:
        first_res = keys(first.finish(reply.answer, NOW))
    else:
        first_res = keys(first.finish(None, NOW))
    eve = _creds(certs.leaf("eve", san_uri=None))
    e_cfg = _claiming(replace(i_cfg, credentials=eve), ALICE)
    rekey = Initiator(ep(e_cfg), seeded_rng(5)).start(
        NOW + 5, STREAMS, rekey_of=first_res.registration
    )
    err = refuse_leaving_nothing(
        r_cfg, rekey, NOW + 5, expected_csb=first_res.registration.csb_id, expected_initiator=ALICE
    )
    assert err.error_no == ErrorNo.INVALID_CERT
    owner = ep(r_cfg).csbs.get(first_res.registration.csb_id)
    assert owner is not None and owner[0] == ALICE


@pytest.mark.parametrize("mode", SIGNED_MODES)
def test_mapped_fingerprint_gives_a_sanless_certificate_its_identity(mode: Mode) -> None:
    eve = certs.leaf("eve", san_uri=None)
    table = ((certificate_fingerprint(eve.cert), ALICE),)
    i_cfg, r_cfg = mode_configs(mode, False, i_credentials=_creds(eve), r_cert_identities=table)
    i_msg = Initiator(ep(_claiming(i_cfg, ALICE)), seeded_rng(1)).start(NOW, STREAMS)
    reply = Responder(ep(r_cfg), seeded_rng(2)).respond(i_msg, NOW, expected_initiator=ALICE)
    assert isinstance(reply, ExchangeCompleted)
    assert reply.result.registration.initiator_id == ALICE
    i_msg = Initiator(ep(_claiming(i_cfg, BOB)), seeded_rng(3)).start(NOW + 1, STREAMS)
    assert refuse_leaving_nothing(r_cfg, i_msg, NOW + 1).error_no == ErrorNo.INVALID_ID


@pytest.mark.parametrize("mode", SIGNED_MODES)
def test_pinned_self_signed_certificates(mode: Mode) -> None:
    """Each side trusts the other's own self-signed certificate (cA asserted, as openssl
    req -x509 makes them); a chain to a CA would refuse them. Expired pins are refused."""
    alice = certs.self_signed("alice", ALICE)
    bob = certs.self_signed("bob", BOB)
    i_cfg, r_cfg = mode_configs(
        mode,
        False,
        i_credentials=_creds(alice),
        r_credentials=_creds(bob),
        i_trust=TrustStore([bob.cert]),
        r_trust=TrustStore([alice.cert]),
        i_peer_certificate=bob.cert if mode == Mode.PK else None,
    )
    i_res, r_res, _, _ = Pair(i_cfg, r_cfg).run()
    assert r_res.registration.initiator_id == ALICE
    assert i_res.registration.responder_id == BOB
    assert [bytes(e.master_key) for e in i_res.data_sa] == [
        bytes(e.master_key) for e in r_res.data_sa
    ]
    # the same certificate through the CA path is refused: it is not a valid end entity
    ca_only = replace(r_cfg, trust=TrustStore([certs.ca().cert]))
    i_msg = Initiator(ep(i_cfg), seeded_rng(9)).start(NOW + 2, STREAMS)
    err = refuse_leaving_nothing(ca_only, i_msg, NOW + 2)
    assert err.error_no == ErrorNo.INVALID_CERT
    old = certs.self_signed("alice-old", ALICE, expired=True)
    stale = replace(r_cfg, trust=TrustStore([old.cert]))
    o_cfg = replace(i_cfg, credentials=_creds(old))
    i_msg = Initiator(ep(o_cfg), seeded_rng(10)).start(NOW + 3, STREAMS)
    err = refuse_leaving_nothing(stale, i_msg, NOW + 3)
    assert err.error_no == ErrorNo.INVALID_CERT and "expired" in str(err)


def test_own_identity_must_be_in_own_certificate() -> None:
    with pytest.raises(MikeyError) as info:
        mode_configs(Mode.DH, False, i_identity=MALLORY)
    assert info.value.error_no == ErrorNo.INVALID_ID
    i_cfg, _ = mode_configs(Mode.DH, False, i_identity=None)
    assert i_cfg.identity == ALICE  # the certificate's single SAN URI
