"""The flow's init and sweep work in one plain process, timed after the imports.

``python -m benchmarks._reference_compute SETUP_JSON CONFIG_JSON FOLDER`` builds
and saves the initial parameters (as the ``initialise-model`` job does) and runs
the sweep from them (as the ``lr-sweep`` job does), and prints one JSON line
``{"data": seconds, "init": seconds, "sweep": seconds, "iterations": n}`` (data: loading
the data set cold, once). A process of its own,
like the jobs, so the MXNet threads and loader workers are the jobs' own.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    setup_json, config_json, folder = argv
    from lrf.gluon.data import load_dataset
    from lrf.config import Setup, SweepConfig
    from lrf.gluon.experiment import build_network, run_sweep
    from lrf.gluon.models import save_parameters

    setup = Setup(**json.loads(setup_json))
    config = SweepConfig.from_dict(json.loads(config_json))
    init_params = Path(folder) / "reference-init.params"
    started = time.perf_counter()
    load_dataset(setup.data_spec, "train")  # cold: what every job pays inside its own clock too
    data = time.perf_counter() - started
    started = time.perf_counter()
    net, _, _, _ = build_network(setup)
    save_parameters(net, init_params)
    init = time.perf_counter() - started
    del net
    started = time.perf_counter()
    result = run_sweep(setup, config, init_params=init_params)
    sweep = time.perf_counter() - started
    print(json.dumps({"data": data, "init": init, "sweep": sweep, "iterations": len(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
