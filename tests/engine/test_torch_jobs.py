"""PyTorch jobs on the session's Dask workers, as the MXNet ones: the same results as in
process, candidates paired (same weights, same batches), a refine rung that goes on from its
saved state as if it never stopped, and the batch order the MXNet engine draws."""

from pathlib import Path

import pytest

from lrf import SweepConfig, jobs
from lrf.cache import WorkCache
from lrf.config import Setup

SETUP = Setup(data="digits", engine="torch", loader_workers=0)


@pytest.fixture(scope="module")
def init_params(tmp_path_factory, local_jobs):
    return jobs.init_job(SETUP, WorkCache(tmp_path_factory.mktemp("init")), executor=local_jobs)


def test_initialisation_is_reproducible_and_a_torch_state_dict(init_params, tmp_path, local_jobs):
    from lrf.pytorch.params_file import read_layout

    again = jobs.init_job(SETUP, WorkCache(tmp_path), executor=local_jobs, slot=1)
    assert again.read_bytes() == Path(init_params).read_bytes()
    assert read_layout(init_params)["8.weight"] == ((10, 64), "float32")  # small-cnn's last layer


def test_sweep_on_a_worker_equals_the_sweep_in_process(init_params, tmp_path, local_jobs):
    from lrf.pytorch.experiment import run_sweep

    config = SweepConfig(max_iter=40)
    remote = jobs.sweep_job(SETUP, config, init_params, WorkCache(tmp_path), executor=local_jobs)
    here = run_sweep(SETUP, config, init_params=init_params)
    assert remote.losses == here.losses and remote.lrs == here.lrs and len(remote) == 40


def test_candidates_are_paired_and_a_rung_goes_on_as_if_it_never_stopped(init_params, tmp_path, local_jobs):
    def candidate(lr, name, slot, **kw):
        return jobs.candidate_job(SETUP, init_params, lr, WorkCache(tmp_path / name), executor=local_jobs, slot=slot,
                                  last_k=5, **kw)

    a = candidate(0.1, "a", 0, iterations=30)[0]
    b = candidate(0.01, "b", 1, iterations=30)[0]
    again = candidate(0.1, "c", 1, iterations=30)[0]
    assert a.losses[0] == b.losses[0]  # the first loss is before any step: same weights, same batch
    assert a.losses[1] != b.losses[1]  # then only the rate differs
    assert again.losses == a.losses  # another worker, the same numbers
    assert 0 < a.holdout_accuracy <= 1 and a.holdout_loss > 0  # digits has a held-out split
    first, state = candidate(0.1, "rung1", 0, iterations=20, saves_state=True)
    rest = candidate(0.1, "rung2", 1, iterations=10, start=20, resume_from=state)[0]
    assert first.losses + rest.losses == a.losses  # the refine plan's rungs: bit for bit


def test_both_engines_draw_the_same_batches_from_one_seed():
    import numpy as np
    from lrf.gluon.data import load_dataset as gluon_dataset, make_batch_loader as gluon_batches
    from lrf.pytorch.data import load_dataset as torch_dataset, make_batch_loader as torch_batches

    gluon = iter(gluon_batches(gluon_dataset("digits")[0], 64, 0, seed=5, start=2))
    torch = iter(torch_batches(torch_dataset("digits")[0], 64, 0, seed=5, start=2))
    for _ in range(30):  # past the end of the first pass (1500 samples)
        (gx, gy), (tx, ty) = next(gluon), next(torch)
        assert np.array_equal(gx.asnumpy(), tx.numpy()) and np.array_equal(gy.asnumpy().astype(int), ty.numpy())
