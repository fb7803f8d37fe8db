"""The aiortc bridge: real aiortc senders/receivers, real MIKEY keys, real UDP on 127.0.0.1.

Oracles: the other side of the MIKEY exchange (its keys decrypt what we send), aiortc's own codecs
(what B decodes must be A's tone, measured by a Goertzel scan), a relay that counts what it
corrupted or replayed, and GStreamer's srtpdec (an independent libsrtp user) decoding our bridge.
"""

from __future__ import annotations

import asyncio
import functools
import random
import socket
import struct
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from mikey.exchange import StreamSpec
from mikey.keying import KeyingResult, Mode
from rtspglue.media import ToneSource, dominant_frequency, read_wav, write_wav
from srtp import Gsa, GsaRegistry, TeardownReason
from srtp.audio import AudioTrackError, PcmRecorder, ToneTrack, wav_track
from srtp.media import (
    AiortcVersionError,
    AudioCodec,
    MediaBridgeError,
    SrtpMediaTransport,
    StreamSet,
    audio_codec,
    check_aiortc_version,
    receive_audio,
    start_audio,
)

from ..mikey.pair import NOW, Pair, configs

SSRC_A = 0x1111AAAA  # offered by the initiator (A)
SSRC_B = 0x5678  # filled in by the responder (B), see tests/mikey/pair.py
GUARD = 15.0  # hang guard only; never an expectation about speed


async def until(cond: Callable[[], bool], what: str) -> None:
    """Wait for ``cond`` (polling the event loop); fail only if it never happens."""
    loop = asyncio.get_running_loop()
    end = loop.time() + GUARD
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.01)


async def guarded(aw: Awaitable[object], what: str) -> None:
    try:
        await asyncio.wait_for(aw, GUARD)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def keying(mode: Mode) -> tuple[KeyingResult, KeyingResult]:
    i_res, r_res, _, _ = Pair(*configs(mode)).run(
        streams=(StreamSpec(SSRC_A, 0, 0), StreamSpec(0, 0, 0))
    )
    return i_res, r_res


@dataclass
class Call:
    reg_a: GsaRegistry
    reg_b: GsaRegistry
    gsa_a: Gsa
    gsa_b: Gsa
    a: SrtpMediaTransport
    b: SrtpMediaTransport

    def hang_up(self) -> None:
        self.a.close()
        self.b.close()
        self.reg_a.teardown("call", TeardownReason.BYE, NOW + 10)
        self.reg_b.teardown("call", TeardownReason.BYE, NOW + 10)


async def open_call(
    mode: Mode = Mode.PSK, a_remote: Callable[[SrtpMediaTransport], tuple[str, int]] | None = None
) -> Call:
    i_res, r_res = keying(mode)
    reg_a, reg_b = GsaRegistry(), GsaRegistry()
    gsa_a = reg_a.establish("call", i_res, NOW + 1, outbound_ssrcs={SSRC_A})
    gsa_b = reg_b.establish("call", r_res, NOW + 1, outbound_ssrcs={SSRC_B})
    b = await SrtpMediaTransport.open(gsa_b)  # no remote: latches onto A's first good packet
    remote = a_remote(b) if a_remote is not None else b.local_address
    a = await SrtpMediaTransport.open(gsa_a, remote=remote)
    return Call(reg_a, reg_b, gsa_a, gsa_b, a, b)


@pytest.fixture
async def call() -> AsyncIterator[Call]:
    c = await open_call()
    yield c
    c.hang_up()
    assert c.reg_a.audit().clean and c.reg_b.audit().clean


