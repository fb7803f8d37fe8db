"""Shared helpers for the load SUT and driver: configs, process figures, JSON lines."""

from __future__ import annotations

import gc
import json
import sys
from typing import Any

from mikey.exchange import ExchangeConfig
from mikey.keying import Mode
from srtp import _libsrtp
from srtp.gsa import GsaRegistry
from tests.mikey.pair import configs

MODES = {"psk": Mode.PSK, "pk": Mode.PK, "dh": Mode.DH, "dhhmac": Mode.DHHMAC}


def exchange_configs(mode: str, verify: bool) -> tuple[ExchangeConfig, ExchangeConfig]:
    """(initiator, responder) configurations of the shared test identities."""
    return configs(MODES[mode], verify=verify)


def rss_kib() -> int:
    """This process's resident set size (``VmRSS``, KiB) after a full garbage collection."""
    gc.collect()
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def audit_figures(registry: GsaRegistry) -> dict[str, int]:
    """The registry's GSA audit plus the process-wide live libsrtp contexts."""
    report = registry.audit()
    return {
        "live_gsas": report.live_gsas,
        "live_contexts": _libsrtp.live_sessions(),
        "unwiped_buffers": report.unwiped_buffers,
    }


def emit(record: dict[str, Any]) -> None:
    """One JSON line on stdout, flushed."""
    sys.stdout.write(json.dumps(record, sort_keys=True) + "\n")
    sys.stdout.flush()
