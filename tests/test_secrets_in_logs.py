"""No key material in logs, exception text or reprs; keys zeroed after teardown.

Every MIKEY mode runs (successful exchanges and refused ones: tampered MAC/signature, wrong PSK,
stale timestamp) with the root logger at DEBUG, then an in-process MIKEY-keyed RTSP session.
The secrets are known independently of the code under test: the PSK, every randomness output
the initiator drew that does not appear on the wire (TGK, TEK, salts, envelope key, DH
exponent), and copies of the Data SA keys and salts taken while live. The detector looks for
them as raw-bytes repr, hex (any case) and base64 (decoding every base64/hex run it finds), and a
negative control proves it finds each form.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import random
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import pytest

from mikey.exchange import ExchangeCompleted, ExchangeRefused, Initiator, Responder, StreamSpec
from mikey.keying import KeyingResult, Mode
from mikey.pki import StaticPskStore, TrustStore
from mikey_cli import refusal_reason
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource
from rtspglue.server import RtspServer
from srtp.gsa import GsaRegistry, TeardownReason
from tests.mikey import certs
from tests.mikey.pair import NOW, PSK, configs, ep, keys

MODES = list(Mode)
_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}[:\s]?){8,}")


class Capture(logging.Handler):
    """Every record, formatted with its traceback, plus its raw args' reprs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))
        self.texts.append(repr(record.args))


@pytest.fixture
def captured() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old)


def _decoded_runs(text: str) -> Iterator[bytes]:
    for run in _B64_RUN.findall(text):
        for alt in (run, run.replace("-", "+").replace("_", "/")):
            for cut in range(4):  # the run may start mid-quantum
                part = alt[cut:].rstrip("=")
                part = part[: len(part) - len(part) % 4]
                if part:
                    with contextlib.suppress(binascii.Error):
                        yield base64.b64decode(part, validate=True)
    for run in _HEX_RUN.findall(text):
        digits = re.sub(r"[:\s]", "", run)
        for cut in (0, 1):
            part = digits[cut:]
            part = part[: len(part) - len(part) % 2]
            yield bytes.fromhex(part)


def leaks(texts: list[str], secrets: set[bytes]) -> list[str]:
    """Which secrets (hex of their first bytes) appear in ``texts`` in any form."""
    found = []
    decoded = [d for t in texts for d in _decoded_runs(t)]
    for secret in secrets:
        probe = secret[:12]
        if any(
            repr(probe)[2:-1] in t or probe.hex() in t.lower() or probe.hex(":") in t.lower()
            for t in texts
        ) or any(probe in d for d in decoded):
            found.append(secret[:4].hex())
    return found


