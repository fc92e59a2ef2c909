"""Step time against published end-to-end results (catalog training_validation.yaml, plan.fidelity).

Bounds are the errors reached today, so a change that makes the model worse fails; where they are wider
than the issue's targets (≤3% A100, ≤7% H100/H200, no row beyond 15%) the report says so in numbers.
"""

from __future__ import annotations

import pytest

from aiinfra.plan import fidelity, validation

_CACHE: dict = {}


def _table(name: str) -> list[fidelity.Prediction]:
    if not _CACHE:
        for p in fidelity.predict_all():
            _CACHE.setdefault(p.table, []).append(p)
    return _CACHE[name]


def test_narayanan_2021_table1_a100():
    """Narayanan et al. 2021 (SC'21) Table 1, A100-80GB fp16, s = 2048, full recompute: 1.7B/32 GPUs 137, 3.6B/64
    138, 7.5B/128 142, 18.4B/256 135, 39.1B/512 138, 76.1B/1024 140, 145.6B/1536 148, 310.1B/1920 155,
    529.6B/2520 163, 1T/3072 163 TFLOP/s per GPU. The rows framework_efficiency was fitted on (median), so this
    holds the spread: mean |error| 2.43%, max 7.4% (18.4B, −7.4%) at 0.831, the median rule's fixed point (the median
    row exact); 3.04%, max 6.0%, at 0.848, one step of the rule from 1, which left the median row 1.8% fast (no
    sequence parallelism, as 2021 Megatron-LM; 3.0% and 7.8% while the rows ran with it). At 0.833, refitted once the
    loss was charged at the 2021 code's 52 B per logit element (stacks.yaml megatron-2021): mean 2.4%, max 7.3%."""
    errs = [abs(p.error) for p in _table("Narayanan 2021 Table 1")]
    assert len(errs) == 10 and sum(errs) / 10 <= 0.026 and max(errs) <= 0.08


def test_korthikanti_2022_table4_out_of_sample():
    """Korthikanti et al. 2022 Table 4: 22B on 8 A100 (TP8, micro-batch 4, s = 2048), forward + backward ms per layer
    (no optimizer step in a layer time): baseline 19.6, sequence parallelism 19.0, full recompute 27.2, selective
    recompute 20.9, selective + sequence 20.3. Never fitted on. Rows without SP replicate the LayerNorm/dropout/
    residual traffic on every TP rank; the paper's Megatron-LM hides the column-parallel backward collectives under
    their GEMMs (stacks.yaml megatron-2022): +1.5%, +1.2%, +1.4%, −0.0%, −0.3%, mean 0.9% (+4.1%, +3.7%, +3.9%, +2.6%,
    +2.2% before framework_efficiency refitted 0.824 → 0.848 once the Narayanan rows ran without sequence parallelism, as 2021 Megatron-LM did; with SP always on and the
    2021 stack the one baseline row was +3.8% and the five rows mean 4.1%). With the constant at the median rule's
    fixed point (0.831): +3.3%, +3.0%, +3.2%, +1.8%, +1.4%, mean 2.5%. With the loss at Megatron's 52 B per logit
    and the constant refitted (0.833): +3.2%, +2.9%, +3.0%, +1.7%, +1.3%, mean 2.4%."""
    errs = {p.key: p.error for p in _table("Korthikanti 2022 Table 4")}
    assert len(errs) == 5 and all(abs(e) <= 0.035 for e in errs.values())
    assert sum(abs(e) for e in errs.values()) / 5 <= 0.027


def test_llama3_table4_h100_bf16_out_of_sample():
    """Llama 3 paper (arXiv 2407.21783) Table 4, 405B on H100 BF16: 8,192 GPUs TP8·PP16·DP64 8K → 43% MFU;
    16,384 GPUs TP8·PP16·DP128 → 41%; 16,384 GPUs TP8·CP16·PP16·DP8 at 131,072 tokens → 38% (the same GPUs,
    splits and TFLOPs/GPU as P. Balaji's SC'24 slide). Meta's stack (stacks.yaml llama3-meta) overlaps FSDP and
    pipeline sends but names no TP overlap, so TP is blocking. The paper's pipeline takes one layer off the first
    and the last stage for the embedding and the loss, one model chunk each (126 + 2 slots = PP16 × v8); the search's
    best completion is that layout, without recompute (ZeRO-2 fits): +12.9%, +10.9%, −1.9%, mean 8.6%, which misses
    the ≤7% target. They were +2.9%, −0.6%, −9.4% while the model put a heavier stage under the LM head, which
    forced 12% recompute that nothing in the paper names; that agreement was an artefact. +15.6%, +13.5%, +0.5%
    (mean 9.9%) since framework_efficiency refitted 0.824 → 0.848 once the Narayanan rows ran without sequence
    parallelism, as 2021 Megatron-LM did; since Hopper got its own framework_efficiency (0.795, fitted on the ten dense H100/H200 rows, these among them; leave-one-source-out below): +9.6%, +7.8%, −4.9%, mean 7.5%, still over
    the ≤7% target; held out of the Hopper fit (refit 0.805 on the other three sources) 7.9%. With Hopper's constant at
    the median rule's fixed point (0.786): +8.6%, +6.8%, −5.9%, mean 7.1%; held out (refit 0.791) 7.3%. With attention
    at cuDNN's published kernel figures (kernels.yaml hopper, 0.651 / 0.547 of peak for 8k causal, was 0.62 / 0.48
    read off FlashAttention-3's plots) and Hopper refitted (0.788): +9.5%, +7.7%, −0.8%, mean 6.0%, inside the ≤7%
    target; held out (refit 0.800) 6.8%. With Transformer Engine's FP8 casts charged as it runs them (stacks.yaml
    fp8_casts: te) the FP8 rows of the Hopper fit run faster and the constant falls to 0.759: +6.1%, +4.5%, −3.9%, mean
    4.9%; held out (refit 0.770) 5.3%. With FP8 TP all-gathers at 1 B per element (stacks.yaml fp8_gather; Hopper
    0.742): +4.2%, +2.6%, −5.8%, mean 4.2%."""
    errs = [p.error for p in _table("Llama 3 (2024) Table 4, H100 BF16")]
    assert len(errs) == 3 and all(abs(e) <= 0.10 for e in errs)
    assert sum(abs(e) for e in errs) / 3 <= 0.065


def test_mlperf_training_h100_and_gb200_out_of_sample():
    """MLPerf Training closed division, NVIDIA's own submissions with their published configurations
    (mlcommons/training_results_v4.0 and _v5.0, read 2026-12-07; throughput from each log's MLLOG records: v4.0 block
    start/stop around the training steps, v5.0 the logged train_step_time, medians over the runs). v4.0 GPT-3 175B on
    DGX H100 FP8: 512 GPUs TP4·PP8·VP4 mb2 845.3 tokens/s/GPU, 10,752 and 11,616 GPUs TP4·PP6·VP8 mb1 556.1 and
    555.6. v5.0 Llama 3.1 405B on DGX H100 FP8, TP8·PP8·CP2·VP8 mb1: 512 GPUs 334.3, 2,048 324.0, 2,432 322.2, 2,560
    320.8, 8,192 296.6; on GB200 NVL72, TP4·PP8·CP2·VP8: 256 747.9, 512 737.7 (NVIDIA) and 743.6 (CoreWeave), 1,024
    727.2, 1,536 722.9, 2,048 715.2, 2,496 703.5. Never fitted on. The runs gather FP8 parameters (config_common.sh
    FP8_PARAMS=True: 1 B per parameter). Predicted at entry, with that gather charged at 2 B: GPT-3 −4.5%, +1.8%,
    +1.9% (mean 2.7%); 405B H100 +0.4% to +2.0% (mean 0.8%); GB200 +8.1% to +11.4%. Charging 1 B alone put the
    10,752-GPU GPT-3 rows at +11%; with the DP sync's NCCL ring latency per bucket as well (3.9 ms per collective on
    the 448-way rings, 20 a step), 2026-12-07: GPT-3 −4.1%, +1.7%, +2.0% (mean 2.6%); 405B H100 +0.6%, +1.4%, +1.5%,
    +1.4%, +3.7% (mean 1.7%); GB200 +7.5% to +10.9% (mean 8.9%, out of the issue's Hopper target; the GB200 clock fit
    is on Megatron-Bridge 25.11 rows)."""
    gpt3 = {p.key: p.error for p in _table("MLPerf Training v4.0 GPT-3 175B, NVIDIA Eos H100")}
    h100 = {p.key: p.error for p in _table("MLPerf Training v5.0 Llama 3.1 405B, NVIDIA Eos H100")}
    gb200 = {p.key: p.error for p in _table("MLPerf Training v5.0 Llama 3.1 405B, GB200 NVL72")}
    assert (len(gpt3), len(h100), len(gb200)) == (3, 5, 7)
    assert all(abs(e) <= 0.05 for e in gpt3.values()) and sum(map(abs, gpt3.values())) / 3 <= 0.03
    assert all(abs(e) <= 0.045 for e in h100.values()) and sum(map(abs, h100.values())) / 5 <= 0.025
    assert all(0.06 <= e <= 0.12 for e in gb200.values())
    # throughput falls with scale as published: fewer tokens/s/GPU at 8,192 GPUs than at 512
    preds = {p.key: p.predicted for p in _table("MLPerf Training v5.0 Llama 3.1 405B, NVIDIA Eos H100")}
    assert preds["mlperf50-405b-h100-8192"] < preds["mlperf50-405b-h100-512"]


def test_mlperf_training_v31_gpt3_an_older_release_runs_slower_than_predicted():
    """MLPerf Training v3.1 closed division (mlcommons/training_results_v3.1, read 2026-12-07): GPT-3 175B on H100 with
    NeMo 23.09, TP4·PP8, interleave 12 (conf/custom.yaml default), micro-batch 1, TP overlap, bf16 gradient sync, no
    FP8 parameters. NVIDIA Eos: 512 GPUs 739.9, 768 738.5, 4,096 629.2, 6,144 625.9, 8,192 624.3, 10,240 540.7, 10,752
    537.9 tokens/s/GPU; Azure ND H100 v5 on 10,752: 522.7. Never fitted on. At entry +7.9% to +13.2% on Eos, +16.5%
    on Azure (mean 11.5%), the error growing with the DP size; once the DP sync paid NCCL's ring latency per Megatron
    bucket (2026-12-07; 2.9 ms per collective on the 336-way rings): +7.8%, +7.9%, +8.4%, +7.9%, +7.4%, +3.7%, +3.9%,
    Azure +6.9% (mean 6.7%). What is left at 512 GPUs is the oldest NVIDIA stack here: v4.0's NeMo 24.04 ran 14% more
    tokens/s/GPU there on a layout the model puts within 1.5% of this one, which the model, with no release axis,
    cannot see. The drop with scale is the model's as well: 512 → 10,752 GPUs −27% published, −30% predicted."""
    rows = {p.key: p for p in _table("MLPerf Training v3.1 GPT-3 175B, H100 (NVIDIA Eos, Azure)")}
    assert len(rows) == 8 and all(0.03 <= p.error <= 0.09 for p in rows.values())
    assert sum(p.error for p in rows.values()) / 8 <= 0.07
    small, large = rows["mlperf31-gpt3-512"], rows["mlperf31-gpt3-10752"]
    assert 0.67 <= large.predicted / small.predicted <= 0.73 and 0.70 <= large.published / small.published <= 0.75


def test_mlperf_training_v30_out_of_sample_runs_fast_on_the_oldest_stack():
    """MLPerf Training v3.0 closed division (mlcommons/training_results_v3.0, read 2026-12-07), GPT-3 175B on H100 in
    the round that introduced it, NeMo 23.04, FP8 delayed scaling without FP8 parameters, TP4·PP8·VP12, micro-batch 1:
    NVIDIA on 512 and 768 GPUs 678.5 and 675.5 tokens/s/GPU, CoreWeave on 768, 1,536 and 3,584 GPUs 665.7, 646.1,
    590.6 (train_step_timing, median step and run). Never fitted on. The model runs every row 17.6-22.2% fast: the
    same 512-GPU layout ran 740 tokens/s/GPU on v3.1's NeMo 23.09 (+7.8% in the model) and v4.0's NeMo 24.04 ran 845
    on its own layout; the model has no release axis. It holds the shape across scale: 3,584 GPUs keep 87% of the
    512-GPU rate per GPU, the model 90%."""
    errs = {p.key: p.error for p in _table("MLPerf Training v3.0 GPT-3 175B, H100 (NVIDIA, CoreWeave)")}
    assert len(errs) == 5 and all(0.15 <= e <= 0.25 for e in errs.values())
    rows = {p.key: p for p in _table("MLPerf Training v3.0 GPT-3 175B, H100 (NVIDIA, CoreWeave)")}
    small, large = rows["mlperf30-gpt3-512"], rows["mlperf30-gpt3-coreweave-3584"]
    assert 0.85 <= large.published / small.published <= 0.89 and 0.88 <= large.predicted / small.predicted <= 0.92


