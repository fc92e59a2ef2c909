"""The embedded GPU catalog (catalog/data/gpus.yaml): every entry is valid, complete and sane.

Datasheet anchors are asserted exactly; each test names the document the number comes from.
"""

from __future__ import annotations

import pytest

from aiinfra.catalog import normalize_name
from aiinfra.catalog.gpus import all_gpus, gpu
from aiinfra.catalog.loader import DATA_DIR, read_yaml
from aiinfra.specs import GpuSpec

RAW = read_yaml(DATA_DIR / "gpus.yaml")
ENTRIES: dict[str, dict] = RAW["entries"]

# The parts issue 3 requires ("at least A10G, L4, L40S, A100-40GB, A100-80GB (SXM and PCIe), H100 SXM,
# H100 PCIe, H100 NVL, H200 SXM, H200 NVL, B200, and one AMD part (MI300X)"), plus A30 and GH200.
REQUIRED = [
    "a10g", "l4", "l40s", "a100-40gb-sxm", "a100-40gb-pcie", "a100-80gb-sxm", "a100-80gb-pcie",
    "h100-sxm", "h100-pcie", "h100-nvl", "h200-sxm", "h200-nvl", "b200", "mi300x", "a30", "gh200",
]


def test_every_entry_validates_into_gpuspec():
    """Each YAML entry builds a GpuSpec (extra keys are forbidden, so typos fail here)."""
    specs = all_gpus()
    assert {s.key for s in specs} == {normalize_name(k) for k in ENTRIES}
    for key, entry in ENTRIES.items():
        spec = GpuSpec(key=key, **{**{"observed": RAW["observed"]}, **entry})
        assert spec.source and len(spec.source) > 40, f"{key}: source must name the document"


@pytest.mark.parametrize("key", REQUIRED)
def test_required_gpus_exist(key):
    assert gpu(key).key == key