async def tone_call(
    c: Call, codec: AudioCodec, freq: float = 440, seconds: float = 1.2
) -> tuple[PcmRecorder, object]:
    """A sends a tone until its track ends and the sender stops; B records until the BYE."""
    rx, track = await receive_audio(c.b, codec, remote_ssrc=SSRC_A, rtcp_ssrc=SSRC_B)
    rec = PcmRecorder(track)
    rec.start()
    tone = ToneTrack(freq, duration=seconds)
    sender = await start_audio(c.a, tone, ssrc=SSRC_A, codec=codec)
    assert sender._ssrc == SSRC_A
    await until(lambda: tone.readyState == "ended", "A's tone track played to its end")
    await guarded(sender.stop(), "sender stopped")  # sends an SRTCP BYE
    await guarded(rec.ended.wait(), "B's track ended on A's SRTCP BYE")
    await rx.stop()
    await rec.stop()
    return rec, sender


def freq_of(rec: PcmRecorder, skip: int = 1600, need: int = 6000) -> float:
    assert len(rec.samples) >= need, len(rec.samples)
    return dominant_frequency(rec.samples[skip:], 8000)


# -- audio over real keys ---------------------------------------------------------------------


async def test_pcmu_tone_psk(call: Call) -> None:
    rec, _ = await tone_call(call, "PCMU")
    assert abs(freq_of(rec) - 440) <= 5
    a, b = call.a.counters, call.b.counters
    assert a.sent_rtp >= 50 and a.send_dropped == 0
    assert b.decrypted_rtp == a.sent_rtp  # loopback: every packet A protected, B verified
    assert b.decrypted_rtcp >= 1  # at least the BYE
    assert b.auth_failures == b.replays == b.unknown_ssrc == b.malformed == 0
    assert call.b.remote_address == call.a.local_address  # latched on authenticated packets
    # B's receiver reports (SRTCP as SSRC_B) reach A's sender through A's inbound stream.
    # (Reports run on aiortc's randomised RTCP timer; wait for one to arrive.)


async def test_receiver_reports_reach_the_sender(call: Call) -> None:
    rx, track = await receive_audio(call.b, "PCMU", rtcp_ssrc=SSRC_B)
    rec = PcmRecorder(track)
    rec.start()
    sender = await start_audio(call.a, ToneTrack(440), ssrc=SSRC_A)
    await until(lambda: call.a.counters.decrypted_rtcp >= 1, "an SRTCP RR from B")
    await until(lambda: call.a.counters.delivered >= 1, "the RR routed to A's sender")
    stats = await sender.getStats()
    remote = [s for s in stats.values() if s.type == "remote-inbound-rtp"]
    # aiortc's sender filed the report B (SSRC_B) made about its SSRC_A stream.
    assert remote and remote[0].ssrc == SSRC_B and remote[0].packetsReceived > 0
    await sender.stop()
    await rx.stop()
    await rec.stop()
    assert call.a.counters.auth_failures == 0


async def test_opus_tone_dh() -> None:
    c = await open_call(Mode.DH)
    try:
        rec, _ = await tone_call(c, "opus", freq=660)
        assert abs(freq_of(rec) - 660) <= 5
        assert c.b.counters.decrypted_rtp == c.a.counters.sent_rtp
        assert c.b.counters.auth_failures == 0
    finally:
        c.hang_up()
    assert c.reg_a.audit().clean and c.reg_b.audit().clean


