"""Timestamps and replay protection (RFC 3830 §5.4, §6.6, §9.3; RFC 6043 §6.4).

A receiver accepts a message only if its T payload is within the allowed clock skew of the
caller's clock ``now`` and the message has not been seen before. :class:`ReplayGuard` keeps the
messages seen inside the window in a cache keyed by (CSB ID, T, message digest).

How the cache stays bounded and safe
------------------------------------
Entries are grouped in *buckets* by their T (bucket width = skew / 256). A monotonic *horizon*
(a bucket index) moves forward as time passes; buckets below it are dropped whole, and any T
below it is refused as stale, even if it were inside the skew window. So an entry leaves the
cache only together with the right to present its T again: the invariant is "every message that
would pass the timestamp check and was accepted before is still in the cache". Expiry walks
bucket indices forward once, which is amortised O(1) per message; lookup and insert are one dict
operation each, flat from ten thousand to millions of entries.

Under a flood of distinct (authenticated) messages the *effective skew* shrinks once the cache
is half full, linearly down to skew / 16 when it is full; the horizon follows it, so old entries
expire sooner instead of memory growing. If the cache is still full, new messages are refused
with :class:`TimestampError` ("replay cache full") rather than evicting an entry still inside
the window: evicting it would let that very message be replayed and accepted, turning a
resource limit into a security hole. Refusal is the fail-safe side; the peer can retry later.

COUNTER timestamps (type 2) carry no time: a counter per (peer, CSB ID) must strictly increase.
Those counters, and the last accepted T per CSB (re-keying, RFC 3830 §4.5), live in LRU maps of
at most ``max_entries`` entries; losing the counter of a peer idle long enough to be evicted is
the documented cost of bounded memory. Call :meth:`ReplayGuard.check` after the message has been
authenticated, so forged messages cannot fill the cache.
"""

from __future__ import annotations

import math
import struct
from collections import OrderedDict
from dataclasses import dataclass

from .codec import Timestamp
from .errors import EncodeError, ReplayError, TimestampError
from .registry import TS_LENGTH, TsType

__all__ = [
    "NTP_UNIX_OFFSET",
    "ReplayGuard",
    "TimestampPolicy",
    "make_timestamp",
    "ntp_from_unix",
    "unix_from_ntp",
]

NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01
_ERA = 1 << 32
_ERA_1_UNIX = _ERA - NTP_UNIX_OFFSET  # 2036-02-07T06:28:16Z
_FIRST_UNIX = 0x80000000 - NTP_UNIX_OFFSET  # 1968-01-20T03:14:08Z: first readable time
_END_UNIX = _FIRST_UNIX + _ERA  # 2104-02-26T09:42:24Z: end of the readable range
_BUCKETS_PER_SKEW = 256
_MIN_SKEW_FRACTION = 1 / 16
_SHRINK_FROM = 0.5  # fill ratio from which the effective skew shrinks
_NTP_TYPES = (TsType.NTP_UTC, TsType.NTP, TsType.NTP_UTC_32)
_TS_TYPES: dict[int, TsType] = {int(t): t for t in TsType}
_NTP = struct.Struct(">II")
_KEY_HEAD = struct.Struct(">IB")  # replay cache key: CSB ID, TS type, then T and digest


def ntp_from_unix(t: float) -> bytes:
    """8-byte NTP timestamp (32-bit seconds since 1900, 32-bit binary fraction) for Unix ``t``.

    Times from 2036-02-07 on wrap into NTP era 1 (RFC 5905 §6). Only the range that
    :func:`unix_from_ntp` reads back (1968-01-20 .. 2104-02-26) is accepted.
    """
    if not math.isfinite(t) or not _FIRST_UNIX <= t < _END_UNIX - 1:
        raise TimestampError("time not representable as an NTP timestamp")
    secs = math.floor(t)
    frac = round((t - secs) * _ERA)
    if frac == _ERA:
        secs, frac = secs + 1, 0
    return _NTP.pack((secs + NTP_UNIX_OFFSET) % _ERA, frac)


def unix_from_ntp(value: bytes) -> float:
    """Unix time of an NTP timestamp (8 bytes, or 4 bytes of seconds for NTP-UTC-32).

    Seconds with the top bit clear are read as NTP era 1 (2036-02-07 .. 2104), the usual
    convention for timestamps of a protocol born after 1968.
    """
    secs: int
    frac: float
    if len(value) == 8:
        secs, frac_raw = _NTP.unpack(value)
        frac = frac_raw / _ERA
    elif len(value) == 4:
        secs, frac = int.from_bytes(value, "big"), 0.0
    else:
        raise TimestampError(f"NTP timestamp of {len(value)} bytes")
    if not secs & 0x80000000:
        secs += _ERA
    return secs - NTP_UNIX_OFFSET + frac


