"""Timestamps and the replay guard (RFC 3830 §5.4, §6.6; docs/WIRE.md §Timestamps)."""

from __future__ import annotations

import calendar
import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mikey.codec import Timestamp
from mikey.errors import EncodeError, MikeyError, ReplayError, TimestampError
from mikey.registry import ErrorNo, TsType
from mikey.replay import (
    NTP_UNIX_OFFSET,
    ReplayGuard,
    TimestampPolicy,
    make_timestamp,
    ntp_from_unix,
    unix_from_ntp,
)

NOW = float(calendar.timegm((2024, 1, 1, 0, 0, 0)))  # 1704067200


def utc(*fields: int) -> float:
    return float(calendar.timegm((*fields, 0, 0, 0)[:6]))


# -- NTP conversion ----------------------------------------------------------------------------


def test_spec_vector_2024() -> None:
    # docs/WIRE.md §Timestamps: e93c7f0080000000 = 2024-01-01T00:00:00.5Z
    value = bytes.fromhex("e93c7f0080000000")
    when = dt.datetime.fromtimestamp(unix_from_ntp(value), dt.UTC)
    assert when == dt.datetime(2024, 1, 1, 0, 0, 0, 500000, tzinfo=dt.UTC)
    assert ntp_from_unix(NOW + 0.5) == value


def test_offset_is_1900_to_1970() -> None:
    epoch_1900 = dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
    assert (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) - epoch_1900).total_seconds() == (
        NTP_UNIX_OFFSET
    )
    assert ntp_from_unix(0.0) == (0x83AA7E80).to_bytes(4, "big") + bytes(4)


def test_era_boundary() -> None:
    # NTP era 0 ends 2036-02-07T06:28:16Z (RFC 5905 §6): seconds wrap to 0 in era 1.
    boundary = dt.datetime(2036, 2, 7, 6, 28, 16, tzinfo=dt.UTC).timestamp()
    assert ntp_from_unix(boundary) == bytes(8)
    assert unix_from_ntp(bytes(8)) == boundary
    assert ntp_from_unix(boundary - 1) == bytes.fromhex("ffffffff00000000")
    assert unix_from_ntp(bytes.fromhex("ffffffff00000000")) == boundary - 1
    # Top bit clear = era 1; top bit set = era 0 (1968-01-20 .. 2036-02-07).
    assert unix_from_ntp(bytes.fromhex("7fffffff00000000")) == boundary + 0x7FFFFFFF
    assert unix_from_ntp(bytes.fromhex("8000000000000000")) == 0x80000000 - NTP_UNIX_OFFSET


def test_genetec_filetime_reads_as_2037() -> None:
    # docs/WIRE.md §Windows FILETIME in an NTP-UTC T: it decodes to 2037 in era 1.
    year = dt.datetime.fromtimestamp(unix_from_ntp(bytes.fromhex("01D38E19CEF95C3D")), dt.UTC).year
    assert year == 2037


def test_ntp_32_is_seconds() -> None:
    assert unix_from_ntp(bytes.fromhex("e93c7f00")) == NOW


@pytest.mark.parametrize("bad", [b"", b"\x00" * 3, b"\x00" * 5, b"\x00" * 9])
def test_bad_ntp_length(bad: bytes) -> None:
    with pytest.raises(TimestampError):
        unix_from_ntp(bad)


@pytest.mark.parametrize("t", [math.nan, math.inf, -3e9, -61505153.0, 4233462144.0, 7e9])
def test_unrepresentable_time(t: float) -> None:
    with pytest.raises(TimestampError):
        ntp_from_unix(t)


@given(st.floats(min_value=-61505152.0, max_value=4233462142.0, allow_nan=False))
def test_ntp_round_trip(t: float) -> None:
    back = unix_from_ntp(ntp_from_unix(t))
    assert abs(back - t) <= 2**-31 + abs(t) * 2**-50


