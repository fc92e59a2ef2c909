"""The cluster catalog tables (systems, switches, optics, cluster_services, datacenter) are valid and consistent."""

from __future__ import annotations

import pytest

from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.loader import default_catalog
from aiinfra.cluster.parts import constant, optic, service, switch, system

CAT = default_catalog()


@pytest.mark.parametrize("key", sorted(CAT.names("systems")))
def test_every_system_builds_and_its_references_resolve(key):
    s = system(key)
    assert s.source and gpu(s.gpu).key == s.gpu
    for ref in (s.compute_fabric, s.storage_fabric, s.nvlink_tray):
        if ref:
            assert switch(ref).key == ref
    if s.tray:
        assert system(s.tray).part_of == s.key
    if s.rack_scale:
        assert s.gpus == s.compute_trays * system(s.tray).gpus == gpu(s.gpu).scaleup_domain
        assert s.compute_nics == s.gpus and s.rails * s.compute_trays == s.compute_nics
        assert 0 < s.liquid_fraction <= 1 and s.su_nodes == 8


@pytest.mark.parametrize("key", sorted(CAT.names("switches")))
def test_every_switch_names_real_optics(key):
    sw = switch(key)
    assert sw.source
    for part in sw.optics.values():
        assert optic(part).key == part
    # Logical ports fill whole cages (twin-port OSFP: 2 per cage; split modes: 4), so transceivers count per cage.
    assert all(ports % sw.cages == 0 for ports in sw.speeds.values())


@pytest.mark.parametrize("key", sorted(CAT.names("cluster_services")))
def test_every_service_builds(key):
    assert service(key).source


def test_nvl72_racks_and_gpus_agree():
    """GB200/GB300 NVL72: 72 GPUs in 18 compute trays of 4, 9 NVLink switch trays, 8 power shelves (DGX GB200
    user guide; cluster_tco_anchors.md §1.3, §1.5); the GPU's scale-up domain is the rack."""
    for key, g in (("gb200-nvl72", "gb200"), ("gb300-nvl72", "gb300")):
        s = system(key)
        assert (s.gpus, s.compute_trays, s.nvlink_switch_trays, s.power_shelves) == (72, 18, 9, 8)
        assert gpu(g).scaleup_domain == 72 and s.gpu == g
    assert system("gb200-nvl72").nic_gbps == 400 and system("gb300-nvl72").nic_gbps == 800


def test_ra_constants_have_sources():
    for name in CAT.names("datacenter"):
        value, src = constant(name)
        assert src and value >= 0
