"""Synthetic histories with pod / namespace / HPC-job owners, loaded into Prometheus with promtool.

What `aiinfra exporter --kubernetes` would have exported: per GPU or MIG instance, the busy ratio
(DCGM_FI_PROF_GR_ENGINE_ACTIVE, and DCGM_FI_DEV_GPU_UTIL on whole GPUs), framebuffer used/free
(MiB) and the energy counter (mJ); each series carries the owner labels (`pod`, `namespace`,
`container`, `vgpu`, `hpc_job`) of whoever held the device at that time, so a change of owner
starts a new series, as it does in a real scrape. Used by the chargeback tests and benchmark,
where the exact GPU-hours, kWh and dollars are known in advance.
"""

from __future__ import annotations

import hashlib
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aiinfra.errors import AiinfraError
from aiinfra.fleet.backfill import promtool, write_families

MODEL = "NVIDIA H100 80GB HBM3"
FB_TOTAL_MIB = 81559


@dataclass(frozen=True)
class Holder:
    """An owner of a device from hour `start_h` to `end_h` (relative to the window start)."""

    start_h: float
    end_h: float
    namespace: str = ""
    pod: str = ""
    container: str = "main"
    vgpu: str = ""
    job: str = ""

    def labels(self, prefix: str = "") -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if self.pod:
            out += [(f"{prefix}container", self.container), (f"{prefix}namespace", self.namespace), (f"{prefix}pod", self.pod)]
        if self.job:
            out.append(("hpc_job", self.job))
        if self.vgpu:
            out.append(("vgpu", self.vgpu))
        return out


@dataclass
class Device:
    host: int
    gpu: int
    busy: float  # constant busy ratio (the tests know the answer exactly)
    fb_mib: float = 0.0
    power_w: float = 100.0
    profile: str = ""  # MIG profile, e.g. 3g.40gb
    gi: int | None = None
    holders: list[Holder] = field(default_factory=list)

    def uuid(self, seed: int) -> str:
        d = hashlib.sha256(f"{seed}/{self.host}/{self.gpu}".encode()).hexdigest()
        return f"GPU-{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"


def _segments(dev: Device, hours: np.ndarray) -> list[tuple[np.ndarray, list[Holder]]]:
    """Masks over time with the set of holders active in each (a shared device has several at once)."""
    keys = [tuple(i for i, h in enumerate(dev.holders) if h.start_h <= t < h.end_h) for t in hours]
    out: dict[tuple, np.ndarray] = {}
    for n, k in enumerate(keys):
        out.setdefault(k, np.zeros(len(hours), bool))[n] = True
    return [(mask, [dev.holders[i] for i in k]) for k, mask in out.items()]


def write_openmetrics(devices: list[Device], end: float, hours: float, step: float, path: Path,
                      seed: int = 1, pod_prefix: str = "") -> int:
    n = int(round(hours * 3600 / step))
    times = end - step * np.arange(n - 1, -1, -1, dtype=np.float64)
    rel_h = (times - times[0]) / 3600.0
    ts = [f"{t:.0f}" for t in times.tolist()]
    fams: dict[str, list[str]] = {}
    count = 0
    for dev in devices:
        uuid = dev.uuid(seed)
        base = [("gpu", str(dev.gpu)), ("UUID", uuid), ("device", f"nvidia{dev.gpu}"), ("modelName", MODEL)]
        if dev.gi is not None:
            base += [("GPU_I_PROFILE", dev.profile), ("GPU_I_ID", str(dev.gi))]
        base += [("Hostname", f"gpu-node-{dev.host:04d}")]
        scrape = [("instance", f"gpu-node-{dev.host:04d}:9400"), ("job", "dcgm-exporter")]
        if pod_prefix == "exported_":  # honorLabels: false — the target's own pod label sits on every series
            scrape.append(("pod", f"dcgm-exporter-{dev.host:04d}"))
        energy = (3.6e9 + dev.power_w * (times - times[0])) * 1000.0  # mJ since driver load
        values = {
            "DCGM_FI_PROF_GR_ENGINE_ACTIVE": [f"{dev.busy:.4f}"] * n,
            "DCGM_FI_DEV_FB_USED": [f"{dev.fb_mib:.0f}"] * n,
            "DCGM_FI_DEV_FB_FREE": [f"{FB_TOTAL_MIB - dev.fb_mib:.0f}"] * n,
            "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": [f"{v:.0f}" for v in energy.tolist()],
        }
        if dev.gi is None:
            values["DCGM_FI_DEV_GPU_UTIL"] = [f"{round(dev.busy * 100):d}"] * n
        for mask, holders in _segments(dev, rel_h):
            idx = np.nonzero(mask)[0].tolist()
            for holder in holders or [None]:
                labels = base + (holder.labels(pod_prefix) if holder else []) + scrape
                lab = ",".join(f'{k}="{v}"' for k, v in labels)
                for name, vals in values.items():
                    fams.setdefault(name, []).append("".join(f"{name}{{{lab}}} {vals[i]} {ts[i]}\n" for i in idx))
                    count += len(idx)
    write_families(path, fams)
    return count


def load(devices: list[Device], end: float, hours: float, step: float, data_dir: Path, seed: int = 1, pod_prefix: str = "") -> int:
    """Write the history and turn it into TSDB blocks under `data_dir`; return the number of samples."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=data_dir.parent) as tmp:
        om = Path(tmp) / "attributed.om"
        n = write_openmetrics(devices, end, hours, step, om, seed, pod_prefix)
        proc = subprocess.run([promtool(), "tsdb", "create-blocks-from", "openmetrics", str(om), str(data_dir)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise AiinfraError(f"promtool could not load the history: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
    return n


def random_fleet(gpus: int, hours: float, seed: int = 1) -> list[Device]:
    """A fleet for the benchmark: 8 GPUs a host, owners from 12 namespaces, some idle holders,
    some shared GPUs, some unowned; every 20th host in MIG (two 3g instances a GPU)."""
    rng = np.random.default_rng(seed)
    out: list[Device] = []
    for h in range(max(1, gpus // 8)):
        for g in range(8):
            kind = rng.choice(["train", "serve", "idle_held", "free", "shared", "job"], p=[0.4, 0.2, 0.1, 0.15, 0.05, 0.1])
            ns = f"team-{int(rng.integers(12)):02d}"
            busy = {"train": 0.9, "serve": 0.5, "idle_held": 0.0, "free": 0.0, "shared": 0.4, "job": 0.8}[kind]
            fb = {"idle_held": 8192.0, "free": 0.0}.get(kind, 60000.0)
            if h % 20 == 19:
                for gi in (1, 2):
                    hold = [Holder(0, hours, ns, f"mig-{h}-{g}-{gi}")] if kind != "free" else []
                    out.append(Device(h, g, busy, fb / 2, 350.0, "3g.40gb", gi, hold))
                continue
            if kind == "shared":
                hold = [Holder(0, hours, ns, f"share-{h}-{g}-{k}", vgpu=str(k)) for k in (1, 2)]
            elif kind == "job":
                hold = [Holder(0, hours, job=f"{10000 + h}")]
            elif kind == "free":
                hold = []
            else:
                cut = float(rng.uniform(0, hours))
                hold = [Holder(0, cut, ns, f"{kind}-{h}-{g}-a"), Holder(cut, hours, ns, f"{kind}-{h}-{g}-b")]
            out.append(Device(h, g, busy, fb, 100 + 600 * busy, holders=hold))
    return out
