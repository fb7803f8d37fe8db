"""RFC 3264 offer/answer (sipglue.sdp) on top of the sdp model.

Oracles: RFC 3264 §6 (answer m= lines in offer order, port 0 rejections, the offerer's payload
type numbers) and RFC 4567 §3.1 (key-mgmt at the level the offer used, preference order, 488
when no protocol is supported). The model and codec tests moved to tests/sdp/test_model.py.
"""

from __future__ import annotations

import pytest

from sipglue.errors import SdpError, SdpNegotiationError, SipError
from sipglue.sdp import (
    PCMU,
    KeyMgmtAttr,
    SessionDescription,
    accepted_media_index,
    build_audio_answer,
    build_audio_offer,
    choose_key_mgmt,
)


def test_offer_answer_pcmu_savp() -> None:
    km = KeyMgmtAttr("mikey", "SU5JVA==")
    offer = build_audio_offer("127.0.0.1", 40000, session_id=7, opus=True, key_mgmt=[km])
    parsed = SessionDescription.parse(offer.encode())
    assert parsed == offer
    assert parsed.media[0].proto == "RTP/SAVP"
    assert parsed.media[0].formats == ("111", "0")
    assert parsed.media[0].rtpmap()["111"] == "opus/48000/2"
    assert choose_key_mgmt(parsed, 0, ["mikey"]) == km
    resp = KeyMgmtAttr("mikey", "UkVTUA==")
    answer = build_audio_answer(
        parsed, "127.0.0.1", 41000, session_id=9, codecs=[PCMU], key_mgmt=resp
    )
    assert answer.media[0].port == 41000
    assert answer.media[0].formats == ("0",)
    # answer uses the same level as the offer (session)
    assert answer.key_mgmt(None) == [resp]
    assert answer.key_mgmt(0, inherit=False) == []
    assert accepted_media_index(answer) == 0


def test_answer_rejects_port_zero_and_keeps_order() -> None:
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        "m=audio 0 RTP/SAVP 0\r\na=key-mgmt:mikey QUJD\r\n"
        "m=video 5000 RTP/SAVP 99\r\n"
        "m=audio 6000 RTP/SAVP 0\r\na=key-mgmt:mikey REVG\r\n"
    )
    answer = build_audio_answer(
        offer, "127.0.0.1", 7000, session_id=1, key_mgmt=KeyMgmtAttr("mikey", "UlNQ")
    )
    assert [m.port for m in answer.media] == [0, 0, 7000]
    assert [m.media for m in answer.media] == ["audio", "video", "audio"]
    assert answer.key_mgmt(2, inherit=False) == [KeyMgmtAttr("mikey", "UlNQ")]
    assert answer.key_mgmt(None) == []


def test_unsupported_key_mgmt_declined() -> None:
    offer = build_audio_offer(
        "127.0.0.1", 4000, session_id=1, key_mgmt=[KeyMgmtAttr("kerberos", "QUJD")]
    )
    with pytest.raises(SdpNegotiationError) as info:
        build_audio_answer(offer, "127.0.0.1", 5000, session_id=2)
    assert info.value.status_code == 488
    # preference order: the first supported one wins
    offer2 = build_audio_offer(
        "127.0.0.1",
        4000,
        session_id=1,
        key_mgmt=[KeyMgmtAttr("kerberos", "QUJD"), KeyMgmtAttr("mikey", "REVG")],
        key_mgmt_at_media=True,
    )
    assert choose_key_mgmt(offer2, 0, ["mikey"]) == KeyMgmtAttr("mikey", "REVG")


def test_no_key_mgmt_or_no_codec() -> None:
    offer = build_audio_offer("127.0.0.1", 4000, session_id=1)
    with pytest.raises(SdpNegotiationError):
        build_audio_answer(offer, "127.0.0.1", 5000, session_id=2)
    assert build_audio_answer(offer, "127.0.0.1", 5000, session_id=2, require_key_mgmt=False)
    g729 = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 18\r\n"
    )
    with pytest.raises(SdpNegotiationError):
        build_audio_answer(g729, "127.0.0.1", 5000, session_id=2, require_key_mgmt=False)


def test_negotiation_error_is_sip_side_and_sdp_error() -> None:
    # SdpNegotiationError carries the SIP status to answer with: both an SdpError and a SipError
    assert issubclass(SdpNegotiationError, SdpError) and issubclass(SdpNegotiationError, SipError)
    import sdp

    assert SdpError is sdp.SdpError and not issubclass(sdp.SdpError, SipError)
