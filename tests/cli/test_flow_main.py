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


def test_the_optimizer_and_its_parameters_from_a_table_or_the_command_line(tmp_path, capsys):
    from flows.main import build_parser, parameters, validate

    config = tmp_path / "run.toml"
    config.write_text('optimizer = "adam"\n[optimizer_params]\nbeta1 = 0.8\nwd = 1e-4\n')
    params = parameters(build_parser(), ["--config", str(config)])
    assert (params["optimizer"], params["optimizer_params"]) == ("adam", {"beta1": 0.8, "wd": 1e-4})
    given = parameters(build_parser(), ["--optimizer", "nag", "--optimizer-params", "momentum=0.9", "wd=5e-4"])
    assert given["optimizer_params"] == {"momentum": 0.9, "wd": 5e-4}
    validate(build_parser(), given)  # accepted as it is
    with pytest.raises(SystemExit) as exit_:
        validate(build_parser(), {**given, "optimizer": "adam"})  # adam has no momentum
    assert exit_.value.code == 2
    assert "argument --optimizer-params: optimizer_params={'momentum': 0.9}: optimizer='adam' takes" in \
        capsys.readouterr().err


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


def _dead_address() -> str:
    """An API URL on a local port nobody listens on."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


def test_a_prefect_api_nobody_answers_at_is_one_line_exit_2(tmp_path, capsys):
    import time

    from prefect.settings import PREFECT_API_URL, temporary_settings

    dead = _dead_address()
    started = time.monotonic()
    with temporary_settings(updates={PREFECT_API_URL: dead}), pytest.raises(SystemExit) as exit_:
        main(["--output-root", str(tmp_path / "runs")])
    assert exit_.value.code == 2 and time.monotonic() - started < 30
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"PREFECT_API_URL={dead}" in lines[0] and "no Prefect API answers" in lines[0], lines
    assert not (tmp_path / "runs").exists()


def test_a_prefect_home_that_cannot_be_written_is_one_line_exit_2(tmp_path, capsys):
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    from tests.support.read_only import read_only_folder

    with read_only_folder(tmp_path / "read-only") as home:
        with temporary_settings(updates={PREFECT_HOME: str(home)}, restore_defaults={PREFECT_API_URL}):
            with pytest.raises(SystemExit) as exit_:
                main(["--output-root", str(tmp_path / "runs")])
    assert exit_.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"PREFECT_HOME={str(home)!r}" in lines[0] and "not writable" in lines[0], lines


def test_lrf_flow_with_prefect_home_below_a_file_says_so_in_one_line(tmp_path):
    """As a user meets it: Prefect itself warns when it is imported; lrf-flow says it once."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    (tmp_path / "a-file").write_text("")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PREFECT_HOME"] = str(tmp_path / "a-file" / "prefect")
    done = subprocess.run([sys.executable, "-m", "flows.main", "--output-root", str(tmp_path / "runs")],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "PREFECT_HOME=" in lines[0] and "lies below a file" in lines[0], lines


def test_the_temporary_server_gets_its_longer_start_up_limit_though_prefect_is_imported(monkeypatch):
    """Prefect reads its environment when imported: defaults set as variables afterwards were ignored."""
    from prefect.settings import PREFECT_SERVER_ANALYTICS_ENABLED, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    from flows.main import DEFAULTS, prefect_defaults

    monkeypatch.delenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("PREFECT_SERVER_ANALYTICS_ENABLED", raising=False)
    with prefect_defaults():
        assert PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value() == int(
            DEFAULTS["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"]) > 20
        assert PREFECT_SERVER_ANALYTICS_ENABLED.value() is False
