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

import difflib
import json
import math
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from aiinfra.catalog.loader import DATA_DIR
from aiinfra.safeio import UnsafeInputError, load_yaml_text, read_text
from aiinfra.sharing import dra_lint
from aiinfra.sharing.crd_lint import crd_schema, lint_crd  # noqa: F401 - crd_schema: callers read it from here
from aiinfra.sharing.findings import Finding, LintContext, fmt_path
from aiinfra.sharing.mig import PROFILE_RE, MigGpu, all_mig_gpus, by_pci_id, validate

MIG_ENTRY_KEYS = {"devices", "mig-enabled", "mig-devices", "device-filter"}
DP_BODY_KEYS = {"flags", "sharing", "resources", "imex"}
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
                        _lint_mig_configmap_key(ctx, base + ("data", key), key, "config.yaml" in (data or {}))
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
        elif kind is None and classify(doc) == "dp":
            later.append((doc, ctx, base))  # neither chart has sharing or flags at the top
        elif isinstance(doc, dict) and kind is None and _is_plugin_chart_values(doc):
            # before the operator's: the plugin chart has a devicePlugin section too, the operator chart no
            # top-level config or plugin flags
            _lint_plugin_chart(ctx, doc, base, mig_entries)
        elif isinstance(doc, dict) and kind is None and _is_operator_values(doc):
            _lint_helm(ctx, doc, base, mig_entries)
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


def _lint_mig_configmap_key(ctx: LintContext, p: tuple, key: str, has_config_yaml: bool) -> None:
    """mig-manager reads one file, CONFIG_FILE: the GPU Operator sets it to /mig-parted-config/config.yaml for a
    custom ConfigMap, which it mounts whole (controllers/object_controls.go TransformMIGManager @ a22dbf6), as
    mig-parted's example daemonsets do. A mig-parted config under another key is never read."""
    if has_config_yaml:
        ctx.add(p, "mig.configmap-key", f"mig-parted config stored under key '{key}' beside config.yaml: mig-manager reads only "
                "config.yaml, so this one is never applied", "merge its mig-configs into config.yaml, or remove it", severity="warning")
    else:
        ctx.add(p, "mig.configmap-key", f"mig-parted config stored under key '{key}': mig-manager reads "
                "/mig-parted-config/config.yaml (the GPU Operator sets CONFIG_FILE to it for a custom ConfigMap), finds no "
                "config and applies no MIG config", "store it under the key 'config.yaml'")


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
    folded = {k.casefold() for k in keys}  # the plugin matches its config's keys ignoring case
    if folded & {"sharing", "flags"} or ("version" in folded and folded & {k.casefold() for k in DP_BODY_KEYS}):
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
    """One entry as mig-parted reads it (MigConfigSpec.UnmarshalJSON, api/spec/v1/spec.go @ bd7160f): what it
    refuses fails the whole file; what it reads but matches to no GPU is a warning."""
    if not isinstance(e, dict):
        ctx.add(p, "mig.structure", "an entry must be a mapping", "write {devices: all, mig-enabled: true, mig-devices: {...}}")
        return
    for k in e:
        if k not in MIG_ENTRY_KEYS:
            ctx.add(p + (str(k),), "mig.unknown-field", f"unexpected field '{k}' in an entry (mig-parted rejects it)", "use devices, mig-enabled, mig-devices, device-filter")
    _lint_mig_devices_field(ctx, e, p)
    enabled = e.get("mig-enabled")
    if "mig-enabled" not in e:
        ctx.add(p, "mig.enabled", "entry has no 'mig-enabled'", "add mig-enabled: true or false")
    elif enabled is None:
        enabled = False  # encoding/json leaves the bool false
        ctx.add(p + ("mig-enabled",), "mig.enabled", "mig-enabled is null: mig-parted reads it as false and keeps MIG off on these GPUs",
                "write mig-enabled: true or false", severity="warning")
    elif not isinstance(enabled, bool):
        ctx.add(p + ("mig-enabled",), "mig.enabled", f"mig-enabled must be true or false, not {enabled!r}", "use a YAML boolean")
    gpus = _lint_filter(ctx, e.get("device-filter"), p + ("device-filter",), enabled is True) if "device-filter" in e else None
    if isinstance(enabled, bool):
        info["enabled"].add(enabled)
    md = e.get("mig-devices")
    if enabled is True and md is None:
        what = "null" if "mig-devices" in e else "missing"
        ctx.add(p + (("mig-devices",) if "mig-devices" in e else ()), "mig.mig-devices",
                f"mig-devices is {what} while mig-enabled is true: mig-parted rejects the file (\"missing required field 'mig-devices' when 'mig-enabled' is true\")",
                "write mig-devices: {} (enable MIG only) or the profiles and counts")
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
        n = 0 if n is None else n  # map[string]int: a null count decodes as 0, 2.0 as 2
        if not _go_int(n) or n < 0:
            ctx.add(pp, "mig.counts", f"count {n!r} must be a whole number ≥ 0 (mig-parted rejects the file)", "use a non-negative integer")
            continue
        n = int(n)
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


