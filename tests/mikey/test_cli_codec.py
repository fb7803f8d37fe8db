"""``mikey decode``/``mikey encode`` and the JSON form (issue: codec CLI).

Oracle: the codec's own wire bytes — ``decode --json | encode`` must reproduce the input for every
message the codec accepts, strict or lenient.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings

from mikey import parse_message
from mikey_cli import main, mikey_bytes_from_text
from mikey_cli.jsonform import from_json, to_json

from . import vectors

SPEC_B64 = base64.b64encode(vectors.PSK_I_MESSAGE).decode()
LENIENT = [vectors.NULL_MODE_MESSAGE, vectors.genetec_message(), vectors.PSK_I_MESSAGE + b"\0"]
STRICT = [
    vectors.PSK_I_MESSAGE,
    vectors.PSK_R_MESSAGE,
    vectors.PSK_ERROR_MESSAGE,
    *(m.encode() for m in vectors.interop_messages().values()),
]


def _roundtrip(raw: bytes, lenient: bool) -> bytes:
    obj = json.loads(json.dumps(to_json(parse_message(raw, lenient=lenient))))
    return from_json(obj).encode()


@pytest.mark.parametrize("raw", STRICT)
def test_json_roundtrip_strict(raw: bytes) -> None:
    assert _roundtrip(raw, False) == raw


@pytest.mark.parametrize("raw", LENIENT)
def test_json_roundtrip_lenient(raw: bytes) -> None:
    assert _roundtrip(raw, True) == raw
    assert to_json(parse_message(raw, lenient=True))["leniencies"]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(vectors.messages())
def test_json_roundtrip_generated(m) -> None:  # type: ignore[no-untyped-def]
    raw = m.encode()
    assert _roundtrip(raw, False) == raw


def test_json_stable_top_level_keys() -> None:
    obj = to_json(parse_message(vectors.PSK_I_MESSAGE))
    for key in ("version", "data_type", "v", "prf", "csb_id", "cs_map_type", "cs", "payloads"):
        assert key in obj
    assert obj["data_type"] == "PSK_INIT"
    assert obj["v"] is True
    assert obj["csb_id"] == 0x12345678
    assert obj["cs_map_type"] == "SRTP_ID"
    assert obj["cs"] == [{"policy_no": 0, "ssrc": 0xDEADBEEF, "roc": 0}]
    assert [p["type"] for p in obj["payloads"]] == ["T", "RAND", "SP", "KEMAC"]
    assert obj["payloads"][1]["rand"] == vectors.SPEC_RAND.hex()
    sp = obj["payloads"][2]
    assert sp["params"][0] == {"type": 0, "name": "ENCR_ALG", "value": "01"}
    kemac = obj["payloads"][3]
    assert kemac["encr_alg"] == "AES_CM_128" and kemac["mac"] == vectors.SPEC_KEMAC_MAC.hex()
    assert "keys" not in kemac  # encrypted: no clear keys
    assert obj["leniencies"] == []


def test_json_null_kemac_shows_keys() -> None:
    obj = to_json(parse_message(vectors.NULL_MODE_MESSAGE, lenient=True))
    keys = obj["payloads"][-1]["keys"]
    assert keys[0]["key_type"] == "TEK" and keys[0]["key"] == vectors.SPEC_NULL_TEK.hex()
    assert keys[0]["kv"] == "SPI" and keys[0]["spi"] == "00000001"


@pytest.mark.parametrize(
    "text",
    [
        SPEC_B64,
        vectors.PSK_I_MESSAGE.hex(),
        f"a=key-mgmt:mikey {SPEC_B64}",
        f'KeyMgmt: prot=mikey;uri="rtsp://h/x";data="{SPEC_B64}"',
        f'KeyMgmt: prot=mikey; uri=""; data="{SPEC_B64}"',
    ],
)
def test_input_forms(text: str) -> None:
    assert mikey_bytes_from_text(text) == vectors.PSK_I_MESSAGE


def test_cli_decode_encode_pipe_subprocess() -> None:
    dec = subprocess.run(
        [sys.executable, "-m", "mikey_cli", "decode", "--json", f"a=key-mgmt:mikey {SPEC_B64}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    enc = subprocess.run(
        [sys.executable, "-m", "mikey_cli", "encode", "-"],
        input=dec.stdout,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert enc.stdout.strip() == SPEC_B64


def test_cli_tree_and_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", SPEC_B64]) == 0
    out = capsys.readouterr().out
    assert "PSK_INIT" in out and "0x12345678" in out and "encrypted data" in out
    assert vectors.SPEC_ENCRYPTED_KEY_DATA.hex() not in out
    assert main(["decode", "AQAF"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mikey decode:") and len(err.strip().splitlines()) == 1
    assert main(["decode", "not base64 !"]) == 2
    null_b64 = base64.b64encode(vectors.NULL_MODE_MESSAGE).decode()
    assert main(["decode", null_b64]) == 2  # strict refuses the GStreamer TEK form
    assert main(["decode", "--lenient", null_b64]) == 0
    assert "CLEAR" in capsys.readouterr().out
