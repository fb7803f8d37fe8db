"""The ``mikey`` command line: a shell over the sans-IO core (files, the clock, the OS's
randomness, JSON forms and text renderings live here, never in :mod:`mikey`).

The glue packages add ``mikey sip`` and ``mikey rtsp`` through the ``mikey.cli`` entry point group
and share the credential flags of :func:`add_credential_options`.
"""

from __future__ import annotations

from .common import CliError, mikey_bytes_from_text, read_input
from .exchange import (
    add_credential_options,
    config_from_args,
    endpoint_from_args,
    refusal_reason,
)
from .main import build_parser, main

__all__ = [
    "CliError",
    "add_credential_options",
    "build_parser",
    "config_from_args",
    "endpoint_from_args",
    "main",
    "mikey_bytes_from_text",
    "read_input",
    "refusal_reason",
]
