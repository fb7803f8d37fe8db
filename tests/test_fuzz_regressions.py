"""Every fuzz harness over its seed corpus and every input that ever crashed it (fast).

The seeds are valid messages made by the real code (tests/fuzz/make_corpus.py), so they must
pass cleanly; a seed I_MESSAGE must also complete its exchange (the stored keys still match).
A crasher that is not fixed yet is listed in KNOWN with the reason and runs as a strict xfail:
when the owner fixes the bug the test XPASSes and the entry must be removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
from pathlib import Path

import pytest

from mikey.codec import Kemac, parse_message
from mikey.errors import (
    AuthenticationError,
    DecodeError,
    MikeyError,
    PolicyError,
    TimestampError,
)
from mikey.exchange import ExchangeCompleted, ExchangeRefused, Initiator, StreamSpec
from mikey.keying import Mode
from mikey.registry import MacAlg
from tests.fuzz.__main__ import InputTimeout, _one, _parse_worker, bounded, mutate
from tests.fuzz.harnesses import (
    CRASHERS,
    GSTREAMER_RESPONDER,
    HARNESSES,
    NOW,
    RESPONDER_MODES,
    exchange_configs,
    mikey_lenient,
    mikey_strict,
    respond,
    seeds,
)
from tests.mikey.pair import ep

# Fixed crashers (kept as regressions): none open. Add unfixed ones here as
# "harness/filename": "finding ..." and they run as strict xfails.
KNOWN: dict[str, str] = {}

CASES = [(name, path, data) for name in HARNESSES for path, data in seeds(name)]


def _marks(name: str, filename: str) -> list[pytest.MarkDecorator]:
    reason = KNOWN.get(f"{name}/{filename}")
    return [pytest.mark.xfail(strict=True, reason=reason)] if reason else []


@pytest.mark.parametrize(
    ("name", "filename", "data"),
    [
        pytest.param(
            name,
            path.name,
            data,
            id=f"{name}/{path.parent.name}/{path.name[:24]}",
            marks=_marks(name, path.name),
        )
        for name, path, data in CASES
    ],
)
def test_harness_input(name: str, filename: str, data: bytes) -> None:
    bounded(HARNESSES[name].check, data, 5.0)


def test_every_harness_has_seeds() -> None:
    for name in HARNESSES:
        corpus = [p for p, _ in seeds(name) if CRASHERS not in p.parents]
        assert corpus, f"no seed corpus for {name}"


@pytest.mark.parametrize("name", [*RESPONDER_MODES, GSTREAMER_RESPONDER])
def test_responder_seeds_complete(name: str) -> None:
    corpus = [d for p, d in seeds(name) if CRASHERS not in p.parents]
    assert corpus
    for data in corpus:
        if name == GSTREAMER_RESPONDER:
            reply = respond(Mode.PSK, data, gstreamer=True)
        else:
            reply = respond(RESPONDER_MODES[name], data)
        assert isinstance(reply, ExchangeCompleted)


def test_known_crashers_exist() -> None:
    for key in KNOWN:
        name, filename = key.split("/", 1)
        assert (CRASHERS / name / filename).is_file(), key


# -- the fuzz machinery itself can fail ------------------------------------------------------


def test_bound_interrupts_a_python_loop() -> None:
    def spin(data: bytes) -> None:
        while True:
            pass

    with pytest.raises(InputTimeout):
        bounded(spin, b"", 0.2)


def test_pure_fuzzer_records_one_reproducer_per_site(tmp_path: Path) -> None:
    def target(data: bytes) -> None:
        if data[:1] == b"A":
            raise IndexError("bug")

    findings: dict[str, str] = {}
    for data in (b"B", b"A1", b"A2"):
        _one(target, "selftest", data, 1.0, findings, tmp_path)
    (signature,) = findings
    assert signature.startswith("IndexError at test_fuzz_regressions.py:")
    assert [p.read_bytes() for p in (tmp_path / "selftest").iterdir()] == [b"A1"]


def test_mutations_are_seeded_and_change_input() -> None:
    pool = [b"hello world", b"INVITE sip:x SIP/2.0\r\n\r\n"]
    a = [mutate(pool[0], pool, random.Random(9)) for _ in range(1)]
    b = [mutate(pool[0], pool, random.Random(9)) for _ in range(1)]
    assert a == b
    rng = random.Random(1)
    assert any(mutate(pool[0], pool, rng) != pool[0] for _ in range(20))


def test_atheris_crash_output_is_a_finding() -> None:
    out = (
        " === Uncaught Python exception: ===\nValueError: boom\nTraceback ...\n"
        "artifact_prefix='x/'; Test unit written to "
        f"{Path(__file__).parent.resolve()}/fuzz/crashers/sdp/crash-00ff\n"
        "stat::number_of_executed_units: 1234\n"
    )
    result = _parse_worker("sdp", out, 1, pure=False)
    assert result["runs"] == 1234
    assert result["findings"] == {"ValueError: boom": "crashers/sdp/crash-00ff"}


# -- the field's track record, as explicit oracles -------------------------------------------


def _psk_offer(now: float = NOW) -> bytes:
    init_cfg, _ = exchange_configs(Mode.PSK)
    return Initiator(ep(init_cfg), random.Random(4).randbytes).start(
        now, (StreamSpec(0x1234, 0, 0),)
    )


def _with_kemac(raw: bytes, kemac: Kemac) -> bytes:
    msg = parse_message(raw)
    payloads = tuple(kemac if isinstance(p, Kemac) else p for p in msg.payloads)
    return dataclasses.replace(msg, payloads=payloads).encode()


def test_kemac_without_key_data_is_refused_cleanly() -> None:
    """gst-rtsp-server dereferenced NULL on a KEMAC carrying no key data."""
    raw = _psk_offer()
    old = next(p for p in parse_message(raw).payloads if isinstance(p, Kemac))
    for kemac in (
        dataclasses.replace(old, encr_data=b""),
        Kemac.null(()),
        Kemac.null((), MacAlg.HMAC_SHA_1_160),
    ):
        reply = respond(Mode.PSK, _with_kemac(raw, kemac))
        assert isinstance(reply, ExchangeRefused)
        assert isinstance(reply.error, AuthenticationError | PolicyError | DecodeError)


def test_unknown_payload_in_chain_terminates() -> None:
    """GStreamer's MIKEY parser looped for ever on an unhandled payload type."""
    raw = bytearray(_psk_offer())
    # the last payload (KEMAC) gets a successor of unassigned type 200 with a length field
    msg = parse_message(bytes(raw))
    assert isinstance(msg.payloads[-1], Kemac)
    kemac_start = len(raw) - len(msg.payloads[-1].encode(0))
    raw[kemac_start] = 200
    tail = bytes([0, 0, 4]) + b"abcd"
    for data in (bytes(raw) + tail, bytes(raw) + tail * 50, bytes(raw)):
        with pytest.raises(MikeyError):
            bounded(mikey_strict, data, 1.0)
        with contextlib.suppress(MikeyError):
            bounded(mikey_lenient, data, 1.0)
        reply = respond(Mode.PSK, data)
        assert isinstance(reply, ExchangeRefused)


@pytest.mark.parametrize("skew", [-7200.0, -301.0, 301.0, 86400.0 * 365])
def test_out_of_window_timestamp_is_refused(skew: float) -> None:
    """minisip never checked timestamps (RFC 3830 §5.4: the responder must)."""
    reply = respond(Mode.PSK, _psk_offer(NOW + skew))
    assert isinstance(reply, ExchangeRefused)
    assert isinstance(reply.error, TimestampError)


@pytest.mark.parametrize("map_type", [0x1E, 0xE1, 0xFF])
def test_err_answer_to_reserved_map_type_is_a_valid_message(map_type: int) -> None:
    offer = bytearray(seeds(GSTREAMER_RESPONDER)[0][1])
    offer[9] = map_type  # common header: CS ID map type (RFC 3830 §6.1)
    reply = respond(Mode.PSK, bytes(offer), gstreamer=True)
    assert isinstance(reply, ExchangeRefused)
    assert reply.answer is None or parse_message(reply.answer).encode() == reply.answer
