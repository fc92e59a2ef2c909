"""Model lookups: an HF config.json (catalog name or local path) → ModelSpec.

Field names follow transformers' configs. Megatron-style GPT rows (Narayanan Table 1,
Korthikanti Table 3) use `model_type: megatron-gpt` with Megatron's own argument names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from aiinfra.catalog.loader import default_catalog, read_json
from aiinfra.errors import AiinfraError, SpecError
from aiinfra.specs import ModelSpec


def model(name_or_path: str) -> ModelSpec:
    """A ModelSpec from a catalog name ("llama-3.1-70b", "meta-llama/Llama-3.1-70B") or a config.json path."""
    path = Path(name_or_path).expanduser()
    if name_or_path.endswith(".json") or path.is_file():
        if not path.is_file():
            raise AiinfraError(f"config file {name_or_path} does not exist")
        return from_config(read_json(path), name=path.parent.name if path.name == "config.json" else path.stem, where=str(path))
    key, entry = default_catalog().entry("models", name_or_path)
    if "config" in entry:
        config, where = entry["config"], f"catalog entry {key}"
    elif "path" in entry:
        config, where = read_json(Path(entry["path"])), entry["path"]
    else:
        raise AiinfraError(f"catalog model '{key}' has neither 'config' nor 'path'")
    return from_config(config, name=key, where=where, source=entry.get("source", ""))


def all_models() -> list[str]:
    return default_catalog().names("models")


class _Fields:
    """Reads config fields, naming the missing one in the error."""

    def __init__(self, config: dict, where: str):
        if not isinstance(config, dict):
            raise AiinfraError(f"{where}: a model config must be a JSON object")
        self.c, self.where = config, where

    def req(self, *names: str) -> Any:
        for n in names:
            if self.c.get(n) is not None:
                return self.c[n]
        raise AiinfraError(f"{self.where} is missing the field '{names[0]}'")

    def opt(self, name: str, default: Any = None) -> Any:
        v = self.c.get(name)
        return default if v is None else v


def _text_config(config: Any) -> Any:
    """Multimodal wrappers (Llama 4, Gemma 3, Mistral 3) keep the language model under text_config."""
    if isinstance(config, dict) and isinstance(config.get("text_config"), dict):
        inner = dict(config["text_config"])
        for k in ("tie_word_embeddings", "quantization_config"):
            if k in config and k not in inner:
                inner[k] = config[k]
        return inner
    return config


def from_config(config: dict, name: str, where: str = "config.json", source: str = "") -> ModelSpec:
    f = _Fields(_text_config(config), where)
    mtype = str(f.opt("model_type", "")).lower()
    try:
        if mtype == "gpt2":
            kw = _gpt2(f)
        elif mtype == "megatron-gpt":
            kw = _megatron(f)
        else:
            kw = _hf_decoder(f, mtype)
        return ModelSpec(name=name, source=source or where, **kw)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"]) or "config"
        raise SpecError(f"{where}: field '{field}' {err['msg'].lower()}") from None
    except (TypeError, ValueError) as e:
        raise SpecError(f"{where}: {e}") from None


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise ValueError(f"expected a whole number, got {v!r}")
    return int(v)


def _hf_decoder(f: _Fields, mtype: str) -> dict:
    """Llama, Mistral, Mixtral, Qwen2, DeepSeek-V3 and other Llama-like configs."""
    hidden = _int(f.req("hidden_size"))
    heads = _int(f.req("num_attention_heads"))
    kw: dict[str, Any] = dict(
        arch=mtype or "llama",
        hidden=hidden,
        layers=_int(f.req("num_hidden_layers")),
        heads=heads,
        kv_heads=_int(f.opt("num_key_value_heads", heads)),
        head_dim=_int(f.opt("head_dim", hidden // heads if heads > 0 else 0)),
        ffn=_int(f.req("intermediate_size")),
        vocab=_int(f.req("vocab_size")),
        tied_embeddings=bool(f.opt("tie_word_embeddings", False)),
        max_positions=_int(f.opt("max_position_embeddings", 2048)),
        qkv_bias=bool(f.opt("attention_bias", mtype in ("qwen2", "qwen2_moe"))),
        out_bias=bool(f.opt("attention_bias", False)),
        mlp_bias=bool(f.opt("mlp_bias", False)),
        dropout=float(f.opt("attention_dropout", 0.0)) > 0 or float(f.opt("hidden_dropout", 0.0)) > 0,
    )
    # Qwen2 always has QKV bias and no output bias; `attention_bias` is absent from its configs.
    if mtype in ("qwen2", "qwen2_moe"):
        kw["qkv_bias"], kw["out_bias"] = True, False
    window = f.opt("sliding_window")
    if window and (not mtype.startswith("qwen") or f.opt("use_sliding_window", False)):
        kw["sliding_window"] = _int(window)
    kw.update(_attention_layout(f, mtype, kw["layers"], kw.get("sliding_window")))
    if mtype.startswith("gemma"):
        kw.update(norms_per_layer=4, tied_embeddings=bool(f.opt("tie_word_embeddings", True)))
    if mtype.startswith(("qwen3", "gemma3")):
        kw["qk_norm"] = True
    if mtype == "gpt_oss":
        kw.update(attn_sinks=True, mlp_bias=True, glu_activation="quick_geglu")
    experts = f.opt("num_local_experts") or f.opt("n_routed_experts") or f.opt("num_experts") or 0
    if experts:
        kw.update(
            experts=_int(experts),
            experts_per_token=_int(f.req("num_experts_per_tok", "experts_per_token")),
            moe_ffn=_int(f.opt("moe_intermediate_size", kw["ffn"])),
            shared_experts=_int(f.opt("n_shared_experts", 0)),
            first_dense_layers=_int(f.opt("first_k_dense_replace", 0)),
            moe_layer_freq=_int(f.opt("moe_layer_freq", f.opt("decoder_sparse_step", 1))),
            # DeepSeek's e_score_correction_bias and gpt-oss's router bias: one per routed expert
            router_bias=mtype in ("deepseek_v3", "gpt_oss"),
            router_groups=_int(f.opt("n_group", 1) or 1),
            router_group_topk=_int(f.opt("topk_group", 1) or 1),
        )
        if mtype.startswith("llama4"):
            # Llama 4: routed and shared experts of intermediate_size; dense layers of intermediate_size_mlp;
            # every interleave_moe_layer_step-th layer is MoE (Scout 1: all; Maverick 2: layers 1, 3, 5, …).
            step = _int(f.opt("interleave_moe_layer_step", 1))
            kw.update(moe_ffn=kw["ffn"], ffn=_int(f.opt("intermediate_size_mlp", kw["ffn"])), shared_experts=1,
                      first_dense_layers=step - 1, moe_layer_freq=step)
    if f.opt("kv_lora_rank"):
        kw.update(
            q_lora_rank=_int(f.opt("q_lora_rank", 0)),
            kv_lora_rank=_int(f.req("kv_lora_rank")),
            qk_nope_dim=_int(f.req("qk_nope_head_dim")),
            qk_rope_dim=_int(f.req("qk_rope_head_dim")),
            v_head_dim=_int(f.req("v_head_dim")),
            head_dim=_int(f.req("qk_nope_head_dim")) + _int(f.req("qk_rope_head_dim")),
            mtp_layers=_int(f.opt("num_nextn_predict_layers", 0)),
        )
    return kw


LAYER_KINDS = {
    "full_attention": "full", "attention": "full", "global": "full", "full": "full",
    "sliding_attention": "sliding", "sliding": "sliding", "local": "sliding",
    "chunked_attention": "chunked", "chunked": "chunked",
    "linear_attention": "linear", "linear": "linear", "mamba": "linear", "conv": "linear", "ssm": "linear",
}


def _attention_layout(f: _Fields, mtype: str, layers: int, window: int | None) -> dict:
    """Per-layer attention kinds: HF `layer_types` when the config lists them, else the pattern its
    model code derives (Gemma 3: every sliding_window_pattern-th layer global; Llama 4: every
    no_rope_layer_interval-th layer global, the rest chunked; gpt-oss: alternating)."""
    out: dict[str, Any] = {}
    chunk = f.opt("attention_chunk_size")
    if chunk and mtype.startswith("llama4"):
        out["attention_chunk"] = _int(chunk)
    types = f.opt("layer_types")
    if types is not None:
        if not isinstance(types, list) or any(t not in LAYER_KINDS for t in types):
            raise ValueError(f"layer_types must list one of {', '.join(sorted(LAYER_KINDS))} per layer")
        kinds = [LAYER_KINDS[t] for t in types]
    elif mtype.startswith("gemma3") and window:
        p = _int(f.opt("sliding_window_pattern", 6))
        kinds = ["full" if (i + 1) % p == 0 else "sliding" for i in range(layers)]
    elif mtype.startswith("gemma2") and window:
        kinds = ["sliding" if i % 2 == 0 else "full" for i in range(layers)]
    elif mtype == "gpt_oss" and window:
        kinds = ["sliding" if i % 2 == 0 else "full" for i in range(layers)]
    elif mtype.startswith("llama4") and chunk:
        nope = f.opt("no_rope_layers")
        if isinstance(nope, list) and len(nope) == layers:
            kinds = ["chunked" if r else "full" for r in nope]
        else:
            k = _int(f.opt("no_rope_layer_interval", 4))
            kinds = ["full" if (i + 1) % k == 0 else "chunked" for i in range(layers)]
    elif mtype == "qwen3_next":
        k = _int(f.opt("full_attention_interval", 4))
        kinds = ["full" if (i + 1) % k == 0 else "linear" for i in range(layers)]
    else:
        return out
    if "sliding" in kinds and not window:
        kinds = ["full" if k == "sliding" else k for k in kinds]  # e.g. Qwen with use_sliding_window false
    out["layer_types"] = tuple(kinds)
    if "linear" in kinds:
        # Gated DeltaNet (Qwen3-Next): a d_k × d_v state per value head plus a short convolution window.
        nk, nv = _int(f.opt("linear_num_key_heads", 16)), _int(f.opt("linear_num_value_heads", 32))
        dk, dv = _int(f.opt("linear_key_head_dim", 128)), _int(f.opt("linear_value_head_dim", 128))
        conv = _int(f.opt("linear_conv_kernel_dim", 4)) - 1
        out["linear_state_bytes"] = 2 * (nv * dk * dv + conv * (2 * nk * dk + nv * dv))
    return out


def _gpt2(f: _Fields) -> dict:
    hidden = _int(f.req("n_embd"))
    heads = _int(f.req("n_head"))
    return dict(
        arch="gpt2",
        hidden=hidden,
        layers=_int(f.req("n_layer")),
        heads=heads,
        kv_heads=heads,
        head_dim=hidden // heads if heads > 0 else 0,
        ffn=_int(f.opt("n_inner", 4 * hidden)),
        vocab=_int(f.req("vocab_size")),
        tied_embeddings=bool(f.opt("tie_word_embeddings", True)),
        max_positions=_int(f.req("n_positions")),
        gated_mlp=False,
        norm="layer",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        learned_positions=True,
        dropout=float(f.opt("resid_pdrop", 0.1)) > 0 or float(f.opt("attn_pdrop", 0.1)) > 0,
    )


# Megatron-LM --position-embedding-type choices (megatron/training/arguments.py); only learned_absolute adds weights
MEGATRON_POSITIONS = ("learned_absolute", "rope", "mrope", "relative", "none")


def _megatron(f: _Fields) -> dict:
    """Megatron-LM GPT: LayerNorm, GeLU MLP of 4h, biases everywhere, learned positions and a tied head unless
    its arguments say otherwise (untie_embeddings_and_output_weights, position_embedding_type)."""
    hidden = _int(f.req("hidden_size"))
    heads = _int(f.req("num_attention_heads"))
    untie = f.opt("untie_embeddings_and_output_weights", False)
    if not isinstance(untie, bool):
        raise ValueError(f"untie_embeddings_and_output_weights must be true or false, got {untie!r}")
    positions = f.opt("position_embedding_type", "learned_absolute")
    if positions not in MEGATRON_POSITIONS:
        raise ValueError(f"position_embedding_type {positions!r} is not one of {', '.join(MEGATRON_POSITIONS)}")
    return dict(
        arch="megatron-gpt",
        hidden=hidden,
        layers=_int(f.req("num_layers")),
        heads=heads,
        kv_heads=heads,
        head_dim=hidden // heads if heads > 0 else 0,
        ffn=_int(f.opt("ffn_hidden_size", 4 * hidden)),
        vocab=_int(f.opt("padded_vocab_size", 51200)),
        tied_embeddings=not untie,
        max_positions=_int(f.opt("seq_length", 2048)),
        gated_mlp=False,
        norm="layer",
        qkv_bias=True,
        out_bias=True,
        mlp_bias=True,
        learned_positions=positions == "learned_absolute",
        dropout=float(f.opt("hidden_dropout", 0.1)) > 0 or float(f.opt("attention_dropout", 0.1)) > 0,
    )