def _lint_mig_devices_field(ctx: LintContext, e: dict, p: tuple) -> None:
    """devices: 'all' or a list of indices ([]int). Indices that no GPU has (an empty list, a negative index) parse
    and select nothing (MatchesDevices)."""
    if "devices" not in e:
        ctx.add(p, "mig.devices", "entry has no 'devices'", "add devices: all (or a list of GPU indices)")
        return
    devices = e["devices"]
    dp = p + ("devices",)
    if devices == "all":
        return
    if not isinstance(devices, list) or not all(d is None or _go_int(d) for d in devices):
        ctx.add(dp, "mig.devices", f"devices must be 'all' or a list of GPU indices, not {devices!r} (mig-parted rejects the file)",
                "use devices: all or devices: [0, 1]")
    elif not devices:
        ctx.add(dp, "mig.devices", "devices: [] selects no GPU: mig-parted applies this entry to nothing", "list GPU indices, or use devices: all",
                severity="warning")
    elif any(d is not None and d < 0 for d in devices):
        neg = [int(d) for d in devices if d is not None and d < 0]
        ctx.add(dp, "mig.devices", f"GPU index {neg[0]} matches no GPU: mig-parted skips it", "use indices 0, 1, … as nvidia-smi lists the GPUs",
                severity="warning")


def go_device_id(text: str) -> tuple[int, int] | None:
    """(device, vendor) of a device-filter string as mig-parted reads it (types.NewDeviceIDFromString:
    strconv.ParseUint(s, 0, 32), so 0x/0X, 0o, 0b, a leading 0 for octal, decimal and '_' between digits all
    parse), or None where it fails: the filter then matches no GPU."""
    parts = text.split(":")
    if len(parts) > 2 or any(_go_uint0(x) is None for x in parts):
        return None
    raw = _go_uint0(parts[0])
    return raw >> 16, raw & 0xFFFF


def _go_uint0(s: str) -> int | None:
    if not s or not all(c.isascii() and (c.isalnum() or c == "_") for c in s):
        return None
    base, digits = 10, s
    if len(s) > 1 and s[0] == "0":
        base, digits = {"x": (16, s[2:]), "o": (8, s[2:]), "b": (2, s[2:])}.get(s[1].lower(), (8, s[1:]))
        if s[1].isalpha() and digits.startswith("_"):
            digits = digits[1:]  # Go allows '_' right after the base prefix
    try:
        v = int(digits, base)
    except ValueError:
        return None
    return v if v < 2**32 else None


def _lint_filter(ctx: LintContext, value: Any, p: tuple, enabling: bool = True) -> list[MigGpu] | None:
    """PCI IDs of the entry (a string or a list of strings; MatchesDeviceFilter, api/spec/v1/helpers.go). An empty
    filter filters nothing; one that does not parse, or names another vendor, matches no GPU. An unknown ID matters
    only where MIG is enabled: entries that keep MIG off on other GPUs of the box (the DGX Station's display GPU)
    are normal."""
    if value is None or value == "" or value == []:
        ctx.add(p, "mig.device-filter", "an empty device-filter filters nothing: the entry applies to every GPU its devices select",
                "give the PCI IDs (e.g. \"0x233010DE\"), or leave device-filter out", severity="info")
        return None
    if not (isinstance(value, str) or (isinstance(value, list) and all(v is None or isinstance(v, str) for v in value))):
        ctx.add(p, "mig.device-filter", f"device-filter must be a string or a list of strings, not {value!r} (mig-parted rejects the file)",
                "quote the ID, e.g. \"0x233010DE\": unquoted, YAML reads 0x233010DE as a number")
        return None
    values = value if isinstance(value, list) else [value]
    gpus: list[MigGpu] = []
    for i, v in enumerate(values):
        pp = p + ((i,) if isinstance(value, list) else ())
        dev = go_device_id(v or "")
        if dev is None or dev[1] != 0x10DE:
            why = "does not parse as a PCI ID" if dev is None else f"names vendor 0x{dev[1]:04X}, not NVIDIA (10DE)"
            ctx.add(pp, "mig.device-filter", f"device-filter {v!r} {why}: it matches no GPU and mig-parted skips the entry on every GPU",
                    "write the PCI device ID followed by 10DE, e.g. \"0x233010DE\" for H100 80GB SXM5", severity="warning")
            continue
        g = by_pci_id(f"0x{dev[0]:04x}")
        if g is None and enabling:
            ctx.add(pp, "mig.device-filter", f"device ID 0x{dev[0]:04X} is not a MIG-capable GPU in the catalog", "check the PCI ID (lspci -nn | grep 10de)", severity="warning")
        elif g is not None and g not in gpus:
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
    checks = [(g, validate(g, _by_canonical(g, counts))) for g in pool]
    bad = [(g, c) for g, c in checks if not c.valid]
    if bad and (gpus or len(bad) == len(checks)):
        g, c = bad[0]
        ctx.add(p, "mig.geometry", f"not a valid geometry on {g.name}: {'; '.join(c.reasons)}", "pick a geometry from aiinfra mig geometries " + g.name.lower())
        return
    notes = sorted({n for _, c in checks if c.valid for n in c.notes})
    for n in notes:
        ctx.add(p, "mig.driver", n, "make sure the nodes run that driver branch or newer", severity="info")


