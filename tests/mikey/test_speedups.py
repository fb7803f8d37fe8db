"""The C accelerator (mikey/_speedups.c) against the pure-Python reference it replaces.

test_prf, test_crypto and test_dh run all their vectors and their hypothesis tests (against a
naive HMAC-by-hand PRF, hashlib, cryptography, pow) through both implementations; this file adds
what those cannot reach: the C functions called directly, their argument checks, and whole
exchanges that must agree byte for byte.

Oracles: ``hmac``/``hashlib`` and ``cryptography`` for the primitives, ``mikey.prf.PrfKey`` (the
Python PRF, itself checked against the docs/WIRE.md vectors and a naive HMAC in test_prf) for the
PRF, ``pow`` and the Python Jacobi for the DH arithmetic, and ``mikey.codec``'s Python parser
(itself checked against the spec vectors, GStreamer's and tshark's decodings in test_codec) for
the fast parse of the common message.
"""

from __future__ import annotations

import dataclasses
import hmac
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from mikey import _accel, codec
from mikey.dh import DH_PARAMS, _jacobi
from mikey.errors import DecodeError
from mikey.exchange import CsbTable, StreamSpec
from mikey.keying import KeyingResult, Mode
from mikey.prf import PrfKey
from mikey.registry import DhGroup, PrfFunc
from mikey.replay import ReplayGuard

from .conftest import _BUILT, require_accelerator
from .pair import EVERY_MODE, NOW, Pair, configs, ep
from .test_codec_fuzz import SEEDS, mutated
from .vectors import messages, pk_message, psk_aes_message, rsa_r_messages

_C: Any = _BUILT
_DIGEST = {PrfFunc.MIKEY_1: 1, PrfFunc.PRF_HMAC_SHA_256: 2}


@pytest.fixture(autouse=True)
def _built() -> None:
    require_accelerator()
    _C_setup()  # the fast codec path is ready for each test, whatever the last one left


def _python_prf(inkey: bytes, lab: bytes, length: int, func: PrfFunc, compat: bool) -> bytes:
    key = PrfKey(inkey, func, minisip_compat=compat)
    try:
        return bytes(key.derive(lab, length))
    finally:
        key.wipe()


def test_prf_chunk_boundaries() -> None:
    """Every inkey length around the 32-byte chunks, with and without minisip's last chunk."""
    lab = bytes(range(25))
    for n in range(1, 131):
        inkey = bytes((5 * i + n) & 0xFF for i in range(n))
        for func in PrfFunc:
            for compat in (False, True):
                for length in (0, 1, 14, 20, 21, 32, 33, 64, 65):
                    got = _C.prf(_DIGEST[func], inkey, lab, length, compat)
                    assert bytes(got) == _python_prf(inkey, lab, length, func, compat), (n, length)


@settings(max_examples=200, deadline=None)
@given(
    inkey=st.binary(min_size=1, max_size=100),
    tail=st.binary(max_size=260),
    wanted=st.lists(
        st.tuples(st.integers(0, 0xFFFFFFFF), st.integers(0, 80)), min_size=1, max_size=4
    ),
    func=st.sampled_from(list(PrfFunc)),
    compat=st.booleans(),
)
def test_prf_many_is_prf_per_label(
    inkey: bytes, tail: bytes, wanted: list[tuple[int, int]], func: PrfFunc, compat: bool
) -> None:
    outs = _C.prf_many(_DIGEST[func], bytearray(inkey), tail, tuple(wanted), compat)
    assert len(outs) == len(wanted)
    for (const, length), out in zip(wanted, outs, strict=True):
        assert type(out) is bytearray
        lab = const.to_bytes(4, "big") + tail
        assert bytes(out) == _python_prf(inkey, lab, length, func, compat)


