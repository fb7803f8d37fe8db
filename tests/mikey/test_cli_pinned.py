"""Self-signed endpoint certificates made by ``openssl req -x509``, pinned by the peer with
``--ca``, through ``mikey offer/answer/finish`` as real subprocesses.

Oracles: the other side's keys, and openssl's own certificates (cA asserted, as it makes them),
which no chain validation accepts as end entities. Every refusal's ``detail`` names its cause.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from .test_cli_exchange import mikey

ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"


def _openssl_self_signed(d: Path, name: str, san: str | None) -> tuple[str, str]:
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    cmd = [
        "timeout", "60", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
        "-keyout", str(key), "-out", str(crt), "-days", "30", "-subj", f"/CN={name}",
    ]  # fmt: skip
    if san is not None:
        cmd += ["-addext", f"subjectAltName={san}"]
    subprocess.run(cmd, check=True, capture_output=True)
    return str(crt), str(key)


@pytest.fixture(scope="module")
def selfsigned(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("selfsigned")
    return {
        "alice": _openssl_self_signed(d, "alice", f"URI:{ALICE}"),
        "bob": _openssl_self_signed(d, "bob", f"URI:{BOB}"),
        "mallory": _openssl_self_signed(d, "mallory", "URI:sip:mallory@example.com"),
        "tls": _openssl_self_signed(d, "tls", "DNS:www.example.com"),
    }


def _side(mode: str, me: str, peer: str, pins: str, pki: dict[str, tuple[str, str]]) -> list[str]:
    crt, key = pki[me]
    args = ["--mode", mode, "--cert", crt, "--key", key, "--ca", pins]
    if mode == "pk" and me == "alice":
        args += ["--peer-cert", pki[peer][0]]
    return args


def _exchange(
    mode: str, i_args: list[str], r_args: list[str], tmp: Path, *, answer_rc: int = 0
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    state = tmp / f"state-{mode}.json"
    offer = mikey("offer", *i_args, "--state", str(state), "--ssrc", "0x1234,0").stdout.strip()
    answered: dict[str, Any] = json.loads(
        mikey("answer", *r_args, "--ssrc", "77", "--show-keys", offer, check_rc=answer_rc).stdout
    )
    if answer_rc:
        return answered, None
    fin = mikey("finish", "--state", str(state), "--show-keys", answered["answer"] or "")
    return answered, json.loads(fin.stdout)


@pytest.mark.parametrize("mode", ["pk", "dh", "rsa-r"])
def test_pinned_self_signed_pair(
    mode: str, selfsigned: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    """No --identity on either side: each takes its certificate's SAN URI; each pins the
    other's certificate; the keys agree and the peer expected by the initiator is checked."""
    i_args = [
        *_side(mode, "alice", "bob", selfsigned["bob"][0], selfsigned),
        "--peer-identity",
        BOB,
    ]
    r_args = _side(mode, "bob", "alice", selfsigned["alice"][0], selfsigned)
    answered, finished = _exchange(mode, [*i_args], [*r_args, "--peer-identity", ALICE], tmp_path)
    assert finished is not None
    for r, i in zip(answered["data_sa"], finished["data_sa"], strict=True):
        assert (r["master_key"], r["master_salt"]) == (i["master_key"], i["master_salt"])


@pytest.mark.parametrize("mode", ["pk", "dh", "rsa-r"])
def test_self_signed_refusals_say_why(
    mode: str, selfsigned: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    i_args = _side(mode, "alice", "bob", selfsigned["bob"][0], selfsigned)
    # bob trusts mallory's certificate only: alice's is neither pinned nor a CA's end entity
    r_args = _side(mode, "bob", "alice", selfsigned["mallory"][0], selfsigned)
    err, _ = _exchange(mode, i_args, r_args, tmp_path, answer_rc=2)
    assert err["error"] == "INVALID_CERT"
    assert "certificate chain rejected" in err["detail"], err["detail"]
    assert "basicConstraints" in err["detail"] and "pinned" in err["detail"]
    # bob pins alice but the signalling says the call comes from mallory
    r_args = _side(mode, "bob", "alice", selfsigned["alice"][0], selfsigned)
    err, _ = _exchange(
        mode, i_args, [*r_args, "--peer-identity", "sip:mallory@example.com"], tmp_path,
        answer_rc=2,
    )  # fmt: skip
    assert err["error"] == "INVALID_ID"
    assert ALICE in err["detail"] and "sip:mallory@example.com" in err["detail"], err["detail"]


def test_sanless_self_signed_certificate_needs_a_mapping(
    selfsigned: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    """A pinned certificate without a SAN URI (a TLS server's) asserts no identity unless
    its fingerprint is mapped with --cert-identity."""
    crt, key = selfsigned["tls"]
    i_args = ["--mode", "dh", "--cert", crt, "--key", key, "--ca", selfsigned["bob"][0],
              "--identity", ALICE]  # fmt: skip
    r_args = _side("dh", "bob", "alice", crt, selfsigned)
    err, _ = _exchange("dh", i_args, r_args, tmp_path, answer_rc=2)
    assert err["error"] == "INVALID_CERT" and "SAN URI" in err["detail"], err["detail"]
    fp = subprocess.run(
        ["timeout", "30", "openssl", "x509", "-in", crt, "-noout", "-fingerprint", "-sha256"],
        check=True, capture_output=True, text=True,
    ).stdout.strip().partition("=")[2]  # fmt: skip
    mapped = [*r_args, "--cert-identity", f"{fp}={ALICE}"]
    answered, finished = _exchange("dh", i_args, mapped, tmp_path)
    assert finished is not None and answered["answer"]


def test_timestamp_detail_names_the_skew(selfsigned: dict[str, tuple[str, str]]) -> None:
    i_args = _side("dh", "alice", "bob", selfsigned["bob"][0], selfsigned)
    r_args = _side("dh", "bob", "alice", selfsigned["alice"][0], selfsigned)
    offer = mikey("offer", *i_args).stdout.strip()
    late = [*r_args, "--now", str(time.time() + 3612)]
    err = json.loads(mikey("answer", *late, offer, check_rc=2).stdout)
    assert err["error"] == "INVALID_TS"
    assert "older than the allowed skew of 300 s" in err["detail"]
    assert "--now" in err["detail"] and "--skew" in err["detail"]
