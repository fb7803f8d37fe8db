"""MIKEY PRF (RFC 3830 §4.1.2) and key derivation tests.

Oracles: the docs/WIRE.md §PRF vectors (cross-checked against minisip's compiled ``prf()``) and a
deliberately naive reference written here (HMAC built from hashlib by hand, byte by byte).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikey.errors import MikeyError
from mikey.prf import (
    KeyConst,
    PrfKey,
    TransportKeys,
    derive,
    derive_tek_salt,
    derive_transport_keys,
    label,
    prf,
)
from mikey.registry import EncrAlg, MacAlg, PrfFunc

# Every test runs through the C accelerator and through the pure-Python reference.
pytestmark = pytest.mark.usefixtures("implementation")

RAND = bytes.fromhex("00112233445566778899aabbccddeeff")
CSB = 0x12345678
LABEL = bytes.fromhex("2ad01c640112345678") + RAND
PSK = bytes.fromhex("0f0e0d0c0b0a09080706050403020100")
TGK = bytes.fromhex("a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")


# --- naive reference, shares no code with mikey.prf --------------------------------------------


def naive_hmac(hash_name: str, key: bytes, msg: bytes) -> bytes:
    block = 64
    if len(key) > block:
        key = hashlib.new(hash_name, key).digest()
    padded = [0] * block
    for i in range(len(key)):
        padded[i] = key[i]
    ipad = bytes(b ^ 0x36 for b in padded)
    opad = bytes(b ^ 0x5C for b in padded)
    inner = hashlib.new(hash_name, ipad + msg).digest()
    return hashlib.new(hash_name, opad + inner).digest()


def naive_p(hash_name: str, s: bytes, lab: bytes, m: int) -> list[int]:
    out: list[int] = []
    a = lab
    i = 0
    while i < m:
        a = naive_hmac(hash_name, s, a)
        for byte in naive_hmac(hash_name, s, a + lab):
            out.append(byte)
        i += 1
    return out


def naive_prf(
    hash_name: str, inkey: bytes, lab: bytes, outlen: int, *, minisip: bool = False
) -> bytes:
    digest_len = hashlib.new(hash_name).digest_size
    m = 0
    while m * digest_len < outlen:
        m += 1
    chunks: list[bytes] = []
    pos = 0
    while pos < len(inkey):
        chunk = b""
        while len(chunk) < 32 and pos < len(inkey):
            chunk += inkey[pos : pos + 1]
            pos += 1
        chunks.append(chunk)
    if minisip and len(inkey) % 32 == 0:
        chunks[-1] = b""
    acc = [0] * (m * digest_len)
    for chunk in chunks:
        p = naive_p(hash_name, chunk, lab, m)
        for j in range(len(acc)):
            acc[j] = acc[j] ^ p[j]
    return bytes(acc[:outlen])


HASH = {PrfFunc.MIKEY_1: "sha1", PrfFunc.PRF_HMAC_SHA_256: "sha256"}


# --- docs/WIRE.md §PRF vectors -------------------------------------------------------------------


def test_label_layout() -> None:
    assert label(KeyConst.TEK, 1, CSB, RAND) == LABEL


@pytest.mark.parametrize(
    ("inkey_len", "out16", "out30"),
    [
        (
            16,
            "666cdfdde4f6b6ee17b4317e0d0ea07f",
            "666cdfdde4f6b6ee17b4317e0d0ea07fda6c6103d421f3d87ac6b10209dc",
        ),
        (
            32,
            "cb9d06458025ca42c1601d472cad1adf",
            "cb9d06458025ca42c1601d472cad1adfa0c72e4a70a61b2eeb9d8b82f26f",
        ),
        (
            40,
            "7f9400731613150f4445d8d02e5245a8",
            "7f9400731613150f4445d8d02e5245a8b87a871d8e2cad607fce6e8d34d5",
        ),
    ],
)
def test_sha1_vectors(inkey_len: int, out16: str, out30: str) -> None:
    inkey = bytes(range(inkey_len))
    assert prf(inkey, LABEL, 16) == bytes.fromhex(out16)
    assert prf(inkey, LABEL, 30) == bytes.fromhex(out30)
    assert prf(bytearray(inkey), LABEL, 30, PrfFunc.MIKEY_1) == bytes.fromhex(out30)
    assert isinstance(prf(inkey, LABEL, 16), bytearray)


def test_sha1_intermediate_values() -> None:
    inkey = bytes(range(16))
    a1 = bytes.fromhex("f136c864f1439de9cd1d603f32705b63e7645e08")
    a2 = bytes.fromhex("19e2c407d7960962ef4f8272037014cfba3b0fc8")
    block1 = bytes.fromhex("666cdfdde4f6b6ee17b4317e0d0ea07fda6c6103")
    block2 = bytes.fromhex("d421f3d87ac6b10209dc762da4312e7a450dbd4b")
    assert naive_hmac("sha1", inkey, LABEL) == a1
    assert naive_hmac("sha1", inkey, a1) == a2
    assert naive_hmac("sha1", inkey, a1 + LABEL) == block1
    assert naive_hmac("sha1", inkey, a2 + LABEL) == block2
    # one chunk: the output is exactly the P blocks
    assert prf(inkey, LABEL, 40) == block1 + block2


@pytest.mark.parametrize(
    ("inkey_len", "expected"),
    [
        (16, "f43abf38339a8efce857b17c031ae0ff"),
        (32, "dddac34fe6077811bbe9324dd82ba254"),
        (40, "5794903589eba758a33159d97d74e4ac"),
    ],
)
def test_sha256_vectors(inkey_len: int, expected: str) -> None:
    inkey = bytes(range(inkey_len))
    assert prf(inkey, LABEL, 16, PrfFunc.PRF_HMAC_SHA_256) == bytes.fromhex(expected)


def test_minisip_compat_reproduces_its_bug() -> None:
    k32 = bytes(range(32))
    assert prf(k32, LABEL, 16, minisip_compat=True) == bytes.fromhex(
        "28b7a45d9ee45b3d681e3db81c775dba"
    )
    assert bytes(prf(k32, LABEL, 16, minisip_compat=True)) == bytes(
        naive_p("sha1", b"", LABEL, 1)[:16]
    )
    # other lengths are unaffected
    for n in (16, 20, 31, 33, 40, 80):
        k = bytes(range(n))
        assert prf(k, LABEL, 30, minisip_compat=True) == prf(k, LABEL, 30)
    k64 = bytes(range(64))
    assert bytes(prf(k64, LABEL, 30, minisip_compat=True)) == naive_prf(
        "sha1", k64, LABEL, 30, minisip=True
    )
    assert prf(k64, LABEL, 30, minisip_compat=True) != prf(k64, LABEL, 30)


# --- against the naive reference ----------------------------------------------------------------


@pytest.mark.parametrize("func", list(PrfFunc))
def test_every_inkey_length_1_to_200(func: PrfFunc) -> None:
    h = HASH[func]
    for n in range(1, 201):
        inkey = bytes((7 * i + n) & 0xFF for i in range(n))
        outlen = (1, 14, 16, 20, 30, 32, 33, 64, 100)[n % 9]
        assert bytes(prf(inkey, LABEL, outlen, func)) == naive_prf(h, inkey, LABEL, outlen), n


@settings(max_examples=150, deadline=None)
@given(
    inkey=st.binary(min_size=1, max_size=140),
    lab=st.binary(max_size=80),
    length=st.integers(min_value=0, max_value=130),
    func=st.sampled_from(list(PrfFunc)),
    compat=st.booleans(),
)
def test_hypothesis_matches_reference(
    inkey: bytes, lab: bytes, length: int, func: PrfFunc, compat: bool
) -> None:
    got = prf(inkey, lab, length, func, minisip_compat=compat)
    assert bytes(got) == naive_prf(HASH[func], inkey, lab, length, minisip=compat)
    assert len(got) == length


def test_prfkey_reusable_across_labels() -> None:
    inkey = bytes(range(70))
    key = PrfKey(inkey)
    for const in KeyConst:
        lab = label(const, 3, CSB, RAND)
        assert bytes(key.derive(lab, 30)) == naive_prf("sha1", inkey, lab, 30)


# --- docs/WIRE.md §Worked PSK exchange -----------------------------------------------------------


def test_transport_keys_worked_example() -> None:
    keys = derive_transport_keys(PSK, CSB, RAND, PrfFunc.MIKEY_1, EncrAlg.AES_CM_128, MacAlg(1))
    assert keys.encr_key == bytes.fromhex("cf92480f7279c5e74c74cfe909bd00f2")
    assert keys.salt_key == bytes.fromhex("2068793f9a6b857c6564fc52feb5")
    assert keys.auth_key == bytes.fromhex("eab8d452b7d54abad2cfd05db2de757fbfec9f34")
    for k in (keys.encr_key, keys.salt_key, keys.auth_key):
        assert isinstance(k, bytearray)


def test_tek_and_salt_worked_example() -> None:
    tek = derive(TGK, KeyConst.TEK, 1, CSB, RAND, 16)
    salt = derive(TGK, KeyConst.SALT, 1, CSB, RAND, 14, PrfFunc.MIKEY_1)
    assert tek == bytes.fromhex("1b3c86914d2e99652f57470a969a845a")
    assert salt == bytes.fromhex("d4d883ced237bdca4ec8eb8235b1")


@pytest.mark.parametrize(
    ("encr", "mac", "encr_len", "auth_len"),
    [
        (EncrAlg.NULL, MacAlg.NULL, 0, 0),
        (EncrAlg.AES_CM_128, MacAlg.HMAC_SHA_1_160, 16, 20),
        (EncrAlg.AES_KW_128, MacAlg.HMAC_SHA_256_256, 16, 32),
        (EncrAlg.AES_CM_256, MacAlg.HMAC_SHA_256_256, 32, 32),
    ],
)
@pytest.mark.parametrize("func", list(PrfFunc))
def test_transport_key_lengths(
    encr: EncrAlg, mac: MacAlg, encr_len: int, auth_len: int, func: PrfFunc
) -> None:
    keys = derive_transport_keys(PSK, CSB, RAND, func, encr, mac)
    assert len(keys.encr_key) == encr_len
    assert len(keys.salt_key) == 14
    assert len(keys.auth_key) == auth_len
    h = HASH[func]
    assert bytes(keys.encr_key) == naive_prf(
        h, PSK, bytes.fromhex("150533e1ff12345678") + RAND, encr_len
    )
    assert bytes(keys.auth_key) == naive_prf(
        h, PSK, bytes.fromhex("2d22ac75ff12345678") + RAND, auth_len
    )


@pytest.mark.parametrize("func", list(PrfFunc))
def test_transport_keys_every_inkey_length(func: PrfFunc) -> None:
    # Short inkeys take a one-chunk fast path, longer ones the chunked PRF: both match the
    # naive reference, for every key length the algorithms ask for.
    h = HASH[func]
    for n in range(1, 100):
        inkey = bytearray((5 * i + n) & 0xFF for i in range(n))
        for encr, mac in (
            (EncrAlg.AES_CM_256, MacAlg.HMAC_SHA_256_256),
            (EncrAlg.AES_CM_128, MacAlg(1)),
        ):
            keys = derive_transport_keys(inkey, CSB, RAND, func, encr, mac)
            tail = bytes.fromhex("ff12345678") + RAND
            assert bytes(keys.encr_key) == naive_prf(
                h, bytes(inkey), bytes.fromhex("150533e1") + tail, len(keys.encr_key)
            ), n
            assert bytes(keys.salt_key) == naive_prf(
                h, bytes(inkey), bytes.fromhex("29b88916") + tail, 14
            ), n
            assert bytes(keys.auth_key) == naive_prf(
                h, bytes(inkey), bytes.fromhex("2d22ac75") + tail, len(keys.auth_key)
            ), n
        assert inkey == bytearray((5 * i + n) & 0xFF for i in range(n))  # caller's key untouched


def test_transport_keys_repr_and_wipe() -> None:
    keys = derive_transport_keys(PSK, CSB, RAND)
    assert "cf92" not in repr(keys)
    assert repr(keys) == "TransportKeys()"
    keys.wipe()
    assert keys.encr_key == bytes(16)
    assert keys.salt_key == bytes(14)
    assert keys.auth_key == bytes(20)
    assert isinstance(keys, TransportKeys)


# --- bad input ------------------------------------------------------------------------------------


def test_empty_inkey_rejected() -> None:
    with pytest.raises(MikeyError, match="empty"):
        prf(b"", LABEL, 16)


@pytest.mark.parametrize("length", [-1, 1 << 20])
def test_bad_length_rejected(length: int) -> None:
    with pytest.raises(MikeyError):
        prf(PSK, LABEL, length)


@pytest.mark.parametrize(
    ("key_len", "salt_len"), [(-1, 14), (1 << 20, 14), (16, -1), (16, 1 << 20)]
)
def test_bad_tek_or_salt_length_rejected(key_len: int, salt_len: int) -> None:
    # The accelerator refuses these itself; the caller still gets the MikeyError naming them.
    with pytest.raises(MikeyError, match="output length"):
        derive_tek_salt(PSK, 1, CSB, RAND, key_len, salt_len)


def test_bad_algorithms_rejected() -> None:
    with pytest.raises(MikeyError):
        prf(PSK, LABEL, 16, 7)  # type: ignore[arg-type]
    with pytest.raises(MikeyError):
        derive_transport_keys(PSK, CSB, RAND, PrfFunc.MIKEY_1, 9, MacAlg.NULL)  # type: ignore[arg-type]
    with pytest.raises(MikeyError):
        derive_transport_keys(PSK, CSB, RAND, PrfFunc.MIKEY_1, EncrAlg.NULL, 9)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("const", "cs_id", "csb_id"),
    [(-1, 1, 1), (1 << 32, 1, 1), (1, 256, 1), (1, -1, 1), (1, 1, 1 << 32), (1, 1, -1)],
)
def test_label_out_of_range(const: int, cs_id: int, csb_id: int) -> None:
    with pytest.raises(MikeyError):
        label(const, cs_id, csb_id, RAND)
