"""Codec speed: parse and encode of the worked PSK I_MESSAGE (docs/WIRE.md) vs GStreamer's parser.

GStreamer 1.22's ``gst_mikey_message_new_from_data`` (libgstsdp-1.0, a plain C library) is
loaded with ctypes into this same process and run on the same 127 bytes, followed by
``gst_mini_object_unref`` (``gst_mikey_message_unref`` is an inline wrapper of it). The ctypes
call overhead is measured on its own (``gst_mikey_message_get_n_cs``, a trivial accessor) and
reported, and subtracted to estimate GStreamer's native time. Trials of every measurement are
interleaved and the median kept. Goal: our parse <= 8x GStreamer's parse (ctypes included),
and our encode <= 8x it too. Where the C accelerator runs, parse and encode of this message take
its fast path (mikey._speedups.parse_message / encode_message); two more rows show the
pure-Python parser and encoder on the same bytes, for information.
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable
from typing import Any

from mikey import _accel
from mikey.codec import parse_message

Row = dict[str, Any]
GOAL = 8.0
I_MESSAGE = bytes.fromhex(
    "0100058012345678010000deadbeef000000000b00e93c7f00800000000a1000112233445566778899aabbccddeeff"
    "010000001e00010101011002010103011404010e0501000701010801010a01010b010a000100143b50a4a2c554a3a6"
    "7047272a23ff0e7d639bba3e018f66cef6d3af3ceaf16bb93659d8c04b03dfeac2"
)


class Gst:
    """Just the libgstsdp / libgstreamer entry points the benchmark needs."""

    def __init__(self) -> None:
        self.core = ctypes.CDLL("libgstreamer-1.0.so.0")
        self.sdp = ctypes.CDLL("libgstsdp-1.0.so.0")
        self.core.gst_init(None, None)
        self.new = self.sdp.gst_mikey_message_new_from_data
        self.new.restype = ctypes.c_void_p
        self.new.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p]
        self.unref = self.core.gst_mini_object_unref
        self.unref.argtypes = [ctypes.c_void_p]
        self.unref.restype = None
        self.n_cs = self.sdp.gst_mikey_message_get_n_cs
        self.n_cs.argtypes = [ctypes.c_void_p]
        self.n_cs.restype = ctypes.c_uint


def _per_call_ns(fn: Callable[[], object], n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e9


def run(quick: bool = False) -> list[Row]:
    """Rows {metric, ours, baseline, ratio, goal, passed}; times in ns per message."""
    gst = Gst()
    data = I_MESSAGE
    size = len(data)
    probe = gst.new(data, size, None, None)
    if not probe:
        raise RuntimeError("GStreamer refused the §4.8 I_MESSAGE")
    msg = parse_message(data)
    if msg.encode() != data:
        raise RuntimeError("codec does not round-trip the §4.8 I_MESSAGE")

    new, unref, n_cs = gst.new, gst.unref, gst.n_cs

    def gst_parse() -> None:
        unref(new(data, size, None, None))

    def ctypes_call() -> None:
        n_cs(probe)

    def our_parse() -> None:
        parse_message(data)

    def our_encode() -> None:
        msg.encode()

    def pure(fn: Callable[[], None]) -> Callable[[], None]:
        def run_pure() -> None:
            saved, _accel.speedups = _accel.speedups, None
            try:
                fn()
            finally:
                _accel.speedups = saved

        return run_pure

    cases = {"gst": gst_parse, "ctypes": ctypes_call, "parse": our_parse, "encode": our_encode}
    if _accel.accelerated():
        cases |= {"python parse": pure(our_parse), "python encode": pure(our_encode)}
    n = 2_000 if quick else 20_000
    trials = 5 if quick else 15
    samples: dict[str, list[float]] = {k: [] for k in cases}
    for fn in cases.values():
        _per_call_ns(fn, 200)  # warm up
    for _ in range(trials):
        for name, fn in cases.items():
            samples[name].append(_per_call_ns(fn, n))
    gst.unref(probe)
    med = {k: statistics.median(v) for k, v in samples.items()}
    # gst_parse makes two ctypes calls (new + unref).
    native = max(med["gst"] - 2 * med["ctypes"], 1.0)
    rows: list[Row] = []
    for metric in ("parse", "encode"):
        ratio = med[metric] / med["gst"]
        rows.append(
            {
                "metric": f"{metric} PSK I_MESSAGE (ns) vs gst parse via ctypes",
                "ours": med[metric],
                "baseline": med["gst"],
                "ratio": ratio,
                "goal": f"<= {GOAL:g}x",
                "passed": ratio <= GOAL,
            }
        )
    for metric in ("python parse", "python encode"):
        if metric in med:
            rows.append(
                {
                    "metric": f"{metric} (no C accelerator) PSK I_MESSAGE (ns) vs gst parse",
                    "ours": med[metric],
                    "baseline": med["gst"],
                    "ratio": med[metric] / med["gst"],
                    "goal": "information: the pure-Python codec",
                    "passed": None,
                }
            )
    rows.append(
        {
            "metric": "parse vs gst native estimate (gst - 2 ctypes calls) (ns)",
            "ours": med["parse"],
            "baseline": native,
            "ratio": med["parse"] / native,
            "goal": None,
            "passed": None,
        }
    )
    rows.append(
        {
            "metric": "ctypes call overhead (ns/call)",
            "ours": None,
            "baseline": med["ctypes"],
            "ratio": None,
            "goal": None,
            "passed": None,
        }
    )
    return rows


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    for row in run(args.quick):
        print(row)


if __name__ == "__main__":
    main()
