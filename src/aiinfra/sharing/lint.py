"""Linter for the GPU-sharing configs people already have: mig-parted configs, device-plugin configs,
GPU Operator ClusterPolicies / Helm values, Network Operator objects.

The rules are the checklist of the reference notes §11, derived from:
- mig-parted `api/spec/v1/spec.go` and go-nvlib `parseMigProfile` (structure, profile grammar);
- the MIG User Guide v580 tables (profiles per GPU, placements, caps, driver minimums);
- k8s-device-plugin v0.20.0 `api/config/v1` (replicas ≥ 2, rename/devices stripped, MPS limits);
- the operators' CRD schemas, shipped in catalog/data/crd_schemas with their commits. Unknown
  fields pass the API server but are pruned silently, so they are reported too.

Every finding names its file, its path inside the YAML and the fix. YAML is read with safe_load
only; a file that does not parse is an AiinfraError naming file and line.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from aiinfra.safeio import UnsafeInputError, load_yaml_text, read_text
from aiinfra.sharing import dra_lint
from aiinfra.sharing.crd_lint import crd_schema, lint_crd  # noqa: F401 - crd_schema: callers read it from here
from aiinfra.sharing.findings import Finding, LintContext, fmt_path
from aiinfra.sharing.mig import PROFILE_RE, MigGpu, all_mig_gpus, by_pci_id, validate

FILTER_RE = re.compile(r"^0x[0-9A-Fa-f]{4}10[dD][eE](:0x[0-9A-Fa-f]{8})?$")
MIG_ENTRY_KEYS = {"devices", "mig-enabled", "mig-devices", "device-filter"}
DP_TOP_KEYS = {"version", "flags", "sharing", "resources", "imex"}
DP_BODY_KEYS = {"flags", "sharing", "resources", "imex"}
DP_SHARING_KEYS = {"renameByDefault", "failRequestsGreaterThanOne", "resources"}
MIG_STRATEGIES = ("none", "single", "mixed")


# --------------------------------------------------------------------------- parsing


def parse_stream(text: str, filename: str) -> list[Any]:
    """All YAML documents of a file, through safeio (size, depth and alias-expansion limits, so a
    473-byte billion-laughs chain is refused before anything expands it); errors name file and line."""
    return [d for d in load_yaml_text(text, filename, all_documents=True) if d is not None]


def lint_text(text: str, filename: str = "<stdin>", k8s_version: str = "1.34") -> list[Finding]:
    docs = parse_stream(text, filename)
    return lint_documents([(d, filename, i if len(docs) > 1 else None) for i, d in enumerate(docs)], k8s_version)


def lint_files(paths: list[str | Path], k8s_version: str = "1.34") -> list[Finding]:
    items = []
    for p in paths:
        text = read_text(p, what="file to lint")
        docs = parse_stream(text, str(p))
        items += [(d, str(p), i if len(docs) > 1 else None) for i, d in enumerate(docs)]
    return lint_documents(items, k8s_version)


# --------------------------------------------------------------------------- dispatch


def lint_documents(items: list[tuple[Any, str, int | None]], k8s_version: str = "1.34") -> list[Finding]:
    """Lint documents together, so references between them (labels → configs) can be checked."""
    findings: list[Finding] = []
    mig_keys: set[str] = set()
    mig_entries: dict[str, dict] = {}  # config name → {"profiles": set, "enabled": set of bools}
    configmaps: dict[str, set[str]] = {}
    later: list[tuple[Any, LintContext, tuple]] = []
    dra_docs: list[tuple[dict, LintContext, tuple]] = []
    for doc, file, index in items:
        ctx = LintContext(file)
        base: tuple = (f"doc {index}",) if index is not None else ()
        kind = doc.get("kind") if isinstance(doc, dict) else None
        if kind == "ConfigMap":
            name = _meta_name(doc)
            data = doc.get("data")
            if isinstance(data, dict):
                configmaps[name] = {str(k) for k in data}
            for cfg_kind, key, cfg in _configmap_payloads(ctx, doc, base):
                if cfg_kind == "mig":
                    if key != "config.yaml":
                        ctx.add(base + ("data", key), "mig.configmap-key", f"mig-parted config stored under key '{key}'",
                                "store it under the key 'config.yaml': the GPU Operator mounts only that key", severity="warning")
                    mig_keys |= _lint_mig(ctx, cfg, base + ("data", key), mig_entries)
                elif cfg_kind == "dp":
                    later.append((cfg, ctx, base + ("data", key)))
                elif cfg_kind == "clients":
                    _lint_clients(ctx, cfg, base + ("data", key))
        elif kind in ("ClusterPolicy", "NicClusterPolicy", "HostDeviceNetwork", "MacvlanNetwork", "IPPool"):
            _lint_operator_crd(ctx, doc, base)
        elif kind == "Node":
            later.append((doc, ctx, base))
        elif kind == "Pod":
            _lint_pod(ctx, doc, base)
        elif kind and dra_lint.is_dra(doc):
            dra_docs.append((doc, ctx, base))
        elif kind is None and classify(doc) == "mig":
            mig_keys |= _lint_mig(ctx, doc, base, mig_entries)
        elif kind is None and classify(doc) == "clients":
            _lint_clients(ctx, doc, base)
        elif kind is None and classify(doc) == "hooks":
            pass  # mig-parted hooks: commands for the host, nothing to check against the GPU
        elif isinstance(doc, dict) and kind is None and _is_operator_values(doc):
            _lint_helm(ctx, doc, base, mig_entries)
        elif isinstance(doc, dict) and kind is None and _is_plugin_chart_values(doc):
            _lint_plugin_chart(ctx, doc, base, mig_entries)
        elif kind is None and classify(doc) == "dp":
            later.append((doc, ctx, base))
        else:
            what = f"kind {kind}" if kind else f"a {type(doc).__name__}"
            ctx.add(base, "unrecognised", f"{what} is not a GPU-sharing object this linter checks; skipped",
                    "lint mig-parted, device-plugin, GPU Operator, DRA, Kueue or Network Operator objects", severity="info")
        findings += ctx.findings
    for doc, ctx, base in later:
        ctx.findings = []
        if isinstance(doc, dict) and doc.get("kind") == "Node":
            _lint_node(ctx, doc, base, mig_keys)
        else:
            _lint_device_plugin(ctx, doc, base, mig_entries)
        findings += ctx.findings
    for doc, file, index in items:
        if isinstance(doc, dict) and doc.get("kind") == "ClusterPolicy":
            ctx = LintContext(file)
            _lint_policy_refs(ctx, doc, ((f"doc {index}",) if index is not None else ()), configmaps, mig_keys, mig_entries)
            findings += ctx.findings
    findings += dra_lint.lint_dra(dra_docs, items, k8s_version)
    return findings


def _is_operator_values(doc: dict) -> bool:
    """GPU Operator chart values: its component sections (devicePlugin, migManager, mig, driver, …)."""
    return bool({"migManager", "mig", "driver", "toolkit", "dcgmExporter", "operator"} & set(doc)) or (
        isinstance(doc.get("devicePlugin"), dict))


def _is_plugin_chart_values(doc: dict) -> bool:
    """k8s-device-plugin chart values: config.map / config.name, or its flag values at the top."""
    cfg = doc.get("config")
    return (isinstance(cfg, dict) and bool({"map", "name", "default", "fallbackStrategies"} & set(cfg))) or bool(
        {"migStrategy", "deviceListStrategy", "deviceIDStrategy", "compatWithCPUManager", "failOnInitError"} & set(doc))


def _meta_name(doc: dict) -> str:
    meta = doc.get("metadata")
    return str(meta.get("name")) if isinstance(meta, dict) else ""


def classify(cfg: Any) -> str | None:
    """What an embedded or standalone config is, by its keys (never by the file or key name):
    'mig' (mig-parted), 'dp' (device-plugin/GFD), 'clients' (mig-manager gpu-clients list),
    'hooks' (mig-parted hooks), or None."""
    if not isinstance(cfg, dict):
        return None
    keys = {str(k) for k in cfg}
    if "kind" in keys and "apiVersion" in keys:
        return None  # a Kubernetes-style object (e.g. Kueue's Configuration), not a component config
    if "mig-configs" in keys:
        return "mig"
    if "systemd-services" in keys and not keys & DP_BODY_KEYS:
        return "clients"
    if "hooks" in keys and not keys & DP_BODY_KEYS:
        return "hooks"
    # `resources`/`imex` alone also appear in Helm values (pod resources); a plugin config has
    # sharing or flags, or a version next to them.
    if keys & {"sharing", "flags"} or ("version" in keys and keys & DP_BODY_KEYS):
        return "dp"
    return None


def _looks_like_config_text(key: str, value: str) -> bool:
    """A value that does not parse is reported only when it was meant as one of our configs; shell
    scripts, JSON for other tools and free text in the same ConfigMap are none of our business."""
    if value.lstrip().startswith("#!"):
        return False
    return bool(re.search(r"^\s*(mig-configs|sharing|flags|systemd-services)\s*:", value, re.M))


def embedded_payloads(ctx: LintContext, data: dict, p: tuple):
    """(kind, key, parsed config) for every data value that is a config we know, by content."""
    for key, value in data.items():
        if not isinstance(value, str):
            continue
        try:
            cfg = load_yaml_text(value, f"{ctx.file} data.{key}")
        except UnsafeInputError as e:
            if _looks_like_config_text(str(key), value):
                ctx.add(p + (str(key),), "yaml-parse", f"embedded YAML is refused: {str(e).split(': ', 1)[-1]}", "fix the YAML inside this key")
            continue
        kind = classify(cfg)
        if kind:
            yield kind, str(key), cfg


def _configmap_payloads(ctx: LintContext, doc: dict, base: tuple):
    data = doc.get("data")
    if data is None and (doc.get("binaryData") is not None or "data" not in doc):
        return  # an empty or binary ConfigMap is valid; nothing of ours inside
    if not isinstance(data, dict):
        ctx.add(base + ("data",), "configmap.data", "ConfigMap data must be a mapping of key to string", "put each config under data.<key> as a block string")
        return
    for key, value in data.items():
        if not isinstance(value, str):
            ctx.add(base + ("data", str(key)), "configmap.data", "ConfigMap data values must be strings (the API server rejects the object)",
                    "write the config as a block string (key: |)")
    yield from embedded_payloads(ctx, data, base + ("data",))


# --------------------------------------------------------------------------- mig-parted (§11.1–3)


def _lint_mig(ctx: LintContext, cfg: Any, base: tuple, collect: dict) -> set[str]:
    if not isinstance(cfg, dict):
        ctx.add(base, "mig.structure", "a mig-parted config must be a mapping", "start with version: v1 and mig-configs:")
        return set()
    if cfg.get("version") != "v1":
        ctx.add(base + ("version",), "mig.version", f"version is {cfg.get('version')!r}; mig-parted accepts only 'v1'", "set version: v1")
    for k in cfg:
        if k not in ("version", "mig-configs"):
            ctx.add(base + (str(k),), "mig.unknown-field", f"unexpected field '{k}' (mig-parted rejects the file)", "remove it")
    configs = cfg.get("mig-configs")
    if not isinstance(configs, dict) or not configs:
        ctx.add(base + ("mig-configs",), "mig.structure", "mig-configs must be a non-empty mapping of config name to entries", "add at least one named config")
        return set()
    for name, entries in configs.items():
        p = base + ("mig-configs", str(name))
        if not isinstance(entries, list) or not entries:
            ctx.add(p, "mig.structure", f"config '{name}' must be a non-empty list of entries", "add an entry with devices and mig-enabled")
            continue
        info = collect.setdefault(str(name), {"profiles": set(), "enabled": set()})
        for i, e in enumerate(entries):
            _lint_mig_entry(ctx, e, p + (i,), info)
    return {str(k) for k in configs}


def _lint_mig_entry(ctx: LintContext, e: Any, p: tuple, info: dict) -> None:
    if not isinstance(e, dict):
        ctx.add(p, "mig.structure", "an entry must be a mapping", "write {devices: all, mig-enabled: true, mig-devices: {...}}")
        return
    for k in e:
        if k not in MIG_ENTRY_KEYS:
            ctx.add(p + (str(k),), "mig.unknown-field", f"unexpected field '{k}' in an entry (mig-parted rejects it)", "use devices, mig-enabled, mig-devices, device-filter")
    devices = e.get("devices")
    if devices is None:
        ctx.add(p, "mig.devices", "entry has no 'devices'", "add devices: all (or a list of GPU indices)")
    elif not (devices == "all" or (isinstance(devices, list) and devices and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in devices))):
        ctx.add(p + ("devices",), "mig.devices", f"devices must be 'all' or a list of GPU indices, not {devices!r}", "use devices: all or devices: [0, 1]")
    enabled = e.get("mig-enabled")
    if "mig-enabled" not in e:
        ctx.add(p, "mig.enabled", "entry has no 'mig-enabled'", "add mig-enabled: true or false")
    elif not isinstance(enabled, bool):
        ctx.add(p + ("mig-enabled",), "mig.enabled", f"mig-enabled must be true or false, not {enabled!r}", "use a YAML boolean")
    gpus = _lint_filter(ctx, e.get("device-filter"), p + ("device-filter",), enabled is True) if "device-filter" in e else None
    if isinstance(enabled, bool):
        info["enabled"].add(enabled)
    md = e.get("mig-devices")
    if enabled is True and "mig-devices" not in e:
        ctx.add(p, "mig.mig-devices", "mig-enabled: true needs mig-devices", "add mig-devices: {} (enable MIG only) or the profiles and counts")
    if enabled is False and md:
        ctx.add(p + ("mig-devices",), "mig.mig-devices", "mig-devices given while mig-enabled is false", "remove mig-devices or set mig-enabled: true")
    if md is None or enabled is False:
        return
    if not isinstance(md, dict):
        ctx.add(p + ("mig-devices",), "mig.mig-devices", "mig-devices must be a mapping of profile to count", "write mig-devices: {\"1g.10gb\": 7}")
        return
    counts: dict[str, int] = {}
    for prof, n in md.items():
        pp = p + ("mig-devices", str(prof))
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            ctx.add(pp, "mig.counts", f"count {n!r} must be a whole number ≥ 0", "use a non-negative integer")
            continue
        if not PROFILE_RE.match(str(prof)):
            ctx.add(pp, "mig.profile-grammar", f"'{prof}' is not a MIG profile ([<C>c.]<G>g.<GB>gb[+attr|-attr])", "write it like 1g.10gb, 1g.10gb+me or 1g.24gb-me")
            continue
        counts[str(prof)] = n
    if md and counts and not any(counts.values()):
        ctx.add(p + ("mig-devices",), "mig.counts", "every count is 0", "give at least one count > 0, or use mig-devices: {}")
    counts = {k: v for k, v in counts.items() if v > 0}
    if counts:
        info["profiles"] |= set(counts)
        _lint_geometry(ctx, counts, gpus, p + ("mig-devices",))


def _lint_filter(ctx: LintContext, value: Any, p: tuple, enabling: bool = True) -> list[MigGpu] | None:
    """PCI IDs of the entry. An unknown ID matters only where MIG is enabled: entries that keep MIG
    off on other GPUs of the box (the DGX Station's display GPU) are normal."""
    values = value if isinstance(value, list) else [value]
    gpus: list[MigGpu] = []
    for i, v in enumerate(values):
        pp = p + ((i,) if isinstance(value, list) else ())
        if not isinstance(v, str) or not FILTER_RE.match(v):
            ctx.add(pp, "mig.device-filter", f"device-filter {v!r} is not 0xDDDD10DE (PCI device ID + NVIDIA vendor 10DE)", "e.g. \"0x233010DE\" for H100 80GB SXM5")
            continue
        g = by_pci_id(v[:6])
        if g is None and enabling:
            ctx.add(pp, "mig.device-filter", f"device ID {v[:6]} is not a MIG-capable GPU in the catalog", "check the PCI ID (lspci -nn | grep 10de)", severity="warning")
        elif g not in gpus:
            gpus.append(g)
    return gpus or None


def _lint_geometry(ctx: LintContext, counts: dict[str, int], gpus: list[MigGpu] | None, p: tuple) -> None:
    """Profiles must exist on the filtered GPUs (or some GPU), and the geometry must place (§11.1–2)."""

    def knows(g: MigGpu) -> bool:
        return all(g.canonical(c) for c in counts)

    pool = gpus or [g for g in all_mig_gpus() if knows(g)]
    if gpus:
        for g in gpus:
            missing = [c for c in counts if not g.canonical(c)]
            if missing:
                ctx.add(p + (missing[0],), "mig.profile-unknown", f"{', '.join(missing)} {'does' if len(missing) == 1 else 'do'} not exist on {g.name}", f"use one of {', '.join(g.profiles)}")
        pool = [g for g in gpus if knows(g)]
        if not pool:
            return
    elif not pool:
        unknown = [c for c in counts if not any(g.canonical(c) for g in all_mig_gpus())]
        if unknown:
            ctx.add(p + (unknown[0],), "mig.profile-unknown", f"{', '.join(unknown)} {'is not a profile' if len(unknown) == 1 else 'are not profiles'} of any MIG GPU in the catalog",
                    "check the name against nvidia-smi mig -lgip (names drift across drivers, e.g. 3g.39gb vs 3g.40gb)", severity="warning")
        else:
            ctx.add(p, "mig.profile-unknown", f"no single GPU has all of {', '.join(counts)}", "split the entry with device-filter per GPU type")
        return
    checks = [(g, validate(g, {g.canonical(c): n for c, n in counts.items()})) for g in pool]
    bad = [(g, c) for g, c in checks if not c.valid]
    if bad and (gpus or len(bad) == len(checks)):
        g, c = bad[0]
        ctx.add(p, "mig.geometry", f"not a valid geometry on {g.name}: {'; '.join(c.reasons)}", "pick a geometry from aiinfra mig geometries " + g.name.lower())
        return
    notes = sorted({n for _, c in checks if c.valid for n in c.notes})
    for n in notes:
        ctx.add(p, "mig.driver", n, "make sure the nodes run that driver branch or newer", severity="info")


# --------------------------------------------------------------------------- device plugin (§11.4)


FAILS = "the device plugin fails to start"
FLAG_CHOICES = {  # k8s-device-plugin v0.20.0 cmd/nvidia-device-plugin/main.go and api/config/v1/consts.go
    ("migStrategy",): MIG_STRATEGIES,
    ("deviceDiscoveryStrategy",): ("auto", "nvml", "tegra"),
    ("plugin", "deviceListStrategy"): ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri"),
    ("plugin", "deviceIDStrategy"): ("uuid", "index"),
    ("plugin", "sharedDevicesAllocationPolicy"): ("distributed", "packed"),
}
FLAG_KEYS = {"migStrategy", "failOnInitError", "mpsRoot", "nvidiaDriverRoot", "nvidiaDevRoot", "gdrcopyEnabled", "gdsEnabled",
             "mofedEnabled", "useNodeFeatureAPI", "deviceDiscoveryStrategy", "plugin", "gfd"}
PLUGIN_KEYS = {"passDeviceSpecs", "deviceListStrategy", "deviceIDStrategy", "cdiAnnotationPrefix", "nvidiaCTKPath",
               "containerDriverRoot", "sharedDevicesAllocationPolicy"}
UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
DEVICE_REF_RE = re.compile(rf"^(\d+|\d+:\d+|GPU-{UUID_RE}|MIG-{UUID_RE}|MIG-GPU-{UUID_RE}/\d+/\d+)$")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def check_flag(ctx: LintContext, flags: dict, path: tuple, p: tuple) -> None:
    """One enumerated flag: a wrong value stops the plugin at start-up (main.go validates each)."""
    node: Any = flags
    for k in path:
        node = node.get(k) if isinstance(node, dict) else None
    if node is None:
        return
    choices = FLAG_CHOICES[path]
    values = node if (path[-1] == "deviceListStrategy" and isinstance(node, list)) else [node]
    for v in values:
        if v not in choices:
            close = [c for c in choices if isinstance(v, str) and (c.startswith(v[:3]) or v.lower() == c.lower())]
            ctx.add(p + path, "dp.flag-value", f"{path[-1]} {v!r} is not one of {', '.join(choices)}; {FAILS}",
                    f"use {close[0] if close else ' or '.join(choices)}")


def _lint_device_plugin(ctx: LintContext, cfg: Any, base: tuple, mig_entries: dict) -> None:
    """k8s-device-plugin v0.20.0 config (api/config/v1): what fails start-up is an error, what the
    plugin parses and then ignores (with a log warning) is a warning, unknown keys are ignored."""
    if not isinstance(cfg, dict):
        ctx.add(base, "dp.structure", "a device-plugin config must be a mapping", "start with version: v1")
        return
    if cfg.get("version", "v1") not in ("v1", "", None):
        ctx.add(base + ("version",), "dp.version", f"version is {cfg.get('version')!r}; only v1 exists ({FAILS})", "set version: v1")
    for k in cfg:
        if k not in DP_TOP_KEYS:
            ctx.add(base + (str(k),), "dp.unknown-field", f"unknown field '{k}': the plugin ignores it", f"use {', '.join(sorted(DP_TOP_KEYS))}", severity="warning")
    res = cfg.get("resources")
    if isinstance(res, dict) and (res.get("gpus") or res.get("mig")):
        ctx.add(base + ("resources",), "dp.ignored-field", "custom resources are not yet supported: the plugin logs a warning and ignores them",
                "remove the resources section", severity="warning")
    flags = cfg.get("flags")
    if flags is not None and not isinstance(flags, dict):
        ctx.add(base + ("flags",), "dp.structure", f"flags must be a mapping; {FAILS}", "write flags: {migStrategy: none}")
        flags = {}
    flags = flags or {}
    for k in flags:
        if k not in FLAG_KEYS:
            ctx.add(base + ("flags", str(k)), "dp.unknown-field", f"unknown flag '{k}': the plugin ignores it", f"use one of {', '.join(sorted(FLAG_KEYS))}", severity="warning")
    plugin = flags.get("plugin")
    if isinstance(plugin, dict):
        for k in plugin:
            if k not in PLUGIN_KEYS:
                ctx.add(base + ("flags", "plugin", str(k)), "dp.unknown-field", f"unknown plugin flag '{k}': the plugin ignores it",
                        f"use one of {', '.join(sorted(PLUGIN_KEYS))}", severity="warning")
        dls = plugin.get("deviceListStrategy")
        if dls is not None and not (isinstance(dls, str) or (isinstance(dls, list) and all(isinstance(x, str) for x in dls))):
            ctx.add(base + ("flags", "plugin", "deviceListStrategy"), "dp.flag-value", f"deviceListStrategy must be a string or a list of strings; {FAILS}",
                    "use deviceListStrategy: envvar (or a list such as [envvar, cdi-annotations])")
    for path in FLAG_CHOICES:
        if path == ("plugin", "deviceListStrategy") and not isinstance((plugin or {}).get("deviceListStrategy") if isinstance(plugin, dict) else None, (str, list)):
            continue
        check_flag(ctx, flags, path, base + ("flags",))
    strategy = flags.get("migStrategy", "none")
    sharing = cfg.get("sharing")
    if sharing is None:
        return
    if not isinstance(sharing, dict):
        ctx.add(base + ("sharing",), "dp.structure", f"sharing must be a mapping; {FAILS}", "use sharing: {timeSlicing: …} or {mps: …}")
        return
    modes = [m for m in ("timeSlicing", "mps") if sharing.get(m)]
    if len(modes) == 2:
        ctx.add(base + ("sharing",), "dp.exclusive", "timeSlicing and mps are both set; they are mutually exclusive", "keep one of them (the plugin would use MPS)")
    for k in sharing:
        if k not in ("timeSlicing", "mps"):
            ctx.add(base + ("sharing", str(k)), "dp.unknown-field", f"unknown sharing mode '{k}': the plugin ignores it", "use timeSlicing or mps", severity="warning")
    for mode in modes:
        _lint_sharing(ctx, mode, sharing[mode], base + ("sharing", mode), strategy if strategy in MIG_STRATEGIES else "none", mig_entries)


def _devices_problem(devices: Any) -> str | None:
    """Why ReplicatedDevices.UnmarshalJSON refuses a value, or None when it parses."""
    if isinstance(devices, bool):
        return f"devices {devices!r} is not 'all', a count or a list"
    if isinstance(devices, str):
        return None if devices == "all" else f"devices {devices!r}: the only valid string is 'all'"
    if isinstance(devices, int):
        return None if devices > 0 else f"devices {devices}: a count must be > 0"
    if isinstance(devices, list):
        for d in devices:
            ok = (isinstance(d, int) and not isinstance(d, bool) and d >= 0) or (isinstance(d, str) and DEVICE_REF_RE.match(d))
            if not ok:
                return f"devices entry {d!r} is not a GPU index, a MIG index (gpu:mig) or a GPU/MIG UUID"
        return None
    return f"devices {devices!r} is not 'all', a count or a list"


def _rename_problem(rename: Any) -> str | None:
    """Why NewResourceName refuses a rename, or None."""
    if not isinstance(rename, str):
        return f"rename {rename!r} must be a string"
    full = rename if rename.startswith("nvidia.com/") else "nvidia.com/" + rename
    if len(full) > 63:
        return f"rename {full} is longer than 63 characters"
    name = full.split("/", 1)[1]
    if not DNS_SUBDOMAIN_RE.match(name) or len(name) > 253:
        return f"rename {rename!r} is not a DNS subdomain (lower-case letters, digits, '-', '.')"
    return None


def _lint_sharing(ctx: LintContext, mode: str, sec: Any, p: tuple, strategy: str, mig_entries: dict) -> None:
    if not isinstance(sec, dict):
        ctx.add(p, "dp.structure", f"{mode} must be a mapping with resources; {FAILS}", "add resources: [{name: nvidia.com/gpu, replicas: 4}]")
        return
    for k in sec:
        if k not in DP_SHARING_KEYS | {"strategy"}:
            ctx.add(p + (str(k),), "dp.unknown-field", f"unknown field '{k}': the plugin ignores it", f"use {', '.join(sorted(DP_SHARING_KEYS))}", severity="warning")
    res = sec.get("resources")
    if not isinstance(res, list) or not res:
        ctx.add(p + ("resources",), "dp.no-resources", f"no resources specified; {FAILS}", "add resources: [{name: nvidia.com/gpu, replicas: 4}]")
        return
    for i, r in enumerate(res):
        rp = p + ("resources", i)
        if not isinstance(r, dict):
            ctx.add(rp, "dp.structure", f"a resource must be a mapping with name and replicas; {FAILS}", "write {name: nvidia.com/gpu, replicas: 4}")
            continue
        if "devices" in r:
            why = _devices_problem(r["devices"])
            if why:
                ctx.add(rp + ("devices",), "dp.devices", f"{why}; {FAILS}", "use devices: all, a count > 0, or a list of GPU indices/UUIDs")
            elif r["devices"] != "all":
                ctx.add(rp + ("devices",), "dp.ignored-field", "per-resource devices are not yet supported: the plugin logs a warning and shares every GPU",
                        "remove it, or use devices: all", severity="warning")
        if "rename" in r:
            why = _rename_problem(r["rename"])
            if why:
                ctx.add(rp + ("rename",), "dp.rename", f"{why}; {FAILS}", "use a name like gpu.shared, or remove rename")
            else:
                ctx.add(rp + ("rename",), "dp.ignored-field", "per-resource rename is not yet supported: the plugin logs a warning and ignores it",
                        "remove it; use renameByDefault: true for <name>.shared", severity="warning")
        replicas = r.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 2:
            ctx.add(rp + ("replicas",), "dp.replicas", f"replicas {replicas!r} must be an integer ≥ 2; {FAILS}", "use replicas ≥ 2; to stop sharing, remove the sharing section")
        elif mode == "mps" and replicas > 48:
            ctx.add(rp + ("replicas",), "dp.mps-limit", f"MPS allows at most 48 clients per GPU, not {replicas}", "use replicas ≤ 48 (≤ 16 before Volta)")
        name = r.get("name")
        if not isinstance(name, str):
            ctx.add(rp + ("name",), "dp.resource-name", f"resource needs a name; {FAILS}", "use nvidia.com/gpu")
            continue
        if mode == "mps":
            if name != "nvidia.com/gpu":
                ctx.add(rp + ("name",), "dp.mps-resource", f"MPS shares only nvidia.com/gpu, not {name}", "use name: nvidia.com/gpu")
            if strategy != "none":
                ctx.add(rp, "dp.mps-resource", "MPS is not supported on devices with MIG enabled", "set flags.migStrategy: none and use GPUs without MIG")
            continue
        m = re.fullmatch(r"nvidia\.com/mig-(.+)", name)
        if name in ("nvidia.com/gpu", "gpu"):
            continue
        if not m:
            ctx.add(rp + ("name",), "dp.resource-name", f"{name} cannot be time-sliced", "use nvidia.com/gpu or nvidia.com/mig-<profile> (mixed strategy)")
        elif "+" in m[1]:
            ctx.add(rp + ("name",), "dp.resource-name", f"{name} has '+'; resource names replace '+' with '.'", f"use {name.replace('+', '.')}")
        elif not PROFILE_RE.match(re.sub(r"\.(me\.all|me|gfx)$", r"+\1", m[1])):
            ctx.add(rp + ("name",), "dp.resource-name", f"{name} does not name a MIG profile", "use nvidia.com/mig-<G>g.<GB>gb")
        elif strategy != "mixed":
            ctx.add(rp + ("name",), "dp.mig-strategy", f"{name} exists only with migStrategy mixed (now {strategy})",
                    "set flags.migStrategy: mixed, or share nvidia.com/gpu under single")
    if strategy == "single":
        for name, why in _single_violations(mig_entries):
            ctx.add(p, "dp.single-strategy", f"migStrategy single needs one profile on every GPU of a node, but mig config '{name}' {why}",
                    "use migStrategy mixed, or give that config one profile on all GPUs")


def _single_violations(mig_entries: dict[str, dict]) -> list[tuple[str, str]]:
    """Configs that would make GFD label a node -MIG-INVALID under the single strategy (§5.2)."""
    out = []
    for name, info in sorted(mig_entries.items()):
        if len(info["profiles"]) > 1:
            out.append((name, f"creates {', '.join(sorted(info['profiles']))}"))
        elif info["profiles"] and False in info["enabled"]:
            out.append((name, "mixes MIG-enabled and MIG-disabled GPUs"))
    return out


# --------------------------------------------------------------------------- CRDs, Helm values, Nodes, Pods


def _lint_operator_crd(ctx: LintContext, doc: dict, base: tuple) -> None:
    lint_crd(ctx, doc, base)
    if doc.get("kind") == "ClusterPolicy":
        _lint_policy_spec(ctx, doc.get("spec"), base + ("spec",))
    elif doc.get("kind") in ("HostDeviceNetwork", "MacvlanNetwork"):
        _lint_network_ipam(ctx, doc.get("spec"), base + ("spec", "ipam"))


def _lint_network_ipam(ctx: LintContext, spec: Any, p: tuple) -> None:
    """The operator pastes spec.ipam into the NetworkAttachmentDefinition's CNI config, so it must be a JSON object;
    whereabouts is no longer deployed by the operator (removed in v25.10.0, Mellanox/network-operator fbc0b2cf)."""
    ipam = spec.get("ipam") if isinstance(spec, dict) else None
    if not isinstance(ipam, str) or not ipam.strip():
        return
    try:
        cfg = json.loads(ipam)
    except ValueError as e:
        ctx.add(p, "net.ipam", f"ipam is not JSON ({e}): the CNI plugin fails to parse the network's config",
                'write it as a JSON object, e.g. {"type": "nv-ipam", "poolName": "my-pool"}')
        return
    if not isinstance(cfg, dict) or not cfg.get("type"):
        ctx.add(p, "net.ipam", "ipam has no \"type\": the CNI plugin cannot pick an IPAM plugin", 'set "type": "nv-ipam" and "poolName"')
    elif cfg["type"] == "whereabouts":
        ctx.add(p, "net.ipam", "whereabouts: the Network Operator stopped deploying it in v25.10.0, so pods on this network "
                "fail CNI setup unless you install it yourself", 'use {"type": "nv-ipam", "poolName": …} with an IPPool '
                "(nvIpam in the NicClusterPolicy)", severity="warning")
    elif cfg["type"] == "nv-ipam" and not cfg.get("poolName"):
        ctx.add(p, "net.ipam", "nv-ipam without a poolName: nv-ipam cannot tell which IPPool to allocate from",
                'add "poolName": the IPPool\'s name')


def _lint_policy_spec(ctx: LintContext, spec: Any, p: tuple) -> None:
    if not isinstance(spec, dict):
        return
    dp = spec.get("devicePlugin") if isinstance(spec.get("devicePlugin"), dict) else {}
    cfg = dp.get("config") if isinstance(dp.get("config"), dict) else {}
    if cfg.get("default") and not cfg.get("name"):
        ctx.add(p + ("devicePlugin", "config"), "cp.device-plugin-config", "config.default is set but config.name (the ConfigMap) is empty", "set devicePlugin.config.name to the ConfigMap holding the configs")
    driver = spec.get("driver") if isinstance(spec.get("driver"), dict) else {}
    rdma = driver.get("rdma") if isinstance(driver.get("rdma"), dict) else {}
    if rdma.get("useHostMofed") and not rdma.get("enabled"):
        ctx.add(p + ("driver", "rdma"), "cp.rdma", "useHostMofed has no effect while rdma.enabled is false", "set driver.rdma.enabled: true for GPUDirect RDMA")


def _lint_policy_refs(ctx: LintContext, doc: dict, base: tuple, configmaps: dict[str, set[str]], mig_keys: set[str], mig_entries: dict[str, dict]) -> None:
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    mm = spec.get("migManager") if isinstance(spec.get("migManager"), dict) else {}
    mcfg = mm.get("config") if isinstance(mm.get("config"), dict) else {}
    name = mcfg.get("name")
    if isinstance(name, str) and name in configmaps and "config.yaml" not in configmaps[name]:
        ctx.add(base + ("spec", "migManager", "config", "name"), "mig.configmap-key", f"ConfigMap '{name}' has no key 'config.yaml'",
                "store the mig-parted config under data.config.yaml")
    default = mcfg.get("default")
    if isinstance(default, str) and default and mig_keys and default not in mig_keys:
        ctx.add(base + ("spec", "migManager", "config", "default"), "mig.label", f"default MIG config '{default}' is not a key of mig-configs",
                f"use one of {', '.join(sorted(mig_keys))}")
    mig = spec.get("mig") if isinstance(spec.get("mig"), dict) else {}
    if mig.get("strategy") == "single":
        for name, why in _single_violations(mig_entries):
            ctx.add(base + ("spec", "mig", "strategy"), "cp.single-strategy",
                    f"mig.strategy single, but mig config '{name}' {why}; GFD would label such nodes -MIG-INVALID",
                    "use mig.strategy: mixed, or one profile on every GPU of a node")
    dp = spec.get("devicePlugin") if isinstance(spec.get("devicePlugin"), dict) else {}
    dcfg = dp.get("config") if isinstance(dp.get("config"), dict) else {}
    dname, ddefault = dcfg.get("name"), dcfg.get("default")
    if isinstance(dname, str) and dname in configmaps:
        keys = configmaps[dname]
        if isinstance(ddefault, str) and ddefault and ddefault not in keys:
            ctx.add(base + ("spec", "devicePlugin", "config", "default"), "cp.device-plugin-config", f"default '{ddefault}' is not a key of ConfigMap '{dname}'",
                    f"use one of {', '.join(sorted(keys))}")
        elif not ddefault and len(keys) > 1 and "default" not in keys:
            ctx.add(base + ("spec", "devicePlugin", "config"), "cp.device-plugin-config", f"ConfigMap '{dname}' has several configs and no default",
                    "set devicePlugin.config.default (the plugin fails to start otherwise)")


def _section(d: Any, *keys: str) -> dict:
    for k in keys:
        d = d.get(k) if isinstance(d, dict) else None
    return d if isinstance(d, dict) else {}


def default_mig_config_names() -> set[str]:
    """Config names mig-manager offers without a custom ConfigMap: all-disabled, all-enabled,
    all-balanced and all-<profile> ('+' written '.'), the naming of the GPU Operator's default
    mig-parted config (assets/state-mig-manager/0400_configmap.yaml @ a22dbf6) and of the config
    mig-manager generates from the hardware."""
    names = {"all-disabled", "all-enabled", "all-balanced"}
    for g in all_mig_gpus():
        for prof in g.profiles.values():
            for n in (prof.name, *prof.also_named):
                names.add("all-" + n.replace("+", "."))
    return names


def _lint_values_configmap(ctx: LintContext, cfg: dict, p: tuple, component: str) -> None:
    """`<component>.config` with create: true renders a ConfigMap named config.name; an empty name
    renders a ConfigMap without metadata.name, which helm install refuses."""
    if cfg.get("create") and cfg.get("data") and not cfg.get("name"):
        ctx.add(p + ("name",), "values.configmap-name", f"{component}.config.create is true with data but config.name is empty: "
                "the chart renders a ConfigMap without a name and helm install fails", f"set {component}.config.name (e.g. custom-{component.lower()}-config)")
    if cfg.get("create") and not cfg.get("data"):
        ctx.add(p + ("data",), "values.configmap-data", f"{component}.config.create is true but data is empty: the chart skips the ConfigMap",
                f"add the configs under {component}.config.data, or set create: false and name an existing ConfigMap", severity="warning")


def _lint_helm(ctx: LintContext, values: dict, base: tuple, mig_entries: dict) -> None:
    """GPU Operator chart values (deployments/gpu-operator/values.yaml and templates @ a22dbf6)."""
    mig = values.get("mig")
    if isinstance(mig, dict) and mig.get("strategy") not in (None, *MIG_STRATEGIES):
        ctx.add(base + ("mig", "strategy"), "cp.mig-strategy", f"mig.strategy {mig.get('strategy')!r} is not none, single or mixed", "use none, single or mixed")
    mcfg = _section(values, "migManager", "config")
    mp = base + ("migManager", "config")
    _lint_values_configmap(ctx, mcfg, mp, "migManager")
    data = mcfg.get("data")
    local_keys: set[str] = set()
    if isinstance(data, dict) and data:
        if mcfg.get("create") and "config.yaml" not in data:
            ctx.add(mp + ("data",), "mig.configmap-key", "migManager.config.data has no key 'config.yaml'; mig-manager reads only that key",
                    "put the mig-parted config under data.config.yaml")
        for kind, key, cfg in embedded_payloads(ctx, data, mp + ("data",)):
            if kind == "mig":
                local_keys |= _lint_mig(ctx, cfg, mp + ("data", key), mig_entries)
    default = mcfg.get("default")
    if isinstance(default, str) and default:
        if local_keys and mcfg.get("create"):
            if default not in local_keys:
                ctx.add(mp + ("default",), "mig.default", f"migManager.config.default '{default}' is not a config in migManager.config.data",
                        f"use one of {', '.join(sorted(local_keys))}")
        elif not mcfg.get("name") and default not in default_mig_config_names():
            ctx.add(mp + ("default",), "mig.default", f"migManager.config.default '{default}' is not a config mig-manager provides "
                    "(no custom ConfigMap is named); nodes without a mig.config label stay unconfigured",
                    "use all-disabled, all-enabled, all-balanced or all-<profile>, or name a custom ConfigMap in migManager.config.name")
    dcfg = _section(values, "devicePlugin", "config")
    dp = base + ("devicePlugin", "config")
    _lint_values_configmap(ctx, dcfg, dp, "devicePlugin")
    ddata = dcfg.get("data")
    if isinstance(ddata, dict):
        for kind, key, cfg in embedded_payloads(ctx, ddata, dp + ("data",)):
            if kind == "dp":
                _lint_device_plugin(ctx, cfg, dp + ("data", key), mig_entries)
        ddefault = dcfg.get("default")
        if isinstance(ddefault, str) and ddefault and dcfg.get("create") and ddata and ddefault not in ddata:
            ctx.add(dp + ("default",), "cp.device-plugin-config", f"devicePlugin.config.default '{ddefault}' is not a key of devicePlugin.config.data",
                    f"use one of {', '.join(sorted(map(str, ddata)))}")


def _lint_plugin_chart(ctx: LintContext, values: dict, base: tuple, mig_entries: dict) -> None:
    """k8s-device-plugin chart values (deployments/helm/nvidia-device-plugin/values.yaml @ 1b826ac):
    each config.map entry is a whole plugin config; the top-level flags become plugin arguments."""
    cfg = _section(values, "config")
    if cfg.get("name") and cfg.get("map"):
        ctx.add(base + ("config",), "values.config-map", "config.name and config.map are both set; the chart uses one ConfigMap only",
                "keep config.name (an existing ConfigMap) or config.map (built by the chart), not both")
    cmap = cfg.get("map")
    if cmap is not None and not isinstance(cmap, dict):
        ctx.add(base + ("config", "map"), "values.config-map", "config.map must be a mapping of config name to config text", "write map: {default: |- ...}")
        cmap = {}
    for key, text in (cmap or {}).items():
        p = base + ("config", "map", str(key))
        if not isinstance(text, str):
            if isinstance(text, dict):  # written as YAML rather than a block string: the chart's toYaml still renders it
                _lint_device_plugin(ctx, text, p, mig_entries)
            continue
        try:
            doc = load_yaml_text(text, f"{ctx.file} config.map.{key}")
        except UnsafeInputError as e:
            ctx.add(p, "yaml-parse", f"embedded YAML is refused: {str(e).split(': ', 1)[-1]}", "fix the YAML inside this key")
            continue
        _lint_device_plugin(ctx, doc if doc is not None else {}, p, mig_entries)
    default = cfg.get("default")
    if isinstance(default, str) and default and cmap and default not in cmap:
        ctx.add(base + ("config", "default"), "cp.device-plugin-config", f"config.default '{default}' is not a key of config.map",
                f"use one of {', '.join(sorted(map(str, cmap)))}")
    flags = {k: values.get(k) for k in ("migStrategy", "deviceDiscoveryStrategy") if values.get(k) is not None}
    plugin = {k: values.get(k) for k in ("deviceListStrategy", "deviceIDStrategy") if values.get(k) is not None}
    if plugin:
        flags["plugin"] = plugin
    for path in FLAG_CHOICES:
        if path[0] == "plugin" and len(path) == 2 and path[1] not in plugin:
            continue
        node = flags
        for k in path[:-1]:
            node = node.get(k, {})
        if path[-1] not in node:
            continue
        sub = LintContext(ctx.file)
        check_flag(sub, flags, path, ())
        for f in sub.findings:
            f.path = fmt_path(base + (path[-1],))
        ctx.findings += sub.findings


def _lint_clients(ctx: LintContext, cfg: dict, p: tuple) -> None:
    """mig-manager gpu-clients list (mig-parted cmd/nvidia-mig-manager GPUClients: version,
    systemd-services): host services mig-manager stops before reconfiguring."""
    if cfg.get("version", "v1") != "v1":
        ctx.add(p + ("version",), "clients.version", f"gpu-clients version {cfg.get('version')!r}; only v1 exists", "set version: v1")
    for k in ("systemd-services",):
        v = cfg.get(k)
        if v is not None and not (isinstance(v, list) and all(isinstance(x, str) for x in v)):
            ctx.add(p + (k,), "clients.structure", f"{k} must be a list of names", f"write {k}: [name, ...]")


def _lint_node(ctx: LintContext, doc: dict, base: tuple, mig_keys: set[str]) -> None:
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    labels = meta.get("labels") if isinstance(meta.get("labels"), dict) else {}
    value = labels.get("nvidia.com/mig.config")
    if value is not None and mig_keys and str(value) not in mig_keys:
        ctx.add(base + ("metadata", "labels", "nvidia.com/mig.config"), "mig.label", f"label value '{value}' is not a key of mig-configs",
                f"use one of {', '.join(sorted(mig_keys))}")


def _lint_pod(ctx: LintContext, doc: dict, base: tuple) -> None:
    spec = doc.get("spec") if isinstance(doc.get("spec"), dict) else {}
    containers = spec.get("containers") if isinstance(spec.get("containers"), list) else []
    for i, c in enumerate(containers):
        res = c.get("resources") if isinstance(c, dict) and isinstance(c.get("resources"), dict) else {}
        for section in ("limits", "requests"):
            block = res.get(section) if isinstance(res.get(section), dict) else {}
            for name in block:
                if str(name).startswith("nvidia.com/mig-") and "+" in str(name):
                    ctx.add(base + ("spec", "containers", i, "resources", section, str(name)), "dp.resource-name",
                            f"{name} has '+'; the device plugin advertises it with '.'", f"request {str(name).replace('+', '.')}")