class Recorder:
    """A deterministic rng that remembers what it handed out."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self.outputs: list[bytes] = []

    def __call__(self, n: int) -> bytes:
        out = self._rng.randbytes(n)
        self.outputs.append(out)
        return out

    def secrets(self, wire: list[bytes]) -> set[bytes]:
        """Outputs of 16+ bytes that do not appear on the wire (RAND does; keys must not)."""
        return {o for o in self.outputs if len(o) >= 16 and not any(o in w for w in wire)}


def _keys_of(result: KeyingResult) -> set[bytes]:
    out = set()
    for entry in result.data_sa:
        out.add(bytes(entry.master_key))
        out.add(bytes(entry.master_salt))
    return out


def test_detector_finds_every_form() -> None:
    secret = bytes(range(100, 130))
    for text in (
        f"key={secret!r}",
        f"key={bytearray(secret)!r}",
        f"key={secret.hex()}",
        f"key={secret.hex().upper()}",
        f"key={secret.hex(':')}",
        f"blob={base64.b64encode(b'xx' + secret).decode()}",
        f"blob={base64.urlsafe_b64encode(b'y' + secret).decode()}",
    ):
        assert leaks([text], {secret}), text
    assert not leaks([f"key={bytes(30).hex()} {base64.b64encode(bytes(40)).decode()}"], {secret})


def _exchange(mode: Mode, captured: Capture, **kw: object) -> tuple[list[str], set[bytes]]:
    init_cfg, resp_cfg = configs(mode, **kw)
    i_rng, r_rng = Recorder(1), Recorder(2)
    initiator = Initiator(ep(init_cfg), i_rng)
    responder = Responder(ep(resp_cfg), r_rng)
    i_msg = initiator.start(NOW, (StreamSpec(0x1234, 0, 0), StreamSpec(0, 0, 0)))
    reply = responder.respond(i_msg, NOW + 0.5, local_ssrcs=[0x5678])
    assert isinstance(reply, ExchangeCompleted), reply
    wire = [i_msg] + ([reply.answer] if reply.answer is not None else [])
    i_res = keys(initiator.finish(reply.answer if initiator.expects_response else None, NOW + 1))
    secrets = {PSK, *_keys_of(i_res), *_keys_of(reply.result)}
    secrets |= i_rng.secrets(wire) | r_rng.secrets(wire)
    texts = [
        repr(x) for x in (i_res, reply.result, reply, initiator, responder, init_cfg, resp_cfg)
    ]
    texts += [str(e) for e in i_res.data_sa] + [repr(e) for e in i_res.data_sa]
    # keys are zeroed on wipe (RFC 4046 §4.4 teardown is the owner's duty)
    for result in (i_res, reply.result):
        result.wipe()
        assert all(e.wiped for e in result.data_sa)
    return texts + captured.texts, secrets


def _refusals(mode: Mode, i_msg: bytes) -> Iterator[tuple[str, Callable[[], object]]]:
    _, resp_cfg = configs(mode)
    flipped = bytearray(i_msg)
    flipped[-3] ^= 0x40  # inside the MAC / signature
    yield (
        "tampered",
        lambda: Responder(ep(resp_cfg), Recorder(5)).respond(bytes(flipped), NOW + 0.5),
    )
    yield "stale", lambda: Responder(ep(resp_cfg), Recorder(6)).respond(i_msg, NOW + 3600)
    if mode in (Mode.PSK, Mode.DHHMAC):
        wrong = replace(resp_cfg, psk=StaticPskStore({"sip:alice@example.com": bytes(16)}))
    else:  # the signed modes: a trust store that does not know the initiator's CA
        wrong = replace(resp_cfg, trust=TrustStore([certs.other_ca().cert]))
    yield "wrong-key", lambda: Responder(ep(wrong), Recorder(7)).respond(i_msg, NOW + 0.5)
    yield "truncated", lambda: Responder(ep(resp_cfg), Recorder(8)).respond(i_msg[:-9], NOW + 0.5)
    yield (
        "signalled-other",
        lambda: Responder(ep(resp_cfg), Recorder(9)).respond(
            i_msg, NOW + 0.5, expected_initiator="sip:mallory@example.com"
        ),
    )
    other = replace(resp_cfg, identity="sip:carol@example.com", credentials=None)
    yield "idr-other", lambda: Responder(ep(other), Recorder(10)).respond(i_msg, NOW + 0.5)


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_exchange_logs_and_reprs_hold_no_keys(mode: Mode, captured: Capture) -> None:
    texts, secrets = _exchange(mode, captured, verify=True)
    assert len(secrets) >= 3  # PSK plus the Data SA key and salt at least
    assert leaks(texts, secrets) == []


@pytest.mark.parametrize("mode", MODES, ids=[m.value for m in MODES])
def test_refusals_hold_no_keys(mode: Mode, captured: Capture) -> None:
    init_cfg, _ = configs(mode)
    rng = Recorder(11)
    i_msg = Initiator(ep(init_cfg), rng).start(NOW, (StreamSpec(0x1234, 0, 0),))
    secrets = {PSK} | rng.secrets([i_msg])
    texts: list[str] = []
    for name, attempt in _refusals(mode, i_msg):
        reply = attempt()
        assert isinstance(reply, ExchangeRefused), name
        # what the CLI shows the user (the longer ``detail`` sentences) as well
        texts += [str(reply.error), repr(reply.error), repr(reply), refusal_reason(reply.error)]
        if reply.answer is not None:  # the ERR message itself carries nothing secret
            texts.append(reply.answer.hex())
            texts.append(base64.b64encode(reply.answer).decode())
    assert leaks(texts + captured.texts, secrets) == []


async def test_rtsp_keyed_session_logs_hold_no_keys_and_teardown_zeroes(
    captured: Capture,
) -> None:
    init_cfg, resp_cfg = configs(Mode.PSK)
    sreg, creg = GsaRegistry(), GsaRegistry()
    keying = MikeyServerKeying(init_cfg, registry=sreg, rng=Recorder(21))
    secrets: set[bytes] = {PSK}
    buffers: list[bytearray] = []
    async with RtspServer({"/tone": lambda: ToneSource(1000.0)}, keying=keying) as server:
        ckeying = MikeyClientKeying(resp_cfg, registry=creg, rng=Recorder(22))
        async with RtspClient(server.url("tone"), keying=ckeying) as client:
            await client.describe()
            await client.setup(interleaved=True)
            await client.play()
            await client.wait_for_samples(800)
            (session,) = server.sessions.values()
            for registry, key in ((sreg, session.session_id), (creg, ckeying.key)):
                gsa = registry.get(key)
                buffers.extend(gsa.key_buffers())
            secrets |= {bytes(b) for b in buffers}
            texts = [
                repr(x) for x in (session, ckeying, keying, client, sreg.get(session.session_id))
            ]
            await client.teardown()
    assert buffers and all(len(b) >= 14 for b in buffers)
    assert all(not any(b) for b in buffers), "key buffers not zeroed after teardown"
    assert sreg.audit().clean and creg.audit().clean
    assert leaks(texts + captured.texts, secrets) == []


def test_gsa_teardown_zeroes_keying_result() -> None:
    init_cfg, resp_cfg = configs(Mode.PSK)
    i_msg = Initiator(ep(init_cfg), Recorder(31)).start(NOW, (StreamSpec(0x1234, 0, 0),))
    reply = Responder(ep(resp_cfg), Recorder(32)).respond(i_msg, NOW + 0.5)
    assert isinstance(reply, ExchangeCompleted)
    registry = GsaRegistry()
    registry.establish("call-1", reply.result, NOW)
    assert all(any(e.master_key) for e in reply.result.data_sa)
    registry.teardown("call-1", TeardownReason.BYE, NOW + 1)
    assert all(e.wiped for e in reply.result.data_sa)
    assert registry.audit().clean


@pytest.mark.timeout(30)
async def test_sip_keyed_call_logs_hold_no_keys_and_bye_zeroes(captured: Capture) -> None:
    from sipglue.keying import MikeyCallKeying
    from sipglue.transaction import TimerConfig
    from sipglue.ua import UserAgent

    i_cfg, r_cfg = configs(Mode.PSK, verify=True)
    fast = TimerConfig(t1=0.05, t2=0.4, t4=0.5)
    regs = (GsaRegistry(), GsaRegistry())
    keyings = (
        MikeyCallKeying(i_cfg, registry=regs[0], rng=Recorder(41)),
        MikeyCallKeying(r_cfg, registry=regs[1], rng=Recorder(42)),
    )
    uac = UserAgent(keyings[0], transport="tcp", user="alice", timers=fast)
    uas = UserAgent(keyings[1], transport="tcp", user="bob", timers=fast)
    await uac.listen()
    await uas.listen()
    try:
        call = await keyings[0].invite(uac, f"sip:bob@127.0.0.1:{uas.port};transport=tcp")
        remote = await asyncio.wait_for(uas.incoming.get(), 5)
        await asyncio.wait_for(remote.wait_confirmed(), 5)
        buffers = [
            *regs[0].get(call.id or "").key_buffers(),
            *regs[1].get(remote.id or "").key_buffers(),
        ]
        secrets = {PSK} | {bytes(b) for b in buffers}
        texts = [repr(x) for x in (call, remote, keyings[0].keys(call), keyings[1].keys(remote))]
        texts += [repr(call.local_sdp), repr(call.remote_sdp)]
        await call.bye()
        await asyncio.wait_for(remote.wait_terminated(), 5)
        for _ in range(100):  # on_terminated runs as a task on the UAS
            if regs[0].audit().live_gsas == regs[1].audit().live_gsas == 0:
                break
            await asyncio.sleep(0.02)
    finally:
        await uac.close()
        await uas.close()
        for keying in keyings:
            await keying.close()
    assert len(buffers) >= 4 and all(len(b) >= 14 for b in buffers)
    assert all(not any(b) for b in buffers), "key buffers not zeroed after BYE"
    assert regs[0].audit().clean and regs[1].audit().clean
    assert leaks(texts + captured.texts, secrets) == []
