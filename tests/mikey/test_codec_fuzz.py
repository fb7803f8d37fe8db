"""Fuzzing the MIKEY codec: only MikeyError subclasses may escape, and parsing always finishes.

Two sources of input: ``binary()`` (mostly garbage, with a valid HDR prefix mixed in so the
payload parsers are reached) and valid messages from :mod:`tests.mikey.vectors` mutated by bit
flips, truncation, insertion and duplication of byte ranges. Both modes are exercised. Whatever
parses must re-encode to bytes that parse to the same message (the codec is its own oracle
here; the byte-exact oracles live in test_codec.py and the interop tests).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mikey.codec import Message, parse_message
from mikey.errors import MikeyError

from .vectors import (
    GST_CREATE_PAYLOADS,
    NULL_MODE_MESSAGE,
    PSK_ERROR_MESSAGE,
    PSK_I_MESSAGE,
    PSK_R_MESSAGE,
    genetec_message,
    interop_messages,
    messages,
)

SEEDS = [
    PSK_I_MESSAGE,
    PSK_R_MESSAGE,
    PSK_ERROR_MESSAGE,
    NULL_MODE_MESSAGE,
    GST_CREATE_PAYLOADS,
    genetec_message(),
    *(m.encode() for m in interop_messages().values()),
]

FUZZ = settings(
    max_examples=800,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Every test runs through the C accelerator's fast parser and through the Python parser.
pytestmark = pytest.mark.usefixtures("implementation")


def check(data: bytes) -> None:
    """Parse in both modes; a success must be stable under encode/parse."""
    for lenient in (False, True):
        try:
            m = parse_message(data, lenient=lenient)
        except MikeyError:
            continue
        assert isinstance(m, Message)
        again = m.encode()
        assert again == data  # every accepted input re-encodes byte-exactly
        assert parse_message(again, lenient=lenient) == m


@FUZZ
@given(st.binary(max_size=512))
def test_binary_garbage(data: bytes) -> None:
    check(data)


hdr_prefix = st.builds(
    lambda dt, np, rest: bytes([1, dt, np, 0, 1, 2, 3, 4]) + rest,
    st.integers(0, 30),
    st.integers(0, 30),
    st.binary(max_size=300),
)


@FUZZ
@given(hdr_prefix)
def test_binary_after_valid_version(data: bytes) -> None:
    """Version 1 and a small data type / next payload so the payload parsers get exercised."""
    check(data)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.one_of(st.sampled_from(SEEDS), messages().map(lambda m: m.encode()))))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate", "delete", "set"]))
        n = len(base)
        i = draw(st.integers(0, max(n - 1, 0)))
        if op == "flip" and n:
            base[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            base[i] = draw(st.sampled_from([0, 1, 4, 20, 0x7F, 0x80, 0xFF]))
        elif op == "truncate":
            del base[i:]
        elif op == "insert":
            base[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del base[i : i + draw(st.integers(1, 8))]
        elif op == "duplicate" and n:
            j = draw(st.integers(i, min(n, i + 40)))
            base[j:j] = base[i:j]
    return bytes(base)


@FUZZ
@given(mutated())
def test_mutated_valid_messages(data: bytes) -> None:
    check(data)


@pytest.mark.parametrize("seed", range(len(SEEDS)))
def test_every_single_bit_flip_of_the_spec_vectors(seed: int) -> None:
    """Exhaustive: each bit of each seed flipped; only MikeyError escapes, results re-encode."""
    data = SEEDS[seed]
    if len(data) > 400:
        data = data[:400]  # the long PK/DH messages: their first 400 bytes cover every header
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            check(bytes(flipped))


def test_pathological_inputs_finish() -> None:
    """Long chains and maximal lengths end with a result or a DecodeError, never a hang."""
    rand_chain = (
        bytes.fromhex("0101 0b00 12345678 0000".replace(" ", "")) + bytes.fromhex("0b01ff") * 20000
    )
    for data in (
        rand_chain,
        bytes([1, 0, 1, 0, 0, 0, 0, 0, 255, 0]) + bytes(2300),
        bytes([1, 0, 1, 0, 0, 0, 0, 0, 255, 2]) + b"\x00\x00\x7f" * 2000,
        bytes([1, 1, 1, 0, 0, 0, 0, 0, 0, 0]) + b"\x00\x00\xff\xff" + bytes(65000),
        bytes(65535),
        b"\x01" * 65535,
    ):
        check(data)
