"""Test offer/answer handlers: a toy 'binder' that echoes key-mgmt transformed, no crypto."""

from __future__ import annotations

import base64

from sipglue.errors import Rejected
from sipglue.sdp import KeyMgmtAttr, SessionDescription, build_audio_answer, build_audio_offer
from sipglue.ua import Call, TerminationReason


def response_for(data: str) -> str:
    """What the toy answerer sends back for an offered key-mgmt blob."""
    return base64.b64encode(b"R:" + base64.b64decode(data)).decode()


def offer(port: int = 40000, blob: bytes = b"I_MESSAGE") -> SessionDescription:
    return build_audio_offer(
        "127.0.0.1",
        port,
        session_id=1,
        key_mgmt=[KeyMgmtAttr("mikey", base64.b64encode(blob).decode())],
    )


class Recorder:
    """UAS and UAC handler: answers with a derived key-mgmt, checks the answer likewise."""

    def __init__(self, *, reject_with: int | None = None, refuse_answer: bool = False) -> None:
        self.reject_with = reject_with
        self.refuse_answer = refuse_answer
        self.offers: list[SessionDescription] = []
        self.answers: list[SessionDescription] = []
        self.terminated: list[tuple[str, TerminationReason]] = []

    async def on_offer(self, call: Call, offer: SessionDescription) -> SessionDescription:
        self.offers.append(offer)
        if self.reject_with is not None:
            raise Rejected(self.reject_with, "MIKEY: authentication failed")
        (km,) = offer.effective_key_mgmt(0)
        return build_audio_answer(
            offer,
            "127.0.0.1",
            41000,
            session_id=2,
            key_mgmt=KeyMgmtAttr("mikey", response_for(km.data)),
        )

    async def on_answer(self, call: Call, answer: SessionDescription) -> None:
        self.answers.append(answer)
        assert call.local_sdp is not None
        (sent,) = call.local_sdp.effective_key_mgmt(0)
        (got,) = answer.effective_key_mgmt(0)
        if self.refuse_answer or got.data != response_for(sent.data):
            raise ValueError("answer does not verify")

    async def on_terminated(self, call: Call, reason: TerminationReason) -> None:
        self.terminated.append((call.call_id, reason))
