"""Megatron's custom pipeline layout: which layers each (virtual) pipeline stage holds, written as a string.

`--pipeline-model-parallel-layout "Et|(tt|)*30mL"` (Megatron-core TransformerConfig.pipeline_model_parallel_layout,
megatron/core/transformer/pipeline_parallel_layer_layout.py) names every virtual stage in order, separated by `|`:
E the embedding, t a transformer (decoder) layer, m a multi-token-prediction layer, L the loss (LM head + loss);
`x*n` repeats one symbol, `(…)*n` repeats a group, commas are cosmetic. Stage i sits on pipeline rank i mod PP, so
the string's stage count is PP × VP. The Megatron-Bridge DeepSeek-V3 and Qwen3 recipes set such strings to put the
embedding, the first dense layers, the MTP layer and the loss where the other stages balance them.

This module parses and checks a layout as Megatron does (the same grammar, the same refusals), and gives the
planner what it needs: the decoder layers on the first, the fullest middle and the last GPU.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from aiinfra.errors import LayoutError, SpecError

SYMBOLS = {"E": "embedding", "L": "loss", "t": "decoder", "m": "mtp"}
# Megatron's unrolling, in its order: a parenthesised group times n (no nesting), then one symbol times n
_GROUP = re.compile(r"\(([^)]+)\)\*(\d+)")
_ONE = re.compile(r"(.)\*(\d+)")


_ALPHABET = set("ELtm|()*, 0123456789")


def looks_like_layout(text: str) -> bool:
    """Whether a pipeline-split value is meant as a layout string: it has a stage separator, or only the layout's
    characters ('accout', a misspelt split rule, is not one)."""
    return "|" in text or (bool(text.strip()) and set(text) <= _ALPHABET)


@dataclass(frozen=True)
class PipelineLayout:
    """A parsed layout: `stages[i]` is virtual stage i's symbols, in model order."""

    text: str
    stages: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> PipelineLayout:
        """Unroll and split `text` as Megatron's parse_str_to_list does; an unknown symbol is refused."""
        raw = str(text).strip()
        if not raw:
            raise SpecError("pipeline layout is empty: name every stage's layers, e.g. 'Et|(tt|)*30mL'")
        s = raw.replace(",", "")
        for pattern in (_GROUP, _ONE):
            s = pattern.sub(lambda g: g.group(1) * int(g.group(2)), s)
        stages = tuple(s.split("|"))
        for stage in stages:
            bad = next((c for c in stage if c not in SYMBOLS), None)
            if bad is not None:
                raise SpecError(f"pipeline layout '{raw}': '{bad}' is not a layer symbol (E embedding, t decoder "
                                "layer, m MTP layer, L loss; | between stages, x*n and (…)*n repeat)")
        return cls(raw, stages)

    @property
    def n_stages(self) -> int:
        return len(self.stages)

    def vp(self, pp: int) -> int:
        """Virtual stages per pipeline rank; the stage count must divide by PP (Megatron asserts the same)."""
        if pp < 1 or self.n_stages % pp:
            raise LayoutError(f"pipeline layout '{self.text}' has {self.n_stages} stages, which PP={pp} does not divide")
        return self.n_stages // pp

    def rank_stages(self, pp: int) -> list[list[str]]:
        """Per pipeline rank, its virtual stages' symbols (virtual stage v of rank r is stage v·PP + r)."""
        vp = self.vp(pp)
        return [[self.stages[v * pp + r] for v in range(vp)] for r in range(pp)]

    def check(self, layers: int, mtp_layers: int, pp: int, vp: int | None = None) -> None:
        """check_model, and the layout on PP ranks: the stage count divides by PP, and a given VP is the quotient
        (Megatron asserts both). Raises one LayoutError."""
        got = self.vp(pp)
        if vp is not None and int(vp) != got:
            raise LayoutError(f"VP={vp} conflicts with the pipeline layout '{self.text}': {self.n_stages} stages on "
                              f"PP={pp} make VP={got}")
        if pp == 1 and got > 1:
            raise LayoutError(f"pipeline layout '{self.text}' has {got} stages on PP=1: an interleaved schedule "
                              "needs PP > 1")
        self.check_model(layers, mtp_layers)

    def check_model(self, layers: int, mtp_layers: int) -> None:
        """Megatron's validate_layer_layout for a model of `layers` decoder and `mtp_layers` MTP layers, plus the
        placement this planner models (the MTP layers with the loss). Raises one LayoutError."""
        flat = "".join(self.stages)
        if not flat.startswith("E"):
            raise LayoutError(f"pipeline layout '{self.text}': the first layer must be the embedding (E)")
        if not flat.endswith("L"):
            raise LayoutError(f"pipeline layout '{self.text}': the last layer must be the loss (L)")
        for sym, name in (("E", "embedding"), ("L", "loss")):
            if flat.count(sym) != 1:
                raise LayoutError(f"pipeline layout '{self.text}': the {name} ({sym}) must appear exactly once, "
                                  f"not {flat.count(sym)} times")
        if flat.count("t") != layers:
            raise LayoutError(f"pipeline layout '{self.text}' places {flat.count('t')} decoder layers (t); the model "
                              f"has {layers}")
        if flat.count("m") != mtp_layers:
            hint = " (or --no-mtp to train without them)" if mtp_layers else ""
            raise LayoutError(f"pipeline layout '{self.text}' places {flat.count('m')} MTP layers (m); training "
                              f"{mtp_layers} here{hint}")
        if "m" in flat and "t" in flat[flat.index("m"):]:
            raise LayoutError(f"pipeline layout '{self.text}': decoder layers must come before the MTP layers")
        if "m" in flat and "m" not in self.stages[-1]:
            raise LayoutError(f"pipeline layout '{self.text}': MTP layers away from the loss's stage (Megatron's "
                              "standalone MTP) are not modelled; put them with L, e.g. '…|mL'")

    def gpu_layers(self, pp: int) -> tuple[int, int, int]:
        """Decoder layers (MTP not counted) on the first GPU, the fullest middle GPU and the last GPU; PP 2 has no
        middle GPU and reports the fuller edge there, as sizing.pipeline.pipeline_layers does."""
        counts = [sum(stage.count("t") for stage in rank) for rank in self.rank_stages(pp)]
        if pp == 1:
            return counts[0], counts[0], counts[0]
        middle = max(counts[1:-1]) if pp > 2 else max(counts[0], counts[-1])
        return counts[0], middle, counts[-1]

    def per_gpu(self, pp: Any) -> tuple[Any, Any, Any]:
        """gpu_layers for an array of PP values (each must divide the stage count), as int64 arrays."""
        pp_a = np.asarray(pp, dtype=np.int64)
        out = [np.zeros(pp_a.shape, dtype=np.int64) for _ in range(3)]
        for p in np.unique(pp_a):
            where = pp_a == p
            for arr, value in zip(out, self.gpu_layers(int(p))):
                arr[where] = value
        return out[0], out[1], out[2]

    def describe(self, pp: int) -> str:
        """'first / middle / last GPU: 5 / 8 / 6 decoder layers' for notes and explanations."""
        first, middle, last = self.gpu_layers(pp)
        return f"first / fullest middle / last GPU: {first} / {middle} / {last} decoder layers"
