"""lrf's benchmarks: ``uv run --locked python -m benchmarks [--quick] [--only NAME[,NAME]]``.

Each benchmark is a module here with ``run(quick) -> Report``; each prints its
tables and writes ``results/NAME.json`` and ``results/NAME.md``
(``results/quick/`` for ``--quick``), and the suite writes ``README.md`` there
with every table. Every figure is a ratio of two things measured in the same
run, interleaved: the machine is shared and noisy.
"""