@settings(max_examples=300, deadline=None)
@given(key=st.binary(max_size=150), data=st.binary(max_size=300))
def test_hmac_matches_hashlib(key: bytes, data: bytes) -> None:
    assert _C.hmac(1, key, data) == hmac.digest(key, data, "sha1")
    assert _C.hmac(2, bytearray(key), memoryview(data)) == hmac.digest(key, data, "sha256")


@settings(max_examples=300, deadline=None)
@given(
    key=st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
    iv=st.binary(min_size=16, max_size=16),
    data=st.binary(max_size=300),
)
def test_aes_ctr_matches_cryptography(key: bytes, iv: bytes, data: bytes) -> None:
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    out = _C.aes_ctr(bytearray(key), iv, data)
    assert type(out) is bytearray
    assert bytes(out) == ctx.update(data) + ctx.finalize()


def test_aes_ctr_counter_wraps_128_bits() -> None:
    """AES-CM's counter is the whole 128-bit block: it carries into the IV's upper bytes."""
    key, iv = bytes(range(16)), bytes.fromhex("00" * 8 + "ff" * 8)
    ctx = Cipher(algorithms.AES(key), modes.CTR(iv)).encryptor()
    assert bytes(_C.aes_ctr(key, iv, bytes(64))) == ctx.update(bytes(64)) + ctx.finalize()


@settings(max_examples=60, deadline=None)
@given(
    group=st.sampled_from(list(DhGroup)),
    base=st.integers(min_value=0),
    exponent=st.integers(min_value=0, max_value=(1 << 1600) - 1),
)
def test_modexp_matches_pow(group: DhGroup, base: int, exponent: int) -> None:
    p = DH_PARAMS[group].p
    size = DH_PARAMS[group].length
    base %= p
    got = _C.modexp(
        base.to_bytes(size, "big"), exponent.to_bytes(200, "big"), p.to_bytes(size, "big")
    )
    assert type(got) is bytearray
    assert bytes(got) == pow(base, exponent, p).to_bytes(size, "big")


@settings(max_examples=300, deadline=None)
@given(
    a=st.integers(min_value=0, max_value=(1 << 1600)),
    n=st.integers(min_value=0, max_value=(1 << 1540)),
)
def test_jacobi_matches_python(a: int, n: int) -> None:
    n |= 1
    assert _C.jacobi(a.to_bytes(201, "big"), n.to_bytes(194, "big")) == _jacobi(a, n)


def test_jacobi_of_group_elements() -> None:
    """Squares are residues, the generator's odd powers of OAKLEY 5 (g = 2, p = 7 mod 8) too."""
    params = DH_PARAMS[DhGroup.OAKLEY_5]
    pb = params.p.to_bytes(params.length, "big")
    for k in range(1, 40):
        y = pow(3 + k, 2, params.p)
        assert _C.jacobi(y.to_bytes(params.length, "big"), pb) == 1
        assert _C.jacobi((params.p - y).to_bytes(params.length, "big"), pb) == -1  # -1 is not
    assert _C.jacobi(bytes(params.length), pb) == 0


