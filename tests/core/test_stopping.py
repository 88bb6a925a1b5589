import pytest

from lrf.stopping import BestCriterion, TwiceFirstCriterion, make_criterion


def feed(criterion, losses):
    return [criterion(loss) for loss in losses]


def test_running_mean_weights_the_old_mean_by_smoothing():
    criterion = TwiceFirstCriterion(smoothing=0.3, min_iter=1)
    (first, _), (second, _) = feed(criterion, [1.0, 2.0])
    assert first == 1.0
    assert second == pytest.approx(0.7 * 2.0 + 0.3 * 1.0)


def test_zero_smoothing_means_no_smoothing():
    criterion = TwiceFirstCriterion(smoothing=0.0, min_iter=1)
    assert [s for s, _ in feed(criterion, [3.0, 1.0, 7.0])] == [3.0, 1.0, 7.0]


def test_stops_exactly_at_min_iter_when_mean_exceeds_twice_first():
    # smoothing 0: mean is the loss; losses after the first are > 2 x first throughout
    criterion = TwiceFirstCriterion(smoothing=0.0, min_iter=5)
    verdicts = [stop for _, stop in feed(criterion, [1.0, 3.0, 3.0, 3.0, 3.0, 3.0])]
    assert verdicts == [False, False, False, False, True, True]


def test_mean_equal_to_twice_first_does_not_stop():
    criterion = TwiceFirstCriterion(smoothing=0.0, min_iter=1)
    assert [stop for _, stop in feed(criterion, [1.5, 3.0, 3.0000001])] == [False, False, True]


def test_first_loss_never_changes():
    criterion = TwiceFirstCriterion(smoothing=0.0, min_iter=1)
    feed(criterion, [2.0, 0.1, 0.1, 3.9])
    assert criterion.first_loss == 2.0
    assert criterion(4.1)[1] is True


def test_the_default_criterion_behaves_as_the_spec_says():
    # SPEC §5: no stop before the 20th loss, however high; then a stop once the mean, weighting
    # the old mean by 0.3, passes twice the first loss
    criterion = make_criterion()
    smoothed, stops = zip(*feed(criterion, [1.0] + [50.0] * 18 + [1.0, 1.0, 1.0]))
    assert not any(stops[:19]) and stops[19]  # the 20th loss stops: the mean is still far above 2
    assert smoothed[1] == pytest.approx(0.7 * 50 + 0.3 * 1.0)
    criterion = make_criterion()
    assert not any(stop for _, stop in feed(criterion, [1.0] * 19 + [2.0] * 30))  # 2 x first is not above it


def test_non_positive_first_loss_does_not_stop_at_once():
    # 2 x a negative first loss lies below it; the rule compares first + |first| instead
    criterion = TwiceFirstCriterion(smoothing=0.0, min_iter=1)
    assert [stop for _, stop in feed(criterion, [-1.0, -1.5, -0.5, 0.5])] == [False, False, False, True]


def test_best_criterion_compares_with_best_smoothed():
    criterion = BestCriterion(smoothing=0.0, min_iter=1, factor=4.0)
    verdicts = [stop for _, stop in feed(criterion, [2.0, 0.5, 1.9, 2.1])]
    assert verdicts == [False, False, False, True]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"smoothing": 1.0}, "smoothing=1.0"),
        ({"smoothing": -0.1}, "smoothing=-0.1"),
        ({"min_iter": 0}, "min_iter=0"),
        ({"name": "nope"}, "criterion='nope'"),
    ],
)
def test_bad_criterion_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_criterion(**kwargs)