@pytest.mark.parametrize(
    "spelling,key",
    [
        ("A100 80GB SXM4", "a100-80gb-sxm"),
        ("NVIDIA A100-SXM4-80GB", "a100-80gb-sxm"),
        ("NVIDIA A100 80GB PCIe", "a100-80gb-pcie"),
        ("NVIDIA A100-PCIE-40GB", "a100-40gb-pcie"),
        ("H100 PCIe", "h100-pcie"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("NVIDIA H800 80GB HBM3", "h800-sxm"),
        ("H800", "h800-sxm"),
        ("H100 NVL", "h100-nvl"),
        ("H200 NVL", "h200-nvl"),
        ("NVIDIA H200", "h200-sxm"),
        ("MI300X", "mi300x"),
        ("B200", "b200"),
        ("NVIDIA GH200 480GB", "gh200"),
        ("A10G", "a10g"),
    ],
)
def test_aliases_resolve(spelling, key):
    """Vendor spellings and the names nvidia-smi prints resolve to one key."""
    assert gpu(spelling).key == key


def test_aliases_are_unique_across_entries():
    seen: dict[str, str] = {}
    for key, entry in ENTRIES.items():
        for name in [key, *entry.get("aliases", [])]:
            n = normalize_name(name)
            assert seen.setdefault(n, key) == key, f"alias {name!r} used by {seen[n]} and {key}"


def test_h100_sxm_datasheet():
    """NVIDIA H100 Tensor Core GPU datasheet, SXM column: 80 GB HBM3, 3.35 TB/s, BF16 1,979 TFLOPS with
    sparsity = 989.4 dense, FP8 3,958 with sparsity = 1,978.9 dense, NVLink 900 GB/s, 700 W."""
    g = gpu("h100-sxm")
    assert (g.memory_gb, g.memory_bw_gbps, g.nvlink_gbps, g.tdp_w) == (80, 3350, 900, 700)
    assert g.tflops["bf16"] == pytest.approx(989.4)
    assert g.tflops["fp8"] == pytest.approx(1978.9)
    assert g.peak_flops("bf16") == pytest.approx(989.4e12)


def test_h200_sxm_datasheet():
    """NVIDIA H200 Tensor Core GPU datasheet: 141 GB HBM3e at 4.8 TB/s; compute equal to H100 SXM."""
    g = gpu("h200")
    assert (g.memory_gb, g.memory_bw_gbps) == (141, 4800)
    assert g.tflops == gpu("h100-sxm").tflops


def test_a100_datasheet():
    """NVIDIA A100 datasheet (r4): BF16 312 dense (624 sparse) for all four SKUs; bandwidth
    1,555 (40GB) / 2,039 (80GB SXM) / 1,935 GB/s (80GB PCIe); TDP 400 W SXM, 250/300 W PCIe."""
    bw = {"a100-40gb-sxm": 1555, "a100-40gb-pcie": 1555, "a100-80gb-sxm": 2039, "a100-80gb-pcie": 1935}
    tdp = {"a100-40gb-sxm": 400, "a100-40gb-pcie": 250, "a100-80gb-sxm": 400, "a100-80gb-pcie": 300}
    for key in bw:
        g = gpu(key)
        assert g.tflops["bf16"] == 312 and g.tflops["tf32"] == 156
        assert (g.memory_bw_gbps, g.tdp_w) == (bw[key], tdp[key])


def test_b200_has_fp4_and_hgx_figures():
    """NVIDIA HGX B200 per-GPU table: FP4 18 PF sparse = 9,000 dense, FP8 4,500, BF16 2,250 dense,
    180 GB HBM3E, NVLink 1.8 TB/s, up to 1,000 W."""
    g = gpu("b200")
    assert g.tflops["fp4"] == 9000 and g.tflops["fp8"] == 4500 and g.tflops["bf16"] == 2250
    assert (g.memory_gb, g.nvlink_gbps, g.tdp_w) == (180, 1800, 1000)


def test_mi300x_datasheet():
    """AMD Instinct MI300X data sheet: 192 GB HBM3, 5.3 TB/s, FP16/BF16 1,307.4 TF and FP8 2,614.9 TF
    dense, 750 W OAM; Infinity Fabric 7 x 128 GB/s = 896 GB/s held in nvlink_gbps."""
    g = gpu("MI300X")
    assert (g.vendor, g.form_factor, g.memory_gb, g.memory_bw_gbps, g.tdp_w) == ("amd", "oam", 192, 5300, 750)
    assert (g.tflops["bf16"], g.tflops["fp8"], g.nvlink_gbps) == (1307.4, 2614.9, 896)
    assert "Infinity Fabric" in g.source and not g.mig


def test_l4_and_l40s_datasheets():
    """NVIDIA L4 datasheet: 24 GB, 300 GB/s, 72 W, FP8 485 TF sparse = 242.5 dense.
    NVIDIA L40S datasheet: 48 GB, 864 GB/s, 350 W, FP8 1,466 sparse = 733 dense."""
    l4, l40s = gpu("l4"), gpu("l40s")
    assert (l4.memory_gb, l4.memory_bw_gbps, l4.tdp_w, l4.tflops["fp8"]) == (24, 300, 72, 242.5)
    assert (l40s.memory_gb, l40s.memory_bw_gbps, l40s.tdp_w, l40s.tflops["fp8"]) == (48, 864, 350, 733)


# ../shared/reference/mig_k8s_anchors.md §2 (MIG User Guide tables and GPU Operator grouping).
MIG_PCI_IDS = {
    "a30": 0x20B7,
    "a100-40gb-sxm": 0x20B0,
    "a100-40gb-pcie": 0x20F1,
    "a100-80gb-sxm": 0x20B2,
    "a100-80gb-pcie": 0x20B5,
    "h100-sxm": 0x2330,
    "h100-pcie": 0x2331,
    "h800-sxm": 0x2324,  # §2.4 groups the H800 variants with the H100 80GB; 0x2324 is the SXM part ("GH100 [H800]")
    "h100-nvl": 0x2321,
    "gh200": 0x2342,
    "gh200-144gb": 0x2348,
    "h200-sxm": 0x2335,
    "h200-nvl": 0x233B,
    "b200": 0x2901,
    # Blackwell parts the MIG anchor note does not cover: IDs from the GPU Operator's default
    # mig-parted config (mig_profiles.yaml keys 0x2941, 0x3182, 0x31c2).
    "gb200": 0x2941,
    "b300": 0x3182,
    "gb300": 0x31C2,
}


@pytest.mark.parametrize("key,pci", sorted(MIG_PCI_IDS.items()))
def test_mig_pci_ids_match_anchor(key, pci):
    """PCI device IDs of MIG GPUs equal those in mig_k8s_anchors.md §2.1–§2.9."""
    g = gpu(key)
    assert g.mig and int(g.pci_device_id, 16) == pci


def test_every_mig_gpu_is_in_the_anchor_table():
    assert {g.key for g in all_gpus() if g.mig} == set(MIG_PCI_IDS)


@pytest.mark.parametrize("spec", all_gpus(), ids=lambda s: s.key)
def test_invariants(spec: GpuSpec):
    """Sanity rules any datasheet obeys; a typo (sparse figure, wrong column) breaks one of them."""
    t = spec.tflops
    ladder = [d for d in ("fp4", "fp8", "bf16", "tf32", "fp32") if d in t]
    for hi, lo in zip(ladder, ladder[1:]):
        assert t[hi] >= t[lo], f"{spec.key}: {hi} {t[hi]} < {lo} {t[lo]}"
    if "fp16" in t and "bf16" in t:
        assert t["fp16"] == t["bf16"]
    if spec.form_factor in ("sxm", "oam", "superchip"):
        assert spec.nvlink_gbps > 0
    if spec.mig:
        assert spec.mig_max_instances in (4, 7)
    else:
        assert spec.mig_max_instances == 0
    assert spec.pci_device_id and int(spec.pci_device_id, 16) > 0
    if spec.memory_total_mib is not None:
        # nvidia-smi totals sit within a few percent of the vendor figure (GB vs MiB, ECC reserve).
        assert 0.9 < spec.memory_total_mib * 2**20 / spec.memory_bytes < 1.1
    # HBM/GDDR bandwidth and the dense-vs-sparse halving keep every part inside known ranges.
    assert 100 <= spec.memory_bw_gbps <= 10_000
    assert spec.observed is not None


def test_blackwell_ultra_and_nvl72_gpus():
    """NVIDIA HGX B300 table (108 PF dense FP4 / 8 GPUs = 13.5 PF; FP8 72 PF sparse / 8 / 2 = 4.5 PF);
    GB200 NVL72 table (1,440 PF sparse FP4 / 72 / 2 = 10 PF; 13.4 TB / 72 = 186 GB); verda.com GB300
    per-GPU dense table (FP4 15 PF, FP8 5 PF, 1.4 kW). GB200/GB300 share one 72-GPU NVLink domain."""
    b300, gb200, gb300 = gpu("B300"), gpu("GB200"), gpu("gb300")
    assert (b300.tflops["fp4"], b300.tflops["fp8"], b300.memory_gb, b300.tdp_w) == (13500, 4500, 288, 1100)
    assert (gb200.tflops["fp4"], gb200.tflops["bf16"], gb200.memory_gb, gb200.tdp_w) == (10000, 2500, 186, 1200)
    assert (gb300.tflops["fp4"], gb300.tflops["fp8"], gb300.memory_gb, gb300.tdp_w) == (15000, 5000, 288, 1400)
    assert b300.scaleup_link == "nvlink-switch" and b300.scaleup_domain == 8
    for g in (gb200, gb300):
        assert g.scaleup_link == "nvlink-switch" and g.scaleup_domain == 72 and g.nvlink_gbps == 1800
        assert "72-GPU" in g.scaleup_name


def test_amd_mi325x_mi355x():
    """AMD MI325X: 256 GB HBM3E, 6 TB/s, MI300X compute, 1,000 W. MI355X (Tom's Hardware, 2025):
    288 GB, 8 TB/s, 20.1 PF FP4 with sparsity = 10.07 PF dense, 1,400 W. Both: 8-GPU Infinity Fabric."""
    m325, m355 = gpu("MI325X"), gpu("mi355x")
    assert (m325.memory_gb, m325.memory_bw_gbps, m325.tdp_w) == (256, 6000, 1000)
    assert m325.tflops["bf16"] == gpu("mi300x").tflops["bf16"]
    assert (m355.memory_gb, m355.memory_bw_gbps, m355.tdp_w) == (288, 8000, 1400)
    assert m355.tflops["fp4"] == pytest.approx(20.1e3 / 2, rel=0.01)
    assert {m325.scaleup_link, m355.scaleup_link} == {"infinity-fabric"} and m355.scaleup_domain == 8


def test_h800_is_an_h100_with_the_export_cuts():
    """NVIDIA H800 datasheet (SXM): the H100 SXM's tensor peaks, 80 GB HBM3 at 3.35 TB/s and 700 W, with NVLink cut to
    400 GB/s (H100: 900). DeepSeek-V3 technical report (arXiv 2412.19437, section 3.1), measured on its 2,048 H800s:
    NVLink delivers 160 GB/s per GPU. The planner's scale-up link for the part (line rate per direction times the
    NVLink 4 busbw efficiency measured on H100) lands within 5% of it."""
    from aiinfra.perf import comm

    h800, h100 = gpu("h800-sxm"), gpu("h100-sxm")
    assert h800.tflops == h100.tflops
    assert (h800.memory_gb, h800.memory_bw_gbps, h800.tdp_w, h800.nvlink_gbps) == (80, 3350, 700, 400)
    up = comm.node_for(h800).scale_up
    assert up.bw * up.busbw_eff == pytest.approx(160e9, rel=0.05)
