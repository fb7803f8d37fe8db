"""Every temporary copy of key material an exchange makes is overwritten before it returns.

The PSK store hands out a copy per lookup (``PskStore.lookup``) and the responder copies a
transported TGK to derive the Data SA from; both copies are recorded here as they are made and
must be all zeros once ``start``/``respond``/``finish`` have returned, on success and on failure.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mikey import exchange as mex
from mikey.codec import KeyData
from mikey.exchange import ExchangeCompleted, ExchangeRefused, Initiator, Responder
from mikey.keying import Mode
from mikey.pki import StaticPskStore

from .pair import NOW, configs, seeded_rng


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[bytearray]:
    made: list[bytearray] = []
    lookup = StaticPskStore.lookup
    tgk_from = mex._tgk_from

    def recording_lookup(self: StaticPskStore, identity: str | None) -> bytearray | None:
        psk = lookup(self, identity)
        if psk is not None:
            made.append(psk)
        return psk

    def recording_tgk_from(keys: tuple[KeyData, ...]) -> bytearray | None:
        tgk = tgk_from(keys)
        if tgk is not None:
            made.append(tgk)
        return tgk

    monkeypatch.setattr(StaticPskStore, "lookup", recording_lookup)
    monkeypatch.setattr(mex, "_tgk_from", recording_tgk_from)
    return made


@pytest.mark.parametrize(
    ("mode", "verify"), [(Mode.PSK, False), (Mode.PSK, True), (Mode.PK, True), (Mode.DHHMAC, False)]
)
def test_copies_wiped_after_success(copies: list[bytearray], mode: Mode, verify: bool) -> None:
    i_cfg, r_cfg = configs(mode, verify=verify)
    rng = seeded_rng(3)
    init = Initiator(i_cfg, rng)
    reply = Responder(r_cfg, rng).respond(init.start(NOW), NOW)
    assert isinstance(reply, ExchangeCompleted)
    result = init.finish(reply.answer if init.expects_response else None, NOW)
    assert [e.master_key for e in result.data_sa] == [e.master_key for e in reply.result.data_sa]
    assert copies, "the exchange made no copy to check"
    assert all(not any(c) and len(c) for c in copies)


def test_copies_wiped_after_refusal(copies: list[bytearray]) -> None:
    i_cfg, r_cfg = configs(Mode.PSK)
    rng = seeded_rng(4)
    wrong = StaticPskStore({"sip:alice@example.com": bytes(16)})
    msg = Initiator(i_cfg, rng).start(NOW)
    reply = Responder(replace(r_cfg, psk=wrong), rng).respond(msg, NOW)
    assert isinstance(reply, ExchangeRefused)
    assert len(copies) == 2  # the initiator's and the responder's PSK
    assert all(not any(c) for c in copies)
