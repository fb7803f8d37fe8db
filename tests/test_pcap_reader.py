"""``mikey pcap`` on hostile and odd captures, and ``mikey decode --psk`` (mikey_cli/pcap.py).

Oracles: the seed captures of tests/fuzz/make_pcap_corpus.py (built with dpkt's writers, so the
bytes each one carries are known), the docs/WIRE.md §Worked PSK exchange (its PSK, SSRC and
TEK), and the rule of the fuzz harnesses: only :class:`PcapError` may escape, within a time
bound, whatever the input.
"""

from __future__ import annotations

import random
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mikey_cli.pcap import MAX_BODY, OpenCredentials, PcapError, analyse, open_message, report
from tests.fuzz.__main__ import bounded, mutate
from tests.fuzz.harnesses import HARNESSES, PCAP_PSK, seeds
from tests.fuzz.make_pcap_corpus import seeds as build_seeds
from tests.mikey import vectors

SEEDS = build_seeds()
CREDS = OpenCredentials(psk=PCAP_PSK)


def test_corpus_on_disk_is_the_generator_output() -> None:
    on_disk = {p.name: d for p, d in seeds("pcap_reader")}
    assert on_disk == SEEDS


def test_overlapping_out_of_order_segments_reassemble() -> None:
    cap = analyse(SEEDS["sip_tcp_overlap.pcap"], CREDS)
    (msg,) = cap.messages
    assert msg.start == "INVITE sip:bob@127.0.0.2 SIP/2.0" and msg.transport == "tcp"
    assert msg.body.endswith(b"a=ssrc:287454020\r\n")
    (found,) = cap.mikey
    assert found.data == vectors.PSK_I_MESSAGE and found.where == "SDP session"
    (entry,) = cap.keys[0xDEADBEEF]
    # docs/WIRE.md §SRTP keys of crypto session 1
    assert bytes(entry.master_key).hex() == "1b3c86914d2e99652f57470a969a845a"
    assert bytes(entry.master_salt).hex() == "d4d883ced237bdca4ec8eb8235b1"
    assert not cap.warnings


def test_worked_exchange_keys_and_failing_tags_counted() -> None:
    cap = analyse(SEEDS["rtp_after_keys.pcap"], CREDS)
    st = cap.streams[0xDEADBEEF]
    assert st.keyed and st.packets == 2 and st.auth_failures == 2 and st.decrypted == 0


def test_rtsp_keymgmt_and_interleaved_frames_split_across_segments() -> None:
    cap = analyse(SEEDS["rtsp_keymgmt_interleaved.pcap"], CREDS)
    assert [f.where for f in cap.mikey] == ["KeyMgmt"]
    st = cap.streams[0x11223344]
    assert st.transport == "tcp" and st.packets == 2
    assert report(cap)["ladder"][0]["ssrcs"] == ["0x11223344"]


def test_huge_content_length_is_refused_without_buffering() -> None:
    cap = analyse(SEEDS["huge_content_length.pcap"], CREDS)
    assert cap.messages == []
    (warning,) = cap.warnings
    assert f"Content-Length beyond {MAX_BODY}" in warning


def test_truncated_capture_is_read_up_to_the_break() -> None:
    cap = analyse(SEEDS["truncated.pcap"], CREDS)
    assert len(cap.messages) == 1
    assert any("breaks off" in w for w in cap.warnings)


def test_pcapng_and_raw_mikey_on_2269() -> None:
    assert len(analyse(SEEDS["sip_udp.pcapng"], CREDS).messages) == 1
    cap = analyse(SEEDS["raw_mikey_2269.pcap"], CREDS)
    assert [f.where for f in cap.mikey] == ["UDP 2269"] and cap.keys


def test_hostile_record_length_is_bounded() -> None:
    header = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    record = struct.pack("<IIII", 0, 0, 0xFFFFFFF0, 0xFFFFFFF0) + b"x" * 100
    bounded(_only_pcap_errors, header + record, 5.0)


def _only_pcap_errors(data: bytes) -> None:
    try:
        analyse(data, CREDS)
    except PcapError as exc:
        assert "\n" not in str(exc)


@pytest.mark.parametrize("data", [b"", b"not a capture", b"\x0a\x0d\x0d\x0a" + b"\xff" * 40])
def test_not_a_capture_is_one_sentence(data: bytes) -> None:
    with pytest.raises(PcapError) as info:
        analyse(data, CREDS)
    assert "\n" not in str(info.value)


def test_mutated_seeds_raise_only_pcap_errors() -> None:
    harness = HARNESSES["pcap_reader"]
    pool = list(SEEDS.values())
    rng = random.Random(2026)
    for _ in range(300):
        data = mutate(rng.choice(pool), pool, rng)
        bounded(harness.check, data, 5.0)


