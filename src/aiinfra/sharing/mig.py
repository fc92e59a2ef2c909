"""MIG profiles, placements and geometries.

The model (NVIDIA MIG User Guide, "Concepts" and "Supported MIG Profiles"; NVML
`nvmlGpuInstancePlacement_t`):
- a GPU has memory slots, NVML's placement units as `nvidia-smi mig -lgipp` numbers them (8 on
  A100/H100/H200/B200, 4 on A30, 12 on RTX PRO 6000: 3 per memory quarter, 2 on RTX PRO 5000/4500),
  and compute slices (7, 4 or 2);
- each GPU-instance profile belongs to a placement class: it occupies `size` consecutive memory
  slots starting at one of the class's `starts` (the `nvidia-smi mig -lgipp` listing);
- each profile takes media engines (NVDEC, NVENC, JPEG, OFA) from the board's, as the guide's
  tables list them per profile; the instances of a geometry may not take more than the board has;
- a geometry (multiset of profiles) is valid when every instance gets a start such that the
  occupied intervals are disjoint, and per-profile caps (`+me` at most 1), media engines and
  exclusive groups hold.

The profile catalog is keyed by PCI device ID (catalog/data/mig_profiles.yaml); GPU names on the
command line are catalog GPU keys (gpus.yaml), mapped to the MIG table through `pci_device_id`.
"""

from __future__ import annotations

import math
import re
import weakref
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache

from aiinfra.catalog.loader import Catalog, default_catalog, is_count, normalize_name
from aiinfra.errors import AiinfraError, NotFoundError, SpecError, closest

GUIDE = "NVIDIA MIG User Guide, Supported MIG Profiles"

# Media engines as the guide's tables name their columns, in the order they print.
MEDIA_ENGINES = {"nvdec": "NVDEC", "nvenc": "NVENC", "jpeg": "JPEG", "ofa": "OFA"}

# go-nvlib parseMigProfile grammar: [<C>c.]<G>g.<GB>gb followed by +attr[,attr] or -attr.
PROFILE_RE = re.compile(r"^(?:(?P<c>[1-9]\d*)c\.)?(?P<g>[1-9]\d*)g\.(?P<gb>[1-9]\d*)gb(?:(?P<sign>[+-])(?P<attrs>[a-z0-9.]+(?:,[a-z0-9.]+)*))?$")


# Compute-instance sizes NVML has profiles for (nvml.h NVML_COMPUTE_INSTANCE_PROFILE_<N>_SLICE: 1, 2, 3, 4, 6, 7, 8).
NVML_CI_SLICES = frozenset({1, 2, 3, 4, 6, 7, 8})


def ci_size_ok(c: int, g: int) -> bool:
    """A compute instance of c slices in a GPU instance of g: go-nvlib VisitMigProfiles skips C > G and, for C < G,
    2C > G + 1 (NVIDIA/go-nvlib pkg/nvlib/device/device.go)."""
    return 0 < c <= g and (c == g or 2 * c <= g + 1)


@dataclass(frozen=True)
class MigProfile:
    """One GPU-instance profile on one GPU type."""

    name: str
    klass: str
    compute: int
    size: int  # memory slots occupied
    starts: tuple[int, ...]
    max_count: int
    gi_id: int | None
    usable_gib: float | None
    min_driver: str | None
    also_named: tuple[str, ...] = ()  # other names drivers/boards report for the same profile
    media: tuple[tuple[str, int], ...] = ()  # (engine, count) the instance takes: ('nvdec', 1), ('ofa', 0), …
    memory_gib: float | None = None  # the planner's memory where usable_gib is not measured on this table
    memory_source: str = ""  # where memory_bytes comes from

    @property
    def attributes(self) -> str:
        """'' for a base profile, else '+me', '-me', '+gfx', '+me.all'."""
        m = PROFILE_RE.match(self.name)
        return f"{m['sign']}{m['attrs']}" if m and m["sign"] else ""

    @property
    def is_base(self) -> bool:
        return not self.attributes

    @property
    def name_gb(self) -> int:
        return int(PROFILE_RE.match(self.name)["gb"])

    @property
    def memory_bytes(self) -> float:
        """Usable memory: the nvidia-smi figure measured on this table, else the one the table was built with
        (a measurement of the same profile on another table, else read back from the name: name_memory_gib)."""
        if self.usable_gib is not None:
            return self.usable_gib * 2**30
        return (self.memory_gib if self.memory_gib is not None else name_memory_gib(self.name_gb)) * 2**30

    @property
    def resource_name(self) -> str:
        """Extended resource under the mixed strategy: '+' becomes '.' (k8s-device-plugin rm.go)."""
        return "nvidia.com/mig-" + self.name.replace("+", ".")


