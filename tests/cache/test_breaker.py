from __future__ import annotations

import pytest

from faceflow.cache.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def changes() -> list[bool]:
    return []


@pytest.fixture
def breaker(clock: FakeClock, changes: list[bool]) -> CircuitBreaker:
    return CircuitBreaker(3, 2.0, clock=clock, on_change=changes.append)


# Each step: (action, seconds to advance first, expected state after, expected allow() result)
# "f" = record_failure, "s" = record_success, "a" = allow (expectation checked), "-" = only wait
STEPS: dict[str, list[tuple[str, float, str]]] = {
    "opens-after-threshold": [("f", 0, "closed"), ("f", 0, "closed"), ("f", 0, "open")],
    "success-resets-count": [
        ("f", 0, "closed"),
        ("f", 0, "closed"),
        ("s", 0, "closed"),
        ("f", 0, "closed"),
        ("f", 0, "closed"),
        ("f", 0, "open"),
    ],
    "half-open-after-reset": [
        ("f", 0, "closed"),
        ("f", 0, "closed"),
        ("f", 0, "open"),
        ("-", 1.9, "open"),
        ("-", 0.1, "half_open"),
    ],
    "trial-success-closes": [
        ("f", 0, "closed"),
        ("f", 0, "closed"),
        ("f", 0, "open"),
        ("a", 2.0, "half_open"),
        ("s", 0, "closed"),
    ],
    "trial-failure-reopens": [
        ("f", 0, "closed"),
        ("f", 0, "closed"),
        ("f", 0, "open"),
        ("a", 2.0, "half_open"),
        ("f", 0, "open"),
        ("-", 1.9, "open"),
        ("-", 0.1, "half_open"),
    ],
    "stale-success-while-open-ignored": [
        ("f", 0, "closed"),
        ("f", 0, "closed"),
        ("f", 0, "open"),
        ("s", 0.5, "open"),
    ],
}


@pytest.mark.parametrize("name", list(STEPS))
def test_state_machine(name: str, breaker: CircuitBreaker, clock: FakeClock) -> None:
    for action, wait_s, expected in STEPS[name]:
        clock.now += wait_s
        if action == "f":
            breaker.record_failure()
        elif action == "s":
            breaker.record_success()
        elif action == "a":
            assert breaker.allow()
        assert breaker.state == BreakerState(expected), (name, action, wait_s)


def test_open_refuses_then_allows_exactly_one_trial(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        assert breaker.allow()
        breaker.record_failure()
    assert not breaker.allow()
    clock.now += 2.0
    assert breaker.allow()
    assert not breaker.allow()  # the trial is in flight
    assert breaker.is_open


def test_unreported_trial_stops_blocking_after_reset(
    breaker: CircuitBreaker, clock: FakeClock
) -> None:
    for _ in range(3):
        breaker.record_failure()
    clock.now += 2.0
    assert breaker.allow()
    clock.now += 1.0
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()  # the first trial's caller never reported: allow another


def test_on_change_reports_open_and_close_once(
    breaker: CircuitBreaker, clock: FakeClock, changes: list[bool]
) -> None:
    for _ in range(5):
        breaker.record_failure()
    assert changes == [True]
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_failure()  # failed trial: still open, no new event
    assert changes == [True]
    clock.now += 2.0
    assert breaker.allow()
    breaker.record_success()
    assert changes == [True, False]
    assert not breaker.is_open
    assert breaker.allow()


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, 0.0), (1, -1.0)])
def test_bad_configuration_is_refused(failures: int, reset_s: float) -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        CircuitBreaker(failures, reset_s)