async def test_wav_file_round_trip(call: Call, tmp_path: Path) -> None:
    src = tmp_path / "in.wav"
    write_wav(src, ToneSource(550).read(8000 * 2))
    rx, track = await receive_audio(call.b, "PCMU", remote_ssrc=SSRC_A)
    rec = PcmRecorder(track)
    rec.start()
    sender = await start_audio(call.a, wav_track(src), ssrc=SSRC_A)
    await guarded(rec.wait(8000 * 3 // 2), "B decoded most of the WAV file")
    await sender.stop()
    await guarded(rec.ended.wait(), "B's track ended on A's SRTCP BYE")
    await rx.stop()
    out = tmp_path / "out.wav"
    rec.write_wav(out)
    assert abs(dominant_frequency(read_wav(out)[2000:], 8000) - 550) <= 5


# -- tampering, replay, garbage ---------------------------------------------------------------


class Relay(asyncio.DatagramProtocol):
    """Forwards A<->B; corrupts one RTP packet in ten and replays another one in ten."""

    def __init__(self, b_addr: tuple[str, int]) -> None:
        self.b_addr = b_addr
        self.a_addr: tuple[str, int] | None = None
        self.rtp = self.tampered = self.duplicated = 0
        self.udp: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.udp is not None
        if addr == self.b_addr:
            if self.a_addr is not None:
                self.udp.sendto(data, self.a_addr)
            return
        self.a_addr = addr
        if 192 <= data[1] <= 223:  # SRTCP passes untouched
            self.udp.sendto(data, self.b_addr)
            return
        self.rtp += 1
        if self.rtp % 10 == 3:
            bad = bytearray(data)
            bad[20] ^= 0x01  # one ciphertext bit (RFC 3711 §3.3.2: the tag must catch it)
            self.udp.sendto(bytes(bad), self.b_addr)
            self.tampered += 1
            return
        self.udp.sendto(data, self.b_addr)
        if self.rtp % 10 == 7:
            self.udp.sendto(data, self.b_addr)  # replayed (RFC 3711 §3.3.2 replay list)
            self.duplicated += 1


async def test_tampered_and_replayed_packets_are_dropped_and_counted() -> None:
    loop = asyncio.get_running_loop()
    i_res, r_res = keying(Mode.PSK)
    reg_a, reg_b = GsaRegistry(), GsaRegistry()
    gsa_a = reg_a.establish("call", i_res, NOW + 1, outbound_ssrcs={SSRC_A})
    gsa_b = reg_b.establish("call", r_res, NOW + 1, outbound_ssrcs={SSRC_B})
    b = await SrtpMediaTransport.open(gsa_b)
    relay = Relay(b.local_address)
    relay_udp, _ = await loop.create_datagram_endpoint(lambda: relay, local_addr=("127.0.0.1", 0))
    relay.udp = relay_udp
    a = await SrtpMediaTransport.open(gsa_a, remote=relay_udp.get_extra_info("sockname")[:2])
    c = Call(reg_a, reg_b, gsa_a, gsa_b, a, b)
    try:
        rec, _ = await tone_call(c, "PCMU")
        # aiortc's audio jitter buffer discards more than the lost packets; the tone survives.
        assert abs(freq_of(rec, skip=800, need=2400) - 440) <= 5
        counts = b.counters
        assert relay.tampered >= 3 and relay.duplicated >= 3
        assert counts.auth_failures == relay.tampered
        assert counts.replays == relay.duplicated
        assert counts.decrypted_rtp == relay.rtp - relay.tampered
        assert b.remote_address == relay_udp.get_extra_info("sockname")[:2]
    finally:
        relay_udp.close()
        c.hang_up()
    assert reg_a.audit().clean and reg_b.audit().clean


async def test_garbage_unknown_ssrc_and_foreign_sources(call: Call) -> None:
    rx, track = await receive_audio(call.b, "PCMU", remote_ssrc=SSRC_A)
    target = call.b.local_address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.sendto(b"\x80", target)  # too short
        s.sendto(b"\x00" * 40, target)  # RTP version 0
        s.sendto(struct.pack("!BBHII", 0x80, 0, 1, 0, 0xABCDEF01) + bytes(40), target)
        await until(lambda: call.b.counters.received == 3, "three datagrams read")
        counts = call.b.counters
        assert counts.malformed == 2 and counts.unknown_ssrc == 1
        assert call.b.remote_address is None  # nothing authenticated yet: no latching
        # A real packet from A latches B; afterwards other sources are ignored.
        plain = struct.pack("!BBHII", 0x80, 0, 7, 0, SSRC_A) + bytes(160)
        assert call.a.send_packet(plain)
        await until(lambda: call.b.counters.decrypted_rtp == 1, "A's packet verified")
        s.sendto(struct.pack("!BBHII", 0x80, 0, 8, 0, SSRC_A) + bytes(40), target)
        await until(lambda: call.b.counters.foreign_source == 1, "the stranger dropped")
    await rx.stop()
    assert track.readyState in ("live", "ended")


def received(t: SrtpMediaTransport, n: int) -> bool:
    return t.counters.received == n


async def test_random_datagrams_never_reach_aiortc(call: Call) -> None:
    """Random bytes, and random bytes behind a keyed SSRC, are all refused; the call goes on."""
    rng = random.Random(7)
    rx, track = await receive_audio(call.b, "PCMU")
    target = call.b.local_address
    sent = 0
    expect = {"auth_failures": 0, "rejected": 0}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        for i in range(300):
            body = rng.randbytes(rng.randrange(0, 200))
            if i % 2:  # SRTP/SRTCP from A's SSRC with a random body: libsrtp must refuse it
                rtcp = rng.random() < 0.5
                head = (
                    struct.pack("!BBHI", 0x80, 200, 6, SSRC_A)
                    if rtcp
                    else struct.pack("!BBHII", 0x80, 0, i, i, SSRC_A)
                )
                body = head + rng.randbytes(rng.randrange(24, 200))
                # SRTCP whose E flag contradicts the encrypting policy is refused before the tag
                # check (libsrtp "cant_check"); everything else must fail authentication.
                unencrypted_srtcp = rtcp and not body[-14] & 0x80  # RFC 3711 §3.4 E flag
                expect["rejected" if unencrypted_srtcp else "auth_failures"] += 1
            s.sendto(body, target)
            sent += 1
            if sent % 25 == 0:  # stay far below the socket's receive buffer
                await until(functools.partial(received, call.b, sent), "datagrams read")
    c = call.b.counters
    assert c.decrypted_rtp == c.decrypted_rtcp == c.delivered == 0
    assert (c.auth_failures, c.rejected) == (expect["auth_failures"], expect["rejected"])
    assert c.malformed + c.unknown_ssrc + c.auth_failures + c.replays + c.rejected == sent
    assert call.b.state == "connected" and call.b.remote_address is None
    await rx.stop()
    assert track.kind == "audio"


async def test_unkeyed_ssrc_is_never_sent_in_clear(call: Call) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.3)
        t = await SrtpMediaTransport.open(call.gsa_a, remote=s.getsockname())
        try:
            assert not t.send_packet(struct.pack("!BBHII", 0x80, 0, 1, 0, 0x42) + bytes(20))
            assert not t.send_packet(b"\x80\x00")
            assert t.send_packet(struct.pack("!BBHII", 0x80, 0, 1, 0, SSRC_A) + bytes(20))
            data = s.recv(2048)
            assert len(data) == 12 + 20 + 10 and data[12:32] != bytes(20)  # encrypted + tag
            assert t.counters.send_dropped == 2 and t.counters.sent_rtp == 1
            # After the GSA is torn down its keys are gone: nothing leaves the transport.
            call.reg_a.teardown("call", TeardownReason.BYE, NOW + 5)
            assert not t.send_packet(struct.pack("!BBHII", 0x80, 0, 2, 0, SSRC_A) + bytes(20))
            with pytest.raises(TimeoutError):
                s.recv(2048)
        finally:
            t.close()


# -- API guards ---------------------------------------------------------------------------------


def test_aiortc_version_guard() -> None:
    check_aiortc_version("1.16.0")
    check_aiortc_version("1.16.7")
    for bad in ("1.15.2", "1.17.0", "2.16.0", "1", "x.y", ""):
        with pytest.raises(AiortcVersionError):
            check_aiortc_version(bad)
    assert issubclass(AiortcVersionError, ImportError)


def test_codec_table() -> None:
    pcmu, opus = audio_codec("PCMU"), audio_codec("opus")
    assert (pcmu.mimeType, pcmu.clockRate, pcmu.payloadType) == ("audio/PCMU", 8000, 0)
    assert (opus.clockRate, opus.channels, opus.payloadType) == (48000, 2, 111)
    with pytest.raises(MediaBridgeError):
        audio_codec("G729")


async def test_bad_arguments_and_closed_transport(call: Call) -> None:
    with pytest.raises(MediaBridgeError):
        await start_audio(call.a, ToneTrack(440), ssrc=0x42)  # no key for that SSRC
    with pytest.raises(MediaBridgeError):
        await start_audio(call.a, ToneTrack(440), ssrc=SSRC_B)  # B's SSRC is inbound for A
    with pytest.raises(MediaBridgeError):
        await receive_audio(call.b, "PCMU", rtcp_ssrc=SSRC_A)
    with pytest.raises(AudioTrackError):
        ToneTrack(5000, sample_rate=8000)
    with pytest.raises(AudioTrackError):
        wav_track("/nonexistent.wav")
    call.a.close()
    call.a.close()  # idempotent
    assert call.a.state == "closed"
    with pytest.raises(MediaBridgeError):
        await start_audio(call.a, ToneTrack(440), ssrc=SSRC_A)
    with pytest.raises(MediaBridgeError):
        call.a.send_packet(bytes(32))
    with pytest.raises(ConnectionError):  # what aiortc's sender loop expects
        await call.a._send_rtp(bytes(32))


async def test_stream_set_without_gsa() -> None:
    i_res, r_res = keying(Mode.PSK)
    from srtp import streams_for

    a_out, a_in = streams_for(i_res.data_sa, {SSRC_A})
    b_out, b_in = streams_for(r_res.data_sa, {SSRC_B})
    sa, sb = StreamSet(a_out.values(), a_in.values()), StreamSet(b_out.values(), b_in.values())
    b = await SrtpMediaTransport.open(sb)
    a = await SrtpMediaTransport.open(sa, remote=b.local_address)
    try:
        rx, track = await receive_audio(b, "PCMU")
        rec = PcmRecorder(track)
        rec.start()
        sender = await start_audio(a, ToneTrack(440, duration=0.6), ssrc=SSRC_A)
        await guarded(rec.wait(2400), "B decoded some of the tone")
        await sender.stop()
        await guarded(rec.ended.wait(), "B's track ended on A's SRTCP BYE")
        await rx.stop()
        assert b.counters.decrypted_rtp == a.counters.sent_rtp > 0
    finally:
        a.close()
        b.close()
        sa.close()
        sb.close()
        i_res.wipe()
        r_res.wipe()


# -- interop: GStreamer's srtpdec decodes the bridge's SRTP ----------------------------------


@pytest.mark.interop
async def test_gstreamer_srtpdec_decodes_bridge_output(tmp_path: Path) -> None:
    from ..interop.peers import missing_peer, stop_wrapped
    from ..interop.test_srtp_gstreamer import _has_srtp_plugin, wait_written
    from .media import free_udp_port_pair, ulaw_decode, wait_bound

    if not _has_srtp_plugin():
        missing_peer("GStreamer srtp plugin (gstreamer1.0-plugins-bad) not installed")
    i_res, r_res = keying(Mode.PSK)
    entry = next(e for e in i_res.data_sa if e.ssrc == SSRC_A)
    key_hex = (bytes(entry.master_key) + bytes(entry.master_salt)).hex()
    r_res.wipe()
    reg = GsaRegistry()
    gsa = reg.establish("call", i_res, NOW + 1, outbound_ssrcs={SSRC_A})
    port = free_udp_port_pair()
    out, rtcp_out = tmp_path / "out.ulaw", tmp_path / "out.rtcp"
    caps = (
        "application/x-srtp,media=audio,clock-rate=8000,encoding-name=PCMU,payload=0,"
        f"ssrc=(uint){SSRC_A},srtp-key=(buffer){key_hex},"
        "srtp-cipher=aes-128-icm,srtp-auth=hmac-sha1-80,"
        "srtcp-cipher=aes-128-icm,srtcp-auth=hmac-sha1-80"
    )
    # srtpdec demultiplexes the bridge's SRTCP (RFC 5761) to its rtcp_src pad. The sinks write
    # unbuffered and without preroll (the RTCP branch sees no data at first, and EOS never
    # reaches it), so the pipeline is stopped by PID instead of by EOS.
    pipeline = (
        f"udpsrc address=127.0.0.1 port={port} caps={caps} ! srtpdec name=d "
        f"d.rtp_src ! rtppcmudepay ! filesink async=false buffer-mode=unbuffered location={out} "
        f"d.rtcp_src ! filesink async=false buffer-mode=unbuffered location={rtcp_out}"
    )
    proc = subprocess.Popen(
        ["timeout", "30", "gst-launch-1.0", "-q", *pipeline.split()],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    t = await SrtpMediaTransport.open(gsa, remote=("127.0.0.1", port))
    try:
        await asyncio.to_thread(wait_bound, port, lambda: proc.poll() is None)
        tone = ToneTrack(440, duration=1.2)
        sender = await start_audio(t, tone, ssrc=SSRC_A)
        await until(lambda: tone.readyState == "ended", "the tone played to its end")
        await sender.stop()  # at least the SRTCP BYE
        await asyncio.to_thread(wait_written, out, 6000, lambda: proc.poll() is None)
        await asyncio.to_thread(wait_written, rtcp_out, 8, lambda: proc.poll() is None)
    finally:
        t.close()
        await asyncio.to_thread(stop_wrapped, proc, 10.0)
        reg.teardown("call", TeardownReason.BYE, NOW + 5)
    err = proc.stderr.read() if proc.stderr else b""
    samples = ulaw_decode(out.read_bytes())
    assert len(samples) >= 6000, err
    assert abs(dominant_frequency(samples[2000:], 8000) - 440) <= 5
    rtcp = rtcp_out.read_bytes()  # decrypted SR/SDES/BYE compounds sent by aiortc as SSRC_A
    assert len(rtcp) >= 8 and rtcp[0] >> 6 == 2 and rtcp[1] in (200, 203), err
    assert int.from_bytes(rtcp[4:8], "big") == SSRC_A
    assert reg.audit().clean


async def test_packet_observer_sees_the_wire_both_ways(call: Call) -> None:
    """What A's observer records as sent is what B's observer records as received, byte for
    byte, SRTP (not plain); a raising observer does not stop the media."""
    seen_a: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
    seen_b: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
    call.a.set_packet_observer(lambda src, dst, data: seen_a.append((src, dst, data)))
    call.b.set_packet_observer(lambda src, dst, data: seen_b.append((src, dst, data)))
    plain = struct.pack("!BBHII", 0x80, 0, 7, 0, SSRC_A) + bytes(160)
    assert call.a.send_packet(plain)
    await until(lambda: call.b.counters.decrypted_rtp == 1, "A's packet verified")
    assert len(seen_a) == len(seen_b) == 1
    (src, dst, wire), received = seen_a[0], seen_b[0]
    assert (src, dst) == (call.a.local_address, call.b.local_address)
    assert received == (src, dst, wire)
    assert wire != plain and len(wire) == len(plain) + 10  # SRTP with an 80-bit tag

    def broken(src: tuple[str, int], dst: tuple[str, int], data: bytes) -> None:
        raise RuntimeError("capture disk full")

    call.a.set_packet_observer(broken)
    call.b.set_packet_observer(None)
    assert call.a.send_packet(struct.pack("!BBHII", 0x80, 0, 8, 160, SSRC_A) + bytes(160))
    await until(lambda: call.b.counters.decrypted_rtp == 2, "media goes on")
    assert len(seen_b) == 1  # removed observer no longer called
