"""Exact parameter counts from a model's architecture fields.

Counting rules (memory_perf_anchors §2d, Megatron theoretical_memory_usage.py):
- attention: q/k/v/o projections, GQA-aware via n_kv·d_head; biases where the config has them;
  DeepSeek MLA uses low-rank q (q_a, q_b) and a compressed KV path (kv_a_with_mqa, kv_b);
- MLP: 3·h·ffn when gated (SwiGLU), else 2·h·ffn;
- MoE layer: E experts + shared experts + a router h·E (memory uses all experts, FLOPs the
  top-k active ones);
- norms: h per RMSNorm, 2h per LayerNorm (weight + bias); embeddings V·h, an untied LM head V·h.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiinfra.explain import Term
from aiinfra.specs import ModelSpec

SRC_COUNT = "counting rules of memory_perf_anchors §2d / Megatron theoretical_memory_usage.py"


@dataclass(frozen=True)
class LayerParams:
    """Parameters of one transformer layer by how they shard under tensor/expert parallelism."""

    attention: int  # TP-sharded
    mlp: int  # dense MLP, TP-sharded (0 on MoE layers)
    experts: int  # routed experts, sharded by EP (and TP)
    expert_active: int  # routed experts used per token (top-k)
    shared: int  # shared experts, TP-sharded, always active
    replicated: int  # norms, router: full copy on every TP rank

    @property
    def total(self) -> int:
        return self.attention + self.mlp + self.experts + self.shared + self.replicated

    @property
    def active(self) -> int:
        return self.attention + self.mlp + self.expert_active + self.shared + self.replicated


@dataclass(frozen=True)
class ParamCounts:
    total: Term
    active: Term
    embedding: int
    lm_head: int
    final_norm: int
    dense_layer: LayerParams
    moe_layer: LayerParams | None
    mtp: int

    @property
    def layers_total(self) -> int:
        return int(self.total.value) - self.embedding - self.lm_head - self.final_norm

    @property
    def largest_layer(self) -> int:
        """Largest single module, as DeepSpeed's ZeRO-3 estimator gathers it (embedding or one layer)."""
        biggest_layer = max(self.dense_layer.total, self.moe_layer.total if self.moe_layer else 0)
        return max(self.embedding, self.lm_head, biggest_layer)


def norm_params(m: ModelSpec, width: int) -> int:
    return width * (2 if m.norm == "layer" else 1)


def attention_params(m: ModelSpec) -> int:
    h = m.hidden
    if m.is_mla:
        qk = m.qk_nope_dim + m.qk_rope_dim
        q = (h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * m.heads * qk) if m.q_lora_rank else h * m.heads * qk
        kv = h * (m.kv_lora_rank + m.qk_rope_dim) + m.kv_lora_rank + m.kv_lora_rank * m.heads * (m.qk_nope_dim + m.v_head_dim)
        return q + kv + m.heads * m.v_head_dim * h
    q = m.heads * m.head_dim
    kv = m.kv_heads * m.head_dim
    weights = h * q + 2 * h * kv + q * h
    bias = (q + 2 * kv if m.qkv_bias else 0) + (h if m.out_bias else 0)
    sinks = m.heads if m.attn_sinks else 0  # gpt-oss: one sink logit per head
    return weights + bias + sinks


def mlp_params(m: ModelSpec, ffn: int) -> int:
    h = m.hidden
    if m.gated_mlp:
        return 3 * h * ffn + (2 * ffn + h if m.mlp_bias else 0)
    return 2 * h * ffn + (ffn + h if m.mlp_bias else 0)


def layer_params(m: ModelSpec, moe: bool) -> LayerParams:
    # 2 norms per layer (Gemma's sandwich: 4), plus the q/k RMSNorms of d_head in Qwen3 and Gemma 3
    norms = m.norms_per_layer * norm_params(m, m.hidden) + (2 * m.head_dim if m.qk_norm else 0)
    attn = attention_params(m)
    if not moe:
        return LayerParams(attn, mlp_params(m, m.ffn), 0, 0, 0, norms)
    expert = mlp_params(m, m.moe_ffn)
    router = m.hidden * m.experts + (m.experts if m.router_bias else 0)
    return LayerParams(
        attention=attn,
        mlp=0,
        experts=m.experts * expert,
        expert_active=m.experts_per_token * expert,
        shared=m.shared_experts * expert,
        replicated=norms + router,
    )