def test_make_timestamp() -> None:
    t = make_timestamp(NOW + 0.5)
    assert t == Timestamp(TsType.NTP_UTC, bytes.fromhex("e93c7f0080000000"))
    assert t.encode(0) == bytes.fromhex("0000e93c7f0080000000")
    assert make_timestamp(NOW, TsType.NTP).ts_type == TsType.NTP
    assert make_timestamp(NOW + 0.9, TsType.NTP_UTC_32).value == bytes.fromhex("e93c7f00")
    assert make_timestamp(NOW, TsType.COUNTER, 7).value == bytes.fromhex("00000007")
    for counter in (None, -1, 1 << 32):
        with pytest.raises(EncodeError):
            make_timestamp(NOW, TsType.COUNTER, counter)


# -- window ----------------------------------------------------------------------------------


def check(guard: ReplayGuard, t: Timestamp, now: float, digest: bytes = b"d", csb: int = 1) -> None:
    guard.check(t, peer="peer", csb_id=csb, digest=digest, now=now)


@pytest.mark.parametrize("ts_type", [TsType.NTP_UTC, TsType.NTP, TsType.NTP_UTC_32])
def test_window(ts_type: TsType) -> None:
    guard = ReplayGuard(TimestampPolicy(skew=60.0))
    check(guard, make_timestamp(NOW - 59, ts_type), NOW, b"a")
    check(guard, make_timestamp(NOW + 59, ts_type), NOW, b"b")
    with pytest.raises(TimestampError, match="stale") as stale:
        check(guard, make_timestamp(NOW - 62, ts_type), NOW, b"c")
    with pytest.raises(TimestampError, match="future") as future:
        check(guard, make_timestamp(NOW + 62, ts_type), NOW, b"d")
    for err in (stale.value, future.value):
        assert err.error_no == ErrorNo.INVALID_TS
        assert not isinstance(err, ReplayError)
    assert len(guard) == 2


def test_window_check_then_check_reuses_only_an_unchanged_window() -> None:
    # A responder runs check_window before its cryptography and check after it; check may reuse
    # that result only for the same T at the same time with nothing changed in between.
    t = make_timestamp(NOW - 50)

    def guard() -> ReplayGuard:
        g = ReplayGuard(TimestampPolicy(skew=60.0), max_entries=4)
        assert g.check_window(t, NOW) is not None
        return g

    g = guard()
    with pytest.raises(TimestampError, match="stale"):  # the same T, a later clock
        check(g, t, NOW + 20)

    g = guard()
    g.policy = TimestampPolicy(skew=30.0)  # a stricter policy since the window check
    with pytest.raises(TimestampError, match="stale"):
        check(g, t, NOW)

    g = guard()  # three more entries fill the cache past half: the skew shrinks below 50 s
    for d in (b"x", b"y", b"z"):
        check(g, make_timestamp(NOW), NOW, d)
    assert g.effective_skew(NOW) < 50
    with pytest.raises(TimestampError, match="stale"):
        check(g, t, NOW)

    g = ReplayGuard(TimestampPolicy(skew=60.0), max_entries=100)
    for d in (b"x", b"y"):
        check(g, make_timestamp(NOW), NOW, d)
    g.check_window(t, NOW)
    g.max_entries = 3  # a smaller cache since the window check: 2 of 3 shrink the skew
    with pytest.raises(TimestampError, match="stale"):
        check(g, t, NOW)

    g = guard()
    g.effective_skew(NOW + 20)  # expiry moves the horizon past T's bucket
    with pytest.raises(TimestampError, match="stale"):
        check(g, t, NOW)

    g = guard()  # unchanged: accepted, and then refused as a replay
    check(g, t, NOW)
    with pytest.raises(ReplayError):
        check(g, t, NOW)


def test_genetec_timestamp_refused() -> None:
    t = Timestamp(TsType.NTP_UTC, bytes.fromhex("01D38E19CEF95C3D"))
    with pytest.raises(TimestampError, match="future"):
        check(ReplayGuard(), t, NOW)


def test_ntp_local_refusable() -> None:
    guard = ReplayGuard(TimestampPolicy(accept_ntp_local=False))
    with pytest.raises(TimestampError):
        check(guard, make_timestamp(NOW, TsType.NTP), NOW)
    check(guard, make_timestamp(NOW, TsType.NTP_UTC), NOW)


def test_malformed_timestamp_raises_our_error() -> None:
    for t in (Timestamp(TsType.NTP_UTC, b"\x00"), Timestamp(TsType.COUNTER, b"\x00" * 8)):
        with pytest.raises(TimestampError):
            check(ReplayGuard(), t, NOW)


