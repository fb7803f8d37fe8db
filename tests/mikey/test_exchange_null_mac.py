"""NULL-MAC answers of the opt-in GStreamer profile are well-formed MIKEY messages.

Fuzz finding (responder_gst_null): with a NULL MAC (0 bytes) the V message was cut with
``raw[:-0]``, i.e. to nothing, so a refusal (e.g. a CS map naming a missing SP) answered b"".
Oracle: the strict codec must parse the answer and find the ERR / V payloads.
"""

from __future__ import annotations

from dataclasses import replace

from mikey import parse_message
from mikey.codec import Err, Verification
from mikey.exchange import ExchangeCompleted, ExchangeRefused, Initiator, Responder, StreamSpec
from mikey.keying import Mode
from mikey.registry import DataType, ErrorNo, MacAlg

from .pair import NOW, configs, ep, keys, seeded_rng


def _gst_pair(verify: bool) -> tuple[Initiator, Responder]:
    i_cfg, r_cfg = configs(Mode.PSK)
    i_cfg = replace(i_cfg.gstreamer_profile(), verify=verify)
    return Initiator(ep(i_cfg), seeded_rng(1)), Responder(
        ep(r_cfg.gstreamer_profile()), seeded_rng(2)
    )


def test_null_mac_v_message_is_well_formed() -> None:
    ini, resp = _gst_pair(verify=True)
    reply = resp.respond(ini.start(NOW, [StreamSpec(0x1234)]), NOW)
    assert isinstance(reply, ExchangeCompleted) and reply.answer
    answer = parse_message(reply.answer)
    assert answer.data_type == DataType.PSK_RESP
    v = answer.find(Verification)
    assert v is not None and v.auth_alg == MacAlg.NULL and v.data == b""
    assert keys(ini.finish(reply.answer, NOW)).data_sa


def test_null_mac_error_message_is_well_formed() -> None:
    ini, resp = _gst_pair(verify=True)
    offer = bytearray(ini.start(NOW, [StreamSpec(0x1234)]))
    offer[10] = 0x80  # CS 1 names SP policy 128, which the message does not carry
    reply = resp.respond(bytes(offer), NOW)
    assert isinstance(reply, ExchangeRefused) and reply.error.error_no == ErrorNo.INVALID_SP
    assert reply.answer
    error = parse_message(reply.answer)
    assert error.data_type == DataType.ERROR
    assert [e.error_no for e in error.find_all(Err)] == [ErrorNo.INVALID_SP]