def param_counts(m: ModelSpec) -> ParamCounts:
    h, V = m.hidden, m.vocab
    embedding = V * h + (m.max_positions * h if m.learned_positions else 0)
    lm_head = 0 if m.tied_embeddings else V * h
    final_norm = norm_params(m, h)
    dense = layer_params(m, moe=False)
    moe = layer_params(m, moe=True) if m.is_moe else None
    n_moe, n_dense = m.moe_layers, m.dense_layers
    outside = embedding + lm_head + final_norm
    total = outside + n_dense * dense.total + (n_moe * moe.total if moe else 0)
    active = outside + n_dense * dense.active + (n_moe * moe.active if moe else 0)
    # DeepSeek's multi-token-prediction module: its own embedding/head copies, 2 norms, an
    # eh projection (2h→h) and one MoE layer. Reported apart: "671B main + 14B MTP".
    mtp = 0
    if m.mtp_layers:
        mtp_layer = moe.total if moe else dense.total
        mtp = m.mtp_layers * (mtp_layer + 2 * h * h + 3 * norm_params(m, h) + V * h + (0 if m.tied_embeddings else V * h))
    inputs = {
        "V": V, "h": h, "L_dense": n_dense, "L_moe": n_moe, "attention/layer": dense.attention,
        "mlp/dense layer": dense.mlp, "norms/layer": dense.replicated,
    }
    if moe:
        inputs |= {"experts/moe layer": moe.experts, "active experts/moe layer": moe.expert_active,
                   "shared/moe layer": moe.shared, "router+norms/moe layer": moe.replicated}
    formula = "V·h (embedding) + [V·h if untied] + final norm + L_dense·layer_dense + L_moe·layer_moe"
    total_t = Term("parameters (total)", total, "params", formula, inputs, {"counting": SRC_COUNT})
    active_t = Term(
        "parameters (active per token)", active, "params",
        "as total, with only top-k routed experts per MoE layer", {"top_k": m.experts_per_token, "experts": m.experts},
        {"counting": SRC_COUNT},
    )
    return ParamCounts(total_t, active_t, embedding, lm_head, final_norm, dense, moe, mtp)


def linear_order(m: ModelSpec, moe: bool = False) -> list[tuple[str, float, float, bool]]:
    """(name, input width, output width, a plain matmul?) of one layer's linear layers in launch order, unfused as
    torchtitan's Llama modules run them: wq, wk, wv, wo, then w1, w3, w2 (gate, up, down). Routed experts are
    grouped GEMMs (width = the k active experts together), not plain matmuls; MLA projections count as one."""
    h = m.hidden
    if m.is_mla:
        out = [("attention projections", h, attention_params(m) / h, True)]
    else:
        q, kv = m.heads * m.head_dim, m.kv_heads * m.head_dim
        out = [("wq", h, q, True), ("wk", h, kv, True), ("wv", h, kv, True), ("wo", q, h, True)]

    def mlp(prefix: str, f: float, plain: bool) -> list:
        if m.gated_mlp:
            return [(f"{prefix}w1", h, f, plain), (f"{prefix}w3", h, f, plain), (f"{prefix}w2", f, h, plain)]
        return [(f"{prefix}fc1", h, f, plain), (f"{prefix}fc2", f, h, plain)]

    if not moe:
        return out + mlp("", m.ffn, True)
    out.append(("router", h, m.experts, True))
    if m.shared_experts:
        out += mlp("shared ", m.shared_experts * m.moe_ffn, True)
    return out + mlp("experts ", m.experts_per_token * m.moe_ffn, False)


def every_second_linear(m: ModelSpec, moe: bool = False) -> list[bool]:
    """Which linear layers (linear_order) torchtitan's op-level selective checkpointing runs again in backward:
    the 2nd, 4th, ... plain matmul of the block, and grouped expert GEMMs (not on its save list)."""
    again, n = [], 0
    for _, _, _, plain in linear_order(m, moe):
        n += plain
        again.append((not plain) or n % 2 == 0)
    return again
