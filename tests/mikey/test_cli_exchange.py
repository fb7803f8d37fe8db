"""``mikey derive/offer/answer/finish`` run as real subprocesses (bounded by ``timeout``).

Oracles: the other side's keys (offer -> answer -> finish must agree) and the PRF and TEK/SALT
values of docs/WIRE.md §Worked PSK exchange.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from . import certs
from .pair import ALICE, BOB, NOW

PSK_HEX = "000102030405060708090a0b0c0d0e0f"
SPEC_RAND = "00112233445566778899aabbccddeeff"


def mikey(*args: str, check_rc: int = 0) -> subprocess.CompletedProcess[str]:
    cmd = ["timeout", "60", sys.executable, "-m", "mikey_cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert proc.returncode == check_rc, proc.stderr
    return proc


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("pki")
    files: dict[str, str] = {}
    for name, uri in (("alice", ALICE), ("bob", BOB)):
        issued = certs.leaf(name, san_uri=uri)
        (d / f"{name}.key").write_bytes(issued.key_pem())
        (d / f"{name}.crt").write_bytes(issued.cert_pem())
        files[f"{name}.key"] = str(d / f"{name}.key")
        files[f"{name}.crt"] = str(d / f"{name}.crt")
    (d / "ca.crt").write_bytes(certs.ca().cert_pem())
    files["ca"] = str(d / "ca.crt")
    return files


def creds(mode: str, who: str, pki: dict[str, str]) -> list[str]:
    me, _peer = ("alice", "bob") if who == "i" else ("bob", "alice")
    args = ["--mode", mode, "--now", str(NOW)]
    if mode in ("psk", "dhhmac"):
        args += ["--psk", PSK_HEX]
    else:
        args += ["--cert", pki[f"{me}.crt"], "--key", pki[f"{me}.key"], "--ca", pki["ca"]]
        if mode == "pk" and who == "i":
            args += ["--peer-cert", pki["bob.crt"]]
    uri = ALICE if me == "alice" else BOB
    return [*args, "--identity", uri, "--peer-identity", BOB if uri == ALICE else ALICE]


@pytest.mark.parametrize(
    ("mode", "verify"),
    [
        ("psk", False),
        ("psk", True),
        ("pk", False),
        ("pk", True),
        ("dh", False),
        ("dhhmac", False),
        ("rsa-r", False),
    ],
)
def test_offer_answer_finish(mode: str, verify: bool, pki: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    offer = mikey(
        "offer", *creds(mode, "i", pki), "--ssrc", "0x1234,0", "--state", str(state),
        *(["--v"] if verify else []),
    ).stdout.strip()  # fmt: skip
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o600
    answered: dict[str, Any] = json.loads(
        mikey("answer", *creds(mode, "r", pki), "--ssrc", "77", "--show-keys", offer).stdout
    )
    expects = verify or mode not in ("psk", "pk")
    assert (answered["answer"] is not None) == expects
    finished: dict[str, Any] = json.loads(
        mikey(
            "finish",
            "--state",
            str(state),
            "--now",
            str(NOW + 1),
            "--show-keys",
            answered["answer"] or "",
        ).stdout
    )
    r_sa, i_sa = answered["data_sa"], finished["data_sa"]
    assert len(r_sa) == len(i_sa) == 2
    for r, i in zip(r_sa, i_sa, strict=True):
        assert (r["master_key"], r["master_salt"], r["policy"]) == (
            i["master_key"], i["master_salt"], i["policy"],
        )  # fmt: skip
        assert len(bytes.fromhex(r["master_key"])) == 16
    assert r_sa[0]["ssrc"] == 0x1234 and r_sa[1]["ssrc"] == 77
    assert i_sa[1]["ssrc"] == (77 if expects else 0)


def test_keys_hidden_without_show_keys(pki: dict[str, str]) -> None:
    offer = mikey("offer", *creds("psk", "i", pki)).stdout.strip()
    out = json.loads(mikey("answer", *creds("psk", "r", pki), offer).stdout)
    assert "master_key" not in out["data_sa"][0] and "master_salt" not in out["data_sa"][0]


def test_refusals_exit_2_with_json(pki: dict[str, str]) -> None:
    offer = mikey("offer", *creds("psk", "i", pki), "--v").stdout.strip()
    wrong = [a if a != PSK_HEX else "ff" * 16 for a in creds("psk", "r", pki)]
    err = json.loads(mikey("answer", *wrong, offer, check_rc=2).stdout)
    assert (err["error"], err["error_no"]) == ("AUTH_FAILURE", 0)
    late = [*creds("psk", "r", pki), "--now", str(NOW + 3600)]
    err = json.loads(mikey("answer", *late, offer, check_rc=2).stdout)
    assert (err["error"], err["error_no"]) == ("INVALID_TS", 1)
    assert err["answer"]  # the ERR message to send back
    decoded = mikey("decode", err["answer"]).stdout
    assert "ERROR" in decoded or "ERR" in decoded


def test_finish_refuses_tampered_answer(pki: dict[str, str], tmp_path: Path) -> None:
    state = tmp_path / "s.json"
    offer = mikey("offer", *creds("psk", "i", pki), "--v", "--state", str(state)).stdout.strip()
    answer = json.loads(mikey("answer", *creds("psk", "r", pki), offer).stdout)["answer"]
    raw = bytearray(base64.b64decode(answer))
    raw[-1] ^= 1
    tampered = raw.hex()
    err = json.loads(
        mikey("finish", "--state", str(state), "--now", str(NOW), tampered, check_rc=2).stdout
    )
    assert err["error_no"] == 0 and err["answer"] is None


def test_derive_matches_spec() -> None:
    """docs/WIRE.md §PRF vectors and the worked exchange's TEK/SALT."""
    base = ["derive", "--csb-id", "12345678", "--rand", SPEC_RAND]
    out = mikey(*base, "--inkey", PSK_HEX, "--const", "tek", "--cs-id", "1", "--length", "30")
    assert out.stdout.strip() == "666cdfdde4f6b6ee17b4317e0d0ea07fda6c6103d421f3d87ac6b10209dc"
    out = mikey(*base, "--inkey", PSK_HEX, "--const", "0x2AD01C64", "--cs-id", "1", "--length", "16",
                "--prf", "hmac-sha-256")  # fmt: skip
    assert out.stdout.strip() == "f43abf38339a8efce857b17c031ae0ff"
    tgk = "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
    tek = mikey(*base, "--inkey", tgk, "--const", "tek", "--cs-id", "1", "--length", "16")
    assert tek.stdout.strip() == "1b3c86914d2e99652f57470a969a845a"
    salt = mikey(*base, "--inkey", tgk, "--const", "salt", "--cs-id", "1", "--length", "14")
    assert salt.stdout.strip() == "d4d883ced237bdca4ec8eb8235b1"
    psk = "0f0e0d0c0b0a09080706050403020100"
    encr = mikey(*base, "--inkey", psk, "--const", "0x150533E1", "--cs-id", "255", "--length", "16")
    assert encr.stdout.strip() == "cf92480f7279c5e74c74cfe909bd00f2"
    bad = mikey(*base, "--inkey", "zz", "--const", "tek", "--length", "16", check_rc=2)
    assert "hex" in bad.stderr
