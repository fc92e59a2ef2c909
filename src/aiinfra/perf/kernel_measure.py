"""Measure GEMM and flash-attention throughput on this machine's GPU with PyTorch, in the measurement format
`perf.kernel_fit` reads (`kind: kernel-measurements`).

PyTorch is imported only here and only when a measurement runs: the rest of aiinfra never needs it. GEMMs are
`torch.matmul` in BF16 and `torch._scaled_mm` in FP8 (E4M3, per-tensor scales: the call torchao float8 makes);
attention is `F.scaled_dot_product_attention` pinned to one backend at a time (cuDNN, and the FlashAttention-2
kernels PyTorch ships). Each kernel is warmed up, then timed with CUDA events over enough calls to fill
`min_time_s`, and the median of `repeats` such timings is kept.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Callable
from typing import Any

from aiinfra.errors import AiinfraError

# Shapes (M, N, K) spread over four decades of time at peak (H100: 0.03–9,000 µs), so every knot of the size curve
# has points: squares, and shapes a transformer layer launches (M = tokens; N, K = hidden, TP-sharded and FFN sizes).
GEMM_SHAPES: tuple[tuple[int, int, int], ...] = (
    *((n, n, n) for n in (256, 384, 512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 16384)),
    *((m, n, k) for m in (1024, 4096, 16384) for n, k in ((1024, 4096), (4096, 4096), (14336, 4096), (4096, 14336),
                                                          (8192, 8192))),
)
ATTENTION_LENGTHS: tuple[int, ...] = (2048, 4096, 8192, 16384, 32768)
QUICK_GRID = {"shapes": GEMM_SHAPES[::3], "lengths": (4096, 16384)}  # --quick: a third of the shapes, two lengths
# The cudnn-frontend training benchmark's Llama 3.1 shape: 64 query heads of 128, 8 K/V heads; K and V are
# expanded to 64 heads before the timed call (GQA changes no FLOPs, and every backend takes the expanded form).
ATTENTION_SHAPE = {"heads": 64, "kv_heads": 64, "head_dim": 128}
ATTENTION_TOKENS = 32768  # batch = this / seq (at least 1): the same work per call at every length
# (causal, head dim of Q·K, of V) per route: causal and without a mask at 128, causal at 64 (kernels.yaml
# attention_*_d64: thinner heads, GPT-OSS's 64, do half the matmul work per score element), and causal at MLA's
# 192 / 128 (attention_*_d192, DeepSeek-V3's shape)
ATTENTION_CASES = ((True, 128, 128), (False, 128, 128), (True, 64, 64), (True, 192, 128))


def _torch():
    try:
        import torch
    except ImportError:
        raise AiinfraError("measuring kernels needs PyTorch with a CUDA GPU (pip install torch); to fit measurements "
                           "taken elsewhere, pass them with --from FILE") from None
    return torch


def _timer(torch, device: str, fn: Callable[[], Any], min_time_s: float, repeats: int) -> float:
    """Median seconds per call of fn (after warm-up), each timing spanning enough calls to last min_time_s."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    for _ in range(3):
        fn()
    sync()

    def elapsed(n: int) -> float:
        if device == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(n):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        import time

        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        return time.perf_counter() - t0

    one = max(elapsed(1), 1e-7)
    n = max(1, min(1000, int(min_time_s / one)))
    return statistics.median(elapsed(n) / n for _ in range(repeats))


def _gemm_fn(torch, device: str, dtype: str, m: int, n: int, k: int):
    if dtype == "bf16":
        a = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        b = torch.randn(k, n, device=device, dtype=torch.bfloat16)
        return lambda: torch.matmul(a, b)
    f8 = torch.float8_e4m3fn
    a = torch.randn(m, k, device=device).to(f8)
    b = torch.randn(n, k, device=device).to(f8).t()  # _scaled_mm wants the second operand column-major
    one = torch.tensor(1.0, device=device)
    return lambda: torch._scaled_mm(a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16)