def test_bad_configuration() -> None:
    for policy, n in ((TimestampPolicy(skew=0.0), 10), (TimestampPolicy(skew=math.nan), 10)):
        with pytest.raises(TimestampError):
            ReplayGuard(policy, n)
    with pytest.raises(TimestampError):
        ReplayGuard(TimestampPolicy(), 0)


# -- replay cache ----------------------------------------------------------------------------


def test_replay_detected() -> None:
    guard = ReplayGuard()
    t = make_timestamp(NOW)
    digest = bytes(range(32))
    check(guard, t, NOW, digest)
    with pytest.raises(ReplayError) as err:
        check(guard, t, NOW + 10, digest)
    assert err.value.error_no == ErrorNo.INVALID_TS
    assert digest.hex() not in str(err.value)
    # Different digest, or another CSB, is another message.
    check(guard, t, NOW + 10, digest[::-1])
    check(guard, t, NOW + 10, digest, csb=2)
    assert len(guard) == 3


def test_replay_after_window_is_stale() -> None:
    guard = ReplayGuard(TimestampPolicy(skew=30.0))
    t = make_timestamp(NOW)
    check(guard, t, NOW)
    with pytest.raises(TimestampError, match="stale"):
        check(guard, t, NOW + 31)
    assert len(guard) == 0  # expired together with the right to present T again


def test_future_entry_kept_until_it_could_no_longer_pass() -> None:
    guard = ReplayGuard(TimestampPolicy(skew=30.0))
    t = make_timestamp(NOW + 29)
    check(guard, t, NOW)
    for later in (NOW + 30, NOW + 45, NOW + 58):
        with pytest.raises(ReplayError):
            check(guard, t, later)


def test_clock_going_back_never_reopens_the_window() -> None:
    guard = ReplayGuard(TimestampPolicy(skew=30.0))
    t = make_timestamp(NOW)
    check(guard, t, NOW)
    check(guard, make_timestamp(NOW + 100), NOW + 100, b"x")  # expires the first entry
    with pytest.raises(TimestampError):
        check(guard, t, NOW + 10)  # T is inside the skew of this 'now' but its entry is gone


# -- COUNTER ---------------------------------------------------------------------------------


def counter(n: int) -> Timestamp:
    return make_timestamp(0.0, TsType.COUNTER, n)


def test_counter_monotonic_per_peer_and_csb() -> None:
    guard = ReplayGuard()
    guard.check(counter(5), peer="a", csb_id=1, digest=b"", now=NOW)
    guard.check(counter(6), peer="a", csb_id=1, digest=b"", now=NOW)
    for stale in (6, 5, 0):
        with pytest.raises(ReplayError):
            guard.check(counter(stale), peer="a", csb_id=1, digest=b"", now=NOW)
    guard.check(counter(1), peer="b", csb_id=1, digest=b"", now=NOW)
    guard.check(counter(1), peer="a", csb_id=2, digest=b"", now=NOW)
    # Counters ignore the clock entirely.
    guard.check(counter(7), peer="a", csb_id=1, digest=b"", now=NOW + 1e6)


def test_counter_refusable() -> None:
    guard = ReplayGuard(TimestampPolicy(allow_counter=False))
    with pytest.raises(TimestampError):
        guard.check(counter(1), peer="a", csb_id=1, digest=b"", now=NOW)


# -- memory bound ----------------------------------------------------------------------------


def test_flood_stays_bounded() -> None:
    max_entries = 1000
    guard = ReplayGuard(TimestampPolicy(skew=300.0), max_entries)
    accepted: list[tuple[Timestamp, bytes, float]] = []
    refused_full = 0
    skews: list[float] = []
    now = NOW
    # 20 distinct messages a second: the 600 s window would need 12000 entries.
    for i in range(3 * max_entries):
        now = NOW + i * 0.05
        t = make_timestamp(now)
        digest = i.to_bytes(4, "big")
        try:
            check(guard, t, now, digest)
        except TimestampError as err:
            assert "full" in str(err)
            refused_full += 1
        else:
            accepted.append((t, digest, now))
        assert len(guard) <= max_entries
        skews.append(guard.effective_skew(now))
    assert min(skews) < 300.0
    assert min(skews) >= 300.0 / 16
    assert len(accepted) > max_entries  # old entries did expire early
    # Nothing accepted can be accepted again, at any later time.
    for later in (now, now + 5, now + 400):
        for t, digest, _ in accepted[::7]:
            with pytest.raises(TimestampError):
                check(guard, t, later, digest)
    # Once the flood is over and the old entries have expired, fresh messages pass again.
    quiet = now + 700
    assert guard.effective_skew(quiet) == 300.0
    check(guard, make_timestamp(quiet), quiet, b"legit")
    check(guard, make_timestamp(quiet - 200), quiet, b"legit-skewed")


