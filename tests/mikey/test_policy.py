"""SRTP security policy (RFC 3830 §6.10.1, RFC 3711 §8.2, RFC 4771, RFC 7714 §14; docs/WIRE.md
§SP parameter quirks)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mikey.codec import Leniency, SecurityPolicy, SpParam, parse_message
from mikey.errors import PolicyError
from mikey.keying import SrtpPolicy
from mikey.policy import (
    AEAD_AES_128_GCM,
    AEAD_AES_256_GCM,
    AES_256_CM_HMAC_SHA1_32,
    AES_256_CM_HMAC_SHA1_80,
    AES_CM_128_HMAC_SHA1_32,
    AES_CM_128_HMAC_SHA1_80,
    NAMED_POLICIES,
    AcceptablePolicies,
    SpStyle,
    canonical,
    policy_by_name,
    policy_from_sp,
    sp_from_policy,
)
from mikey.registry import ErrorNo, ProtType, SrtpAuthAlg, SrtpEncrAlg, SrtpPrf
from tests.interop.peers import missing_peer

SP = ErrorNo.INVALID_SP
SPPAR = ErrorNo.INVALID_SPPAR


def sp(*params: tuple[int, int], prot: int = ProtType.SRTP) -> SecurityPolicy:
    return SecurityPolicy(0, prot, tuple(SpParam(t, bytes([v])) for t, v in params))


# -- named policies --------------------------------------------------------------------------

# (name, cipher, master key, master salt, HMAC tag bytes or None for AEAD): RFC 3711 §5,
# RFC 6188 §3 (AES-256-CM), RFC 7714 §14.2 (AEAD_AES_*_GCM: 12-byte salt, 16-byte tag).
NAMED = [
    ("AES_CM_128_HMAC_SHA1_80", SrtpEncrAlg.AES_CM, 16, 14, 10),
    ("AES_CM_128_HMAC_SHA1_32", SrtpEncrAlg.AES_CM, 16, 14, 4),
    ("AES_256_CM_HMAC_SHA1_80", SrtpEncrAlg.AES_CM, 32, 14, 10),
    ("AES_256_CM_HMAC_SHA1_32", SrtpEncrAlg.AES_CM, 32, 14, 4),
    ("AEAD_AES_128_GCM", SrtpEncrAlg.AES_GCM, 16, 12, None),
    ("AEAD_AES_256_GCM", SrtpEncrAlg.AES_GCM, 32, 12, None),
]


@pytest.mark.parametrize(("name", "cipher", "key", "salt", "tag"), NAMED)
def test_named_policies(
    name: str, cipher: SrtpEncrAlg, key: int, salt: int, tag: int | None
) -> None:
    p = NAMED_POLICIES[name]
    assert (p.encr_alg, p.master_key_len, p.master_salt_len) == (cipher, key, salt)
    if tag is None:
        assert (p.auth_alg, p.aead_tag_len) == (SrtpAuthAlg.NULL, 16)
    else:
        assert (p.auth_alg, p.auth_key_len, p.auth_tag_len) == (SrtpAuthAlg.HMAC_SHA_1, 20, tag)
    # keying's libsrtp-style name (AES_CM_256_...) and the RFC 6188 name (AES_256_CM_...) agree.
    assert policy_by_name(p.profile_name) is p
    assert policy_by_name(name) is p
    assert policy_by_name(name.lower()) is p
    AcceptablePolicies().check(p)
    assert canonical(p) == p


def test_named_constants_are_the_table() -> None:
    assert set(NAMED_POLICIES.values()) == {
        AES_CM_128_HMAC_SHA1_80,
        AES_CM_128_HMAC_SHA1_32,
        AES_256_CM_HMAC_SHA1_80,
        AES_256_CM_HMAC_SHA1_32,
        AEAD_AES_128_GCM,
        AEAD_AES_256_GCM,
    }
    assert AcceptablePolicies().policies == frozenset(NAMED_POLICIES.values())


@pytest.mark.parametrize(
    ("alias", "policy"),
    [
        ("SRTP_AES128_CM_SHA1_80", AES_CM_128_HMAC_SHA1_80),
        ("SRTP_AES128_CM_SHA1_32", AES_CM_128_HMAC_SHA1_32),
        ("SRTP_AEAD_AES_128_GCM", AEAD_AES_128_GCM),
        ("SRTP_AEAD_AES_256_GCM", AEAD_AES_256_GCM),
        ("AES_CM_256_HMAC_SHA1_80", AES_256_CM_HMAC_SHA1_80),
        ("aes-128-icm/hmac-sha1-32", AES_CM_128_HMAC_SHA1_32),
        ("aes-256-gcm/aes-256-gcm", AEAD_AES_256_GCM),
    ],
)
def test_policy_aliases(alias: str, policy: SrtpPolicy) -> None:
    assert policy_by_name(alias) == policy


def test_unknown_name() -> None:
    with pytest.raises(PolicyError):
        policy_by_name("AES_CM_128_HMAC_SHA1_64")


# -- defaults (RFC 3711 §8.2, RFC 7714 §14) ---------------------------------------------------


def test_absent_params_take_defaults() -> None:
    assert policy_from_sp(sp()) == AES_CM_128_HMAC_SHA1_80
    assert policy_from_sp(sp((0, 6))) == AEAD_AES_128_GCM
    assert policy_from_sp(sp((0, 6), (1, 32))) == AEAD_AES_256_GCM
    no_auth = policy_from_sp(sp((2, 0)))
    assert (no_auth.auth_alg, no_auth.auth_key_len, no_auth.auth_tag_len) == (0, 0, 0)


def test_live555_form() -> None:
    # docs/WIRE.md §live555's parameter list: 0:AES-CM,1:16,2:HMAC,3:20,4:14,7,8,10,11:10.
    live555 = sp((0, 1), (1, 16), (2, 1), (3, 20), (4, 14), (7, 1), (8, 1), (10, 1), (11, 10))
    assert policy_from_sp(live555) == AES_CM_128_HMAC_SHA1_80
    assert policy_from_sp(live555, tag_in_auth_key_len=True) == AES_CM_128_HMAC_SHA1_80


def test_gcm_tolerates_gstreamer_zero_auth_fields() -> None:
    full = sp((0, 6), (1, 16), (2, 0), (3, 0), (4, 12), (10, 1), (11, 0), (20, 16))
    assert policy_from_sp(full) == AEAD_AES_128_GCM


def test_rfc4771_params() -> None:
    same = sp((14, 1), (15, 1), (16, 20), (17, 20), (18, 10), (19, 10), (13, 1))
    assert policy_from_sp(same) == AES_CM_128_HMAC_SHA1_80
    rccm = policy_from_sp(sp((13, 8), (14, SrtpAuthAlg.RCCM3)))
    assert rccm.auth_alg == SrtpAuthAlg.RCCM3
    with pytest.raises(PolicyError) as err:
        AcceptablePolicies().check(rccm)
    assert err.value.error_no == SPPAR


def test_key_derivation_rate_multi_byte() -> None:
    p = policy_from_sp(SecurityPolicy(0, ProtType.SRTP, (SpParam(6, b"\x01\x00\x00"),)))
    assert p.key_derivation_rate == 1 << 16
    assert policy_from_sp(sp_from_policy(p, 0)) == p


# -- refusals while reading ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("payload", "error_no"),
    [
        (sp(prot=ProtType.TESLA), SP),
        (sp(prot=7), SP),  # minisip's private IPsec value
        (sp((21, 0)), SPPAR),
        (sp((240, 0)), SPPAR),
        (sp((1, 16), (1, 16)), SPPAR),
        (SecurityPolicy(0, ProtType.SRTP, (SpParam(1, b"\x00\x10"),)), SPPAR),
        (SecurityPolicy(0, ProtType.SRTP, (SpParam(6, b""),)), SPPAR),
        (SecurityPolicy(0, ProtType.SRTP, (SpParam(6, b"\x00" * 5),)), SPPAR),
        (sp((0, 9)), SPPAR),
        (sp((2, 5)), SPPAR),
        (sp((5, 3)), SPPAR),
        (sp((1, 20)), SPPAR),
        (sp((1, 0)), SPPAR),
        (sp((0, 6), (1, 24)), SPPAR),
        (sp((4, 12)), SPPAR),
        (sp((0, 6), (4, 14)), SPPAR),
        (sp((7, 2)), SPPAR),
        (sp((8, 255)), SPPAR),
        (sp((10, 2)), SPPAR),
        (sp((11, 0)), SPPAR),  # tag length 0 with authentication on
        (sp((11, 21)), SPPAR),
        (sp((3, 0)), SPPAR),
        (sp((6, 3)), SPPAR),  # not a power of 2 (RFC 3711 §4.3.1)
        (sp((20, 20)), SPPAR),
        (sp((0, 6), (2, 1)), SPPAR),
        (sp((0, 6), (10, 0)), SPPAR),
        (sp((13, 0)), SPPAR),
        (sp((14, 1), (15, 0)), SPPAR),
        (sp((16, 20), (17, 16)), SPPAR),
        (sp((18, 10), (19, 4)), SPPAR),
    ],
)
def test_refused_while_reading(payload: SecurityPolicy, error_no: ErrorNo) -> None:
    with pytest.raises(PolicyError) as err:
        policy_from_sp(payload)
    assert err.value.error_no == error_no


def test_auth_off_allows_zero_tag() -> None:
    p = policy_from_sp(sp((10, 0), (11, 0)))
    assert not p.srtp_auth


# -- acceptance (what libsrtp can run) -------------------------------------------------------

BASE = AES_CM_128_HMAC_SHA1_80


@pytest.mark.parametrize(
    ("policy", "error_no"),
    [
        (replace(BASE, key_derivation_rate=1 << 10), SPPAR),
        (replace(BASE, fec_order=1), SPPAR),
        (replace(BASE, prefix_len=4), SPPAR),
        (replace(BASE, prf=SrtpPrf.SEED_CTR), SPPAR),
        (replace(BASE, prf=SrtpPrf.ARIA_CTR), SPPAR),
        (replace(BASE, encr_alg=SrtpEncrAlg.AES_F8), SPPAR),
        (replace(BASE, encr_alg=SrtpEncrAlg.SEED_CTR), SPPAR),
        (replace(BASE, encr_alg=SrtpEncrAlg.SEED_GCM), SPPAR),
        (replace(BASE, encr_alg=SrtpEncrAlg.ARIA_CTR), SPPAR),
        (replace(BASE, encr_alg=SrtpEncrAlg.ARIA_GCM), SPPAR),
        (replace(BASE, auth_alg=SrtpAuthAlg.RCCM1), SPPAR),
        (replace(BASE, auth_alg=SrtpAuthAlg.RCCM2), SPPAR),
        (replace(BASE, auth_key_len=16), SPPAR),
        (replace(BASE, auth_key_len=10), SPPAR),  # GStreamer's form read without the quirk
        (replace(BASE, auth_tag_len=8), SPPAR),
        (replace(BASE, auth_tag_len=20), SPPAR),
        (replace(AEAD_AES_128_GCM, aead_tag_len=12), SPPAR),
        (replace(AEAD_AES_128_GCM, aead_tag_len=8), SPPAR),
        (replace(BASE, srtp_encr=False), SPPAR),
        (replace(BASE, srtcp_encr=False), SPPAR),
        (replace(BASE, srtp_auth=False), SPPAR),
        (replace(AEAD_AES_128_GCM, srtp_encr=False), SPPAR),
        (replace(BASE, encr_alg=SrtpEncrAlg.NULL), SP),
        (replace(BASE, auth_alg=SrtpAuthAlg.NULL, auth_key_len=0, auth_tag_len=0), SP),
        (replace(BASE, encr_key_len=24), SP),  # AES-192-CM: valid, not in the default set
    ],
)
def test_refused_by_acceptance(policy: SrtpPolicy, error_no: ErrorNo) -> None:
    with pytest.raises(PolicyError) as err:
        AcceptablePolicies().check(policy)
    assert err.value.error_no == error_no


def test_null_srtp_only_when_allowed() -> None:
    allowed = AcceptablePolicies(allow_null_srtp=True)
    null_null = policy_from_sp(sp((0, 0), (2, 0)))
    assert null_null.is_null
    for p in (
        null_null,
        replace(BASE, encr_alg=SrtpEncrAlg.NULL),  # RFC 3711 §4.1.3 NULL cipher, HMAC kept
        replace(BASE, srtp_encr=False),
        replace(BASE, srtp_auth=False),
    ):
        allowed.check(p)
        with pytest.raises(PolicyError):
            AcceptablePolicies().check(p)
    # Allowing NULL does not allow what libsrtp cannot run.
    with pytest.raises(PolicyError) as err:
        allowed.check(replace(null_null, key_derivation_rate=2))
    assert err.value.error_no == SPPAR


def test_custom_set() -> None:
    only_80 = AcceptablePolicies(frozenset({AES_CM_128_HMAC_SHA1_80}))
    only_80.check(AES_CM_128_HMAC_SHA1_80)
    with pytest.raises(PolicyError) as err:
        only_80.check(AES_CM_128_HMAC_SHA1_32)
    assert err.value.error_no == SP
    aes192 = replace(BASE, encr_key_len=24)
    AcceptablePolicies(frozenset({aes192})).check(policy_from_sp(sp((1, 24))))


def test_gcm_compared_canonically() -> None:
    sloppy = replace(AEAD_AES_128_GCM, auth_alg=SrtpAuthAlg.HMAC_SHA_1, auth_key_len=20)
    AcceptablePolicies().check(sloppy)
    assert canonical(sloppy) == AEAD_AES_128_GCM


# -- writing: styles and round trips ---------------------------------------------------------


def test_full_style_is_the_live555_gortsplib_form() -> None:
    written = sp_from_policy(AES_CM_128_HMAC_SHA1_80, 3)
    assert written.policy_no == 3
    assert [(p.type, p.int_value) for p in written.params] == [
        (0, 1),
        (1, 16),
        (2, 1),
        (3, 20),
        (4, 14),
        (5, 0),
        (7, 1),
        (8, 1),
        (10, 1),
        (11, 10),
    ]
    gcm = sp_from_policy(AEAD_AES_256_GCM, 0)
    assert (gcm.get(4), gcm.get(20)) == (SpParam(4, b"\x0c"), SpParam(20, b"\x10"))


def test_minimal_style() -> None:
    assert sp_from_policy(AES_CM_128_HMAC_SHA1_80, 0, style=SpStyle.MINIMAL).params == ()
    assert sp_from_policy(AEAD_AES_128_GCM, 0, style=SpStyle.MINIMAL).params == (
        SpParam(0, b"\x06"),
    )


@pytest.mark.parametrize("policy", list(NAMED_POLICIES.values()))
@pytest.mark.parametrize("style", [SpStyle.FULL, SpStyle.MINIMAL])
def test_named_round_trip(policy: SrtpPolicy, style: SpStyle) -> None:
    written = sp_from_policy(policy, 1, style=style)
    assert policy_from_sp(written) == policy
    encoded = written.encode(0)
    assert encoded[2] == ProtType.SRTP and encoded[1] == 1


def test_gstreamer_style_refuses_what_gstreamer_cannot_say() -> None:
    for p in (
        replace(BASE, auth_tag_len=8),
        replace(BASE, key_derivation_rate=4),
        replace(BASE, auth_key_len=16),
        replace(AEAD_AES_128_GCM, aead_tag_len=12),
    ):
        with pytest.raises(PolicyError):
            sp_from_policy(p, 0, style=SpStyle.GSTREAMER)


def test_write_out_of_range() -> None:
    with pytest.raises(PolicyError):
        sp_from_policy(replace(BASE, encr_key_len=256), 0)
    with pytest.raises(PolicyError):
        sp_from_policy(replace(BASE, key_derivation_rate=1 << 32), 0)


# GStreamer 1.22 gst_mikey_message_new_from_caps output (captured on this machine with
# python3-gi; srtp-key all zero): docs/WIRE.md §GStreamer's tag length in param 3.
GSTREAMER_MESSAGES = {
    "AES_CM_128_HMAC_SHA1_80": "AQAFAMVwAe4AAAsA7rXIoGzDjzYKEDIRAANMmWn9ki8sgxCBFr4BAAAAFQABAQEB"
    "EAIBAQMBCgcBAQgBAQoBAQAAACIAIAAeAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    "AES_CM_128_HMAC_SHA1_32": "AQAFAO2QGZ8AAAsA7rXIoGzJp34KEGG1Wf0BG5Tb9YikqQEvGdEBAAAAFQABAQEB"
    "EAIBAQMBBAcBAQgBAQoBAQAAACIAIAAeAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
    "AES_256_CM_HMAC_SHA1_80": "AQAFAJP6frAAAAsA7rXIoGzK5kIKEMDFp9m4MIPKYWuI/Kd7/CwBAAAAFQABAQEB"
    "IAIBAQMBCgcBAQgBAQoBAQAAADIAIAAuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAA=",
    "AES_256_CM_HMAC_SHA1_32": "AQAFANiQVjwAAAsA7rXIoGzLr5YKEHou3RQpjqfXwlPD7J7S7qsBAAAAFQABAQEB"
    "IAIBAQMBBAcBAQgBAQoBAQAAADIAIAAuAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
    "AAA=",
    "AEAD_AES_128_GCM": "AQAFAAFUIUoAAAsA7rXIoGzMeOkKEFHAwNPt4aJaqq7FRgYrB5wBAAAAFQABBgEBEAIBAAMB"
    "AAcBAQgBAQoBAQAAACAAIAAcAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "AEAD_AES_256_GCM": "AQAFAMp4QQcAAAsA7rXIoGzNUwQKEMWwxR0Lb/1u20grWX5OkUgBAAAAFQABBgEBIAIBAAMB"
    "AAcBAQgBAQoBAQAAADAAIAAsAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
}


def gstreamer_sp(name: str) -> SecurityPolicy:
    msg = parse_message(base64.b64decode(GSTREAMER_MESSAGES[name]), lenient=True)
    sps = [p for p in msg.payloads if isinstance(p, SecurityPolicy)]
    assert len(sps) == 1
    return sps[0]


@pytest.mark.parametrize("name", list(GSTREAMER_MESSAGES))
def test_gstreamer_vectors(name: str) -> None:
    policy = NAMED_POLICIES[name]
    real = gstreamer_sp(name)
    assert policy_from_sp(real, tag_in_auth_key_len=True) == policy
    ours = sp_from_policy(policy, 0, style=SpStyle.GSTREAMER)
    assert ours.encode(0) == real.encode(0)
    plain = policy_from_sp(real)
    if policy.encr_alg == SrtpEncrAlg.AES_GCM:
        assert plain == policy
    else:
        # Read by the RFC, param 3 is an auth key length of 4/10 bytes: libsrtp cannot run it.
        assert plain.auth_key_len == policy.auth_tag_len
        with pytest.raises(PolicyError) as err:
            AcceptablePolicies().check(plain)
        assert err.value.error_no == SPPAR


def test_codec_flags_gstreamer_quirk() -> None:
    msg = parse_message(
        base64.b64decode(GSTREAMER_MESSAGES["AES_CM_128_HMAC_SHA1_32"]), lenient=True
    )
    assert Leniency.SRTP_TAG_IN_AUTH_KEY_LEN in msg.leniencies


_GST_READER = r"""
import json, sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import Gst, GstSdp
Gst.init(None)
caps = Gst.Caps.from_string(
    "application/x-srtp,srtp-key=(buffer)" + "00" * 30 + ",srtp-cipher=aes-128-icm,"
    "srtp-auth=hmac-sha1-80,srtcp-cipher=aes-128-icm,srtcp-auth=hmac-sha1-80,ssrc=(uint)1,roc=(uint)0"
)
msg = GstSdp.MIKEYMessage.new_from_caps(caps)
out = []
for params in json.loads(sys.argv[1]):
    for i in range(msg.get_n_payloads()):
        p = msg.get_payload(i)
        if p.type == GstSdp.MIKEYPayloadType.SP:
            while p.sp_get_n_params():
                p.sp_remove_param(0)
            for t, v in params:
                p.sp_add_param(t, bytes.fromhex(v))
    result = Gst.Caps.new_empty_simple("application/x-srtp")
    msg.to_caps(result)
    s = result.get_structure(0)
    out.append([s.get_string("srtp-cipher"), s.get_string("srtp-auth")])
