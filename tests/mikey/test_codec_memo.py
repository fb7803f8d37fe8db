"""The codec's SP memos never change what is accepted or produced (RFC 3830 §6.10)."""

from __future__ import annotations

import pytest

from mikey.codec import Header, Leniency, Message, SecurityPolicy, SpParam, parse_message
from mikey.errors import DecodeError
from mikey.registry import DataType, ProtType, SrtpParam

# Every test runs through the C accelerator's fast parser and through the Python parser.
pytestmark = pytest.mark.usefixtures("implementation")


def message(*params: tuple[int, bytes]) -> bytes:
    sp = SecurityPolicy(0, ProtType.SRTP, tuple(SpParam(t, v) for t, v in params))
    return Message(Header(DataType.DH_INIT, 0x01020304), (sp,)).encode()


def test_lenient_only_block_stays_refused_in_strict_mode() -> None:
    # GStreamer writes the SRTP tag length in param 3 and omits param 11 (lenient quirk).
    raw = message((SrtpParam.AUTH_KEY_LEN, b"\x0a"))
    for _ in range(3):
        lenient = parse_message(raw, lenient=True)
        assert Leniency.SRTP_TAG_IN_AUTH_KEY_LEN in lenient.leniencies
        with pytest.raises(DecodeError, match="SRTP tag length"):
            parse_message(raw)


def test_memoised_block_parses_alike_in_both_modes() -> None:
    raw = message((SrtpParam.ENCR_ALG, b"\x01"), (SrtpParam.AUTH_TAG_LEN, b"\x0a"))
    first, second = parse_message(raw), parse_message(raw)
    lenient = parse_message(raw, lenient=True)
    assert first == second == lenient and lenient.leniencies == ()
    assert first.encode() == second.encode() == raw


def test_refused_block_is_refused_every_time() -> None:
    raw = message((SrtpParam.ENCR_ALG, b"\x01"), (SrtpParam.ENCR_ALG, b"\x01"))
    for _ in range(3):
        with pytest.raises(DecodeError, match="repeated"):
            parse_message(raw)


def test_encoding_does_not_depend_on_the_memo() -> None:
    params = ((1, b"\x02"), (0, b"\x01"), (SrtpParam.KEY_DERIVATION_RATE, b"\x00\x01"))
    want = b"".join(bytes([t, len(v)]) + v for t, v in params)
    a = SecurityPolicy(3, ProtType.SRTP, tuple(SpParam(t, v) for t, v in params))
    b = SecurityPolicy(3, ProtType.SRTP, tuple(SpParam(t, v) for t, v in params))
    for sp in (a, a, b):
        assert sp.encode(0) == bytes([0, 3, 0]) + len(want).to_bytes(2, "big") + want
