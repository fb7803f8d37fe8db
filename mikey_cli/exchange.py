"""``mikey derive/offer/answer/finish``: the exchanges of :mod:`mikey.exchange` from a shell.

``offer`` builds an I_MESSAGE; with ``--state FILE`` it saves what ``finish`` needs to process
the answer later. The state file (mode 0600) holds the command-line options, the time of the
offer and a 32-byte random seed. The initiator's randomness is a deterministic stream drawn
from that seed, so ``finish`` rebuilds the identical pending initiator by running ``start()``
again: CSB ID, RAND, TGK, envelope key and a DH private exponent are all re-derived from the
seed. The file is therefore as secret as the keys it leads to (and as the PSK it may name);
delete it after ``finish``.

Exit status 2 with a JSON ``{"error", "error_no", "answer"}`` on stdout means the exchange was
refused; ``answer`` is the MIKEY error message to send back, when there is one.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from mikey.crypto import SignHash
from mikey.errors import (
    CertificateError,
    IdentityError,
    MikeyError,
    TimestampError,
    reason,
)
from mikey.exchange import (
    ANY_INITIATOR,
    PROFILE_HELP,
    Endpoint,
    ExchangeCompleted,
    ExchangeConfig,
    Initiator,
    PeerProfile,
    Responder,
    Rng,
    StreamSpec,
    apply_profile,
)
from mikey.identity import IdentityTable, parse_fingerprint
from mikey.keying import DataSaEntry, KeyingResult, Mode
from mikey.pki import Credentials, StaticPskStore, TrustStore, load_certificates
from mikey.prf import KeyConst, prf
from mikey.prf import label as prf_label
from mikey.registry import PrfFunc
from mikey.replay import ReplayGuard, TimestampPolicy

from .common import CliError, mikey_bytes_from_text, read_input

_STATE_VERSION = 1
_SEED_LENGTH = 32
_CONSTS = {
    "tek": KeyConst.TEK,
    "salt": KeyConst.SALT,
    "auth": KeyConst.AUTH,
    "encr": KeyConst.ENCR,
}
_PRFS = {"mikey-1": PrfFunc.MIKEY_1, "hmac-sha-256": PrfFunc.PRF_HMAC_SHA_256}
_MODES = {m.value: m for m in Mode}
# Options saved in the state file and replayed by ``finish`` (credentials by path or value;
# the peer profile and its switches, so finish rebuilds the same configuration).
_SAVED = ("mode", "psk", "cert", "key", "ca", "peer_cert", "identity", "peer_identity",
          "cert_identity", "ssrc", "verify", "skew", "allow_null_kemac", "peer_profile",
          "sign_hash", "no_chash", "prf_compat")  # fmt: skip
_SIGN_HASHES = {
    "sha1": SignHash.SHA_1,
    "sha256": SignHash.SHA_256,
    "sha384": SignHash.SHA_384,
    "sha512": SignHash.SHA_512,
}


class SeededRng:
    """A deterministic byte stream from a seed (SHAKE-256 in counter mode)."""

    __slots__ = ("_counter", "_seed")

    def __init__(self, seed: bytes) -> None:
        self._seed = seed
        self._counter = 0

    def __call__(self, n: int) -> bytes:
        block = hashlib.shake_256(self._seed + self._counter.to_bytes(8, "big")).digest(n)
        self._counter += 1
        return block


def _hex(text: str, what: str) -> bytes:
    t = text.strip()
    if t.lower().startswith("0x"):
        t = t[2:]
    try:
        return bytes.fromhex(t)
    except ValueError:
        raise CliError(f"{what} is not hex") from None


def _int(text: str, what: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise CliError(f"{what} is not an integer") from None


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {what} {path}: {exc.strerror}") from None


def _psk(value: str) -> bytes:
    if value.startswith("@"):
        text = _read(value[1:], "PSK file").decode("ascii", "replace")
        return _hex(text, "PSK file content")
    return _hex(value, "--psk")


# --- derive -------------------------------------------------------------------------------------


def _cmd_derive(args: argparse.Namespace) -> int:
    const_text = args.const.lower()
    const = _CONSTS.get(const_text)
    value = int(const) if const is not None else _int(const_text, "--const")
    if not const_text.startswith("0x") and const is None:
        raise CliError("--const must be tek, salt, auth, encr or 0xHEX")
    inkey = _hex(args.inkey, "--inkey")
    rand = _hex(args.rand, "--rand")
    csb = int.from_bytes(_hex(args.csb_id, "--csb-id"), "big")
    out = prf(inkey, prf_label(value, args.cs_id, csb, rand), args.length, _PRFS[args.prf])
    print(bytes(out).hex())
    return 0


# --- configuration -----------------------------------------------------------------------------


def _config(opts: dict[str, Any]) -> ExchangeConfig:
    mode = _MODES[opts["mode"]]
    kw: dict[str, Any] = {
        "mode": mode,
        "identity": opts.get("identity"),
        "peer_identity": opts.get("peer_identity"),
        "verify": bool(opts.get("verify")),
    }
    if opts.get("psk"):
        kw["psk"] = StaticPskStore({}, default=_psk(opts["psk"]))
    if opts.get("cert") or opts.get("key"):
        if not (opts.get("cert") and opts.get("key")):
            raise CliError("--cert and --key go together")
        try:
            kw["credentials"] = Credentials.from_pem(
                _read(opts["key"], "key"), _read(opts["cert"], "certificate")
            )
        except MikeyError as exc:
            raise CliError(str(exc)) from None
    if opts.get("ca"):
        kw["trust"] = TrustStore.from_pem(_read(opts["ca"], "CA file"))
    if opts.get("peer_cert"):
        certs = load_certificates(_read(opts["peer_cert"], "peer certificate"))
        if not certs:
            raise CliError("--peer-cert holds no certificate")
        kw["peer_certificate"] = certs[0]
    if opts.get("cert_identity"):
        kw["cert_identities"] = _cert_identities(opts["cert_identity"])
    try:
        cfg = apply_profile(ExchangeConfig(**kw), opts.get("peer_profile") or "rfc")
        # The single switches a profile is made of, on top of it (docs/PROFILES.md).
        switches: dict[str, Any] = {}
        if opts.get("allow_null_kemac") or opts.get("allow_null"):  # "allow_null": old state
            switches["allow_null_kemac"] = True
        if opts.get("sign_hash"):
            switches["sign_hash"] = _SIGN_HASHES[opts["sign_hash"]]
        if opts.get("no_chash"):
            switches["send_chash"] = False
        if opts.get("prf_compat") == "minisip":
            switches["minisip_compat"] = True
        if switches:
            cfg = replace(cfg, **switches)
        if cfg.allow_null_kemac and cfg.psk is None and cfg.mode == Mode.PSK:
            # NULL encryption and MAC use no PSK-derived key, but the exchange looks one up: a
            # random one, so a peer that does MAC its KEMAC is refused (authentication failed).
            cfg = replace(cfg, psk=StaticPskStore({}, default=os.urandom(16)))
        return cfg
    except (MikeyError, ValueError) as exc:
        raise CliError(str(exc)) from None


def _endpoint(opts: dict[str, Any], rng: Rng) -> Endpoint:
    """The party the options describe: its configuration and a replay window of ``--skew``."""
    replay = ReplayGuard(TimestampPolicy(skew=float(opts.get("skew") or 300.0)))
    return Endpoint(_config(opts), rng, replay=replay)


def _cert_identities(values: list[str]) -> IdentityTable:
    """``FINGERPRINT=URI`` pairs (SHA-256, hex with or without colons) for SAN-less certs."""
    pairs = []
    for value in values:
        fp, sep, uri = value.partition("=")
        if not sep or not uri:
            raise CliError(f"--cert-identity {value!r} is not FINGERPRINT=URI")
        try:
            pairs.append((parse_fingerprint(fp), uri))
        except MikeyError as exc:
            raise CliError(f"--cert-identity: {exc}") from None
    return tuple(pairs)


def _now(args: argparse.Namespace) -> float:
    return float(args.now) if args.now is not None else time.time()


def _streams(ssrc: str | None) -> tuple[StreamSpec, ...]:
    if not ssrc:
        return (StreamSpec(),)
    return tuple(StreamSpec(_int(s, "--ssrc"), 0, 0) for s in ssrc.split(",") if s.strip())


def data_sa_row(entry: DataSaEntry, show_keys: bool, *, ssrc: object = None) -> dict[str, Any]:
    """One crypto session of a Data SA as JSON (keys only with ``show_keys``); ``ssrc``
    overrides how the SSRC is shown."""
    row: dict[str, Any] = {
        "cs_id": entry.cs_id,
        "ssrc": entry.ssrc if ssrc is None else ssrc,
        "roc": entry.roc,
        "policy": entry.policy.profile_name,
        "mki": None if entry.mki is None else entry.mki.hex(),
    }
    if show_keys:
        row["master_key"] = bytes(entry.master_key).hex()
        row["master_salt"] = bytes(entry.master_salt).hex()
    return row


def _data_sa(result: KeyingResult, show_keys: bool) -> list[dict[str, Any]]:
    return [data_sa_row(e, show_keys) for e in result.data_sa]


def refusal_reason(exc: MikeyError) -> str:
    """One sentence for the local user naming why an exchange was refused.

    The peer never sees this text (it gets the bare RFC 3830 error number); an authentication
    failure still reads the same whatever failed (MAC, signature, decryption, padding).
    """
    text = reason(exc)
    if isinstance(exc, TimestampError) and ("stale" in text or "future" in text):
        return f"{text}; use --now to process it at its own time or --skew to widen the window"
    if isinstance(exc, CertificateError) and "basicConstraints.cA" in text:
        return f"{text}; a self-signed certificate is trusted when given itself with --ca (pinned)"
    if isinstance(exc, CertificateError) and "no trust store" in text:
        return f"{text}; give the CA or the peer's own (pinned) certificate with --ca"
    if isinstance(exc, IdentityError) and "certificate" in text:
        return f"{text}; use --peer-identity for the identity the peer's certificate carries"
    return text


def _refused(exc: MikeyError, answer: bytes | None) -> int:
    print(
        json.dumps(
            {
                "error": exc.error_no.name,
                "error_no": int(exc.error_no),
                "detail": refusal_reason(exc),
                "answer": None if answer is None else base64.b64encode(answer).decode("ascii"),
            }
        )
    )
    return 2


# --- offer / finish -------------------------------------------------------------------------------


def _opts(args: argparse.Namespace) -> dict[str, Any]:
    return {k: getattr(args, k, None) for k in _SAVED}


def _write_state(path: str, state: dict[str, Any]) -> None:
    data = json.dumps(state).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise CliError(f"cannot write state file {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _cmd_offer(args: argparse.Namespace) -> int:
    opts = _opts(args)
    seed = os.urandom(_SEED_LENGTH)
    now = _now(args)
    i_msg = Initiator(_endpoint(opts, SeededRng(seed))).start(now, _streams(args.ssrc))
    if args.state:
        _write_state(
            args.state, {"version": _STATE_VERSION, "opts": opts, "seed": seed.hex(), "now": now}
        )
    print(base64.b64encode(i_msg).decode("ascii"))
    return 0


def _cmd_finish(args: argparse.Namespace) -> int:
    try:
        state = json.loads(_read(args.state, "state file"))
        if state.get("version") != _STATE_VERSION:
            raise CliError("unsupported state file version")
        opts, seed, then = state["opts"], bytes.fromhex(state["seed"]), float(state["now"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise CliError("state file is malformed") from None
    initiator = Initiator(_endpoint(opts, SeededRng(seed)))
    initiator.start(then, _streams(opts.get("ssrc")))
    text = read_input(args.input)
    data = mikey_bytes_from_text(text) if text.strip() else None
    outcome = initiator.finish(data, _now(args))
    if not isinstance(outcome, ExchangeCompleted):
        return _refused(outcome.error, None)
    print(json.dumps({"data_sa": _data_sa(outcome.result, args.show_keys)}))
    return 0


def _cmd_answer(args: argparse.Namespace) -> int:
    data = mikey_bytes_from_text(read_input(args.input))
    local = [s.ssrc for s in _streams(args.ssrc)] if args.ssrc else []
    # As responder, --peer-identity names the initiator the message must come from.
    expected = args.peer_identity if args.peer_identity else ANY_INITIATOR
    reply = Responder(_endpoint(_opts(args), os.urandom)).respond(
        data, _now(args), local_ssrcs=local, expected_initiator=expected
    )
    if not isinstance(reply, ExchangeCompleted):
        return _refused(reply.error, reply.answer)
    answer = None if reply.answer is None else base64.b64encode(reply.answer).decode("ascii")
    print(json.dumps({"answer": answer, "data_sa": _data_sa(reply.result, args.show_keys)}))
    return 0


# --- parser -------------------------------------------------------------------------------------


def add_credential_options(p: argparse.ArgumentParser, *, verify_flag: bool = False) -> None:
    """The mode and credential flags shared by every command that runs an exchange.

    Used by ``mikey offer/answer`` and by the glue CLIs (``mikey sip``, ``mikey rtsp``), so the
    flags mean the same everywhere; :func:`config_from_args` turns them into a configuration.
    """
    p.add_argument("--mode", choices=sorted(_MODES), default="psk", help="key exchange method")
    p.add_argument("--psk", help="pre-shared key: HEX or @file holding hex")
    p.add_argument("--cert", help="own certificate chain (PEM, leaf first)")
    p.add_argument("--key", help="own RSA private key (PEM)")
    p.add_argument(
        "--ca",
        help="trusted certificates (PEM): CAs, or the peer's own certificate to pin it "
        "(a pinned certificate, e.g. self-signed with openssl req -x509, is trusted as it is, "
        "without a chain, while it is valid)",
    )
    p.add_argument("--peer-cert", help="the peer's certificate (PEM; PK initiator encrypts to it)")
    p.add_argument(
        "--identity",
        help="own identity URI (default: the SAN URI of --cert when it carries exactly one)",
    )
    p.add_argument(
        "--peer-identity",
        help="the identity the peer must prove (its certificate's SAN URI in the signed modes)",
    )
    p.add_argument(
        "--cert-identity",
        action="append",
        metavar="SHA256=URI",
        help="map a peer certificate without a SAN URI (by its SHA-256 fingerprint) to an "
        "identity; repeatable",
    )
    add_profile_options(p)
    if verify_flag:
        p.add_argument("--v", dest="verify", action="store_true", help="ask for a verification")


def _profile_help() -> str:
    lines = "; ".join(f"{p.value} = {text}" for p, text in PROFILE_HELP.items())
    return f"named configuration for a deployed peer (docs/PROFILES.md): {lines}"


def add_profile_options(p: argparse.ArgumentParser) -> None:
    """``--peer-profile`` and the single switches profiles are made of (docs/PROFILES.md)."""
    p.add_argument(
        "--peer-profile",
        choices=[x.value for x in PeerProfile],
        default="rfc",
        help=_profile_help(),
    )
    p.add_argument(
        "--sign-hash",
        choices=sorted(_SIGN_HASHES),
        help="hash inside RSA signatures, agreed out of band as SIGN names none "
        "(RFC 3830 §6.5; default sha256, sha1 only for minisip)",
    )
    p.add_argument(
        "--no-chash",
        action="store_true",
        help="a PK initiator sends no CHASH (RFC 3830 §3.2 RECOMMENDS it; minisip aborts on it)",
    )
    p.add_argument(
        "--prf-compat",
        choices=["minisip"],
        help="reproduce minisip's PRF bug for in-keys of a multiple of 32 bytes (docs/WIRE.md)",
    )
    p.add_argument(
        "--allow-null-kemac",
        "--allow-null",
        dest="allow_null_kemac",
        action="store_true",
        help="accept (and, RTSP, send) a NULL KEMAC: keys in the clear, RTSPS only",
    )


def config_from_args(args: argparse.Namespace) -> ExchangeConfig:
    """The :class:`ExchangeConfig` the flags of :func:`add_credential_options` describe."""
    return _config(vars(args))


def endpoint_from_args(args: argparse.Namespace, rng: Rng = os.urandom) -> Endpoint:
    """The :class:`Endpoint` (configuration, the OS's randomness by default, and a replay window
    of ``--skew`` seconds where the command has that flag) the flags describe."""
    return _endpoint(vars(args), rng)


def _exchange_options(p: argparse.ArgumentParser) -> None:
    add_credential_options(p)
    p.add_argument("--now", type=float, help="Unix time to use instead of the clock")
    p.add_argument("--skew", type=float, default=300.0, help="accepted clock skew in seconds")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the exchange subcommands to the ``mikey`` parser."""
    p = sub.add_parser("derive", help="evaluate the MIKEY PRF (RFC 3830 §4.1.2)")
    p.add_argument("--prf", choices=sorted(_PRFS), default="mikey-1")
    p.add_argument("--inkey", required=True, help="PRF input key (hex)")
    p.add_argument("--const", required=True, help="tek, salt, auth, encr or 0xHEX")
    p.add_argument("--cs-id", type=int, default=0, help="crypto session ID (0..255)")
    p.add_argument("--csb-id", required=True, help="CSB ID (hex, 4 bytes)")
    p.add_argument("--rand", required=True, help="RAND (hex)")
    p.add_argument("--length", type=int, required=True, help="output length in bytes")
    p.set_defaults(func=_cmd_derive)

    p = sub.add_parser("offer", help="build an I_MESSAGE (initiator)")
    _exchange_options(p)
    p.add_argument("--ssrc", help="SSRC[,SSRC...] of the crypto sessions (0 = peer fills)")
    p.add_argument("--v", dest="verify", action="store_true", help="ask for a verification")
    p.add_argument("--state", help="save the pending initiator here (mode 0600) for finish")
    p.set_defaults(func=_cmd_offer)

    p = sub.add_parser("answer", help="process an I_MESSAGE and print the answer (responder)")
    _exchange_options(p)
    p.add_argument("--ssrc", help="local SSRCs filling the sessions offered with SSRC 0")
    p.add_argument("--show-keys", action="store_true", help="print master keys and salts")
    p.add_argument("input", nargs="?", help="base64, hex, a=key-mgmt line, KeyMgmt header, or -")
    p.set_defaults(func=_cmd_answer, verify=False)

    p = sub.add_parser("finish", help="process the answer to an offer (initiator)")
    p.add_argument("--state", required=True, help="state file written by offer --state")
    p.add_argument("--now", type=float, help="Unix time to use instead of the clock")
    p.add_argument("--show-keys", action="store_true", help="print master keys and salts")
    p.add_argument("input", nargs="?", help="the answer (empty when none is expected), or -")
    p.set_defaults(func=_cmd_finish)
