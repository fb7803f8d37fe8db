"""Write the seed corpora: valid messages of every kind, produced by the real code.

``python -m tests.fuzz.make_corpus`` regenerates ``corpus/<harness>/`` and the test identities in
``keys/`` (the responder seeds are signed/encrypted with them, so they are stored together).
The identities are throwaway test keys, valid 2025-2035, used only by the fuzz harnesses.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
from dataclasses import replace

from cryptography.hazmat.primitives import serialization

from mikey.codec import parse_message as parse_mikey
from mikey.exchange import (
    Endpoint,
    ExchangeCompleted,
    ExchangeRefused,
    Initiator,
    Responder,
    StreamSpec,
)
from mikey.keying import Mode
from mikey.registry import DhGroup, KeyDataType
from rtspglue.keymgmt import KeyMgmtSpec, format_key_mgmt_attribute, format_keymgmt
from rtspglue.message import RtspRequest, RtspResponse, SessionHeader, encode_interleaved
from sipglue.message import Request, Response
from sipglue.sdp import KeyMgmtAttr, build_audio_answer, build_audio_offer
from tests.mikey import certs, vectors

from .harnesses import (
    ALICE,
    BOB,
    CORPUS,
    GSTREAMER_RESPONDER,
    KEYS,
    NOW,
    RESPONDER_MODES,
    exchange_configs,
    hostile_variants,
    identities,
)


def _write_keys() -> None:
    KEYS.mkdir(parents=True, exist_ok=True)
    root = certs.ca()
    (KEYS / "ca.crt").write_bytes(root.cert_pem())
    for name, uri in (("alice", ALICE), ("bob", BOB)):
        issued = certs.leaf(name, san_uri=uri)
        (KEYS / f"{name}.key").write_bytes(
            issued.key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        )
        (KEYS / f"{name}.crt").write_bytes(issued.cert_pem())
    identities.cache_clear()


def _rng(seed: int) -> object:
    import random

    return random.Random(seed).randbytes


def exchanges() -> dict[Mode, list[tuple[bytes, bytes | None]]]:
    """(I_MESSAGE, answer) pairs of every mode in a few shapes, made by the real initiator."""
    variants: list[dict[str, object]] = [
        {},
        {"verify": True},
        {"key_type": KeyDataType.TEK_SALT},
        {"mki_length": 4},
    ]
    streams_list = [
        (StreamSpec(0x1234, 0, 0),),
        (StreamSpec(0x1234, 0, 0), StreamSpec(0, 0, 0)),
    ]
    out: dict[Mode, list[tuple[bytes, bytes | None]]] = {}
    seed = 1
    for mode in RESPONDER_MODES.values():
        pairs = []
        for kw in variants:
            if mode in (Mode.DH, Mode.DHHMAC) and "key_type" in kw:
                continue
            for streams in streams_list:
                init_cfg, resp_cfg = exchange_configs(mode)
                extra = dict(kw)
                if mode in (Mode.DH, Mode.DHHMAC):
                    extra.setdefault("dh_group", DhGroup.OAKLEY_2 if seed % 2 else DhGroup.OAKLEY_5)
                init_cfg = replace(init_cfg, **extra)  # type: ignore[arg-type]
                resp_cfg = replace(resp_cfg, **extra)  # type: ignore[arg-type]
                initiator = Initiator(Endpoint(init_cfg, _rng(seed)))  # type: ignore[arg-type]
                i_msg = initiator.start(NOW, streams)
                reply = Responder(Endpoint(resp_cfg, _rng(seed + 1000))).respond(  # type: ignore[arg-type]
                    i_msg, NOW + 0.5, local_ssrcs=[0x5678, 0x9ABC]
                )
                if isinstance(reply, ExchangeRefused):
                    raise reply.error
                assert isinstance(reply, ExchangeCompleted)
                reply.result.wipe()
                pairs.append((i_msg, reply.answer))
                seed += 1
        out[mode] = pairs
    return out


def _sip_messages(blob: bytes) -> list[bytes]:
    km = KeyMgmtAttr("mikey", base64.b64encode(blob).decode())
    offer = build_audio_offer("127.0.0.1", 40000, session_id=1, key_mgmt=[km], opus=True)
    answer = build_audio_answer(offer, "127.0.0.1", 41000, session_id=2, key_mgmt=km)
    heads = (
        ("Via", "SIP/2.0/TCP 127.0.0.1:5060;branch=z9hG4bK776asdhds;rport"),
        ("Max-Forwards", "70"),
        ("To", "Bob <sip:bob@127.0.0.1>"),
        ("From", '"Alice" <sip:alice@127.0.0.1>;tag=1928301774'),
        ("Call-ID", "a84b4c76e66710@127.0.0.1"),
        ("CSeq", "314159 INVITE"),
        ("Contact", "<sip:alice@127.0.0.1:5060;transport=tcp>"),
        ("Record-Route", "<sip:proxy.example.com;lr>"),
        ("Content-Type", "application/sdp"),
    )
    invite = Request("INVITE", "sip:bob@127.0.0.1", heads, offer.encode())
    ok = Response(
        200, "OK", (*heads[:1], *heads[2:], ("Content-Type", "application/sdp")), answer.encode()
    )
    bye = Request("BYE", "sip:bob@127.0.0.1", tuple(h for h in heads if h[0] != "Content-Type"))
    return [invite.encode(), ok.encode(), bye.encode()]


def _rtsp_messages(blob: bytes) -> list[bytes]:
    spec = KeyMgmtSpec("mikey", "rtsp://127.0.0.1:8554/tone/stream=0", blob)
    sdp_body = build_audio_offer(
        "127.0.0.1",
        0,
        session_id=3,
        key_mgmt=[KeyMgmtAttr("mikey", base64.b64encode(blob).decode())],
    ).encode()
    setup = RtspRequest(
        "SETUP",
        "rtsp://127.0.0.1:8554/tone/stream=0",
        (
            ("CSeq", "3"),
            ("Transport", "RTP/SAVP;unicast;client_port=40000-40001,RTP/AVP/TCP;interleaved=0-1"),
            ("KeyMgmt", format_keymgmt([spec])),
        ),
    )
    describe = RtspResponse(
        200,
        headers=(("CSeq", "2"), ("Content-Type", "application/sdp")),
        body=sdp_body,
    )
    play = RtspRequest(
        "PLAY",
        "rtsp://127.0.0.1:8554/tone",
        (("CSeq", "4"), ("Session", SessionHeader("12345678", 60).encode()), ("Range", "npt=0-")),
    )
    set_param = RtspRequest(
        "SET_PARAMETER",
        "rtsp://127.0.0.1:8554/tone",
        (("CSeq", "5"), ("Session", "12345678"), ("Content-Type", "text/parameters")),
        body=f"KeyMgmt: {format_keymgmt([spec])}\r\n".encode(),
    )
    return [
        setup.encode(),
        describe.encode(),
        play.encode() + encode_interleaved(0, b"\x80" * 20) + set_param.encode(),
    ]


def _keymgmt_values(blob: bytes) -> list[bytes]:
    spec = KeyMgmtSpec("mikey", "rtsp://127.0.0.1:8554/tone/stream=0", blob)
    return [
        format_keymgmt([spec, replace(spec, uri="rtsp://h/x")]).encode(),
        format_key_mgmt_attribute("mikey", blob).encode(),
        b"mikey: " + base64.b64encode(blob) + b"\r\n",
    ]


def build() -> dict[str, list[bytes]]:
    """Every harness's seeds."""
    ex = exchanges()
    mikey_seeds: list[bytes] = [
        vectors.PSK_I_MESSAGE,
        vectors.PSK_R_MESSAGE,
        vectors.PSK_ERROR_MESSAGE,
        vectors.NULL_MODE_MESSAGE,
        vectors.genetec_message(),
        vectors.psk_aes_message().encode(),
        vectors.null_tek_salt_message().encode(),
        vectors.pk_message().encode(),
        vectors.dhhmac_message().encode(),
        vectors.error_message().encode(),
        *(m.encode() for m in vectors.rsa_r_messages()),
        *(vectors.dh_message(g).encode() for g in DhGroup),
        *(m.encode() for m in vectors.interop_messages().values()),
    ]
    for pairs in ex.values():
        for i_msg, answer in pairs[:2]:
            mikey_seeds.append(i_msg)
            if answer is not None:
                mikey_seeds.append(answer)
    blob = ex[Mode.PSK][0][0]
    corpus: dict[str, list[bytes]] = {
        "mikey_strict": [s for s in mikey_seeds if _strict_ok(s)],
        "mikey_lenient": mikey_seeds,
        "sip_message": _sip_messages(blob),
        "sip_stream": [b"\x07" + b"".join(_sip_messages(blob))],
        "rtsp_messages": [b"\x05" + m for m in _rtsp_messages(blob)],
        "keymgmt": _keymgmt_values(blob),
    }
    corpus["sdp"] = [
        build_audio_offer(
            "127.0.0.1",
            40000,
            session_id=1,
            key_mgmt=[KeyMgmtAttr("mikey", base64.b64encode(blob).decode())],
            key_mgmt_at_media=at_media,
            opus=at_media,
        ).encode()
        for at_media in (False, True)
    ]
    # hostile peers: Unicode digits, duplicated headers, CR/LF/NUL in values (harnesses.py)
    for name, keep in (("sip_message", 0), ("sip_stream", 1), ("rtsp_messages", 1), ("sdp", 0)):
        corpus[name] += [v for seed in corpus[name] for v in hostile_variants(seed, keep)]
    for name, mode in RESPONDER_MODES.items():
        corpus[name] = [i_msg for i_msg, _ in ex[mode]]
    corpus[GSTREAMER_RESPONDER] = gstreamer_offers()
    corpus["mikey_lenient"] += corpus[GSTREAMER_RESPONDER]
    return corpus


def gstreamer_offers() -> list[bytes]:
    """NULL-KEMAC PSK I_MESSAGEs of the GStreamer profile, one and two streams."""
    out = []
    for seed, streams in enumerate(
        [(StreamSpec(0x1234, 0, 0),), (StreamSpec(0x1234, 0, 0), StreamSpec(0x4321, 7, 0))], 500
    ):
        init_cfg = exchange_configs(Mode.PSK)[0].gstreamer_profile()
        out.append(Initiator(Endpoint(init_cfg, _rng(seed))).start(NOW, streams))  # type: ignore[arg-type]
    return out


def _strict_ok(data: bytes) -> bool:
    try:
        return parse_mikey(data).encode() == data
    except Exception:
        return False


def main() -> None:
    _write_keys()
    for name, items in build().items():
        target = CORPUS / name
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True)
        for data in items:
            (target / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)
        print(f"{name}: {len(items)} seeds")


if __name__ == "__main__":
    main()