def test_mlperf_training_v41_and_v51_out_of_sample():
    """MLPerf Training v4.1 and v5.1 closed division (mlcommons/training_results_v4.1 and _v5.1, read 2026-12-07; configs
    and logs as in the test above). v4.1 GPT-3 175B, NeMo 24.09, TP4·PP8·VP6 mb2, global batch 2,048: 256 H100 890.1
    and 512 H100 858.7 tokens/s/GPU (−7.7%, −5.7% at entry: the newer release runs faster than the model, which has no
    release axis), 64 B200 (preview) 1,807.7 (+9.0%). v5.1 Llama 3.1 405B, NVIDIA's NVFP4 runs (TP overlap off, no
    Hadamard transform or stochastic rounding): GB200 512 1,067.9 (+8.1%), GB300 512 at TP2 1,402.2 (+21.1%), GB200
    2,560 963.0 (+14.3%), 5,120 919.0 (+17.5%); University of Florida's DGX B200 FP8 runs, TP blocking: 256 666.7
    (+19.9%), 448 658.8 (+21.2%). Every Blackwell row runs fast. The 8B strong-scaling runs (one sequence per
    data-parallel rank, 0.09 to 0.15 s steps) show where the model stops: +16.9% / +18.3% on 72 GB200 / GB300, about
    double the published rate on 512 (+97%, +119%) at entry. With the DP sync's NCCL ring latency per bucket and the
    runs' FP8 parameter gather (FP8_PARAM_GATHER=True; the NVFP4 runs set it False), 2026-12-07: +11.3% / +12.2% on
    72, +68% / +64% on 512; the 405B rows move under a point, v4.1 H100 −7.5%, −5.2%. With B200's sustained clock
    fitted on Megatron-Bridge 25.11's two B200 rows (gpus.yaml b200, 0.834), both B200 tables held out: University of
    Florida +3.9%, +5.0%; the v4.1 preview −6.2%."""
    h100 = [p.error for p in _table("MLPerf Training v4.1 GPT-3 175B, NVIDIA Eos H100")]
    assert len(h100) == 2 and all(-0.085 <= e <= -0.05 for e in h100)
    fp4 = {p.key: p.error for p in _table("MLPerf Training v5.1 Llama 3.1 405B, GB200 and GB300 NVL72 NVFP4")}
    b200 = [p.error for p in _table("MLPerf Training v5.1 Llama 3.1 405B, University of Florida DGX B200")]
    assert len(fp4) == 4 and all(0.07 <= e <= 0.22 for e in fp4.values()) and len(b200) == 2
    assert all(0.02 <= e <= 0.07 for e in b200)
    preview = [p.error for p in _table("MLPerf Training v4.1 GPT-3 175B, DGX B200 (preview)")]
    assert preview == pytest.approx([-0.062], abs=0.01)
    strong = {p.key: p.error for p in _table("MLPerf Training v5.1 Llama 3.1 8B strong scaling, GB200 and GB300 NVL72")}
    assert 0.09 <= strong["mlperf51-8b-gb200-72"] <= 0.14 and 0.55 <= strong["mlperf51-8b-gb200-512"] <= 0.8


def test_mlperf_runs_by_other_operators_out_of_sample():
    """Every MLPerf Training closed-division run by an operator other than NVIDIA of the benchmarks above, with NVIDIA's
    NeMo implementation, whose settings the model describes (mlcommons/training_results_v4.0, _v4.1, _v5.0, _v5.1,
    read 2026-12-07; layouts from each config and log, throughput as for NVIDIA's rows). Never fitted on.
    Nebius, Llama 3.1 405B on 512 and 1,024 H200 at TP4·PP8·CP2·VP8 (the H100 runs take TP8): 368.6 and 363.5
    tokens/s/GPU, +0.8% and +1.3%: the only H200 rows outside torchtitan's (whose two run −11%).
    Dell, Llama 3.1 8B on two DGX-class B200 nodes (Intel and AMD hosts), DP16, FP8 current scaling: 28,151 and
    28,460, −0.5% and −1.6%, a held-out test of B200's sustained clock (at the datasheet clock: +14.9% and +13.7%);
    on one B300 node 29,894, +11.3% (B300 runs at its datasheet clock: no dense B300 row to fit a sustained fraction
    on).
    Supermicro (v4.0) and Oracle (v4.1), GPT-3 175B on H100 at TP4·PP8: 512 GPUs 761.1 (+7.2%), 1,536 782.2 (−0.2%),
    3,072 615.7 (+18.9%: the run keeps 79% of the 1,536-GPU rate per GPU at the same batch, the model 94%).
    Where it stops holding, as on NVIDIA's own 8B strong-scaling runs: one 8,192-token sequence per data-parallel
    rank. Cisco's H100 runs: 64 GPUs at TP1 11,369 (+14.0%), 128 at TP2 8,443 (+46.7%; splitting each sequence over two
    GPUs cost the run 26% per GPU, the model 4%); Lambda's GB300 72-GPU run 25,403 (+22.0%, NVIDIA's own +12.0%).
    DGX B200 scaling, FP8 with full-iteration CUDA graphs: University of Florida on 8 and 16 GPUs at two sequences per
    GPU, 30,110 (−6.2%) and 28,496 (−1.7%); one sequence over two GPUs (CP2) on 32, 64, 128 and 256 GPUs, 21,717
    (+10.3%), 21,615 (+9.4%), 21,243 (+11.4%), 18,518 (+27.7%); Oracle's and Verda's 64-GPU runs of that
    configuration 21,537 (+9.8%) and 21,447 (+10.3%), within 0.8% of UF's. The model's CP2 step misses about 18 ms
    that the runs take, as on NVIDIA's 72-GPU NVL72 CP2 runs (about 17 ms), whose DP sync stays inside NVLink.
    The bounds record these figures: they fail if the model moves off them without this docstring moving too."""
    errs = {p.key: p.error for t in ("MLPerf Training v5.0 Llama 3.1 405B, Nebius H200",
                                     "MLPerf Training v5.1 Llama 3.1 8B, Dell B200 and B300",
                                     "MLPerf Training v4.0 and v4.1 GPT-3 175B, Supermicro and Oracle H100",
                                     "MLPerf Training v5.1 Llama 3.1 8B, Cisco H100") for p in _table(t)}
    assert len(errs) == 10 and 0.08 <= errs["mlperf51-8b-b300-dell-xe9780"] <= 0.14
    assert all(abs(errs[k]) <= 0.03 for k in ("mlperf50-405b-h200-512", "mlperf50-405b-h200-1024",
                                              "mlperf51-8b-b200-dell-xe9680l", "mlperf51-8b-b200-dell-xe9685l",
                                              "mlperf41-gpt3-oracle-1536"))
    assert 0.05 <= errs["mlperf40-gpt3-smc-512"] <= 0.09 and 0.15 <= errs["mlperf41-gpt3-oracle-3072"] <= 0.22
    assert 0.10 <= errs["mlperf51-8b-h100-cisco-64"] <= 0.17 and 0.35 <= errs["mlperf51-8b-h100-cisco-128"] <= 0.55
    strong = {p.key: p.error for p in _table("MLPerf Training v5.1 Llama 3.1 8B strong scaling, GB200 and GB300 NVL72")}
    assert 0.18 <= strong["mlperf51-8b-gb300-72-lambda"] <= 0.26
    b200 = {p.key.removeprefix("mlperf51-8b-b200-"): p.error
            for p in _table("MLPerf Training v5.1 Llama 3.1 8B, DGX B200 scaling (University of Florida, Oracle, Verda)")}
    assert len(b200) == 8 and -0.09 <= b200["uf-8"] <= -0.03 and -0.04 <= b200["uf-16"] <= 0.01
    assert all(0.07 <= b200[k] <= 0.13 for k in ("uf-32", "uf-64", "uf-128", "oracle-64", "verda-64"))
    assert 0.22 <= b200["uf-256"] <= 0.33


def test_megatron_bridge_h100_fp8_out_of_sample():
    """NVIDIA Megatron-Bridge performance summary, 25.11 container, DGX-H100 FP8-CS: Llama3 8B (8 GPUs; the release's
    recipe runs the distributed optimizer and recomputes 5 layers, the table's FSDP column reads 8) 14,451 tokens/s/GPU; Llama3 70B (64 GPUs TP4·PP8·VP5) 1,602; Llama 3.1 405B (1,024
    GPUs TP8·PP8·CP2·VP8) 292. FP8 only on linear layers through cuBLASLt (0.81 of FP8 peak), current-scaling
    casts, TP overlap as userbuffers chunks, bf16 gradient reduction (the recipes' grad_reduce_in_fp32 = False),
    FP8 copies of linear inputs kept for backward (so the 70B layout fits without recompute, as the recipe runs it):
    −8.1%, +3.7%, +13.2% since each TP collective hides only under its own GEMM (TE userbuffers), so the small QKV
    and output-projection GEMMs of FP8 leave TP8 collectives exposed (the 405B row was +20.4%), and the embedding and
    loss take a pipeline slot each (the 70B row was +1.3% only because its last stage carried 10 layers and the
    head; the recipe's layout gives it 9). Mean 8.3%: misses the ≤7% target; the 405B row at GBS 512 stays 13% fast
    (the same layout at GBS 1536 in 26.04.01 is within 4%). −5.5%, +6.6%, +16.0% (mean 9.4%) since
    framework_efficiency refitted 0.824 → 0.848 once the Narayanan rows ran without sequence parallelism, as 2021
    Megatron-LM did; since Hopper got its own framework_efficiency (0.795, fitted on the ten dense H100/H200 rows, these among them; leave-one-source-out below): −11.2%, +0.3%, +9.8%, mean 7.1%, just over the ≤7% target;
    held out of the Hopper fit (refit 0.785) 7.2%. At the median rule's fixed point (0.786): −12.2%, −0.8%, +8.7%,
    mean 7.2%; held out (refit 0.781) 7.4%. The 405B row's layout ran 292 tokens/s/GPU at GBS 512 in 25.11 and 302
    in 25.09, 311 at GBS 1536 in 26.02 and 328 in 26.04.01 (docs/performance-summary.md and -archive.md): the
    release alone moves it 5% at one batch, which no constant of this model can follow. With cuDNN's attention
    figures and Hopper refitted (0.788): −9.7%, +1.3%, +10.1%, mean 7.0%; held out (refit 0.795) 7.3%. With
    Transformer Engine's FP8 casts as it runs them (a sequence-parallel operand cast on its shard before the FP8
    all-gather, one fused cast-transpose per operand; stacks.yaml fp8_casts) and Hopper refitted (0.759): −12.0%,
    +1.3%, +11.3%, mean 8.2%, over the ≤7% target; held out (refit 0.770) 8.7%. The casts the model charged before
    on every TP rank's gathered copy hid part of a TP-dependent miss: TP1 (8B) runs slow in the model, TP8 (405B)
    fast. With the TP all-gathers in FP8, as Transformer Engine sends them (stacks.yaml fp8_gather), the 405B row's
    TP8 collectives shrink and Hopper's constant falls to 0.742: −13.9%, +1.4%, +13.6%, mean 9.6%: the same
    TP-dependent miss, wider. With attention read at the sequence each GPU holds (kernels.yaml by length, cuDNN
    on H200: the CP2 ranks of the 405B row hold 4K positions, 591 / 474 TFLOPS there against 644 / 541 at 8K):
    −13.9%, +1.4%, +12.2%, mean 9.2%. With the CP2 ring's merge traffic (Transformer Engine's fused corrections and
    gradient adds per ring step, stacks.yaml megatron-core cp_ring): −13.9%, +1.4%, +11.6%, mean 9.0%. With the 8B
    row on its release's recipe (it ran FSDP with the recomputed layers, which no recipe sets), the recipe's FP8
    parameter gather (bf16_with_fp8_current_scaling_mixed: fp8_param_gather) and NCCL's ring latency per DP bucket
    (2026-12-07): −11.4%, +1.4%, +12.3%, mean 8.3%."""
    errs = [p.error for p in _table("Megatron-Bridge 25.11 DGX-H100 FP8-CS")]
    assert len(errs) == 3 and all(abs(e) <= 0.145 for e in errs) and sum(map(abs, errs)) / 3 <= 0.095
    assert abs(errs[1]) <= 0.075