def make_timestamp(
    now: float, ts_type: TsType = TsType.NTP_UTC, counter: int | None = None
) -> Timestamp:
    """The T payload (RFC 3830 §6.6) for time ``now``, or for ``counter`` if type COUNTER."""
    if ts_type == TsType.COUNTER:
        if counter is None or not 0 <= counter < _ERA:
            raise EncodeError("a COUNTER timestamp needs a counter in 0..2^32-1")
        return Timestamp(TsType.COUNTER, counter.to_bytes(4, "big"))
    ntp = ntp_from_unix(now)
    if ts_type == TsType.NTP_UTC_32:
        return Timestamp(TsType.NTP_UTC_32, ntp[:4])  # RFC 6043 §6.4: 32-bit seconds
    kind = _TS_TYPES.get(ts_type)
    if kind is None:
        raise EncodeError(f"unknown timestamp type {ts_type}")
    return Timestamp(kind, ntp)


@dataclass(frozen=True, slots=True)
class TimestampPolicy:
    """What timestamps a receiver accepts."""

    skew: float = 300.0  # allowed |T - now| in seconds (RFC 3830 §5.4 leaves it to policy)
    accept_ntp_local: bool = True  # TS type 1 (NTP local time) read as NTP-UTC
    allow_counter: bool = True  # TS type 2 (COUNTER)


def _order_key(ts: Timestamp) -> float:
    if ts.ts_type == TsType.COUNTER:
        return float(ts.as_int)
    return unix_from_ntp(ts.value)