def test_modexp_edge_values() -> None:
    p = DH_PARAMS[DhGroup.OAKLEY_1].p
    pb = p.to_bytes(96, "big")
    for base, exponent in [(0, 5), (1, 0), (0, 0), (p - 1, 2), (2, p - 2), (p + 5, 3)]:
        got = _C.modexp(base.to_bytes(97, "big"), exponent.to_bytes(97, "big"), pb)
        assert bytes(got) == pow(base, exponent, p).to_bytes(96, "big"), (base, exponent)
    # small odd moduli too
    for m in (3, 5, 255, 65537):
        for base in range(12):
            got = _C.modexp(bytes([base]), b"\x07", m.to_bytes(3, "big"))
            assert int.from_bytes(got, "big") == pow(base, 7, m)


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda: _C.prf(3, b"k", b"", 16, False), ValueError),
        (lambda: _C.prf(1, b"", b"", 16, False), ValueError),
        (lambda: _C.prf(1, b"k", b"", -1, False), ValueError),
        (lambda: _C.prf(1, b"k", b"", 65537, False), ValueError),
        (lambda: _C.prf(1, "k", b"", 16, False), TypeError),
        (lambda: _C.prf_many(1, b"k", b"", ((1, 16), (2,)), False), TypeError),
        (lambda: _C.prf_many(1, b"k", b"", ((1 << 32, 16),), False), ValueError),
        (lambda: _C.prf_many(1, b"k", b"", ((-1, 16),), False), OverflowError),
        (lambda: _C.prf_many(1, b"k", b"", 5, False), TypeError),
        (lambda: _C.prf_many(1, b"k", bytes(5000), ((1, 16),), False), ValueError),
        (lambda: _C.hmac(0, b"k", b""), ValueError),
        (lambda: _C.aes_ctr(bytes(24), bytes(16), b"x"), ValueError),
        (lambda: _C.aes_ctr(bytes(16), bytes(12), b"x"), ValueError),
        (lambda: _C.modexp(b"\x02", b"\x05", b"\x10"), ValueError),  # even modulus
        (lambda: _C.modexp(b"\x02", b"\x05", b""), ValueError),
        (lambda: _C.modexp(b"\x02", bytes(1025), b"\x0b"), ValueError),
        (lambda: _C.jacobi(b"\x02", b"\x10"), ValueError),
        (lambda: _C.jacobi(b"\x02", b""), ValueError),
    ],
)
def test_bad_arguments_raise(call: object, error: type[Exception]) -> None:
    with pytest.raises(error):
        call()  # type: ignore[operator]


# --- whole exchanges, once per implementation ----------------------------------------------------

STREAMS = (StreamSpec(0x1234, 0, 0), StreamSpec(0x2345, 7, 0))


def _exchange(mode: Mode, verify: bool) -> tuple[KeyingResult, KeyingResult, bytes, bytes | None]:
    i_cfg, r_cfg = configs(mode, i_verify=verify)
    pair = Pair(
        ep(i_cfg, replay=ReplayGuard()),
        ep(r_cfg, replay=ReplayGuard(), csbs=CsbTable()),
        seed=11,
    )
    return pair.run(NOW, STREAMS)


def _keys(result: KeyingResult) -> list[tuple[int, bytes, bytes]]:
    return [(e.ssrc, bytes(e.master_key), bytes(e.master_salt)) for e in result.data_sa]


# RSA encryption pads with OpenSSL's own randomness, so PK and RSA-R messages differ per run;
# their keys (from the seeded rng) and the other modes' messages must not.
DETERMINISTIC_MESSAGES = {Mode.PSK, Mode.DH, Mode.DHHMAC}


@pytest.mark.parametrize(("mode", "verify"), EVERY_MODE)
def test_exchange_identical_in_both_implementations(
    mode: Mode, verify: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_accel, "speedups", None)
    py_i, py_r, py_msg, py_answer = _exchange(mode, verify)
    monkeypatch.setattr(_accel, "speedups", _C)
    c_i, c_r, c_msg, c_answer = _exchange(mode, verify)
    assert _keys(c_i) == _keys(py_i) == _keys(py_r) == _keys(c_r)
    assert len(_keys(c_i)) == len(STREAMS)
    if mode in DETERMINISTIC_MESSAGES:
        assert c_msg == py_msg
        assert c_answer == py_answer


def test_accelerated_reports_the_implementation_in_use(monkeypatch: pytest.MonkeyPatch) -> None:
    import mikey

    monkeypatch.setattr(_accel, "speedups", _C)
    assert mikey.accelerated() is True
    monkeypatch.setattr(_accel, "speedups", None)
    assert mikey.accelerated() is False


