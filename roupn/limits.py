"""Per-address rate limits and connection counts for the relay, without I/O."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ConnectionLimiter", "RateLimiter", "client_host"]


def client_host(remote_address: str) -> str:
    """Return the host part of a ``host:port`` or ``[v6]:port`` address.

    Addresses without a numeric port (in-process peers) are returned unchanged.
    """
    host, separator, port = remote_address.rpartition(":")
    if not separator or not port.isdigit():
        return remote_address
    if host.startswith("[") and host.endswith("]"):
        return host[1:-1]
    return host


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """A token bucket per key: ``rate`` events per minute, up to ``burst`` at once.

    Each key starts with a full bucket of ``burst`` tokens and regains ``rate``
    tokens per minute. Only the ``max_keys`` most recently used keys are kept, so
    memory stays bounded when many addresses appear.

    Args:
        rate: events allowed per minute and key, on average.
        burst: events allowed at once; defaults to ``rate``.
        clock: returns a monotonic time in seconds.
        max_keys: keys kept before the least recently used one is dropped.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be more than 0 per minute, not {rate}")
        if burst is not None and burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        if max_keys < 1:
            raise ValueError(f"max_keys must be at least 1, not {max_keys}")
        self.rate = rate
        self.burst = float(burst if burst is not None else rate)
        self.max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, key: str) -> bool:
        """Take one token for ``key``; return False if its bucket is empty."""
        now = self._clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        else:
            elapsed = max(0.0, now - bucket.updated)
            bucket.tokens = min(self.burst, bucket.tokens + elapsed * self.rate / 60)
            bucket.updated = now
        # Re-inserting keeps the dict in least recently used order.
        self._buckets[key] = bucket
        while len(self._buckets) > self.max_keys:
            # NOTE: a dropped key starts again with a full bucket, so an attacker
            # with more than max_keys addresses gets a burst from each.
            self._buckets.popitem(last=False)
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def __len__(self) -> int:
        return len(self._buckets)


class ConnectionLimiter:
    """Counts open connections, in total and per key, against two maximums.

    None for a maximum means no limit.
    """

    def __init__(self, max_total: int | None, max_per_key: int | None) -> None:
        for name, value in [("max_total", max_total), ("max_per_key", max_per_key)]:
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 or None, not {value}")
        self.max_total = max_total
        self.max_per_key = max_per_key
        self.total = 0
        self._per_key: dict[str, int] = {}

    def open(self, key: str) -> str | None:
        """Count a new connection for ``key``, or return why it is over a limit.

        Returns None when the connection was counted; the caller then calls
        :meth:`release` once it closes. A rejected connection is not counted.
        """
        if self.max_total is not None and self.total >= self.max_total:
            return "too_many_connections"
        count = self._per_key.get(key, 0)
        if self.max_per_key is not None and count >= self.max_per_key:
            return "too_many_connections_from_address"
        self.total += 1
        self._per_key[key] = count + 1
        return None

    def release(self, key: str) -> None:
        """Remove from the counts a connection that :meth:`open` counted."""
        count = self._per_key.get(key, 0)
        if count <= 0:
            return
        self.total -= 1
        if count == 1:
            del self._per_key[key]
        else:
            self._per_key[key] = count - 1

    def count(self, key: str) -> int:
        """Return the open connections counted for ``key``."""
        return self._per_key.get(key, 0)