def test_megatron_bridge_2604_h100_fp8_out_of_sample():
    """Megatron-Bridge docs/performance-summary-archive.md, 26.04.01 container, DGX-H100 FP8: Llama3 70B TP4·PP8·VP5
    at GBS 256 → 1,664 tokens/s/GPU; Llama 3.1 405B TP8·PP8·CP2·VP8 at GBS 1536 → 328: +1.0%, +3.7% (mean 2.3%;
    the 405B row was +10.4% before TP collectives were paired with their own GEMMs). +3.8%, +6.3% since
    framework_efficiency refitted 0.824 → 0.848 once the Narayanan rows ran without sequence parallelism, as 2021
    Megatron-LM did; since Hopper got its own framework_efficiency (0.795, fitted on the ten dense H100/H200 rows, these among them; leave-one-source-out below): −2.3%, +0.4%; held out of the Hopper fit (refit 0.780) 2.6%. At the median rule's
    fixed point (0.786): −3.4%, −0.6%; held out (refit 0.775) 3.3%. With cuDNN's attention figures and Hopper
    refitted (0.788): −1.4%, +0.7%; held out (refit 0.786) 1.0%. With Transformer Engine's FP8 casts (0.759):
    −1.3%, +1.8%; held out (refit 0.771) 1.7%. With FP8 TP all-gathers (stacks.yaml fp8_gather; Hopper 0.742):
    −1.3%, +4.0%. With attention read at the sequence each GPU holds (the 405B CP2 ranks at 4K): −1.3%, +2.8%. With
    the CP2 ring's merge traffic (stacks.yaml megatron-core cp_ring): −1.3%, +2.2%."""
    errs = [p.error for p in _table("Megatron-Bridge 26.04.01 DGX-H100 FP8")]
    assert len(errs) == 2 and all(abs(e) <= 0.045 for e in errs)


def test_megatron_bridge_h100_llama_across_releases_out_of_sample():
    """Megatron-Bridge performance-summary-archive.mdx (docs/fern/versions/0.4.2, read at 067f987), DGX-H100 FP8,
    the layouts of the 25.11 and 26.04.01 rows one or two releases away, out of every fit. 25.09: Llama3 8B TP1 FSDP8
    GBS 128 → 14,079 tokens/s/GPU (−11.5%), 70B TP4·PP8·VP5 GBS 128 → 1,619 (+0.3%), 405B TP8·PP8·CP2·VP8 GBS 512 → 302
    (+8.0%), mean 6.6%. 26.02 / 26.02.01: 70B GBS 256 → 1,621 and 1,639 (+1.4%, +0.2%), 405B GBS 1536 → 311
    (+7.8%), mean 3.1%. The same 405B recipe ran at 302, 292, 311 and 328 tokens/s/GPU in 25.09, 25.11, 26.02 and
    26.04.01 (predicted 326, 326, 335, 335): release to release it moves as much as the model's worst H100 miss."""
    old = {p.key: p.error for p in _table("Megatron-Bridge 25.09 DGX-H100 FP8-CS")}
    new = {p.key: p.error for p in _table("Megatron-Bridge 26.02, 26.02.01 DGX-H100 FP8")}
    assert len(old) == 3 and len(new) == 3
    assert sum(map(abs, old.values())) / 3 <= 0.07 and sum(map(abs, new.values())) / 3 <= 0.035
    assert all(abs(e) <= 0.12 for e in (*old.values(), *new.values()))
    published = {r["key"]: r["value"] for r in fidelity.rows()}
    runs = [published[k] for k in ("mbridge-2509-405b-fp8", "mbridge-405b-fp8", "mbridge-2602-405b-fp8",
                                   "mbridge-2604-405b-fp8")]
    assert max(runs) / min(runs) - 1 > 0.12  # 292 → 328 with the recipe's layout unchanged


def test_megatron_bridge_2606_rows_out_of_sample():
    """Megatron-Bridge docs/performance-summary.md at tag v0.5.1, "26.06 NeMo Container" (read 2026-12-06), the
    earlier rows' recipes one release on, out of every fit. DGX-H100 FP8: Llama 3.1 405B TP8·PP8·CP2·VP8 GBS 1536 →
    326 tokens/s/GPU (+2.8%), Qwen3-30B-A3B EP16 on 16 GPUs → 8,826 (−1.6%). Llama 3.1 405B on 256 GPUs: GB300 FP8
    1,048 (−6.3%), MXFP8 952 (+3.4%), NVFP4 1,413 (+17.4%); GB200 FP8 843 (−1.3%), MXFP8 783 (+6.7%), NVFP4 1,166
    (−0.3%). GB300's NVFP4 row was the one beyond 15% (+18.7%, +16.4% at 26.04.01) while Blackwell Ultra's FP4
    GEMMs read B200's assumed 0.70 plateau; at the measured CUTLASS figure on B300 (0.618, kernels.yaml
    blackwell-ultra: the part throttles under FP4) it is +12.0%. NVFP4's Hadamard transforms and stochastic rounding
    are still not charged."""
    h100 = {p.key: p.error for p in _table("Megatron-Bridge 26.06 DGX-H100")}
    assert len(h100) == 2 and all(abs(e) <= 0.04 for e in h100.values())
    gb = {p.key: p.error for p in _table("Megatron-Bridge 26.06 GB200/GB300 Llama 3.1 405B")}
    assert len(gb) == 6 and sum(map(abs, gb.values())) / 6 <= 0.07
    assert all(abs(e) <= 0.08 for k, e in gb.items() if "nvfp4" not in k)
    assert 0.08 <= gb["mbridge-2606-gb300-405b-nvfp4"] <= 0.14


def test_megatron_bridge_2509_h100_deepseek_v3_out_of_sample():
    """Megatron-Bridge performance-summary-archive.md, 25.09 container, DGX-H100: DeepSeek-V3 dropless on 1,024 GPUs,
    TP2·PP8·VP4·EP64, GBS 8192 of 4,096 tokens → 1,297 tokens/s/GPU. Its recipe (tag v0.2.0rc6 run_script.py) is
    entered whole: pipeline layout "Et|(tt|)*30mL", expert TP 1, DeepEP, the all-to-all overlapped with another
    micro-batch, selective recompute of mla_up_proj and mlp, no TP overlap, gradient reduction not overlapped, FP8.
    Never fitted on. The model runs it +23.8% fast: +21.9% before MLA's attention read its own cuDNN figures at
    head dim 192 (kernels.yaml attention_*_d192); +20.8% then +14.9% once the all-to-all overlap followed Megatron's
    combined 1F1B schedule (each all-to-all paired with one block of another micro-batch, and the 25 of 512 warm-up
    and cool-down chunk passes unpaired); +25.9% once each token reached only the 4 of 8 node-sized expert groups its
    router picks (DeepEP's NIC leg 24% lighter); +23.8% with the token permutation's memory traffic charged and the
    MoE host stall refitted; +20.6% once the elementwise traffic took MLA's per-head K and V at their width and the
    recomputed up-projection its fused RoPE and K/V split; +5.5% once the host's time per MoE layer was counted in
    the linear modules it issues (perf.host: nine for DeepSeek-V3 against Qwen3's four, two more forwards for the
    recomputed up-projections, 21 ms per layer and micro-batch where one fitted constant gave every MoE model 8.67).
    The first MLA model in the set and the first DeepEP row."""
    (p,) = _table("Megatron-Bridge 25.09 DGX-H100 DeepSeek-V3")
    assert p.layout.startswith("TP2·PP8·CP1·EP64(ETP1)·DP64 mb1 v4")
    assert abs(p.error) <= 0.07


def test_megatron_bridge_2604_blackwell_deepseek_v3_out_of_sample():
    """Megatron-Bridge performance-summary-archive.md (v0.5.1), 26.04 container: DeepSeek-V3 MXFP8 on 256 GPUs,
    TP1·PP16·EP8, GBS 4096, MBS 1 → DGX-B200 2,815, DGX-B300 3,131 tokens/s/GPU; recipe at tag v0.4.0 (Hybrid-EP
    inside the node, no all-to-all overlap, recompute of mla_up_proj, the PP16 layout "Et*4|(t*4|)*14tmL", no CUDA
    graphs). Never fitted on. Added (2026-12-06) at +28.3% and +17.0%, as fast as the H100 row (+20.6%) with DeepEP
    across nodes and the all-to-all overlapped: the gap was per layer on every GPU, not the inter-node all-to-all.
    With the host's time per MoE layer counted in its linear modules (perf.host; DeepSeek-V3's nine and two
    recomputed forwards at the 2.17 ms per module fitted on Qwen3-30B): +6.3% and −4.4%."""
    preds = {p.key: p for p in _table("Megatron-Bridge 26.04 DGX-B200/B300 DeepSeek-V3")}
    assert set(preds) == {"mbridge-2604-b200-dsv3", "mbridge-2604-b300-dsv3"}
    assert all(p.layout.startswith("TP1·PP16·CP1·EP8·DP16 mb1 v1") for p in preds.values())
    assert all(abs(p.error) <= 0.08 for p in preds.values())


def test_megatron_bridge_2604_gb200_gb300_deepseek_v3_out_of_sample():
    """The same release's DeepSeek-V3 rows on DGX-GB200 (MBS 1, PP4·VP4·EP64, attention, router and preprocessing
    CUDA-graphed, recompute of mlp) → 4,193 and DGX-GB300 (MBS 2, PP2·VP8·EP32, no CUDA graph, recompute of
    mla_up_proj) → 4,965 tokens/s/GPU; recipes at tag v0.4.0, Hybrid-EP inside the NVL72 rack, no all-to-all
    overlap. Never fitted on. Neither is set by the host's module count: GB300's larger micro-batch keeps the GPU
    busier than the host's 21 ms per layer, and GB200's graphs leave the host two modules. The model runs both slow,
    GB200 −14.4% (its Hybrid-EP all-to-alls, 3.1 s of an 18.3 s step at 82% of NVLink 5's line rate, and the
    fitted GB200 clock, 0.860, are the largest suspects) and GB300 −6.6% (added 2026-12-06)."""
    preds = {p.key: p for p in _table("Megatron-Bridge 26.04 DGX-GB200/GB300 DeepSeek-V3")}
    assert set(preds) == {"mbridge-2604-gb200-dsv3", "mbridge-2604-gb300-dsv3"}
    assert preds["mbridge-2604-gb200-dsv3"].layout.startswith("TP1·PP4·CP1·EP64·DP64 mb1 v4")
    assert -0.20 <= preds["mbridge-2604-gb200-dsv3"].error <= -0.08
    assert abs(preds["mbridge-2604-gb300-dsv3"].error) <= 0.10


def test_megatron_lm_deepseek_v3_gb200_guide_out_of_sample():
    """Megatron-LM docs/discussions/deepseek-v3-gb200-optimization (2025-11; read at 1d9edcf): DeepSeek-V3 MXFP8 on
    256 GB200, TP1·PP8·VP4·EP32, MBS 1, GBS 2048, 4,096 tokens, layout "Et|(tt|)*30L" (no MTP), never fitted on.
    Its final run (Hybrid-EP, CUDA graphs of attn, moe_router and moe_preprocess, recompute of moe_act and mlp),
    970.01 TFLOPS/GPU = 3,883 tokens/s/GPU by Megatron's own FLOP count (2.498e11 per token): −5.2%. Its optimization
    table changes one setting at a time in two steps the model represents, each a held-out measurement of the
    host's share of a MoE layer (perf.host): dropping the recompute of MLA's up-projections, 566.07 → 610.71
    TFLOPS/GPU (+7.9%; the model +7.4%), and then graphing attention, router and preprocessing, 610.71 → 663.27
    (+8.6%; the model +10.0%). Both steps ran DeepEP; the table's other steps change kernels or the host's NUMA
    binding, which the model does not represent."""
    (p,) = _table("Megatron-LM DeepSeek-V3 GB200 guide (2025-11)")
    assert abs(p.error) <= 0.07
    row = next(r for r in fidelity.rows() if r["key"] == "mlm-gb200-dsv3-guide")
    eager = {**row, "moe_dispatcher": "deepep", "cuda_graph_scope": []}

    def tps(**change) -> float:
        return fidelity.predict({**eager, **change}).predicted

    up_proj = tps() / tps(recompute_modules=["mla_up_proj", "mlp"])
    graphs = tps(cuda_graph_scope=["attn", "moe_router", "moe_preprocess"]) / tps()
    assert abs(up_proj - 610.71 / 566.07) <= 0.025
    assert abs(graphs - 663.27 / 610.71) <= 0.025


def test_megatron_bridge_2509_and_2511_h100_qwen3_moe_out_of_sample():
    """Megatron-Bridge docs/performance-summary.md, DGX-H100, held out of every fit. 25.09 (tag v0.2.0; recipe
    v0.2.0rc6 run_script.py: alltoall, token drop padded to capacity 1, TP overlap on, no all-to-all overlap):
    Qwen3-235B-A22B TP2·PP8·VP4·EP32 GBS 2048 → 1,204 tokens/s/GPU (+3.7%), Qwen3-30B-A3B PP2·VP24·EP8 MBS 2 → 10,494
    (−1.4%): the release of the DeepSeek-V3 row, whose MoE path the model follows there. 25.11 (tag v0.2.2; recipe
    v0.2.0: all-to-all overlap on, TP overlap off): Qwen3-235B-A22B, same layout → 1,575 (+7.7%); 26.04.01 ran that
    layout at 1,712 (+1.5%) with four times the global batch. (+4.3%, +3.9% and +9.9% before the token permutation
    was charged.)"""
    q09 = {p.key: p.error for p in _table("Megatron-Bridge 25.09 DGX-H100 Qwen3 MoE")}
    assert len(q09) == 2 and all(abs(e) <= 0.05 for e in q09.values())
    (q11,) = _table("Megatron-Bridge 25.11 DGX-H100 Qwen3 MoE")
    assert 0.03 <= q11.error <= 0.10


