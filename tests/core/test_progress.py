"""The time left of a phase, and the scan's steps as a progress bar sees them."""

from __future__ import annotations

from helpers import copy_demo

from core.engine import Engine
from core.progress import TimeLeft


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _old_estimate(start: float, now: float, done: int, total: int) -> float:
    """What the status bar said before: the phase's elapsed time per item, times the items left."""
    return (now - start) / done * (total - done)


def test_time_left_ignores_the_start_up_before_the_first_batch():
    """1,000 photos in batches of 16 every 0.5 s after a 3 s start-up: at 10 % the estimate is within 30 %
    of the truth (timed from the phase's start it said 78 % too much)."""
    clock = Clock()
    left = TimeLeft(clock)
    total, start = 1000, clock.now
    assert left.update(0, total) is None
    clock.now += 3.0  # model load, thread start-up, the first batch
    done = 16
    assert left.update(done, total) is None  # nothing measured yet
    estimates = []
    while done < total:
        clock.now += 0.5
        done = min(total, done + 16)
        estimates.append((done, left.update(done, total), clock.now))
    for done, estimate, now in estimates:
        truth = (total - done) / 16 * 0.5
        if done <= 160 and now - start > 3.0 + 1.0:  # the first 10 % or so, once settled
            assert abs(estimate - truth) <= 0.3 * truth, (done, estimate, truth)
            old = _old_estimate(start, now, done, total)
            assert abs(old - truth) > 0.3 * truth  # the bug this replaces
    assert estimates[-1][1] == 0


def test_time_left_restarts_with_each_phase_and_waits_to_settle():
    clock = Clock()
    left = TimeLeft(clock, settle=1.0)
    left.update(10, 100)
    clock.now += 0.5
    assert left.update(20, 100) is None  # under a second of measured work
    clock.now += 0.5
    assert left.update(30, 100) == 70 * 1.0 / 20
    left.update(5, 40)  # a new phase (another total): no estimate from the old pace
    clock.now += 2.0
    assert left.update(10, 40) == 30 * 2.0 / 5


def test_the_model_load_is_its_own_step_before_reading(tmp_path):
    folder = copy_demo(tmp_path / "photos", ["Camera/ladybird.jpg", "Camera/kite_sky.jpg"])
    seen = []
    Engine(device="cpu", cache_dir=tmp_path / "cache").scan([folder], progress=lambda *a: seen.append(a))
    messages = [m for _, _, m in seen]
    load = messages.index("Loading the model")
    reading = next(k for k, (_, total, m) in enumerate(seen) if m.startswith("Reading") and total == 2)
    assert load < reading and seen[load][:2] == (0, 0)
