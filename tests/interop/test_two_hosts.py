"""Identities and keys between two hosts: two network namespaces made here, joined by a veth
pair with documentation addresses (192.0.2.1 and 192.0.2.2), torn down afterwards.

Real processes on each side (``mikey sip listen/call``, ``mikey rtsp serve/play``), each bounded
by ``timeout``. Oracles: the other side's decrypted media, the identities each side reports, and
the refusal of a callee whose certificate names another party.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .peers import missing_peer

A, B = "192.0.2.1", "192.0.2.2"
PSK = "000102030405060708090a0b0c0d0e0f"
MIKEY = [sys.executable, "-m", "mikey_cli"]


def _run(*cmd: str) -> None:
    subprocess.run(["timeout", "20", *cmd], check=True, capture_output=True)


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[tuple[str, str]]:
    if os.geteuid() != 0 or shutil.which("ip") is None:
        missing_peer("network namespaces need root and iproute2")
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b, va, vb = f"mka{tag}", f"mkb{tag}", f"mkva{tag}", f"mkvb{tag}"
    _run("ip", "netns", "add", ns_a)
    _run("ip", "netns", "add", ns_b)
    try:
        _run("ip", "link", "add", va, "type", "veth", "peer", "name", vb)
        _run("ip", "link", "set", va, "netns", ns_a)
        _run("ip", "link", "set", vb, "netns", ns_b)
        for ns, dev, addr in ((ns_a, va, A), (ns_b, vb, B)):
            _run("ip", "-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["timeout", "20", "ip", "netns", "del", ns], check=False)


def _self_signed(d: Path, name: str, uri: str) -> tuple[str, str]:
    key, crt = d / f"{name}.key", d / f"{name}.pem"
    _run(
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
        "-out", str(crt), "-days", "30", "-subj", f"/CN={name}",
        "-addext", f"subjectAltName=URI:{uri}",
    )  # fmt: skip
    return str(crt), str(key)


def _in(ns: str, *args: str) -> list[str]:
    return ["timeout", "--foreground", "40", "ip", "netns", "exec", ns, *MIKEY, *args]


def _last_json(text: str) -> dict[str, object]:
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    assert lines, text
    out: dict[str, object] = json.loads(lines[-1])
    return out


def _sip_pair(
    two_hosts: tuple[str, str], callee: tuple[str, str], caller: tuple[str, str], ca_b: str,
    ca_a: str,
) -> tuple[int, dict[str, object], str]:  # fmt: skip
    ns_a, ns_b = two_hosts
    listener = subprocess.Popen(
        _in(ns_b, "sip", "listen", "--bind", f"{B}:5078", "--once", "--mode", "dh",
            "--cert", callee[0], "--key", callee[1], "--ca", ca_b),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert listener.stdout is not None
        assert '"listening"' in listener.stdout.readline()
        call = subprocess.run(
            _in(ns_a, "sip", "call", f"sip:bob@{B}:5078", "--bind", f"{A}:0", "--mode", "dh",
                "--cert", caller[0], "--key", caller[1], "--ca", ca_a, "--duration", "1",
                "--expect-media", "--timeout", "10"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        return call.returncode, _last_json(call.stdout), call.stderr
    finally:
        listener.terminate()
        try:
            listener.wait(10)
        except subprocess.TimeoutExpired:
            listener.kill()
            listener.wait()


def test_sip_call_between_two_hosts_with_pinned_certificates(
    two_hosts: tuple[str, str], tmp_path: Path
) -> None:
    """alice on 192.0.2.1 calls sip:bob@192.0.2.2 (DH, each pinning the other's openssl
    certificate, no identity flags): keyed, media decrypted both ways, identities as bound."""
    alice = _self_signed(tmp_path, "alice", "sip:alice@example.com")
    bob = _self_signed(tmp_path, "bob", f"sip:bob@{B}")
    rc, summary, err = _sip_pair(two_hosts, bob, alice, ca_b=alice[0], ca_a=bob[0])
    assert rc == 0, (summary, err)
    assert summary["identity"] == "sip:alice@example.com"
    assert summary["peer_identity"] == f"sip:bob@{B}"
    assert isinstance(summary["decrypted"], int) and summary["decrypted"] > 0
    assert summary["live_gsas"] == 0 and summary["unwiped_buffers"] == 0


def test_callee_with_another_partys_certificate_is_refused_between_hosts(
    two_hosts: tuple[str, str], tmp_path: Path
) -> None:
    """The host at 192.0.2.2 answers with mallory's valid (pinned) certificate: the caller
    refuses, nothing is keyed."""
    alice = _self_signed(tmp_path, "alice", "sip:alice@example.com")
    mallory = _self_signed(tmp_path, "mallory", "sip:mallory@example.com")
    rc, summary, _ = _sip_pair(two_hosts, mallory, alice, ca_b=alice[0], ca_a=mallory[0])
    assert rc != 0 and summary["keyed"] is False
    assert "INVALID_ID" in str(summary.get("warning", "")) + str(summary.get("detail", ""))
    assert summary["live_gsas"] == 0


def test_rtsp_session_between_two_hosts(two_hosts: tuple[str, str]) -> None:
    """Our RTSP server on 192.0.2.2 keys its stream in DESCRIBE (PSK); our client on
    192.0.2.1 plays it over TCP and decrypts the tone; a wrong PSK is refused with its reason."""
    ns_a, ns_b = two_hosts
    server = subprocess.Popen(
        _in(ns_b, "rtsp", "serve", "--bind", f"{B}:8554", "--psk", PSK),
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        assert server.stdout.readline().startswith(f"READY rtsp://{B}:8554/")
        url = f"rtsp://{B}:8554/tone"
        play = subprocess.run(
            _in(ns_a, "rtsp", "play", url, "--psk", PSK, "--transport", "tcp", "--duration", "1"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        summary = _last_json(play.stdout)
        assert play.returncode == 0, (summary, play.stderr)
        assert isinstance(summary["decrypted"], int) and summary["decrypted"] > 0
        assert summary["frequency"] == 440.0
        wrong = subprocess.run(
            _in(ns_a, "rtsp", "play", url, "--psk", "ff" + PSK[2:], "--transport", "tcp"),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        refused = _last_json(wrong.stdout)
        assert wrong.returncode == 1 and str(refused["detail"]).startswith("authentication")
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