MEGATRON_LM_README = "Megatron-LM README, Megatron-Core r0.8.0 H100 BF16 weak scaling"


def test_megatron_lm_readme_h100_bf16_weak_scaling_out_of_sample():
    """NVIDIA/Megatron-LM README.md model table (images/model_table.png, commit f2e5db4, 2024-07-15; Megatron-Core
    r0.8.0): GPT models with a 131,072-token vocabulary at 4,096 tokens, DP 48, on H100, model TFLOP/s per GPU as
    Megatron-LM counted them then (attention in full, no recompute): 1.7B TP1 408.8, 7.1B TP2 465.9, 16B TP4 489.1,
    32B TP8 459.6, 70B TP8·PP2 419.7, 119B TP8·PP4 420.5, 177B TP8·PP6 432.8, 314B TP8·PP8 474.4, 462B TP8·PP16
    459.9. Never fitted on; micro-batch, interleave and recompute are the planner's best completion, so a row can
    only be as slow as its layout's best settings. Run through Megatron-LM's own script, whose default loss is the
    unfused vocab-parallel cross-entropy on fp32 logits (stacks.yaml megatron-lm: 52 B per logit element): +6.4%,
    +5.4%, +0.9%, −2.1%, +10.6%, +10.9%, +9.9%, +1.2%, +3.8%, mean 5.7%. With the loss at the 12 B the model charged
    every stack before: the 1.7B row (V/h = 64) +15.8%, the 7.1B +7.9%. The three rows over 7% are PP rows completed
    with the largest micro-batch and one layer per virtual stage; at micro-batch 1 the 70B row is −5.6% to −13.9%
    (interleave 21 down to 1), so their runs' settings, which the README does not give, decide most of the gap."""
    preds = {p.key: p for p in _table(MEGATRON_LM_README)}
    assert len(preds) == 9
    errs = [abs(p.error) for p in preds.values()]
    assert sum(errs) / 9 <= 0.06 and max(errs) <= 0.115
    assert abs(preds["mlm2407-1.7b"].error) <= 0.07  # the loss's traffic, at V/h = 64


FOUNDRY_H100 = "llm-foundry MPT benchmarks, H100 80GB BF16 (MosaicML)"
FOUNDRY_A100 = "llm-foundry MPT benchmarks, A100 80GB BF16 (MosaicML)"


def test_llm_foundry_mpt_tables_out_of_sample():
    """mosaicml/llm-foundry scripts/train/benchmarking/README.md (8c8dd48; rows entered at b2a43a1): MPT models under
    Composer with PyTorch FSDP (FULL_SHARD; MP Mode DEFAULT: fp32 gradient reduction, except the A100 70B rows,
    PURE), the flash-attn package's Triton FlashAttention (submit_benchmarks.py's attn_impl default), full activation
    checkpointing where the row says so; tokens/s/GPU. Every row at 2,048 tokens on 8 GPUs and both 70B rows (32, 64
    GPUs), a source never fitted on (added 2026-12-06, stacks.yaml llm-foundry). H100: 760M +9.7%, 1B −1.5%, 7B
    +0.4%, 13B +12.2%, 30B +0.6%, 70B on 32 / 64 GPUs +5.4% / −7.3%, mean 5.3%. A100: 1B −4.6%, 3B −5.0%, 7B
    −3.3%, 13B +3.1%, 30B −10.8%, 70B +1.5% / −5.5%, and since 2026-12-07 the 125M (micro-batch 40 / 32), 350M and
    760M rows the same rule names, which had been left out: −1.0% / −0.3%, −4.6%, −4.8%; mean 4.0% over eleven (4.8%
    over the first seven). History: with FlashAttention-2 figures and 16-bit
    reductions the means were 7.4% and 5.1% (A100 1B +5.2%, 13B +9.6%); the A100 change is the Triton kernel's
    figures (kernels.yaml ampere bf16_triton, FlashAttention-2 over the FA2 paper's section 4.1 ratios), H100 keeps
    the FlashAttention-2 figures for want of a Hopper measurement. Then 6.8% and 4.6% (H100 760M +13.4%, 13B +17.4%)
    until the optimizer step and the loss were counted from Composer's and llm-foundry's code (stacks.yaml
    optimizer_step: the unfused DecoupledAdamW and FSDP's gradient clipping, 96 B per parameter of the shard against
    fused Adam's 30; cross_entropy: the fused loss and two fp32 train metrics per micro-batch, 34 B per logit against
    the default 12): the optimizer weighs where a step is one micro-batch of a large model (H100 13B, 2 sequences a
    GPU), the metrics where the logits are large next to the model (760M at 24 sequences a GPU). Both costs are
    real on A100 too, whose rows the model already ran slow: its mean moved from 4.6% to 4.8%. The 13B rows
    (micro-batch 2 without checkpointing) still run slow on H100; the A100 table misses the 3% target that the
    Megatron tables meet. Since the all-reduces took NCCL's tuner latency (2026-12-07), which moved the A100 constant
    from 0.833 to 0.831, the A100 rows run about 0.2% slower: 30B −11.0%, mean 4.2%."""
    h100 = {p.key: p for p in _table(FOUNDRY_H100)}
    a100 = {p.key: p for p in _table(FOUNDRY_A100)}
    assert len(h100) == 7 and len(a100) == 11
    for preds, mean_bound in ((h100, 0.055), (a100, 0.045)):
        errs = [abs(p.error) for p in preds.values()]
        assert sum(errs) / len(errs) <= mean_bound and max(errs) <= 0.13
    assert all(abs(p.error) <= 0.115 for k, p in {**h100, **a100}.items() if k not in ("foundry-h100-13b",
                                                                                        "foundry-h100-760m"))
    assert h100["foundry-h100-13b"].error > 0.1


