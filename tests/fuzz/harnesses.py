"""Fuzz harnesses: one per parser and one per MIKEY responder mode.

A harness takes arbitrary bytes and drives one public entry point the way the servers do (parse,
then read every accessor a server reads). The invariant (h11's fuzz rule): only the package's
own error types escape, and whatever is accepted is consistent (strict MIKEY re-encodes to the
same bytes; a responder's answer parses). Anything else raised is a finding.

The responder harnesses need the seed I_MESSAGEs to authenticate, so the keys and certificates
that signed them are stored next to the corpus (``keys/``, test-only material written by
``make_corpus.py``) and loaded here.
"""

from __future__ import annotations

import contextlib
import functools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

import mikey
import mikey._accel
from mikey import codec as mikey_codec
from mikey.codec import parse_message as parse_mikey
from mikey.exchange import Endpoint, ExchangeCompleted, ExchangeConfig, ExchangeRefused, Responder
from mikey.keying import Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore
from mikey_cli.pcap import OpenCredentials, PcapError, analyse, render_text, report
from mikey_cli.render import describe_payload
from rtspglue.errors import RtspError
from rtspglue.keymgmt import parse_key_mgmt_attribute, parse_keymgmt, parse_set_parameter_keying
from rtspglue.message import (
    Limits,
    RtspParser,
    RtspRequest,
    RtspResponse,
    SessionHeader,
    parse_transports,
)
from sdp import SdpError
from sipglue.errors import SipError
from sipglue.message import Message as SipMessage
from sipglue.message import StreamParser
from sipglue.message import parse_message as parse_sip
from sipglue.sdp import SessionDescription
from tests.numbers import NON_ASCII_DIGITS

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
CRASHERS = HERE / "crashers"
KEYS = HERE / "keys"

# The clock of the seed exchanges (tests.mikey.certs.NOW, 2026-06-01T00:00Z, Unix seconds).
NOW = 1780272000.0
PSK = bytes(range(16))
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
LOCAL_SSRCS = (0x5678, 0x9ABC)

MIKEY_ERRORS: tuple[type[BaseException], ...] = (mikey.MikeyError,)
# SDP has its own error base (sdp.SdpError, not a SipError): both are the typed refusals here
SIP_ERRORS: tuple[type[BaseException], ...] = (SipError, SdpError)
RTSP_ERRORS: tuple[type[BaseException], ...] = (RtspError,)


@dataclass(frozen=True, slots=True)
class Harness:
    """One fuzz target: ``run(data)`` may raise only ``allowed``; anything else is a finding."""

    name: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    crypto: bool = False

    def check(self, data: bytes) -> None:
        """Run one input; re-raise anything that is not one of the allowed error types."""
        try:
            self.run(data)
        except self.allowed:
            return


def _soft(allowed: tuple[type[BaseException], ...], fn: Callable[[], object]) -> None:
    """Call an accessor a server would call; its own typed error is fine, others escape."""
    with contextlib.suppress(*allowed):
        fn()


def _chunks(data: bytes) -> list[bytes]:
    """Split ``data`` for incremental feeding, the split sizes drawn from the data itself."""
    if not data:
        return [b""]
    rng = random.Random(data[0])
    out, pos = [], 1
    while pos < len(data):
        n = rng.choice((1, 2, 3, 7, 64, 1500, 65536))
        out.append(data[pos : pos + n])
        pos += n
    return out or [b""]


# -- hostile peers: a dictionary and a mutator for the SIP, SDP and RTSP text -----------------

#: every Unicode decimal digit outside '0'-'9' (category Nd), UTF-8 encoded: str.isdigit() and
#: int() take them, the number grammars (RFC 3261 §25.1, RFC 4566 §9, RFC 2326 §15.1) do not
UNICODE_DIGITS: tuple[bytes, ...] = tuple(c.encode() for c in NON_ASCII_DIGITS)
#: number oddities and in-value framing bytes a hostile peer tries
HOSTILE_TOKENS: tuple[bytes, ...] = (
    *(t.encode() for t in ("²", "¹", "³", "½", "٣", "\uff13", "\u0663\u0660", "\U0001d7d9")),
    *(t.encode() for t in ("\u2003", "\u00a0", "\u2028", "\u0085", "\ufeff")),
    b"+1",
    b"-1",
    b"1_0",
    b" 1",
    b"\t",
    b"0x10",
    b"1e3",
    b"9" * 40,
    b"\r",
    b"\n",
    b"\x00",
    b"\r\n",
    b"\r\nContent-Length: 0",
    b"\r\nl: 1",
    b"\r\nContent-Length: 99999",
    b"\r\nCSeq: 1 OPTIONS",
)
#: header names whose duplicates or values change framing or numbers
HOSTILE_HEADERS: tuple[bytes, ...] = (
    b"Content-Length",
    b"content-length",
    b"l",
    b"CSeq",
    b"Via",
    b"Max-Forwards",
    b"Expires",
    b"Retry-After",
    b"Contact",
    b"Transport",
    b"Session",
    b"Range",
    b"RTP-Info",
)
_DIGIT_RE = re.compile(rb"[0-9]")
_LINE_RE = re.compile(rb"[^\r\n]*\r?\n")


