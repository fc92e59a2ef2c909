"""MIG-table aliases name one GPU: the GPU catalog's key wins in mig_gpu, so a MIG alias that is another GPU's key
could never reach its table. Sources: catalog/data/gpus.yaml (gh200 = the 96 GB part, PCI 0x2342; gh200-144gb =
PCI 0x2348); the MIG User Guide's H100 96GB (H100 on GH200) table (1g.12gb … 7g.96gb)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiinfra.catalog.loader import set_user_catalogs
from aiinfra.errors import AiinfraError, NotFoundError
from aiinfra.sharing import mig
from aiinfra.sharing.commands import mig_validate


def test_gh200_is_the_96gb_part_and_gh200_144gb_its_own_table():
    assert mig.mig_gpu("gh200").name == "H100-96GB"
    assert mig.mig_gpu("gh200-144gb").name == "GH200-144GB"
    assert mig.mig_gpu("gh200-hbm3e").name == "GH200-144GB"
    assert mig_validate("gh200-144gb", "1g.18gb").facts["valid"]
    assert mig_validate("gh200", "1g.12gb").facts["valid"]


def test_no_shipped_mig_alias_names_another_gpu():
    """Every MIG alias that is also a GPU-catalog name resolves to the same table through the GPU's PCI ID."""
    from aiinfra.catalog.loader import default_catalog

    cat = default_catalog()
    for key, entry in cat.table("mig_profiles").items():
        for alias in entry.get("aliases", []):
            assert mig.mig_gpu(str(alias)).key == key, (entry["name"], alias)


def test_a_profile_of_the_144gb_part_asked_on_gh200_says_where_it_is():
    """'gh200' is the 96 GB part: its 1g.12gb is the 144 GB part's 1g.18gb, and the refusal points there."""
    with pytest.raises(NotFoundError, match=r"does not exist on H100-96GB.*GH200-144GB \(gh200-144gb\) has it"):
        mig.validate(mig.mig_gpu("gh200"), "1g.18gb")


@pytest.mark.parametrize("entry, needle", [
    # an alias that is the GPU catalog's key for another GPU
    ('"0x2348": {aliases: [gh200-144gb, gh200]}', "alias 'gh200', which the GPU catalog gives to 'gh200' (PCI 0x2342)"),
    # an alias that is the GPU catalog's alias for another GPU (h100-sxm's 'H100 SXM5' spelling)
    ('"0x2342": {aliases: [h100-96gb, h100-sxm5]}', "which the GPU catalog gives to 'h100-sxm'"),
    # an alias another MIG table has
    ('"0x2335": {aliases: [h200-141gb, h20]}', "both have the alias 'h20'"),
    # a PCI ID the table does not list
    ('"0x2335": {aliases: [h200-141gb, "0x2901"]}', "a PCI device ID it does not list"),
])
def test_an_alias_naming_another_gpu_is_refused_when_the_tables_load(tmp_path: Path, entry, needle):
    mine = tmp_path / "mig.yaml"
    mine.write_text(f"kind: mig_profiles\nentries:\n  {entry}\n")
    set_user_catalogs([mine])
    try:
        with pytest.raises(AiinfraError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            mig.mig_gpu("a100-80gb")
    finally:
        set_user_catalogs([])
