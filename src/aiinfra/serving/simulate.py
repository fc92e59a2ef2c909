"""A discrete-event simulation of one replica under continuous batching, to check the analytical queue.

The engine loop follows vLLM's V1 scheduler in outline: every step, each running sequence decodes one
token; waiting requests are admitted first-come first-served while a slot (max batch, KV) is free; the
step's remaining token budget (max_num_batched_tokens − decodes) goes to prefill chunks of admitted
requests in order. A request's first token comes at the end of the step that finishes its prefill.
Step time = the decode-step roofline for the running batch + the prefill tokens at the per-token prefill
cost of the configuration (the same step-time model the search uses).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from aiinfra.serving.search import Config, decode_step


@dataclass
class SimResult:
    ttft: np.ndarray
    tpot: np.ndarray
    completed: int

    def percentile(self, what: str, q: float) -> float:
        arr = self.ttft if what == "ttft" else self.tpot
        return float(np.quantile(arr, q)) if arr.size else float("nan")


def simulate(cfg: Config, *, rate: float, prompts: np.ndarray, outputs: np.ndarray, slots: int,
             chunk: int = 8192, seed: int = 0, warmup: float = 0.1, arrivals: np.ndarray | None = None) -> SimResult:
    """Serve len(prompts) arrivals on one replica (Poisson at `rate` req/s unless `arrivals` are given, in
    seconds); TTFT and TPOT per request."""
    rng = np.random.default_rng(seed)
    n = len(prompts)
    if arrivals is None:
        arrivals = np.cumsum(rng.exponential(1.0 / rate, n))
    else:
        arrivals = np.sort(np.asarray(arrivals, dtype=float))
    per_token_pf = cfg.pf_mean / cfg.pf_mean_prompt
    # the decode step for every batch size the replica can run, computed once (the same decode_step the search uses)
    step_of = np.asarray(decode_step(cfg.dec, np.arange(slots + 1, dtype=float)), dtype=float)
    waiting: deque[int] = deque()
    prefilling: list[int] = []  # admitted, prefill not finished (FIFO)
    left_pf = prompts.astype(float).copy()
    left_out = outputs.astype(float).copy()
    running: set[int] = set()
    first = np.full(n, np.nan)
    done = np.full(n, np.nan)
    now, nxt = 0.0, 0
    while nxt < n or waiting or prefilling or running:
        while nxt < n and arrivals[nxt] <= now:
            waiting.append(nxt)
            nxt += 1
        if not (waiting or prefilling or running):
            now = arrivals[nxt]
            continue
        while waiting and len(running) + len(prefilling) < slots:
            prefilling.append(waiting.popleft())
        budget = chunk - len(running)
        pf_tokens = 0.0
        finished_pf = []
        for r in prefilling:
            if budget <= 0:
                break
            take = min(budget, left_pf[r])
            left_pf[r] -= take
            budget -= take
            pf_tokens += take
            if left_pf[r] <= 0:
                finished_pf.append(r)
        t_step = (float(step_of[len(running)]) if running else 0.0) + pf_tokens * per_token_pf
        now += t_step
        for r in list(running):
            left_out[r] -= 1
            if left_out[r] <= 0:
                running.discard(r)
                done[r] = now
        for r in finished_pf:
            prefilling.remove(r)
            first[r] = now
            left_out[r] -= 1  # the prefill step emits the first token
            if left_out[r] <= 0:
                done[r] = now
            else:
                running.add(r)
    keep = np.arange(n) >= int(warmup * n)
    ttft = (first - arrivals)[keep]
    multi = keep & (outputs > 1)
    tpot = ((done - first) / np.maximum(outputs - 1, 1))[multi]
    return SimResult(ttft, tpot, int(np.sum(~np.isnan(done))))
