"""The design options, declared once: every name, type, default and bound of `aiinfra design`.

- `DesignOptions`: each option as the designer takes it, with the designer's defaults.
- `DesignInput`: the designer's input, the options resolved against a preset plus what only a
  preset sets (UFM appliances, a shared storage fabric, a fixed node count, its source).
- `DesignSpec`: the options as the user gives them (CLI flags, web form, API body); None where the
  preset, the node or the catalog decides, the model size as text ("70B"), and `su` for presets.

Only pydantic is imported here, so the web app can build its form from it without loading the designer.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from aiinfra.errors import SpecError


MAX_UFM_LINKS = 1024  # UFM appliances take a few leaf ports each; more links than a large fabric's leaves is a typo
MAX_RACK_KW = 2000.0  # 2 MW in one rack: far past any announced rack (NVL72 ~130 kW, Kyber ~600 kW)


class DesignOptions(BaseModel):
    """Every design option with the designer's default (a subclass that overrides one keeps its place)."""

    # nan and inf are refused for every float: a design priced or powered from them prints "nan" as an answer.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    gpus: int
    node: str = "dgx-h100"
    nics: int | None = Field(None, ge=1, le=64)
    fabric: str | None = None  # None: the system's RA fabric (qm9700 for DGX, q3400 for GB300 NVL72)
    oversubscription: str | float = "1:1"
    rail_optimized: bool = True
    tiers: int | None = Field(None, ge=1, le=3)
    ufm_links: int | None = Field(None, ge=0, le=MAX_UFM_LINKS)
    storage_tier: str = "better"
    storage_switch: str | None = None
    dataset_tb: float = Field(0.0, ge=0, le=1e7)  # 10 EB
    copies: int | None = Field(None, ge=1, le=1000)
    checkpoints_kept: int | None = Field(None, ge=0, le=100_000)
    params: float | None = None
    model: str | None = None
    bytes_per_param: float | None = Field(None, gt=0, le=64)
    grad_bytes_per_param: float = Field(2.0, gt=0, le=64)
    dp: int | None = Field(None, ge=1, le=10_000_000)
    gds: bool = True
    samples_per_s: float | None = Field(None, gt=0, le=1e9)
    bytes_per_sample: float | None = Field(None, gt=0, le=1e12)
    failure_rate: float | None = Field(None, ge=1e-9, le=1)  # interruptions per GPU-hour
    rack_kw: float | None = Field(None, gt=0, le=MAX_RACK_KW)
    pue: float | None = Field(None, ge=1, le=10)
    load_factor: float = Field(1.0, gt=0, le=1)
    storage_kw: float = Field(0.0, ge=0, le=1e6)  # 1 GW
    control_nodes: int | None = Field(None, ge=0, le=10_000)
    preset: str | None = None


class DesignInput(DesignOptions):
    """What the user asks for. GPU count, node type and fabric are required; the rest has defaults."""

    ufm_appliances: int | None = None
    separate_storage_fabric: bool = True
    preset_source: str = ""
    fixed_nodes: int | None = None  # a preset that fixes the node count (127 at 4 SU) rather than a GPU count


class DesignSpec(DesignOptions):
    """Every `aiinfra design` option; None means the default of the node, preset or catalog."""

    gpus: int | None = None
    node: str | None = None
    oversubscription: str | None = None
    rail_optimized: bool | None = None
    storage_tier: str | None = None
    params: str | float | None = None
    su: int | None = None


def model_params(inp: DesignInput) -> tuple[float | None, str]:
    """Parameter count from --params or a catalog model (exact count from its architecture)."""
    if inp.params is not None and inp.model:
        raise SpecError("give either --params or --model, not both")
    if inp.params is not None:
        return inp.params, "given"
    if inp.model:
        from aiinfra.catalog.models import model
        from aiinfra.sizing.params import param_counts

        return float(param_counts(model(inp.model)).total.value), f"exact count of {inp.model} (aiinfra.sizing.params)"
    return None, ""
