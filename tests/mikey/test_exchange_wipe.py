"""Every temporary copy of key material an exchange makes is overwritten before it returns.

Recorded as they are made: the PSK store's copy per lookup (``PskStore.lookup``), the
responder's copy of a transported TGK, the KEMAC plaintexts both sides encode or decrypt and
the key data parsed from them or built for them. All must be zeros once
``start``/``respond``/``finish`` have returned, on success and on failure; only the Data SA
(the result) keeps keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import pytest

from mikey.codec import KemacSubPayload, KeyData, Leniency
from mikey.exchange import ExchangeCompleted, ExchangeRefused, Initiator, Responder
from mikey.exchange import keys as mex_keys
from mikey.exchange import responder as mex_responder
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from mikey.registry import KeyDataType

from .pair import NOW, configs, ep, keys, seeded_rng


@pytest.fixture
def copies(monkeypatch: pytest.MonkeyPatch) -> list[bytearray]:
    made: list[bytearray] = []
    lookup = StaticPskStore.lookup
    tgk_from = mex_responder.tgk_from

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

    encode = mex_keys.encode_sub_payloads
    parse = mex_keys.parse_sub_payloads

    def recording_encode(subs: Iterable[KemacSubPayload]) -> bytearray:
        subs = tuple(subs)
        plain = encode(subs)
        made.append(plain)
        made.extend(_key_buffers(subs))
        return plain

    def recording_parse(
        data: bytes | bytearray, **kw: Any
    ) -> tuple[tuple[KemacSubPayload, ...], tuple[Leniency, ...]]:
        subs, quirks = parse(data, **kw)
        made.extend(_key_buffers(subs))
        return subs, quirks

    monkeypatch.setattr(StaticPskStore, "lookup", recording_lookup)
    # where the exchange modules look these names up
    monkeypatch.setattr(mex_responder, "tgk_from", recording_tgk_from)
    monkeypatch.setattr(mex_keys, "encode_sub_payloads", recording_encode)
    monkeypatch.setattr(mex_keys, "parse_sub_payloads", recording_parse)
    return made


def _key_buffers(subs: Iterable[KemacSubPayload]) -> list[bytearray]:
    out = []
    for sub in subs:
        if isinstance(sub, KeyData):
            for buf in (sub.key, sub.salt):
                if buf is not None:
                    assert isinstance(buf, bytearray), "key material in an unwipeable bytes"
                    out.append(buf)
    return out


@pytest.mark.parametrize(
    ("mode", "verify", "key_type"),
    [
        (Mode.PSK, False, KeyDataType.TGK),
        (Mode.PSK, True, KeyDataType.TGK_SALT),
        (Mode.PSK, False, KeyDataType.TEK_SALT),
        (Mode.PSK, True, KeyDataType.TEK),
        (Mode.PK, True, KeyDataType.TGK),
        (Mode.RSA_R, False, KeyDataType.TGK),
        (Mode.DHHMAC, False, KeyDataType.TGK),
    ],
)
def test_copies_wiped_after_success(
    copies: list[bytearray], mode: Mode, verify: bool, key_type: KeyDataType
) -> None:
    gst = {"r_lenient": True, "r_accepted_leniencies": frozenset({Leniency.TEK_WITH_SALT})}
    extra = gst if key_type == KeyDataType.TEK else {}  # key || salt: GStreamer's form, opt-in
    i_cfg, r_cfg = configs(mode, verify=verify, i_key_type=key_type, **extra)
    rng = seeded_rng(3)
    init = Initiator(ep(i_cfg), rng)
    reply = Responder(ep(r_cfg), rng).respond(init.start(NOW), NOW)
    assert isinstance(reply, ExchangeCompleted)
    result = keys(init.finish(reply.answer if init.expects_response else None, NOW))
    assert [e.master_key for e in result.data_sa] == [e.master_key for e in reply.result.data_sa]
    assert copies, "the exchange made no copy to check"
    assert all(not any(c) and len(c) for c in copies)


def test_copies_wiped_after_refusal(copies: list[bytearray]) -> None:
    i_cfg, r_cfg = configs(Mode.PSK)
    rng = seeded_rng(4)
    wrong = StaticPskStore({"sip:alice@example.com": bytes(16)})
    init = Initiator(ep(i_cfg), rng)
    reply = Responder(ep(replace(r_cfg, psk=wrong)), rng).respond(init.start(NOW), NOW)
    assert isinstance(reply, ExchangeRefused)
    init.abort()  # what a caller does with a refused offer
    assert len(copies) == 4  # both PSK copies, the initiator's plaintext and TGK
    assert all(not any(c) for c in copies)
