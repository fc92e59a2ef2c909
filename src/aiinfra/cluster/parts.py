"""Typed lookups for the cluster catalog tables: systems, switches, optics, storage tiers, services.

Each lookup accepts the catalog key, an alias or a common spelling and suggests the closest
names on a miss (catalog.loader does the fuzzy part).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from aiinfra.catalog.loader import default_catalog, spec_from_entry
from aiinfra.errors import NotFoundError, SpecError, not_found


class _Part(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    key: str
    source: str = ""


class SystemSpec(_Part):
    """A GPU node type (systems.yaml)."""

    name: str
    gpu: str
    gpus: int = Field(gt=0)
    compute_nics: int = Field(gt=0)
    nic_gbps: float = Field(gt=0)
    nic_ports_per_cage: int = Field(1, ge=1, le=2)
    storage_ports: int = Field(ge=0)
    storage_port_gbps: float = Field(ge=0)
    inband_ports: int = Field(ge=0)
    inband_port_gbps: float = Field(ge=0)
    max_power_w: float = Field(gt=0)
    rack_units: int = Field(gt=0)
    cooling: str = "air"
    local_nvme_tb: float = 0
    ra_nodes_per_rack: int = Field(gt=0)
    su_nodes: int = Field(gt=0)
    generic: bool = False
    # Rack-scale systems (NVL72): one node is one rack and one NVLink domain.
    rack_scale: bool = False
    liquid_fraction: float = Field(0.0, ge=0, le=1)  # share of the heat taken by liquid cooling
    compute_trays: int = 0
    nvlink_switch_trays: int = 0
    power_shelves: int = 0
    rails: int = 0  # scale-out rails of a rack-scale system (NICs per compute tray)
    tray: str = ""
    nvlink_tray: str = ""
    storage_fabric: str = ""  # default storage/in-band switch of the RA for this system
    compute_fabric: str = ""  # default compute switch of the RA for this system
    su_tdp_w: float = 0.0  # the RA's power per SU, where it gives one
    part_of: str = ""  # a tray of a rack-scale system; not a node on its own

    def with_nics(self, nics: int | None) -> SystemSpec:
        """The same node with another compute-NIC count; only generic HGX boards may change it."""
        if nics is None or nics == self.compute_nics:
            return self
        if not self.generic:
            raise SpecError(f"{self.key} has a fixed {self.compute_nics} compute NICs; --nics applies to generic HGX nodes (hgx-h100, hgx-h200, hgx-b200)")
        if not 2 <= nics <= 8:
            raise SpecError(f"an HGX node takes 2 to 8 compute NICs, not {nics}")
        return self.model_copy(update={"compute_nics": nics})


class SwitchSpec(_Part):
    """A switch model (switches.yaml). `speeds` maps a link rate in Gb/s to the logical port count."""

    name: str
    protocol: Literal["infiniband", "ethernet", "nvlink"]
    generation: str
    cages: int = Field(gt=0)
    speeds: dict[float, int]
    rack_units: int = Field(gt=0)
    max_power_w: float = Field(gt=0)
    role: Literal["compute", "inband", "oob", "scaleup"]
    optics: dict[str, str]

    @property
    def top_gbps(self) -> float:
        return max(self.speeds)

    def radix(self, gbps: float) -> int:
        """Logical ports at `gbps`; an unsupported rate is an error that names the rates it runs."""
        if gbps not in self.speeds:
            rates = ", ".join(f"{r:g}" for r in sorted(self.speeds, reverse=True))
            raise SpecError(f"switch {self.key} has no {gbps:g} Gb/s ports; it runs {rates} Gb/s")
        return self.speeds[gbps]

    def ports_per_cage(self, gbps: float) -> int:
        return max(1, self.radix(gbps) // self.cages)


class OpticSpec(_Part):
    name: str
    type: Literal["transceiver", "cable"]
    ports: int = Field(1, ge=1)
    max_power_w: float = Field(ge=0)


class StorageTier(_Part):
    """RA Good/Better/Best storage bandwidth, GB/s (1e9 B/s) as printed."""

    node_read_gbs: float = Field(gt=0)
    node_write_gbs: float = Field(gt=0)
    su_read_gbs: float = Field(gt=0)
    su_write_gbs: float = Field(gt=0)
    su4_read_gbs: float = Field(gt=0)
    su4_write_gbs: float = Field(gt=0)
    workloads: str = ""


class ServiceSpec(_Part):
    """A control-plane server or fabric-manager appliance (cluster_services.yaml)."""

    name: str
    count_default: int = Field(ge=0)
    max_power_w: float = Field(ge=0)
    rack_units: int = Field(ge=0)
    mgmt_ports: int = 0
    oob_ports: int = 0
    fabric_links: int = 0
    capacity_kw: float = 0.0  # cooling units: heat each one removes


# How each table's kind reads in an error message ("unknown switch 'qm970'; closest: …").
_SINGULAR = {"systems": "node type", "switches": "switch", "optics": "optic", "storage_tiers": "storage tier",
             "cluster_services": "cluster service", "datacenter": "datacenter constant"}


def _build(cls: type[_Part], kind: str, name: str) -> _Part:
    cat = default_catalog()
    try:
        key, entry = cat.entry(kind, name)
    except NotFoundError:
        raise not_found(_SINGULAR.get(kind, kind), name, cat.names(kind)) from None
    return spec_from_entry(cls, kind, key, entry)


def system(name: str) -> SystemSpec:
    return _build(SystemSpec, "systems", name)  # type: ignore[return-value]


def switch(name: str) -> SwitchSpec:
    return _build(SwitchSpec, "switches", name)  # type: ignore[return-value]


def optic(name: str) -> OpticSpec:
    return _build(OpticSpec, "optics", name)  # type: ignore[return-value]


def storage_tier(name: str) -> StorageTier:
    return _build(StorageTier, "storage_tiers", name)  # type: ignore[return-value]


def service(name: str) -> ServiceSpec:
    return _build(ServiceSpec, "cluster_services", name)  # type: ignore[return-value]


def constant(name: str) -> tuple[float, str]:
    """A datacenter constant (datacenter.yaml) and its source."""
    cat = default_catalog()
    try:
        key, entry = cat.entry("datacenter", name)
    except NotFoundError:
        raise not_found("datacenter constant", name, cat.names("datacenter")) from None
    return float(entry["value"]), f"{entry.get('source', '')} (catalog datacenter/{key})"
