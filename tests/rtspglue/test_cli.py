"""``mikey rtsp serve`` / ``mikey rtsp play`` as real processes (bounded by timeout, killed by PID).

Oracles: the tone frequency in the WAV that ``play`` writes, exit statuses, the JSON summaries
(GSA audits of both processes) and the 463 the server answers to a client with the wrong key.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from rtspglue.media import dominant_frequency, read_wav
from tests.mikey import certs

PSK = "000102030405060708090a0b0c0d0e0f"
MIKEY = [sys.executable, "-m", "mikey_cli"]


@contextmanager
def serve(*flags: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    # --foreground: timeout must forward our signal to the server once, not to its group too.
    cmd = [
        "timeout",
        "--foreground",
        "60",
        *MIKEY,
        "rtsp",
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--freq",
        "700",
    ]
    proc = subprocess.Popen([*cmd, *flags], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("READY rtsp://127.0.0.1:"), line
        yield line.split()[1], proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def play(url: str, *flags: str) -> tuple[int, dict[str, object]]:
    cmd = ["timeout", "30", *MIKEY, "rtsp", "play", url, "--duration", "1", *flags]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    return done.returncode, json.loads(lines[-1])


def _finish(proc: subprocess.Popen[str]) -> dict[str, object]:
    assert proc.stdout is not None
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    summary: dict[str, object] = json.loads(out.strip().splitlines()[-1])
    return summary


def test_psk_play_writes_the_decrypted_tone(tmp_path: Path) -> None:
    wav = tmp_path / "out.wav"
    with serve("--psk", PSK, "--once") as (url, proc):
        status, summary = play(url, "--psk", PSK, "--out", str(wav))
        server_summary = _finish(proc)
    assert status == 0, summary
    assert summary["keys_from"] == "server" and summary["torn_down"] == "teardown"
    assert summary["decrypted"] == summary["packets_received"] and summary["rejected"] == 0
    assert summary["audit"] == {"live_gsas": 0, "live_contexts": 0, "unwiped_buffers": 0}
    samples = read_wav(wav)
    assert len(samples) >= 4000
    assert dominant_frequency(samples[-4000:]) == pytest.approx(700, abs=2)
    assert server_summary == {
        "audit": {"live_gsas": 0, "live_contexts": 0, "unwiped_buffers": 0},
        "refused": 0,
    }


def _pem_files(tmp_path: Path) -> dict[str, str]:
    ca = certs.ca()
    out = {"ca": tmp_path / "ca.pem"}
    out["ca"].write_bytes(ca.cert_pem())
    for name in ("alice", "bob"):
        leaf = certs.leaf(name, san_uri=f"sip:{name}@example.com")
        (tmp_path / f"{name}.pem").write_bytes(leaf.cert_pem())
        (tmp_path / f"{name}.key").write_bytes(leaf.key_pem())
    return {k: str(v) for k, v in out.items()} | {
        n: str(tmp_path / n) for n in ("alice.pem", "alice.key", "bob.pem", "bob.key")
    }


@pytest.mark.parametrize(
    ("mode", "client_keys"), [("dh", True), ("rsa-r", False)], ids=["dh-client", "rsa-r-server"]
)
def test_certificate_modes(tmp_path: Path, mode: str, client_keys: bool) -> None:
    f = _pem_files(tmp_path)
    server = ["--mode", mode, "--cert", f["bob.pem"], "--key", f["bob.key"], "--ca", f["ca"]]
    server += ["--identity", "sip:bob@example.com", "--once"]
    client = ["--mode", mode, "--cert", f["alice.pem"], "--key", f["alice.key"], "--ca", f["ca"]]
    client += ["--identity", "sip:alice@example.com"]
    if client_keys:
        client.append("--client-keys")
        server.append("--no-server-keys")
    with serve(*server) as (url, proc):
        status, summary = play(url, *client)
        _finish(proc)
    assert status == 0, summary
    assert summary["keys_from"] == ("client" if client_keys else "server")
    assert summary["frequency"] == pytest.approx(700, abs=2)


def test_wrong_key_gets_463_and_nothing_decrypts() -> None:
    with serve("--psk", PSK, "--no-server-keys") as (url, proc):
        status, summary = play(url, "--psk", "ff" * 16, "--client-keys")
        assert status == 1
        assert summary["status"] == 463 and summary["decrypted"] == 0
        assert summary["audit"] == {"live_gsas": 0, "live_contexts": 0, "unwiped_buffers": 0}
        proc.send_signal(signal.SIGTERM)
        server_summary = _finish(proc)
    assert server_summary["refused"] == 1


def test_client_refuses_server_keys_it_cannot_verify() -> None:
    with serve("--psk", PSK) as (url, proc):
        status, summary = play(url, "--psk", "ff" * 16)
        proc.send_signal(signal.SIGINT)
        _finish(proc)
    assert status == 1 and summary["decrypted"] == 0 and summary["torn_down"] is None


def test_bad_flags_exit_2() -> None:
    cmd = ["timeout", "30", *MIKEY, "rtsp", "serve", "--bind", "nowhere", "--psk", PSK]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--bind" in done.stderr
    cmd = ["timeout", "30", *MIKEY, "rtsp", "play", "rtsp://127.0.0.1:1/x", "--psk", "zz"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--psk" in done.stderr


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "refused"])
def test_require_identity(tmp_path: Path, allowed: bool) -> None:
    f = _pem_files(tmp_path)
    who = "sip:alice@example.com" if allowed else "sip:carol@example.com"
    server = ["--mode", "dh", "--cert", f["bob.pem"], "--key", f["bob.key"], "--ca", f["ca"]]
    server += ["--identity", "sip:bob@example.com", "--no-server-keys"]
    server += ["--require-identity", f"/tone={who}"]
    client = ["--mode", "dh", "--cert", f["alice.pem"], "--key", f["alice.key"], "--ca", f["ca"]]
    client += ["--identity", "sip:alice@example.com", "--client-keys"]
    with serve(*server) as (url, proc):
        status, summary = play(url, *client)
        proc.send_signal(signal.SIGTERM)
        server_summary = _finish(proc)
    if allowed:
        assert status == 0, summary
        assert summary["frequency"] == pytest.approx(700, abs=2)
        assert server_summary["refused"] == 0
    else:
        assert status == 1 and summary["status"] == 463 and summary["decrypted"] == 0
        assert server_summary["refused"] == 1
    assert server_summary["audit"] == {"live_gsas": 0, "live_contexts": 0, "unwiped_buffers": 0}


def test_require_identity_flag_must_be_path_equals_uri() -> None:
    cmd = ["timeout", "30", *MIKEY, "rtsp", "serve", "--psk", PSK, "--require-identity", "/tone"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "--require-identity" in done.stderr


def test_play_refusals_name_their_cause() -> None:
    """A wrong PSK, a missing PSK and a refusal by the server each say why in ``detail``; the
    server's refusal says no more than 463 (it gives the client no oracle)."""
    wrong = "ff" + PSK[2:]
    with serve("--psk", PSK) as (url, _):
        rc, summary = play(url, "--psk", wrong)
        assert rc == 1 and summary["status"] == -1
        assert str(summary["detail"]).startswith("authentication failed")
        rc, summary = play(url)
        assert rc == 1 and "no pre-shared key" in str(summary["detail"])
        rc, summary = play(url, "--psk", wrong, "--client-keys")
        assert rc == 1 and summary["status"] == 463 and "463" in str(summary["detail"])
        for refused in (summary,):
            assert PSK not in json.dumps(refused) and wrong not in json.dumps(refused)
