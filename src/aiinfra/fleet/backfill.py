"""Long fleet histories for Prometheus, built in seconds: synthetic dcgm-exporter series → OpenMetrics → TSDB blocks.

Scraping a simulated exporter for 24 h would take 24 h. Instead this module writes the series a
dcgm-exporter fleet *would* have produced (same family names, labels and units, §2–§3 of the
telemetry reference) as OpenMetrics with timestamps, and loads them with
`promtool tsdb create-blocks-from openmetrics`. Prometheus then serves them like scraped data.

- Workloads per GPU: idle, training, inference (diurnal), stranded (pod or memory held, no work),
  leak (framebuffer rising towards full). Seeded, so a history is reproducible.
- Faults at given hours: XID codes, uncorrectable ECC, row-remap failure, thermal and power throttling,
  and `lost`: the GPU falls off the bus (its last sample carries XID 79) and its series stop.
- MIG hosts emit GPU-instance entities only (device selector `f`): device-wide fields repeat per
  instance with the parent's value, GPU_UTIL is absent and PROF engine activity is present.
- Label variants: `Hostname` or `hostname`; pod labels plain or `exported_` (honorLabels: false).

Every family is declared `gauge` in the OpenMetrics file: OpenMetrics would rename counters to
`<name>_total`, and PromQL's increase()/rate() do not look at the declared type anyway.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aiinfra.errors import AiinfraError
from aiinfra.fleet.promql import NVML_NAMES

WORKLOADS = ("idle", "training", "inference", "stranded", "leak")
FAULTS = ("xid", "ecc_dbe", "row_remap_failure", "thermal", "power", "lost")

_DEFAULT_FB_MIB = {"h100-sxm": 81559, "h200-sxm": 143771, "a100-sxm-80gb": 81920, "l40s": 46068}


@dataclass(frozen=True)
class Fault:
    """One injected fault on GPU `gpu` of host index `host`, active from hour `at_h` (for `hours`)."""

    kind: str
    host: int
    gpu: int
    at_h: float
    hours: float = 1.0
    code: int = 0  # XID code for kind="xid"

    def __post_init__(self) -> None:
        if self.kind not in FAULTS:
            raise AiinfraError(f"unknown fault '{self.kind}'; known: {', '.join(FAULTS)}")


@dataclass
class FleetHistory:
    """What to synthesise. Times are in seconds; `end` defaults to now (rounded down to `step`)."""

    hosts: int = 4
    gpus_per_host: int = 8
    model: str = "h100-sxm"
    hours: float = 24.0
    step: float = 60.0
    seed: int = 1
    end: float | None = None
    workloads: dict[tuple[int, int], str] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    mig_hosts: tuple[int, ...] = ()  # hosts whose GPUs are split into two 3g instances each
    hostname_label: str = "Hostname"
    pod_label: str = "pod"  # "exported_pod" mimics a ServiceMonitor with honorLabels: false
    job: str = "dcgm-exporter"
    fb_total_mib: int | None = None
    prof: bool = True  # emit DCGM_FI_PROF_GR_ENGINE_ACTIVE (datacenter GPUs); False mimics GeForce/no-DCP nodes
    gpu_util_name: str = "DCGM_FI_DEV_GPU_UTIL"  # DCGM_FI_DEV_GPU_UTIL_RATIO mimics a DCGM-4.6 name carrying 0-100

    def __post_init__(self) -> None:
        if self.hosts < 1 or self.gpus_per_host < 1 or self.hours <= 0 or self.step <= 0:
            raise AiinfraError("a fleet history needs hosts ≥ 1, gpus_per_host ≥ 1, hours > 0 and step > 0")
        if self.pod_label not in ("pod", "exported_pod"):
            raise AiinfraError("pod_label must be 'pod' or 'exported_pod'")
        if self.end is None:
            import time

            self.end = float(int(time.time() // self.step) * self.step)
        for (h, g), w in self.workloads.items():
            if w not in WORKLOADS:
                raise AiinfraError(f"unknown workload '{w}' for GPU {h}/{g}; known: {', '.join(WORKLOADS)}")

    @property
    def times(self) -> np.ndarray:
        n = int(round(self.hours * 3600 / self.step))
        return self.end - self.step * np.arange(n - 1, -1, -1, dtype=np.float64)

    @property
    def start(self) -> float:
        return float(self.times[0])

    def hostname(self, h: int) -> str:
        return f"gpu-node-{h:04d}"

    def uuid(self, h: int, g: int) -> str:
        d = hashlib.sha256(f"{self.seed}/{h}/{g}".encode()).hexdigest()
        return f"GPU-{d[:8]}-{d[8:12]}-{d[12:16]}-{d[16:20]}-{d[20:32]}"

    def workload(self, h: int, g: int) -> str:
        if (h, g) in self.workloads:
            return self.workloads[(h, g)]
        rng = np.random.default_rng([self.seed, h, g])
        return str(rng.choice(WORKLOADS, p=[0.15, 0.45, 0.25, 0.1, 0.05]))

    @property
    def gpu_count(self) -> int:
        return self.hosts * self.gpus_per_host


# -- generation ---------------------------------------------------------------------------------


@dataclass
class _Entity:
    labels: str  # rendered label pairs without braces
    mig: bool
    share: float  # fraction of the parent GPU's memory


def _entities(fh: FleetHistory, h: int, g: int, pod: str | None) -> list[_Entity]:
    model_name = (NVML_NAMES.get(fh.model) or [fh.model])[0]
    base = [
        ("gpu", str(g)),
        ("UUID", fh.uuid(h, g)),
        ("pci_bus_id", f"00000000:{0x18 + 0x10 * g:02X}:00.0"),
        ("device", f"nvidia{g}"),
        ("modelName", model_name),
    ]
    tail = [(fh.hostname_label, fh.hostname(h)), ("DCGM_FI_DRIVER_VERSION", "570.124.06")]
    kube: list[tuple[str, str]] = []
    if pod:
        pre = "exported_" if fh.pod_label == "exported_pod" else ""
        kube = [(f"{pre}container", "main"), (f"{pre}namespace", "ml"), (f"{pre}pod", pod)]
    if fh.pod_label == "exported_pod":
        kube.append(("pod", f"dcgm-exporter-{h:04d}"))  # the scrape target's own pod label
    scrape = [("instance", f"{fh.hostname(h)}:9400"), ("job", fh.job)]
    if h in fh.mig_hosts:
        out = []
        for gi in (1, 2):
            pairs = base + [("GPU_I_PROFILE", "3g.40gb"), ("GPU_I_ID", str(gi))] + tail
            pairs += kube if (pod and gi == 1) else ([("pod", f"dcgm-exporter-{h:04d}")] if fh.pod_label == "exported_pod" else [])
            out.append(_Entity(_render(pairs + scrape), True, 0.5))
        return out
    return [_Entity(_render(base + tail + kube + scrape), False, 1.0)]


def _render(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in pairs)


def _gpu_series(fh: FleetHistory, h: int, g: int) -> dict[str, np.ndarray]:
    """Per-GPU arrays over time: busy ratio, fb used (MiB), power (W), temp (C), and fault traces."""
    t = fh.times
    n = len(t)
    rng = np.random.default_rng([fh.seed, h, g, 7])
    total = fh.fb_total_mib or _DEFAULT_FB_MIB.get(fh.model, 81920)
    w = fh.workload(h, g)
    hours = (t - t[0]) / 3600.0
    noise = rng.normal(0, 0.02, n)
    if w == "idle":
        busy, fb = np.zeros(n), np.zeros(n)
    elif w == "training":
        busy, fb = np.clip(0.9 + noise, 0, 1), np.full(n, 0.85 * total)
    elif w == "inference":
        busy = np.clip(0.45 + 0.25 * np.sin(2 * np.pi * hours / 24.0) + noise, 0, 1)
        fb = np.full(n, 0.6 * total)
    elif w == "stranded":
        busy, fb = np.clip(0.005 + noise / 10, 0, 1), np.full(n, 0.5 * total)
    else:  # leak: steady work, memory climbing to 97 % by the end of the window
        busy = np.clip(0.6 + noise, 0, 1)
        fb = total * (0.3 + 0.67 * (t - t[0]) / max(t[-1] - t[0], 1.0))
    power = 70.0 + 600.0 * busy + rng.normal(0, 5, n)
    temp = 32.0 + 40.0 * busy + rng.normal(0, 1, n)
    xid = np.zeros(n)
    xid_events: dict[int, np.ndarray] = {}
    dbe = np.zeros(n)
    remap_fail = np.zeros(n)
    thermal_ns = np.zeros(n)
    power_ns = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for f in fh.faults:
        if (f.host, f.gpu) != (h, g):
            continue
        on = (hours >= f.at_h) & (hours < f.at_h + f.hours)
        after = hours >= f.at_h
        if f.kind == "xid":
            xid[after] = f.code  # sticky last code (§5.7)
            ev = xid_events.setdefault(f.code, np.zeros(n))
            ev[np.argmax(after)] += 1 if after.any() else 0
        elif f.kind == "ecc_dbe":
            dbe[after] = 1
        elif f.kind == "row_remap_failure":
            remap_fail[after] = 1
        elif f.kind == "thermal":
            temp[on] = 88.0
            thermal_ns += on * fh.step * 1e9 * 0.6  # throttled 60 % of each interval
        elif f.kind == "power":
            power[on] = 700.0
            power_ns += on * fh.step * 1e9 * 0.4
        elif f.kind == "lost":
            first = int(np.argmax(after)) if after.any() else n
            alive[first:] = False
            if first > 0:
                xid[first - 1:] = 79  # the driver logged XID 79 as the GPU went
                xid_events.setdefault(79, np.zeros(n))[first - 1] += 1
    return {
        "busy": busy,
        "fb": np.floor(fb),
        "total": np.full(n, float(total)),
        "power": power,
        "temp": np.round(temp),
        "xid": xid,
        "xid_events": xid_events,  # type: ignore[dict-item]
        "dbe": dbe,  # counter: 0 before the fault, 1 after
        "remap_fail": remap_fail,
        "thermal_ns": np.cumsum(thermal_ns),
        "power_ns": np.cumsum(power_ns),
        "alive": alive,
    }


def _fmt_int(a: np.ndarray) -> list[str]:
    return [str(v) for v in a.astype(np.int64).tolist()]


def _fmt_ratio(a: np.ndarray) -> list[str]:
    return [f"{v:.4f}" for v in a.tolist()]


def write_openmetrics(fh: FleetHistory, path: Path, hosts: range | None = None) -> int:
    """Write the hosts' series to `path` as OpenMetrics; return the number of samples."""
    hosts = hosts if hosts is not None else range(fh.hosts)
    ts = [f"{x:.0f}" for x in fh.times.tolist()]
    families: dict[str, list[str]] = {}
    n_samples = 0

    alive_n = len(ts)

    def emit(name: str, labels: str, values: list[str], times: list[str] | None = None) -> None:
        nonlocal n_samples
        if times is None:  # a lost GPU's series stop where it fell off the bus
            values, times = values[:alive_n], ts[:alive_n]
        prefix = f"{name}{{{labels}}} "
        families.setdefault(name, []).append("".join([f"{prefix}{v} {t}\n" for v, t in zip(values, times)]))
        n_samples += len(values)

    for h in hosts:
        for g in range(fh.gpus_per_host):
            s = _gpu_series(fh, h, g)
            alive_n = int(s["alive"].sum())  # type: ignore[union-attr]
            w = fh.workload(h, g)
            pod = f"job-{h}-{g}" if w in ("training", "inference", "stranded", "leak") else None
            if w == "stranded" and g % 2:
                pod = None  # stranded by memory held without a pod
            for e in _entities(fh, h, g, pod):
                share = e.share
                used = np.floor(s["fb"] * share)
                total = np.floor(s["total"] * share)
                reserved = np.full_like(total, 512.0 if not e.mig else 0.0)
                if fh.prof:
                    emit("DCGM_FI_PROF_GR_ENGINE_ACTIVE", e.labels, _fmt_ratio(s["busy"]))
                if not e.mig:
                    emit(fh.gpu_util_name, e.labels, _fmt_int(np.round(s["busy"] * 100)))
                emit("DCGM_FI_DEV_FB_USED", e.labels, _fmt_int(used))
                emit("DCGM_FI_DEV_FB_FREE", e.labels, _fmt_int(total - used - reserved))
                emit("DCGM_FI_DEV_FB_RESERVED", e.labels, _fmt_int(reserved))
                emit("DCGM_FI_DEV_POWER_USAGE", e.labels, [f"{v:.3f}" for v in s["power"].tolist()])
                emit("DCGM_FI_DEV_GPU_TEMP", e.labels, _fmt_int(s["temp"]))
                emit("DCGM_FI_DEV_XID_ERRORS", e.labels, _fmt_int(s["xid"]))
                emit("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", e.labels, _fmt_int(s["dbe"]))
                emit("DCGM_FI_DEV_ROW_REMAP_FAILURE", e.labels, _fmt_int(s["remap_fail"]))
                emit("DCGM_FI_DEV_THERMAL_VIOLATION", e.labels, _fmt_int(s["thermal_ns"]))
                emit("DCGM_FI_DEV_POWER_VIOLATION", e.labels, _fmt_int(s["power_ns"]))
                emit("DCGM_EXP_XID_ERRORS_COUNT", e.labels + ',window_size_in_ms="300000"', ["0"] * len(ts))
                for code, ev in s["xid_events"].items():  # type: ignore[union-attr]
                    window = max(1, int(round(300 / fh.step)))
                    counts = np.convolve(ev, np.ones(window))[: len(ev)]
                    idx = np.nonzero(counts)[0]
                    emit(
                        "DCGM_EXP_XID_ERRORS_COUNT",
                        e.labels + f',window_size_in_ms="300000",xid="{code}"',
                        _fmt_int(counts[idx]),
                        [ts[i] for i in idx],
                    )
    write_families(path, families)
    return n_samples


