"""`warden status` prints its processes as columns a person reads down: a name longer than the
others (``bitcoin-miner``) widens the name column instead of pushing its row out of line."""

from __future__ import annotations

import pytest

from infra.cli.status import _print_processes

NAMES = ("kafka-1", "bitcoin", "bitcoin-miner", "streams")


def test_every_row_of_the_processes_starts_its_pid_in_one_column(capsys: pytest.CaptureFixture[str]) -> None:
    components = [
        {
            "name": name,
            "pid": 1000 + n,
            "state": "running",
            "up_for_s": 75,
            "restarts": 0,
            "last_exit_code": None,
            "metrics": None,
            "alive": True,
        }
        for n, name in enumerate(NAMES)
    ]
    report = {
        "supervisor_state": "running",
        "supervisor_stalled_s": None,
        "restarts_unrecorded": 0,
        "components": components,
    }
    _print_processes(report, supervisor_pid=999, written_s=1)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(NAMES), lines
    assert len({line.index(" pid ") for line in lines}) == 1, lines
    assert len({line.index(" up 75 s") for line in lines}) == 1, lines
