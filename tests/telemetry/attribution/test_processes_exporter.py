"""Per-process families and job labels on a simulated node with MIG: processes mapped to pods through
cgroup files and pod log folders, memory absent under MIG (NVML reports N/A), cardinality bounded,
and a pod started after the last List found with `Get`."""

from __future__ import annotations

import os
import tempfile

from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.attribution import Attribution, AttributionConfig
from aiinfra.telemetry.attribution.simkubelet import PodResourcesServer, simulated_node
from aiinfra.telemetry.exporter import Exporter, ExporterConfig, Source
from aiinfra.telemetry.nvml import Collector
from aiinfra.telemetry.simulate import Fleet, ManualClock, parse_spec


def samples(body: bytes, name: str) -> list:
    return [s for fam in text_string_to_metric_families(body.decode()) for s in fam.samples if s.name == name]


def make(spec: str, **cfg):
    clock = ManualClock(200.0)
    host = Fleet(parse_spec(spec), clock=clock).hosts[0]
    col = Collector(lib=host, host=host.name, clock=clock)
    root = tempfile.mkdtemp(prefix="aiinfra-p-")
    node = simulated_node(host, root, jobs=True)
    server = PodResourcesServer(node.socket, node.pods).start()
    attr = Attribution(AttributionConfig(kubernetes=True, sockets={host.name: node.socket}, hpc_dirs={host.name: node.job_dir},
                                         processes=True, proc_roots={host.name: node.proc_root}, log_roots={host.name: node.log_root}, **cfg),
                       {host.name: col})
    exp = Exporter([Source(host.name, col)], ExporterConfig(attribution=attr), 1.0)
    exp.collect_once()  # the MIG UUIDs of this node, for process → MIG device mapping
    attr.refresh_once()
    exp.collect_once()
    return host, node, server, exp


def test_processes_are_labelled_with_their_pod_and_container():
    host, node, server, exp = make("gpus=4,seed=1")
    try:
        owners = {p.name: (p.namespace, sorted(p.pids.values())) for p in node.pods}
        sm = samples(exp.body, "aiinfra_process_sm_utilization_ratio")
        assert sm, "no per-process series"
        for s in sm:
            pid = int(s.labels["pid"])
            pod = next(p for p in node.pods if pid in p.pids)
            assert (s.labels["namespace"], s.labels["pod"], s.labels["container"]) == (pod.namespace, pod.name, pod.pids[pid])
            assert 0 <= s.value <= 1
        mem = samples(exp.body, "aiinfra_process_gpu_memory_bytes")
        assert {s.labels["pid"] for s in mem} == {s.labels["pid"] for s in sm} and all(s.value > 0 for s in mem)
        assert owners
    finally:
        server.stop()


def test_mig_processes_have_no_memory_value_and_are_capped():
    host, node, server, exp = make("gpus=1,seed=2,mig=2g.20gb+2g.20gb+2g.20gb,workload=training", max_processes_per_gpu=2)
    try:
        sm = samples(exp.body, "aiinfra_process_sm_utilization_ratio")
        assert len(sm) == 2 and {s.labels["GPU_I_ID"] for s in sm} <= {"1", "2", "3"}
        assert all(s.labels["pod"] == f"finetune-{host.name}-g0" for s in sm)
        assert samples(exp.body, "aiinfra_process_gpu_memory_bytes") == []  # N/A under MIG, never a made-up 0
        assert samples(exp.body, "aiinfra_processes_not_exported")[0].value == 1
        # HPC job files name MIG instances <gpu>.<gi>: every instance series carries its job
        jobs = {s.labels.get("GPU_I_ID"): s.labels.get("hpc_job") for s in samples(exp.body, "DCGM_FI_DEV_FB_USED")}
        assert set(jobs) == {"1", "2", "3"} and all(jobs.values())
    finally:
        server.stop()


def test_pod_newer_than_the_last_list_is_found_with_get():
    host, node, server, exp = make("gpus=2,seed=1,workload=training")
    try:
        attr = exp.cfg.attribution
        st = attr.state[host.name]
        st.index = {}  # as if the pod started after the last List
        for p in node.pods:  # two containers: the log folders alone cannot tell which one holds the GPU
            os.makedirs(os.path.join(node.log_root, f"{p.namespace}_{p.name}_{p.uid}", "sidecar"), exist_ok=True)
        attr._got = {}
        attr._refresh_processes(host.name, st)
        owners = {o.get("container") for rows in st.procs.values() for *_, o in rows}
        assert owners == {"trainer"} and server.calls["Get"] == 1  # one Get per pod per refresh
    finally:
        server.stop()


def test_each_host_exporter_reports_only_its_own_attribution_health():
    """`--simulate hosts=2`: one exporter per host, sharing one Attribution; each reports its own host."""
    import shutil

    from aiinfra.telemetry.attribution import setup
    from aiinfra.telemetry.exporter import build_sources

    cfg = ExporterConfig()
    sources = build_sources("hosts=2,gpus=2,seed=1", None, cfg)
    attr, nodes = setup(sources, simulated=True, kubernetes=True, processes=True, wait=True)
    try:
        from dataclasses import replace

        for src in sources:
            exp = Exporter([src], replace(cfg, attribution=attr), 1.0)
            exp.collect_once()
            for name in ("aiinfra_kubelet_podresources_up", "aiinfra_processes_not_exported"):
                assert [s.labels["Hostname"] for s in samples(exp.body, name)] == [src.host]
            assert {s.labels["Hostname"] for s in samples(exp.body, "aiinfra_process_sm_utilization_ratio")} <= {src.host}
    finally:
        attr.stop()
        for n in nodes:
            n.server.stop()
            shutil.rmtree(os.path.dirname(n.socket), ignore_errors=True)
