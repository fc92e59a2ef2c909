"""Linter for the GPU-sharing configs people already have: mig-parted configs, device-plugin configs,
GPU Operator ClusterPolicies / Helm values, Network Operator objects.

The rules are the checklist of the reference notes §11, derived from:
- mig-parted `api/spec/v1/spec.go` and go-nvlib `parseMigProfile` (structure, profile grammar);
- the MIG User Guide v580 tables (profiles per GPU, placements, caps, driver minimums);
- k8s-device-plugin v0.20.0 `api/config/v1` (replicas ≥ 2, rename/devices stripped, MPS limits);
- the operators' CRD schemas, shipped in catalog/data/crd_schemas with their commits. Unknown
  fields pass the API server but are pruned silently, so they are reported too.

The device-plugin rules are in plugin_lint.py, DRA's in dra_lint.py, the CRD schemas' in crd_lint.py.

Every finding names its file, its path inside the YAML and the fix. YAML is read with safe_load
only; a file that does not parse is an AiinfraError naming file and line.
"""

from __future__ import annotations

import json
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
from aiinfra.sharing.plugin_lint import (FLAG_CHOICES, MIG_STRATEGIES, check_flag, closest_key, go_int,
                                         lint_device_plugin, mixed_violations, single_violations)
from aiinfra.sharing.plugin_lint import resource_name_problem  # noqa: F401 - callers read it from here

MIG_ENTRY_KEYS = {"devices", "mig-enabled", "mig-devices", "device-filter"}
DP_BODY_KEYS = {"flags", "sharing", "resources", "imex"}


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
            lint_device_plugin(ctx, doc, base, mig_entries)
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
        if not go_int(n) or n < 0:
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
    if not isinstance(devices, list) or not all(d is None or go_int(d) for d in devices):
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
        for name, why in single_violations(mig_entries):
            ctx.add(base + ("spec", "mig", "strategy"), "cp.single-strategy",
                    f"mig.strategy single, but mig config '{name}' {why}; GFD would label such nodes -MIG-INVALID",
                    "use mig.strategy: mixed, or one profile on every GPU of a node")
    if mig.get("strategy") == "mixed":
        for name, cis in mixed_violations(mig_entries):
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
                lint_device_plugin(ctx, cfg, dp + ("data", key), mig_entries)
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
                lint_device_plugin(ctx, text, p, mig_entries)
            continue
        try:
            doc = load_yaml_text(text, f"{ctx.file} config.map.{key}")
        except UnsafeInputError as e:
            ctx.add(p, "yaml-parse", f"embedded YAML is refused: {str(e).split(': ', 1)[-1]}", "fix the YAML inside this key")
            continue
        lint_device_plugin(ctx, doc if doc is not None else {}, p, mig_entries)
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