def _by_canonical(g: MigGpu, counts: dict[str, int]) -> dict[str, int]:
    """Counts by the table's names; two spellings of one profile (3g.20gb, 3c.3g.20gb) add up."""
    out: dict[str, int] = {}
    for c, n in counts.items():
        key = g.canonical(c)
        out[key] = out.get(key, 0) + n
    return out


def is_ci_profile(name: str) -> bool:
    """A compute-instance profile name, 'Cc.Gg.XXgb' with C < G: the device plugin's mixed strategy advertises
    no resource for it (internal/rm/rm.go AddDefaultResourcesToConfig skips C != G)."""
    m = PROFILE_RE.match(str(name))
    return bool(m and m["c"] and int(m["c"]) < int(m["g"]))


# --------------------------------------------------------------------------- device plugin (§11.4)


FAILS = "the device plugin fails to start"
FLAG_CHOICES = {  # k8s-device-plugin v0.20.0 cmd/nvidia-device-plugin/main.go and api/config/v1/consts.go
    ("migStrategy",): MIG_STRATEGIES,
    ("deviceDiscoveryStrategy",): ("auto", "nvml", "tegra"),
    ("plugin", "deviceListStrategy"): ("envvar", "volume-mounts", "cdi-annotations", "cdi-cri"),
    ("plugin", "deviceIDStrategy"): ("uuid", "index"),
    ("plugin", "sharedDevicesAllocationPolicy"): ("distributed", "packed"),
}
# The Go type of every field of the plugin's config, k8s-device-plugin api/config/v1 @ 1b826ac (config.go, flags.go,
# sharing.go, resources.go, imex.go, duration.go). The file is read with sigs.k8s.io/yaml, i.e. encoding/json: a
# struct's keys match its fields exactly or else case-insensitively (the last such key wins), a key that matches no
# field is dropped, a null leaves the field unset, and a value of another JSON type fails the whole file.
VERSION, STRING, BOOL, DURATION, STRINGS, INTS, RESOURCE_LIST, REPLICATED = (
    "version", "a string", "true or false", "a duration", "a string or a list of strings", "a list of whole numbers",
    "a list of resources", "replicated resources")
DP_SCHEMA: dict[str, Any] = {
    "version": VERSION,
    "flags": {
        "migStrategy": STRING, "failOnInitError": BOOL, "mpsRoot": STRING, "nvidiaDriverRoot": STRING,
        "nvidiaDevRoot": STRING, "gdrcopyEnabled": BOOL, "gdsEnabled": BOOL, "mofedEnabled": BOOL,
        "useNodeFeatureAPI": BOOL, "deviceDiscoveryStrategy": STRING,
        "plugin": {"passDeviceSpecs": BOOL, "deviceListStrategy": STRINGS, "deviceIDStrategy": STRING,
                   "cdiAnnotationPrefix": STRING, "nvidiaCTKPath": STRING, "containerDriverRoot": STRING,
                   "sharedDevicesAllocationPolicy": STRING},
        "gfd": {"oneshot": BOOL, "noTimestamp": BOOL, "sleepInterval": DURATION, "outputFile": STRING,
                "machineTypeFile": STRING},
    },
    "resources": {"gpus": RESOURCE_LIST, "mig": RESOURCE_LIST},
    "sharing": {"timeSlicing": REPLICATED, "mps": REPLICATED},
    "imex": {"channelIDs": INTS, "required": BOOL},
}
# ReplicatedResources, ReplicatedResource and Resource read their keys from a map in their own UnmarshalJSON:
# exact (case-sensitive) names, other keys dropped.
REPLICATED_KEYS = ("renameByDefault", "failRequestsGreaterThanOne", "resources")
REPLICATED_RESOURCE_KEYS = ("name", "devices", "replicas", "rename")
RESOURCE_KEYS = ("pattern", "name")
DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
GO_DURATION_RE = re.compile(r"^[-+]?(0|((\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h))+)$")
HEX = "[0-9a-fA-F]"
UUID_FORMS = (re.compile(rf"^{HEX}{{8}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{4}}-{HEX}{{12}}$"), re.compile(rf"^{HEX}{{32}}$"))


def closest_key(key: str, valid: Any) -> str:
    """The fix for an unknown key: the closest valid name, or the list of them."""
    pool = list(valid)
    folded = {v.casefold(): v for v in pool}
    hit = difflib.get_close_matches(str(key).casefold(), list(folded), n=1, cutoff=0.6)
    return f"did you mean '{folded[hit[0]]}'?" if hit else f"valid keys here: {', '.join(pool)}"


def _json_type(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, (int, float)):
        return "a number"
    if isinstance(v, str):
        return "a string"
    return "a list" if isinstance(v, list) else "a mapping"


