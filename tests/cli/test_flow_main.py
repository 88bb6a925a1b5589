"""``lrf-flow`` (the main job's entry point): usage errors exit 2, checked before the flow runs."""

import pytest

from flows.main import main


@pytest.mark.parametrize(
    "args, value",
    [
        (["--batch-size", "0"], "batch_size=0"),
        (["--model", "nope"], "model='nope'"),
        (["--device", "gpu:9"], "device='gpu:9'"),
        (["--data", "rec:/missing/train.rec"], "/missing/train.rec"),
        (["--iterations", "0"], "iterations=0"),
        (["--at-once", "0"], "at_once=0"),
        (["--rule", "magic"], "rule='magic'"),
    ],
)
def test_bad_values_exit_2_without_starting_prefect(capsys, args, value):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert value in capsys.readouterr().err
