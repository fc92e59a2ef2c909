"""PromQL building blocks shared by the analysis, the alert rules and the dashboard.

One quantity, many spellings (telemetry reference §1, §3):
- metric names: legacy `DCGM_FI_*` (exporter ≤ 4.8), DCGM 4.6/4.7 canonical names (exporter 4.9,
  some with new units), 1.x lowercase `dcgm_*`;
- labels: `Hostname`/`hostname`, `UUID`/`uuid`, `pod`/`exported_pod`/`pod_name`.

`alt()` writes one expression that matches every spelling and scales each to the canonical unit,
so a rule or query keeps working across an exporter upgrade or a mixed fleet. Grouping clauses
list every label variant (`by (Hostname, hostname, UUID, uuid, …)`): a label that a series does not
carry is simply empty, so one clause serves all generations.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping

MiB = 1048576.0

# quantity → [(metric name, factor to the canonical unit)]. Canonical units: ratio 0–1, bytes,
# W, °C, ns (violation counters), counts. Names other than the legacy ones are from §1.1 of the
# telemetry reference (DCGM 4.6 aliases [V]); exporter-4.9 unit changes are [D] per its release note.
class _CatalogMerged(dict):
    """The static spellings, with the catalog's merged in on first read (not at import: parsing
    every catalog file cost `aiinfra --help` 0.2-0.5 s, and a --catalog given later is then seen)."""

    _merged = False

    def _ensure(self) -> None:
        if not self._merged:
            _merge_catalog()
            self._merged = True

    def __getitem__(self, key):  # type: ignore[no-untyped-def]
        self._ensure()
        return super().__getitem__(key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        self._ensure()
        return super().__iter__()

    def __contains__(self, key) -> bool:  # type: ignore[no-untyped-def]
        self._ensure()
        return super().__contains__(key)

    def get(self, key, default=None):  # type: ignore[no-untyped-def]
        self._ensure()
        return super().get(key, default)

    def items(self):  # type: ignore[no-untyped-def]
        self._ensure()
        return super().items()

    def values(self):  # type: ignore[no-untyped-def]
        self._ensure()
        return super().values()

    def keys(self):  # type: ignore[no-untyped-def]
        self._ensure()
        return super().keys()


ALIASES: dict[str, list[tuple[str, float]]] = _CatalogMerged({
    "gpu_util": [("DCGM_FI_DEV_GPU_UTIL", 0.01), ("DCGM_FI_DEV_GPU_UTIL_RATIO", 1.0), ("dcgm_gpu_utilization", 0.01)],
    "gr_active": [("DCGM_FI_PROF_GR_ENGINE_ACTIVE", 1.0), ("DCGM_FI_PROF_GR_ENGINE_UTIL_RATIO", 1.0), ("dcgm_fi_prof_gr_engine_active", 1.0)],
    "tensor_active": [("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", 1.0), ("DCGM_FI_PROF_TENSOR_UTIL_RATIO", 1.0), ("dcgm_fi_prof_pipe_tensor_active", 1.0)],
    "fb_used": [("DCGM_FI_DEV_FB_USED", MiB), ("DCGM_FI_DEV_FB_USED_BYTES", 1.0), ("dcgm_fb_used", MiB)],
    "fb_free": [("DCGM_FI_DEV_FB_FREE", MiB), ("DCGM_FI_DEV_FB_FREE_BYTES", 1.0), ("dcgm_fb_free", MiB)],
    "power": [("DCGM_FI_DEV_POWER_USAGE", 1.0), ("DCGM_FI_DEV_BOARD_POWER_WATTS", 1.0), ("dcgm_power_usage", 1.0)],
    "power_limit": [("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", 1.0), ("DCGM_FI_DEV_BOARD_POWER_LIMIT_ENFORCED_WATTS", 1.0),
                    ("DCGM_FI_DEV_POWER_MGMT_LIMIT", 1.0), ("DCGM_FI_DEV_BOARD_POWER_LIMIT_REQUESTED_WATTS", 1.0)],
    "temp": [("DCGM_FI_DEV_GPU_TEMP", 1.0), ("DCGM_FI_DEV_GPU_TEMP_CELSIUS", 1.0), ("dcgm_gpu_temp", 1.0)],
    "temp_margin": [("DCGM_FI_DEV_GPU_TEMP_LIMIT", 1.0), ("DCGM_FI_DEV_GPU_TEMP_MARGIN_CELSIUS", 1.0)],
    "slowdown_temp": [("DCGM_FI_DEV_SLOWDOWN_TEMP", 1.0), ("DCGM_FI_DEV_GPU_TEMP_SLOWDOWN_CELSIUS", 1.0)],
    "xid_last": [("DCGM_FI_DEV_XID_ERRORS", 1.0), ("DCGM_FI_DEV_XID_ERROR", 1.0), ("dcgm_xid_errors", 1.0)],
    "xid_count": [("DCGM_EXP_XID_ERRORS_COUNT", 1.0)],
    "ecc_dbe_vol": [("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", 1.0)],
    "ecc_dbe_agg": [("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", 1.0)],
    "ecc_sbe_vol": [("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", 1.0)],
    "row_remap_failure": [("DCGM_FI_DEV_ROW_REMAP_FAILURE", 1.0), ("DCGM_FI_DEV_ROW_REMAP_FAILED", 1.0)],
    "row_remap_pending": [("DCGM_FI_DEV_ROW_REMAP_PENDING", 1.0)],
    "remapped_rows_unc": [("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", 1.0), ("DCGM_FI_DEV_ROW_REMAP_UNCORRECTABLE_TOTAL", 1.0)],
    "pcie_replay": [("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", 1.0), ("DCGM_FI_DEV_PCIE_REPLAY_TOTAL", 1.0), ("dcgm_pcie_replay_counter", 1.0)],
    "nvlink_errors": [
        (f"DCGM_FI_DEV_NVLINK_{kind}_ERROR{suffix}", 1.0)
        for kind in ("CRC_FLIT", "CRC_DATA", "REPLAY", "RECOVERY")
        for suffix in ("_COUNT_TOTAL", "_TOTAL")
    ],
    "thermal_violation_ns": [("DCGM_FI_DEV_THERMAL_VIOLATION", 1.0)],
    "power_violation_ns": [("DCGM_FI_DEV_POWER_VIOLATION", 1.0)],
    "board_limit_violation_ns": [("DCGM_FI_DEV_BOARD_LIMIT_VIOLATION", 1.0)],
    "sync_boost_violation_ns": [("DCGM_FI_DEV_SYNC_BOOST_VIOLATION", 1.0)],
    "reliability_violation_ns": [("DCGM_FI_DEV_RELIABILITY_VIOLATION", 1.0)],
    "clock_reasons": [("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", 1.0), ("DCGM_FI_DEV_CLOCK_THROTTLE_REASONS", 1.0)],
    "clock_events_count": [("DCGM_EXP_CLOCK_EVENTS_COUNT", 1.0)],
})

# quantity → entry of catalog/data/dcgm_fields.yaml (the telemetry alias table); its spellings
# are merged in front of the static ones above, so a name added there is recognised here too.
CATALOG_KEYS = {
    "gpu_util": "gpu-util", "gr_active": "prof-gr-engine-active", "tensor_active": "prof-pipe-tensor-active",
    "fb_used": "fb-used", "fb_free": "fb-free", "power": "power-usage", "temp": "gpu-temp", "xid_last": "xid-errors",
    "xid_count": "exp-xid-errors-count", "ecc_dbe_vol": "ecc-dbe-vol-total", "ecc_dbe_agg": "ecc-dbe-agg-total",
    "ecc_sbe_vol": "ecc-sbe-vol-total", "row_remap_failure": "row-remap-failure", "row_remap_pending": "row-remap-pending",
    "remapped_rows_unc": "uncorrectable-remapped-rows", "pcie_replay": "pcie-replay-counter",
    "thermal_violation_ns": "thermal-violation", "power_violation_ns": "power-violation",
    "clock_reasons": "clocks-event-reasons", "clock_events_count": "exp-clock-events-count",
}


def _catalog_spellings(entry: dict) -> list[tuple[str, float]]:
    """(name, factor to SI) for one dcgm_fields entry: legacy-unit names scale by 1/legacy_scale."""
    legacy_factor = 1.0 / float(entry["legacy_scale"]) if entry.get("legacy_scale") else 1.0
    si_name = entry.get("dcgm49")
    out: list[tuple[str, float]] = []
    for key in ("legacy", "dcgm46", "dcgm49", "v1"):
        name = entry.get(key)
        if name:
            out.append((str(name), 1.0 if name == si_name else legacy_factor))
    out += [(str(a), legacy_factor) for a in entry.get("aliases") or []]
    return out


def _merge_catalog() -> None:
    from aiinfra.catalog.loader import default_catalog

    # a broken --catalog is the caller's one-line error (and the merge is tried again on the next read), never a
    # silent fall back to the static spellings
    table = default_catalog().table("dcgm_fields")
    for quantity, key in CATALOG_KEYS.items():
        entry = table.get(key)
        if not entry:
            continue
        merged: dict[str, float] = {}
        for name, factor in _catalog_spellings(entry) + dict.__getitem__(ALIASES, quantity):
            merged.setdefault(name, factor)
        dict.__setitem__(ALIASES, quantity, list(merged.items()))
    # NVLink error counters are several fields (CRC flit/data, replay, recovery; totals and per link):
    # every one the field table knows joins the group, so the rule names whatever the exporter serves.
    merged = dict(dict.__getitem__(ALIASES, "nvlink_errors"))
    for entry in table.values():
        if re.search(r"NVLINK_.*ERROR", str(entry.get("legacy", ""))):
            for name, factor in _catalog_spellings(entry):
                merged.setdefault(name, factor)
    dict.__setitem__(ALIASES, "nvlink_errors", list(merged.items()))

# Clock-event bits (§5.6) grouped by the reason an operator acts on.
CLOCK_BITS = {"power_cap": 4, "hw_slowdown": 8, "sw_thermal": 32, "hw_thermal": 64, "hw_power_brake": 128}
THERMAL_BITS = ("sw_thermal", "hw_thermal", "hw_slowdown")
POWER_BITS = ("power_cap", "hw_power_brake")

# Grouping label sets, every spelling included.
HOST = ("Hostname", "hostname")
DEVICE = ("instance", "gpu", "UUID", "uuid", "modelName") + HOST  # one physical GPU (MIG instances collapse)
ENTITY = DEVICE + ("GPU_I_ID", "GPU_I_PROFILE")  # one GPU or one MIG GPU instance
POD_LABELS = {"pod": ("pod", "namespace", "container"), "exported_pod": ("exported_pod", "exported_namespace", "exported_container"),
              "pod_name": ("pod_name", "pod_namespace", "container_name")}


def model_names(key: str, entry: dict) -> list[str]:
    """Every modelName label value that means this catalog GPU: the names NVML gives it (nvmlDeviceGetName,
    which dcgm-exporter prints), from the entry's `nvml_names` (gpus.yaml) and a user file's `nvml_name`.
    The catalog's display name ("NVIDIA L4 24GB") is no modelName and is not matched."""
    out: list[str] = []
    for n in [*(entry.get("nvml_names") or []), entry.get("nvml_name")]:
        if n and str(n) not in out:
            out.append(str(n))
    return out


