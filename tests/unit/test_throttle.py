"""The sign-in throttle (alerts/throttle.py) on an explicit clock: how many wrong tokens one
address may try, and when it may try again. The gateway's use of it is in test_gateway.py."""

from __future__ import annotations

from ccmon.alerts.throttle import BURST, REFILL_SECONDS, AuthThrottle, address_key

HOME = "10.0.0.7"


def wrong_tries(throttle: AuthThrottle, address: str, attempts: int, now: float) -> int:
    """How many of `attempts` wrong tokens at `now` had their token looked at."""
    return sum(throttle.take(address, now) for _ in range(attempts))


def test_an_address_may_try_a_burst_of_wrong_tokens_then_nothing_not_even_the_right_one():
    throttle = AuthThrottle()
    assert wrong_tries(throttle, HOME, 100, now=0.0) == BURST
    assert not throttle.take(HOME, 0.0)  # the right token would not be looked at either
    assert throttle.take("10.0.0.8", 0.0)  # another address is not concerned


def test_one_try_comes_back_per_refill_period_up_to_the_burst():
    throttle = AuthThrottle()
    wrong_tries(throttle, HOME, BURST, now=0.0)
    assert wrong_tries(throttle, HOME, 5, now=REFILL_SECONDS) == 1
    assert wrong_tries(throttle, HOME, 5, now=REFILL_SECONDS * 3.5) == 2
    # A day later the address has its burst again, no more.
    assert wrong_tries(throttle, HOME, 100, now=86_400.0) == BURST


def test_a_right_token_gives_its_try_back():
    throttle = AuthThrottle()
    for _ in range(3 * BURST):  # a supervisor reconnecting all day
        assert throttle.take(HOME, 0.0)
        throttle.give_back(HOME, 0.0)
    assert wrong_tries(throttle, HOME, 100, now=0.0) == BURST


def test_concurrent_sign_ins_cannot_all_be_checked_at_once():
    throttle = AuthThrottle()
    taken = [throttle.take(HOME, 0.0) for _ in range(50)]  # none has finished yet
    assert sum(taken) == BURST


def test_buckets_are_forgotten_when_there_are_too_many_full_ones_first():
    throttle = AuthThrottle(max_addresses=3)
    wrong_tries(throttle, HOME, BURST, now=0.0)
    for n in range(10):
        throttle.take(f"10.1.0.{n}", 0.0)
        throttle.give_back(f"10.1.0.{n}", 0.0)  # full again: forgettable
    assert not throttle.take(HOME, 0.0)  # still empty: kept


def test_an_ipv6_client_is_throttled_by_its_64_an_ipv4_one_by_its_address():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") != address_key("2001:db8:1:3::1")
    assert address_key("::ffff:192.0.2.1") == address_key("192.0.2.1") == "192.0.2.1"


def test_the_defaults_are_10_wrong_tokens_at_once_then_one_every_6_seconds():
    """The numbers the gateway runs with (literals: a changed default shows)."""
    throttle = AuthThrottle()
    assert wrong_tries(throttle, HOME, 100, now=0.0) == 10
    assert wrong_tries(throttle, HOME, 100, now=5.999) == 0
    assert wrong_tries(throttle, HOME, 100, now=6.0) == 1
    assert wrong_tries(throttle, HOME, 100, now=66.0) == 10  # 10 a minute


def test_fractions_of_a_try_add_up():
    throttle = AuthThrottle()
    wrong_tries(throttle, HOME, BURST - 1, now=0.0)  # one try left
    # At 3 s: 1 + 3/6 = 1.5 tries, one taken; at 6 s the half left and 3/6 more make one.
    assert wrong_tries(throttle, HOME, 5, now=REFILL_SECONDS / 2) == 1
    assert wrong_tries(throttle, HOME, 5, now=REFILL_SECONDS) == 1


def test_a_right_token_gives_back_exactly_its_own_try():
    throttle = AuthThrottle()
    wrong_tries(throttle, HOME, 5, now=0.0)
    assert throttle.take(HOME, 0.0)
    throttle.give_back(HOME, 0.0)
    assert wrong_tries(throttle, HOME, 100, now=0.0) == BURST - 5


def test_beyond_the_limit_the_oldest_buckets_go_even_when_not_full():
    throttle = AuthThrottle(max_addresses=3)
    first, *kept = [f"10.2.0.{n}" for n in range(4)]
    for address in (first, *kept):
        wrong_tries(throttle, address, BURST, now=0.0)
    # The fourth bucket made one too many: the oldest went, and only it.
    assert [throttle.take(address, 0.0) for address in kept] == [False, False, False]
    assert wrong_tries(throttle, first, 100, now=0.0) == BURST


def test_the_buckets_of_10_000_addresses_are_kept_by_default():
    throttle = AuthThrottle()
    addresses = [f"10.3.{n // 256}.{n % 256}" for n in range(10_001)]
    for address in addresses:
        throttle.take(address, 0.0)  # each one wrong try: none is full
    assert wrong_tries(throttle, addresses[1], 100, now=0.0) == BURST - 1  # kept
    assert wrong_tries(throttle, addresses[0], 100, now=0.0) == BURST  # the oldest, forgotten


def test_a_host_that_is_not_an_ip_address_is_its_own_unit():
    assert address_key("gateway.internal") == "gateway.internal"