def test_pure_python_environment_variable_turns_it_off() -> None:
    import subprocess
    import sys

    code = "import mikey, mikey.prf as p; print(mikey.accelerated(), p._accel.speedups is None)"
    for env, expected in (({"MIKEY_PURE_PYTHON": "1"}, "False True"), ({}, "True False")):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == expected, out.stderr


@pytest.mark.parametrize("impl", ["c", "python"])
def test_wipe_zeroes_every_buffer_and_refuses_immutable_ones(impl: str) -> None:
    wipe = _C.cleanse if impl == "c" else _accel._wipe_python
    a, b = bytearray(b"secret key"), bytearray(range(1, 40))
    view = memoryview(bytearray(b"salt"))
    wipe(a, None, b, view)
    assert a == bytes(10) and b == bytes(39) and bytes(view) == bytes(4)
    wipe()
    wipe(bytearray())
    for immutable in (b"key", memoryview(b"key"), "key"):
        with pytest.raises(TypeError):
            wipe(immutable)


def test_mikey_wipe_is_the_accelerated_one() -> None:
    assert _accel.wipe is (_C.cleanse if _accel.speedups is not None else _accel._wipe_python)


# --- parse_message: the common strict case of mikey.codec.parse_message -----------------------


def _same(fast: object, slow: object, path: str = "message") -> None:
    """Equal, field by field, with the very same types (bytes, not bytearray; enum members)."""
    assert type(fast) is type(slow), (path, type(fast), type(slow))
    if dataclasses.is_dataclass(fast):
        for f in dataclasses.fields(fast):
            _same(getattr(fast, f.name), getattr(slow, f.name), f"{path}.{f.name}")
    elif isinstance(fast, tuple):
        assert len(fast) == len(slow), path  # type: ignore[arg-type]
        for i, (a, b) in enumerate(zip(fast, slow, strict=True)):  # type: ignore[call-overload]
            _same(a, b, f"{path}[{i}]")
    else:
        assert fast == slow, (path, fast, slow)


def _differential(data: bytes) -> object:
    """The fast parse is None or exactly the strict Python parse; never accepts what it refuses."""
    try:
        slow = codec._parse(data, False, map_padding=False)
    except DecodeError:
        slow = None
    fast = _C.parse_message(data)
    if fast is not None:
        assert slow is not None, "the fast parser accepted what the Python parser refuses"
        _same(fast, slow)
        assert fast.encode() == data
    return fast


def _C_setup() -> None:
    saved = _accel.speedups
    _accel.speedups = _C
    try:
        codec._setup_fast_parser()  # ready even when the process runs with MIKEY_PURE_PYTHON
    finally:
        _accel.speedups = saved


@settings(max_examples=400, deadline=None)
@given(messages())
def test_fast_parse_matches_python_on_valid_messages(m: codec.Message) -> None:
    _differential(m.encode())


@settings(max_examples=1500, deadline=None)
@given(mutated())
def test_fast_parse_matches_python_on_mutated_messages(data: bytes) -> None:
    _differential(data)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_fast_parse_matches_python_on_random_bytes(data: bytes) -> None:
    _differential(b"\x01" + data)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_fast_parse_every_bit_flip_and_truncation_of_the_seeds(seed: int) -> None:
    data = SEEDS[seed][:400]
    for i in range(len(data)):
        _differential(data[:i])
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            _differential(bytes(flipped))


def test_fast_parse_leaves_the_unusual_to_python() -> None:
    """What needs a leniency or the Python parser's memo goes to it, and parse_message agrees."""
    base = psk_aes_message()
    raw = base.encode()
    codec.parse_message(raw)  # its SP parameter block is memoised now
    assert _C.parse_message(raw) is not None
    header_t = len(base.header.encode(0))  # the T payload follows the header
    t_old = bytearray(raw)
    t_old[header_t + 2 : header_t + 6] = b"\x01\x00\x00\x00"  # NTP in 1900: a leniency
    no_rand = codec.Message(
        base.header, tuple(p for p in base.payloads if not isinstance(p, codec.Rand))
    ).encode()  # a PSK I_MESSAGE without RAND: a leniency
    cases = [bytes(t_old), no_rand, raw + b"\x00", raw[:-1], b"\x02" + raw[1:]]
    for data in cases:
        assert _C.parse_message(data) is None
    assert codec.parse_message(bytes(t_old), lenient=True).leniencies
    assert codec.parse_message(no_rand, lenient=True).leniencies
    with pytest.raises(DecodeError):
        codec.parse_message(raw[:-1])


