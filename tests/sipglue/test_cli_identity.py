"""``mikey sip listen`` / ``mikey sip call`` with identities, as real subprocesses.

Self-signed certificates made by ``openssl req -x509`` (each side pins the other's with ``--ca``)
and no identity flags: each party is its certificate's SAN URI, the caller's From carries it, and
the caller expects the callee to be the target's AOR. Oracles: exit codes, the JSON summaries of
both processes (decrypted SRTP, Warning text, detail) and the listener's refusal events.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import pytest

from mikey.keying import Mode
from mikey.pki import TrustStore, load_certificates
from sipglue.keying import IDENTITY_WARNING
from tests.mikey import certs

from .test_cli import MIKEY, Listener, call, free_port, listeners
from .test_identity import MALLORY, impostor_ua

__all__ = ["listeners"]  # the fixture, re-exported for pytest

ALICE = "sip:alice@example.com"
BOB_HERE = "sip:bob@127.0.0.1"  # what calling sip:bob@127.0.0.1:PORT expects
BOB_ELSEWHERE = "sip:bob@example.com"


def openssl_self_signed(directory: Path, name: str, san: str) -> tuple[str, str]:
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(
        ["timeout", "60", "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=URI:{san}", "-days", "30"],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(cert), str(key)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, str]]:
    d = tmp_path_factory.mktemp("selfsigned")
    return {
        "alice": openssl_self_signed(d, "alice", ALICE),
        "bob": openssl_self_signed(d, "bob", BOB_HERE),
        "bob-elsewhere": openssl_self_signed(d, "bob-elsewhere", BOB_ELSEWHERE),
    }


def side(pems: dict[str, tuple[str, str]], who: str, peer: str, mode: str) -> list[str]:
    cert, key = pems[who]
    out = ["--mode", mode, "--cert", cert, "--key", key, "--ca", pems[peer][0]]
    if mode == "pk" and who == "alice":
        out += ["--peer-cert", pems[peer][0]]
    return out


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["dh", "pk", "rsa-r"])
def test_self_signed_pair_just_works(
    listeners: list[Listener], pems: dict[str, tuple[str, str]], mode: str
) -> None:
    port = free_port()
    lst = Listener(*side(pems, "bob", "alice", mode), "--once", port=port)
    listeners.append(lst)
    rc, summary, err = call(
        f"sip:bob@127.0.0.1:{port}", *side(pems, "alice", "bob", mode),
        "--duration", "1", "--expect-media",
    )  # fmt: skip
    assert rc == 0, (summary, err)
    assert summary["identity"] == ALICE and summary["peer_identity"] == BOB_HERE
    assert summary["keyed"] and summary["torn_down"] and summary["mode"] == mode
    assert isinstance(summary["decrypted"], int) and summary["decrypted"] > 0
    assert summary["live_gsas"] == 0 and "warning" not in summary
    lrc, events = lst.finish(terminate=False)
    assert lrc == 0, events
    (served,) = [e for e in events if e["event"] == "call"]
    assert served["keyed"] and served["torn_down"]
    assert isinstance(served["decrypted"], int) and served["decrypted"] > 0
    assert "Traceback" not in err


@pytest.mark.timeout(120)
def test_callee_named_otherwise_needs_peer_identity(
    listeners: list[Listener], pems: dict[str, tuple[str, str]]
) -> None:
    """bob's certificate says sip:bob@example.com; calling him by IP address is refused by bob
    (IDr is not his) and the caller's summary says why; --peer-identity makes it work."""
    port = free_port()
    lst = Listener(*side(pems, "bob-elsewhere", "alice", "dh"), "--once", port=port)
    listeners.append(lst)
    caller = side(pems, "alice", "bob-elsewhere", "dh")
    rc, summary, err = call(f"sip:bob@127.0.0.1:{port}", *caller, "--timeout", "10")
    assert rc == 1 and summary["keyed"] is False and summary["status"] == 488
    assert summary["warning"] == IDENTITY_WARNING
    detail = summary["detail"]
    assert isinstance(detail, str) and BOB_HERE in detail and "--peer-identity" in detail
    assert summary["live_gsas"] == 0 and "Traceback" not in err
    rc, summary, err = call(
        f"sip:bob@127.0.0.1:{port}", *caller, "--peer-identity", BOB_ELSEWHERE,
        "--duration", "1", "--expect-media",
    )  # fmt: skip
    assert rc == 0, (summary, err)
    assert summary["peer_identity"] == BOB_ELSEWHERE
    lrc, events = lst.finish(terminate=False)
    (refused,) = [e for e in events if e["event"] == "refused"]
    assert refused["status"] == 488 and refused["warning"] == IDENTITY_WARNING
    assert isinstance(refused["detail"], str) and BOB_HERE in refused["detail"]  # local only
    (stopped,) = [e for e in events if e["event"] == "stopped"]
    assert lrc == 0 and stopped["live_gsas"] == 0 and stopped["refused"] == 1