def _go_int(v: Any, unsigned: bool = False) -> bool:
    """Whether encoding/json decodes v into an int (uint64 with unsigned): a whole JSON number in range. YAML's
    2.0 reaches the decoder as 2."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        return False
    return (0 <= v < 2**64) if unsigned else (-(2**63) <= v < 2**63)


def _go_uuid(s: str) -> bool:
    """google/uuid Parse: 36 characters with dashes, 32 hex digits, {36} in braces or urn:uuid:36."""
    if len(s) == 38 and s[0] == "{" and s[-1] == "}":
        s = s[1:-1]
    elif len(s) == 45 and s[:9].lower() == "urn:uuid:":
        s = s[9:]
    return any(r.match(s) for r in UUID_FORMS)


def _go_uint(s: str) -> bool:
    """strconv.ParseUint(s, 10, 0)."""
    return s.isascii() and s.isdigit() and int(s) < 2**64


def _device_ref_ok(d: str) -> bool:
    """ReplicatedDeviceRef: a GPU index, a MIG index (gpu:mig), GPU-<uuid>, MIG-<uuid> or MIG-GPU-<uuid>/gi/ci."""
    if _go_uint(d):
        return True
    parts = d.split(":", 1)
    if len(parts) == 2 and all(map(_go_uint, parts)):
        return True
    if d.startswith("GPU-"):
        return _go_uuid(d[4:])
    if d.startswith("MIG-"):
        rest = d[4:]
        if _go_uuid(rest):
            return True
        parts = rest.split("/", 2)
        return len(parts) == 3 and parts[0].startswith("GPU-") and _go_uuid(parts[0][4:]) and all(map(_go_uint, parts[1:]))
    return False


def _go_field(value: dict, name: str) -> tuple[str, Any] | None:
    """(the key used, its value) for a struct field as encoding/json reads it: every key equal to the field's name
    ignoring case is applied in turn, so the last one wins."""
    hit = None
    for k, v in value.items():
        if str(k).casefold() == name.casefold():
            hit = (str(k), v)
    return hit


def _decode(ctx: LintContext, value: Any, schema: Any, p: tuple, name: str) -> tuple[bool, Any]:
    """(decodes, value) for one field of the plugin's config; what fails is reported."""
    if isinstance(schema, dict):
        out = _decode_struct(ctx, value, schema, p, name)
        return out is not None, out
    if schema == REPLICATED:
        return True, value  # checked by _lint_sharing
    if value is None and schema != VERSION:
        return True, None  # a null leaves the field unset
    ok = {
        VERSION: lambda v: v in (None, "", "v1"),
        STRING: lambda v: isinstance(v, str),
        BOOL: lambda v: isinstance(v, bool),
        DURATION: lambda v: (isinstance(v, (int, float)) and not isinstance(v, bool))
        or (isinstance(v, str) and (v == "infinite" or bool(GO_DURATION_RE.match(v)))),
        STRINGS: lambda v: isinstance(v, str) or (isinstance(v, list) and all(x is None or isinstance(x, str) for x in v)),
        INTS: lambda v: isinstance(v, list) and all(x is None or _go_int(x) for x in v),
        RESOURCE_LIST: lambda v: isinstance(v, list),
    }[schema](value)
    if schema == VERSION:
        if not ok:
            ctx.add(p, "dp.version", f"version is {value!r}; only v1 exists ({FAILS})", "set version: v1")
        return ok, value
    if not ok:
        example = {STRING: f'{name}: "…" (quoted)', BOOL: f"{name}: true or false, unquoted",
                   DURATION: f'{name}: a Go duration such as 60s, 5m or 1h30m, or "infinite"',
                   STRINGS: f"{name}: envvar, or a list such as [envvar, cdi-annotations]",
                   INTS: f"{name}: [] or [0]", RESOURCE_LIST: f"{name}: [{{pattern: '*', name: gpu}}]"}[schema]
        got = f"'{value}'" if schema == DURATION and isinstance(value, str) else _json_type(value)
        ctx.add(p, "dp.type", f"{name} must be {schema}, not {got}; the plugin cannot parse the file and {FAILS.split('plugin ', 1)[1]}",
                f"write {example}")
        return False, None
    if schema == RESOURCE_LIST:
        good = [_lint_custom_resource(ctx, r, p + (i,)) for i, r in enumerate(value)]
        return all(good), value
    return True, value


def _decode_struct(ctx: LintContext, value: Any, schema: dict, p: tuple, name: str) -> dict | None:
    """A struct of the plugin's config: {field: (key used, value)} for the fields that decode; None when it is not a
    mapping. What fails is reported."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        ctx.add(p, "dp.type", f"{name} must be a mapping, not {_json_type(value)}; the plugin cannot parse the file and "
                f"{FAILS.split('plugin ', 1)[1]}", f"write {name}: {{…}} with the keys {', '.join(schema)}")
        return None
    fields = {f.casefold(): f for f in schema}
    for k in value:
        if str(k).casefold() not in fields:
            ctx.add(p + (str(k),), "dp.unknown-field", f"unknown field '{k}' in {name}: the plugin ignores it",
                    closest_key(str(k), schema), severity="warning")
    out: dict = {}
    for f, typ in schema.items():
        hit = _go_field(value, f)
        if hit is None:
            continue
        key, v = hit
        ok, decoded = _decode(ctx, v, typ, p + (key,), f)
        if ok:
            out[f] = (key, decoded)
    return out


def _val(d: dict | None, *path: str) -> Any:
    """A decoded value by its fields' names, or None."""
    node: Any = d
    for k in path:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k][1]
    return node