def write_families(path: Path, families: dict[str, list[str]]) -> None:
    """Gauge families (name → sample-line chunks) as one OpenMetrics file for promtool's backfill,
    written to a `.part` file and renamed so promtool never reads half a file."""
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "w") as out:
        for name, chunks in families.items():
            out.write(f"# TYPE {name} gauge\n")
            out.writelines(chunks)
        out.write("# EOF\n")
    tmp.replace(path)


# -- loading --------------------------------------------------------------------------------------


def promtool() -> str:
    exe = shutil.which("promtool")
    if not exe:
        raise AiinfraError("promtool is not installed; install the Debian package 'prometheus' (apt-get install -y prometheus)")
    return exe


def build_blocks(fh: FleetHistory, data_dir: Path, hosts_per_shard: int = 16, workers: int | None = None) -> int:
    """Write the history as TSDB blocks under `data_dir` (a Prometheus --storage.tsdb.path); return samples.

    Shards of hosts are generated and loaded in parallel. Their blocks overlap in time, which
    Prometheus ≥ 2.39 merges at query time (overlapping blocks are always allowed there).
    """
    exe = promtool()
    data_dir.mkdir(parents=True, exist_ok=True)
    shards = [range(a, min(a + hosts_per_shard, fh.hosts)) for a in range(0, fh.hosts, hosts_per_shard)]
    workers = workers or min(len(shards), os.cpu_count() or 2)
    jobs = [(fh, hosts, data_dir, exe) for hosts in shards]
    if workers <= 1:
        return sum(_load_shard(*j) for j in jobs)
    # Processes, not threads: writing the text is pure Python and would serialise on the GIL.
    with ProcessPoolExecutor(workers) as pool:
        return sum(pool.map(_load_shard, *zip(*jobs)))


