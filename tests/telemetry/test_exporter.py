"""The exporter speaks dcgm-exporter's language: names, HELP, TYPE and labels from the catalog table."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from aiinfra.telemetry.exporter import ExporterConfig, families, render
from aiinfra.telemetry.fields import exported_fields

BASE_LABELS = ["gpu", "UUID", "pci_bus_id", "device", "modelName"]


def _parse(text: str) -> dict:
    return {f.name: f for f in text_string_to_metric_families(text)}


def _family_name(name: str, typ: str) -> str:
    # prometheus_client's parser keeps counter family names but strips a trailing _total.
    return name[:-6] if typ == "counter" and name.endswith("_total") else name


def test_output_parses_and_matches_default_counters(sim):
    """Family names, TYPE and HELP equal etc/default-counters.csv @ d5e5f51 (catalog table), every
    sample has dcgm-exporter's label set in its order (render_metrics.go template)."""
    col, host, clock = sim("gpus=4,model=h100-sxm,seed=1")
    clock.advance(5)
    cfg = ExporterConfig()
    text = render(families([col.collect()], cfg)).decode()
    fams = _parse(text)
    expected = {f.legacy: f for f in exported_fields("legacy") if f.type != "label"}
    assert len(expected) == 26  # 25 active metric rows of default-counters.csv + the XID window count
    for name, f in expected.items():
        fam = fams[name]
        assert fam.type == f.type and fam.documentation == f.help, name
    for line in text.splitlines():
        if line.startswith("DCGM_"):
            keys = [kv.split("=", 1)[0] for kv in line[line.index("{") + 1 : line.rindex("}")].split('",')]
            assert keys[:5] == BASE_LABELS, line
            assert keys[5:7] == ["Hostname", "DCGM_FI_DRIVER_VERSION"], line
    # GPU_UTIL is an integer percent, PROF ratios are 0-1 doubles printed with %f.
    util = fams["DCGM_FI_DEV_GPU_UTIL"].samples
    assert len(util) == 4 and all(0 <= s.value <= 100 and float(s.value).is_integer() for s in util)
    assert all(0.0 <= s.value <= 1.0 for s in fams["DCGM_FI_PROF_GR_ENGINE_ACTIVE"].samples)
    assert "DCGM_FI_PROF_GR_ENGINE_ACTIVE{" in text and text.count(".") > 0
    # No XID happened: no last-code series (blank in DCGM), one 0 window-count sample per GPU.
    assert fams["DCGM_FI_DEV_XID_ERRORS"].samples == []
    counts = fams["DCGM_EXP_XID_ERRORS_COUNT"].samples
    assert [s.value for s in counts] == [0, 0, 0, 0] and all("xid" not in s.labels for s in counts)
