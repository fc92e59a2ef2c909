"""The `aiinfra mig …` and `aiinfra k8s …` commands as library functions (one per command).

Each takes plain arguments, returns an `explain.Result`, and is what both the CLI (cli/mig.py,
cli/k8s.py) and the web page (web/pages/mig.py) call. Manifests are carried in the Result as data:
`facts["manifests"]` (the YAML stream), `facts["docs"]`, `facts["labels"]` and `facts["notes"]`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from aiinfra.contract import Facts, command
from aiinfra.errors import SpecError
from aiinfra.explain import Result, Term
from aiinfra.sharing import k8s, mig, packing

# --------------------------------------------------------------------------- facts models


class MigProfilesFacts(Facts):
    profiles: list[dict] = Field(default_factory=list)


class MigGeometriesFacts(Facts):
    gpu: str
    count: int
    geometries: list[dict]


class MigValidateFacts(Facts):
    gpu: str
    mig_gpu: str  # the GPU's name in the MIG tables (H100-80GB), which the title shows
    geometry: str
    valid: bool


class MigPlanFacts(Facts):
    gpu: str
    gpus_used: int = Field(alias="GPUs used")
    gpus_available: int = Field(alias="GPUs available")


class ManifestFacts(Facts):
    manifests: str
    docs: list[dict]
    labels: dict[str, dict[str, str]]
    notes: list[str]


class RunbookFacts(Facts):
    steps: list[str]
    rollback: list[str]
    expected_allocatable: dict[str, int] | None = None  # `k8s rollout mig --gpu --geometry`: devices per node to verify


class LintFacts(Facts):
    findings: list[dict]
    errors: int
    files: int


# --------------------------------------------------------------------------- mig


def profiles_result(gpu: mig.MigGpu) -> Result:
    rows = mig.placement_table(gpu)
    terms = []
    if gpu.total_memory_mib:
        for p in gpu.profiles.values():
            if p.usable_gib is None:
                continue
            gb = mig.profile_name_gb(p.usable_gib * 1024, gpu.total_memory_mib)
            terms.append(Term(f"{p.name} name GB", gb, "GB", formula="round(ceil(mem / total × 8) / 8 × ceil(total GiB))",
                              inputs={"mem (MiB)": p.usable_gib * 1024, "total (MiB)": gpu.total_memory_mib},
                              sources={"formula": "NVIDIA/go-nvlib getMigMemorySizeGB", "mem": gpu.source}))
    return Result(
        title=f"MIG profiles of {gpu.name} (PCI {', '.join(gpu.pci_device_ids)})",
        terms=terms,
        facts={"gpu": gpu.catalog_gpu or gpu.name, "memory slots": gpu.memory_slots, "compute slices": gpu.compute_slices,
               "profiles": rows, "source": gpu.source, "placements": gpu.placement_status, "placements source": gpu.placement_source},
        assumptions=[] if gpu.placement_status == "verified" else [f"placements are {gpu.placement_status}: {gpu.placement_source}"],
    )


@command("mig profiles", facts=MigProfilesFacts)
def mig_profiles(gpu: str | None = None, assumed: bool = False) -> Result:
    """Profiles of one GPU with placements, or (assumed=True) everything in the MIG tables that is not
    read from a primary source."""
    if assumed:
        rows = mig.assumed_rows()
        if gpu:
            g = mig.mig_gpu(gpu)
            rows = [r for r in rows if r["gpu"] == g.name]
        return Result(title=f"{len(rows)} MIG table items not read from a primary source", facts={"profiles": [], "assumed": rows},
                      assumptions=[f"{r['gpu']}: {r['item']} ({r['status']})" for r in rows])
    if not gpu:
        raise SpecError("give a GPU (e.g. h100-sxm), or --assumed for what the tables assume")
    return profiles_result(mig.mig_gpu(gpu))


@command("mig geometries", facts=MigGeometriesFacts)
def mig_geometries(gpu: str, variants: bool = False, maximal: bool = False) -> Result:
    g = mig.mig_gpu(gpu)
    geos = mig.geometries(g, variants=variants, maximal=maximal)
    count = Term("geometries", len(geos), "", formula="count of multisets with a non-overlapping placement",
                 inputs={"variants": variants, "maximal only": maximal}, sources={"placement rules": g.layout_source})
    rows = []
    for geo in geos:
        check = mig.validate(g, geo)
        rows.append({"geometry": mig.geometry_label(geo), "profiles": geo, "compute": check.compute_used, "slots": check.slots_used,
                     "placement": ", ".join(f"{p}@{s}" for p, s, _ in check.placement)})
    return Result(title=f"{len(geos)} {'maximal ' if maximal else ''}geometries of {g.name}", terms=[count],
                  facts={"gpu": g.catalog_gpu or g.name, "count": len(geos), "geometries": rows})


@command("mig validate", facts=MigValidateFacts)
def mig_validate(gpu: str, geometry: str) -> Result:
    g = mig.mig_gpu(gpu)
    c = mig.validate(g, geometry)
    terms = [
        Term("compute slices", c.compute_used, "slices", formula="Σ compute of the instances", inputs={"limit": g.compute_slices}),
        Term("memory slots", c.slots_used, "slots", formula="Σ memory slots of the instances", inputs={"limit": g.memory_slots}, sources={"slots": g.layout_source}),
    ]
    facts: dict[str, Any] = {"gpu": g.catalog_gpu or g.name, "mig_gpu": g.name, "geometry": mig.geometry_label(c.counts), "valid": c.valid}
    if c.valid:
        facts["placement"] = ", ".join(f"{p}@{s}" for p, s, _ in c.placement)
    else:
        facts["reasons"] = "; ".join(c.reasons)
    return Result(title=f"{'valid' if c.valid else 'INVALID'} on {g.name}", terms=terms, facts=facts, warnings=c.notes)


def workloads_from(source: Any) -> list:
    """Workloads from a path (YAML file), a YAML text (the web form) or a parsed list/mapping."""
    from aiinfra.safeio import load_yaml_text
    from aiinfra.sharing.workloads import Workload, load_workloads, parse_workloads

    if isinstance(source, Path):
        return load_workloads(source)
    if isinstance(source, str):
        import re

        from aiinfra.safeio import UnsafeInputError

        try:
            doc = load_yaml_text(source, "workloads")
        except UnsafeInputError as e:
            m = re.match(r"YAML does not parse at workloads:(\d+): (.*)", str(e))
            raise SpecError(f"workloads YAML does not parse at line {m[1]}: {m[2]}" if m else str(e)) from None
        return parse_workloads(doc, "workloads")
    if isinstance(source, list) and all(isinstance(w, Workload) for w in source):
        return source
    return parse_workloads(source, "workloads")


def build_plan(gpu: str, workloads: Any, gpus: int | None = None, nodes: int | None = None, gpus_per_node: int = 8) -> packing.Plan:
    """The packing plan behind `mig plan` (the web page also draws its per-GPU slots from it)."""
    from aiinfra.sharing.workloads import pool

    size = pool(gpus, nodes, gpus_per_node)
    return packing.plan(mig.mig_gpu(gpu), workloads_from(workloads), size.gpus, size.gpus_per_node)


plan_bundle = k8s.plan_bundle  # the manifests of a MIG plan (kept here for older imports)

EMITS = ("mig-parted", "dra")


def plan_manifests(p: packing.Plan, emit: str = "mig-parted", node_names: list[str] | None = None, k8s_version: str = "1.34",
                   mig_mode: str = "dynamic", namespace: str = "default") -> k8s.Bundle:
    if emit == "mig-parted":
        return plan_bundle(p, node_names)
    if emit == "dra":
        from aiinfra.sharing import dra

        return dra.plan_claims(p, k8s_version, namespace, mig_mode)
    raise SpecError(f"--emit must be one of {', '.join(EMITS)}, not {emit!r}")


@command("mig plan", facts=MigPlanFacts)
def mig_plan(gpu: str, workloads: Any, gpus: int | None = None, nodes: int | None = None, gpus_per_node: int = 8,
             emit: str | None = None, node_names: list[str] | None = None, k8s_version: str = "1.34", mig_mode: str = "dynamic",
             namespace: str = "default") -> Result:
    """Pack workloads on the fewest GPUs (exact); with `emit`, facts['manifests'] holds the mig-parted
    config (emit='mig-parted') or the DRA claims (emit='dra') for the plan."""
    p = build_plan(gpu, workloads, gpus, nodes, gpus_per_node)
    r = p.result
    if emit:
        b = plan_manifests(p, emit, node_names, k8s_version, mig_mode, namespace)
        r.facts["manifests"] = b.text()
        r.facts["manifest notes"] = list(b.notes)
    return r


# --------------------------------------------------------------------------- k8s render


def bundle_result(title: str, b: k8s.Bundle, plan: Result | None = None) -> Result:
    r = Result(title=title, facts={"manifests": b.text(), "docs": b.docs, "labels": b.labels, "notes": b.notes})
    if plan is not None:
        r.terms, r.warnings, r.assumptions = plan.terms, plan.warnings, plan.assumptions
    return r


@command("k8s render mig", facts=ManifestFacts)
def k8s_render_mig(gpu: str, geometry: str | None = None, workloads: Any = None, gpus: int | None = None, nodes: int | None = None,
                   gpus_per_node: int = 8, node_names: list[str] | None = None) -> Result:
    g = mig.mig_gpu(gpu)
    if (geometry is None) == (workloads is None):
        raise SpecError("give exactly one of --geometry or --workloads")
    if geometry is not None:
        counts = dict(mig.parse_geometry(geometry))
        node_list = node_names or ["gpu-node-0"]
        return bundle_result(f"MIG manifests for {g.name}", k8s.render_mig(g, {n: [("all", counts)] for n in node_list}))
    p = build_plan(gpu, workloads, gpus, nodes, gpus_per_node)
    return bundle_result(f"MIG manifests for {g.name}", plan_bundle(p, node_names), p.result)


def _sharing(mode: str, gpu: str, workloads: Any, replicas: int | None, node_names: list[str] | None) -> Result:
    from aiinfra.sharing import timeslice

    mem = timeslice.gpu_memory(gpu)
    r = timeslice.plan_sharing(mode, mem, workloads_from(workloads), replicas)
    cfg = k8s.device_plugin_config(mode, int(r.facts["replicas"]))
    b = k8s.render_sharing(mode, {n: cfg for n in (node_names or ["gpu-node-0"])})
    b.notes.insert(0, f"{r.facts['copies']} copies need {r.facts['GPUs needed']} {mem.name} GPUs at {r.facts['replicas']} replicas each")
    return bundle_result(f"{'time-slicing' if mode == 'timeslice' else 'MPS'} manifests for {mem.name}", b, r)


@command("k8s render timeslice", facts=ManifestFacts)
def k8s_render_timeslice(gpu: str, workloads: Any, replicas: int | None = None, node_names: list[str] | None = None) -> Result:
    return _sharing("timeslice", gpu, workloads, replicas, node_names)


@command("k8s render mps", facts=ManifestFacts)
def k8s_render_mps(gpu: str, workloads: Any, replicas: int | None = None, node_names: list[str] | None = None) -> Result:
    return _sharing("mps", gpu, workloads, replicas, node_names)


@command("k8s render operator", facts=ManifestFacts)
def k8s_render_operator(mig_strategy: str = "mixed", mig_config: str | None = "custom-mig-config", device_plugin_config: str | None = None,
                        device_plugin_default: str = "", rdma: bool = False, host_mofed: bool = False, gds: bool = False, helm: bool = False) -> Result:
    kw = {"mig_strategy": mig_strategy, "mig_config": mig_config or None, "device_plugin_config": device_plugin_config,
          "device_plugin_default": device_plugin_default, "rdma": rdma, "use_host_mofed": host_mofed, "gds": gds}
    if helm:
        b = k8s.Bundle(docs=[k8s.helm_values(k8s.cluster_policy(**kw))])
        b.notes.append("helm upgrade --install gpu-operator nvidia/gpu-operator -n gpu-operator --create-namespace -f values.yaml")
    else:
        b = k8s.render_operator(**kw)
    return bundle_result("GPU Operator " + ("Helm values" if helm else "ClusterPolicy"), b)


@command("k8s render rdma", facts=ManifestFacts)
def k8s_render_rdma(mode: str = "shared", master: str = "ens1f0", cidr: str = "192.168.2.0/24", gpus: int = 1,
                    per_node_ips: int = 16) -> Result:
    return bundle_result(f"GPUDirect RDMA ({mode})", k8s.render_rdma(mode, master, cidr, gpus, per_node_ips))


@command("k8s render dra", facts=ManifestFacts)
def k8s_render_dra(gpu: str, k8s_version: str = "1.34", namespace: str = "default", gpus_per_claim: int = 1, mig: list[str] | None = None,
                   mig_mode: str = "static", share: str | None = None, interval: str = "Default", mps_threads: int | None = None,
                   mps_memory: str | None = None, compute_domain_nodes: int = 0, kueue_quota: int = 0, gpu_cluster: bool = True) -> Result:
    """DeviceClasses, ResourceClaimTemplates, ComputeDomain, example Pods, GPUCluster and Kueue quota."""
    from aiinfra.sharing import dra

    profiles: list[str] = []
    for item in mig or []:
        profiles += [p.strip() for p in item.split(",") if p.strip()]
    req = dra.DraRequest(gpu=gpu, k8s_version=k8s_version, namespace=namespace, whole_gpus=gpus_per_claim, mig_profiles=tuple(profiles),
                         mig_mode=mig_mode, share=share, interval=interval, mps_threads=mps_threads, mps_memory=mps_memory,
                         compute_domain_nodes=compute_domain_nodes, kueue_quota=kueue_quota, gpu_cluster=gpu_cluster)
    b = dra.render_dra(req)
    r = bundle_result(f"DRA manifests for {gpu} on Kubernetes {dra.kube_version(k8s_version)} ({dra.resource_api(k8s_version)})", b)
    r.facts["k8s_version"] = dra.kube_version(k8s_version)
    r.facts["resource_api"] = dra.resource_api(k8s_version)
    return r


# --------------------------------------------------------------------------- k8s rollout


def runbook_result(title: str, book: dict) -> Result:
    return Result(title=title, facts={"steps": book["steps"], "rollback": book["rollback"]}, warnings=book["warnings"])


@command("k8s rollout mig", facts=RunbookFacts)
def k8s_rollout_mig(nodes: list[str], config: str, previous: str = "all-disabled", gpu: str | None = None, geometry: str | None = None,
                    gpus_per_node: int = 8) -> Result:
    expect = None
    if gpu and geometry:
        g = mig.mig_gpu(gpu)
        check = mig.validate(g, geometry)
        if not check.valid:
            raise SpecError(f"geometry {geometry} is not valid on {g.name}: {'; '.join(check.reasons)}")
        expect = {g.profiles[p].resource_name: n * gpus_per_node for p, n in check.counts.items()}
    r = runbook_result(f"MIG reconfiguration to '{config}'", k8s.rollout_mig(nodes, config, previous, expect=expect))
    if expect:
        # The verify step compares node allocatable with these counts; --explain shows where they come from.
        r.facts["expected_allocatable"] = expect
        r.terms = [Term(f"{g.profiles[p].resource_name} per node", n * gpus_per_node, "devices",
                        formula="instances per GPU × GPUs per node", inputs={"instances per GPU": n, "GPUs per node": gpus_per_node},
                        sources={"placement rules": g.layout_source}) for p, n in check.counts.items()]
    return r


@command("k8s rollout driver", facts=RunbookFacts)
def k8s_rollout_driver(nodes: list[str], version: str, previous: str) -> Result:
    return runbook_result(f"GPU driver upgrade to {version}", k8s.rollout_driver(nodes, version, previous))


@command("k8s rollout dra", facts=RunbookFacts)
def k8s_rollout_dra(nodes: list[str], gpu: str, k8s_version: str = "1.34", namespace: str = "gpu-operator",
                    driver_version: str = "v0.4.0") -> Result:
    from aiinfra.sharing import rollout_dra

    return runbook_result("Migration from the device plugin + ClusterPolicy to DRA + GPUCluster",
                          rollout_dra.runbook(nodes, gpu, k8s_version, namespace, driver_version))


# --------------------------------------------------------------------------- k8s lint


@command("k8s lint", facts=LintFacts)
def k8s_lint(files: list[str | Path], k8s_version: str = "1.34") -> Result:
    from aiinfra.sharing import dra, lint

    version = dra.kube_version(k8s_version)  # one line for an unsupported release, DRA objects or not
    findings = lint.lint_files(list(files), k8s_version=version)
    errors = sum(f.severity == "error" for f in findings)
    return Result(title=f"lint: {len(findings)} findings ({errors} errors) in {len(files)} file(s)",
                  facts={"findings": [f.to_dict() for f in findings], "errors": errors, "files": len(files)})
