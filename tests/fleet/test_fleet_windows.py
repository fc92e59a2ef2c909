"""GPU-hours over a window, against a real Prometheus 2.x holding a backfilled history whose answers are
known: `analyze` charges a series only the steps it reported, and `chargeback` counts the steps of
(end - range, end], so an hour held is 1.0 GPU-hour and consecutive windows add up.

The history (15 s samples, ending at E; 2 h of data, E - 2 h … E):
- node-a/gpu0 pod research/train-1, busy 0.9, the whole 2 h;
- node-a/gpu1 pod ds/notebook-1, busy 0, 20,000 MiB: idle but held;
- node-a/gpu2 no pod, busy 0, 30,000 MiB held: stranded;
- node-a/gpu3 no pod, busy 0, no memory: idle;
- node-a/gpu4 pod research/mover (busy 0.5) until E - 30 min, then no pod and idle;
- node-a/gpu5 no pod and idle until E - 30 min, then pod research/mover (busy 0.5);
- node-a/gpu6 pod research/late, busy 0, joins at E - 30 min;
- node-b/gpu0 no pod, busy 0, no memory, joins at E - 30 min;
- node-c/gpu0 an A100 in MIG: 3g.40gb pod serving/mig-a busy 0.6, 1g.10gb pod serving/mig-b busy 0.

Backfilled data has no staleness markers, so a series that ends is still read for Prometheus' 5-minute
lookback (a live scrape ends it at once); the expectations below say where that applies.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import defaultdict

import pytest

from aiinfra.fleet.backfill import LocalPrometheus, promtool
from tests.conftest import assert_one_line_error

pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="prometheus/promtool (Debian package prometheus) not installed")
S = 15
H100, A100 = "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB"
STEP_H = S / 3600.0


def _history(end: int) -> str:
    a, half = end - 7200, end - 1800
    series: dict[tuple, list[tuple[int, float]]] = defaultdict(list)

    def gpu(host, g, model, t0, t1, busy, fb_mib, fb_total=81559, **extra):
        labels = dict(gpu=str(g), UUID=f"GPU-{host}-{g}", Hostname=host, modelName=model, device=f"nvidia{g}",
                      instance=f"{host}:9400", job="dcgm", **extra)
        key = tuple(sorted(labels.items()))
        for t in range(t0, t1 + 1, S):
            series[("DCGM_FI_PROF_GR_ENGINE_ACTIVE", key)].append((t, busy))
            if "GPU_I_ID" not in labels:
                series[("DCGM_FI_DEV_GPU_UTIL", key)].append((t, round(busy * 100)))
            series[("DCGM_FI_DEV_FB_USED", key)].append((t, fb_mib))
            series[("DCGM_FI_DEV_FB_FREE", key)].append((t, fb_total - fb_mib))
            series[("DCGM_FI_DEV_GPU_TEMP", key)].append((t, 40))

    def own(ns, pod):
        return dict(namespace=ns, pod=pod, container="main")

    gpu("node-a", 0, H100, a, end, 0.9, 60000, **own("research", "train-1"))
    gpu("node-a", 1, H100, a, end, 0.0, 20000, **own("ds", "notebook-1"))
    gpu("node-a", 2, H100, a, end, 0.0, 30000)
    gpu("node-a", 3, H100, a, end, 0.0, 0)
    gpu("node-a", 4, H100, a, half - S, 0.5, 40000, **own("research", "mover"))
    gpu("node-a", 4, H100, half, end, 0.0, 0)
    gpu("node-a", 5, H100, a, half - S, 0.0, 0)
    gpu("node-a", 5, H100, half, end, 0.5, 40000, **own("research", "mover"))
    gpu("node-a", 6, H100, half, end, 0.0, 0, **own("research", "late"))
    gpu("node-b", 0, H100, half, end, 0.0, 0)
    for gi, prof, busy, pod in ((1, "3g.40gb", 0.6, "mig-a"), (9, "1g.10gb", 0.0, "mig-b")):
        gpu("node-c", 0, A100, a, end, busy, 5000, fb_total=40000, GPU_I_ID=str(gi), GPU_I_PROFILE=prof, **own("serving", pod))
    out, by_metric = [], defaultdict(list)
    for (m, key), pts in series.items():
        by_metric[m].append((key, pts))
    for m, lst in by_metric.items():
        out.append(f"# TYPE {m} gauge")
        for key, pts in lst:
            lab = ",".join(f'{k}="{v}"' for k, v in key)
            out += [f"{m}{{{lab}}} {v} {t}" for t, v in pts]
    return "\n".join(out) + "\n# EOF\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    root = tmp_path_factory.mktemp("windows")
    end = int(time.time() // 3600) * 3600 - 3600
    (root / "h.om").write_text(_history(end))
    subprocess.run([promtool(), "tsdb", "create-blocks-from", "openmetrics", str(root / "h.om"), str(root / "data")],
                   check=True, capture_output=True)
    with LocalPrometheus(root / "run", data_dir=root / "data") as url:
        yield url, end


@pytest.mark.parametrize("cmd", ["analyze", "chargeback"])
@pytest.mark.parametrize("end,words", [("nan", "finite"), ("inf", "finite"), ("-inf", "finite"), ("-5", "since 1970"),
                                       ("1e300", "year 9999"), ("1796673600000", "milliseconds")])
def test_an_end_that_is_no_unix_time_is_refused(cli, prom, cmd, end, words):
    url, _ = prom
    r = cli(cmd, "-p", url, "-r", "1h", f"--end={end}", "-f", "json")
    assert_one_line_error(r, "--end", words)


@pytest.mark.parametrize("held", ["-5", "nan", "inf"])
def test_chargeback_held_mib_must_be_a_finite_amount(cli, prom, held):
    url, end = prom
    r = cli("chargeback", "-p", url, "-r", "1h", "--end", str(end), f"--held-mib={held}")
    assert_one_line_error(r, "--held-mib")
