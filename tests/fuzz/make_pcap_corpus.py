"""Seeds of the ``pcap_reader`` harness: small captures written with dpkt's own writers.

Run ``python -m tests.fuzz.make_pcap_corpus`` to (re)write ``corpus/pcap_reader/``. Each seed
exercises one path of mikey_cli/pcap.py: SIP over TCP with overlapping, out-of-order segments
carrying an SDP ``a=key-mgmt`` (the docs/WIRE.md §Worked PSK exchange I_MESSAGE), an RTSP
response with ``KeyMgmt`` and interleaved ``$`` frames, a huge Content-Length, raw MIKEY on UDP
2269, SIP over UDP, a pcapng file, and a truncated copy.
"""

from __future__ import annotations

import base64
import io
import socket
from pathlib import Path

import dpkt  # type: ignore[import-untyped]

from tests.mikey import vectors

OUT = Path(__file__).parent / "corpus" / "pcap_reader"
A, B = socket.inet_aton("127.0.0.1"), socket.inet_aton("127.0.0.2")
T0 = 1704067200.0  # the T of the worked PSK exchange (2024-01-01)
B64 = base64.b64encode(vectors.PSK_I_MESSAGE).decode()


def _ip(l4: object, proto: int, src: bytes = A, dst: bytes = B) -> bytes:
    ip = dpkt.ip.IP(src=src, dst=dst, p=proto, data=l4, ttl=64)
    ip.len = len(bytes(ip))
    eth = dpkt.ethernet.Ethernet(src=b"\0" * 6, dst=b"\0" * 6, type=dpkt.ethernet.ETH_TYPE_IP)
    eth.data = ip
    return bytes(eth)


def tcp(sport: int, dport: int, seq: int, data: bytes, flags: int = dpkt.tcp.TH_ACK) -> bytes:
    return _ip(dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, flags=flags, data=data), 6)


def udp(sport: int, dport: int, data: bytes) -> bytes:
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = len(bytes(u))
    return _ip(u, 17)


def _write(frames: list[bytes], *, pcapng: bool = False) -> bytes:
    out = io.BytesIO()
    w = dpkt.pcapng.Writer(out) if pcapng else dpkt.pcap.Writer(out)
    for i, f in enumerate(frames):
        w.writepkt(f, ts=T0 + i * 0.02)
    return out.getvalue()


def invite() -> bytes:
    sdp = (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"a=key-mgmt:mikey {B64}\r\nm=audio 4000 RTP/SAVP 0\r\na=ssrc:287454020\r\n"
    ).encode()
    head = (
        "INVITE sip:bob@127.0.0.2 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK1\r\n"
        "From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.2>\r\nCall-ID: c1\r\n"
        f"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n"
    ).encode()
    return head + sdp


def seeds() -> dict[str, bytes]:
    msg = invite()
    isn = 1000
    syn = tcp(5060, 5070, isn - 1, b"", dpkt.tcp.TH_SYN)
    # out of order, overlapping and duplicated segments of one INVITE
    parts = [
        tcp(5060, 5070, isn + 40, msg[40:200]),
        tcp(5060, 5070, isn, msg[:60]),
        tcp(5060, 5070, isn + 150, msg[150:]),
        tcp(5060, 5070, isn, msg[:60]),
    ]
    rtp = bytes([0x80, 0x00, 0x00, 0x01]) + bytes(4) + bytes.fromhex("11223344") + bytes(160)
    srtp = rtp[:8] + bytes.fromhex("deadbeef") + rtp[12:] + bytes(10)  # a tag that fails
    sip_tcp = _write([syn, *parts, udp(4000, 4002, rtp)])
    rtsp_resp = (
        "RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: 1\r\n"
        f'KeyMgmt: prot=mikey; uri="rtsp://127.0.0.1/x"; data="{B64}"\r\n'
        "Transport: RTP/SAVP/TCP;unicast;interleaved=0-1;ssrc=11223344\r\n\r\n"
    ).encode()
    frame = b"$\x00" + len(rtp).to_bytes(2, "big") + rtp
    rtsp = _write(
        [
            tcp(554, 40000, 1, rtsp_resp + frame[:7]),
            tcp(554, 40000, 1 + len(rtsp_resp) + 7, frame[7:] + frame),
        ]
    )
    onvif_body = f"mikey: {B64}\r\n".encode()
    onvif = _write(
        [
            tcp(
                40000,
                554,
                1,
                b"SET_PARAMETER rtsp://127.0.0.1/x RTSP/1.0\r\nCSeq: 5\r\nSession: 1\r\n"
                b"Content-Type: text/parameters\r\n"
                + f"Content-Length: {len(onvif_body)}\r\n\r\n".encode()
                + onvif_body,
            )
        ]
    )
    huge = _write([tcp(5060, 5070, 1, b"SIP/2.0 200 OK\r\nContent-Length: 99999999999\r\n\r\nabc")])
    raw_mikey = _write([udp(2269, 2269, vectors.PSK_I_MESSAGE)])
    sip_udp = _write([udp(5060, 5070, msg)])
    return {
        "sip_tcp_overlap.pcap": sip_tcp,
        "rtsp_keymgmt_interleaved.pcap": rtsp,
        "huge_content_length.pcap": huge,
        "onvif_set_parameter.pcap": onvif,
        "raw_mikey_2269.pcap": raw_mikey,
        # the worked exchange's PSK opens it: the harness derives its Data SA
        "rtp_after_keys.pcap": _write(
            [udp(2269, 2269, vectors.PSK_I_MESSAGE), udp(4000, 4002, srtp), udp(4000, 4002, srtp)]
        ),
        "sip_udp.pcap": sip_udp,
        "sip_udp.pcapng": _write([udp(5060, 5070, msg)], pcapng=True),
        "truncated.pcap": sip_tcp[: len(sip_tcp) - 37],
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()
