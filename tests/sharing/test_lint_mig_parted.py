"""mig-parted configs against what mig-parted @ bd7160f does with each (fixtures/mig_parted_cases.yaml): what it
refuses is an error, an entry it reads but that selects no GPU is a warning, what it applies is clean."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aiinfra.sharing import lint
from tests.sharing.upstream_cases import check_case

FIX = Path(__file__).parent / "fixtures"
CASES = yaml.safe_load((FIX / "mig_parted_cases.yaml").read_text())["cases"]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_mig_parted_config_as_mig_parted_reads_it(case):
    check_case([f for f in lint.lint_text(case["config"], "config.yaml") if f.severity != "info"], case)
