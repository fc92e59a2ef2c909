"""What is to be served: a request rate with prompt/output length distributions, or a trace of arrivals,
and the latency targets (TTFT and TPOT at p50/p90/p99)."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aiinfra.errors import AiinfraError, SpecError

SAMPLES = 4000
PERCENTILES = {"p50": 0.50, "p90": 0.90, "p99": 0.99}


class TraceError(AiinfraError):
    """A trace file that is not a readable list of arrivals with lengths."""


@dataclass(frozen=True)
class Lengths:
    """Token lengths: a fixed value, or a lognormal of given mean and coefficient of variation."""

    mean: float
    cv: float = 0.0
    samples: np.ndarray | None = None  # empirical (from a trace)

    def draw(self, n: int = SAMPLES, seed: int = 0) -> np.ndarray:
        if self.samples is not None:
            rng = np.random.default_rng(seed)
            return rng.choice(self.samples, size=n)
        if self.cv <= 0:
            return np.full(n, float(self.mean))
        sigma = math.sqrt(math.log1p(self.cv**2))
        mu = math.log(self.mean) - sigma**2 / 2
        return np.maximum(1.0, np.round(np.random.default_rng(seed).lognormal(mu, sigma, n)))

    def describe(self) -> str:
        if self.samples is not None:
            return f"trace (mean {self.mean:,.0f})"
        return f"{self.mean:,.0f}" + (f" (lognormal, cv {self.cv:g})" if self.cv else " (fixed)")


def parse_lengths(text: str, what: str) -> Lengths:
    """'2048' (fixed) or '2048:0.5' (lognormal with mean 2048 and coefficient of variation 0.5)."""
    mean_s, _, cv_s = str(text).partition(":")
    try:
        mean, cv = float(mean_s), float(cv_s) if cv_s else 0.0
    except ValueError:
        raise SpecError(f"--{what} '{text}' must be tokens, or mean:cv such as 2048:0.5") from None
    if not mean >= 1 or not 0 <= cv <= 10:
        raise SpecError(f"--{what} needs a mean of at least 1 token and a cv between 0 and 10, got '{text}'")
    return Lengths(mean, cv)


@dataclass(frozen=True)
class Targets:
    ttft_s: float
    tpot_s: float
    percentile: str = "p99"

    @property
    def q(self) -> float:
        return PERCENTILES[self.percentile]


def parse_targets(ttft_ms: float, tpot_ms: float, percentile: str) -> Targets:
    if percentile not in PERCENTILES:
        raise SpecError(f"--percentile must be one of {', '.join(PERCENTILES)}, got '{percentile}'")
    if not (0 < ttft_ms <= MAX_TARGET_MS and 0 < tpot_ms <= MAX_TARGET_MS):  # also false for nan and inf
        raise SpecError(f"TTFT and TPOT targets must be positive milliseconds, at most {MAX_TARGET_MS:,.0f} "
                        f"(one hour), got {ttft_ms:g} and {tpot_ms:g}")
    return Targets(ttft_ms / 1e3, tpot_ms / 1e3, percentile)


# The most replicas serve_plan searches (--max-replicas), and the request rate it takes: that many replicas at
# ~1,000 requests/s each
REPLICAS_BOUND = 1024
MAX_RATE = 1e6
MIN_RATE = 1e-5  # about one request a day; below it every time and cost per token runs off to infinity
MAX_TARGET_MS = 3.6e6  # a latency target of an hour is no target


@dataclass(frozen=True)
class Workload:
    rate: float  # requests per second
    prompt: Lengths
    output: Lengths
    source: str = "flags"
    arrivals: np.ndarray | None = None  # seconds, from a trace

    def __post_init__(self) -> None:
        if not self.rate >= MIN_RATE or not math.isfinite(self.rate):
            raise SpecError(f"request rate must be at least {MIN_RATE:g} requests per second (one a day), got {self.rate:g}")
        if self.rate > MAX_RATE:
            raise SpecError(f"request rate {self.rate:g}/s is beyond {MAX_RATE:g}/s, more than any deployment searched "
                            f"here (at most {REPLICAS_BOUND:,} replicas) serves; split the traffic")

    def describe(self) -> str:
        return (f"{self.rate:g} req/s, prompt {self.prompt.describe()}, output {self.output.describe()}"
                + (f" from {self.source}" if self.source != "flags" else ""))


def read_trace(path_str: str) -> Workload:
    """A CSV (header row) or JSONL trace with arrival time in seconds (`arrival_s` or `timestamp`) and
    `prompt_tokens` / `output_tokens` per request."""
    path = Path(path_str)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise TraceError(f"cannot read trace {path}: {e.strerror or e}") from None
    except UnicodeDecodeError:
        raise TraceError(f"trace {path} is not UTF-8 text (CSV or JSONL)") from None
    rows: list[dict] = []
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        for i, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise TraceError(f"trace {path} line {i} is not a JSON object") from None
            if not isinstance(row, dict):
                raise TraceError(f"trace {path} line {i} is not a JSON object")
            rows.append(row)
    else:
        rows = list(csv.DictReader(io.StringIO(text)))
    if len(rows) < 2:
        raise TraceError(f"trace {path} needs at least two requests (arrival_s, prompt_tokens, output_tokens)")
    t, p, o = [], [], []
    for i, r in enumerate(rows, 1):
        try:
            t.append(float(r.get("arrival_s", r.get("timestamp"))))
            p.append(float(r["prompt_tokens"]))
            o.append(float(r["output_tokens"]))
        except (KeyError, TypeError, ValueError):
            raise TraceError(f"trace {path} request {i} needs numeric arrival_s (or timestamp), prompt_tokens and "
                             "output_tokens") from None
    t_a, p_a, o_a = np.array(t), np.array(p), np.array(o)
    if not (np.all(np.isfinite(t_a)) and np.all(p_a >= 1) and np.all(o_a >= 1)):
        raise TraceError(f"trace {path}: lengths must be at least 1 token and times finite")
    order = np.argsort(t_a, kind="stable")
    t_a, p_a, o_a = t_a[order], p_a[order], o_a[order]
    span = t_a[-1] - t_a[0]
    if span <= 0:
        raise TraceError(f"trace {path}: arrivals must span a positive time")
    rate = (len(t_a) - 1) / span
    return Workload(rate, Lengths(float(p_a.mean()), samples=p_a), Lengths(float(o_a.mean()), samples=o_a),
                    source=str(path), arrivals=t_a - t_a[0])


def parse_gpu_prices(items: list[str]) -> tuple[dict, dict]:
    """'h100-sxm=2.5' (USD per GPU-hour) → {key: (GpuSpec, price)}."""
    from aiinfra.catalog.gpus import gpu as lookup_gpu

    out, sources = {}, {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SpecError(f"--gpu '{item}' needs its price: name=USD per GPU-hour, e.g. h100-sxm=2.5")
        try:
            price = float(value)
        except ValueError:
            raise SpecError(f"--gpu '{item}': the price must be USD per GPU-hour, e.g. h100-sxm=2.5") from None
        if not (price > 0 and math.isfinite(price)):
            raise SpecError(f"--gpu '{item}': the price must be a positive, finite USD per GPU-hour")
        g = lookup_gpu(name.strip())
        if g.key in out:  # the last price would silently win
            raise SpecError(f"--gpu names {g.key} twice (={out[g.key][1]:g} and ={price:g}); give each GPU one price")
        out[g.key] = (g, price)
        sources[g.key] = "your --gpu flag"
    return out, sources