class ReplayGuard:
    """Timestamp window and replay cache shared by all exchanges of one configuration."""

    def __init__(self, policy: TimestampPolicy = TimestampPolicy(), max_entries: int = 100_000):
        if not (policy.skew > 0 and math.isfinite(policy.skew)) or max_entries < 1:
            raise TimestampError("replay guard needs a positive finite skew and max_entries")
        self.policy = policy
        self.max_entries = max_entries
        self._width = policy.skew / _BUCKETS_PER_SKEW
        # The last window check: check() reuses its bucket when nothing changed in between
        # (a responder checks the window before any cryptography, then again to remember).
        self._last_window: tuple[Timestamp, float, int, tuple[object, ...]] | None = None
        self._changes = 0  # counts insertions and expiries
        self._seen: dict[bytes, int] = {}  # cache key -> bucket
        self._buckets: dict[int, list[bytes]] = {}
        self._horizon: int | None = None  # buckets below are gone; their T is refused
        self._counters: OrderedDict[tuple[str, int], int] = OrderedDict()
        self._last: OrderedDict[int, tuple[TsType, bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    # -- window -------------------------------------------------------------------------------

    def _skew_for_fill(self) -> float:
        skew = self.policy.skew
        if len(self._seen) <= self.max_entries * _SHRINK_FROM:  # usual: the skew as configured
            return skew
        fill = len(self._seen) / self.max_entries
        shrink = min(1.0, (fill - _SHRINK_FROM) / (1 - _SHRINK_FROM))
        return skew - shrink * skew * (1 - _MIN_SKEW_FRACTION)

    def _expire(self, now: float) -> float:
        skew = self._skew_for_fill()
        target = math.floor((now - skew) / self._width)
        if self._horizon is None:
            self._horizon = target
        elif target > self._horizon:
            if target - self._horizon <= len(self._buckets):
                for b in range(self._horizon, target):
                    self._drop(b)
            else:
                for b in [b for b in self._buckets if b < target]:
                    self._drop(b)
            self._horizon = target
            self._changes += 1
            return self._skew_for_fill()  # the fill went down
        return skew

    def _drop(self, bucket: int) -> None:
        for key in self._buckets.pop(bucket, ()):
            del self._seen[key]

    def effective_skew(self, now: float) -> float:
        """The accepted |T - now| at ``now`` (shrinks as the cache fills); expires old entries."""
        return self._expire(now)

    # -- checks -------------------------------------------------------------------------------

    def _window_inputs(self) -> tuple[object, ...]:
        """What a window check depends on besides T and ``now``."""
        return (self._changes, self.policy, self.max_entries)

    def check_window(self, ts: Timestamp, now: float) -> int | None:
        """Raise :class:`TimestampError` unless ``ts`` lies in the accepted window at ``now``.

        Cheap and records no message, so a responder can run it before any cryptography. Returns
        the time bucket of an NTP-type ``ts`` (None for COUNTER, which has no window).
        """
        if ts.ts_type == TsType.COUNTER:
            return None
        if ts.ts_type not in _NTP_TYPES or len(ts.value) != TS_LENGTH[ts.ts_type]:
            raise TimestampError("unsupported timestamp type")
        if ts.ts_type == TsType.NTP and not self.policy.accept_ntp_local:
            raise TimestampError("NTP local-time timestamps are not accepted")
        t = unix_from_ntp(ts.value)
        skew = self._expire(now)
        bucket = math.floor(t / self._width)
        horizon = bucket if self._horizon is None else self._horizon
        # RFC 3830 §5.4: T must be within the allowable clock skew of the local clock.
        if t < now - skew:
            raise TimestampError(
                f"timestamp is stale: {now - t:,.0f} s older than the allowed skew of {skew:,.0f} s"
            )
        if bucket < horizon:
            raise TimestampError(
                "timestamp is stale: older than messages the replay cache has already forgotten"
            )
        if t > now + skew:
            raise TimestampError(
                f"timestamp is in the future: {t - now:,.0f} s ahead, beyond the allowed skew of "
                f"{skew:,.0f} s"
            )
        self._last_window = (ts, now, bucket, self._window_inputs())
        return bucket

    def check(self, ts: Timestamp, *, peer: str, csb_id: int, digest: bytes, now: float) -> None:
        """Accept the (authenticated) message with T ``ts`` and ``digest``, or raise.

        Raises :class:`TimestampError` (INVALID_TS) for a stale, future or refused timestamp and
        :class:`ReplayError` for a message seen before. Records the message when accepted.
        """
        last = self._last_window
        if (
            last is not None
            and last[0] is ts
            and last[1] == now
            and last[3] == self._window_inputs()
        ):
            bucket = last[2]  # the same T at the same time, nothing changed since
        else:
            window = self.check_window(ts, now)
            if window is None:
                self._check_counter(ts, peer, csb_id)
                return
            bucket = window
        key = _KEY_HEAD.pack(csb_id, ts.ts_type) + ts.value + digest
        if key in self._seen:  # RFC 3830 §5.4: replay cache
            raise ReplayError("message replayed")
        if len(self._seen) >= self.max_entries:
            raise TimestampError("replay cache full; message refused")
        self._seen[key] = bucket
        self._changes += 1
        self._buckets.setdefault(bucket, []).append(key)

    def _check_counter(self, ts: Timestamp, peer: str, csb_id: int) -> None:
        if not self.policy.allow_counter:
            raise TimestampError("COUNTER timestamps are not accepted")
        if len(ts.value) != TS_LENGTH[TsType.COUNTER]:
            raise TimestampError("malformed COUNTER timestamp")
        who = (peer, csb_id)
        value = ts.as_int
        last = self._counters.get(who)
        if last is not None and value <= last:
            raise ReplayError("COUNTER timestamp not increasing")
        self._counters[who] = value
        self._counters.move_to_end(who)
        while len(self._counters) > self.max_entries:
            self._counters.popitem(last=False)

    # -- re-keying (RFC 3830 §4.5) ------------------------------------------------------------

    def check_newer(self, csb_id: int, ts: Timestamp) -> None:
        """Raise :class:`ReplayError` unless ``ts`` is newer than the last T accepted for the CSB.

        An update for an existing CSB must carry a newer T (RFC 3830 §4.5, §5.4).
        """
        last = self._last.get(csb_id)
        if last is None:
            return
        last_type, _, last_key = last
        if (last_type == TsType.COUNTER) != (ts.ts_type == TsType.COUNTER):
            raise TimestampError("timestamp type changed within the CSB")
        if _order_key(ts) <= last_key:
            raise ReplayError("timestamp not newer than the last one for this CSB")

    def note_rekey(self, peer: str, csb_id: int, ts: Timestamp) -> None:
        """Record ``ts`` as the latest T accepted for ``csb_id`` (ignored if not newer)."""
        del peer  # CSB IDs are global in a configuration; kept for symmetry with check()
        key = _order_key(ts)
        last = self._last.get(csb_id)
        if last is None or key > last[2]:
            self._last[csb_id] = (ts.ts_type, bytes(ts.value), key)
        self._last.move_to_end(csb_id)
        while len(self._last) > self.max_entries:
            self._last.popitem(last=False)

    def last_accepted(self, csb_id: int) -> bytes | None:
        """The raw value of the latest T accepted for ``csb_id``, if any."""
        last = self._last.get(csb_id)
        return None if last is None else last[1]