def _key(d: dict | None, *path: str) -> tuple:
    """The YAML path of a decoded field, with the keys the file used."""
    out: list = []
    node: Any = d
    for k in path:
        if isinstance(node, dict) and k in node:
            out.append(node[k][0])
            node = node[k][1]
        else:
            out.append(k)
            node = None
    return tuple(out)


def check_flag(ctx: LintContext, flags: dict, path: tuple, p: tuple) -> None:
    """One enumerated flag (flags as plain values): a wrong value stops the plugin at start-up (main.go validates each)."""
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


def _plain(d: Any) -> Any:
    """Decoded fields as plain values (for check_flag)."""
    if isinstance(d, dict):
        return {k: _plain(v[1]) for k, v in d.items()}
    return d


def _lint_device_plugin(ctx: LintContext, cfg: Any, base: tuple, mig_entries: dict) -> None:
    """k8s-device-plugin v0.20.0 config (api/config/v1 @ 1b826ac): what fails to parse or fails validateFlags is an
    error (the plugin does not start); what it parses and then ignores, drops or matches to nothing is a warning."""
    if not isinstance(cfg, dict):
        ctx.add(base, "dp.structure", f"a device-plugin config must be a mapping; {FAILS}", "start with version: v1")
        return
    c = _decode_struct(ctx, cfg, DP_SCHEMA, base, "the config") or {}
    flags = _val(c, "flags") or {}
    plain = _plain(flags)
    for path in FLAG_CHOICES:
        check_flag(ctx, plain, path, base + _key(c, "flags"))
    ids = _val(c, "imex", "channelIDs")
    if isinstance(ids, list) and [int(x or 0) for x in ids] not in ([], [0]):
        ctx.add(base + _key(c, "imex", "channelIDs"), "dp.imex", f"channelIDs must be [] or [0], not {ids}; {FAILS} (invalid IMEX channel IDs)",
                "use channelIDs: [0], or leave it out")
    res = _val(c, "resources") or {}
    if _val(res, "gpus") or _val(res, "mig"):
        ctx.add(base + _key(c, "resources"), "dp.ignored-field", "custom resources are not yet supported: the plugin logs a warning and ignores them",
                "remove the resources section", severity="warning")
    strategy = plain.get("migStrategy") if plain.get("migStrategy") in MIG_STRATEGIES else "none"
    if strategy == "mixed":
        for name, cis in _mixed_violations(mig_entries):
            ctx.add(base + _key(c, "flags", "migStrategy"), "dp.mixed-strategy", f"migStrategy mixed, but mig config '{name}' creates "
                    f"{', '.join(cis)}: the plugin advertises no resource for a compute-instance profile and fails on nodes with them",
                    "use migStrategy single (one profile per node), or whole GPU-instance profiles in that config")
    sharing = _val(c, "sharing")
    if not isinstance(sharing, dict):
        return
    sp = base + _key(c, "sharing")
    ts, mps = sharing.get("timeSlicing"), sharing.get("mps")
    if ts is not None:  # TimeSlicing is a struct: present, even as null, it must hold resources
        _lint_sharing(ctx, "timeSlicing", ts[1], sp + (ts[0],), strategy, mig_entries)
    if mps is None or mps[1] is None:
        return  # MPS is a pointer: null leaves it unset
    _lint_sharing(ctx, "mps", mps[1], sp + (mps[0],), strategy, mig_entries)
    if ts is not None and isinstance(ts[1], dict) and ts[1].get("resources"):
        ctx.add(sp + (ts[0],), "dp.exclusive", "timeSlicing is ignored: with mps set the plugin shares by MPS only "
                "(Sharing.ReplicatedResources returns mps)", "remove timeSlicing, or remove mps to time-slice", severity="warning")
    fp = base + _key(c, "flags", "migStrategy")
    if strategy == "mixed":
        ctx.add(fp, "dp.mps-mig", f"MPS with migStrategy mixed: {FAILS} (\"using --mig-strategy=mixed is not supported with MPS\")",
                "use migStrategy none (or single) with MPS, or time-slicing for MIG devices")
    elif strategy == "single":
        ctx.add(fp, "dp.mps-mig", "MPS with migStrategy single: on a node whose GPUs have MIG enabled the plugin fails "
                "(\"sharing using MPS is not supported for MIG devices\"); it works only where MIG is off",
                "use MPS on nodes without MIG, and time-slicing for MIG devices", severity="warning")


def _devices_problem(devices: Any) -> str | None:
    """Why ReplicatedDevices.UnmarshalJSON refuses a value, or None when it parses."""
    if isinstance(devices, bool) or devices is None:
        return f"devices {'null' if devices is None else devices!r} is not 'all', a count or a list"
    if isinstance(devices, str):
        return None if devices == "all" else f"devices {devices!r}: the only valid string is 'all'"
    if isinstance(devices, (int, float)):
        if not _go_int(devices):
            return f"devices {devices!r} is not 'all', a count or a list"
        return None if devices > 0 else f"devices {devices}: a count must be > 0"
    if isinstance(devices, list):
        for d in devices:
            ok = d is None or _go_int(d, unsigned=True) or (isinstance(d, str) and _device_ref_ok(d))
            if not ok:
                return f"devices entry {d!r} is not a GPU index, a MIG index (gpu:mig) or a GPU/MIG UUID"
        return None
    return f"devices {devices!r} is not 'all', a count or a list"


