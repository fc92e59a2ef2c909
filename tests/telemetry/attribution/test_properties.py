"""Random inputs never crash the parsers of node-side attribution data: they give a mapping or nothing."""

from __future__ import annotations

import os
import tempfile

from hypothesis import given, settings
from hypothesis import strategies as st

from aiinfra.telemetry.attribution import podresources_pb2 as pb
from aiinfra.telemetry.attribution.hpc import read_job_dir
from aiinfra.telemetry.attribution.mapping import device_key, index, owners
from aiinfra.telemetry.attribution.processes import pod_uid_from_cgroup
from aiinfra.telemetry.nvml import Identity

text = st.text(max_size=60)


@given(text)
def test_device_key_total(device_id):
    key, replica = device_key(device_id)
    assert isinstance(key, str) and isinstance(replica, str)


@given(st.text(max_size=400))
def test_cgroup_text_total(body):
    uid = pod_uid_from_cgroup(body)
    assert uid is None or len(uid) == 36


@settings(max_examples=60)
@given(st.lists(st.tuples(text, text, text, st.lists(text, max_size=3), text, text), max_size=5))
def test_any_list_answer_maps_without_error(pods):
    resp = pb.ListPodResourcesResponse(pod_resources=[
        pb.PodResources(name=n, namespace=ns, containers=[pb.ContainerResources(
            name=c, devices=[pb.ContainerDevices(resource_name="nvidia.com/gpu", device_ids=ids)],
            dynamic_resources=[pb.DynamicResource(claim_name=c, claim_resources=[pb.ClaimResource(driver_name="gpu.nvidia.com", pool_name=pool, device_name=dev)])])])
        for n, ns, c, ids, pool, dev in pods])
    idx = index(resp)
    owners(idx, Identity(0, "GPU-x", "", ""))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.from_regex(r"[0-9a-z.]{1,6}", fullmatch=True), st.binary(max_size=200), max_size=6))
def test_any_job_folder_reads_without_error(files):
    with tempfile.TemporaryDirectory() as d:
        for name, body in files.items():
            if name in (".", ".."):
                continue
            with open(os.path.join(d, name), "wb") as f:
                f.write(body)
        jobs = read_job_dir(d)
        assert all(k.replace(".", "").isdigit() and all(j.strip() for j in v) for k, v in jobs.items())