def hostile_mutate(data: bytes, rng: random.Random) -> bytes:
    """One to three edits of a hostile peer: an ASCII digit swapped for a Unicode digit (or an
    oddity such as ``+1``), a header line duplicated (same or other value), a CR, LF or NUL put
    inside a line, a Unicode space beside a number, or a header of :data:`HOSTILE_HEADERS` added.
    """
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(6)
        digits = [m.start() for m in _DIGIT_RE.finditer(buf)]
        lines = [(m.start(), m.end()) for m in _LINE_RE.finditer(buf)][1:]  # not the start line
        if op == 0 and digits:  # a Unicode digit for an ASCII one
            i = rng.choice(digits)
            buf[i : i + 1] = rng.choice(UNICODE_DIGITS)
        elif op == 1 and digits:  # an oddity beside or instead of a digit
            i = rng.choice(digits)
            buf[i : i + rng.randint(0, 1)] = rng.choice(HOSTILE_TOKENS)
        elif op == 2 and lines:  # a duplicated header line, maybe with its digits changed
            start, end = rng.choice(lines)
            line = bytes(buf[start:end])
            if rng.random() < 0.5:
                line = _DIGIT_RE.sub(lambda m: str(rng.randrange(10)).encode(), line)
            buf[end:end] = line
        elif op == 3 and lines:  # CR, LF or NUL inside a header value
            start, end = rng.choice(lines)
            i = rng.randrange(start, max(start + 1, end - 2))
            buf[i:i] = rng.choice((b"\r", b"\n", b"\x00", b"\r\n", b"\r "))
        elif op == 4 and lines:  # a second copy of a framing or numeric header
            start, _ = rng.choice(lines)
            name = rng.choice(HOSTILE_HEADERS)
            value = rng.choice((b"0", b"3", rng.choice(UNICODE_DIGITS), rng.choice(HOSTILE_TOKENS)))
            buf[start:start] = name + b": " + value + b"\r\n"
        else:  # a token anywhere
            i = rng.randrange(len(buf) + 1)
            buf[i:i] = rng.choice(HOSTILE_TOKENS)
    return bytes(buf)


def _hostile(
    fn: Callable[[bytes], None], allowed: tuple[type[BaseException], ...], keep: int = 0
) -> Callable[[bytes], None]:
    """``fn`` on the input, then on a :func:`hostile_mutate` of it seeded by the input itself
    (so a saved reproducer replays). ``keep`` leading bytes (a chunking seed) are not mutated."""

    def run(data: bytes) -> None:
        with contextlib.suppress(*allowed):
            fn(data)
        fn(data[:keep] + hostile_mutate(data[keep:], random.Random(data)))

    return run


def hostile_variants(seed: bytes, keep: int = 0, count: int = 6) -> list[bytes]:
    """``count`` hostile edits of a seed (for the corpus), each seeded by its index."""
    return [seed[:keep] + hostile_mutate(seed[keep:], random.Random(i)) for i in range(count)]


# -- MIKEY codec -------------------------------------------------------------------------------


def mikey_strict(data: bytes) -> None:
    _fast_parse_agrees(data)
    msg = parse_mikey(data)
    if msg.encode() != data:  # strict acceptance means exact re-encoding (docs/STYLE.md)
        raise AssertionError("strictly accepted MIKEY message does not re-encode exactly")


def _fast_parse_agrees(data: bytes) -> None:
    """The accelerator's fast parse (what parse_mikey returns where it applies) is None or
    exactly the strict Python parse; it never accepts what the Python parser refuses."""
    c = mikey._accel.speedups
    fast = c.parse_message(bytes(data)) if c is not None else None
    if fast is None:
        return
    try:
        slow = mikey_codec._parse(bytes(data), False, map_padding=False)
    except mikey.MikeyError:
        raise AssertionError(
            "the fast parser accepted a message the Python parser refuses"
        ) from None
    if fast != slow or [type(p) for p in fast.payloads] != [type(p) for p in slow.payloads]:
        raise AssertionError("the fast parser and the Python parser disagree")