def resource_name_problem(name: Any) -> str | None:
    """Why NewResourceName refuses a name (api/config/v1/resources.go), or None. A name without 'nvidia.com/' gets it."""
    if name is None:
        name = ""  # a null decodes to the empty name
    if not isinstance(name, str):
        return f"{name!r} is {_json_type(name)}, not a resource name"
    full = name if name.startswith("nvidia.com/") else "nvidia.com/" + name
    if len(full) > 63:
        return f"{full} is {len(full)} characters; a fully qualified resource name must be 63 or fewer"
    short = full.split("/", 1)[1]
    if len(short) > 253 or not DNS_SUBDOMAIN_RE.match(short):
        plus = "; '+' is written '.' in resource names" if "+" in short else ""
        return (f"'{short}' in {full} is not a lowercase RFC 1123 DNS subdomain (lower-case letters, digits, '-' and '.', "
                f"starting and ending with a letter or digit){plus}")
    return None


def _lint_sharing(ctx: LintContext, mode: str, sec: Any, p: tuple, strategy: str, mig_entries: dict) -> None:
    """ReplicatedResources.UnmarshalJSON (replicas.go): resources required, non-empty; each entry's own checks."""
    if sec is not None and not isinstance(sec, dict):
        ctx.add(p, "dp.type", f"{mode} must be a mapping with resources, not {_json_type(sec)}; {FAILS}", "add resources: [{name: nvidia.com/gpu, replicas: 4}]")
        return
    null, sec = sec is None, sec or {}
    for k in sec:
        if k not in REPLICATED_KEYS:
            ctx.add(p + (str(k),), "dp.unknown-field", f"unknown field '{k}' in {mode}: the plugin ignores it (these keys are case-sensitive)",
                    closest_key(str(k), REPLICATED_KEYS), severity="warning")
    for k in ("renameByDefault", "failRequestsGreaterThanOne"):
        if sec.get(k) is not None and not isinstance(sec[k], bool):
            ctx.add(p + (k,), "dp.type", f"{k} must be true or false, not {_json_type(sec[k])}; the plugin cannot parse the file and "
                    f"{FAILS.split('plugin ', 1)[1]}", f"write {k}: true or false, unquoted")
    res = sec.get("resources")
    if res is None or res == []:
        what = "null" if null else "empty" if not sec else "without resources" if "resources" not in sec else f"resources: {'null' if res is None else '[]'}"
        ctx.add(p, "dp.no-resources", f"{mode} has no resources ({what}): \"no resources specified\"; {FAILS}",
                f"add resources: [{{name: nvidia.com/gpu, replicas: 4}}], or remove {mode}")
        return
    if not isinstance(res, list):
        ctx.add(p + ("resources",), "dp.type", f"resources must be a list, not {_json_type(res)}; {FAILS}", "write resources: [{name: nvidia.com/gpu, replicas: 4}]")
        return
    rename_default = sec.get("renameByDefault") is True
    for i, r in enumerate(res):
        _lint_replicated(ctx, mode, r, p + ("resources", i), strategy, rename_default)
    if strategy == "single":
        for name, why in _single_violations(mig_entries):
            ctx.add(p, "dp.single-strategy", f"migStrategy single needs one profile on every GPU of a node, but mig config '{name}' {why}",
                    "use migStrategy mixed, or give that config one profile on all GPUs")


