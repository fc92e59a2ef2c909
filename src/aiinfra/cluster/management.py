"""Management: in-band Ethernet (SN4600C class), out-of-band (SN2201 class), UFM, control plane.

Port counting (DGX SuperPOD H100 RA V11 §"management"; BasePOD RA V5):
- in-band: every node and control-plane server connects bonded at 100 Gb/s; each switch keeps
  a few ports for MLAG peer links and uplinks, and switches come in pairs (MLAG);
- out-of-band: one 1GbE port per node BMC, per switch management port, per PDU and per
  control-plane server/appliance;
- UFM appliances manage InfiniBand fabrics only; Ethernet (RoCE) fabrics need none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aiinfra.cluster.bom import LineItem
from aiinfra.cluster.parts import (
    ServiceSpec,
    SwitchSpec,
    SystemSpec,
    constant,
    service,
    switch,
)
from aiinfra.explain import Term

SRC_MGMT = "DGX SuperPOD H100 RA V11: in-band SN4600C (100 Gb/s bonded), OOB SN2201 (BMCs, switch management, PDUs, storage management) [V]"


@dataclass
class Management:
    inband_switch: SwitchSpec
    oob_switch: SwitchSpec
    inband: int
    oob: int
    ufm: ServiceSpec
    ufm_count: int
    control: ServiceSpec
    control_count: int
    terms: list[Term] = field(default_factory=list)

    def bom_items(self) -> list[LineItem]:
        """In-band and OOB switches, UFM appliances and control-plane servers as BOM lines."""
        return [
            LineItem("management", self.inband_switch.key, self.inband, self.inband_switch.max_power_w, self.terms[0].formula, "switches"),
            LineItem("management", self.oob_switch.key, self.oob, self.oob_switch.max_power_w, self.terms[1].formula, "switches"),
            LineItem("management", self.ufm.key, self.ufm_count, self.ufm.max_power_w, f"UFM: {self.terms[2].formula}", "cluster_services"),
            LineItem("management", self.control.key, self.control_count, self.control.max_power_w, "BCM head nodes (HA) + service nodes", "cluster_services"),
        ]

    def rack_units(self) -> int:
        """Rack units of every management switch and server."""
        return (self.inband * self.inband_switch.rack_units + self.oob * self.oob_switch.rack_units
                + self.ufm_count * self.ufm.rack_units + self.control_count * self.control.rack_units)


def plan_management(system: SystemSpec, nodes: int, fabric_switches: int, racks: int, infiniband: bool,
                    control_nodes: int | None = None, inband_name: str = "sn4600c", oob_name: str = "sn2201",
                    storage_on_inband: bool = False, ufm_appliances: int | None = None) -> Management:
    """Count in-band and OOB switches, UFM appliances and control-plane servers.

    storage_on_inband: the nodes' storage ports also land on the in-band Ethernet (BasePOD:
    one SN4600C network for management and storage).
    """
    inband_sw, oob_sw = switch(inband_name), switch(oob_name)
    ufm, control = service("ufm-appliance"), service("control-node")
    ufm_count = (ufm.count_default if infiniband else 0) if ufm_appliances is None else ufm_appliances
    control_count = control.count_default if control_nodes is None else control_nodes
    reserved, reserved_src = constant("inband-uplink-ports")
    pdus, pdu_src = constant("pdus-per-rack")

    storage_ports = nodes * system.storage_ports if storage_on_inband else 0
    inband_ports = nodes * system.inband_ports + storage_ports + control_count * control.mgmt_ports + ufm_count * ufm.mgmt_ports
    usable = inband_sw.radix(inband_sw.top_gbps) - int(reserved)
    inband = 2 * math.ceil(inband_ports / (2 * usable))  # MLAG pairs
    t_in = Term("in-band switches", inband, "switches", "2 × ⌈ports / (2 × (radix − reserved))⌉ (MLAG pairs)",
                {"ports": inband_ports, "of which storage": storage_ports, "radix": inband_sw.radix(inband_sw.top_gbps), "reserved": reserved},
                {"rule": SRC_MGMT, "reserved": reserved_src})

    oob_ports = nodes + fabric_switches + inband + int(pdus) * racks + control_count * control.oob_ports + ufm_count * ufm.oob_ports
    oob_radix = oob_sw.radix(oob_sw.top_gbps)
    oob = math.ceil(oob_ports / oob_radix)
    t_oob = Term("out-of-band switches", oob, "switches", "⌈(node BMCs + switch mgmt + PDUs + servers) / radix⌉",
                 {"node BMCs": nodes, "switch mgmt": fabric_switches + inband, "PDUs": int(pdus) * racks,
                  "servers": control_count + ufm_count, "radix": oob_radix},
                 {"rule": SRC_MGMT, "PDUs per rack": pdu_src})
    t_ufm = Term("UFM appliances", ufm_count, "appliances", "HA pair on InfiniBand, none on Ethernet" if ufm_appliances is None else "given",
                 {"infiniband": infiniband}, {"ufm": ufm.source})
    t_ctl = Term("control-plane servers", control_count, "servers", "BCM head nodes + service nodes", {}, {"control": control.source})
    return Management(inband_sw, oob_sw, inband, oob, ufm, ufm_count, control, control_count, [t_in, t_oob, t_ufm, t_ctl])