class ProfileLookupError(NotFoundError, KeyError):
    """A profile name a GPU's table does not hold, asked for by `gpu.profiles[name]`: a one-line refusal (exit 2),
    still a KeyError for code that expects one."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ProfileTable(dict):
    """A GPU's GPU-instance profiles by name. Indexing it with a name it lacks refuses in one sentence; a
    compute-instance name (1c.3g.20gb), which mig validate and k8s lint accept, is said to be one."""

    def __init__(self, gpu_name: str, items: dict[str, MigProfile]):
        super().__init__(items)
        self.gpu_name = gpu_name

    def __missing__(self, key: str):
        m = PROFILE_RE.match(str(key))
        if m and m["c"]:
            base = str(key).split(".", 1)[1]
            raise ProfileLookupError(
                f"'{key}' is a compute-instance profile (a share of a {base} GPU instance): mig validate and k8s lint "
                f"check it, but this command places whole GPU instances and the device plugin advertises no resource "
                f"for it under migStrategy mixed; use {base}")
        raise ProfileLookupError(f"profile '{key}' does not exist on {self.gpu_name}; valid: {', '.join(self)}")


@dataclass(frozen=True)
class MigGpu:
    """The MIG table of one GPU type (all boards sharing its PCI device IDs)."""

    key: str
    name: str
    pci_device_ids: tuple[str, ...]
    memory_slots: int
    compute_slices: int
    total_memory_mib: int | None
    profiles: dict[str, MigProfile]
    exclusive: tuple[tuple[str, ...], ...]
    notes: tuple[dict, ...]
    source: str
    layout_source: str
    catalog_gpu: str | None = None  # the gpus.yaml key the user named, if any
    placement_status: str = "assumed"  # verified | secondary | derived | assumed
    placement_source: str = ""
    media_total: tuple[tuple[str, int], ...] = ()  # the board's media engines; an engine not here is not checked
    media_source: str = ""

    def canonical(self, name: str) -> str | None:
        """The table's name for a profile, accepting the other names drivers report (also_named) and
        compute-instance names: 'Cc.<profile>' with C below the GPU instance's G slices is returned as
        'C' + 'c.' + the table's name; 'Gc.Gg.XXgb' is the profile itself, as go-nvlib's Matches reads it."""
        n = str(name).strip().lower()
        if n in self.profiles:
            return n
        for p in self.profiles.values():
            if n in p.also_named:
                return p.name
        ci = self.compute_instance(n)
        if ci is None:
            return None
        gi, c = ci
        return gi.name if c == gi.compute else f"{c}c.{gi.name}"

    def compute_instance(self, name: str) -> tuple[MigProfile, int] | None:
        """(GPU-instance profile, compute slices) of a name written 'Cc.Gg.XXgb[+attr]', or None when the GPU
        instance is not on this GPU or C is not a compute-instance size go-nvlib lists for it (VisitMigProfiles:
        C ≤ G, and C = G or 2C ≤ G + 1: 1, 2, 3, 4 or 7 slices of a 7g instance, 1, 2 or 4 of a 4g, 1 or 2 of a 3g)."""
        m = PROFILE_RE.match(str(name).strip().lower())
        if not m or not m["c"]:
            return None
        base = str(name).strip().lower().split(".", 1)[1]
        key = self.canonical(base)
        gi = self.profiles.get(key) if key else None
        c = int(m["c"])
        if gi is None or int(m["g"]) != gi.compute or not ci_size_ok(c, gi.compute):
            return None
        return gi, c

    def profile(self, name: str) -> MigProfile:
        key = self.canonical(name)
        p = self.profiles[key] if key else None
        if p is None:
            raise NotFoundError(f"profile '{name}' does not exist on {self.name}; valid: {', '.join(self.profiles)}")
        return p

    @property
    def device_filter(self) -> list[str]:
        """mig-parted device-filter strings: PCI device ID followed by the NVIDIA vendor ID 10DE."""
        return [f"0x{pid[2:].upper()}10DE" for pid in self.pci_device_ids]

    @property
    def base_profiles(self) -> list[MigProfile]:
        return [p for p in self.profiles.values() if p.is_base]


@dataclass
class GeometryCheck:
    """The answer to 'is this geometry valid on this GPU', with reasons and one placement."""

    gpu: str
    counts: dict[str, int]
    valid: bool
    reasons: list[str] = field(default_factory=list)
    placement: list[tuple[str, int, int]] = field(default_factory=list)  # (profile, start, size)
    notes: list[str] = field(default_factory=list)
    compute_used: int = 0
    slots_used: int = 0
    packing: list[str] = field(default_factory=list)  # how compute-instance profiles fill GPU instances


def _norm_pci(pid: str) -> str:
    pid = str(pid).strip().lower()
    return pid if pid.startswith("0x") else "0x" + pid


def _table_by_key(key: str) -> MigGpu:
    """The MIG table of a mig_profiles entry; a malformed entry (a --catalog override that gives a number where the
    profile rows belong, a row without its class) is refused in one line naming it."""
    try:
        return _build_table(key)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise AiinfraError(f"mig_profiles entry '{key}' is malformed: {type(err).__name__} {err}") from None


def _check_layout(name: str, layout: dict) -> None:
    """A slice layout whose counts could place nothing, or an instance outside the GPU, is refused (a --catalog
    override with memory_slots: -5 otherwise reads every geometry as invalid, without saying why)."""
    slots, slices = layout["memory_slots"], layout["compute_slices"]
    if not (is_count(slots) and is_count(slices)):
        raise AiinfraError(f"mig_layouts '{name}': memory_slots and compute_slices must be whole numbers > 0, "
                           f"got {slots!r} and {slices!r}")
    for cname, c in layout["classes"].items():
        if not all(map(is_count, (c["compute"], c["size"], c["max"]))) or c["compute"] > slices \
                or any(not isinstance(s, int) or s < 0 or s + c["size"] > slots for s in c["starts"]):
            raise AiinfraError(f"mig_layouts '{name}' class '{cname}': compute, size and max must be whole numbers "
                               f"> 0 and every start leave the instance inside the {slots} memory slots")


def name_memory_gib(name_gb: int) -> float:
    """The memory a profile name stands for, read back through go-nvlib's naming rule (getMigMemorySizeGB,
    pkg/nvlib/device/mig_profile.go): '<N>gb' is round(eighths × ⌈total GiB⌉), the instance's share of the board
    rounded to whole GiB (2^30 bytes), not N × 10^9 bytes. The least share that rounds to N is N − 0.5 GiB, the
    figure returned. A process gets less than the share (the driver keeps some: H200 1g.18gb has 16.00 GiB usable
    of a 17.55 GiB share, H100 1g.10gb 9.75 of 9.96), so this is used only where no nvidia-smi figure of the
    profile was found, and `mig profiles --assumed` lists where."""
    return name_gb - 0.5


def _media(where: str, value) -> tuple[tuple[str, int], ...]:
    """A media map {nvdec: 1, …} as (engine, count) pairs in the guide's column order; refused in one line when
    an engine is unknown or a count is not a whole number >= 0."""
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise AiinfraError(f"{where}: media engines must be a map such as {{nvdec: 1, jpeg: 1, ofa: 0}}, got {value!r}")
    for engine, n in value.items():
        if engine not in MEDIA_ENGINES:
            raise AiinfraError(f"{where}: unknown media engine '{engine}'; engines: {', '.join(MEDIA_ENGINES)}")
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise AiinfraError(f"{where}: media engine {engine} must be a whole number >= 0, got {n!r}")
    return tuple((e, int(value[e])) for e in MEDIA_ENGINES if e in value)


def _memory_share(layout: dict, row: dict) -> Fraction:
    return Fraction(int(layout["classes"][row["class"]]["size"]), int(layout["memory_slots"]))


def _measured_elsewhere(cat: Catalog, key: str, name: str, share: Fraction) -> tuple[float, str] | None:
    """The smallest usable GiB measured for the same profile on another MIG table: the same name and the same
    share of the board's memory slots (so the same instance of a GPU of the same size class, as GH200-144GB's
    1g.18gb and H200's). None where no table measured it."""
    found = []
    layouts = cat.table("mig_layouts")
    for other, e in cat.table("mig_profiles").items():
        layout = layouts.get(e.get("layout")) if other != key and isinstance(e, dict) else None
        if not layout:
            continue
        for row in e.get("profiles") or []:
            try:
                same = str(row["name"]).lower() == name and _memory_share(layout, row) == share
            except (KeyError, TypeError, ValueError, ZeroDivisionError):
                continue
            if same and isinstance(row.get("usable_gib"), (int, float)) and not isinstance(row["usable_gib"], bool):
                found.append((float(row["usable_gib"]), str(e.get("name", other))))
    return min(found) if found else None


