"""One lr-finder flow run in a fresh process, as ``lrf-flow`` runs it, timed.

``python -m benchmarks._flow_run PARAMS_JSON`` (with ``PREFECT_API_URL`` pointing
at a running API) imports the flow, runs ``lr_finder(**PARAMS)``, then an empty
flow with the same ten tasks, and prints one line ``BENCH-RESULT {json}`` with
the import time, the flow's wall time, its flow-run id and the empty flow's wall.
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
    imports = time.perf_counter() - started

    started = time.perf_counter()
    state = lr_finder(**params, return_state=True)
    wall = time.perf_counter() - started
    summary = state.result()

    @task(name="noop")
    def noop(x):
        return x

    @flow(name="noop-ten-tasks")
    def empty(parallel: int = 1) -> int:
        # the lr-finder flow's shape: six tasks, three chained submitted ones, one more
        x = 0
        for _ in range(6):
            x = noop(x)
        futures = []
        for i in range(3):
            futures.append(noop.submit(i, wait_for=futures[i - parallel: i - parallel + 1] if i >= parallel else []))
        return noop([f.result() for f in futures])

    started = time.perf_counter()
    empty()
    empty_wall = time.perf_counter() - started
    print(MARK + json.dumps({"imports": imports, "wall": wall, "flow_run_id": str(state.state_details.flow_run_id),
                             "run_dir": summary["run_dir"], "empty_wall": empty_wall}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