print(json.dumps(out))
"""

_GST_NAMES = {
    "AES_CM_128_HMAC_SHA1_80": ["aes-128-icm", "hmac-sha1-80"],
    "AES_CM_128_HMAC_SHA1_32": ["aes-128-icm", "hmac-sha1-32"],
    "AES_256_CM_HMAC_SHA1_80": ["aes-256-icm", "hmac-sha1-80"],
    "AES_256_CM_HMAC_SHA1_32": ["aes-256-icm", "hmac-sha1-32"],
    "AEAD_AES_128_GCM": ["aes-128-gcm", "null"],
    "AEAD_AES_256_GCM": ["aes-256-gcm", "null"],
}


def _gstreamer_reads(sps: list[SecurityPolicy]) -> list[list[str]]:
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        missing_peer("no system python3")
    arg = json.dumps([[(p.type, p.value.hex()) for p in s.params] for s in sps])
    try:
        done = subprocess.run(
            ["timeout", "30", python, "-c", _GST_READER, arg],
            capture_output=True,
            text=True,
            timeout=40,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        missing_peer(f"GStreamer not runnable: {exc}")
    if done.returncode != 0:
        if "No module named 'gi'" in done.stderr or "Namespace" in done.stderr:
            missing_peer("python3-gi / GstSdp not installed")
        raise AssertionError(done.stderr)
    result: list[list[str]] = json.loads(done.stdout)
    return result


def test_real_gstreamer_reads_our_forms() -> None:
    """GStreamer's gst_mikey_message_to_caps reads the GSTREAMER style right, and misreads an
    RFC-correct 32-bit tag (param 11) as 80-bit: why the style exists (docs/WIRE.md §GStreamer's
    tag length in param 3)."""
    names = list(_GST_NAMES)
    gst_style = [sp_from_policy(NAMED_POLICIES[n], 0, style=SpStyle.GSTREAMER) for n in names]
    full_32 = sp_from_policy(AES_CM_128_HMAC_SHA1_32, 0, style=SpStyle.FULL)
    read = _gstreamer_reads([*gst_style, full_32])
    assert read[:-1] == [_GST_NAMES[n] for n in names]
    assert read[-1] == ["aes-128-icm", "hmac-sha1-80"]


# -- properties ------------------------------------------------------------------------------


@st.composite
def policies(draw: st.DrawFn) -> SrtpPolicy:
    encr = draw(st.sampled_from(SrtpEncrAlg))
    if encr == SrtpEncrAlg.AES_CM:
        key, salt = draw(st.sampled_from([16, 24, 32])), 14
    elif encr == SrtpEncrAlg.AES_GCM:
        key, salt = draw(st.sampled_from([16, 32])), 12
    else:
        key, salt = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    auth = draw(st.sampled_from(SrtpAuthAlg))
    srtp_auth = draw(st.booleans())
    if auth == SrtpAuthAlg.HMAC_SHA_1:
        auth_key = draw(st.integers(1, 255))
        tag = draw(st.integers(1 if srtp_auth else 0, 20))
    else:
        auth_key, tag = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    kdr = draw(st.sampled_from([0, *(1 << k for k in range(25))]))
    return canonical(
        SrtpPolicy(
            encr_alg=encr,
            encr_key_len=key,
            auth_alg=auth,
            auth_key_len=auth_key,
            salt_key_len=salt,
            prf=draw(st.sampled_from(SrtpPrf)),
            key_derivation_rate=kdr,
            srtp_encr=draw(st.booleans()),
            srtcp_encr=draw(st.booleans()),
            fec_order=draw(st.integers(0, 255)),
            srtp_auth=srtp_auth,
            auth_tag_len=tag,
            prefix_len=draw(st.integers(0, 255)),
            aead_tag_len=draw(st.sampled_from([8, 12, 16])),
        )
    )


@given(policies(), st.integers(0, 255))
def test_round_trip_property(policy: SrtpPolicy, policy_no: int) -> None:
    for style in (SpStyle.FULL, SpStyle.MINIMAL):
        written = sp_from_policy(policy, policy_no, style=style)
        assert written.policy_no == policy_no
        assert policy_from_sp(written) == policy
    # The GStreamer reading never misreads a FULL message (param 11 is always present).
    assert policy_from_sp(sp_from_policy(policy, 0), tag_in_auth_key_len=True) == policy


@given(
    st.lists(
        st.tuples(st.integers(0, 255), st.binary(max_size=5)),
        max_size=24,
    ),
    st.integers(0, 255),
)
def test_only_policy_errors_escape(params: list[tuple[int, bytes]], prot: int) -> None:
    payload = SecurityPolicy(0, prot, tuple(SpParam(t, v) for t, v in params))
    try:
        policy = policy_from_sp(payload, tag_in_auth_key_len=bool(prot & 1))
    except PolicyError as err:
        assert err.error_no in (SP, SPPAR)
        return
    try:
        AcceptablePolicies(allow_null_srtp=bool(prot & 2)).check(policy)
    except PolicyError as err:
        assert err.error_no in (SP, SPPAR)
    assert policy_from_sp(sp_from_policy(policy, 0)) == policy
