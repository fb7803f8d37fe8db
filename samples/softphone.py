"""A MIKEY-keyed SIP softphone in ~100 lines: copy this to put MIKEY-SRTP calls into an app.

It uses the library API only (no CLI): a :class:`~sipglue.ua.UserAgent` with the keying binder
:class:`~sipglue.keying.MikeyCallKeying` places or answers a call; the call's SRTP keys live in a
:class:`~srtp.gsa.GsaRegistry`; aiortc plays a tone (or a WAV file) into the call and records the
peer's audio through :class:`~srtp.media.SrtpMediaTransport`.

    python -m samples.softphone answer --port 5070 --psk 00112233445566778899aabbccddeeff
    python -m samples.softphone call sip:bob@127.0.0.1:5070 --psk 0011...eeff --record out.wav

Hang-up (BYE), a rejected or failed call, or Ctrl-C tear the keys down (the binder does it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from mikey.exchange import ExchangeConfig
from mikey.keying import Mode
from mikey.pki import StaticPskStore
from sipglue.keying import LocalMedia, MikeyCallKeying, RegistryStreamSource
from sipglue.sdp import SessionDescription
from sipglue.ua import Call, UserAgent
from srtp.audio import PcmRecorder, ToneTrack, wav_track
from srtp.gsa import GsaRegistry
from srtp.media import SrtpMediaTransport, receive_audio, start_audio

HOST = "127.0.0.1"


async def talk(
    keying: MikeyCallKeying,
    call: Call,
    *,
    transport: SrtpMediaTransport,
    source: RegistryStreamSource,
    seconds: float,
    play: str | None,
    record: str | None,
) -> None:
    """Send audio into a keyed call and record the peer until it ends or ``seconds`` pass."""
    keys = keying.keys(call)
    source.key = keys.key  # the transport now finds the call's SRTP streams in the registry
    if keys.remote_media is not None:
        transport.set_remote(keys.remote_media)  # the peer's RTP address from its SDP
    track = wav_track(play) if play else ToneTrack(440, sample_rate=8000)
    sender = await start_audio(transport, track, ssrc=keys.local.ssrc)
    receiver, heard = await receive_audio(
        transport, remote_ssrc=keys.remote_ssrc or None, rtcp_ssrc=keys.local.ssrc
    )
    recorder = PcmRecorder(heard)
    recorder.start()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(call.wait_terminated(), seconds)
    await sender.stop()
    await receiver.stop()
    await recorder.stop()
    if record:
        recorder.write_wav(record)
    print(f"call {call.call_id}: {transport.counters.decrypted_rtp} SRTP packets decrypted")


async def place_call(args: argparse.Namespace, config: ExchangeConfig) -> None:
    registry = GsaRegistry()
    keying = MikeyCallKeying(config, registry=registry)
    ua = UserAgent(keying, host=HOST)
    await ua.listen()
    source = RegistryStreamSource(registry, "")  # filled in once the dialog exists
    transport = await SrtpMediaTransport.open(source, local=(HOST, 0))
    try:
        media = LocalMedia(HOST, transport.local_address[1], keying.new_ssrc())
        call = await keying.invite(ua, args.target, media)  # INVITE with the MIKEY offer
        await talk(
            keying,
            call,
            transport=transport,
            source=source,
            seconds=args.seconds,
            play=args.play,
            record=args.record,
        )
        await call.bye()  # BYE: both sides tear the GSA down
    finally:
        transport.close()
        await ua.close()
        await keying.close()
    print("keys left:", registry.audit())


async def answer_calls(args: argparse.Namespace, config: ExchangeConfig) -> None:
    registry = GsaRegistry()
    transports: dict[str, tuple[SrtpMediaTransport, RegistryStreamSource]] = {}

    async def local_media(call: Call, offer: SessionDescription) -> LocalMedia:
        # called before the answer is built: open the RTP port that goes into our SDP
        source = RegistryStreamSource(registry, "")
        transport = await SrtpMediaTransport.open(source, local=(HOST, 0))
        transports[call.call_id] = (transport, source)
        return LocalMedia(HOST, transport.local_address[1], keying.new_ssrc())

    keying = MikeyCallKeying(config, registry=registry, local_media=local_media)
    ua = UserAgent(keying, host=HOST, port=args.port)
    await ua.listen()
    print(f"answering on sip:{HOST}:{ua.port}")
    try:
        while True:
            call = await ua.incoming.get()  # already keyed and answered with 200 OK
            await call.wait_confirmed()
            transport, source = transports.pop(call.call_id)
            await talk(
                keying,
                call,
                transport=transport,
                source=source,
                seconds=args.seconds,
                play=args.play,
                record=args.record,
            )
            transport.close()
    finally:
        for transport, _ in transports.values():
            transport.close()
        await ua.close()
        await keying.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("call", "answer"))
    parser.add_argument("target", nargs="?", help="sip:user@host:port (for call)")
    parser.add_argument("--port", type=int, default=5070, help="SIP port (for answer)")
    parser.add_argument("--psk", required=True, help="pre-shared key, hex")
    parser.add_argument("--seconds", type=float, default=5.0, help="longest call length")
    parser.add_argument("--play", help="WAV file to send instead of a tone")
    parser.add_argument("--record", help="write what the peer sent to this WAV file")
    args = parser.parse_args()
    config = ExchangeConfig(
        mode=Mode.PSK, psk=StaticPskStore({}, default=bytes.fromhex(args.psk)), verify=True
    )
    if args.action == "call":
        if not args.target:
            parser.error("call needs a target URI")
        asyncio.run(place_call(args, config))
    else:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(answer_calls(args, config))


if __name__ == "__main__":
    main()
