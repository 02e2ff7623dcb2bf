"""Slowing down token guessing (alerts.md 1.1), pure: the caller passes the clock.

Each remote address has a bucket of sign-in tries: `BURST` at first, one more back every
`REFILL_SECONDS`. A connection takes a try before its token is looked at and gives it back
if the token is right, so only wrong (or missing) tokens use the bucket up, and concurrent
connections cannot all be checked at once. With the bucket empty, connections from the
address are refused without looking at their token: one address can try at most `BURST`
wrong tokens at once, then 10 a minute.
"""

from __future__ import annotations

import ipaddress

BURST = 10  # wrong tokens an address may try in a row
REFILL_SECONDS = 6.0  # then one more try every 6 s
MAX_ADDRESSES = 10_000  # buckets kept; full ones are forgotten first


def address_key(host: str) -> str:
    """The throttled unit: an IPv4 address, or an IPv6 /64 (what one client usually holds)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


class AuthThrottle:
    def __init__(self, burst: int = BURST, refill_seconds: float = REFILL_SECONDS,
                 max_addresses: int = MAX_ADDRESSES) -> None:
        self.burst = burst
        self.refill_seconds = refill_seconds
        self.max_addresses = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}  # address -> (tries left, at)

    def _left(self, address: str, now: float) -> float:
        left, at = self._buckets.get(address, (self.burst, now))
        return min(self.burst, left + (now - at) / self.refill_seconds)

    def _set(self, address: str, left: float, now: float) -> None:
        self._buckets.pop(address, None)  # re-inserted last: the oldest come first
        self._buckets[address] = (left, now)
        if len(self._buckets) > self.max_addresses:
            self._forget(now)

    def take(self, address: str, now: float) -> bool:
        """Take a try for a sign-in from `address`; False: none left, refuse unchecked."""
        left = self._left(address, now)
        if left < 1:
            return False
        self._set(address, left - 1, now)
        return True

    def give_back(self, address: str, now: float) -> None:
        """The sign-in succeeded: its try was not a guess."""
        self._set(address, min(self.burst, self._left(address, now) + 1), now)

    def _forget(self, now: float) -> None:
        for address in [a for a in self._buckets if self._left(a, now) >= self.burst]:
            del self._buckets[address]
        while len(self._buckets) > self.max_addresses:  # the oldest buckets go
            del self._buckets[next(iter(self._buckets))]
