"""``mikey sip listen`` / ``mikey sip call`` as subprocesses: real UDP/TCP, real SRTP audio.

Oracles: the other process (its decrypted packet counts and GSA teardown), and tshark reading the
``--pcap`` file (SIP, MIKEY I/R messages, RTP of both SSRCs).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.peers import require_peer
from tests.mikey import certs

MIKEY = [sys.executable, "-m", "mikey_cli"]
PSK = "000102030405060708090a0b0c0d0e0f"
ALICE = "sip:alice@example.com"
BOB = "sip:bob@example.com"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Listener:
    """``mikey sip listen`` in the background, bounded by ``timeout``, stopped by its PID."""

    def __init__(self, *args: str, port: int, transport: str = "udp") -> None:
        cmd = [
            "timeout",
            "60",
            *MIKEY,
            "sip",
            "listen",
            "--bind",
            f"127.0.0.1:{port}",
            "--transport",
            transport,
            *args,
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert json.loads(first)["event"] == "listening", first + self.stderr()
        self.port = port

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""

    def finish(self, *, terminate: bool = True) -> tuple[int, list[dict[str, object]]]:
        if terminate and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        out, err = self.proc.communicate(timeout=30)
        events = [json.loads(line) for line in out.splitlines() if line.strip()]
        assert events, err
        return self.proc.returncode, events


@pytest.fixture
def listeners() -> Iterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    for lst in made:
        if lst.proc.poll() is None:
            os.kill(lst.proc.pid, signal.SIGKILL)
            lst.proc.wait(10)


def call(*args: str) -> tuple[int, dict[str, object], str]:
    r = subprocess.run(
        ["timeout", "60", *MIKEY, "sip", "call", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    summary = json.loads(lines[-1]) if lines else {}
    return r.returncode, summary, r.stderr


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("pki")
    files: dict[str, str] = {}
    alice = certs.leaf("alice", san_uri=ALICE)
    bob = certs.leaf("bob", san_uri=BOB)
    for name, data in (
        ("ca", certs.ca().cert_pem()),
        ("alice.crt", alice.cert_pem()),
        ("alice.key", alice.key_pem()),
        ("bob.crt", bob.cert_pem()),
        ("bob.key", bob.key_pem()),
    ):
        path = d / name
        path.write_bytes(data)
        files[name] = str(path)
    return files


def creds(pki: dict[str, str], who: str, mode: str) -> list[str]:
    peer = "bob" if who == "alice" else "alice"
    out = [
        "--mode",
        mode,
        "--cert",
        pki[f"{who}.crt"],
        "--key",
        pki[f"{who}.key"],
        "--ca",
        pki["ca"],
        "--identity",
        ALICE if who == "alice" else BOB,
    ]
    if who == "alice":
        out += ["--peer-identity", BOB]
        if mode == "pk":
            out += ["--peer-cert", pki["bob.crt"]]
    del peer
    return out


def assert_good_call(summary: dict[str, object], rc: int, err: str) -> None:
    assert rc == 0, (summary, err)
    assert summary["keyed"] and summary["established"] and summary["torn_down"]
    assert summary["live_gsas"] == 0 and summary["unwiped_buffers"] == 0
    assert isinstance(summary["decrypted"], int) and summary["decrypted"] > 0
    assert summary["auth_failures"] == 0


@pytest.mark.timeout(90)
def test_psk_v_call_with_media_and_pcap(listeners: list[Listener], tmp_path: Path) -> None:
    tshark = require_peer("tshark")
    port = free_port()
    lst = Listener("--psk", PSK, "--v", "--once", port=port)
    listeners.append(lst)
    pcap = tmp_path / "call.pcap"
    rc, summary, err = call(
        f"sip:bob@127.0.0.1:{port}",
        "--psk",
        PSK,
        "--v",
        "--duration",
        "1.5",
        "--expect-media",
        "--pcap",
        str(pcap),
    )
    assert_good_call(summary, rc, err)
    lrc, events = lst.finish(terminate=False)
    (served,) = [e for e in events if e["event"] == "call"]
    assert lrc == 0 and served["keyed"] and served["torn_down"]
    assert served["reason"] == "REMOTE_BYE"
    assert isinstance(served["decrypted"], int) and served["decrypted"] > 0
    assert served["csb_id"] == summary["csb_id"]
    # tshark: SIP, the MIKEY PSK init (0) and response (1) at session level, RTP both ways
    r = subprocess.run(
        ["timeout", "60", tshark, "-r", str(pcap), "-T", "fields", "-e", "frame.protocols",
         "-e", "mikey.type", "-e", "rtp.ssrc"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert sum(1 for p, *_ in rows if ":sip" in p) >= 5  # INVITE 200 ACK BYE 200
    assert {row[1] for row in rows if row[1]} >= {"0", "1"}
    ssrcs = {row[2] for row in rows if len(row) > 2 and row[2]}
    assert len(ssrcs) == 2
    assert "_ws.malformed" not in r.stdout


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["dh", "pk"])
def test_certificate_modes_over_tcp(
    listeners: list[Listener], pki: dict[str, str], mode: str
) -> None:
    port = free_port(socket.SOCK_STREAM)
    lst = Listener(*creds(pki, "bob", mode), "--once", port=port, transport="tcp")
    listeners.append(lst)
    rc, summary, err = call(
        f"sip:bob@127.0.0.1:{port};transport=tcp",
        *creds(pki, "alice", mode),
        "--duration",
        "1",
        "--expect-media",
    )
    assert_good_call(summary, rc, err)
    assert summary["mode"] == mode
    lrc, events = lst.finish(terminate=False)
    assert lrc == 0, events


@pytest.mark.timeout(90)
def test_rekey_during_call(listeners: list[Listener]) -> None:
    port = free_port()
    lst = Listener("--psk", PSK, "--v", "--once", port=port)
    listeners.append(lst)
    rc, summary, err = call(
        f"sip:bob@127.0.0.1:{port}", "--psk", PSK, "--v", "--duration", "0.8", "--rekey",
        "--expect-media",
    )  # fmt: skip
    assert_good_call(summary, rc, err)
    assert summary["rekeyed"] is True
    lrc, events = lst.finish(terminate=False)
    (served,) = [e for e in events if e["event"] == "call"]
    assert lrc == 0
    assert served["rekeys"] == 1 and served["auth_failures"] == 0


@pytest.mark.timeout(90)
def test_wrong_psk_refused(listeners: list[Listener]) -> None:
    port = free_port()
    lst = Listener("--psk", PSK, "--v", port=port)
    listeners.append(lst)
    rc, summary, _ = call(f"sip:bob@127.0.0.1:{port}", "--psk", "ff" * 16, "--v")
    assert rc == 1
    assert summary["keyed"] is False and summary["status"] == 488
    assert summary["live_gsas"] == 0
    lrc, events = lst.finish()
    (refused,) = [e for e in events if e["event"] == "refused"]
    assert refused["status"] == 488 and refused["warning"] == "MIKEY: AUTH_FAILURE"
    (stopped,) = [e for e in events if e["event"] == "stopped"]
    assert stopped["live_gsas"] == 0 and stopped["calls"] == 0 and stopped["refused"] == 1
    assert lrc == 0


def test_bad_arguments_exit_2() -> None:
    rc, _, err = call("sip:bob@127.0.0.1:5070", "--bind", "nonsense")
    assert rc == 2 and "--bind" in err
    rc, _, err = call("sip:bob@127.0.0.1:5070", "--psk", "zz")
    assert rc == 2 and "hex" in err
    rc, summary, _ = call("sip:bob@127.0.0.1:9", "--psk", PSK, "--timeout", "3")
    assert rc == 1 and summary["keyed"] is False


@pytest.mark.timeout(90)
def test_sample_softphone_call_and_answer(tmp_path: Path) -> None:
    """samples/softphone.py both ways: each side records the other's 440 Hz tone."""
    from rtspglue.media import dominant_frequency, read_wav

    port = free_port()
    sample = [sys.executable, "-m", "samples.softphone"]
    answer = subprocess.Popen(
        ["timeout", "60", *sample, "answer", "--port", str(port), "--psk", PSK,
         "--seconds", "5", "--record", str(tmp_path / "b.wav")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert answer.stdout is not None
        assert answer.stdout.readline().startswith("answering on sip:")
        r = subprocess.run(
            ["timeout", "60", *sample, "call", f"sip:bob@127.0.0.1:{port}", "--psk", PSK,
             "--seconds", "1.5", "--record", str(tmp_path / "a.wav")],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "live_gsas=0" in r.stdout and "unwiped_buffers=0" in r.stdout
        line = answer.stdout.readline()  # the answerer's per-call line, after the BYE
        assert "SRTP packets decrypted" in line
    finally:
        os.kill(answer.pid, signal.SIGINT)
        answer.communicate(timeout=20)
    for name in ("a.wav", "b.wav"):
        samples = read_wav(tmp_path / name)
        assert len(samples) > 4000
        assert abs(dominant_frequency(samples[800:]) - 440) <= 3