def _build_table(key: str) -> MigGpu:
    cat = default_catalog()
    _check_aliases(cat)
    entry = cat.table("mig_profiles")[key]
    layout = cat.table("mig_layouts").get(entry["layout"])
    if layout is None:
        raise AiinfraError(f"mig_profiles entry '{key}' names unknown layout '{entry['layout']}'")
    _check_layout(str(entry["layout"]), layout)
    media_total = _media(f"mig_profiles entry '{key}' media_engines", entry.get("media_engines"))
    # Measured memory by share of the board: instances on the same memory slots hold the same memory, up to a
    # quarter GiB (H200 1g.35gb 32.25, 2g.35gb 32.50; A100 3g.20gb and 4g.20gb both 19.62), so the least is used.
    own: dict[Fraction, tuple[float, str]] = {}
    for row in entry["profiles"]:
        if row.get("usable_gib") is not None:
            share = _memory_share(layout, row)
            own[share] = min(own.get(share, (math.inf, "")), (float(row["usable_gib"]), str(row["name"]).lower()))
    profiles: dict[str, MigProfile] = {}
    for row in entry["profiles"]:
        cls = layout["classes"][row["class"]]
        name = str(row["name"]).lower()
        if not PROFILE_RE.match(name):
            raise AiinfraError(f"mig_profiles entry '{key}' has a malformed profile name '{name}'")
        usable = row.get("usable_gib")
        memory_gib, memory_source = None, "nvidia-smi mig -lgip (measured on this GPU)"
        share = _memory_share(layout, row)
        if usable is None and share in own:
            memory_gib, other = own[share]
            memory_source = f"nvidia-smi mig -lgip of {other} on this GPU (the same memory slots)"
        elif usable is None:
            borrowed = _measured_elsewhere(cat, key, name, share)
            if borrowed is not None:
                memory_gib, memory_source = borrowed[0], (f"nvidia-smi mig -lgip of the same profile on {borrowed[1]} "
                                                          f"(same name and share of the board; none measured here)")
            else:
                gb = int(PROFILE_RE.match(name)["gb"])
                memory_gib = name_memory_gib(gb)
                memory_source = (f"the name: {gb}gb is the instance's share rounded to whole GiB (go-nvlib "
                                 f"getMigMemorySizeGB), {memory_gib:g} GiB at the least; no nvidia-smi figure found, "
                                 f"and a process may get less")
        profiles[name] = MigProfile(
            name=name,
            klass=row["class"],
            compute=int(cls["compute"]),
            size=int(cls["size"]),
            starts=tuple(int(s) for s in cls["starts"]),
            max_count=int(row.get("max", cls["max"])),
            gi_id=row.get("gi_id"),
            usable_gib=row.get("usable_gib"),
            min_driver=row.get("min_driver"),
            also_named=tuple(str(n).lower() for n in row.get("also_named", [])),
            media=_media(f"mig_profiles entry '{key}' profile {name}", row.get("media")),
            memory_gib=memory_gib,
            memory_source=memory_source,
        )
    return MigGpu(
        key=key,
        name=entry["name"],
        pci_device_ids=tuple(_norm_pci(p) for p in entry["pci_device_ids"]),
        memory_slots=int(layout["memory_slots"]),
        compute_slices=int(layout["compute_slices"]),
        total_memory_mib=entry.get("total_memory_mib"),
        profiles=ProfileTable(entry["name"], profiles),
        exclusive=tuple(tuple(str(n).lower() for n in g) for g in entry.get("exclusive", [])),
        notes=tuple(layout.get("notes", [])),
        source=entry.get("source", ""),
        layout_source=layout.get("source", ""),
        placement_status=str((entry.get("placements") or {}).get("status", "assumed")),
        placement_source=str((entry.get("placements") or {}).get("source", "")),
        media_total=media_total,
        media_source=str(entry.get("media_source", "")),
    )