def test_fast_parse_needs_the_memo_for_sp_parameters(monkeypatch: pytest.MonkeyPatch) -> None:
    raw = psk_aes_message().encode()
    codec._SP_BODY_CACHE.clear()
    assert _C.parse_message(raw) is None  # an SP block it has not seen: Python parses it
    codec.parse_message(raw)
    assert _C.parse_message(raw) is not None


def test_fast_parse_setup_and_argument_checks() -> None:
    raw = psk_aes_message().encode()
    codec.parse_message(raw)  # memoises its SP parameters
    with pytest.raises(TypeError):
        _C.parse_message(bytearray(raw))
    try:
        with pytest.raises(ValueError, match="sizes"):
            _C.parse_setup((), (), (), {}, {}, b"\0\0\0\0", 128, 65535)
        assert _C.parse_message(raw) is None  # a failed setup leaves the fast parser off
        with pytest.raises(TypeError):
            _C.parse_setup(((1, 2),) * 13, ({},) * 12, ({},) * 3, {}, {}, b"\0\0\0\0", 128, 65535)
        assert _C.parse_message(raw) is None
    finally:
        _C_setup()
    assert _C.parse_message(raw) is not None  # until a good one


# --- encode_message: Message.encode for the same classes ---------------------------------------


def _encode_differential(m: codec.Message) -> bytes | None:
    """The fast encode is None or exactly the Python encoder's bytes; None where it refuses."""
    try:
        slow: bytes | None = m._encode()
    except Exception:  # ill-typed fields fail in many ways; any failure counts
        slow = None
    fast = _C.encode_message(m)
    if fast is not None:
        assert slow is not None, "the fast encoder wrote what the Python encoder refuses"
        assert type(fast) is bytes
        assert fast == slow
    return fast


@pytest.mark.parametrize(("mode", "verify"), EVERY_MODE)
def test_fast_path_on_every_exchange_message(mode: Mode, verify: bool) -> None:
    """Each message a real exchange sends; PSK, PK and RSA-R ones take the fast path both ways."""
    pair = Pair(*configs(mode, i_verify=verify))
    i_msg = pair.offer(NOW, (StreamSpec(0x1234, 0, 0), StreamSpec(0x5678, 0, 0)))
    reply = pair.responder.respond(i_msg, NOW)
    for raw in (i_msg, reply.answer):
        if raw is None:
            continue
        fast = _differential(raw)
        m = codec._parse(raw, False, map_padding=False)
        m._encode()  # the Python encoder memoises the SP parameter block, as in an exchange
        written = _encode_differential(m)
        if mode in (Mode.PSK, Mode.PK, Mode.RSA_R):
            assert fast is not None, f"{mode.value}: the fast parse was not taken"
            assert written == raw, f"{mode.value}: the fast encode was not taken"
        else:  # DH payloads (and DHHMAC's NULL-encrypted KEMAC) are the Python codec's
            assert fast is None
            assert written is None


@settings(max_examples=400, deadline=None)
@given(messages())
def test_fast_encode_matches_python_on_valid_messages(m: codec.Message) -> None:
    m._encode()
    _encode_differential(m)


