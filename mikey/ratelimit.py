"""Token buckets per source address (sans-IO: ``now`` is passed in), for work a peer can make a
server do before it has authenticated: building a signed or Diffie-Hellman MIKEY I_MESSAGE for an
RTSP DESCRIBE, a new SIP server transaction, a new RTSP connection. Both glue packages use this
one implementation.

Each source gets ``burst`` tokens, refilled at ``rate`` per second; one costly operation takes
one token. The table of sources is bounded (``max_sources``, least recently seen dropped first),
so a flood of addresses costs memory in proportion to the bound only; a dropped source starts
again with a full bucket, which is the price of the bound. IPv6 sources are grouped by their
/64 prefix (one host usually owns a whole /64); IPv4-mapped IPv6 addresses count as IPv4.
"""

from __future__ import annotations

import ipaddress
import math
from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["SourceRateLimiter", "source_key"]


def source_key(host: str) -> str:
    """The bucket a peer address belongs to: the IPv4 address, or the IPv6 /64 prefix."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0].strip("[]"))
    except ValueError:
        return host  # not an address (a Unix socket path, a test double): itself
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float
    limited: bool = False


class SourceRateLimiter:
    """``rate`` operations per second per source, bursts up to ``burst``; see the module doc."""

    def __init__(self, rate: float = 5.0, burst: int = 20, max_sources: int = 4096) -> None:
        if not (rate > 0 and math.isfinite(rate)) or burst < 1 or max_sources < 1:
            raise ValueError("rate must be positive and finite, burst and max_sources >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_sources = max_sources
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: str, now: float) -> tuple[float, bool]:
        """Take one token for ``source`` at time ``now``.

        Returns ``(wait, first)``: ``wait`` is 0.0 when the token was granted, otherwise the
        seconds until one will be; ``first`` is True on the first refusal after the source was
        last served (so a caller can log one line per episode, not one per refused request).
        """
        key = source_key(source)
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.stamp)  # a clock stepping back refills nothing
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.stamp = now
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            bucket.limited = False
            return 0.0, False
        first = not bucket.limited
        bucket.limited = True
        return (1.0 - bucket.tokens) / self.rate, first
