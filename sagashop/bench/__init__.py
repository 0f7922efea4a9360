"""Tooling around the product, not part of it: the load generator behind `python run.py bench`.

`scenarios` says what a run buys, `load` drives it through the front doors, `system` starts a
system in processes of its own when no `--url` is given, `figures` sums up and judges the run,
and `run` is the command that ties them together."""
