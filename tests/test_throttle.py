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