def test_triton_flash_attention_route_follows_the_fa2_papers_ratios():
    """Dao 2023 (FlashAttention-2, arXiv 2307.08691) section 4.1, A100 80GB: FlashAttention-2 is 1.3-1.5x faster than
    FlashAttention in Triton in the forward pass and about 2x faster in the backward pass. The ampere row's triton
    route is its FlashAttention-2 figures over 1.4 and 2.0; Hopper, with no measurement of that kernel, keeps
    FlashAttention-2's."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.perf.compute import kernel_table

    a100 = kernel_table(gpu("a100-80gb-sxm"))
    fa2, tri = a100.attention(""), a100.attention("triton")
    assert tri[0] == pytest.approx(fa2[0] / 1.4, rel=0.01) and tri[1] == pytest.approx(fa2[1] / 2.0, rel=0.01)
    h100 = kernel_table(gpu("h100-sxm"))
    for tokens in (2048, 8192, 32768):
        assert h100.attention("triton", tokens) == h100.attention("fa2", tokens)


def test_mpt_parameter_counts_match_llm_foundrys_table():
    """llm-foundry's benchmark tables print NumParams per run (README at 8c8dd48, 2,048-token rows): 760M
    760,470,528; 125M 125,311,488; 350M 355,985,408; 1B 1,315,950,592; 3B 2,651,837,440; 7B 6,658,859,008; 13B 12,853,954,560; 30B 29,975,214,080;
    70B 64,862,437,376. The catalog's MPT entries (GPT blocks, tied head, learned positions at 2,048) count the
    same, exactly."""
    from aiinfra.catalog.models import model
    from aiinfra.sizing.params import param_counts

    published = {"125m": 125311488, "350m": 355985408, "760m": 760470528, "1b": 1315950592, "3b": 2651837440, "7b": 6658859008, "13b": 12853954560,
                 "30b": 29975214080, "70b": 64862437376}
    for name, n in published.items():
        assert float(param_counts(model(f"mpt-{name}")).total.value) == n, name


BLACKWELL_LLAMA_2604 = "Megatron-Bridge 26.04.01 GB200/GB300 Llama FP8, MXFP8, NVFP4"


def test_megatron_bridge_blackwell_fp8_out_of_sample():
    """Megatron-Bridge docs/performance-summary-archive.md, 25.11 container, FP8-CS on DGX-B200, DGX-GB200 and
    DGX-GB300 (Llama3 8B, 70B, Llama 3.1 405B): eight rows, none fitted on. Kernel rows from kernel measurements
    (kernels.yaml: B200, GB200 and B300 MAMF; Blackwell Ultra's attention forward at the FA4 level): mean |error|
    7.4%, worst +17.0% (B200 405B, TP4·PP8·CP2·VP8, the layout family the model runs fast on H100 too: +13.2%
    there; it was +12.4% with Hopper's FP8 fraction assumed for B200). GB300 rows -10.0%, -2.7%, -6.2% (were
    -11.5%, -5.0%, -8.7% with Blackwell's row). After framework_efficiency was refitted 0.824 → 0.848 (Narayanan
    rows without sequence parallelism, as 2021 Megatron-LM ran): mean 7.6%, B200 405B +20.0%, GB300 -7.4%, +0.1%,
    -3.6%. The B200 405B row misses the 15% bound. With the default constant at the median rule's fixed point (0.831):
    mean 7.5%, B200 405B +17.9%, GB300 −9.2%, −1.9%, −5.4%. With Transformer Engine's FP8 casts as it runs them
    (a TP shard cast before the FP8 all-gather): mean 7.9%, B200 405B +20.2%, GB300 −8.3%, −1.1%, −4.5%. With the
    TP all-gathers in FP8 (stacks.yaml fp8_gather): mean 8.0%, B200 405B +20.9%, GB200 405B +12.0%. With attention
    from cuDNN 9.22's measurements on GB200 and GB300 by length (kernels.yaml; B200 at GB200's fractions), where
    it was assumed before (0.60 / 0.45, 0.63 / 0.45): mean 8.3%; GB300 −3.3%, +2.4%, −3.3% (were −8.3%, −1.1%,
    −4.3%), GB200 8B +10.6% (was +7.0%), B200 8B +7.2% (was +3.5%), B200 405B +20.9%: the measured kernels are
    faster than the assumption, and the rows that ran fast run faster. With the CP2 ring's merge traffic (stacks.yaml
    megatron-core cp_ring): B200 405B +20.3%, GB300 405B −3.9%, mean 8.3%. With Grace's NVLink-C2C as the GB200/GB300
    host link (gpus.yaml host_link; it was charged as PCIe Gen6) the completions that fit move offloaded work there:
    GB200 70B keeps 12% recompute and offloads its activations, as its recipe does (Megatron-Bridge v0.2.1
    LLAMA3_70B_GB200_FP8_CS_BASE_CONFIG: Megatron FSDP, cpu_offloading_num_layers=40, no recompute): −5.4% → +0.2%;
    the 405B rows offload the optimizer (GB200 +14.7%, GB300 −2.7%); mean 7.7%. Its three GB200 rows (+10.6%, +0.2%,
    +14.7%) are now what GB200's sustained compute fraction is solved on (0.906, next test): +2.3%, −7.3%, +5.1%;
    mean 6.3%. With the 70B recipes run as they are (no recompute, the activations of 40 (GB200) or 20 (GB300) of
    80 layers offloaded, copied under the other layers' compute: stacks.yaml megatron-core activation_offload) and
    GB200's fraction solved again (0.871): GB200 −0.9%, −0.6%, +1.5%; GB300 −3.3%, +10.4% (was +2.4% with a
    completion that recomputed 25% of the layers, which Megatron-LM refuses alongside CPU offloading), −2.7%; mean
    5.9%. With the attention's Q, K + V and output at their real widths in the elementwise traffic (fewer bytes for
    grouped K/V) and GB200's fraction solved again (0.860): GB300 70B +11.8%, mean 6.0%. With the recipe's FP8
    parameter gather (fp8_param_gather, 1 B per parameter), NCCL's ring latency per DP bucket and GB200's fraction
    solved again (0.855): GB200 −0.9%, −0.5%, +1.5%; GB300 −1.7%, +12.6%, −0.8%; B200 8B +8.9%, 405B +23.7%; mean
    6.3%. The two B200 rows are now what B200's sustained fraction is solved on (0.834, 2026-12-07): −6.3%, +6.2%;
    mean 3.9%. The GB300 rows stay out of every fit."""
    preds = {p.key: p for p in _table("Megatron-Bridge 25.11 Blackwell FP8-CS")}
    errs = [p.error for p in preds.values()]
    assert len(errs) == 8 and sum(map(abs, errs)) / 8 <= 0.045 and max(map(abs, errs)) <= 0.13
    assert all(abs(p.error) <= 0.05 for k, p in preds.items() if "gb300" in k and "70b" not in k)
    assert 0.0 < preds["mbridge-gb300-70b-fp8"].error <= 0.13
    assert "offload activations 40/80 layers" in preds["mbridge-gb200-70b-fp8"].layout


def test_gb200_sustained_fraction_is_its_fit_and_holds_on_the_next_release():
    """GB200 runs slower than its own kernel measurements predict: Megatron-Bridge 25.11's GB200 FP8 rows ran +10.6%,
    +0.2% and +14.7% slower than this model at GB200's datasheet clock, GB300's within 4% (archive at 067f987).
    gpus.yaml gb200 sustained_compute_fraction is what makes those three rows' mean signed error zero: 0.906 while
    the 70B row ran the planner's completion, 0.871 since it runs its recipe (40 of 80 layers' activations offloaded
    under compute, no recompute; at 1.0 it is +11.7%). Held out, the next release's six GB200 Llama rows (26.04.01:
    70B and 405B in FP8, MXFP8 and NVFP4, other layouts) go from 17.5% mean |error| at 1.0 to 6.5%, and no GB300
    row moves."""
    from aiinfra.catalog.gpus import gpu

    g = gpu("gb200")
    assert abs(fidelity.solve_sustained_clock("gb200") - g.sustained_compute_fraction) <= 0.006
    keys = {r["key"] for r in fidelity.sustained_clock_fit_rows()["gb200"]}
    assert keys == {"mbridge-gb200-8b-fp8", "mbridge-gb200-70b-fp8", "mbridge-gb200-405b-fp8"}
    fit = [p for p in _table("Megatron-Bridge 25.11 Blackwell FP8-CS") if p.key in keys]
    assert abs(sum(p.predicted / p.published for p in fit) / 3 - 1) <= 0.01
    held = [p for p in _table(BLACKWELL_LLAMA_2604) if "gb200" in p.key]
    assert len(held) == 6 and sum(abs(p.error) for p in held) / 6 <= 0.07


def test_b200_sustained_fraction_is_its_fit_and_holds_on_mlperf_b200_runs():
    """DGX B200 ran slower than its own MAMF figures predict, as GB200 does: Megatron-Bridge 25.11's two B200 FP8 rows
    (Llama3 8B on 8 GPUs 30,624, Llama 3.1 405B TP4·PP8·CP2·VP8 on 128 GPUs 661 tokens/s/GPU; archive at 067f987)
    ran +8.6% and +23.4% fast at the datasheet clock, and the model put a B200 above a GB200 per GPU. gpus.yaml b200
    sustained_compute_fraction (0.834, eight air-cooled 1,000 W GPUs against GB200's 1,200 W and 0.855) is what makes
    their mean signed error zero: −6.3%, +6.2%. Held out: MLPerf Training v5.1, University of Florida's DGX B200
    405B runs (256 and 448 GPUs, the same layout) +20.3% / +21.6% → +3.9% / +5.0%; v4.1's GPT-3 175B preview on 64
    B200 +8.8% → −6.2%. A B200 now runs below a GB200 per GPU on the same 405B layout (MLPerf v5.0 GB200 at 256 GPUs
    747.9 against v5.1 B200 666.7 published)."""
    from aiinfra.catalog.gpus import gpu

    g = gpu("b200")
    assert abs(fidelity.solve_sustained_clock("b200") - g.sustained_compute_fraction) <= 0.006
    keys = {r["key"] for r in fidelity.sustained_clock_fit_rows()["b200"]}
    assert keys == {"mbridge-b200-8b-fp8", "mbridge-b200-405b-fp8"}
    fit = [p for p in _table("Megatron-Bridge 25.11 Blackwell FP8-CS") if p.key in keys]
    assert abs(sum(p.predicted / p.published for p in fit) / 2 - 1) <= 0.01
    held = [p.error for t in ("MLPerf Training v5.1 Llama 3.1 405B, University of Florida DGX B200",
                              "MLPerf Training v4.1 GPT-3 175B, DGX B200 (preview)") for p in _table(t)]
    assert len(held) == 3 and all(abs(e) <= 0.07 for e in held)
    b200 = {p.key: p.predicted for p in _table("MLPerf Training v5.1 Llama 3.1 405B, University of Florida DGX B200")}
    gb200 = {p.key: p.predicted for p in _table("MLPerf Training v5.0 Llama 3.1 405B, GB200 NVL72")}
    assert b200["mlperf51-405b-b200-256"] < gb200["mlperf50-405b-gb200-256"]


def test_megatron_bridge_2604_gb200_gb300_llama_out_of_sample():
    """Megatron-Bridge docs/performance-summary-archive.md, 26.04.01 container (read 2026-12-05 at 067f987),
    Llama3 70B on 64 and Llama 3.1 405B on 256 DGX-GB300 / DGX-GB200 GPUs, each in FP8 (current scaling), MXFP8 and
    NVFP4, recipes at tag v0.4.1 (the *_V2 presets): twelve rows, none fitted on. FP8 70B 5,248 / 4,224, MXFP8
    4,864 / 3,712, NVFP4 7,296 / 4,864; 405B FP8 1,024 / 864, MXFP8 960 / 800, NVFP4 1,440 / 1,184 tokens/s/GPU
    (GB300 / GB200). The model (MXFP8 taken as FP8): mean |error| 8.1%; GB300 −11.8%, −1.7%, +12.3%, −4.3%, +2.3%,
    +14.9%; GB200 −5.3%, +14.1%, +21.1%, −0.2%, +8.2%, +1.3%. These are the first NVFP4 rows: the model runs them fast
    (+12.3%, +21.1%, +14.9%, +1.3%); NVFP4's random Hadamard transforms and stochastic rounding are not charged,
    and FP4 GEMMs read Blackwell's assumed 0.70 plateau [U]. With the 70B FP8 runs' own activation offload (20 or 40
    of 80 layers, no recompute, copies under compute) and GB200's fraction solved again with it (0.871): mean 6.6%;
    GB300 −4.9%, −1.7%, +12.3%, −4.3%, +2.3%, +14.9%; GB200 +1.5%, +10.4%, +17.5%, −3.7%, +4.5%, −1.8%. NVFP4 still
    runs fast on average (+10.7%). Since the default framework_efficiency was refitted 0.831 → 0.833 (the Narayanan
    rows' loss charged at Megatron's 52 B per logit, stacks.yaml megatron-2021): mean 6.7%; GB300 −4.7%, −1.4%,
    +12.7%, −4.1%, +2.6%, +15.2%; GB200 +1.4%, +10.3%, +17.6%, −3.7%, +4.4%, −1.8%: GB300's 405B NVFP4 row is now
    0.2 points over the 15% target, one of the uncharged NVFP4 costs above. With the attention's real widths in the
    elementwise traffic and GB200's fraction solved again (0.860): mean 6.8%, GB200 70B NVFP4 +18.1%, GB300
    405B NVFP4 +16.4% (fewer elementwise bytes for grouped K/V make every Llama row faster; NVFP4's uncharged costs
    show more). With Blackwell Ultra's FP4 GEMMs at CUTLASS's measured 0.618 of B300's peak (kernels.yaml
    blackwell-ultra, 2026-12-07; GB300's FP4 rows had read B200's assumed 0.70): mean 5.8%, GB300 70B NVFP4 +9.0%
    (was +14.7%), 405B +9.9% (was +16.4%); GB200 70B NVFP4 +18.1% is the worst row."""
    preds = {p.key: p for p in _table(BLACKWELL_LLAMA_2604)}
    assert len(preds) == 12
    errs = [abs(p.error) for p in preds.values()]
    assert sum(errs) / 12 <= 0.07 and max(errs) <= 0.185
    fp4 = [p.error for k, p in preds.items() if k.endswith("nvfp4")]
    assert len(fp4) == 4 and sum(fp4) / 4 > 0.05 and all(-0.03 <= e <= 0.185 for e in fp4)
    assert all(abs(p.error) <= 0.12 for k, p in preds.items() if "gb300" in k)


def test_megatron_bridge_2509_gb200_fsdp_activation_offload_out_of_sample():
    """Megatron-Bridge docs/performance-summary-archive.md, 25.09 container, DGX-GB200 FP8-CS (read 2026-12-05 at
    067f987): Llama3 70B on 64 GPUs, GBS 128, MBS 2, Megatron FSDP 64 → 3,986 tokens/s/GPU; Llama 3.1 405B on 128
    GPUs, GBS 64, TP2, FSDP 64 → 729. Their recipes at tag v0.2.0 offload the activations of 40 of 80 and 92 of 126
    layers (cpu_offloading_num_layers) with no recompute. Out of every fit, the model runs both fast: +7.5% (one
    micro-batch per step; the same recipe at GBS 256 in 25.11 is a fit row, −0.6%) and +13.5% (the 405B copies, 1.9 s
    of a 4.9 s step in full, hide under the other layers' compute; the model's step is the same without offload).
    With the FP8-CS recipe's FP8 parameter gather, the FSDP layers' NCCL ring latency and GB200's fraction solved
    again (0.855), 2026-12-07: +7.5% and +14.2%. The bounds record the miss: they fail if the model gets worse or if
    these rows stop running slower than predicted."""
    preds = {p.key: p for p in _table("Megatron-Bridge 25.09 DGX-GB200 FP8-CS, FSDP with activation offload")}
    assert set(preds) == {"mbridge-2509-gb200-70b-offload", "mbridge-2509-gb200-405b-offload"}
    assert all(0.0 < p.error <= 0.15 for p in preds.values()) and sum(p.error for p in preds.values()) / 2 <= 0.11
    assert "offload activations 92/126 layers" in preds["mbridge-2509-gb200-405b-offload"].layout


def test_torchtitan_h200_fp8_out_of_sample():
    """torchtitan benchmarks/llama3_8b_h200_2025-06 (Trainy): Llama 3.1 8B, FSDP on 32 and 64 H200, local batch 2,
    float8 + compile, selective (op-level) checkpointing → 10,938 and 10,753 tokens/s/GPU. torchao float8 GEMMs run
    through torch._scaled_mm (0.59 of FP8 peak); torchtitan's op-level policy recomputes every second matmul of a
    block and every elementwise op: +5.4%, +7.2% (+10.3% and +12.2% when "selective" meant Megatron's
    attention-only recompute for every stack). +8.4%, +10.3% since framework_efficiency refitted 0.824 → 0.848 once
    the Narayanan rows ran without sequence parallelism, as 2021 Megatron-LM did; since Hopper got its own framework_efficiency (0.795, fitted on the ten dense H100/H200 rows, these among them; leave-one-source-out below): +1.7%, +3.5%; held out of the
    Hopper fit (refit 0.810) 4.5%. At the median rule's fixed point (0.786): +0.6%, +2.3%; held out (refit 0.792) 2.2%.
    That agreement rested on one attention figure for every stack. torchtitan at the benchmark's commit (e7c0cae)
    lets SDPA pick only its flash, efficient and math kernels, so attention runs PyTorch's FlashAttention-2 at its
    published 0.326 / 0.278 of peak (8k causal; cuDNN, Transformer Engine's route: 0.651 / 0.547), and the rows
    fall to −13.0%, −11.5% (Hopper 0.788; held out, refit 0.780: 13.2%), over the ≤7% target. The same stack's
    own H100 rows (torchao's float8 README, test below) run +24% and +15% fast, so the two torchtitan sources pull
    opposite ways by 25-37%; the FP8 GEMM route's plateau (torch._scaled_mm, 0.59 of peak, one report [U]) is
    the least supported number in between. torchtitan's casts are unchanged when Transformer Engine's are charged
    as it runs them, but Hopper's constant falls to 0.759: −16.2%, −14.7% (held out, refit 0.746: 16.9%). With
    torch._scaled_mm at 0.70 of FP8 peak, solved from torchao's own H100 layer benchmark (was 0.59, one report):
    −9.2%, −7.6% (the constant stays 0.759: these rows sit above the fit's median either way). With FP8 TP
    all-gathers the Megatron rows with TP run faster and Hopper's constant falls to 0.742: −11.2%, −9.7%. The same
    stack on Meta's power-limited H100s at the same local batch (test below) errs −4.0% and −1.8% in FP8. With
    torchtitan's separate Q/K/V and gate/up GEMMs (stacks.yaml separate_projections): −11.5%, −10.0%."""
    errs = [p.error for p in _table("torchtitan 2025-06 H200 FP8 (Trainy)")]
    assert len(errs) == 2 and all(-0.12 <= e <= -0.08 for e in errs)


def test_torchao_h100_bf16_and_fp8_out_of_sample():
    """pytorch/ao torchao/float8/README.md, "Training benchmarks": torchtitan 0.0.2 (PyTorch 2.7.0a0, torchao 0.10.0)
    on 8 H100, Llama3-8b, batch 1, seq 8192, torch.compile, FSDP2, per-op SAC: bfloat16 6,150 tokens/s per GPU,
    float8 tensorwise with float8 all-gather 7,689.5 (+25.0%). Never fitted on. Against a standard H100 SXM the
    model ran them +19.9% and +18.8% fast while it ran the same stack's H200 rows 8-9% slow. These GPUs are not
    standard: the torchao tutorial's log of the same recipe on them prints "memory: 30.91GiB(32.53%)", a 95 GiB
    device (docs/source/eager_tutorials/pretraining.rst), which is the 96 GB HBM2e, 500 W H100 of Meta's Grand
    Teton hosts that torchtitan's own H100 benchmarks document (gpus.yaml h100-sxm-hbm2e-96gb). On that part, its
    sustained fraction fitted on another document's rows (next test): +8.7%, +4.6%, mean 6.6%; +8.6%, +4.3%, mean
    6.5% with torchtitan's separate Q/K/V and gate/up GEMMs."""
    rows = {p.key: p for p in _table("torchao float8 README 2025 H100 (torchtitan)")}
    assert set(rows) == {"torchao-h100-8b-bf16", "torchao-h100-8b-fp8"}
    assert all(r["gpu"] == "h100-sxm-hbm2e-96gb" for r in fidelity.rows() if r["key"] in rows)
    bf16, fp8 = rows["torchao-h100-8b-bf16"], rows["torchao-h100-8b-fp8"]
    assert 0.0 <= bf16.error <= 0.10 and 0.0 <= fp8.error <= 0.07
    assert fp8.published / bf16.published == pytest.approx(1.250, abs=0.001)


META = "torchtitan 2024-12 H100 96GB 500 W (Meta)"
META_ASYNC_TP = "torchtitan async TP 2025-06 H100 96GB 500 W (Meta)"


def test_power_limited_h100_sustained_fraction_is_its_fit_within_the_documented_bounds():
    """pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md: its H100s carry 96 GB HBM2e at 2.4 TB/s and run
    at the default 500 W limit, and their peak "should be between SXM and NVL" (989.4 and 835.5 dense BF16 TFLOP/s,
    NVIDIA's H100 datasheet). gpus.yaml's sustained_compute_fraction is what makes the model's mean signed error zero
    over that document's four FSDP-only rows (Table 1, 8 GPUs, and Table 3, 128 GPUs: Llama 3.1 8B, local batch 2,
    torch.compile, BF16 6,667 / 6,514 and Float8 8,532 / 8,380 tokens/s/GPU); it lies inside those bounds."""
    from aiinfra.catalog.gpus import gpu

    g = gpu("h100-sxm-hbm2e-96gb")
    f = fidelity.solve_sustained_clock(g.key)
    assert abs(f - g.sustained_compute_fraction) <= 0.006
    assert gpu("h100-nvl").tflops["bf16"] / gpu("h100-sxm").tflops["bf16"] <= f <= 1.0
    assert g.peak_flops("bf16") == pytest.approx(989.4e12 * g.sustained_compute_fraction)
    assert g.memory_bw_gbps == 2400 and g.power_limit_w == 500
    keys = {r["key"] for r in fidelity.sustained_clock_fit_rows()[g.key]}
    fit = [p for p in _table(META) if p.key in keys]
    assert {p.key for p in fit} == keys == {"tt2412-8b-8-bf16", "tt2412-8b-8-fp8", "tt2412-8b-128-bf16",
                                            "tt2412-8b-128-fp8"}
    assert abs(sum(p.predicted / p.published for p in fit) / 4 - 1) <= 0.01
    assert all(abs(p.error) <= 0.05 for p in fit)
    with pytest.raises(ValueError, match="no row is marked fit_sustained_clock on h100-sxm"):
        fidelity.solve_sustained_clock("h100-sxm")


def test_torchtitan_on_power_limited_h100s_out_of_sample():
    """The same two torchtitan documents (2024-12 and async TP 2025-06, Grand Teton H100 96 GB at 500 W), every row
    outside the sustained-fraction fit, layouts as printed (local batch = micro-batch; pipeline micro-batches = PP
    degree, torchtitan's default at 9dec370; interleaved 1F1B = 2 stages per rank, its generate_split_points):
    - Llama 3.1 70B, 256 GPUs, FSDP32·TP8, local batch 16, full AC, Float8: 829 (TP blocking) and 876 (async TP);
      2025-06: BF16 597.3 / 652.4, Float8 809.8 / 942.4 → −5.9%, +0.3%, −0.6%, +4.1%, −3.6%, −6.8% (−1.5%, +4.8%,
      +3.3%, +7.5%, +0.8%, −2.5% before torchtitan's separate wq/wk/wv and w1/w3 GEMMs were modelled: at TP8 wk and wv
      are thin GEMMs over the gathered input, run at their memory floor, and the backward sums the three input
      gradients on the gathered tensor). The Float8 rows ran −13% and −18% while every TP all-gather was charged in
      16 bits: torchao's TP plans gather FP8.
    - Llama 3.1 405B, 512 GPUs, FSDP8·TP8·PP8, local batch 32 in 8 micro-batches, full AC, Float8 + async TP: 1F1B
      100, interleaved 128 → +3.4%, +4.3% (+7.0%, +7.8% with fused projections).
    - Llama 3.1 8B with context parallelism, 8 GPUs, full AC, Float8: 32K CP1 3,890, 64K CP2 2,540, 128K CP4 1,071,
      256K CP8 548 → −8.3%, −15.3%, +12.0%, +16.1% with FlashAttention-2 at its 8K figure. Every row holds 32K
      positions per GPU, and FlashAttention-2 runs faster there (cudnn-frontend's PyTorch-SDPA column: 345.64 /
      316.92 TFLOPS at 32K causal against 321.94 / 275.40 at 8K); read at that length: −1.5%, −7.6%, +23.4%, +28.7%
      (−1.3%, −7.4%, +23.8%, +29.2% with separate projections and the sustained fraction refitted to 0.964;
      −1.3%, −10.8%, +17.7%, +21.8% with the ring's merge traffic, below; −1.3%, −11.4%, +17.0%, +21.3% with its
      K,V all-gather under the first step only, below).
    - Llama 3.1 405B with context parallelism (Table 6, added 2026-12-04), 512 GPUs, TP8·PP8 and FSDP·CP = 8, local
      batch 8 in 8 micro-batches of 1, 1F1B, full AC, Float8 + async TP: 32K CP1 76, 64K CP2 47, 128K CP4 31, 256K
      CP8 16 → −0.5%, +13.3%, +9.0%, +21.9% (+17.1%, +15.0%, +30.7% before the ring's merge traffic). Its CP1 row holds although its 1F1B bubble (7 of 8 micro-batches'
      worth) is most of the step; every CP row misses by 15-31%, and the published per-token time grows 1.62x,
      2.45x, 4.75x where the model gives 1.37x, 2.12x, 3.62x. With the 8B rows above, that PyTorch release's
      context parallelism costs more than the model charges, in both models, inside one node (8B) and across
      nodes (405B); not identified.
      The published attention time per FLOP jumps 1.4x between CP2 and CP4 at the same 32K chunk per rank, then
      holds from CP4 to CP8. PyTorch's ring attention of the time (torch/distributed/tensor/experimental/
      _attention.py: fp32 merges of each step's output, the K/V all-gather and the fp32 dK/dV ring, each under the
      next step's kernel) moves memory outside the kernel at every step: counted op by op (stacks.yaml torchtitan
      cp_ring, 46 B per query element and step forward, 60 backward, K and V expanded to the query heads by
      repeat_kv), 2.1 s of the 256K step and 4-9 points on each CP row, not the 40%. Its K,V rotation is an
      all-gather (rotate_method ALL_GATHER by default, _AllGatherRotater), waited on after the first ring step, so
      only that step, 1/cp of the call, hides it; the fp32 dK,dV hop after the last backward step has nothing to hide
      under (stacks.yaml torchtitan cp_ring rotate: allgather). Across nodes that is 11.6 s of the 405B CP8 step:
      405B +8.9%, +4.1%, +12.6%; inside one node (8B) the gather hides under the first step and the rows hardly move.
      The rest is not identified; the 8B CP4 and CP8 rows miss the 15% bound, recorded; the table's mean is 6.5%
      (7.7% before the all-gather).
    - Llama 3.1 8B, 64 GPUs, FSDP8·TP8, local batch 12, per-op SAC: BF16 4,378 / 4,809.4, Float8 5,078.1 / 5,570.1
      → +15.5%, +20.2%, +21.4%, +22.1% (+21.7%, +23.0%, +25.3%, +23.6% before the policy's second all-gather of each
      column-parallel input was charged): the model still charges TP8 on the 8B 15-20% less than it costs there, in
      both dtypes and with or without async TP, while the 70B TP8 rows hold. With torchtitan's separate projections
      (wq, wk, wv, w1, w3 as their own GEMMs, wk and wv memory-bound at 98,304 × 128 × 4,096, and the summed input
      gradients of the gathered tensor): +8.5%, +14.0%, +13.2%, +14.8%.
    - Two of PyTorch's TP costs, added 2026-12-05 (stacks.yaml torchtitan tp_overlap_fusion, sp_layout_copies).
      Async TP fuses a reduce-scatter only with the one matmul that produces its input (inductor
      micro_pipeline_tp.py), and the separate projections' summed input gradients come from none, so two
      reduce-scatters per layer stay blocking: 8B async +14.0% → +10.4%, +14.8% → +10.5%; 70B async +4.1% → +1.9%,
      −6.8% → −9.0%; 405B +3.4% → +1.2%, +4.3% → +2.1%. Each fused reduce-scatter then sums the tp pulled partial
      outputs in a reduction kernel of its own (reads M×N, writes M×N/tp): 8B async +8.9%, +8.7%; 70B async +0.1%,
      −11.0%, 2024-12 −4.3%; 405B −0.4%, +0.5%, CP1 −3.2%, CP2/4/8 +6.9%, +2.9%, +11.8%. And the sequence dim sits
      behind the batch dim (Shard(1)),
      so each blocking all-gather and each reduce-scatter of a matmul's output copies the whole tensor once
      (torch.cat of chunks; torchtitan pull request #437, pytorch/pytorch issue #143985): 8B blocking +8.5% → −0.4%,
      +13.2% → +6.0%, but 70B blocking −0.6% → −7.1%, −3.6% → −9.5% and the 2024-12 row −5.9% → −11.6%. The copies
      are real in the source, so they stay; the 70B TP8 rows (full AC, 2.15 GB gathers) now ask for something the
      model over-charges there, not identified. The async-TP table's mean 8.2% → 6.5%, the 2024-12 table's 6.5% →
      6.6%.
    - The attention's Q, K + V and output at their real widths in the elementwise traffic (Llama's grouped K/V carry
      5h of Korthikanti's 8h), added 2026-12-06, with the sustained fraction solved again (0.960): 8B CP rows −2.1%,
      −12.3%, +15.6%, +19.7%; 70B TP8 −11.9%, −4.6%; 405B CP1 −4.0%, CP2/4/8 +5.8%, +1.8%, +10.5%; the 2024-12
      table's mean 5.8%, the async-TP table's 6.6%."""
    fitted = {r["key"] for fit in fidelity.sustained_clock_fit_rows().values() for r in fit}
    fitted |= {r["key"] for fit in fidelity.elementwise_fit_rows().values() for r in fit}
    e = {p.key: p.error for t in (META, META_ASYNC_TP) for p in _table(t) if p.key not in fitted}
    assert len(e) == 21  # with the 128-GPU eager row (test below)
    for k in ("tt2412-70b-tp8", "tt2412-70b-tp8-async", "tt2506-70b-bf16", "tt2506-70b-bf16-async",
              "tt2506-70b-fp8", "tt2506-70b-fp8-async"):
        assert abs(e[k]) <= 0.12, k
    assert all(abs(e[k]) <= 0.05 for k in ("tt2412-405b-1f1b", "tt2412-405b-interleaved"))
    assert abs(e["tt2412-8b-32k"]) <= 0.03 and abs(e["tt2412-8b-64k-cp2"]) <= 0.125
    assert all(0.15 <= e[k] <= 0.24 for k in ("tt2412-8b-128k-cp4", "tt2412-8b-256k-cp8"))
    assert abs(e["tt2412-405b-cp1"]) <= 0.045
    assert all(0.01 <= e[f"tt2412-405b-cp{c}"] <= 0.14 for c in (2, 4, 8))
    meta = [abs(p.error) for p in _table(META)]
    assert len(meta) == 18 and sum(meta) / len(meta) <= 0.07
    assert abs(e["tt2506-8b-bf16"]) <= 0.03 and abs(e["tt2506-8b-fp8"]) <= 0.07
    assert all(0.07 <= e[k] <= 0.12 for k in ("tt2506-8b-bf16-async", "tt2506-8b-fp8-async"))
    async_tp = [abs(p.error) for p in _table(META_ASYNC_TP)]
    assert len(async_tp) == 8 and sum(async_tp) / len(async_tp) <= 0.07


def test_torchtitan_eager_factor_is_its_fit_and_holds_on_other_gpus_and_dates():
    """torchtitan without torch.compile (stacks.yaml torchtitan-eager: each elementwise op of a block its own kernel).
    Fit: pytorch/torchtitan benchmarks/llama3_h100_202412_torchtitan.md Table 1, Llama 3.1 8B, 8 H100 96GB at 500 W,
    FSDP, local batch 2, selective op AC, BF16, eager: 5,762 tokens/s/GPU (the compiled run, 6,667, is the stack
    torchtitan: +1.7%). Out of the fit: Table 3, the same on 128 GPUs, eager 5,605 → +3.1% (compiled 6,514: +4.5%);
    and torchtitan's docs/performance.md as of 1ea476e9f (2024-04-24), Llama 3 on 64 A100 80GB, FSDP2, local batch 1,
    seq 8192, compile = false in the configs of that commit: 8B selective op AC 2,973 → +2.0%, 8B selective layer AC
    (every second block checkpointed) 2,904 → +1.8%, 70B full AC 331 → −2.2% (mean 2.0%, inside the ≤3% A100
    target): another GPU, date and model size than the fit, at the default framework_efficiency fitted on Narayanan
    Table 1. With the fused count (the torchtitan stack) those A100 rows were +11.3%, +9.6%, +2.4%."""
    from aiinfra.perf.stacks import stack

    factor = stack("torchtitan-eager").elementwise_factor
    assert abs(fidelity.solve_elementwise_factor("torchtitan-eager") - factor) <= 0.01
    fit = {s: [r["key"] for r in rs] for s, rs in fidelity.elementwise_fit_rows().items()}
    assert fit == {"torchtitan-eager": ["tt2412-8b-8-bf16-eager"]}
    meta = {p.key: p for p in _table(META)}
    assert abs(meta["tt2412-8b-8-bf16-eager"].error) <= 0.005
    assert abs(meta["tt2412-8b-128-bf16-eager"].error) <= 0.04
    for n in (8, 128):  # eager is slower than compiled by about the published 1.16x
        speedup = meta[f"tt2412-8b-{n}-bf16"].predicted / meta[f"tt2412-8b-{n}-bf16-eager"].predicted
        assert 1.10 <= speedup <= 1.22
    a100 = {p.key: p.error for p in _table("torchtitan 2024-04 A100 80GB (Meta)")}
    assert set(a100) == {"tt2404-a100-8b-op", "tt2404-a100-8b-layer", "tt2404-a100-70b"}
    assert sum(map(abs, a100.values())) / 3 <= 0.03 and max(map(abs, a100.values())) <= 0.03
    with pytest.raises(ValueError, match="no row is marked fit_elementwise on stack torchtitan"):
        fidelity.solve_elementwise_factor("torchtitan")


def test_nemo_2407_h100_fp8_out_of_sample():
    """NVIDIA/NeMo docs/source/performance/performance_summary.md at 9c5c5e9 (2024-09-09), NeMo 24.07 on DGX-H100,
    FP8, tokens/s/GPU: GPT3-5B TP1 mb4 23,406; GPT3-20B TP2 mb2 5,851; GPT3-175B TP4·PP8·VP6 mb1 716 (128 GPUs) and
    mb2 825 (512 GPUs); Llama 2 7B 16,934, 13B PP4·VP10 8,715, 70B TP4·PP4·VP20 1,728; Llama 3 8B CP2 12,273, 70B
    TP4·PP4·CP2·VP5 1,524. Recompute none and TP overlap per model as NeMo-Framework-Launcher's configs of the time
    (7316a8d) set them. Never fitted on, and a year older than the Megatron-Bridge releases Hopper's constant was
    fitted on: +3.6%, +10.0%, +2.1%, −8.3%, +4.0%, +4.4%, +6.7%, +10.6%, +10.7%, mean 6.7% (inside the ≤7% target,
    no row beyond 15%). The two GPT3-175B rows differ by 15% published and 4% predicted (mb1 vs mb2 at s = 2048).
    With the TP all-gathers in FP8 (stacks.yaml fp8_gather; Hopper 0.742): +1.3%, +8.5%, +3.0%, −7.4%, +1.7%, +2.1%,
    +6.9%, +8.2%, +10.8%, mean 5.5%. With attention read at the sequence each GPU holds (cuDNN on H200 by length:
    GPT-3's 2K runs at 484 / 370 TFLOPS, Llama 2's 4K and the CP2 ranks' 4K at 591 / 474, against 644 / 541 at 8K):
    −2.1%, +6.1%, +1.7%, −8.6%, −0.3%, +0.3%, +5.8%, +5.0%, +8.6%, mean 4.3%. With the Llama 3 CP2 rings' merge
    traffic (stacks.yaml megatron-core cp_ring): Llama 3 8B +3.3%, 70B +7.5%, mean 4.0%."""
    errs = {p.key: p.error for p in _table("NeMo 24.07 DGX-H100 FP8")}
    assert len(errs) == 9
    assert sum(map(abs, errs.values())) / 9 <= 0.05 and max(map(abs, errs.values())) <= 0.095
    assert errs["nemo2407-gpt3-175b-128"] > errs["nemo2407-gpt3-175b-512"]


HOPPER_FIT = {"Llama 3 (2024) Table 4, H100 BF16", "Megatron-Bridge 25.11 DGX-H100 FP8-CS",
              "torchtitan 2025-06 H200 FP8 (Trainy)", "Megatron-Bridge 26.04.01 DGX-H100 FP8"}


def test_every_row_has_a_source_and_fit_rows_are_recorded():
    """The default constant is fitted on Narayanan Table 1 (A100) alone; Hopper's own on the dense H100/H200 tables
    of four independent sources; the H100 MoE rows and every other family's rows stay out of sample."""
    srcs = validation.sources()
    rows = fidelity.rows()
    assert all(r["table"] in srcs for r in rows)
    fit_tables = {"Narayanan 2021 Table 1"} | HOPPER_FIT
    assert {r["key"] for r in rows if r.get("fit")} == {r["key"] for r in rows if r["table"] in fit_tables}


def test_catalog_constants_are_the_fit_and_each_source_held_out_is_predicted():
    """The catalog's framework_efficiency values are the median rule's fixed points on the rows marked fit (0.831 on
    Narayanan Table 1; Hopper 0.742): at them the median fit row's published/predicted is 1. Leave-one-source-out
    refits the held-out source's family without it. Held out of the Hopper fit: Llama 3 4.6%, Megatron-Bridge 25.11
    10.1%, 26.04.01 3.9%, torchtitan's H200 rows 12.4% (5.3%, 8.7%, 1.7%, 10.0% before the TP all-gathers of FP8
    linears were charged at 1 B per element, stacks.yaml fp8_gather; 16.9% on the H200 rows with torch._scaled_mm at
    0.59; their attention runs FlashAttention-2, test above); with the
    A100 constant alone, all out of sample, they were 9.9%, 9.4%, 5.0%, 9.3%. As of 2026-12-04, with the CP rings'
    merge traffic charged (stacks.yaml cp_ring; benchmarks/fidelity.py): 4.6%, 9.5%, 2.9%, 12.4%. Held out, Narayanan Table 1 is predicted at 3.7% from the Korthikanti rows' refit (0.861;
    4.9% from 0.877 with one step of the rule)."""
    from aiinfra.perf.training import fitted_architectures, framework_efficiency

    at_one = fidelity.predict_all(1.0)
    cache: dict = {}
    fits = fidelity.refit(at_one, cache)
    assert abs(fits["default"] - framework_efficiency()[0]) <= 0.001
    assert set(fits) - {"default"} == set(fitted_architectures()) == {"hopper"}
    assert abs(fits["hopper"] - fitted_architectures()["hopper"][0]) <= 0.001
    loso = fidelity.leave_one_source_out(at_one, cache)
    assert set(loso) == {r["table"] for r in fidelity.rows()}
    for fw, mean, worst in loso.values():
        assert 0.5 < fw < 1.0 and 0 <= mean <= worst
    assert all(loso[t][1] <= 0.105 for t in HOPPER_FIT - {"torchtitan 2025-06 H200 FP8 (Trainy)"})
    assert loso["torchtitan 2025-06 H200 FP8 (Trainy)"][1] <= 0.13
    assert loso["Narayanan 2021 Table 1"][1] <= 0.04
    for arch, fw in (("default", framework_efficiency()[0]), ("hopper", fitted_architectures()["hopper"][0])):
        rows = fidelity.fit_rows(at_one, arch)
        at_fw = [fidelity.predict(r, fw) for r in fidelity.rows() if r["key"] in {p.key for p in rows}]
        assert abs(fidelity.fit_framework_efficiency(at_fw, fw) / fw - 1) <= 0.002  # the median row is exact


def test_published_split_rank_is_explained_in_numbers():
    """Narayanan et al. 2021 Table 1: 1T on 3,072 A100s ran TP8·PP64; with the 2021 Megatron features the
    published split ranks #1 of the layouts that fit; a rank below #1 comes with the parts that explain it."""
    row = next(r for r in fidelity.rows() if r["key"] == "narayanan-1t")
    x = fidelity.published_rank(row)
    assert x["rank"] <= 3 and x["speedup_of_best"] >= 1.0
    row = next(r for r in fidelity.rows() if r["key"] == "llama3-405b-8k-16384")
    y = fidelity.published_rank(row)
    assert y["rank"] == 1 or y["why"]


def test_megatron_bridge_h100_moe_out_of_sample():
    """Megatron-Bridge docs/performance-summary-archive.md, 26.04.01 container, DGX-H100 MoE (force-balanced routing),
    out of every fit until 2026-12-07 (the Qwen3-30B row is the MoE stall's fit since, below): Qwen3-30B-A3B on 16
    GPUs, FP8, EP16 over Hybrid-EP → 8,960 tokens/s/GPU; Qwen3-235B-A22B on 256
    GPUs, FP8, TP2·PP8·VP4·EP32 with whole experts and the all-to-all overlapped with the merged forward/backward of
    the next micro-batch → 1,712; GPT-OSS-120B on 64 GPUs, BF16, PP4·EP8 → 5,824.
    Without a host term the two small-hidden rows ran +72% and +71% fast in the model: Megatron's dispatchers wait on
    the host before each forward all-to-all (Megatron-LM MoE README, "CPU Overhead Bottleneck"). With megatron-core's
    MoE host constants (stacks.yaml moe_host, solved on two DGX-B200 rows): Qwen3-30B +0.1%; Qwen3-235B +5.2% (its
    overlap keeps the GPU busy through the sync; +5.2% rather than −3.1% since the all-to-all now hides under the
    paired micro-batch's whole layer, not only its GEMMs); GPT-OSS +25.1% (+25.6% before routed-expert gradients synced
    over the expert-data-parallel group). NVIDIA's blog "Boosting MoE Training
    Throughput with Advanced Fusion Kernels" (2026-06-15) credits +93% end to end for GPT-OSS to fused MoE kernels
    (its clamped, biased GLU in the GEMM epilogue) and sync-free full-iteration CUDA graphs: part of that is unfused
    GPU work this model does not charge. With attention read at the 4K these rows run (cuDNN on H200: 591 / 474
    TFLOPS against 644 / 541 at 8K): −2.3%, +4.0%, +22.7%; with GPT-OSS's 64-wide heads at cuDNN's head-dim-64
    figures (336 / 289 TFLOPS at 4K on the same H200, kernels.yaml attention_*_d64): +19.1%. GPT-OSS's expert
    activation syncs the host once more per forward MoE layer (Megatron's weighted_bias_quick_geglu_impl builds its
    offset with torch.tensor(..., device=...), a blocking copy: stacks.yaml moe_activation_syncs), charged at the
    dispatcher's fitted stall: −4.7%. The dispatch all-to-all runs while the host catches up after the dispatcher's
    sync, so the GPU idles the host time less the dispatch (the stall refitted to 4.41 ms of host time): −2.8%, +4.0%,
    −7.7% (GPT-OSS's intra-node dispatch, 0.26 ms, hides little of its dispatcher's stall and none of its
    activation's). Not charged: the recipe (Megatron-Bridge v0.4.1 scripts/performance/configs/
    gpt_oss, H100 V2) also recomputes layernorm and moe_act, which this model does not represent; its recomputed
    activation would sync a third time, and at the same stall the row would be −20.6%. With each stack's loss traffic
    counted (megatron-core: Transformer Engine's Triton cross-entropy, 10 B per logit element) and the default
    framework_efficiency and the host constants solved again (0.833; 8.67 ms, 4.44 ms): −3.0%, +4.2%, −7.6%. With the
    recipe's recompute_modules run as Megatron runs them (plan --recompute-modules layernorm,moe_act: the MoE
    pre-MLP norm and the expert activation again in backward, their outputs not kept), GPT-OSS −8.2%; charging the
    recomputed activation's sync the forward stall as well would make it −24.5% (that stall was fitted on the
    dispatcher's routing work after its sync, not on a backward that has only long kernels to issue). With the
    all-to-all overlap paired as Megatron's combined 1F1B pairs it (Qwen3-235B +3.7%), then the token permutation's
    memory traffic charged (stacks.yaml moe_permute) and the host stall solved again (3.77 ms): −0.6%, +1.5%,
    −4.4%. Since 2026-12-07 the Qwen3-30B row is what the stall is solved on (3.64 ms; B200's clock, which the DGX-B200
    row it was solved on rests on, is itself fitted now): 0.0%, +0.9%, −3.5%."""
    errs = {p.key: p.error for p in _table("Megatron-Bridge 26.04.01 DGX-H100 MoE")}
    assert abs(errs["mbridge-2604-qwen3-30b"]) <= 0.03 and abs(errs["mbridge-2604-qwen3-235b"]) <= 0.05
    assert abs(errs["mbridge-2604-gptoss-120b"]) <= 0.07
    assert sum(abs(e) for e in errs.values()) / len(errs) <= 0.04


def test_moe_host_constants_are_their_fit_and_carry_to_other_gpus_and_layouts():
    """stacks.yaml megatron-core moe_host (8.67 ms per MoE layer, 3.74 ms of host time after each forward sync) was
    what met the
    two DGX-B200 Qwen3-30B rows exactly (Megatron-Bridge 26.02 MBS 1 → 9,691 tokens/s/GPU, host-bound; 26.04.01 MBS 4
    → 27,136, GPU-bound plus the stall). Out of that fit: 26.02.01 DGX-H100 PP2·VP12·EP8 with DeepEP and the all-to-all
    overlapped → 9,058 (+0.3%); the CUDA-graph guide's eager H100 BF16 EP16 run with the plain all-to-all, 41.36 s a
    step → 6,338 (−7.8%); 26.04.01 DGX-B300 MBS 8 → 30,720 (+7.0%), DGX-GB200 MBS 4 → 26,112 (+7.2%), DGX-GB300 MBS 8
    → 31,744 (+8.3%; Grace hosts, not the fit's x86 ones). With attention read by length (these run 4K sequences:
    cuDNN on H200 at 591 / 474 TFLOPS there, on GB300 at 1,703 / 1,248): eager H100 −9.4%, B300 +9.0%, GB200 +7.2%,
    GB300 +10.2%. With the dispatch all-to-all running while the host catches up after the sync (the stall refitted
    from 3.96 ms idle to 4.41 ms of host time, of which the fit row's 0.46 ms dispatch leaves 3.95 idle): the eager
    EP16 run, whose dispatch crosses two nodes in 1.54 ms, −2.2%; B300 +11.3%, GB200 +7.3%, GB300 +12.6% (short
    NVLink dispatches, so the larger host time shows). With the token permutation charged as GPU work (stacks.yaml
    moe_permute; the stall solved again, 3.77 ms of host time): 26.02.01 +0.4%, eager −2.9%, B300 +8.1%, GB200 +2.2%,
    GB300 +9.2%. Since B200's clock is fitted on dense rows (gpus.yaml b200, 2026-12-07), the stall is solved on
    26.04.01's DGX-H100 Qwen3-30B row instead (EP16 over Hybrid-EP, MBS 1, no CUDA graph: 8,960 tokens/s/GPU; 3.64
    ms), and the B200 MBS 4 row is held out: −6.1% (solved on it at B200's fitted clock, the stall would be 2.83 ms
    and every H100 Qwen3-30B row 4-8 points fast). 26.02.01 +0.6%, eager −2.6%, B300 +8.3%, GB200 +2.3%, GB300
    +9.4%."""
    from aiinfra.perf.stacks import stack

    h, st = fidelity.solve_moe_host()
    mc = stack("megatron-core")
    assert abs(h - mc.moe_module_s * 1e3) <= 0.02 and abs(st - mc.moe_stall_s * 1e3) <= 0.02
    fit = fidelity.moe_host_fit_rows()
    assert {k: r["key"] for k, r in fit.items()} == {"layer": "mbridge-2602-b200-qwen3-30b",
                                                     "stall": "mbridge-2604-qwen3-30b"}
    assert all(r["key"] in mc.moe_host_fit for r in fit.values())
    b200 = {p.key: p.error for p in _table("Megatron-Bridge DGX-B200 MoE (26.02, 26.04.01)")}
    assert abs(b200["mbridge-2602-b200-qwen3-30b"]) <= 0.005 and -0.08 <= b200["mbridge-2604-b200-qwen3-30b"] <= -0.04
    h100 = {p.key: p.error for p in _table("Megatron-Bridge 26.04.01 DGX-H100 MoE")}
    assert abs(h100["mbridge-2604-qwen3-30b"]) <= 0.005
    out = {p.key: p.error for t in ("Megatron-Bridge 26.02.01 DGX-H100 MoE", "Megatron-Bridge CUDA-graph guide, H100 BF16 eager",
                                    "Megatron-Bridge 26.04.01 B300/GB200/GB300 MoE") for p in _table(t)}
    assert abs(out["mbridge-26021-qwen3-30b"]) <= 0.03 and abs(out["mbridge-cgdoc-qwen3-30b-eager"]) <= 0.05
    assert all(abs(out[k]) <= 0.10 for k in ("mbridge-2604-b300-qwen3-30b", "mbridge-2604-gb200-qwen3-30b",
                                              "mbridge-2604-gb300-qwen3-30b"))


def test_megatron_bridge_blackwell_moe_out_of_sample():
    """Megatron-Bridge docs/performance-summary-archive.md, 26.04.01 container, out of every fit (recipes at tag
    v0.4.1). Qwen3-235B-A22B on 256 GPUs, MXFP8, GBS 8192: DGX-B200 PP8·EP8 MBS 1 → 3,776 tokens/s/GPU (+12.8%);
    DGX-B300 MBS 2 → 5,936 (−12.2%); DGX-GB200 PP8·VP3·EP32 → 5,680 (−24.1%); DGX-GB300 PP4·VP12·EP32 MBS 2 → 6,944
    (−17.5%). The GB200 run takes 7.6 ms per MoE layer and micro-batch, under the 8.67 ms host floor fitted on x86
    DGX-B200 hosts without CUDA graphs; its recipe graphs attention, router and preprocessing on Grace hosts, which
    this model does not credit. GPT-OSS-120B on 64 GPUs, BF16, GBS 1280, MBS 4: DGX-B200 EP8 → 13,568 (+58.0%);
    DGX-B300 EP8 → 15,232 (+41.9%); DGX-GB200 EP64 → 16,640 (+119.4%); DGX-GB300 EP64 → 19,200 (+28.0%). Every GPT-OSS
    run, the H100 one included, was slower than the model, by 1.2-2.2x, while Qwen3 runs of the same release, GPUs
    and dispatchers are within 25%: a cost particular to GPT-OSS was missing. One is now charged: its expert
    activation syncs the host once more per forward MoE layer (stacks.yaml moe_activation_syncs), at the
    dispatcher's fitted stall: B200 +36.8%, B300 +23.1%, GB300 +5.8%; GB200 runs the all-to-all overlap, which
    hides the dispatcher's sync (an event on a side D2H stream, token_dispatcher.py _maybe_dtoh_and_synchronize)
    but not the activation's blocking copy, which drains the compute stream: +66.4% (+119.3% with no stall
    charged under the overlap). The stall per forward MoE layer that would meet each run, in
    units of the fitted one, is 1.8 (H100), 4.6 (B200), 3.7 (B300) and 2.3 (GB300), against the 2 charged (the H100
    and B200 recipes also recompute moe_act, a third sync): no one stall per sync fits them, so the sync is not the
    whole GPT-OSS cost. B200 and B300 were +82% and +64% before routed-expert gradients
    synced over Megatron's expert-data-parallel group (8 ranks, one per node) rather than all 64 ranks. The bounds
    record the misses; they fail if the model gets worse, or if GPT-OSS stops running slower than predicted without
    this docstring being revisited. With cuDNN's measured attention by length on GB200 and GB300 (kernels.yaml):
    B300 and GB300 Qwen3-235B −11.2% and −16.6%, GPT-OSS +42.4% and +28.6%; the B200 and GB200 rows do not move.
    With the dispatch all-to-all running while the host catches up after the dispatcher's sync (the stall refitted
    to 4.41 ms of host time): Qwen3-235B +11.7%, −10.0%, −23.9%, −14.6%; GPT-OSS +34.5%, +21.1%, +62.0%, +5.4%. With
    GB200's sustained compute fraction (0.906, solved on its dense 25.11 rows): GB200 Qwen3-235B −26.5% (the one
    GB200 row it moves away), GPT-OSS +52.4%; at 0.871 (solved again once the 70B row ran its recipe's activation
    offload): Qwen3-235B −27.6%, GPT-OSS +48.7%. With the B200 and GB200 recipes' recompute_modules (layernorm,
    moe_act) run as modules: B200 +33.6%, GB200 +47.0% (+16.5% and +18.7% if the recomputed activation's sync stalled
    as a forward one does, which the H100 row contradicts: test_megatron_bridge_h100_moe_out_of_sample). With the
    overlap's unpaired passes (its first forward and last backward of five micro-batches) exposed and its phases
    paired as Megatron's combined 1F1B pairs them: GB200 GPT-OSS +37.5%."""
    q = {p.key: p.error for p in _table("Megatron-Bridge 26.04.01 Blackwell Qwen3-235B")}
    assert len(q) == 4 and all(abs(e) <= 0.28 for e in q.values()) and sum(map(abs, q.values())) / 4 <= 0.18
    o = {p.key: p.error for p in _table("Megatron-Bridge 26.04.01 Blackwell GPT-OSS")}
    assert len(o) == 4 and all(0.0 < e <= 0.70 for e in o.values()) and o["mbridge-2604-gb300-gptoss-120b"] <= 0.1


def test_a_validation_row_with_a_key_no_prediction_reads_is_refused(monkeypatch):
    """Every key of a training_validation.yaml row is one predict() reads (or a fit flag); a misspelt setting, such
    as cuda_graph_scopes for cuda_graph_scope, would otherwise be dropped silently and the row predicted without it."""
    doc = {"entries": {"x": {"table": "t", "model": "qwen3-30b-a3b", "cuda_graph_scopes": ["attn"]}}}
    monkeypatch.setattr(validation, "read_yaml", lambda _path: doc)
    with pytest.raises(ValueError, match="x: unknown key 'cuda_graph_scopes'"):
        fidelity.rows()


def test_a_row_whose_split_is_not_its_gpu_count_is_refused(monkeypatch):
    """A row's layout must multiply out to its GPU count: tokens/s per GPU divides by `gpus`, so a data-parallel degree
    typed for another scale would predict a run nobody made (256 GPUs at TP4·PP8·CP2 is DP4, not DP16)."""
    doc = {"entries": {"x": {"table": "t", "model": "llama-3.1-405b", "gpus": 256, "tp": 4, "pp": 8, "cp": 2, "dp": 16}}}
    monkeypatch.setattr(validation, "read_yaml", lambda _path: doc)
    with pytest.raises(ValueError, match="x: tp·pp·cp·dp = 1024, not its 256 GPUs"):
        fidelity.rows()
    # without dp the prediction takes gpus // (tp·pp·cp), which must not round down
    doc["entries"]["x"] = {"table": "t", "model": "llama-3.1-405b", "gpus": 250, "tp": 4, "pp": 8, "cp": 2}
    with pytest.raises(ValueError, match="x: tp·pp·cp·dp = 192, not its 250 GPUs"):
        fidelity.rows()


def test_a_row_with_quantized_params_megatron_would_refuse_is_refused(monkeypatch):
    """Megatron-LM arguments.py (d98e8a6) runs --fp8-param-gather only with FP8/FP4 linears, the distributed optimizer
    or FSDP, and no optimizer CPU offload outside delayed scaling: a validation row claiming otherwise is refused with
    the same rule plan and size train apply, not predicted."""
    row = {"table": "t", "model": "llama-3.1-8b", "gpus": 8, "dp": 8, "dtype": "fp8", "zero": 1, "quantized_params": True}
    doc = {"entries": {"x": row}}
    monkeypatch.setattr(validation, "read_yaml", lambda _path: doc)
    assert fidelity.rows()[0]["quantized_params"]
    for bad, msg in (({"dtype": "bf16"}, "its dtype is bf16"), ({"zero": 0}, "plain DDP"),
                     ({"offload": "optimizer"}, "no optimizer offload")):
        doc["entries"]["x"] = {**row, **bad}
        with pytest.raises(ValueError, match=f"x: .*{msg}"):
            fidelity.rows()


def test_deepseek_v3_report_on_h800_out_of_sample():
    """DeepSeek-V3 Technical Report (arXiv 2412.19437, 2024-12), section 1: 180K H800 GPU-hours per trillion tokens on
    2,048 H800, i.e. 1,543 tokens/s/GPU, a floor on the step rate (every pre-training hour is counted). Sections 3.2
    to 4.2: no TP, PP16, EP64, ZeRO-1 (DP 128), FP8 linear layers, RMSNorm and MLA up-projections recomputed, one MTP
    layer, 4,096 tokens, 15,360 sequences, DualPipe, which the model stands in for with Megatron's interleaved
    schedule (vp 2: 120 micro-batches in Megatron-Core's groups of 20) and its EP overlap. Never fitted on: +2.2%,
    within 7% and above the floor. The GPU holding the
    MTP layer and both passes through the output head decides it: the planner's split gives it one layer, as
    Megatron-Bridge's DeepSeek-V3 layouts do; Megatron's account flags (one slot for the loss) leave it two and
    predict about 15% less (the report balances that rank: section 3.2.3 puts the embedding and the head on one
    rank)."""
    (p,) = _table("DeepSeek-V3 technical report (2024), 2,048 H800 FP8")
    assert 0.0 <= p.error <= 0.07
    assert p.layout.startswith("TP1·PP16·CP1·EP64·DP128 mb1 v2")
    row = next(r for r in fidelity.rows() if r["key"] == "dsv3-h800")
    assert fidelity.predict({**row, "pipeline_split": "account"}).predicted < 0.9 * p.predicted