class _NvmlNames(Mapping[str, list[str]]):
    """catalog GPU key → its modelName values, read from the catalog in use (with --catalog files) on each
    lookup, not at import."""

    def _table(self) -> dict[str, list[str]]:
        from aiinfra.catalog.loader import default_catalog

        return {k: names for k, e in default_catalog().table("gpus").items() if (names := model_names(k, e))}

    def __getitem__(self, key: str) -> list[str]:
        return self._table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


NVML_NAMES: Mapping[str, list[str]] = _NvmlNames()


def by(labels: tuple[str, ...] | list[str]) -> str:
    return "by (" + ", ".join(labels) + ")"


def names(quantity: str) -> list[str]:
    return [n for n, _ in ALIASES[quantity]]


def alt(quantity: str, fn: Callable[[str], str] = lambda s: s, selector: str = "", present: set[str] | None = None,
        scale: bool = True) -> str:
    """`(fn(name1{sel}) * f1) or (fn(name2{sel}) * f2) …` over the spellings of one quantity.

    `present` (metric names known to exist) drops spellings a server does not have, which keeps
    analysis queries short; rules pass None and keep every spelling.
    """
    parts = []
    for name, factor in ALIASES[quantity]:
        if present is not None and name not in present:
            continue
        sel = f"{name}{{{selector}}}" if selector else name
        e = fn(sel)
        if scale and factor != 1.0:
            e = f"({e}) * {factor:.10g}"
        parts.append(f"({e})" if len(ALIASES[quantity]) > 1 else e)
    if not parts:
        return ""
    return parts[0] if len(parts) == 1 else " or ".join(parts)


def bit(expr: str, value: int) -> str:
    """1 where bit `value` is set in a bitmask series, else 0 (PromQL has no bitwise AND)."""
    return f"(floor(({expr}) / {value}) % 2)"


def regex_escape(s: str) -> str:
    out = []
    for ch in s:
        out.append("\\\\" + ch if ch in ".+*?()[]{}|^$\\" else ch)
    return "".join(out)
