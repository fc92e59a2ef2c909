"""`aiinfra design` as a library command: registered with its facts model, shared by the CLI and the web."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from aiinfra.cluster.commands import DesignFacts, DesignSpec, design, parse_count, summary_rows
from aiinfra.contract import registry
from aiinfra.errors import SpecError

SRC = Path(__file__).resolve().parents[2] / "src" / "aiinfra"


@pytest.mark.parametrize("spec", [DesignSpec(gpus=256), DesignSpec(preset="superpod", su=4),
                                  DesignSpec(node="gb200-nvl72", preset="superpod", su=2), DesignSpec(preset="basepod")])
def test_design_output_matches_its_facts_model(spec):
    """The JSON envelope's facts validate against DesignFacts (the schema `aiinfra schema design` prints)."""
    doc = json.loads(json.dumps(design(spec).to_dict(explain=False)))
    DesignFacts.model_validate(doc["facts"])
    assert registry()["design"].facts is DesignFacts


def test_summary_rows_and_parse_count():
    r = design(DesignSpec(node="gb300-nvl72", gpus=576))
    names = [t.name for t, _ in summary_rows(r)]
    assert names[:4] == ["GPUs", "nodes", "scalable units", "NVLink domains"] and "facility water flow" in names
    assert parse_count("70B") == 70e9 and parse_count("1.5T") == 1.5e12
    with pytest.raises(SpecError, match="not a number"):
        parse_count("seventy")
    with pytest.raises(SpecError, match="--su needs --preset"):
        design(DesignSpec(su=2))


def test_shells_hold_no_design_logic():
    """cli/design.py only parses and renders; web/pages/design.py imports nothing from aiinfra.cli."""
    web = ast.parse((SRC / "web" / "pages" / "design.py").read_text())
    imported = {n.module for n in ast.walk(web) if isinstance(n, ast.ImportFrom)}
    assert not any(m and m.startswith("aiinfra.cli") for m in imported)
    cli = (SRC / "cli" / "design.py").read_text()
    assert "design_cluster" not in cli and "preset_settings" not in cli


def test_tco_prices_a_gb200_design():
    """`aiinfra tco --design --node gb200-nvl72`: the rack line is priced once ($3M per rack, dated), the
    trays inside it are not priced again, and the unpriced lines are named."""
    from aiinfra.cost.design_bom import design_bom, unpriced_warning

    b = design_bom(576, "gb200-nvl72")
    racks = [i for i in b.items if i.item == "gb200-nvl72"]
    assert racks and racks[0].quantity == 8
    assert not any(i.item in ("gb200-compute-tray", "nvlink5-switch-tray") for i in b.items)
    assert "cdu" in (unpriced_warning(b) or "")
    su = design_bom(0, "gb300-nvl72", su=2)
    assert [i.quantity for i in su.items if i.item == "gb300-nvl72"] == [16]


def test_options_are_declared_once():
    """cluster/options.py declares the options: the command, the designer and the web form take them from
    there, and the CLI has one flag per option with the same default."""
    import inspect

    from aiinfra.cli.design import design as cli_design
    from aiinfra.cluster import options
    from aiinfra.cluster.design import DesignInput
    from aiinfra.web.pages.design import DesignSpec as WebDesignSpec

    assert DesignSpec is options.DesignSpec and DesignInput is options.DesignInput
    flags = {("grad_bytes_per_param" if n == "grad_bytes" else n): p.default
             for n, p in inspect.signature(cli_design).parameters.items() if n not in ("fmt", "explain")}
    assert flags == {n: f.default for n, f in DesignSpec.model_fields.items()}
    for name, field in WebDesignSpec.model_fields.items():
        assert field.default == DesignSpec.model_fields[name].default, name
        if name != "params":  # the web takes the model size as text only
            assert field.metadata == DesignSpec.model_fields[name].metadata, name
    with pytest.raises(ValueError, match="dataset_tb"):
        WebDesignSpec(gpus=8, dataset_tb=-1)