def _attention_fns(torch, device: str, backend, seq: int, causal: bool, head_dim: int = ATTENTION_SHAPE["head_dim"],
                   head_dim_v: int | None = None):
    from torch.nn.attention import sdpa_kernel
    from torch.nn.functional import scaled_dot_product_attention as sdpa

    b = max(1, ATTENTION_TOKENS // seq)
    h, d, dv = ATTENTION_SHAPE["heads"], head_dim, head_dim_v or head_dim
    q, k = (torch.randn(b, h, seq, d, device=device, dtype=torch.bfloat16, requires_grad=True) for _ in range(2))
    v = torch.randn(b, h, seq, dv, device=device, dtype=torch.bfloat16, requires_grad=True)
    grad = torch.randn(b, h, seq, dv, device=device, dtype=torch.bfloat16)

    def fwd():
        with sdpa_kernel([backend]), torch.no_grad():
            return sdpa(q, k, v, is_causal=causal)

    def fwd_bwd():
        with sdpa_kernel([backend]):
            out = sdpa(q, k, v, is_causal=causal)
        q.grad = k.grad = v.grad = None
        out.backward(grad)

    return b, fwd, fwd_bwd


def measure(*, shapes=GEMM_SHAPES, lengths=ATTENTION_LENGTHS, dtypes=("bf16", "fp8"), routes=("cudnn", "fa2"),
            min_time_s: float = 0.02, repeats: int = 5, allow_cpu: bool = False,
            progress: Callable[[str], None] | None = None) -> dict:
    """Run the grid on the first CUDA GPU and return a `kernel-measurements` document. A kernel this GPU or this
    PyTorch build cannot run (FP8 before Ada/Hopper, cuDNN attention without cuDNN) is left out and named in
    `skipped`. `allow_cpu` runs the same code on the CPU (tests of the harness, not measurements of a GPU)."""
    torch = _torch()
    if torch.cuda.is_available():
        device = "cuda"
        name = torch.cuda.get_device_name(0)
    elif allow_cpu:
        device, name = "cpu", "CPU (harness test)"
    else:
        raise AiinfraError("measuring kernels needs a CUDA GPU and PyTorch found none (torch.cuda.is_available() is "
                           "False); to fit measurements taken elsewhere, pass them with --from FILE")
    from torch.nn.attention import SDPBackend

    backends = {"cudnn": SDPBackend.CUDNN_ATTENTION, "fa2": SDPBackend.FLASH_ATTENTION}
    say = progress or (lambda _msg: None)
    skipped: list[str] = []
    gemm: list[dict] = []
    for dtype in dtypes:
        for m, n, k in shapes:
            try:
                secs = _timer(torch, device, _gemm_fn(torch, device, dtype, m, n, k), min_time_s, repeats)
            except (RuntimeError, TypeError, AttributeError) as e:  # unsupported dtype/kernel on this GPU or build
                skipped.append(f"GEMM {dtype} {m}x{n}x{k}: {str(e).splitlines()[0][:120]}")
                continue
            rec = {"dtype": dtype, "m": m, "n": n, "k": k, "seconds": secs}
            if dtype == "fp8":
                rec["route"] = "scaled_mm"
            gemm.append(rec)
            say(f"GEMM {dtype} {m}x{n}x{k}: {2 * m * n * k / secs / 1e12:,.1f} TFLOP/s")
    attention: list[dict] = []
    for route in routes:
        for causal, d, dv in ATTENTION_CASES:
            for seq in lengths:
                what = f"attention {route} {seq} {'causal' if causal else 'no mask'}" + (
                    "" if d == ATTENTION_SHAPE["head_dim"] else f" d{d}" + (f"/{dv}" if dv != d else ""))
                try:
                    b, fwd, both = _attention_fns(torch, device, backends[route], seq, causal, d, dv)
                    t_f = _timer(torch, device, fwd, min_time_s, repeats)
                    t_fb = _timer(torch, device, both, min_time_s, repeats)
                except (RuntimeError, KeyError) as e:  # "No available kernel", out of memory, unknown route
                    skipped.append(f"{what}: {str(e).splitlines()[0][:120]}")
                    if device == "cuda":
                        torch.cuda.empty_cache()
                    continue
                if t_fb <= t_f:
                    skipped.append(f"{what}: forward+backward timed no longer than the forward")
                    continue
                attention.append({"route": route, "causal": causal, "seq": seq, "batch": b,
                                  **ATTENTION_SHAPE, "head_dim": d, **({"head_dim_v": dv} if dv != d else {}),
                                  "fwd_seconds": t_f, "bwd_seconds": t_fb - t_f})
                say(f"{what}: forward {t_f * 1e3:.3f} ms, backward {(t_fb - t_f) * 1e3:.3f} ms")
    software = {"torch": str(torch.__version__)}
    if torch.version.cuda:
        software["cuda"] = str(torch.version.cuda)
    if torch.backends.cudnn.is_available():
        software["cudnn"] = str(torch.backends.cudnn.version())
    doc = {"kind": "kernel-measurements", "device": name, "date": dt.date.today().isoformat(),
           "source": "aiinfra kernels (perf/kernel_measure.py): CUDA-event timings, median of "
                     f"{repeats}, each over ≥ {min_time_s * 1e3:g} ms of back-to-back calls",
           "software": software, "gemm": gemm, "attention": attention}
    return doc if not skipped else {**doc, "skipped": skipped}


def main(argv: list[str] | None = None) -> int:
    """`python -m aiinfra.perf.kernel_measure [--quick] > measurements.json`: the measurement alone, for a GPU host
    that has PyTorch but not aiinfra's other dependencies; fit it elsewhere with `aiinfra kernels --from FILE`."""
    import json
    import sys

    args = sys.argv[1:] if argv is None else argv
    if set(args) - {"--quick"}:
        print(f"usage: python -m aiinfra.perf.kernel_measure [--quick] (unknown: {' '.join(args)})", file=sys.stderr)
        return 2
    try:
        doc = measure(progress=lambda msg: print(msg, file=sys.stderr), **(QUICK_GRID if args else {}))
    except AiinfraError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    json.dump(doc, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