def _load_shard(fh: FleetHistory, hosts: range, data_dir: Path, exe: str) -> int:
    with tempfile.TemporaryDirectory(dir=data_dir.parent) as tmp:
        om = Path(tmp) / "history.om"
        n = write_openmetrics(fh, om, hosts)
        proc = subprocess.run(
            [exe, "tsdb", "create-blocks-from", "openmetrics", str(om), str(data_dir)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise AiinfraError(f"promtool could not load the history: {last[0]}")
        return n


# -- a local Prometheus ------------------------------------------------------------------------


class LocalPrometheus:
    """A real `prometheus` process on a free 127.0.0.1 port, with a generated config and its own data dir.

    Used by the integration tests and the benchmark: `with LocalPrometheus(dir, targets=[...]) as url:`.
    Retention is set far out so backfilled blocks are never deleted as "too old".
    """

    def __init__(self, workdir: Path, targets: list[str] | None = None, scrape_interval: str = "1s",
                 data_dir: Path | None = None, job: str = "dcgm-exporter", rule_files: list[Path] | None = None,
                 ready_timeout: float = 60.0, extra_args: list[str] | None = None):
        self.workdir = Path(workdir)
        self.targets = targets or []
        self.scrape_interval = scrape_interval
        self.data_dir = Path(data_dir) if data_dir else self.workdir / "data"
        self.job = job
        self.rule_files = rule_files or []
        self.ready_timeout = ready_timeout
        self.extra_args = extra_args or []
        self.url = ""
        self._proc: subprocess.Popen | None = None
        self._log = None

    def config(self) -> str:
        import yaml

        doc = {
            "global": {"scrape_interval": self.scrape_interval, "evaluation_interval": self.scrape_interval},
            "scrape_configs": [{"job_name": self.job, "static_configs": [{"targets": self.targets}]}] if self.targets else [],
        }
        if self.rule_files:
            doc["rule_files"] = [str(p) for p in self.rule_files]
        return yaml.safe_dump(doc, sort_keys=False)

    def start(self) -> str:
        import time

        exe = shutil.which("prometheus")
        if not exe:
            raise AiinfraError("prometheus is not installed; install the Debian package 'prometheus'")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "prometheus.yml"
        cfg.write_text(self.config())
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(self.workdir / "prometheus.log", "w")
        self._proc = subprocess.Popen(
            [exe, f"--config.file={cfg}", f"--storage.tsdb.path={self.data_dir}", f"--web.listen-address=127.0.0.1:{port}",
             "--storage.tsdb.retention.time=3650d", "--log.level=warn", *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT,
        )
        from aiinfra.fleet.prom import Prometheus

        deadline = time.monotonic() + self.ready_timeout
        with Prometheus(self.url, timeout=2.0) as p:
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    tail = (self.workdir / "prometheus.log").read_text().strip().splitlines()[-1:] or ["no output"]
                    raise AiinfraError(f"prometheus exited with {self._proc.returncode}: {tail[0]}")
                if p.ready():
                    return self.url
                time.sleep(0.1)
        self.stop()
        raise AiinfraError(f"prometheus did not become ready within {self.ready_timeout:g} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        if self._log:
            self._log.close()
            self._log = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