def mikey(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["timeout", "60", sys.executable, "-m", "mikey_cli", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_cli_errors_are_one_sentence(tmp_path: Path) -> None:
    r = mikey("pcap", str(tmp_path / "missing.pcap"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.count("\n") == 1 and "cannot read" in r.stderr
    junk = tmp_path / "junk.pcap"
    junk.write_bytes(b"\x00" * 64)
    r = mikey("pcap", str(junk))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "not a readable pcap or pcapng file" in r.stderr


def test_decode_opens_the_kemac_with_psk() -> None:
    text = vectors.PSK_I_MESSAGE.hex()
    r = mikey("decode", text, "--psk", PCAP_PSK.hex(), "--show-keys")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("Data SA:"))
    assert "SSRC 0xdeadbeef" in line and "AES_CM_128_HMAC_SHA1_80" in line
    assert "master key" in line
    hidden = mikey("decode", text, "--psk", PCAP_PSK.hex())
    assert "master key" not in hidden.stdout
    wrong = mikey("decode", text, "--psk", "ff" * 16)
    assert wrong.returncode == 2
    assert "KEMAC not opened: authentication failed" in wrong.stdout


def test_srtp_across_a_sequence_wrap_decrypts_and_counts_the_roc_wrap() -> None:
    """SRTP made by libsrtp (srtp.context.OutboundStream) from the worked exchange's keys,
    sequence numbers 65526..65545: every packet decrypts, one ROC wrap (RFC 3711 §3.3.1)."""
    import io

    import dpkt  # type: ignore[import-untyped]

    from srtp.context import OutboundStream
    from tests.fuzz.make_pcap_corpus import T0, udp

    opened = open_message(vectors.PSK_I_MESSAGE, CREDS, now=T0)
    assert opened.reason is None
    out = OutboundStream(opened.keys)
    frames = [udp(2269, 2269, vectors.PSK_I_MESSAGE)]
    for i in range(20):
        seq = (65526 + i) & 0xFFFF
        rtp = (
            bytes([0x80, 0x00])
            + seq.to_bytes(2, "big")
            + (160 * i).to_bytes(4, "big")
            + bytes.fromhex("deadbeef")
            + bytes([0xFF]) * 160
        )
        frames.append(udp(4000, 4002, out.protect(rtp)))
    out.close()
    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf)
    for i, f in enumerate(frames):
        w.writepkt(f, ts=T0 + i * 0.02)
    cap = analyse(buf.getvalue(), CREDS, want_wav=True)
    st = cap.streams[0xDEADBEEF]
    assert (st.packets, st.decrypted, st.auth_failures, st.roc_wraps) == (20, 20, 0, 1)
    assert st.payload_types == {0} and len(st.samples) == 20 * 160 * 2
    assert set(st.samples[:4]) == {0}  # mu-law 0xFF is silence (0)


def test_pk_opens_with_the_responders_key_and_dh_says_why_not() -> None:
    from mikey.exchange import Initiator, StreamSpec
    from mikey.keying import Mode
    from tests.mikey.pair import NOW, configs, ep, seeded_rng

    i_cfg, r_cfg = configs(Mode.PK)
    raw = Initiator(ep(i_cfg), seeded_rng(40)).start(NOW, (StreamSpec(0x4242),))
    opened = open_message(raw, OpenCredentials(credentials=r_cfg.credentials), now=NOW)
    assert opened.reason is None and [e.ssrc for e in opened.keys] == [0x4242]
    other = configs(Mode.PK)[0].credentials  # alice's key cannot open bob's envelope
    assert open_message(raw, OpenCredentials(credentials=other), now=NOW).reason
    no_key = open_message(raw, OpenCredentials(psk=PCAP_PSK), now=NOW)
    assert no_key.reason == "a PK exchange: give the responder's --cert and --key"
    d_cfg, _ = configs(Mode.DH)
    dh = Initiator(ep(d_cfg), seeded_rng(41)).start(NOW)
    reason = open_message(dh, OpenCredentials(psk=PCAP_PSK), now=NOW).reason
    assert reason is not None and "private DH value" in reason


def test_onvif_set_parameter_body() -> None:
    cap = analyse(SEEDS["onvif_set_parameter.pcap"], CREDS)
    assert [m.start.split()[0] for m in cap.messages] == ["SET_PARAMETER"]
    assert [f.where for f in cap.mikey] == ["parameter body"]
    assert cap.mikey[0].data == vectors.PSK_I_MESSAGE


def test_rsa_r_answer_opens_with_the_initiators_key() -> None:
    """RSA-R (RFC 4738): the captured offer resumes the initiator; the answer's keys agree
    with the responder's, and a changed answer byte is refused."""
    from mikey.keying import Mode
    from mikey_cli.pcap import open_answer
    from tests.mikey.pair import NOW, Pair, configs

    i_cfg, r_cfg = configs(Mode.RSA_R)
    _, r_res, i_msg, answer = Pair(i_cfg, r_cfg, seed=50).run()
    assert answer is not None
    creds = OpenCredentials(credentials=i_cfg.credentials)
    assert "answer" in (open_message(i_msg, creds, now=NOW).reason or "")
    opened = open_answer(i_msg, answer, creds, now=NOW + 1)
    assert opened.reason is None
    assert [bytes(e.master_key) for e in opened.keys] == [
        bytes(e.master_key) for e in r_res.data_sa
    ]
    bad = bytearray(answer)
    bad[-5] ^= 1
    assert "authentication failed" in (open_answer(i_msg, bytes(bad), creds, now=NOW).reason or "")
    wrong = OpenCredentials(credentials=r_cfg.credentials)  # not the initiator's key
    assert open_answer(i_msg, answer, wrong, now=NOW + 1).reason
    # the same exchange in a capture (raw MIKEY on UDP 2269): found, paired by CSB ID, opened
    import io

    import dpkt

    from tests.fuzz.make_pcap_corpus import udp

    buf = io.BytesIO()
    w = dpkt.pcap.Writer(buf)
    w.writepkt(udp(2269, 2269, i_msg), ts=NOW)
    w.writepkt(udp(2269, 2269, answer), ts=NOW + 0.5)
    cap = analyse(buf.getvalue(), creds)
    assert [x["type"] for x in cap.key_reports] == ["RSA_R_RESP"]
    assert cap.key_reports[0]["keys"] == len(r_res.data_sa) and "refused" not in cap.key_reports[0]
