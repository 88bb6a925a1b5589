"""``lrf-flow`` (the main job's entry point): usage errors exit 2, checked before the flow runs."""

import inspect

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
        (["--seed", "-3"], "seed=-3"),
        (["--lr-start", "0"], "lr_start=0.0"),
        (["--candidate-rates", "0.1", "0.1"], "must not repeat"),
        (["--plan", "grid"], "plan='grid'"),
        (["--refine-rates", "1"], "refine_rates=1"),
        (["--rungs", "0"], "rungs=0"),
        (["--plan", "refine", "--rungs", "1"], "rungs=1"),
        (["--batch-size", "abc"], "invalid int value: 'abc'"),
        (["--device", "gpu:all"], "argument --device: device='gpu:all' asks for every GPU"),
        (["--device", "gpu:0,gpu:0"], "argument --device: device lists a GPU twice"),
        (["--cluster", "localhost:8786"], "argument --cluster: cluster must be a Dask scheduler address"),
        (["--cluster", "tcp://127.0.0.1:9"], "argument --cluster: cluster='tcp://127.0.0.1:9': no Dask scheduler"),
        (["--init-params", "/missing.params"], "argument --init-params: init_params='/missing.params' is not a file"),
    ],
)
def test_bad_values_exit_2_without_starting_prefect(capsys, args, value):
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 2
    assert value in capsys.readouterr().err


def test_every_flow_parameter_is_an_option_with_its_description():
    from flows.lr_finder import lr_finder
    from flows.main import build_parser

    parser = build_parser()
    options = {a.dest: a for a in parser._actions}
    for name in inspect.signature(lr_finder.fn).parameters:
        assert name in options, name
        assert options[name].help, f"--{name} has no description"
    assert "(default: None)" not in parser.format_help()


def test_config_file_then_command_line(tmp_path):
    from flows.main import build_parser, parameters

    config = tmp_path / "run.toml"
    config.write_text('seed = 7\ncandidate_rates = [0.05, 0.5]\nplan = "refine"\niterations = 90\n')
    params = parameters(build_parser(), ["--config", str(config), "--iterations", "120", "--lr-start", "1e-5"])
    assert params["seed"] == 7 and params["candidate_rates"] == (0.05, 0.5) and params["plan"] == "refine"
    assert params["iterations"] == 120 and params["lr_start"] == 1e-5  # the command line wins
    assert parameters(build_parser(), ["--recompute"])["recompute"] is True
    assert parameters(build_parser(), [])["recompute"] is False


@pytest.mark.parametrize("text, message", [
    ("sed = 7\n", "unknown key(s) sed"),
    ("seed = \n", "cannot read"),
    ('batch_size = "abc"\n', "batch_size='abc'"),
])
def test_bad_config_files_exit_2_naming_the_problem(tmp_path, capsys, text, message):
    config = tmp_path / "run.toml"
    config.write_text(text)
    with pytest.raises(SystemExit) as exit_:
        main(["--config", str(config)])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
