"""The device-plugin config (k8s-device-plugin api/config/v1), checked as the plugin reads it: every field against
its Go type (sigs.k8s.io/yaml, then encoding/json), the sharing sections, resource names and flags. Split from
lint.py, which dispatches each document here; the reference notes §11.4 list the rules.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Any

from aiinfra.sharing.findings import LintContext
from aiinfra.sharing.mig import PROFILE_RE

MIG_STRATEGIES = ("none", "single", "mixed")


def is_ci_profile(name: str) -> bool:
    """A compute-instance profile name, 'Cc.Gg.XXgb' with C < G: the device plugin's mixed strategy advertises
    no resource for it (internal/rm/rm.go AddDefaultResourcesToConfig skips C != G)."""
    m = PROFILE_RE.match(str(name))
    return bool(m and m["c"] and int(m["c"]) < int(m["g"]))


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


def go_int(v: Any, unsigned: bool = False) -> bool:
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
        INTS: lambda v: isinstance(v, list) and all(x is None or go_int(x) for x in v),
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


def lint_device_plugin(ctx: LintContext, cfg: Any, base: tuple, mig_entries: dict) -> None:
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
        for name, cis in mixed_violations(mig_entries):
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
        if not go_int(devices):
            return f"devices {devices!r} is not 'all', a count or a list"
        return None if devices > 0 else f"devices {devices}: a count must be > 0"
    if isinstance(devices, list):
        for d in devices:
            ok = d is None or go_int(d, unsigned=True) or (isinstance(d, str) and _device_ref_ok(d))
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
        for name, why in single_violations(mig_entries):
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
    if "replicas" not in r or not go_int(replicas) or replicas < 2:
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


def mixed_violations(mig_entries: dict[str, dict]) -> list[tuple[str, list[str]]]:
    """Configs that create compute-instance profiles: under migStrategy mixed the device plugin has no resource
    pattern for such a MIG device and fails on the node ("MIG profile ... does not match any resource patterns",
    internal/rm/device_map.go buildMigDeviceMap)."""
    return [(name, sorted(p for p in info["profiles"] if is_ci_profile(p)))
            for name, info in sorted(mig_entries.items()) if any(is_ci_profile(p) for p in info["profiles"])]


def single_violations(mig_entries: dict[str, dict]) -> list[tuple[str, str]]:
    """Configs that would make GFD label a node -MIG-INVALID under the single strategy (§5.2)."""
    out = []
    for name, info in sorted(mig_entries.items()):
        if len(info["profiles"]) > 1:
            out.append((name, f"creates {', '.join(sorted(info['profiles']))}"))
        elif info["profiles"] and False in info["enabled"]:
            out.append((name, "mixes MIG-enabled and MIG-disabled GPUs"))
    return out
