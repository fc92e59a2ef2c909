"""parse.py against prometheus_client's parsers, on dcgm-exporter samples, our own output and random text."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import (
    generate_latest as om_generate_latest,
)
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as om_client_parse,
)
from prometheus_client.parser import text_string_to_metric_families as client_parse

from aiinfra.telemetry.exporter import ExporterConfig, families, render
from aiinfra.telemetry.parse import (
    ParseError,
    client_view,
    normalize_labels,
    parse,
    read_dcgm,
)

# §4.1: dcgm-exporter README quickstart (old form: spaces after commas, a NOT_SUPPORTED sentinel).
README = """# HELP DCGM_FI_DEV_SM_CLOCK SM clock frequency (in MHz).
# TYPE DCGM_FI_DEV_SM_CLOCK gauge
# HELP DCGM_FI_DEV_MEM_CLOCK Memory clock frequency (in MHz).
# TYPE DCGM_FI_DEV_MEM_CLOCK gauge
# HELP DCGM_FI_DEV_MEMORY_TEMP Memory temperature (in C).
# TYPE DCGM_FI_DEV_MEMORY_TEMP gauge
DCGM_FI_DEV_SM_CLOCK{gpu="0", UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",container="",namespace="",pod=""} 139
DCGM_FI_DEV_MEM_CLOCK{gpu="0", UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",container="",namespace="",pod=""} 405
DCGM_FI_DEV_MEMORY_TEMP{gpu="0", UUID="GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52",container="",namespace="",pod=""} 9223372036854775794
"""
# §4.2: render_metrics_test.go expectations (empty HELP with a trailing blank; a link entity).
RENDER_TEST = """# HELP TEST_METRIC 
# TYPE TEST_METRIC gauge
TEST_METRIC{gpu="0",test-uuid="GPU-test-uuid-0000-0000-0000-000000000000",pci_bus_id="",device="testdevice",modelName="Test GPU Model",hostname="testhost"} 42
"""
LINK_TEST = """# HELP TEST_METRIC 
# TYPE TEST_METRIC gauge
TEST_METRIC{nvlink="0",nvswitch="0",gpu="0",gpu_uuid="GPU-test-uuid-0000-0000-0000-000000000000",device="testdevice",model_name="Test GPU Model",hostname="testhost"} 42
"""
# §4.3: constructed H100 node in Kubernetes (honorLabels: true view) with an XID and MIG instances.
K8S = """# HELP DCGM_FI_DEV_GPU_UTIL GPU utilization (in %).
# TYPE DCGM_FI_DEV_GPU_UTIL gauge
DCGM_FI_DEV_GPU_UTIL{gpu="0",UUID="GPU-1b2c3d4e-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-17",DCGM_FI_DRIVER_VERSION="570.124.06",container="trainer",namespace="ml-team-a",pod="llm-pretrain-0"} 97

# HELP DCGM_FI_DEV_FB_USED Framebuffer memory used (in MiB).
# TYPE DCGM_FI_DEV_FB_USED gauge
DCGM_FI_DEV_FB_USED{gpu="0",UUID="GPU-1b2c3d4e-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-17",DCGM_FI_DRIVER_VERSION="570.124.06",container="trainer",namespace="ml-team-a",pod="llm-pretrain-0"} 71212

# HELP DCGM_FI_DEV_POWER_USAGE Power draw (in W).
# TYPE DCGM_FI_DEV_POWER_USAGE gauge
DCGM_FI_DEV_POWER_USAGE{gpu="0",UUID="GPU-1b2c3d4e-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-17",DCGM_FI_DRIVER_VERSION="570.124.06",container="trainer",namespace="ml-team-a",pod="llm-pretrain-0"} 612.345000

# HELP DCGM_FI_PROF_GR_ENGINE_ACTIVE Ratio of time the graphics engine is active.
# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a810a1fc-0000-1111-2222-333344445555",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",GPU_I_PROFILE="3g.20gb",GPU_I_ID="1",hostname="gpu-node-3",DCGM_FI_DRIVER_VERSION="550.127.08",container="infer",namespace="serving",pod="triton-0"} 0.734000
DCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-a810a1fc-0000-1111-2222-333344445555",pci_bus_id="00000000:07:00.0",device="nvidia0",modelName="NVIDIA A100-SXM4-40GB",GPU_I_PROFILE="3g.20gb",GPU_I_ID="2",hostname="gpu-node-3",DCGM_FI_DRIVER_VERSION="550.127.08",container="",namespace="",pod=""} 0.000000

# HELP DCGM_FI_DEV_XID_ERRORS Value of the last XID error encountered.
# TYPE DCGM_FI_DEV_XID_ERRORS gauge
DCGM_FI_DEV_XID_ERRORS{gpu="3",UUID="GPU-9f8e7d6c-0000-1111-2222-333344445555",pci_bus_id="00000000:BA:00.0",device="nvidia3",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-17",DCGM_FI_DRIVER_VERSION="570.124.06",container="",err_code="79",err_msg="GPU has fallen off the bus",namespace="",pod=""} 79

# HELP DCGM_EXP_XID_ERRORS_COUNT reported XIDs during last window
# TYPE DCGM_EXP_XID_ERRORS_COUNT counter
DCGM_EXP_XID_ERRORS_COUNT{gpu="0",UUID="GPU-1b2c3d4e-0000-1111-2222-333344445555",pci_bus_id="00000000:18:00.0",device="nvidia0",modelName="NVIDIA H100 80GB HBM3",hostname="gpu-node-17",DCGM_FI_DRIVER_VERSION="570.124.06",window_size_in_ms="300000",xid="31"} 2
"""


def _same_value(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or float(a) == float(b)


def assert_equal_to_client(text: str) -> None:
    ours = list(client_view(parse(text)))
    theirs = list(client_parse(text))
    assert [(n, t, h) for n, t, h, _ in ours] == [(f.name, f.type, f.documentation) for f in theirs]
    for (_, _, _, samples), fam in zip(ours, theirs, strict=True):
        assert len(samples) == len(fam.samples)
        for (name, labels, value, ts), s in zip(samples, fam.samples, strict=True):
            assert (name, labels, ts) == (s.name, s.labels, s.timestamp)
            assert _same_value(value, s.value)


@pytest.mark.parametrize("text", [README, LINK_TEST, K8S], ids=["readme", "link-entity", "k8s-mig-xid"])
def test_equal_to_prometheus_client_on_dcgm_samples(text):
    """shared/reference/dcgm_telemetry_anchors.md §4.1-§4.3 samples parse exactly as prometheus_client does."""
    assert_equal_to_client(text)


def test_render_test_label_name_is_rejected_by_both():
    """The Go test's `test-uuid` label name is outside [a-zA-Z_][a-zA-Z0-9_]*: both parsers refuse it,
    and ours says which line."""
    with pytest.raises(ValueError):
        list(client_parse(RENDER_TEST))
    with pytest.raises(ParseError, match="^line 3: "):
        parse(RENDER_TEST)


@pytest.mark.parametrize("spec,naming", [("gpus=4,seed=1,faults=xid13:g0@0", "legacy"), ("gpus=2,seed=2,mig=3g.40gb+1g.10gb", "legacy"), ("gpus=2,seed=3", "dcgm4.9")])
def test_equal_to_prometheus_client_on_our_output(sim, spec, naming):
    col, _host, clock = sim(spec)
    clock.advance(2)
    text = render(families([col.collect()], ExporterConfig(naming=naming, counters="all"))).decode()
    assert_equal_to_client(text)


def test_read_dcgm_normalises_units_and_labels(sim):
    """Legacy (MiB, MHz, %, mJ) and 4.9 (bytes, Hz, ratio, J) output read back to the same SI values."""
    col, _host, clock = sim("gpus=2,seed=4,workload=training")
    clock.advance(20)
    snap = col.collect()
    legacy = {(r.field, r.labels["gpu_index"]): r for r in read_dcgm(render(families([snap], ExporterConfig())).decode())}
    new = {(r.field, r.labels["gpu_index"]): r for r in read_dcgm(render(families([snap], ExporterConfig(naming="dcgm4.9"))).decode())}
    for key in [("sm-clock", "0"), ("gpu-util", "1"), ("power-usage", "0"), ("prof-gr-engine-active", "1")]:
        assert legacy[key].value == pytest.approx(new[key].value, rel=1e-6), key
    assert legacy[("fb-used", "0")].value == pytest.approx(new[("fb-used", "0")].value, abs=2**20)  # MiB truncation
    assert legacy[("total-energy-consumption", "0")].value == pytest.approx(new[("total-energy-consumption", "0")].value, abs=1e-3)
    assert legacy[("sm-clock", "0")].unit == "Hz" and new[("gpu-util", "0")].generation in ("dcgm46", "dcgm4.9")
    assert legacy[("gpu-util", "0")].labels["host"] == "sim-node-00"
    # A NOT_SUPPORTED sentinel (README §4.1) is missing data, not 9.2e18 °C; old 1.x names are understood.
    readme = read_dcgm(README)
    assert {r.field for r in readme} == {"sm-clock", "mem-clock"}
    assert [r.value for r in read_dcgm('dcgm_gpu_temp{gpu="0",uuid="GPU-x"} 41\n')] == [41.0]


def test_label_aliases():
    assert normalize_labels({"UUID": "u", "Hostname": "h", "pod": "exporter-pod", "exported_pod": "job-0", "DCGM_FI_SYSTEM_DRIVER_VERSION": "580"}) == {
        "gpu_uuid": "u",
        "host": "h",
        "pod": "job-0",
        "driver_version": "580",
    }


def test_formats_details():
    fams = parse('# HELP m a \\\\ b\\nc\n# TYPE m gauge\nm{l="x\\"y"} NaN 1500\nm{l="z"} +Inf\nm{l="w"} -Inf\n')
    assert fams[0].help == "a \\ b\nc"
    s = fams[0].samples
    assert math.isnan(s[0].value) and s[0].timestamp == 1.5 and s[0].labels == {"l": 'x"y'}
    assert s[1].value == math.inf and s[2].value == -math.inf
    om = parse('# TYPE x_seconds counter\n# UNIT x_seconds seconds\n# HELP x_seconds Time.\nx_seconds_total{a="1"} 2.5 1520879607.789 # {trace_id="k"} 0.67\n# EOF\n', openmetrics=True)
    assert om[0].unit == "seconds" and om[0].samples[0].timestamp == pytest.approx(1520879607.789)
    assert om[0].samples[0].exemplar == ({"trace_id": "k"}, 0.67, None)
    quoted = parse('# TYPE b counter\nb_total{q="p # {x} 1"} 2 # {t="u"} 1 7\n# EOF\n', openmetrics=True)[0].samples[0]
    assert quoted.labels == {"q": "p # {x} 1"} and quoted.exemplar == ({"t": "u"}, 1.0, 7.0)
    assert parse("# EOF\n", openmetrics="auto") == []


@pytest.mark.parametrize(
    "text,line",
    [
        ("# TYPE a gauge\na 1\nb{x=\"1\" 2\n", 3),
        ("a 1\n\n\nb{x=1} 2\n", 4),
        ("# TYPE a gauge\na one\n", 2),
        ("# TYPE a sometimes\n", 1),
        ('a{x="1",x="2"} 3\n', 1),
        ("a 1\n9b 2\n", 2),
    ],
)
def test_errors_name_the_line(text, line):
    with pytest.raises(ParseError, match=rf"^line {line}: "):
        parse(text)


def test_openmetrics_must_end_with_eof_and_has_no_blank_lines():
    with pytest.raises(ParseError, match="EOF"):
        parse("# TYPE a gauge\na 1\n", openmetrics=True)
    with pytest.raises(ParseError, match="line 2: blank"):
        parse("a 1\n\n# EOF\n", openmetrics=True)
    with pytest.raises(ParseError, match="line 3: content after # EOF"):
        parse("a 1\n# EOF\nb 2\n", openmetrics=True)


# ---------------------------------------------------------------- hypothesis round-trips

_RESERVED_SUFFIXES = ("_total", "_created", "_sum", "_count", "_bucket", "_info", "_gsum", "_gcount")
names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,15}", fullmatch=True).filter(lambda n: not n.endswith(_RESERVED_SUFFIXES) and not n.startswith("__"))
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True).filter(lambda n: not n.startswith("__"))
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
values = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def expositions(draw):
    fams = []
    for name in draw(st.lists(names, min_size=1, max_size=5, unique=True)):
        typ = draw(st.sampled_from(["gauge", "counter", "unknown"]))
        keys = draw(st.lists(label_names, max_size=4, unique=True))
        rows = draw(st.lists(st.tuples(st.tuples(*[texts for _ in keys]), values), max_size=4, unique_by=lambda r: r[0]))
        if typ == "counter":
            rows = [(lv, abs(v) if not math.isnan(v) else 0.0) for lv, v in rows]
        # Text 0.0.4 strips lines, so HELP cannot keep leading or trailing blanks.
        fams.append((name, typ, draw(texts.filter(lambda t: t == t.strip())), keys, rows))
    return fams


class _Fixed:
    def __init__(self, fams):
        self.fams = fams

    def collect(self):
        for name, typ, doc, keys, rows in self.fams:
            m = Metric(name, doc, typ)
            sample_name = name + "_total" if typ == "counter" else name
            for lv, v in rows:
                m.add_sample(sample_name, dict(zip(keys, lv, strict=True)), v)
            yield m


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expositions())
def test_roundtrip_text_format(fams):
    """prometheus_client writes random families; we parse them back exactly, and as its parser does."""
    reg = CollectorRegistry()
    reg.register(_Fixed(fams))
    text = generate_latest(reg).decode()
    assert_equal_to_client(text)
    parsed = {f.name: f for f in parse(text)}
    for name, typ, doc, keys, rows in fams:
        fam = parsed[name + "_total"] if typ == "counter" else parsed[name]
        assert fam.help == doc
        got = [(s.labels, s.value) for s in fam.samples]
        want = [(dict(zip(keys, lv, strict=True)), v) for lv, v in rows]
        assert len(got) == len(want)
        for (gl, gv), (wl, wv) in zip(got, want, strict=True):
            assert gl == wl and _same_value(gv, wv)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expositions())
def test_roundtrip_openmetrics(fams):
    """Same through OpenMetrics 1.0 (# EOF, counters as <name>_total), against the OpenMetrics parser."""
    reg = CollectorRegistry()
    reg.register(_Fixed(fams))
    text = om_generate_latest(reg).decode()
    ours = parse(text, openmetrics=True)
    theirs = list(om_client_parse(text))
    assert [(f.name, f.type, f.help) for f in ours] == [(f.name, f.type, f.documentation) for f in theirs]
    for a, b in zip(ours, theirs, strict=True):
        assert [(s.name, s.labels) for s in a.samples] == [(s.name, s.labels) for s in b.samples]
        assert all(_same_value(x.value, y.value) for x, y in zip(a.samples, b.samples, strict=True))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    """Garbage gives a result or a ParseError naming a line, nothing else."""
    for om in (False, True):
        try:
            parse(text, openmetrics=om)
        except ParseError as e:
            assert str(e).startswith("line ")