def mikey_lenient(data: bytes) -> None:
    msg = parse_mikey(data, lenient=True)
    _soft(MIKEY_ERRORS, msg.encode)
    for payload in msg.payloads:
        describe_payload(payload)


# -- SDP / SIP ---------------------------------------------------------------------------------


def _read_sdp(sdp: SessionDescription) -> None:
    _soft(SIP_ERRORS, sdp.encode)
    for index, media in enumerate(sdp.media):
        for accessor in (
            lambda m=media: m.port,
            lambda m=media: m.port_count,
            lambda m=media: m.proto,
            lambda m=media: m.formats,
            lambda m=media: m.connection,
            lambda m=media: m.rtpmap,
            lambda m=media: m.key_mgmt,
            lambda i=index: sdp.effective_key_mgmt(i),
        ):
            _soft(SIP_ERRORS, accessor)
    _soft(SIP_ERRORS, lambda: sdp.key_mgmt(None))


def sdp(data: bytes) -> None:
    _read_sdp(SessionDescription.parse(data))


def _read_sip(message: SipMessage) -> None:
    for accessor in (
        lambda: message.call_id,
        lambda: message.cseq,
        lambda: message.from_,
        lambda: message.to,
        lambda: message.vias,
        lambda: message.top_via,
        lambda: message.contacts,
        lambda: message.record_route,
        lambda: message.routes,
        lambda: message.content_type,
        message.encode,
    ):
        _soft(SIP_ERRORS, accessor)
    if message.body:
        _soft(SIP_ERRORS, lambda: _read_sdp(SessionDescription.parse(message.body)))


def sip_message(data: bytes) -> None:
    _read_sip(parse_sip(data))


def sip_stream(data: bytes) -> None:
    parser = StreamParser()
    for chunk in _chunks(data):
        for message in parser.feed(chunk):
            _read_sip(message)


# -- RTSP ----------------------------------------------------------------------------------------


def rtsp_messages(data: bytes) -> None:
    parser = RtspParser(Limits())
    for chunk in _chunks(data):
        for message in parser.feed(chunk):
            if not isinstance(message, RtspRequest | RtspResponse):
                continue
            _soft(RTSP_ERRORS, lambda m=message: m.cseq)  # type: ignore[misc]
            for value in message.header_all("Session"):
                _soft(RTSP_ERRORS, lambda v=value: SessionHeader.parse(v))  # type: ignore[misc]
            for value in message.header_all("Transport"):
                _soft(RTSP_ERRORS, lambda v=value: parse_transports(v))  # type: ignore[misc]
            for value in message.header_all("KeyMgmt"):
                _soft(RTSP_ERRORS, lambda v=value: parse_keymgmt(v))  # type: ignore[misc]
            if message.body:
                _soft(RTSP_ERRORS, lambda m=message: parse_set_parameter_keying(m.body))  # type: ignore[misc]
            _soft(RTSP_ERRORS, message.encode)


def keymgmt(data: bytes) -> None:
    text = data.decode("utf-8", "surrogateescape")
    _soft(RTSP_ERRORS, lambda: parse_key_mgmt_attribute(text))
    _soft(RTSP_ERRORS, lambda: parse_set_parameter_keying(data))
    for spec in parse_keymgmt(text):
        spec.encode()


# -- MIKEY responders --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Identities:
    """The seed exchanges' CA, initiator (alice) and responder (bob) credentials."""

    ca: x509.Certificate
    alice: Credentials
    bob: Credentials