_aliases_checked: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _check_aliases(cat: Catalog) -> None:
    """Refuse, once per loaded catalog, a MIG-table alias that names another GPU: an alias that is a GPU catalog
    key or alias (gpus.yaml) of a GPU whose PCI device ID the table does not list, or the alias of another MIG
    table. mig_gpu looks the GPU catalog up first, so such an alias could never reach its table and the command
    would answer for the other GPU (the 'gh200' alias sat on GH200-144GB while gpus.yaml's gh200 is the 96 GB
    part)."""
    if cat in _aliases_checked:
        return
    tables = cat.table("mig_profiles")
    owner: dict[str, str] = {}
    for key, entry in tables.items():
        if not isinstance(entry, dict):
            continue
        ids = {_norm_pci(p) for p in entry.get("pci_device_ids") or []}
        for alias in entry.get("aliases") or []:
            a = normalize_name(str(alias))
            if a.startswith("0x"):
                if _norm_pci(a) not in ids:
                    raise AiinfraError(f"mig_profiles entry '{entry.get('name', key)}' has the alias '{a}', a PCI device "
                                       f"ID it does not list; list it in pci_device_ids or remove the alias")
            else:
                _check_gpu_alias(cat, entry.get("name", key), a, ids)
            if a in owner and owner[a] != key:
                raise AiinfraError(f"mig_profiles entries '{tables[owner[a]].get('name', owner[a])}' and "
                                   f"'{entry.get('name', key)}' both have the alias '{a}'; an alias must name one GPU")
            owner[a] = key
    _aliases_checked[cat] = True


def _check_gpu_alias(cat: Catalog, table: str, alias: str, ids: set[str]) -> None:
    try:
        gpu_key = cat.resolve("gpus", alias)
    except AiinfraError:
        return
    pid = cat.table("gpus")[gpu_key].get("pci_device_id")
    if pid is None or _norm_pci(pid) not in ids:
        raise AiinfraError(
            f"mig_profiles entry '{table}' has the alias '{alias}', which the GPU catalog gives to '{gpu_key}' "
            f"(PCI {pid or 'none'}), another GPU; remove the alias or name the table by that GPU's PCI device ID")


def by_pci_id(pci_device_id: str) -> MigGpu | None:
    pid = _norm_pci(pci_device_id)
    for key, entry in default_catalog().table("mig_profiles").items():
        if pid in {_norm_pci(p) for p in entry.get("pci_device_ids", [])}:
            return _table_by_key(key)
    return None


def mig_gpu(name: str) -> MigGpu:
    """The MIG table for a GPU named by catalog key (h100-sxm), MIG-table name/alias or PCI ID.

    Catalog GPUs are mapped by their `pci_device_id` (gpus.yaml) to the table that lists that ID.
    """
    from aiinfra.catalog.gpus import (
        gpu as catalog_gpu,  # bottom layer; imported lazily to keep start-up fast
    )

    cat = default_catalog()
    try:
        spec = catalog_gpu(name)
    except NotFoundError:
        spec = None
    if spec is not None:
        # The PCI device ID decides; a catalog entry without one falls back to the MIG table names below.
        table = by_pci_id(spec.pci_device_id) if spec.pci_device_id else None
        if table is not None:
            return _with_catalog_name(table, spec.key)
        if not spec.mig:
            raise SpecError(f"GPU '{spec.key}' does not support MIG; MIG GPUs: {', '.join(mig_gpu_names())}")
    if name.strip().lower().startswith("0x"):
        table = by_pci_id(name)
        if table is not None:
            return table
    try:
        key = cat.resolve("mig_profiles", name)
    except NotFoundError:
        if spec is not None:
            raise NotFoundError(f"no MIG table for '{spec.key}' (PCI ID {spec.pci_device_id}); known: {', '.join(mig_gpu_names())}") from None
        pool = list(cat.names("gpus")) + mig_gpu_names()
        hint = closest(name, pool)
        raise NotFoundError(
            f"unknown MIG GPU '{name}'; closest: {', '.join(hint) if hint else ', '.join(mig_gpu_names())}"
        ) from None
    return _table_by_key(key)


def _with_catalog_name(table: MigGpu, catalog_key: str) -> MigGpu:
    from dataclasses import replace

    return replace(table, catalog_gpu=catalog_key)


def mig_gpu_names() -> list[str]:
    """MIG table names (lowercase), e.g. a30-24gb, h100-80gb."""
    return [str(e["name"]).lower() for e in default_catalog().table("mig_profiles").values()]


def all_mig_gpus() -> list[MigGpu]:
    return [_table_by_key(k) for k in default_catalog().table("mig_profiles")]


# --------------------------------------------------------------------------- profile names