def _lint_replicated(ctx: LintContext, mode: str, r: Any, rp: tuple, strategy: str, rename_default: bool) -> None:
    """One ReplicatedResource (ReplicatedResource.UnmarshalJSON): name, devices, replicas, rename."""
    if not isinstance(r, dict):
        why = "no resource name specified" if r is None else f"a resource must be a mapping, not {_json_type(r)}"
        ctx.add(rp, "dp.structure", f"{why}; {FAILS}", "write {name: nvidia.com/gpu, replicas: 4}")
        return
    for k in r:
        if k not in REPLICATED_RESOURCE_KEYS:
            ctx.add(rp + (str(k),), "dp.unknown-field", f"unknown field '{k}' in a {mode} resource: the plugin ignores it",
                    closest_key(str(k), REPLICATED_RESOURCE_KEYS), severity="warning")
    name = r.get("name")
    name_ok = False
    if "name" not in r:
        ctx.add(rp, "dp.resource-name", f"no resource name specified; {FAILS}", "add name: nvidia.com/gpu")
    else:
        why = resource_name_problem(name)
        if why:
            fix = f"use {name.replace('+', '.')}" if isinstance(name, str) and "+" in name else "use nvidia.com/gpu or nvidia.com/mig-<profile>"
            ctx.add(rp + ("name",), "dp.resource-name", f"{why}; {FAILS}", fix)
        else:
            name_ok = True
    if "devices" in r:
        why = _devices_problem(r["devices"])
        if why:
            ctx.add(rp + ("devices",), "dp.devices", f"{why}; {FAILS}", "use devices: all, a count > 0, or a list of GPU indices/UUIDs")
        elif r["devices"] != "all":
            ctx.add(rp + ("devices",), "dp.ignored-field", "per-resource devices are not yet supported: the plugin logs a warning and shares every GPU",
                    "remove it, or use devices: all", severity="warning")
    replicas = r.get("replicas")
    if "replicas" not in r or not _go_int(replicas) or replicas < 2:
        what = "missing" if "replicas" not in r else repr(replicas)
        ctx.add(rp + ("replicas",), "dp.replicas", f"replicas {what} must be a whole number ≥ 2; {FAILS}", "use replicas ≥ 2; to stop sharing, remove the sharing section")
    elif mode == "mps" and replicas > 48:
        ctx.add(rp + ("replicas",), "dp.mps-limit", f"MPS allows at most 48 clients per GPU, not {int(replicas)}: the MPS control daemon refuses to start",
                "use replicas ≤ 48 (≤ 16 before Volta)")
    if "rename" in r:
        why = resource_name_problem(r["rename"])
        full = (name if name.startswith("nvidia.com/") else "nvidia.com/" + name) if name_ok else None
        ren = r["rename"] if isinstance(r["rename"], str) else ""
        ren = ren if ren.startswith("nvidia.com/") else "nvidia.com/" + ren
        if why:
            ctx.add(rp + ("rename",), "dp.rename", f"rename: {why}; {FAILS}", "use a name like gpu.shared, or remove rename")
        elif not (rename_default and full and ren == full + ".shared"):
            ctx.add(rp + ("rename",), "dp.ignored-field", "per-resource rename is not yet supported: the plugin logs a warning and ignores it",
                    "remove it; use renameByDefault: true for <name>.shared", severity="warning")
    if name_ok:
        _lint_shared_name(ctx, mode, name, rp + ("name",), strategy)


def _lint_shared_name(ctx: LintContext, mode: str, name: str, p: tuple, strategy: str) -> None:
    """A valid name that no device is advertised under shares nothing: the plugin skips it without a word
    (updateDeviceMapWithReplicas, internal/rm/device_map.go). Names: nvidia.com/gpu (every full GPU, and every MIG
    device under single) and, under mixed, nvidia.com/mig-<profile> for each GPU-instance profile, '+' as '.'
    (internal/rm/rm.go AddDefaultResourcesToConfig)."""
    full = name if name.startswith("nvidia.com/") else "nvidia.com/" + name
    if full == "nvidia.com/gpu":
        return
    m = re.fullmatch(r"nvidia\.com/mig-(.+)", full)
    profile = re.sub(r"\.(me\.all|me|gfx)$", r"+\1", m[1]) if m else ""
    pm = PROFILE_RE.match(profile)
    if mode == "mps":
        why = f"MPS shares nvidia.com/gpu only; no device is advertised as {full} to MPS"
    elif not m:
        why = f"the plugin advertises no resource named {full} (only nvidia.com/gpu, and nvidia.com/mig-<profile> under migStrategy mixed)"
    elif strategy != "mixed":
        why = f"{full} is advertised only under migStrategy mixed (now {strategy})"
    elif not pm or (pm["c"] and pm["c"] != pm["g"]):
        why = f"{full} names no GPU-instance profile, so no MIG device is advertised under it"
    else:
        return
    fix = ("use name: nvidia.com/gpu" if mode == "mps" or not m or strategy != "single"
           else "under single MIG devices are nvidia.com/gpu: share that, or set flags.migStrategy: mixed")
    if m and strategy == "none" and mode != "mps":
        fix = "set flags.migStrategy: mixed to share MIG devices by profile, or share nvidia.com/gpu"
    ctx.add(p, "dp.resource-name", f"{why}: this entry shares nothing", fix, severity="warning")


def _lint_custom_resource(ctx: LintContext, r: Any, p: tuple) -> bool:
    """One entry of resources.gpus/mig (Resource.UnmarshalJSON, resources.go): pattern and name required, the name
    a valid resource name; the plugin fails before it ignores the section."""
    if r is not None and not isinstance(r, dict):
        ctx.add(p, "dp.resources", f"a resources entry must be a mapping with pattern and name, not {_json_type(r)}; {FAILS}",
                "write {pattern: '*', name: gpu}")
        return False
    r = r or {}
    for k in r:
        if k not in RESOURCE_KEYS:
            ctx.add(p + (str(k),), "dp.unknown-field", f"unknown field '{k}' in a resources entry: the plugin ignores it",
                    closest_key(str(k), RESOURCE_KEYS), severity="warning")
    good = True
    for k in RESOURCE_KEYS:
        if k not in r:
            ctx.add(p, "dp.resources", f"resources must have a '{k}' field set; {FAILS}", "write {pattern: '*', name: gpu}")
            good = False
    if r.get("pattern") is not None and not isinstance(r["pattern"], str):
        ctx.add(p + ("pattern",), "dp.resources", f"pattern must be a string, not {_json_type(r['pattern'])}; {FAILS}", "write pattern: '*'")
        good = False
    if "name" in r:
        why = resource_name_problem(r["name"])
        if why:
            ctx.add(p + ("name",), "dp.resources", f"{why}; {FAILS}", "use a name like gpu")
            good = False
    return good


