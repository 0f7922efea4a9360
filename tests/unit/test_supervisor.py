"""`run.py --processes N` deals the services over N processes: each service in exactly one, in runs
of the saga's neighbours so that few of its hops cross processes."""

from __future__ import annotations

import argparse

import pytest

from sagashop import config
from sagashop.actors import SERVICE_NAMES
from sagashop.supervisor import deal


def test_one_process_runs_every_service() -> None:
    assert deal(SERVICE_NAMES, 1) == [SERVICE_NAMES]


def test_two_processes_each_run_a_run_of_neighbours() -> None:
    assert deal(SERVICE_NAMES, 2) == [
        ("order", "user", "inventory"),
        ("item", "payment", "notification"),
    ]


@pytest.mark.parametrize("processes", [1, 2, 3, 4, 5, 6, 8])
def test_every_service_runs_in_exactly_one_process(processes: int) -> None:
    shares = deal(SERVICE_NAMES, processes)
    assert len(shares) == processes
    assert [name for share in shares for name in share] == list(SERVICE_NAMES)


def test_more_processes_than_services_leave_front_doors_only() -> None:
    assert deal(SERVICE_NAMES, 8)[6:] == [(), ()]


def settings_of(*argv: str) -> config.Settings:
    parser = argparse.ArgumentParser()
    config.add_arguments(parser)
    return config.load(parser.parse_args(list(argv)), {})


def test_processes_take_a_count_or_auto_and_nothing_else() -> None:
    assert settings_of("--processes", "3").processes == 3
    assert settings_of("--processes", "auto").processes >= 1
    for bad in ("0", "-1", "two"):
        with pytest.raises(ValueError, match="--processes"):
            settings_of("--processes", bad)