def profile_name_gb(memory_mib: float, total_memory_mib: float) -> int:
    """The '<GB>gb' of a profile name as go-nvlib computes it (getMigMemorySizeGB):

        frac = ceil(memMiB * 2^20 / totalBytes * 8) / 8
        GB   = round(frac * ceil(totalBytes / 2^30))

    Names are eighths of the rounded-up total GiB, not the usable memory (H100 80GB 1g.10gb has
    9.75 GiB usable). Source: NVIDIA/go-nvlib pkg/nvlib/device/mig_profile.go.
    """
    if memory_mib <= 0 or total_memory_mib <= 0:
        raise SpecError("memory sizes must be positive")
    total_bytes = total_memory_mib * 2**20
    frac = math.ceil(memory_mib * 2**20 / total_bytes * 8) / 8
    # Go's math.Round rounds half away from zero; Python's round() would round half to even.
    return math.floor(frac * math.ceil(total_bytes / 2**30) + 0.5)


def parse_profile(text: str) -> dict:
    """Split a profile string by the go-nvlib grammar; raise on anything else."""
    m = PROFILE_RE.match(str(text).strip().lower())
    if not m:
        raise SpecError(f"'{text}' is not a MIG profile name; expected <G>g.<GB>gb with optional +me, -me, +gfx, +me.all (e.g. 1g.10gb+me)")
    return {
        "compute": int(m["c"]) if m["c"] else int(m["g"]),
        "gpu_slices": int(m["g"]),
        "gb": int(m["gb"]),
        "sign": m["sign"] or "",
        "attributes": m["attrs"].split(",") if m["attrs"] else [],
    }


def parse_geometry(text: str) -> Counter:
    """'3g.40gb,2g.20gb,1g.10gb,1g.10gb' or '1g.10gb:2,3g.40gb' or '2x1g.10gb' → Counter."""
    counts: Counter = Counter()
    parts = [p.strip() for p in str(text).split(",") if p.strip()]
    if not parts:
        raise SpecError("empty geometry; give profiles like 3g.40gb,2g.20gb,1g.10gb")
    for part in parts:
        n = 1
        m = re.match(r"^(\d+)\s*[x×*]\s*(.+)$", part)
        if m:
            n, part = int(m[1]), m[2]
        elif ":" in part:
            part, _, num = part.rpartition(":")
            if not num.strip().isdigit():
                raise SpecError(f"count '{num}' in '{part}:{num}' is not a whole number")
            n = int(num)
        counts[part.strip().lower()] += n
    return counts


# --------------------------------------------------------------------------- placement model


def place(gpu: MigGpu, counts: dict[str, int]) -> list[tuple[str, int, int]] | None:
    """One assignment of starts with disjoint memory-slot intervals, or None.

    Backtracking over instances, largest first (fewest starts, most constrained).
    """
    items: list[MigProfile] = []
    for name, n in counts.items():
        items += [gpu.profiles[name]] * int(n)
    items.sort(key=lambda p: (-p.size, len(p.starts), p.name))
    chosen: list[tuple[str, int, int]] = []

    def go(i: int, used: int) -> bool:
        if i == len(items):
            return True
        p = items[i]
        # Identical instances take increasing starts, so permutations are not retried.
        lo = chosen[-1][1] + 1 if chosen and chosen[-1][0] == p.name else 0
        for s in p.starts:
            if s < lo:
                continue
            mask = ((1 << p.size) - 1) << s
            if used & mask or s + p.size > gpu.memory_slots:
                continue
            chosen.append((p.name, s, p.size))
            if go(i + 1, used | mask):
                return True
            chosen.pop()
        return False

    return sorted(chosen, key=lambda c: c[1]) if go(0, 0) else None


def _counts_of(gpu: MigGpu, geometry: dict[str, int] | str) -> Counter:
    """Counts by the table's names; compute-instance names ('1c.3g.20gb') are kept as such, their alias
    'Gc.Gg.XXgb' folded into the profile."""
    counts = parse_geometry(geometry) if isinstance(geometry, str) else Counter({str(k).lower(): v for k, v in geometry.items()})
    out: Counter = Counter()
    for name, n in counts.items():
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise SpecError(f"count of {name} must be a whole number ≥ 0, got {n!r}")
        key = gpu.canonical(name)
        if key is None:
            raise NotFoundError(_unknown_profile(gpu, name))
        out[key] += n
    return Counter({k: v for k, v in out.items() if v > 0})


def _sibling_hint(gpu: MigGpu, name: str) -> str:
    """'; GH200-144GB (gh200-144gb) has it' when a MIG table named like the GPU asked for (its aliases start with
    the name given) holds the profile: 'gh200' is the 96 GB part, whose 1g.12gb the 144 GB part calls 1g.18gb."""
    stem = normalize_name(gpu.catalog_gpu or gpu.name)
    n = str(name).strip().lower()
    hits = []
    for key, entry in default_catalog().table("mig_profiles").items():
        if key == gpu.key or not isinstance(entry, dict):
            continue
        aliases = [normalize_name(str(a)) for a in entry.get("aliases") or []]
        near = [a for a in aliases if a != stem and a.startswith(stem)]
        if near and any(str(r.get("name", "")).lower() == n for r in entry.get("profiles") or [] if isinstance(r, dict)):
            hits.append(f"{entry.get('name', key)} ({near[0]})")
    return f"; {' and '.join(hits)} {'has' if len(hits) == 1 else 'have'} it" if hits else ""


