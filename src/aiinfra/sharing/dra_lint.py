"""Linter rules for Dynamic Resource Allocation objects: resource.k8s.io DeviceClasses and claims, the
NVIDIA DRA driver's ComputeDomain and opaque GpuConfig, the GPU Operator's GPUCluster, Kueue's
ResourceFlavor/ClusterQueue.

Rules (sources in catalog/data/dra_driver.yaml):
- dra.api-version: the resource.k8s.io version must be served by the Kubernetes release linted for
  (`--k8s-version`); before 1.34 it also needs the DynamicResourceAllocation gate;
- dra.schema: the object validates with kubernetes-validate at that release (strict), CRDs against the
  schemas in catalog/data/crd_schemas;
- dra.feature-gates: the driver's gates that exclude or require each other (it exits at start-up);
- dra.gpucluster: GPUCluster is a singleton named gpu-cluster and cannot co-exist with a ClusterPolicy;
- dra.no-device-class: a request whose DeviceClass neither the files nor the driver define;
- dra.attribute: a selector that reads an attribute or capacity the driver does not publish;
- dra.profile: a MIG profile no MIG GPU has;
- dra.sharing: GpuConfig parameters the driver rejects, or a sharing strategy whose gate is off.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from aiinfra.sharing.crd_lint import crd_validator, lint_crd, short
from aiinfra.sharing.findings import LintContext

DRA_KINDS = {"DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ComputeDomain", "GPUCluster", "ResourceFlavor", "ClusterQueue"}
CRD_KINDS = {"ComputeDomain", "GPUCluster", "ResourceFlavor", "ClusterQueue"}
CORE_KINDS = {"DeviceClass", "ResourceClaim", "ResourceClaimTemplate"}
REF_RE = re.compile(r"""device\.(attributes|capacity)\[\s*['"]([^'"]+)['"]\s*\](?:\.([A-Za-z_][A-Za-z0-9_]*)|\[\s*['"]([^'"]+)['"]\s*\])""")
PROFILE_EQ_RE = re.compile(r"""\.profile\s*==\s*['"]([^'"]+)['"]|\[\s*['"]profile['"]\s*\]\s*==\s*['"]([^'"]+)['"]""")
TYPE_EQ_RE = re.compile(r"""\.type\s*==\s*['"]([a-z]+)['"]""")


def is_dra(doc: dict) -> bool:
    return isinstance(doc.get("kind"), str) and doc["kind"] in DRA_KINDS


@lru_cache(maxsize=1)
def _driver() -> dict:
    from aiinfra.sharing.dra import driver

    return driver()


@lru_cache(maxsize=1)
def _known_profiles() -> frozenset[str]:
    from aiinfra.sharing.mig import all_mig_gpus

    return frozenset(n for g in all_mig_gpus() for p in g.profiles.values() for n in (p.name, *p.also_named))


def lint_dra(docs: list[tuple[dict, Any, tuple]], items: list, k8s_version: str = "1.34") -> list:
    """Lint DRA documents together with every other document given (ClusterPolicy, DeviceClasses)."""
    from aiinfra.sharing import dra

    if not docs:
        return []
    version = dra.kube_version(k8s_version)
    classes = dict(_driver()["device_classes"])
    for doc, _, _ in docs:
        if doc.get("kind") == "DeviceClass":
            name = _name(doc)
            classes[name] = {"type": _class_type(doc)}
    policies = [d for d, *_ in items if isinstance(d, dict) and d.get("kind") == "ClusterPolicy"]
    clusters = [d for d, _, _ in docs if d.get("kind") == "GPUCluster"]
    gates: dict = {}
    for c in clusters:
        fg = _get(c, "spec", "draDriver", "featureGates")
        if isinstance(fg, dict):
            gates.update(fg)
    findings = []
    for doc, ctx0, base in docs:
        ctx = LintContext(ctx0.file)
        kind = doc["kind"]
        if kind in CORE_KINDS:
            _api_version(ctx, doc, base, version)
        else:
            lint_crd(ctx, doc, base)
        if kind == "GPUCluster":
            _gpu_cluster(ctx, doc, base, policies)
        if kind == "DeviceClass":
            for i, expr in _selectors(_get(doc, "spec", "selectors")):
                _expression(ctx, expr, base + ("spec", "selectors", i, "cel", "expression"), _class_type(doc))
        if kind in ("ResourceClaim", "ResourceClaimTemplate"):
            spec = _get(doc, "spec", "spec") if kind == "ResourceClaimTemplate" else doc.get("spec")
            sp = base + (("spec", "spec") if kind == "ResourceClaimTemplate" else ("spec",))
            _claim(ctx, spec, sp, classes, gates, bool(clusters))
        findings += ctx.findings
    return findings


def _get(d: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(d, dict):
            d = d.get(k)
        elif isinstance(d, list) and isinstance(k, int) and 0 <= k < len(d):
            d = d[k]
        else:
            return None
    return d


def _name(doc: dict) -> str:
    n = _get(doc, "metadata", "name")
    return n if isinstance(n, str) else ""


def _selectors(sel: Any):
    if not isinstance(sel, list):
        return
    for i, s in enumerate(sel):
        expr = _get(s, "cel", "expression")
        if isinstance(expr, str):
            yield i, expr


def _class_type(doc: dict) -> str | None:
    for _, expr in _selectors(_get(doc, "spec", "selectors")):
        m = TYPE_EQ_RE.search(expr)
        if m:
            return m[1]
    return None


def _api_version(ctx, doc: dict, base: tuple, version: str) -> None:
    import kubernetes_validate

    api = doc.get("apiVersion")
    info = _driver()["resource_api"][version]
    if api not in info["served"]:
        ctx.add(base + ("apiVersion",), "dra.api-version", f"Kubernetes {version} does not serve {api!r} for {doc['kind']}; the API server rejects it",
                f"use apiVersion: {info['version']} (aiinfra k8s render dra --k8s-version {version})")
        return
    if not info["default_on"]:
        ctx.add(base + ("apiVersion",), "dra.api-version", f"on Kubernetes {version}, {api} is beta and off by default",
                f"enable the DynamicResourceAllocation feature gate and --runtime-config={api}=true, or upgrade to 1.34+", severity="warning")
    elif api != info["version"]:
        ctx.add(base + ("apiVersion",), "dra.api-version", f"{api} is still served on {version} but {info['version']} is GA",
                f"move to apiVersion: {info['version']}", severity="info")
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as e:
        err = e.caused_by if hasattr(e, "caused_by") else e
        path = tuple(getattr(err, "absolute_path", ()) or ())
        msg = str(getattr(err, "message", err)).splitlines()[0]
        msg = short(msg)
        ctx.add(base + path, "dra.schema", f"{msg} (Kubernetes {version} {api} {doc['kind']}); the API server rejects the object",
                "follow the Kubernetes API of that release")
    except Exception as e:  # noqa: BLE001 - schema not found for this kind/version and similar
        ctx.add(base, "dra.schema", f"cannot validate {doc['kind']} {api} at Kubernetes {version}: {str(e).splitlines()[0][:160]}",
                "check kind and apiVersion", severity="warning")


def _gpu_cluster(ctx, doc: dict, base: tuple, policies: list) -> None:
    from aiinfra.sharing.dra import gate_problems

    want = _driver()["gpu_cluster_name"]
    if _name(doc) != want:
        ctx.add(base + ("metadata", "name"), "dra.gpucluster", f"GPUCluster is a singleton: metadata.name must be '{want}', not {_name(doc)!r} (the CRD rejects it)",
                f"name it {want}")
    if policies:
        ctx.add(base, "dra.gpucluster", "a ClusterPolicy is given too: ClusterPolicy and GPUCluster cannot co-exist (the operator stops reconciling)",
                "migrate with aiinfra k8s rollout dra: delete the ClusterPolicy before creating the GPUCluster")
    fg = _get(doc, "spec", "draDriver", "featureGates")
    if isinstance(fg, dict):
        for problem in gate_problems(fg):
            ctx.add(base + ("spec", "draDriver", "featureGates"), "dra.feature-gates", f"{problem}; the DRA driver exits at start-up",
                    "turn one of the excluding gates off, or enable the gate it requires (pkg/featuregates ValidateFeatureGates)")


def _expression(ctx, expr: str, p: tuple, device_type: str | None) -> None:
    d = _driver()
    own = {d["driver"], d["compute_domain_driver"]}
    types = [device_type] if device_type in d["attributes"] else list(d["attributes"])
    for m in REF_RE.finditer(expr):
        what, domain, name = m[1], m[2], m[3] or m[4]
        if domain == "resource.kubernetes.io":
            if what == "attributes" and name not in d["kubernetes_attributes"]:
                ctx.add(p, "dra.attribute", f"the driver publishes no resource.kubernetes.io/{name} attribute (only {', '.join(d['kubernetes_attributes'])})",
                        "select on a published attribute")
            continue
        if domain not in own:
            continue  # another driver's attributes
        if what == "attributes":
            known = {a for t in types for a in d["attributes"].get(t, [])}
        else:
            known = {c for t in types for c in d["capacities"].get(t, [])}
            if re.fullmatch(r"memorySlice\d+", name or "") and (device_type in (None, "mig")):
                continue
        if name not in known:
            kind = "attribute" if what == "attributes" else "capacity"
            ctx.add(p, "dra.attribute", f"{domain} publishes no {kind} '{name}'{f' for {device_type} devices' if device_type else ''}: "
                    "the selector errors or matches nothing and the claim stays pending",
                    f"use one of {', '.join(sorted(known))}")
    for m in PROFILE_EQ_RE.finditer(expr):
        prof = (m[1] or m[2]).lower()
        if prof not in _known_profiles():
            ctx.add(p, "dra.profile", f"no MIG GPU in the catalog has profile '{prof}': no device can match", "use a profile from aiinfra mig profiles <gpu>")


def _claim(ctx, spec: Any, p: tuple, classes: dict, gates: dict, have_cluster: bool) -> None:
    devices = _get(spec, "devices")
    if not isinstance(devices, dict):
        return
    requests = devices.get("requests") if isinstance(devices.get("requests"), list) else []
    for i, req in enumerate(requests):
        if not isinstance(req, dict):
            continue
        body, rp = (req["exactly"], p + ("devices", "requests", i, "exactly")) if isinstance(req.get("exactly"), dict) else (req, p + ("devices", "requests", i))
        cls = body.get("deviceClassName")
        if isinstance(cls, str) and cls not in classes:
            nvidia = cls.endswith("nvidia.com") or cls.endswith(".aiinfra.io")
            ctx.add(rp + ("deviceClassName",), "dra.no-device-class",
                    f"no DeviceClass '{cls}' in these files{' or among the NVIDIA DRA driver classes' if nvidia else ''}: the claim stays pending",
                    f"use one of {', '.join(sorted(classes))}, or define the DeviceClass", severity="error" if nvidia else "warning")
        ctype = (classes.get(cls) or {}).get("type") if isinstance(cls, str) else None
        for j, expr in _selectors(body.get("selectors")):
            _expression(ctx, expr, rp + ("selectors", j, "cel", "expression"), ctype)
    config = devices.get("config") if isinstance(devices.get("config"), list) else []
    for i, c in enumerate(config):
        opaque = _get(c, "opaque")
        if not isinstance(opaque, dict) or opaque.get("driver") != _driver()["driver"]:
            continue
        _gpu_config(ctx, opaque.get("parameters"), p + ("devices", "config", i, "opaque", "parameters"), gates, have_cluster)


OTHER_CONFIG_KINDS = {"VfioDeviceConfig", "ComputeDomainChannelConfig", "ComputeDomainDaemonConfig"}  # api/nvidia.com/resource/v1beta1/api.go


def _gpu_config(ctx, params: Any, p: tuple, gates: dict, have_cluster: bool) -> None:
    if isinstance(params, dict) and isinstance(params.get("kind"), str) and params["kind"] in OTHER_CONFIG_KINDS:
        return  # the driver's other config kinds carry no sharing settings
    errs = sorted(crd_validator("GpuConfig").iter_errors(params), key=lambda e: [str(x) for x in e.absolute_path])
    for e in errs[:5]:
        ctx.add(p + tuple(e.absolute_path), "dra.sharing", f"{short(e.message)}: the driver rejects the claim's configuration (the pod does not start)",
                "follow resource.nvidia.com/v1beta1 GpuConfig: sharing.strategy TimeSlicing|MPS with timeSlicingConfig or mpsConfig")
    if errs:
        return
    strategy = _get(params, "sharing", "strategy")
    if strategy == "TimeSlicing" and _get(params, "sharing", "mpsConfig") is not None:
        ctx.add(p + ("sharing",), "dra.sharing", "mpsConfig with the TimeSlicing strategy: the driver rejects it", "drop mpsConfig or use strategy: MPS")
    gate = _driver()["sharing_strategies"].get(strategy) if isinstance(strategy, str) else None
    if gate and have_cluster and gates.get(gate) is not True:
        ctx.add(p + ("sharing", "strategy"), "dra.sharing", f"strategy {strategy} needs the driver's {gate} feature gate, which the GPUCluster leaves off",
                f"set spec.draDriver.featureGates.{gate}: true in the GPUCluster")