_FIELD_VALUES = st.one_of(
    st.integers(-2, 2),
    st.sampled_from([0x7F, 0x80, 0xFF, 0x100, 0x3FFF, 0x4000, 0xFFFF, 0x10000, 2**32 - 1, 2**32]),
    st.booleans(),
    st.binary(max_size=40),
    st.sampled_from([b"", bytes(4), bytes(8), bytes(20), bytes(256), bytes(0x1000), None]),
    st.builds(bytearray, st.binary(max_size=8)),
)


@settings(max_examples=1500, deadline=None)
@given(messages(), st.data())
def test_fast_encode_matches_python_on_altered_fields(
    m: codec.Message, data: st.DataObject
) -> None:
    """Any field of the header, a map entry or a payload replaced by a value of any type or
    range: the fast encoder writes the Python encoder's bytes or leaves it to the Python one."""
    m._encode()
    targets = ["header", *(f"payload {i}" for i in range(len(m.payloads)))]
    if m.header.cs_map:
        targets.append("entry")
    target = data.draw(st.sampled_from(targets))
    value = data.draw(_FIELD_VALUES)
    if target == "header":
        name = data.draw(st.sampled_from([f.name for f in dataclasses.fields(codec.Header)]))
        m = replace(m, header=_force(m.header, name, value))
    elif target == "entry":
        entry = m.header.cs_map[0]
        name = data.draw(st.sampled_from([f.name for f in dataclasses.fields(entry)]))
        cs_map = (_force(entry, name, value), *m.header.cs_map[1:])
        m = replace(m, header=_force(m.header, "cs_map", cs_map))
    else:
        i = int(target.split()[1])
        p = m.payloads[i]
        name = data.draw(st.sampled_from([f.name for f in dataclasses.fields(p)]))  # type: ignore[arg-type]
        m = replace(m, payloads=(*m.payloads[:i], _force(p, name, value), *m.payloads[i + 1 :]))
    _encode_differential(m)


def _force(obj: Any, name: str, value: object) -> Any:
    """A copy of a frozen object with one field set to anything (no __init__ checks)."""
    new = object.__new__(type(obj))
    for f in dataclasses.fields(obj):
        object.__setattr__(new, f.name, value if f.name == name else getattr(obj, f.name))
    return new


def test_fast_encode_leaves_the_unusual_to_python() -> None:
    m = psk_aes_message()
    raw = m._encode()
    assert _C.encode_message(m) == raw

    class Sub(codec.Message):
        __slots__ = ()

    sub = object.__new__(Sub)
    for f in dataclasses.fields(m):
        object.__setattr__(sub, f.name, getattr(m, f.name))
    big = replace(m, trailing=bytes(65536 - len(raw)))  # one byte over the maximum
    sign_first = replace(m, payloads=(codec.Sign(codec.SignType.RSA_PSS, b"s"), *m.payloads))
    for odd in (sub, big, sign_first, object()):
        assert _C.encode_message(odd) is None
    with pytest.raises(codec.EncodeError):
        big.encode()
    with pytest.raises(codec.EncodeError):
        sign_first.encode()
    exact = replace(m, trailing=bytes(65535 - len(raw)))  # the largest message encodes
    assert _C.encode_message(exact) == exact._encode()


def _with(m: codec.Message, cls: type, name: str, value: object) -> codec.Message:
    """``m`` with field ``name`` of its first ``cls`` payload (or header, map entry) forced."""
    if cls is codec.Header:
        return replace(m, header=_force(m.header, name, value))
    if cls is codec.SrtpIdEntry:
        cs_map = (_force(m.header.cs_map[0], name, value), *m.header.cs_map[1:])
        return replace(m, header=_force(m.header, "cs_map", cs_map))
    i = next(i for i, p in enumerate(m.payloads) if type(p) is cls)
    p = _force(m.payloads[i], name, value)
    return replace(m, payloads=(*m.payloads[:i], p, *m.payloads[i + 1 :]))