def _unknown_profile(gpu: MigGpu, name: str) -> str:
    """Why a profile name is refused on a GPU, in one sentence.

    A compute instance whose size go-nvlib leaves out is not said to be impossible: the MIG User Guide (Concepts)
    combines 3 compute slices of a 4g.20gb GPU instance into 3c.4g.20gb, and the driver creates it; go-nvlib's
    VisitMigProfiles skips C < G with 2C > G + 1 by a heuristic (pkg/nvlib/device/device.go @ 3c16156, 'weed out
    invalid profiles heuristically'), and mig-parted resolves its config against that list (pkg/mig/config/
    config.go @ bd7160f, GetMigProfiles), so mig-parted cannot create it and the device plugin cannot name it."""
    m = PROFILE_RE.match(str(name).strip().lower())
    if m and m["c"]:
        gi = gpu.canonical(str(name).strip().lower().split(".", 1)[1])
        if gi is not None and int(m["g"]) == gpu.profiles[gi].compute:
            g, c = gpu.profiles[gi].compute, int(m["c"])
            sizes = [str(k) for k in range(1, g + 1) if ci_size_ok(k, g)]
            listed = f"{', '.join(sizes[:-1])} or {sizes[-1]}" if len(sizes) > 1 else sizes[0]
            if c > g or c not in NVML_CI_SLICES:
                why = f"has {g} compute slices" if c > g else f"has no {c}-slice compute-instance profile in NVML"
                return (f"profile '{name}' does not exist on {gpu.name}: a {gi} GPU instance {why}, so its compute "
                        f"instances take {listed} slices")
            documented = (c, g) == (3, 4)
            driver = (f"the driver combines {c} of a {gi} GPU instance's {g} compute slices (MIG User Guide, "
                      f"Concepts: 3c.4g.20gb)" if documented else
                      f"NVML defines {c}-slice compute instances (nvidia-smi mig -lcip shows whether the driver offers "
                      f"one in a {gi})")
            return (f"'{name}' is refused on {gpu.name} because mig-parted and the Kubernetes device plugin cannot "
                    f"make it{', not because the GPU cannot' if documented else ''}: {driver}, but go-nvlib, through "
                    f"which they list profiles, "
                    f"leaves that size out (C < G and 2C > G + 1), so mig-parted fails to create it; their compute "
                    f"instances of a {gi} take {listed} slices")
    return (f"profile '{name}' does not exist on {gpu.name}; valid: {', '.join(gpu.profiles)}, or <C>c.<profile> "
            f"compute instances of them{_sibling_hint(gpu, name)}")


def gpu_instances(gpu: MigGpu, counts: dict[str, int]) -> tuple[Counter, list[str]]:
    """The GPU instances a geometry with compute-instance profiles needs, and how they were counted.

    mig-parted's SetMigConfig (pkg/mig/config/config.go @ bd7160f) walks the profiles in some order, putting a
    compute instance into the GPU instance it created last while that instance has the same GPU-instance profile
    and room for it, else into a new one; it tries every order until one applies. So the compute instances of one
    GPU-instance profile (any mix of sizes, and a whole 'Gg.XXgb' as one of G slices) share GPU instances as a bin
    packing of their slices into G-slice bins: the fewest instances is the least number of bins. Placements of
    compute instances inside a GPU instance are not modelled (capacity by slices only)."""
    gis: Counter = Counter()
    items: dict[str, Counter] = {}
    for name, n in counts.items():
        if name in gpu.profiles:
            gis[name] += n
            continue
        ci = gpu.compute_instance(name)
        if ci is None:
            raise NotFoundError(_unknown_profile(gpu, name))
        gi, c = ci
        items.setdefault(gi.name, Counter())[c] += n
    how = []
    for gi_name, sizes in sorted(items.items()):
        g = gpu.profiles[gi_name].compute
        bins = _min_bins(tuple(sorted(sizes.items(), reverse=True)), g, gpu.profiles[gi_name].max_count)
        gis[gi_name] += bins
        listed = " + ".join(f"{n}×{c}c.{gi_name}" for c, n in sorted(sizes.items(), reverse=True))
        how.append(f"{listed} fill {bins} {gi_name} GPU instance{'s' if bins != 1 else ''} ({g} compute slices each)")
    return gis, how


