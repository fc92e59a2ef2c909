"""Pydantic specs shared by every package: what a user has or wants, validated once.

Specs hold SI units (bytes, B/s, FLOP/s, W) except where a field name says otherwise
(`memory_gb` is the vendor's decimal GB figure, kept as printed on the datasheet).
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, model_validator

from aiinfra.errors import LayoutError, SpecError

DTypeName = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4", "int4"]

# Names the step-time model reads from the kernel tables (catalog/data/kernels.yaml), kept here, below the catalog
# loader that refuses any other name in a user's file and the perf modules that read them:
LINEAR_DTYPES = ("bf16", "fp16", "fp8", "fp4")  # the dtypes a transformer's linear layers run in
FP8_GEMM_ROUTES = ("", "scaled_mm")  # Transformer Engine / cuBLASLt (absent), or torch._scaled_mm
# flash-attention routes a stack may call: cuDNN fused attention (Transformer Engine), FlashAttention-2, -3, and the
# Triton FlashAttention of the flash-attn package's flash_attn_triton.py (llm-foundry's attn_impl: triton)
ATTENTION_KERNELS = ("cudnn", "fa2", "fa3", "triton")


# Input bounds shared by `size train` and `plan`, so both refuse the same sizes.
MAX_GLOBAL_BATCH = 1 << 24  # sequences per step; the largest published runs use ~16k (a bound on the search's work)
MAX_SEQ = 1 << 24  # tokens per sequence (16Mi; long-context runs stay far below)

class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Architectures that are a variant of another: lookups with no entry of their own (node template, driver floor,
# simulated clocks) use the base architecture's. Blackwell Ultra (B300/GB300, sm_103) is Blackwell with doubled
# SFU throughput, more HBM and power (NVIDIA technical blog "Inside NVIDIA Blackwell Ultra", 2025).
ARCH_BASE = {"blackwell-ultra": "blackwell"}


def arch_family(arch: str | None) -> str:
    """The base architecture of `arch` (itself when it is not a variant)."""
    a = (arch or "").lower()
    return ARCH_BASE.get(a, a)


class GpuSpec(Spec):
    """One accelerator SKU from catalog/data/gpus.yaml. Throughput figures are dense (no sparsity)."""

    key: str
    name: str
    vendor: Literal["nvidia", "amd", "intel"] = "nvidia"
    architecture: str
    memory_gb: float = Field(gt=0, description="vendor capacity, GB = 1e9 bytes")
    memory_type: str
    memory_bw_gbps: float = Field(gt=0, description="HBM/GDDR bandwidth, GB/s (1e9)")
    tflops: dict[DTypeName, PositiveFloat] = Field(description="dense TFLOP/s (TOPS for int8) by dtype")
    nvlink_gbps: float = Field(ge=0, description="NVLink/Infinity Fabric per GPU, GB/s, bidirectional")
    pcie_gen: int = Field(ge=3, le=6)
    form_factor: Literal["sxm", "pcie", "oam", "superchip"]
    tdp_w: float = Field(gt=0)
    mig: bool
    mig_max_instances: int = 0
    pci_device_id: str | None = None
    # The names NVML gives the part (nvmlDeviceGetName; nvidia-smi's name, dcgm-exporter's modelName label),
    # e.g. "NVIDIA H100 80GB HBM3" for h100-sxm; a user catalog may add one spelling as nvml_name.
    nvml_names: list[str] = []
    nvml_name: str | None = None
    memory_total_mib: float | None = Field(default=None, gt=0, description="total framebuffer as nvidia-smi reports it")
    # A part run below its datasheet power (a power cap, a lower-TDP board of the same silicon) cannot hold the boost
    # clock its datasheet peak assumes under dense tensor work: the tensor throughput it sustains, as a fraction of
    # that peak. Every compute time (and the MFU this model reports for the part) uses the sustained figure.
    sustained_compute_fraction: float = Field(default=1.0, gt=0, le=1)
    power_limit_w: float | None = Field(default=None, gt=0, description="the power limit it runs at, W")
    # The scale-up fabric of the system this GPU ships in: which link joins GPUs, and how many GPUs
    # share it at full per-GPU bandwidth (8 on HGX/DGX, 72 on an NVL72 rack, 2-4 over NVLink bridges,
    # 1 where GPUs meet only over PCIe or the network). Derived from form_factor when a user catalog
    # leaves it out.
    scaleup_link: Literal["nvlink-switch", "nvlink-bridge", "infinity-fabric", "pcie"] | None = None
    scaleup_domain: int | None = Field(default=None, ge=1, description="GPUs in one scale-up (NVLink) domain")
    # The link between the GPU and its host's memory, which every offloaded byte crosses: an interconnects.yaml key
    # (absent: the GPU's PCIe generation), the GPUs that share it (a Grace CPU's NVLink-C2C serves two Blackwell
    # GPUs on GB200/GB300), and the CPU memory bandwidth each GPU has for an optimizer step run on the host
    # (absent: the node's, shared by its GPUs).
    host_link: str | None = None
    host_link_share: int = Field(default=1, ge=1, description="GPUs sharing the host link")
    host_memory_bw_gbps: float | None = Field(default=None, gt=0, description="host memory GB/s per GPU")
    source: str
    observed: date | None = None
    aliases: list[str] = []

    @model_validator(mode="after")
    def _default_scaleup(self) -> GpuSpec:
        if self.scaleup_link is None:
            link = {"sxm": "nvlink-switch", "oam": "infinity-fabric"}.get(self.form_factor)
            if link is None:
                link = "nvlink-bridge" if self.nvlink_gbps > 0 and self.form_factor == "pcie" else "pcie"
            object.__setattr__(self, "scaleup_link", link)
        if self.scaleup_domain is None:
            size = {"nvlink-switch": 8, "infinity-fabric": 8, "nvlink-bridge": 2}.get(self.scaleup_link, 1)
            object.__setattr__(self, "scaleup_domain", size)
        return self

    @property
    def scaleup_name(self) -> str:
        """How the scale-up link reads in a sentence (warnings say which fabric TP runs over)."""
        return {
            "nvlink-switch": f"NVLink/NVSwitch ({self.scaleup_domain}-GPU domain)",
            "nvlink-bridge": f"NVLink bridge ({self.scaleup_domain} GPUs)",
            "infinity-fabric": f"Infinity Fabric ({self.scaleup_domain}-GPU domain)",
            "pcie": f"PCIe Gen{self.pcie_gen} (no GPU-to-GPU fabric)",
        }[self.scaleup_link or "pcie"]

    @property
    def memory_bytes(self) -> float:
        return self.memory_gb * 1e9

    @property
    def memory_bw(self) -> float:
        """Bytes/s."""
        return self.memory_bw_gbps * 1e9

    @property
    def half_dtype(self) -> str:
        """The part's 16-bit training dtype: bf16 where it has bf16 tensor cores, else fp16 (V100, T4). MFU and the
        attention efficiencies are fractions of its dense peak."""
        return "bf16" if "bf16" in self.tflops else "fp16"

    def datasheet_flops(self, dtype: str) -> float:
        """Dense FLOP/s of the datasheet for a dtype, the denominator of MFU as every published figure uses it; an
        unsupported dtype is an error, not a silent fallback."""
        if dtype not in self.tflops or not self.tflops[dtype]:
            have = ", ".join(k for k, v in self.tflops.items() if v)
            raise SpecError(f"{self.key} has no dense {dtype} throughput in the catalog; it has: {have}")
        return self.tflops[dtype] * 1e12

    def peak_flops(self, dtype: str) -> float:
        """Dense FLOP/s the part sustains for a dtype: datasheet peak × sustained_compute_fraction (below 1 for a
        power-limited part, whose clocks fall under sustained load)."""
        return self.datasheet_flops(dtype) * self.sustained_compute_fraction


class ModelSpec(Spec):
    """A decoder-only transformer, normalised from an HF config.json or a Megatron-style table row."""

    name: str
    arch: str
    hidden: int = Field(gt=0)
    layers: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    ffn: int = Field(gt=0, description="dense MLP intermediate size")
    vocab: int = Field(gt=0)
    tied_embeddings: bool = False
    max_positions: int = Field(gt=0)
    gated_mlp: bool = True
    norm: Literal["rms", "layer"] = "rms"
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    learned_positions: bool = False
    sliding_window: int | None = None
    # Per-layer attention kind, as HF `layer_types` spells it after normalising: "full", "sliding"
    # (window = sliding_window), "chunked" (Llama 4 local chunks of attention_chunk tokens) or "linear"
    # (linear attention / SSM: a fixed state per sequence instead of a growing KV cache).
    # None means every layer is "sliding" when sliding_window is set, else "full".
    layer_types: tuple[str, ...] | None = None
    attention_chunk: int | None = None
    linear_state_bytes: int = 0  # bf16 bytes of one linear/SSM layer's recurrent state per sequence
    norms_per_layer: int = 2  # Gemma 2/3 sandwich norms: 4
    qk_norm: bool = False  # Qwen3/Gemma 3: an RMSNorm of d_head on q and k in every layer
    attn_sinks: bool = False  # gpt-oss: one learned sink logit per head
    # the gated MLP's activation where the config's hidden_act does not say it: gpt-oss "quick_geglu"
    # (gate·sigmoid(1.702·gate)·(up + 1), both clamped at swiglu_limit; HF modeling_gpt_oss)
    glu_activation: str = ""
    dropout: bool = False  # Megatron GPT/GPT-2 train with dropout; its 1-byte masks are stored activations
    # MoE
    experts: int = 0
    experts_per_token: int = 0
    moe_ffn: int = 0
    shared_experts: int = 0
    first_dense_layers: int = 0
    moe_layer_freq: int = 1
    router_bias: bool = False
    # group-limited routing (DeepSeek-V3 config n_group / topk_group; Megatron --moe-router-num-groups /
    # --moe-router-group-topk): each token's experts come from router_group_topk of router_groups expert groups
    router_groups: int = 1
    router_group_topk: int = 1
    # MLA (DeepSeek)
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_dim: int = 0
    qk_rope_dim: int = 0
    v_head_dim: int = 0
    mtp_layers: int = 0
    source: str = ""

    @property
    def is_moe(self) -> bool:
        return self.experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        if not self.is_moe:
            return 0
        return sum(1 for i in range(self.first_dense_layers, self.layers) if (i - self.first_dense_layers) % self.moe_layer_freq == 0)

    @property
    def dense_layers(self) -> int:
        return self.layers - self.moe_layers

    def attention_groups(self) -> list[tuple[str, int, int | None]]:
        """Layers grouped by how much KV they keep: (kind, layer count, token cap or None)."""
        types = self.layer_types or (("sliding" if self.sliding_window else "full"),) * self.layers
        caps = {"full": None, "sliding": self.sliding_window, "chunked": self.attention_chunk, "linear": 0}
        out: list[tuple[str, int, int | None]] = []
        for kind in ("full", "sliding", "chunked", "linear"):
            n = sum(1 for t in types if t == kind)
            if n:
                out.append((kind, n, caps[kind]))
        return out

    @property
    def attention_layers(self) -> int:
        """Layers that keep a KV cache (all but linear/SSM layers)."""
        return sum(n for kind, n, _ in self.attention_groups() if kind != "linear")

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.layer_types is not None:
            if len(self.layer_types) != self.layers:
                raise SpecError(f"model {self.name}: layer_types lists {len(self.layer_types)} layers, the model has {self.layers}")
            bad = sorted(set(self.layer_types) - {"full", "sliding", "chunked", "linear"})
            if bad:
                raise SpecError(f"model {self.name}: unknown layer type {bad[0]!r}; use full, sliding, chunked or linear")
            if "sliding" in self.layer_types and not self.sliding_window:
                raise SpecError(f"model {self.name}: sliding layers need a sliding_window")
            if "chunked" in self.layer_types and not self.attention_chunk:
                raise SpecError(f"model {self.name}: chunked layers need attention_chunk_size")
        if self.heads % self.kv_heads:
            raise SpecError(f"model {self.name}: {self.heads} attention heads are not a multiple of {self.kv_heads} KV heads")
        if self.is_moe and not (0 < self.experts_per_token <= self.experts and self.moe_ffn > 0):
            raise SpecError(f"model {self.name}: MoE needs 0 < experts per token <= experts and a positive moe_intermediate_size")
        if self.router_groups > 1 and not (self.experts % self.router_groups == 0
                                           and 0 < self.router_group_topk <= self.router_groups
                                           and self.experts_per_token % self.router_group_topk == 0):
            # Megatron's group_limited_topk views the experts as router_groups equal groups and takes the top
            # experts_per_token / router_group_topk of each to score it
            raise SpecError(f"model {self.name}: group-limited routing needs the {self.experts} experts split evenly "
                            f"into n_group={self.router_groups} groups and topk_group={self.router_group_topk} "
                            f"dividing the {self.experts_per_token} experts per token")
        return self


class Parallelism(Spec):
    """How one training job is laid out. dp counts data-parallel replicas (ZeRO shards over dp·cp)."""

    tp: int = Field(1, ge=1)
    pp: int = Field(1, ge=1)
    dp: int = Field(1, ge=1)
    cp: int = Field(1, ge=1)
    ep: int = Field(1, ge=1)
    sequence_parallel: bool = False
    interleave: int = Field(1, ge=1, description="virtual pipeline stages per GPU (v)")

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp * self.cp

    def check(self, model: ModelSpec) -> None:
        """Raise LayoutError when this layout cannot be built for `model`."""
        if model.heads % self.tp:
            raise LayoutError(f"TP={self.tp} does not divide the {model.heads} attention heads of {model.name}")
        if self.pp > model.layers:
            raise LayoutError(f"PP={self.pp} is larger than the {model.layers} layers of {model.name}")
        if model.layers % (self.pp * self.interleave):
            raise LayoutError(
                f"{model.layers} layers of {model.name} do not split evenly into PP={self.pp} × interleave={self.interleave} stages"
            )
        if self.ep > 1:
            if not model.is_moe:
                raise LayoutError(f"EP={self.ep} needs an MoE model; {model.name} is dense")
            if model.experts % self.ep:
                raise LayoutError(f"EP={self.ep} does not divide the {model.experts} experts of {model.name}")
            if (self.dp * self.cp) % self.ep:
                raise LayoutError(f"EP={self.ep} must divide the data-parallel size dp·cp={self.dp * self.cp}")
        if self.interleave > 1 and self.pp == 1:
            raise LayoutError("an interleaved schedule (interleave > 1) needs PP > 1")
        if self.sequence_parallel and self.tp == 1:
            raise LayoutError("sequence parallelism needs TP > 1")
