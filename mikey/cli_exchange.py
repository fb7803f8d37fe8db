"""``mikey derive/offer/answer/finish`` (filled in with the exchanges)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the exchange subcommands to the ``mikey`` parser."""
    del sub  # replaced when the exchanges land
