"""The ``mikey`` command line: decode/encode (codec), derive/offer/answer/finish (exchanges).

Further subcommands (``sip``, ``rtsp``) are contributed by the glue packages through the
``mikey.cli`` entry point group, so this shell never imports them.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points

from mikey.codec import parse_message
from mikey.errors import MikeyError
from mikey.exchange import ExchangeConfig, PeerProfile, apply_profile

from . import exchange, pcap
from .common import CliError, mikey_bytes_from_text, read_input
from .jsonform import from_json, to_json
from .render import describe_message

__all__ = ["CliError", "build_parser", "main", "mikey_bytes_from_text", "read_input"]


def _cmd_decode(args: argparse.Namespace) -> int:
    data = mikey_bytes_from_text(read_input(args.input))
    cfg = apply_profile(ExchangeConfig(), args.peer_profile)
    msg = parse_message(
        data, lenient=args.lenient or cfg.lenient, threegpp=cfg.threegpp_code_points
    )
    if args.json:
        print(json.dumps(to_json(msg), indent=2 if args.pretty else None))
    else:
        print(describe_message(msg))
    if args.psk or args.cert:
        creds = pcap.credentials_of(args)
        opened = pcap.open_message(data, creds, now=args.now)
        if opened.reason:
            print(f"KEMAC not opened: {opened.reason}")
            return 2
        for e in opened.keys:
            line = f"Data SA: CS {e.cs_id}, SSRC 0x{e.ssrc:08x}, {e.policy.profile_name}"
            if e.mki is not None:
                line += f", MKI {e.mki.hex()}"
            if args.show_keys:
                line += (
                    f", master key {bytes(e.master_key).hex()}, salt {bytes(e.master_salt).hex()}"
                )
            print(line)
    return 0


def _cmd_encode(args: argparse.Namespace) -> int:
    if args.file in (None, "-"):
        text = sys.stdin.read()
    else:
        try:
            with open(args.file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror}") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    print(base64.b64encode(from_json(obj).encode()).decode("ascii"))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mikey", description="MIKEY key management for SRTP")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("decode", help="decode a MIKEY message")
    p.add_argument("input", nargs="?", help="base64, hex, a=key-mgmt line, KeyMgmt header, or -")
    p.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    p.add_argument("--pretty", action="store_true", help="indent the JSON")
    p.add_argument("--lenient", action="store_true", help="accept known peer quirks")
    p.add_argument(
        "--peer-profile",
        choices=[x.value for x in PeerProfile],
        default="rfc",
        help="decode as this peer profile does: gstreamer/onvif lenient, mcptt with the 3GPP "
        "code points (TS 33.180) known to the strict codec (docs/PROFILES.md)",
    )
    p.add_argument("--psk", help="open the KEMAC with this pre-shared key (HEX or @file)")
    p.add_argument("--cert", help="open a PK envelope: the responder's certificate (PEM)")
    p.add_argument("--key", help="open a PK envelope: the responder's private key (PEM)")
    p.add_argument("--now", type=float, help="Unix time to check T against (default: its own)")
    p.add_argument("--show-keys", action="store_true", help="print the master keys and salts")
    p.set_defaults(func=_cmd_decode)

    p = sub.add_parser("encode", help="encode the JSON form back into base64")
    p.add_argument("file", nargs="?", help="JSON file or - for stdin")
    p.set_defaults(func=_cmd_encode)

    for register in _extensions():
        register(sub)
    return parser


_Register = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]


def _extensions() -> list[_Register]:
    found: list[_Register] = []
    found.append(exchange.register)
    found.append(pcap.register)
    for ep in sorted(entry_points(group="mikey.cli"), key=lambda e: e.name):
        try:
            found.append(ep.load())
        except ImportError as exc:
            if exc.name != ep.module.partition(".")[0]:
                # installed but broken: say so instead of hiding the command
                print(f"mikey: the '{ep.name}' commands are unavailable: {exc}", file=sys.stderr)
            continue  # (an optional glue package that is not installed: silently absent)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mikey`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MikeyError as exc:
        print(f"mikey {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