_PSK = psk_aes_message()
_PK = pk_message()
_RSA_R = rsa_r_messages()[1]
_PK_CHASH = replace(
    _PK,
    payloads=(*_PK.payloads[:-1], codec.Chash(codec.HashFunc.SHA_256, bytes(32)), _PK.payloads[-1]),
)
OUT_OF_RANGE = [
    (_PSK, codec.Rand, "value", b""),
    (_PSK, codec.Rand, "value", bytes(256)),
    (_PSK, codec.Header, "prf", 0x80),
    (_PSK, codec.Header, "csb_id", 2**32),
    (_PSK, codec.Header, "csb_id", -1),
    (_PSK, codec.Header, "version", 256),
    (_PSK, codec.Header, "data_type", 256),
    (_PSK, codec.SrtpIdEntry, "ssrc", 2**32),
    (_PSK, codec.SrtpIdEntry, "policy_no", 256),
    (_PSK, codec.Timestamp, "value", bytes(7)),
    (_PK, codec.IdPayload, "data", bytes(0x10000)),
    (_PSK, codec.Kemac, "encr_data", bytes(0x10000)),
    (_PSK, codec.Kemac, "mac", bytes(19)),
    (_PSK, codec.SecurityPolicy, "policy_no", 256),
    (_PK, codec.Cert, "data", bytes(0x10000)),
    (_PK, codec.Pke, "data", bytes(0x4000)),
    (_PK, codec.Pke, "cache", 4),
    (_PK, codec.Sign, "signature", bytes(0x1000)),
    (_PK, codec.Sign, "sign_type", 16),
    (_PK_CHASH, codec.Chash, "digest", bytes(31)),
]


@pytest.mark.parametrize(("m", "cls", "name", "value"), OUT_OF_RANGE)
def test_fast_encode_refuses_each_out_of_range_field(
    m: codec.Message, cls: type, name: str, value: object
) -> None:
    m._encode()
    assert _C.encode_message(m) is not None  # the message itself takes the fast path
    bad = _with(m, cls, name, value)
    assert _C.encode_message(bad) is None
    with pytest.raises(codec.EncodeError):
        bad.encode()


def test_fast_encode_writes_the_largest_values() -> None:
    for m, cls, name, value in [
        (_PSK, codec.Rand, "value", bytes(range(255))),
        (_PSK, codec.Header, "prf", 0x7F),
        (_PSK, codec.Header, "csb_id", 2**32 - 1),
        (_PSK, codec.SrtpIdEntry, "roc", 2**32 - 1),
        (_PK, codec.Pke, "data", bytes(0x3FFF)),
        (_PK, codec.Sign, "signature", bytes(0xFFF)),
        (_RSA_R, codec.Pke, "cache", 2),
    ]:
        big = _with(m, cls, name, value)
        big._encode()
        assert _C.encode_message(big) == big._encode(), (cls.__name__, name)


def test_fast_path_takes_the_codec_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """MAX_PAYLOADS and MAX_MESSAGE_SIZE reach the C code, which defers beyond them."""
    m = psk_aes_message()
    raw = m._encode()
    codec.parse_message(raw)
    try:
        monkeypatch.setattr(codec, "MAX_PAYLOADS", len(m.payloads) - 1)
        monkeypatch.setattr(codec, "MAX_MESSAGE_SIZE", len(raw) - 1)
        _C_setup()
        assert _C.parse_message(raw) is None
        assert _C.encode_message(m) is None
        monkeypatch.setattr(codec, "MAX_PAYLOADS", len(m.payloads))
        monkeypatch.setattr(codec, "MAX_MESSAGE_SIZE", len(raw))
        _C_setup()
        assert _C.parse_message(raw) is not None
        assert _C.encode_message(m) == raw
        monkeypatch.setattr(codec, "MAX_MESSAGE_SIZE", 65536)  # more than the C buffer holds
        with pytest.raises(ValueError, match="limits"):
            _C_setup()
    finally:
        monkeypatch.undo()
        _C_setup()