def _mixed_violations(mig_entries: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """Configs that create compute-instance profiles: under migStrategy mixed the device plugin has no resource
    pattern for such a MIG device and fails on the node ("MIG profile ... does not match any resource patterns",
    internal/rm/device_map.go buildMigDeviceMap)."""
    return [(name, sorted(p for p in info["profiles"] if is_ci_profile(p)))
            for name, info in sorted(mig_entries.items()) if any(is_ci_profile(p) for p in info["profiles"])]


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
        # controllers/object_controls.go handleDevicePluginConfig returns early without a name: no config manager, default unused
        ctx.add(p + ("devicePlugin", "config", "default"), "cp.device-plugin-config", "config.default is set but config.name (the ConfigMap) "
                "is empty: the operator deploys no config manager and ignores default", "set devicePlugin.config.name to the ConfigMap "
                "holding the configs, or remove default", severity="warning")
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
    if mig.get("strategy") == "mixed":
        for name, cis in _mixed_violations(mig_entries):
            ctx.add(base + ("spec", "mig", "strategy"), "cp.mixed-strategy",
                    f"mig.strategy mixed, but mig config '{name}' creates {', '.join(cis)}: the device plugin advertises no resource "
                    "for a compute-instance profile and fails on nodes with them", "use mig.strategy: single, or whole GPU-instance profiles")
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
    checked = component == "devicePlugin"  # templates/validations: the chart fails on these for devicePlugin only
    if cfg.get("create") and (cfg.get("data") or checked) and not cfg.get("name"):
        ctx.add(p + ("name",), "values.configmap-name", f"{component}.config.create is true but config.name is empty: "
                + ("the chart refuses to render and helm install fails" if checked else "the chart renders a ConfigMap without a name and helm install fails"),
                f"set {component}.config.name (e.g. custom-{component.lower()}-config)")
    if cfg.get("create") and not cfg.get("data"):
        if checked:
            ctx.add(p + ("data",), "values.configmap-data", "devicePlugin.config.create is true but data is empty: the chart refuses to "
                    "render (\"devicePlugin.config.data cannot be empty\") and helm install fails",
                    "add the configs under devicePlugin.config.data, or set create: false and name an existing ConfigMap")
        else:
            ctx.add(p + ("data",), "values.configmap-data", f"{component}.config.create is true but data is empty: the chart skips the ConfigMap",
                    f"add the configs under {component}.config.data, or set create: false and name an existing ConfigMap", severity="warning")


def _lint_helm(ctx: LintContext, values: dict, base: tuple, mig_entries: dict) -> None:
    """GPU Operator chart values (deployments/gpu-operator/values.yaml and templates @ a22dbf6)."""
    _lint_values_keys(ctx, values, base)
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
    if dcfg.get("default") and not dcfg.get("name"):
        ctx.add(dp + ("default",), "cp.device-plugin-config", "devicePlugin.config.default is set but config.name is empty: the chart "
                "renders devicePlugin.config only with a name, so default is dropped", "set devicePlugin.config.name, or remove default",
                severity="warning")
    ddata = dcfg.get("data")
    if isinstance(ddata, dict):
        for kind, key, cfg in embedded_payloads(ctx, ddata, dp + ("data",)):
            if kind == "dp":
                _lint_device_plugin(ctx, cfg, dp + ("data", key), mig_entries)
        ddefault = dcfg.get("default")
        if isinstance(ddefault, str) and ddefault and dcfg.get("create") and ddata and ddefault not in ddata:
            ctx.add(dp + ("default",), "cp.device-plugin-config", f"devicePlugin.config.default '{ddefault}' is not a key of devicePlugin.config.data",
                    f"use one of {', '.join(sorted(map(str, ddata)))}")


@lru_cache(maxsize=4)
def chart_values_keys(chart: str) -> dict:
    """The keys a chart's templates read (catalog/data/chart_values/<chart>.json, with its commit and date)."""
    return json.loads((DATA_DIR / "chart_values" / f"{chart}.json").read_text())


def _lint_values_keys(ctx: LintContext, values: dict, base: tuple) -> None:
    """A values key the GPU Operator chart never reads: it has no values.schema.json, so Helm takes the key and
    drops it, and the setting silently keeps its default (devicePlugin.confg, migManager.cnofig)."""
    shipped = chart_values_keys("gpu-operator")

    def walk(node: Any, known: Any, p: tuple) -> None:
        if not isinstance(node, dict) or not isinstance(known, dict):
            return
        for k, v in node.items():
            if str(k) in known:
                walk(v, known[str(k)], p + (str(k),))
                continue
            where = fmt_path(p[len(base):] + (str(k),))
            ctx.add(p + (str(k),), "values.unknown-key", f"the GPU Operator chart (@ {shipped['commit'][:7]}, {shipped['date']}) reads no "
                    f"'{where}': Helm drops it without a word", closest_key(str(k), known), severity="warning")

    walk(values, shipped["keys"], base)


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
