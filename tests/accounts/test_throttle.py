"""The database-backed rate limit behind the signup, reset and password forms: per key, a fixed
window, the refused attempt not counted."""

import pytest

from clusterweb.accounts import throttle
from clusterweb.accounts.models import Throttle

pytestmark = [pytest.mark.django_db, pytest.mark.sqlite]


@pytest.fixture
def limit(settings):
    settings.ACCOUNTS_ATTEMPT_LIMIT = 3
    settings.ACCOUNTS_ATTEMPT_WINDOW_SECONDS = 600


def test_the_attempt_over_the_limit_is_refused_with_the_time_left(limit, shared_clock):
    for _ in range(3):
        assert throttle.attempt(("signup", "7")).allowed
    shared_clock.advance(60)
    refused = throttle.attempt(("signup", "7"))
    assert not refused.allowed
    assert 530 <= refused.retry_after_seconds <= 541 and refused.minutes == 9
    assert Throttle.objects.get(scope="signup", key="7").attempts == 3  # not counted


def test_a_new_window_starts_a_new_count(limit, shared_clock):
    for _ in range(3):
        throttle.attempt(("signup", "7"))
    shared_clock.advance(601)
    assert throttle.attempt(("signup", "7")).allowed


def test_keys_and_scopes_are_counted_apart(limit):
    for _ in range(3):
        throttle.attempt(("signup", "7"))
    assert throttle.attempt(("signup", "8")).allowed
    assert throttle.attempt(("reset.link", "7")).allowed


def test_an_attempt_under_several_keys_is_refused_when_any_is_full(limit):
    for _ in range(3):
        throttle.attempt(("reset.user", "bob"))
    assert not throttle.attempt(("reset.link", "1"), ("reset.user", "bob")).allowed
    # ...and counted under none of them.
    assert not Throttle.objects.filter(scope="reset.link").exists() or (
        Throttle.objects.get(scope="reset.link").attempts == 0
    )


def test_forget_clears_a_key(limit):
    for _ in range(3):
        throttle.attempt(("password.change", "bob"))
    throttle.forget("password.change", "bob")
    assert throttle.attempt(("password.change", "bob")).allowed


def test_a_long_key_is_cut_to_the_column(limit):
    assert throttle.attempt(("reset.address", "x" * 1000)).allowed
    assert Throttle.objects.get().key == "x" * 255