def _min_bins(sizes: tuple[tuple[int, int], ...], capacity: int, cap_count: int) -> int:
    """Fewest bins of `capacity` holding `n` items of each size (exact; beyond the GPU's cap on such instances the
    lower bound ⌈Σ/capacity⌉ is returned, which already exceeds it)."""
    total = sum(c * n for c, n in sizes)
    lower = math.ceil(total / capacity)
    if lower > cap_count:
        return lower
    sizes_only = [c for c, _ in sizes]

    @lru_cache(maxsize=None)
    def go(left: tuple[int, ...]) -> int:
        if not any(left):
            return 0
        best = math.inf
        # Fill one bin with every maximal choice that includes the largest item left, then recurse.
        first = next(i for i, n in enumerate(left) if n)

        def fill(i: int, room: int, take: list[int]) -> None:
            nonlocal best
            if i == len(left):
                rest = tuple(n - t for n, t in zip(left, take))
                best = min(best, 1 + go(rest))
                return
            most = min(left[i] - (1 if i == first else 0), room // sizes_only[i])
            for k in range(most, -1, -1):
                take[i] += k
                fill(i + 1, room - k * sizes_only[i], take)
                take[i] -= k

        take = [0] * len(left)
        take[first] = 1
        fill(0, capacity - sizes_only[first], take)
        return best

    return int(go(tuple(n for _, n in sizes)))


def parse_placed(text: str) -> list[tuple[str, int]]:
    """'3g.40gb@0,3g.40gb@2' → [(profile, start), …] (an explicit placement, as NVML takes it)."""
    out = []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        name, _, start = part.partition("@")
        if not start.strip().isdigit():
            raise SpecError(f"'{part}' needs a start slot after '@', e.g. 3g.40gb@4")
        out.append((name.strip().lower(), int(start)))
    return out


def media_over(gpu: MigGpu, counts: dict[str, int]) -> list[tuple[str, int, int]]:
    """(engine, taken, the board's) for each media engine the GPU instances take more of than the board has.

    Per profile and per board as the MIG User Guide's tables give them (Supported MIG Profiles: NVDEC, NVENC, JPEG,
    OFA columns; the board's from the whole-GPU profile's row). On the RTX PRO 6000 a 1g.24gb+me.all takes all 4
    NVDEC/NVENC/JPEG and the OFA, so no other instance with an engine fits beside it; on the A30 the 1g.6gb+me and
    2g.12gb+me both want the board's one JPEG and OFA. Engines a table gives no board total for are not checked."""
    if not gpu.media_total:
        return []
    taken: Counter = Counter()
    for name, n in counts.items():
        for engine, k in gpu.profiles[name].media:
            taken[engine] += k * n
    return [(e, taken[e], have) for e, have in gpu.media_total if taken[e] > have]


def _media_reason(gpu: MigGpu, counts: dict[str, int], over: list[tuple[str, int, int]]) -> str:
    users = {p: n for p, n in counts.items() if any(k and e in {o[0] for o in over} for e, k in gpu.profiles[p].media)}
    return (f"media engines: {geometry_label(users)} take {', '.join(f'{t} {MEDIA_ENGINES[e]}' for e, t, _ in over)}, "
            f"but {gpu.name} has {', '.join(f'{h} {MEDIA_ENGINES[e]}' for e, _, h in over)} "
            f"({gpu.media_source.split(':')[0] if gpu.media_source else GUIDE})")


def validate(gpu: MigGpu, geometry: dict[str, int] | str) -> GeometryCheck:
    """Check a geometry; every failed rule becomes one reason (caps, exclusivity, totals, overlap).

    Rules: MIG User Guide (max instances per profile, placements); `+me` caps; media engines (media_over); the
    totals Σ compute ≤ compute slices and Σ memory slots ≤ memory slots; then a placement search. A
    geometry written with explicit starts ('3g.40gb@0,2g.20gb@4') is checked as placed: each start
    must be one the class allows and the intervals [start, start+size) must not overlap (NVML:
    "Creation of new GPU instance will fail if there is overlap with the already occupied memory slices").
    """
    placed = parse_placed(geometry) if isinstance(geometry, str) and "@" in geometry else None
    if placed is not None:
        counts = _counts_of(gpu, dict(Counter(name for name, _ in placed)))
        cis = [n for n in counts if n not in gpu.profiles]
        if cis:
            raise SpecError(f"{cis[0]} is a compute instance: it has no start of its own; place its GPU instance "
                            f"({gpu.compute_instance(cis[0])[0].name}@<start>) or leave the starts out")
        placed = [(gpu.canonical(n), s) for n, s in placed]
    else:
        counts = _counts_of(gpu, geometry)
    check = GeometryCheck(gpu=gpu.name, counts=dict(counts), valid=False)
    counts, how = gpu_instances(gpu, counts)
    check.packing = how
    check.compute_used = sum(gpu.profiles[p].compute * n for p, n in counts.items())
    check.slots_used = sum(gpu.profiles[p].size * n for p, n in counts.items())
    for name, n in counts.items():
        p = gpu.profiles[name]
        if n > p.max_count:
            check.reasons.append(f"too many {name}: {n} > max {p.max_count} per GPU")
    for group in gpu.exclusive:
        present = [g for g in group if counts.get(g)]
        if len(present) > 1:
            check.reasons.append(f"{' and '.join(present)} are mutually exclusive (they share the GPU's media engines)")
    over = media_over(gpu, counts)
    if over:
        check.reasons.append(_media_reason(gpu, counts, over))
    if check.compute_used > gpu.compute_slices:
        check.reasons.append(f"the total is over: {check.compute_used} compute slices > {gpu.compute_slices}")
    if check.slots_used > gpu.memory_slots:
        check.reasons.append(f"the total is over: {check.slots_used} memory slots > {gpu.memory_slots}")
    if placed is not None:
        check.reasons += _placed_reasons(gpu, placed)
        if not check.reasons:
            check.placement = sorted((n, s, gpu.profiles[n].size) for n, s in placed)
    elif not check.reasons:
        placement = place(gpu, counts)
        if placement is None:
            check.reasons.append(
                "overlap: no choice of start positions keeps the instances' memory slots disjoint "
                f"({'; '.join(f'{p} starts {list(gpu.profiles[p].starts)}' for p in sorted(counts))})"
            )
        else:
            check.placement = placement
    if how and check.reasons:
        check.reasons.append("compute instances share GPU instances of their profile: " + "; ".join(how))
    check.valid = not check.reasons
    if check.valid:
        check.notes = _driver_notes(gpu, counts)
    return check


def _placed_reasons(gpu: MigGpu, placed: list[tuple[str, int]]) -> list[str]:
    reasons = []
    owner: dict[int, str] = {}
    for name, start in placed:
        p = gpu.profiles[name]
        if start not in p.starts:
            reasons.append(f"{name} cannot start at slot {start}; allowed starts {list(p.starts)}")
            continue
        for slot in range(start, start + p.size):
            if slot in owner:
                reasons.append(f"overlap: {name}@{start} and {owner[slot]} both use memory slot {slot}")
                break
            owner[slot] = f"{name}@{start}"
    return reasons


def _driver_notes(gpu: MigGpu, counts: Counter) -> list[str]:
    notes = []
    for name in sorted(counts):
        p = gpu.profiles[name]
        if p.min_driver:
            notes.append(f"{name} needs driver {p.min_driver} or newer")
    classes = Counter()
    for name, n in counts.items():
        classes[gpu.profiles[name].klass] += n
    for note in gpu.notes:
        combo = note.get("combination", {})
        if combo and all(classes.get(c, 0) >= k for c, k in combo.items()):
            notes.append(note["text"])
    return notes


def is_valid(gpu: MigGpu, counts: dict[str, int]) -> bool:
    """Fast check for search loops (no reasons)."""
    for name, n in counts.items():
        if n > gpu.profiles[name].max_count:
            return False
    for group in gpu.exclusive:
        if sum(1 for g in group if counts.get(g)) > 1:
            return False
    if media_over(gpu, counts):
        return False
    return place(gpu, {k: v for k, v in counts.items() if v}) is not None


def geometries(gpu: MigGpu, variants: bool = False, maximal: bool = False) -> list[dict[str, int]]:
    """Every valid non-empty geometry (multiset of profiles), optionally only inclusion-maximal ones.

    `variants=False` uses the base profiles only (no +me/-me/+gfx), which is the enumeration of the
    reference notes (§3.2: 77 multisets on 7-slice GPUs, 28 maximal). The feasible set is
    downward-closed, so the search prunes a branch as soon as it stops fitting.
    """
    fingerprint = (tuple((p.name, p.size, p.compute, p.starts, p.max_count, p.media) for p in gpu.profiles.values()),
                   gpu.media_total)
    return [dict(g) for g in _geometries(gpu.key, variants, maximal, fingerprint, gpu.exclusive)]


@lru_cache(maxsize=64)
def _geometries(key: str, variants: bool, maximal: bool, fingerprint: tuple, exclusive: tuple) -> tuple[tuple[tuple[str, int], ...], ...]:
    """Cached by the table's content, so a user catalog that changes a profile gets a fresh enumeration."""
    gpu = _table_by_key(key)
    profs = [p for p in gpu.profiles.values() if variants or p.is_base]
    profs.sort(key=lambda p: (-p.size, -p.compute, p.name))
    found: list[dict[str, int]] = []

    def go(i: int, counts: dict[str, int]) -> None:
        if i == len(profs):
            if counts:
                found.append(dict(counts))
            return
        p = profs[i]
        go(i + 1, counts)
        for n in range(1, p.max_count + 1):
            counts[p.name] = n
            if not is_valid(gpu, counts):
                break
            go(i + 1, counts)
        counts.pop(p.name, None)

    go(0, {})
    if maximal:
        found = [g for g in found if not _extendable(gpu, g, profs)]
    found.sort(key=lambda g: (-sum(gpu.profiles[p].compute * n for p, n in g.items()), sorted(g.items())))
    return tuple(tuple(sorted(g.items())) for g in found)


def _extendable(gpu: MigGpu, g: dict[str, int], profs: list[MigProfile]) -> bool:
    for p in profs:
        trial = dict(g)
        trial[p.name] = trial.get(p.name, 0) + 1
        if is_valid(gpu, trial):
            return True
    return False


def placement_table(gpu: MigGpu) -> list[dict]:
    """One row per profile, like `nvidia-smi mig -lgipp` plus slices and caps."""
    rows = []
    for p in gpu.profiles.values():
        rows.append(
            {
                "profile": p.name,
                "gi_id": p.gi_id,
                "compute_slices": p.compute,
                "memory_slots": p.size,
                "starts": list(p.starts),
                "max": p.max_count,
                "usable_gib": p.usable_gib,
                "planner_gib": round(p.memory_bytes / 2**30, 3),
                "memory_source": p.memory_source,
                "media": dict(p.media),
                "resource": p.resource_name,
                "min_driver": p.min_driver,
            }
        )
    return rows


def geometry_label(g: dict[str, int]) -> str:
    return " + ".join(f"{n}×{p}" for p, n in sorted(g.items(), key=lambda kv: (-int(kv[0].split("g.")[0].split(".")[-1]), kv[0])))


PLACEMENT_STATUSES = ("verified", "secondary", "derived", "assumed")


def assumed_rows() -> list[dict]:
    """Everything in the MIG tables that is not read from a primary source, with why: tables whose
    placements are derived or assumed, profiles whose memory was measured on another GPU's table, and
    profiles whose memory is read back from their name."""
    rows = []
    for g in all_mig_gpus():
        if g.placement_status != "verified":
            rows.append({"gpu": g.name, "item": "placements", "status": g.placement_status, "source": g.placement_source})
        borrowed: dict[str, list[str]] = {}
        for p in g.profiles.values():
            if p.usable_gib is None and p.memory_source.startswith("nvidia-smi"):
                borrowed.setdefault(p.memory_source, []).append(p.name)
        for source, names in borrowed.items():
            rows.append({"gpu": g.name, "item": "usable memory of " + ", ".join(names), "status": "derived",
                         "source": source})
        no_mem = [p.name for p in g.profiles.values() if p.usable_gib is None and p.name not in sum(borrowed.values(), [])]
        if no_mem:
            rows.append({"gpu": g.name, "item": "usable memory of " + ", ".join(no_mem), "status": "assumed",
                         "source": "no nvidia-smi mig -lgip output found; the planner reads the name back as GiB "
                                   "(go-nvlib's rounding: <N>gb is at least N - 0.5 GiB), which a process may not get"})
    return rows
