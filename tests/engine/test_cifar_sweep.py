"""One real reference sweep: ResNet-18 v2 on CIFAR-10 (RecordIO copy in ../shared), batch 128.

The full reference sweep (lr 1e-6 x 1.1 per iteration, until divergence) is
about 150 iterations, 80-90 s on 2 CPU cores, so no cap is needed. What it
asserts, and why that means something:

- it stops because the reference criterion saw the loss diverge, not at a bound:
  the rate was really set on the optimizer every iteration (a sweep stuck at one
  rate would run to ``max_lr``/``max_iter``);
- the smoothed loss first falls by more than 10 %: the network really learns at
  the right rates (data, labels, normalisation and loss are wired correctly);
- the reference pick lies between 0.01 and 0.1: the rates of the 9-rate grid
  that train this network within 10 % of the grid's best loss after 100
  iterations (``benchmarks/results/regret.md``: best 0.0316, 0.01 at 1.08 x,
  0.1 at 1.04 x, 0.003 at 1.22 x and 0.3 at 1.33 x; picks over three seeds
  0.011-0.018), and well below the rate where the sweep stopped;
- every parameter and BatchNorm statistic is bit-for-bit the same afterwards.
"""


import pytest

from lrf import RULES, StopReason, find, suggest
from lrf.config import Setup
from lrf.gluon.experiment import open_learner


pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_reference_sweep_on_cifar10_resnet18(cifar10_dir):
    CIFAR10 = cifar10_dir / "train.rec"
    setup = Setup(data=f"rec:{CIFAR10}", model="resnet18_v2", batch_size=128)
    with open_learner(setup) as learner:
        before = {k: p.data().asnumpy().tobytes() for k, p in learner.net.collect_params().items()}
        result = find(learner)
        after = {k: p.data().asnumpy().tobytes() for k, p in learner.net.collect_params().items()}
    print(f"{len(result)} iterations, stopped {result.stop_reason.value} at lr={result.lrs[-1]:.3g}")
    for name in RULES:
        print(name, suggest(result, name))

    assert result.stop_reason is StopReason.DIVERGED
    assert result.lrs[-1] < result.config.max_lr
    assert min(result.smoothed) < 0.9 * result.smoothed[0]
    pick = suggest(result, "reference")
    assert pick.ok, pick.reason
    assert 0.01 <= pick.lr <= 0.1
    assert pick.lr < result.lrs[-1] / 2
    assert before == after