def _load(name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = serialization.load_pem_private_key((KEYS / f"{name}.key").read_bytes(), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise TypeError(f"{name}.key is not an RSA key")
    return key, x509.load_pem_x509_certificate((KEYS / f"{name}.crt").read_bytes())


@functools.cache
def identities() -> Identities:
    """The stored test identities (written by make_corpus.py)."""
    ca = x509.load_pem_x509_certificate((KEYS / "ca.crt").read_bytes())
    a_key, a_cert = _load("alice")
    b_key, b_cert = _load("bob")
    return Identities(ca, Credentials(a_key, (a_cert,)), Credentials(b_key, (b_cert,)))


def exchange_configs(
    mode: Mode, ids: Identities | None = None
) -> tuple[ExchangeConfig, ExchangeConfig]:
    """Matching initiator and responder configurations for ``mode`` (as tests/mikey/pair.py)."""
    ids = ids or identities()
    trust = TrustStore([ids.ca])
    init = ExchangeConfig(
        mode=mode,
        identity=ALICE,
        peer_identity=BOB,
        psk=StaticPskStore({BOB: PSK}),
        credentials=ids.alice,
        trust=trust,
        peer_certificate=ids.bob.chain[0] if mode == Mode.PK else None,
    )
    resp = ExchangeConfig(
        mode=mode,
        identity=BOB,
        psk=StaticPskStore({ALICE: PSK}),
        credentials=ids.bob,
        trust=trust,
    )
    return init, resp


@functools.cache
def _responder_config(mode: Mode, gstreamer: bool) -> ExchangeConfig:
    cfg = exchange_configs(mode)[1]
    return cfg.gstreamer_profile() if gstreamer else cfg


def _responder_rng(n: int) -> bytes:
    return bytes(n)  # deterministic; the harness checks robustness, not secrecy


def respond(
    mode: Mode, data: bytes, *, gstreamer: bool = False
) -> ExchangeCompleted | ExchangeRefused:
    """One fresh responder (own replay cache and CSB table) answering ``data`` at NOW.

    ``gstreamer`` uses the opt-in NULL-KEMAC lenient profile (the form gst-rtsp-server parses).
    """
    fresh = Endpoint(_responder_config(mode, gstreamer), _responder_rng)
    reply = Responder(fresh).respond(data, NOW + 0.5, local_ssrcs=LOCAL_SSRCS)
    if isinstance(reply, ExchangeCompleted):
        reply.result.wipe()
        _check_answer(reply.answer)
    elif isinstance(reply, ExchangeRefused):
        if not isinstance(reply.error, mikey.MikeyError):
            raise AssertionError(f"refusal carries {type(reply.error).__name__}")
        _check_answer(reply.answer)
    else:
        raise AssertionError(f"respond returned {type(reply).__name__}")
    return reply


def _check_answer(answer: bytes | None) -> None:
    """What our responder sends (R_MESSAGE or ERR) must be a valid message (strict parse)."""
    if answer is None:
        return
    try:
        parse_mikey(answer)
    except mikey.MikeyError as exc:
        raise AssertionError(f"responder's own answer fails strict parsing: {exc}") from None


def _responder(mode: Mode, gstreamer: bool = False) -> Callable[[bytes], object]:
    def run(data: bytes) -> object:
        # An exception out of respond() itself is a finding: it must answer or refuse.
        try:
            return respond(mode, data, gstreamer=gstreamer)
        except mikey.MikeyError as exc:
            raise AssertionError(f"respond() raised {type(exc).__name__}") from exc

    return run


RESPONDER_MODES = {
    "responder_psk": Mode.PSK,
    "responder_pk": Mode.PK,
    "responder_dh": Mode.DH,
    "responder_dhhmac": Mode.DHHMAC,
    "responder_rsa_r": Mode.RSA_R,
}

GSTREAMER_RESPONDER = "responder_gst_null"

# -- mikey pcap: the capture reader, TCP reassembly, SIP/RTSP framing, keying ---------------

#: the docs/WIRE.md §Worked PSK exchange key: the seed captures carry that I_MESSAGE
PCAP_PSK = bytes(range(15, -1, -1))


def pcap_reader(data: bytes) -> None:
    """A capture's bytes through ``mikey pcap`` (both passes) and both renderings."""
    cap = analyse(data, OpenCredentials(psk=PCAP_PSK))
    render_text(report(cap, show_keys=True))


HARNESSES: dict[str, Harness] = {
    h.name: h
    for h in (
        Harness("mikey_strict", mikey_strict, MIKEY_ERRORS),
        Harness("mikey_lenient", mikey_lenient, MIKEY_ERRORS),
        Harness("sdp", _hostile(sdp, SIP_ERRORS), SIP_ERRORS),
        Harness("sip_message", _hostile(sip_message, SIP_ERRORS), SIP_ERRORS),
        Harness("sip_stream", _hostile(sip_stream, SIP_ERRORS, keep=1), SIP_ERRORS),
        Harness("rtsp_messages", _hostile(rtsp_messages, RTSP_ERRORS, keep=1), RTSP_ERRORS),
        Harness("keymgmt", keymgmt, RTSP_ERRORS),
        Harness("pcap_reader", pcap_reader, (PcapError,)),
        *(
            Harness(name, _responder(mode), (), crypto=True)
            for name, mode in RESPONDER_MODES.items()
        ),
        Harness(GSTREAMER_RESPONDER, _responder(Mode.PSK, gstreamer=True), (), crypto=True),
    )
}


def seeds(name: str) -> list[tuple[Path, bytes]]:
    """The seed corpus and kept crashers of harness ``name``, sorted by path."""
    out: list[tuple[Path, bytes]] = []
    for root in (CORPUS / name, CRASHERS / name):
        if root.is_dir():
            out.extend(
                (p, p.read_bytes())
                for p in sorted(root.iterdir())
                if p.is_file() and not p.name.startswith(".")
            )
    return out
