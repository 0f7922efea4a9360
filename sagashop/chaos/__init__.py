"""Tooling around the product, not part of it: the chaos run (`run`) and the system processes
it starts, kills and restarts (`processes`, which the tests use too)."""