@pytest.mark.timeout(60)
async def test_caller_refusing_an_impostor_names_the_cause(
    pems: dict[str, tuple[str, str]], tmp_path: Path
) -> None:
    """The callee at sip:bob@127.0.0.1 answers with mallory's valid certificate: the caller's
    summary carries a one-sentence detail naming both identities, and no keys survive."""
    cert, key = pems["alice"]
    pinned = load_certificates(Path(cert).read_bytes())  # the impostor checks alice's signature
    ua, impostor = await impostor_ua(Mode.DH, trust_store=TrustStore([certs.ca().cert, *pinned]))
    ca = tmp_path / "ca.pem"
    ca.write_bytes(certs.ca().cert_pem())
    proc = await asyncio.create_subprocess_exec(
        "timeout", "60", *MIKEY, "sip", "call", f"sip:bob@127.0.0.1:{ua.port}", "--mode", "dh",
        "--cert", cert, "--key", key, "--ca", str(ca), "--timeout", "10",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 50)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await ua.close()
    summary = json.loads(out.decode().splitlines()[-1])
    assert proc.returncode == 1 and summary["keyed"] is False
    detail = summary["detail"]
    assert isinstance(detail, str) and MALLORY in detail and BOB_HERE in detail
    assert summary["live_gsas"] == 0 and summary["unwiped_buffers"] == 0
    assert b"Traceback" not in err
    assert impostor.registry.audit().live_gsas == 0  # the caller BYEd the impostor's call


def test_identity_must_be_a_sip_uri_and_the_certificates(pems: dict[str, tuple[str, str]]) -> None:
    cert, key = pems["alice"]
    rc, _, err = call("sip:bob@127.0.0.1:9", "--identity", "alice@example.com", "--psk", "00" * 16)
    assert rc == 2 and "sip: or sips:" in err
    rc, _, err = call(
        "sip:bob@127.0.0.1:9", "--mode", "dh", "--cert", cert, "--key", key,
        "--identity", "sip:carol@example.com",
    )  # fmt: skip
    assert rc == 2 and "SAN" in err and "Traceback" not in err


def test_pk_offer_to_a_certificate_naming_another_callee(pems: dict[str, tuple[str, str]]) -> None:
    """PK encrypts to --peer-cert: it must be the callee's (the target's AOR), or no offer is made
    and the summary's detail says which identities disagreed."""
    rc, summary, err = call(
        "sip:bob@127.0.0.1:9", *side(pems, "alice", "bob-elsewhere", "pk"), "--timeout", "5"
    )
    assert rc == 1 and summary["keyed"] is False and "Traceback" not in err
    detail = summary["detail"]
    assert isinstance(detail, str) and BOB_ELSEWHERE in detail and BOB_HERE in detail
    assert summary["live_gsas"] == 0
