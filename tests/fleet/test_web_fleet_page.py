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


@pytest.mark.parametrize("step", ["1e400", "inf", "-inf", "nan", "0", "-1", "1e12"])
def test_a_step_that_is_not_finite_and_bounded_is_refused_and_the_shared_clock_survives(client, step):
    """The simulated fleet of a spec (its clock, its columns) is shared by everyone who names that spec.
    step_s=1e400 (read as inf) used to set that clock to inf, and every later /fleet and /api/fleet
    of the spec failed with 500 until restart; now the request is refused in one line, nothing moves."""
    from aiinfra.web.pages.fleet import FleetSpec

    spec = FleetSpec().simulate  # the page's default fleet, the one every visitor shares
    before = client.post("/api/fleet", json={"source": "simulate", "simulate": spec, "step_s": 30})
    assert before.status_code == 200, before.text
    t0 = before.json()["facts"]["time_s"]
    page = client.get("/fleet", params={"simulate": spec, "step_s": step, "refresh_s": 0})
    assert page.status_code == 422 and "step must be seconds between 0 and 86400" in page.text
    api = client.post("/api/fleet", json={"source": "simulate", "simulate": spec, "step_s": step})
    assert api.status_code == 422 and api.text.count("\n") == 0 and "step" in api.json()["error"]
    after = client.post("/api/fleet", json={"source": "simulate", "simulate": spec, "step_s": 30})
    assert after.status_code == 200, after.text
    assert after.json()["facts"]["time_s"] == t0 + 30  # one column of 30 s later: the refused requests moved nothing
    assert client.get("/fleet", params={"simulate": spec, "refresh_s": 0}).status_code == 200


@pytest.mark.parametrize("field,value", [("held_mib", "nan"), ("held_mib", "-5"), ("held_mib", "inf"), ("columns", "0")])
def test_other_fleet_thresholds_must_be_finite(client, field, value):
    r = client.post("/api/fleet", json={"source": "simulate", "simulate": "hosts=1,gpus=2,seed=5", field: value})
    assert r.status_code == 422 and field.split("_")[0] in r.json()["error"].lower()
