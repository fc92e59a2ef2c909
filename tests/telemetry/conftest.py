"""Fixtures: a simulated host wired into pynvml itself, so the real collector code path runs."""

from __future__ import annotations

import socket

import pytest

from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec


@pytest.fixture
def sim(monkeypatch):
    """sim("gpus=4,seed=1") → (collector, host, clock): pynvml's functions answer from the simulated host."""

    def make(spec: str, t0: float = 0.0):
        clock = ManualClock(t0)
        fleet = Fleet(parse_spec(spec), clock=clock)
        host = fleet.hosts[0]
        host.patch(monkeypatch)
        return Collector(host=host.name, clock=clock), host, clock

    return make


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