def test_full_cache_refuses_instead_of_evicting() -> None:
    guard = ReplayGuard(TimestampPolicy(skew=300.0), 50)
    for i in range(50):
        check(guard, make_timestamp(NOW), NOW, i.to_bytes(2, "big"))
    with pytest.raises(TimestampError, match="full"):
        check(guard, make_timestamp(NOW), NOW, b"new")
    # All fifty are still remembered.
    for i in range(50):
        with pytest.raises(ReplayError):
            check(guard, make_timestamp(NOW), NOW + 1, i.to_bytes(2, "big"))


# -- re-keying -------------------------------------------------------------------------------


def test_rekey_needs_newer_timestamp() -> None:
    guard = ReplayGuard()
    first = make_timestamp(NOW)
    assert guard.last_accepted(7) is None
    guard.check_newer(7, first)
    guard.note_rekey("a", 7, first)
    assert guard.last_accepted(7) == first.value
    for old in (first, make_timestamp(NOW - 1)):
        with pytest.raises(ReplayError):
            guard.check_newer(7, old)
    newer = make_timestamp(NOW + 0.001)
    guard.check_newer(7, newer)
    guard.note_rekey("a", 7, newer)
    guard.note_rekey("a", 7, first)  # older: ignored
    assert guard.last_accepted(7) == newer.value
    guard.check_newer(8, first)  # another CSB is unaffected
    with pytest.raises(TimestampError):
        guard.check_newer(7, counter(1 << 31))


def test_rekey_counter_and_bound() -> None:
    guard = ReplayGuard(max_entries=3)
    guard.note_rekey("a", 1, counter(10))
    with pytest.raises(ReplayError):
        guard.check_newer(1, counter(10))
    guard.check_newer(1, counter(11))
    for csb in range(2, 6):
        guard.note_rekey("a", csb, counter(1))
    assert guard.last_accepted(1) is None  # least recently used CSB forgotten
    assert guard.last_accepted(5) == counter(1).value


# -- properties ------------------------------------------------------------------------------

_ops = st.lists(
    st.tuples(
        st.floats(min_value=-5.0, max_value=40.0),  # clock step (may go back)
        st.integers(min_value=0, max_value=5),  # message id (digest)
        st.floats(min_value=-90.0, max_value=90.0),  # T - now
        st.integers(min_value=0, max_value=1),  # CSB
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(_ops, st.integers(min_value=1, max_value=12))
def test_never_accepts_twice_and_stays_bounded(
    ops: list[tuple[float, int, float, int]], max_entries: int
) -> None:
    guard = ReplayGuard(TimestampPolicy(skew=60.0), max_entries)
    accepted: set[tuple[int, bytes, bytes]] = set()
    now = latest = NOW
    for n, (step, msg, offset, csb) in enumerate(ops):
        now += step
        latest = max(latest, now)
        t = make_timestamp(round(now + offset))
        digest = bytes([msg])
        try:
            check(guard, t, now, digest, csb)
        except MikeyError as err:
            assert isinstance(err, TimestampError)
            if isinstance(err, ReplayError):
                assert (csb, t.value, digest) in accepted
        else:
            assert (csb, t.value, digest) not in accepted
            assert abs(unix_from_ntp(t.value) - now) <= 60.0
            accepted.add((csb, t.value, digest))
        assert len(guard) <= max_entries
        if now == latest and len(guard) < max_entries:
            # A fresh message on a clock that has not gone back is accepted unless full.
            fresh = make_timestamp(now)
            guard.check(fresh, peer="p", csb_id=9, digest=n.to_bytes(2, "big"), now=now)
