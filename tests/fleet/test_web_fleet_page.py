"""The web Fleet page lists lost GPUs with when they were last seen and never calls unknown activity idle."""

from __future__ import annotations

import warnings

import pytest

from aiinfra.web.app import create_app


@pytest.fixture(scope="module")
def client():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fastapi.testclient import TestClient
    with TestClient(create_app()) as c:
        yield c


def test_simulated_lost_gpu_has_a_last_seen_time_and_a_row(client):
    """GPU 1 falls off the bus 100 simulated seconds in; columns are 30 s apart: last seen at 90 s."""
    spec = "hosts=1,gpus=3,model=h100-sxm,seed=8,faults=lost:g1@100"
    r = client.post("/api/fleet", json={"simulate": spec, "columns": 8, "step_s": 30})
    assert r.status_code == 200, r.text
    f = r.json()["facts"]
    assert f["lost"] == ["sim-node-00/gpu1"]
    row = f["lost_gpus"][0]
    assert row["gpu"] == "sim-node-00/gpu1" and row["last_seen"] == 90.0 and row["last_seen_ago_s"] == 120.0
    states = {g["gpu"]: g["state"] for g in f["per_gpu"]}
    assert states["sim-node-00/gpu1"] == "lost"  # not idle, although it stopped working
    page_spec = spec.replace("seed=8", "seed=9")  # a fresh simulation (the page keeps each one between refreshes)
    page = client.get("/fleet", params={"simulate": page_spec, "columns": 8, "step_s": 30, "refresh_s": 0})
    assert page.status_code == 200
    assert 'id="lost"' in page.text and "sim-node-00/gpu1" in page.text and "120 s before the end" in page.text
