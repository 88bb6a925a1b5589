"""One lr-finder flow run in a fresh process, as ``lrf-flow`` runs it, timed.

``python -m benchmarks._flow_run PARAMS_JSON`` (with ``PREFECT_API_URL`` pointing
at a running API) imports the flow, runs ``lr_finder(**PARAMS)``, then an empty
flow of the same shape (no-op tasks; as many candidates as the run had, scheduled
as the flow schedules them: :func:`lrf.execution.lanes` over the run's cluster's slots),
and prints one line ``BENCH-RESULT {json}`` with the import time, the flow's wall
time, its flow-run id and the empty flow's wall.
"""

from __future__ import annotations

import json
import os
import sys
import time

MARK = "BENCH-RESULT "


def main(argv: list[str]) -> int:
    params = json.loads(argv[0])
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    started = time.perf_counter()
    from prefect import flow, task

    from flows.lr_finder import lr_finder
    from lrf.execution import lanes
    imports = time.perf_counter() - started

    started = time.perf_counter()
    state = lr_finder(**params, return_state=True)
    wall = time.perf_counter() - started
    summary = state.result()

    @task(name="noop")
    def noop(x):
        return x

    @flow(name="noop-lr-finder-shape")
    def empty(num_candidates: int, at_once: int) -> int:
        # the lr-finder flow's shape: six tasks, the candidates' submitted ones in the flow's lanes, one more
        x = 0
        for _ in range(6):
            x = noop(x)
        futures: dict[int, object] = {}
        for lane in lanes(num_candidates, at_once):
            previous = []
            for i in lane:
                futures[i] = noop.submit(i, wait_for=previous)
                previous = [futures[i]]
        return noop([futures[i].result() for i in sorted(futures)])

    started = time.perf_counter()
    empty(len(summary["candidates"]), lanes_of(summary))  # as many, as the run scheduled them
    empty_wall = time.perf_counter() - started
    print(MARK + json.dumps({"imports": imports, "wall": wall, "flow_run_id": str(state.state_details.flow_run_id),
                             "run_dir": summary["run_dir"], "empty_wall": empty_wall}), flush=True)
    return 0


def lanes_of(summary: dict) -> int:
    """How many lanes the run's candidates had: one per slot of the cluster the flow started
    (:func:`lrf.cluster.local_slots`: ``at_once``, or one per device; on CPU 3, or one per core on fewer)."""
    from lrf.cluster import local_slots
    from lrf.config import parse_devices

    execution = summary["execution"]
    if execution.get("cluster"):  # a given cluster's width is not recorded; the benchmarks do not use one
        raise ValueError("benchmarks._flow_run runs the flow on a cluster of its own only")
    return len(local_slots(parse_devices(summary["setup"]["device"]), execution.get("at_once")))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
