"""The flow's init and sweep work in one plain process, timed after the imports.

``python -m benchmarks._reference_compute SETUP_JSON CONFIG_JSON FOLDER`` runs (in a new cache
under FOLDER) the
``initialise-model`` job and then one ``lr-sweep`` job from its parameters, in this
process (:class:`lrf.jobs.JobStages` over :class:`lrf.cluster.InProcess`), and prints one JSON line
``{"data": seconds, "init": seconds, "sweep": seconds, "iterations": n}`` (data: loading
the data set cold, once). A process of its own,
like the jobs, so the MXNet threads and loader workers are the jobs' own.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(argv: list[str]) -> int:
    setup_json, config_json, folder = argv
    from benchmarks._common import in_process_stages
    from lrf.config import CandidatePlan, Setup, SweepConfig
    from lrf.gluon.data import load_dataset

    # a cache of its own every time: a sweep cached by an earlier round would be timed as no compute
    fresh = Path(folder) / f"reference-{os.getpid()}-{time.monotonic_ns()}"
    stages = in_process_stages(Setup(**json.loads(setup_json)), CandidatePlan(), fresh,
                               SweepConfig.from_dict(json.loads(config_json)))
    started = time.perf_counter()
    load_dataset(stages.setup.data_spec, "train")  # cold: what every job pays inside its own clock too
    data = time.perf_counter() - started
    started = time.perf_counter()
    init_params = stages.initialise()
    init = time.perf_counter() - started
    started = time.perf_counter()
    [result] = stages.sweep(init_params, 1)
    sweep = time.perf_counter() - started
    print(json.dumps({"data": data, "init": init, "sweep": sweep, "iterations": len(result)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
