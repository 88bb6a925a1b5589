import math

import pytest

from lrf import StopReason, SweepConfig, find
from tests.core.quadratic import QuadraticLearner


def test_first_call_materialises_without_a_step_then_sweeps():
    learner = QuadraticLearner()
    find(learner, max_iter=3)
    assert learner.calls[0] == (None, False)
    assert [take for _, take in learner.calls[1:]] == [True, True, True]


def test_quadratic_diverges_just_above_two_over_a():
    a = 4.0
    learner = QuadraticLearner(a=a)
    result = find(learner)
    assert result.stop_reason is StopReason.DIVERGED
    critical = 2 / a
    # the loss never grows while lr < 2/a (SGD contracts w), so divergence needs lr > 2/a
    below = [loss for lr, loss in zip(result.lrs, result.losses) if lr < critical]
    assert all(b <= a_ for a_, b in zip(below, below[1:]))
    assert result.lrs[-1] > critical
    assert result.lrs == tuple(1e-6 * 1.1**i for i in range(len(result)))
    # closed form: each step multiplies the loss by (1 - lr * a)^2
    expected, loss = [], result.losses[0]
    for lr in result.lrs:
        expected.append(loss)
        loss *= (1 - lr * a) ** 2
    assert result.losses == pytest.approx(expected, rel=1e-9)
    # the stop is the first point where the smoothed loss exceeds 2 x the first
    assert result.smoothed[-1] > 2 * result.losses[0] >= max(result.smoothed[19:-1])


def test_model_and_optimizer_state_restored_bit_for_bit():
    learner = QuadraticLearner()
    learner.iteration(None, take_step=False)  # what find() does first; no state change
    before = learner.state()
    find(learner)
    assert learner.state() == before


def test_restored_when_the_learner_raises():
    learner = QuadraticLearner()
    before = learner.state()
    learner.fail_at = 30
    with pytest.raises(RuntimeError, match="injected"):
        find(learner)
    assert learner.state() == before


def test_restored_when_interrupted():
    learner = QuadraticLearner()
    before = learner.state()

    def interrupt(progress):
        if progress.iteration == 10:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        find(learner, progress=interrupt)
    assert learner.num_updates == 0 and learner.state() == before


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_stops_at_once(bad):
    learner = QuadraticLearner()
    before = learner.state()
    learner.loss_override[8] = bad  # call 0 is the materialising one: sweep iteration 7
    result = find(learner)
    assert result.stop_reason is StopReason.NON_FINITE
    assert len(result) == 8
    assert result.losses[-1] is bad or math.isnan(result.losses[-1])
    assert math.isnan(result.smoothed[-1])
    assert learner.state() == before


def test_max_lr_bounds_a_loss_that_never_diverges():
    learner = QuadraticLearner(a=1.0)  # diverges only above lr = 2
    result = find(learner, max_lr=1.0)
    assert result.stop_reason is StopReason.MAX_LR
    assert result.lrs[-1] <= 1.0 < result.lrs[-1] * 1.1


def test_max_iter_bounds_the_sweep():
    result = find(QuadraticLearner(), max_iter=25)
    assert result.stop_reason is StopReason.MAX_ITER
    assert len(result) == 25


def test_range_schedules_end_at_lr_end():
    result = find(QuadraticLearner(a=1.0), lr_start=1e-3, lr_end=1.0, max_iter=31, schedule="linear")
    assert result.stop_reason is StopReason.MAX_ITER
    assert result.lrs[0] == 1e-3 and result.lrs[-1] == 1.0
    assert result.lrs[1] - result.lrs[0] == pytest.approx((1.0 - 1e-3) / 30)


def test_progress_reports_every_iteration():
    seen = []
    result = find(QuadraticLearner(), progress=seen.append, max_iter=12)
    assert [p.iteration for p in seen] == list(range(12))
    assert [p.lr for p in seen] == list(result.lrs)
    assert [p.smoothed_loss for p in seen] == list(result.smoothed)


def test_result_carries_the_config_used():
    config = SweepConfig(lr_start=1e-5, smoothing=0.5)
    result = find(QuadraticLearner(), config, max_iter=50)
    assert result.config == SweepConfig(lr_start=1e-5, smoothing=0.5, max_iter=50)


def test_repeated_sweeps_are_identical():
    learner = QuadraticLearner()
    assert find(learner) == find(learner)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"lr_start": 0}, "lr_start=0"),
        ({"lr_start": -1e-6}, "lr_start=-1e-06"),
        ({"lr_multiplier": 1}, "lr_multiplier=1"),
        ({"smoothing": 1.5}, "smoothing=1.5"),
        ({"min_iter": 0}, "min_iter=0"),
        ({"max_iter": 0}, "max_iter=0"),
        ({"max_lr": math.inf}, "max_lr=inf"),
        ({"lr_start": 20.0}, "lr_start=20.0"),
        ({"lr_end": 100.0}, "lr_end=100.0"),
        ({"lr_end": 1e-7}, "lr_end=1e-07"),
        ({"schedule": "cosine"}, "schedule='cosine'"),
        ({"schedule": "linear"}, "lr_end=None"),
        ({"criterion": "magic"}, "criterion='magic'"),
    ],
)
def test_bad_config_raises_before_the_learner_is_touched(overrides, message):
    learner = QuadraticLearner()
    with pytest.raises(ValueError, match=message):
        find(learner, **overrides)
    assert learner.calls == []


def test_not_a_learner_is_a_type_error():
    with pytest.raises(TypeError, match="lacks snapshot, restore"):
        find(type("OnlyIteration", (), {"iteration": lambda self, lr=None, take_step=True: 1.0})())


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed one, on purpose
def test_a_ctrl_c_swallowed_by_a_destructor_still_stops_the_sweep_and_restores(monkeypatch):
    """Python ignores an exception raised in ``__del__`` (MXNet's arrays' run all the time):
    a Ctrl-C that lands there must not be lost (issue 21: the CLI ran on 240 s after it)."""
    import os
    import signal

    from lrf import _signals

    monkeypatch.setattr(_signals, "_received", [])
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _signals.interrupt_on_sigint()  # what lrf find's main installs

    class Destructor:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside __del__
            sum(range(10_000))

    learner = QuadraticLearner()
    before = learner.state()
    original = learner.iteration

    def iteration(lr=None, take_step=True):
        if len(learner.calls) == 5:
            Destructor()  # collected at once: "Exception ignored in ... __del__", KeyboardInterrupt swallowed
        return original(lr, take_step)

    learner.iteration = iteration
    try:
        with pytest.raises(KeyboardInterrupt):
            find(learner, SweepConfig(max_iter=200))
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 5 <= len(learner.calls) <= 7  # stopped within an iteration of the signal
    assert learner.state() == before  # and restored
