"""`make demo`: MIKEY-keyed SIP calls and an RTSP session on loopback, with real SRTP media.

1. Two SIP user agents in this process call each other over UDP, keyed by MIKEY in the SDP
   offer/answer: once with PSK (+V) and once with DH-signed (certificates made on the spot).
   aiortc sends a 440 Hz tone one way and 660 Hz the other, through libsrtp with those keys.
   BYE tears the Group Security Association down on both sides.
2. An RTSP server keys its stream in DESCRIBE (MIKEY PSK in a=key-mgmt), the client answers in
   SETUP (KeyMgmt), plays SRTP audio, TEARDOWN destroys the GSA.

It prints a ladder of the SIP messages and key events, the decrypted-packet counts, the tone
each side heard (Goertzel estimate) and an audit proving no key material is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import sys
import time
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mikey.exchange import ExchangeConfig
from mikey.keying import Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore
from rtspglue.client import RtspClient
from rtspglue.keying import MikeyClientKeying, MikeyServerKeying
from rtspglue.media import ToneSource, dominant_frequency
from rtspglue.server import RtspServer, ServerConfig
from sipglue.keying import LocalMedia, MikeyCallKeying, RegistryStreamSource
from sipglue.message import Message, Request, Response
from sipglue.sdp import SessionDescription
from sipglue.transport import Transport
from sipglue.ua import Call, UserAgent
from srtp.audio import PcmRecorder, ToneTrack
from srtp.gsa import GsaRegistry
from srtp.media import SrtpMediaTransport, receive_audio, start_audio

HOST = "127.0.0.1"
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"
T0 = time.monotonic()


def say(line: str) -> None:
    print(f"{time.monotonic() - T0:7.3f}s  {line}", flush=True)


class LadderUA(UserAgent):
    """A UserAgent that prints every SIP message it receives (both sides print: a ladder)."""

    def __init__(self, name: str, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.name = name

    def message_received(
        self, message: Message, source: tuple[str, int], transport: Transport
    ) -> None:
        if isinstance(message, Request):
            first = f"{message.method}"
        else:
            assert isinstance(message, Response)
            first = f"{message.status} {message.reason} ({message.cseq.method})"
        km = " [a=key-mgmt:mikey]" if message.body and b"a=key-mgmt:mikey" in message.body else ""
        sender = "bob" if self.name == "alice" else "alice"
        say(f"SIP  {sender:>5} -> {self.name:<5}  {first}{km}")
        super().message_received(message, source, transport)


def make_pki() -> tuple[TrustStore, Credentials, Credentials]:
    """A throwaway CA and two leaf certificates (identities in the SAN URI)."""
    now = datetime.datetime.now(datetime.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(
        subject: str,
        key: rsa.RSAPrivateKey,
        issuer: x509.Name,
        ikey: rsa.RSAPrivateKey,
        *,
        ca: bool,
        uri: str | None,
    ) -> x509.Certificate:
        b = (
            x509.CertificateBuilder()
            .subject_name(name(subject))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if ca:
            b = b.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), True
            )
        else:
            b = b.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ikey.public_key()), False
            )
        if uri:
            b = b.add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(uri)]), False
            )
        return b.sign(ikey, hashes.SHA256())

    keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(3)]
    ca = cert("demo CA", keys[0], name("demo CA"), keys[0], ca=True, uri=None)
    a = cert("alice", keys[1], ca.subject, keys[0], ca=False, uri=ALICE)
    b = cert("bob", keys[2], ca.subject, keys[0], ca=False, uri=BOB)
    return TrustStore([ca]), Credentials(keys[1], (a,)), Credentials(keys[2], (b,))


@dataclass
class Party:
    name: str
    registry: GsaRegistry
    keying: MikeyCallKeying
    ua: LadderUA
    transports: dict[str, tuple[SrtpMediaTransport, RegistryStreamSource]] = field(
        default_factory=dict
    )


async def party(name: str, config: ExchangeConfig) -> Party:
    registry = GsaRegistry()
    holder: list[Party] = []

    async def local_media(call: Call, offer: SessionDescription) -> LocalMedia:
        p = holder[0]
        source = RegistryStreamSource(registry, "")
        transport = await SrtpMediaTransport.open(source, local=(HOST, 0))
        p.transports[call.call_id] = (transport, source)
        return LocalMedia(HOST, transport.local_address[1], p.keying.new_ssrc())

    keying = MikeyCallKeying(config, registry=registry, local_media=local_media)
    ua = LadderUA(name, keying, host=HOST, user=name)
    await ua.listen()
    p = Party(name, registry, keying, ua)
    holder.append(p)
    return p


async def media(
    p: Party,
    *,
    call: Call,
    transport: SrtpMediaTransport,
    source: RegistryStreamSource,
    freq: float,
) -> tuple[SrtpMediaTransport, PcmRecorder, list[object]]:
    keys = p.keying.keys(call)
    source.key = keys.key
    if keys.remote_media is not None:
        transport.set_remote(keys.remote_media)  # the peer's RTP address from its SDP
    sender = await start_audio(transport, ToneTrack(freq, sample_rate=8000), ssrc=keys.local.ssrc)
    receiver, heard = await receive_audio(
        transport, remote_ssrc=keys.remote_ssrc or None, rtcp_ssrc=keys.local.ssrc
    )
    recorder = PcmRecorder(heard)
    recorder.start()
    return transport, recorder, [sender, receiver]


async def sip_call(mode: Mode, alice_cfg: ExchangeConfig, bob_cfg: ExchangeConfig) -> bool:
    say(f"==== SIP call, MIKEY {mode.value.upper()} ====")
    alice = await party("alice", alice_cfg)
    bob = await party("bob", bob_cfg)
    a_source = RegistryStreamSource(alice.registry, "")
    a_transport = await SrtpMediaTransport.open(a_source, local=(HOST, 0))
    ok = False
    try:
        a_media = LocalMedia(HOST, a_transport.local_address[1], alice.keying.new_ssrc())
        call = await alice.keying.invite(alice.ua, f"sip:bob@{HOST}:{bob.ua.port}", a_media)
        b_call = await asyncio.wait_for(bob.ua.incoming.get(), 5)
        await b_call.wait_confirmed()
        for p in (alice, bob):
            for ev in p.keying.drain_events():
                say(f"KEY  {p.name:>5}: {type(ev).__name__}")
        akeys = alice.keying.keys(call)
        bkeys = bob.keying.keys(b_call)
        gsa = alice.registry.get(akeys.key)
        policy = next(iter(gsa.outbound.values())).entries[0].policy.profile_name
        say(
            f"KEY  CSB 0x{akeys.registration.csb_id:08x}, alice SSRC 0x{akeys.local.ssrc:08x},"
            f" bob SSRC 0x{bkeys.local.ssrc:08x}, {policy}"
        )
        b_transport, b_source = bob.transports.pop(b_call.call_id)
        _, a_rec, a_parts = await media(
            alice, call=call, transport=a_transport, source=a_source, freq=440
        )
        _, b_rec, b_parts = await media(
            bob, call=b_call, transport=b_transport, source=b_source, freq=660
        )
        await asyncio.sleep(1.5)
        for part in (*a_parts, *b_parts):
            await part.stop()  # type: ignore[attr-defined]
        await a_rec.stop()
        await b_rec.stop()
        a_heard = dominant_frequency(a_rec.samples, 8000) if a_rec.samples else 0.0
        b_heard = dominant_frequency(b_rec.samples, 8000) if b_rec.samples else 0.0
        say(
            f"SRTP alice sent {a_transport.counters.sent_rtp}, decrypted "
            f"{a_transport.counters.decrypted_rtp} from bob, heard {a_heard:.0f} Hz"
        )
        say(
            f"SRTP bob   sent {b_transport.counters.sent_rtp}, decrypted "
            f"{b_transport.counters.decrypted_rtp} from alice, heard {b_heard:.0f} Hz"
        )
        await call.bye()
        await asyncio.wait_for(b_call.wait_terminated(), 5)
        for p in (alice, bob):
            for ev in p.keying.drain_events():
                say(f"KEY  {p.name:>5}: {type(ev).__name__}")
        b_transport.close()
        ok = (
            abs(a_heard - 660) < 15
            and abs(b_heard - 440) < 15
            and a_transport.counters.decrypted_rtp > 0
            and b_transport.counters.decrypted_rtp > 0
        )
    finally:
        a_transport.close()
        for p in (alice, bob):
            for t, _ in p.transports.values():
                t.close()
            await p.ua.close()
            await p.keying.close()
    audits = [alice.registry.audit(), bob.registry.audit()]
    clean = all(a.clean for a in audits)
    say(f"GSA  audit after BYE: alice {audits[0]}, bob {audits[1]}")
    return ok and clean


async def rtsp_session(psk: bytes) -> bool:
    say("==== RTSP session, MIKEY PSK in DESCRIBE / KeyMgmt in SETUP ====")
    server_registry = GsaRegistry()
    client_registry = GsaRegistry()
    cfg = ExchangeConfig(mode=Mode.PSK, psk=StaticPskStore({}, default=psk), verify=True)
    skeying = MikeyServerKeying(cfg, registry=server_registry)
    server = RtspServer(
        {"/tone": lambda: ToneSource(523)}, config=ServerConfig(host=HOST, port=0), keying=skeying
    )
    await server.start()
    url = server.url("/tone")
    ckeying = MikeyClientKeying(cfg, registry=client_registry)
    client = RtspClient(url, keying=ckeying)
    heard = 0.0
    try:
        async with client:
            described = await client.describe()
            say(
                f"RTSP DESCRIBE {url}: {described.proto},"
                f" a=key-mgmt:{','.join(k.prot for k in described.key_mgmt)} (MIKEY I_MESSAGE)"
            )
            await client.setup()
            say("RTSP SETUP with KeyMgmt (MIKEY R_MESSAGE): keys verified, GSA established")
            await client.play()
            await asyncio.sleep(1.5)
            heard = dominant_frequency(client.samples, 8000) if client.samples else 0.0
            say(
                f"SRTP client decrypted {ckeying.stats.decrypted} packets, "
                f"rejected {ckeying.stats.rejected}, heard {heard:.0f} Hz"
            )
            await client.teardown()
            say("RTSP TEARDOWN")
    finally:
        ckeying.close()
        await server.close()
        skeying.close()
    audits = [server_registry.audit(), client_registry.audit()]
    say(f"GSA  audit after TEARDOWN: server {audits[0]}, client {audits[1]}")
    return abs(heard - 523) < 15 and ckeying.stats.decrypted > 0 and all(a.clean for a in audits)


async def main() -> int:
    psk = bytes.fromhex("00112233445566778899aabbccddeeff")
    results: dict[str, bool] = {}
    alice_psk = ExchangeConfig(
        mode=Mode.PSK,
        identity=ALICE,
        peer_identity=BOB,
        psk=StaticPskStore({BOB: psk}),
        verify=True,
    )
    bob_psk = ExchangeConfig(mode=Mode.PSK, identity=BOB, psk=StaticPskStore({ALICE: psk}))
    results["SIP call, MIKEY PSK+V"] = await sip_call(Mode.PSK, alice_psk, bob_psk)
    say("generating a demo CA and two RSA-2048 certificates ...")
    trust, a_creds, b_creds = make_pki()
    alice_dh = ExchangeConfig(
        mode=Mode.DH, identity=ALICE, peer_identity=BOB, credentials=a_creds, trust=trust
    )
    bob_dh = ExchangeConfig(mode=Mode.DH, identity=BOB, credentials=b_creds, trust=trust)
    results["SIP call, MIKEY DH-signed"] = await sip_call(Mode.DH, alice_dh, bob_dh)
    results["RTSP session, MIKEY PSK+V"] = await rtsp_session(psk)
    print()
    print("Summary")
    for name, ok in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'}  {name}")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(asyncio.run(main()))
