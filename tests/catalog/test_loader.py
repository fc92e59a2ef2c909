import json
from pathlib import Path

import pytest

from aiinfra.catalog import Catalog, normalize_name
from aiinfra.catalog.gpus import gpu
from aiinfra.catalog.models import model
from aiinfra.errors import AiinfraError, NotFoundError
from tests.conftest import assert_one_line_error


@pytest.mark.parametrize(
    "spelling,key",
    [("H100 SXM5", "h100-sxm"), ("h100", "h100-sxm"), ("H200", "h200-sxm"), ("L40S", "l40s")],
)
def test_gpu_common_spellings(spelling, key):
    assert gpu(spelling).key == key


@pytest.mark.parametrize(
    "spelling,key",
    [
        ("meta-llama/Llama-3.1-70B", "llama-3.1-70b"),
        ("meta-llama/Meta-Llama-3.1-8B-Instruct", "llama-3.1-8b"),
        ("Qwen/Qwen2.5-7B-Instruct", "qwen2.5-7b"),
        ("GPT-3", "gpt3-175b"),
    ],
)
def test_model_common_spellings(spelling, key):
    assert model(spelling).name == key


def test_unknown_gpu_suggests_closest():
    with pytest.raises(NotFoundError, match="unknown gpu 'H10'; closest: .*h100-sxm"):
        gpu("H10")


def test_normalize():
    assert normalize_name(" Meta-Llama/Llama 3.1_70B ") == "llama-3.1-70b"


def test_user_catalog_adds_and_overrides(tmp_path: Path):
    extra = tmp_path / "mine.yaml"
    extra.write_text(
        "gpus:\n"
        "  h100-sxm: {memory_gb: 81}\n"
        "  my-gpu: {name: Mine, architecture: x, memory_gb: 16, memory_type: GDDR6, memory_bw_gbps: 300,\n"
        "           tflops: {bf16: 50}, nvlink_gbps: 0, pcie_gen: 4, form_factor: pcie, tdp_w: 70, mig: false,\n"
        "           source: test}\n"
    )
    cat = Catalog([extra])
    assert cat.table("gpus")["h100-sxm"]["memory_gb"] == 81
    assert cat.table("gpus")["h100-sxm"]["memory_bw_gbps"] == 3350  # other fields kept
    assert "my-gpu" in cat.names("gpus")


def test_user_catalog_bad_yaml_names_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gpus:\n  a: {b: [1, 2}\n")
    with pytest.raises(AiinfraError, match=r"bad.yaml:2"):
        Catalog([bad])


def test_cli_catalog_option_and_bad_format(cli, tmp_path: Path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("models:\n  tiny: {config: {model_type: megatron-gpt, hidden_size: 64, num_layers: 2, num_attention_heads: 4}}\n")
    r = cli("--catalog", str(extra), "catalog", "models", "--format", "json")
    assert r.code == 0, r.err
    assert any(m["key"] == "tiny" for m in r.json()["facts"]["models"])
    assert_one_line_error(cli("catalog", "gpus", "--format", "xml"), "--format")


def test_user_catalog_malformed_tables_refused(cli, tmp_path: Path):
    """A multi-table user file whose entry is not a mapping, or which mixes in the single-table form's keys
    (`stacks: {entries: {...}}`), is refused in one line naming the file, exit 2: never a traceback, and never read
    as an entry called "entries"."""
    for text, needle in (("gpus:\n  h100-sxm: 5\n", "entry 'h100-sxm' must be a mapping"),
                         ("gpus:\n  h100-sxm: [1, 2]\n", "entry 'h100-sxm' must be a mapping"),
                         ("stacks:\n  entries:\n    mine: {source: x}\n", "holds 'entries'")):
        bad = tmp_path / "bad.yaml"
        bad.write_text(text)
        with pytest.raises(AiinfraError, match=needle):
            Catalog([bad])
        assert_one_line_error(cli("--catalog", str(bad), "catalog", "gpus", "--format", "json"), needle.split("'")[0])


@pytest.mark.parametrize("fields,where", [("{memory_total_mib: -1}", "memory_total_mib"),
                                          ("{tflops: {bf16: -5, fp8: 10}}", "tflops.bf16")])
def test_user_gpu_with_a_negative_capacity_or_rate_is_refused(cli, tmp_path: Path, fields: str, where: str):
    """A negative framebuffer used to size training at -0.4 GB usable, and a negative BF16 rate to plan with it;
    both are refused in one line naming the field."""
    bad = tmp_path / "gpu.yaml"
    bad.write_text(f"gpus:\n  h100-sxm: {fields}\n")
    assert_one_line_error(cli("--catalog", str(bad), "size", "train", "llama-3.1-8b", "--gpu", "h100-sxm",
                              "--format", "json"), where)


@pytest.mark.parametrize("text,argv,needle", [
    ("runtime:\n  training: {fragmentation: 3}\n", ("size", "train", "llama-3.1-8b", "--gpu", "h100-sxm"),
     "runtime 'training': fragmentation"),
    ("runtime:\n  training: {fragmentation: lots}\n", ("size", "train", "llama-3.1-8b", "--gpu", "h100-sxm"),
     "runtime 'training' field 'fragmentation' must be a number"),
    ("runtime:\n  training: {cuda_context_bytes: -5}\n", ("size", "train", "llama-3.1-8b", "--gpu", "h100-sxm"),
     "runtime 'training' field 'cuda_context_bytes' must be a number >= 0"),
    ('mig_profiles:\n  "0x2330": {profiles: 5}\n', ("mig", "profiles", "h100-sxm"),
     "mig_profile '0x2330' field 'profiles' must be a list"),
])
def test_user_runtime_or_mig_table_malformed_is_refused(cli, tmp_path: Path, text: str, argv: tuple, needle: str):
    """A fragmentation share of 3 (or of "lots", a traceback) and a negative CUDA context used to size training
    memory; a number where a MIG table's profile rows belong crashed `mig profiles`. Each is refused in one line."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_one_line_error(cli("--catalog", str(bad), *argv, "--format", "json"), needle)


@pytest.mark.parametrize("text,argv,needle", [
    ("k8s_components:\n  gpu-operator: {driver: 5}\n", ("k8s", "render", "operator", "--rdma"),
     "k8s_component 'gpu-operator' field 'driver' must be a map"),
    ("dra_driver:\n  nvidia-dra-driver: {feature_gates: 5}\n", ("k8s", "render", "dra", "--gpu", "h100-sxm"),
     "field 'feature_gates' must be a map"),
    ("datacenter:\n  pue-ai-dc: {value: x}\n", ("design", "--gpus", "512", "--node", "dgx-h100", "--format", "json"),
     "field 'value' must be a number"),
    ("datacenter:\n  pue-ai-dc: {value: -5}\n", ("tco", "--gpus", "256", "--gpu", "h100-sxm", "--cloud", "aws-p5"),
     "field 'value' must be a number >= 0"),
    ("stacks:\n  megatron-core: {overlap: {tp: 1}}\n", ("plan", "llama-3.1-8b", "--gpus", "8", "--format", "json"),
     "field 'overlap.tp' must be true/false"),
    ("mig_layouts:\n  7-slice: {memory_slots: 0}\n", ("mig", "validate", "h100-sxm", "1g.10gb"),
     "mig_layouts '7-slice': memory_slots and compute_slices must be whole numbers > 0"),
])
def test_a_user_field_of_another_shape_than_the_shipped_one_is_refused(cli, tmp_path: Path, text, argv, needle):
    """A user file that put a number where every shipped entry has a map (the GPU Operator's driver block, the DRA
    driver's feature gates) crashed `k8s render` with a traceback; text where a number belongs crashed `design`;
    1 where true/false belongs was read as true. Each is refused when the catalog is read, naming file, entry and
    field. A negative number where every shipped one is >= 0 (a PUE of -5 priced power as income in `tco`) is
    refused the same way. A MIG layout with 0 or -5 memory slots read every geometry as invalid without saying why."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_one_line_error(cli("--catalog", str(bad), *argv), needle)


def test_shapes_a_reader_takes_are_still_accepted(cli, tmp_path: Path):
    """What the readers take beyond the shipped shapes stays accepted: a date written as text, a constant where the
    shipped entry gives a curve of points, a version YAML reads as a number where the shipped one is text."""
    ok = tmp_path / "ok.yaml"
    ok.write_text("kernels:\n  hopper: {observed: '2026-12-07', attention_fwd_d192: {bf16: 0.6}, attention_bwd_d192: {bf16: 0.4}}\n"
                  "k8s_components:\n  gpu-operator: {driver: {version: 595.91}}\n")
    r = cli("--catalog", str(ok), "plan", "llama-3.1-8b", "--gpus", "8", "--format", "json")
    assert r.code == 0, r.err


@pytest.mark.parametrize("text,needle", [
    ("gpu:\n  h100-sxm: {memory_total_mib: 1000}\n", "no table 'gpu' is read; closest: gpus"),
    ("kind: calibration\nentries:\n  training: {peak_fraction: 0.9}\n", "no table 'calibration' is read; closest: calibrations"),
    ("calibrations:\n  training: {peak_fracton: 0.9}\n", "calibration 'training' has field 'peak_fracton', which no command reads; closest: peak_fraction"),
    ("prices:\n  aws-p5: {on_demnd: 1.0}\n", "price 'aws-p5' has field 'on_demnd', which no command reads; closest: on_demand"),
    ("stacks:\n  megatron-core: {overlap_sm_fracton: 0.1}\n", "stack 'megatron-core' has field 'overlap_sm_fracton'"),
    ("models:\n  llama-3.1-8b: {confg: {num_hidden_layers: 2}}\n", "model 'llama-3.1-8b' has field 'confg', which no "
     "command reads; closest: config"),
])
def test_a_user_table_or_field_no_command_reads_is_refused(cli, tmp_path: Path, text, needle):
    """A misspelt table ('gpu:' for 'gpus:') was merged as a table of its own and never read; a misspelt entry field
    (`peak_fracton`) was merged and never read. Either way the command ran on the shipped figures while the user
    believed their own were in force. Both are refused when the catalog is read, with the closest names."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_one_line_error(cli("--catalog", str(bad), "plan", "llama-3.1-8b", "--gpus", "8", "--format", "json"), needle)


def test_fields_a_reader_takes_beyond_the_shipped_ones_are_accepted(cli, tmp_path: Path):
    """Fields readers take that no shipped entry carries stay accepted: a cloud offer's own 1-year price (cost.cloud
    reads it before the provider's discount), an XID's text under another catalog's name, and a note on any entry."""
    ok = tmp_path / "ok.yaml"
    ok.write_text("prices:\n  aws-p5: {reserved_1y: 40.0, reserved_1y_note: quoted 2026-12, note: my quote}\n"
                  "xid:\n  '79': {description: fell off the bus, alert_class: critical}\n")
    r = cli("--catalog", str(ok), "tco", "--gpus", "256", "--gpu", "h100-sxm", "--cloud", "aws-p5", "--term", "1y",
            "--format", "json")
    assert r.code == 0, r.err
    offer = json.loads(r.out)["facts"]["offers"][0]
    assert (offer["term"], offer["usd_per_gpu_hour"]) == ("1y", 5.0)  # 40 $/instance-h over 8 GPUs


@pytest.mark.parametrize("text,needle", [
    ("calibrations:\n  training: {framework_efficiency_by_architecture: {hoper: {value: 0.8, fit: mine}}}\n",
     "field 'framework_efficiency_by_architecture' is keyed by architecture, and 'hoper' is none; closest: hopper"),
    ("engines:\n  vllm: {efficiency: {h200: {decode_bw_fraction: 0.8, gemm_scale: 1.0}}}\n",
     "field 'efficiency' is keyed by GPU, and 'h200' is none; closest: "),
])
def test_a_map_keyed_by_gpu_or_architecture_refuses_a_name_that_is_neither(cli, tmp_path: Path, text, needle):
    """The readers look these maps up by the GPU's catalog key or its architecture, so a key that is neither (a
    misspelt 'hoper', the alias 'h200' for h200-sxm) would never be read."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_one_line_error(cli("--catalog", str(bad), "plan", "llama-3.1-8b", "--gpus", "8", "--format", "json"), needle)


def test_a_framework_efficiency_of_an_architecture_variant_is_used(cli, tmp_path: Path):
    """framework_efficiency_by_architecture may name a variant (blackwell-ultra, the B300's) as well as a family
    (blackwell): the variant's own entry is read first, so the key the loader accepts is the one the planner uses."""
    own = tmp_path / "own.yaml"
    own.write_text("calibrations:\n  training: {framework_efficiency_by_architecture: "
                   "{blackwell-ultra: {value: 0.5, fit: my B300 runs}}}\n")
    argv = ("plan", "llama-3.1-8b", "--gpu", "b300", "--gpus", "8", "--format", "json")
    base, mine = cli(*argv), cli("--catalog", str(own), *argv)
    assert base.code == 0 and mine.code == 0, mine.err
    tokens = [json.loads(r.out)["facts"]["tokens_per_second"]["value"] for r in (base, mine)]
    assert tokens[1] < 0.8 * tokens[0]


def test_every_field_the_price_and_xid_readers_take_is_accepted():
    """The loader's own list of fields readers take beyond the shipped ones (_READ_ALSO) is a copy of names the readers
    spell: the price of each term, its monthly commitment and note (cost.cloud), every money field (catalog.prices),
    and each XID text under every name catalog.xid reads. A name dropped from the copy would refuse a file the
    readers honour; this keeps the two in step."""
    from aiinfra.catalog.loader import known_fields
    from aiinfra.catalog.prices import MONEY_FIELDS, TERM_FIELD
    from aiinfra.catalog.xid import _TEXT_FIELDS

    shipped = Catalog().tables
    prices = {"usd_per_gpu_hour", *MONEY_FIELDS, *(f + s for f in TERM_FIELD.values() for s in ("", "_note", "_monthly"))}
    assert prices <= known_fields("prices", shipped)
    xid = {"code", "severity", "alert_class", *(n for names in _TEXT_FIELDS.values() for n in names)}
    assert xid <= known_fields("xid", shipped)


_PLAN = ("plan", "llama-3.1-8b", "--gpus", "8", "--format", "json")


@pytest.mark.parametrize("text,argv,needle", [
    ("kernels:\n  hopper: {gemm_plateau: {bf16: 0.8, fp8_scaledmm: 0.7}}\n", _PLAN,
     "kernel 'hopper' field 'gemm_plateau' is keyed by dtype or kernel route, and 'fp8_scaledmm' is none; closest: "
     "fp8_scaled_mm"),
    ("kernels:\n  hopper: {attention_fwd: {bf16: 0.6, fp8: 0.7}, attention_bwd: {bf16: 0.5, fp8: 0.6}}\n", _PLAN,
     "field 'attention_fwd' is keyed by dtype or kernel route, and 'fp8' is none; it takes bf16, bf16_cudnn, "
     "bf16_fa2, bf16_fa3, bf16_triton"),
    ("interconnects:\n  nvlink-4: {ring_hop_us: {nvlnk: 5.0, pcie: 1.0, net: 2.0}}\n", _PLAN,
     "interconnect 'nvlink-4' field 'ring_hop_us' has key 'nvlnk', which no command reads; closest: nvlink"),
    ("engines:\n  vllm: {efficiency: {h100-sxm: {decode_bw_fraction: 0.8, gemm_scal: 1.0}}}\n", _PLAN,
     "engine 'vllm' field 'efficiency.h100-sxm' has key 'gemm_scal', which no command reads; closest: gemm_scale"),
    ("k8s_components:\n  gpu-operator: {driver: {repository: nvcr.io/nvidia, imge: driver, version: '580'}}\n", _PLAN,
     "field 'driver' has key 'imge', which no command reads; closest: image"),
    ("dra_driver:\n  nvidia-dra-driver: {resource_api: {1.30: {version: resource.k8s.io/v1, served: [], "
     "default_on: true}}}\n", ("k8s", "render", "dra", "--gpu", "h100-sxm"),
     "field 'resource_api' is keyed by a Kubernetes release in quotes, such as '1.37' (YAML reads an unquoted 1.30 "
     "as the number 1.3); got 1.3"),
    ("dra_driver:\n  nvidia-dra-driver: {resource_api: {'1.37': {version: resource.k8s.io/v1, servd: [], "
     "default_on: true}}}\n", ("k8s", "render", "dra", "--gpu", "h100-sxm"),
     "field 'resource_api.1.37' has key 'servd', which no command reads; closest: served"),
    ("gpus:\n  h100-sxm: {tflops: {bf16: 989, bf61: 1000}}\n", _PLAN, "invalid at 'tflops.bf61.[key]'"),
])
def test_a_key_of_a_map_inside_an_entry_that_no_reader_takes_is_refused(cli, tmp_path: Path, text, argv, needle):
    """A user's map replaces the shipped one whole, so a misspelt key inside it was worse than unread: the reader fell
    back to its default for the key the user meant. `gemm_plateau: {fp8_scaledmm: 0.7}` left torch._scaled_mm at the
    fp8 figure; an `fp8` attention curve was dropped by the kernel table (it reads bf16 and bf16_<route> only); a
    misspelt hop latency, engine efficiency or image field went unread; an unquoted release 1.30 became 1.3, and
    'v1.37' crashed the release sort. Each is refused when the catalog is read, with the names the reader takes."""
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    assert_one_line_error(cli("--catalog", str(bad), *argv), needle)


def test_every_field_of_an_engine_efficiency_its_reader_takes_is_accepted(cli, tmp_path: Path):
    """An engine's per-GPU efficiency record is read by perf.inference against its own field list
    (_ENGINE_EFFICIENCY), which names two fields no shipped GPU carries: the loader takes every one of them, and a
    user's KV-cache bandwidth share changes the decode step it prices."""
    from aiinfra.catalog.loader import _READ_ALSO_IN, _names_keyed_by, _shipped_maps
    from aiinfra.perf.inference import _ENGINE_EFFICIENCY

    shipped = Catalog().tables
    path = ("engines", "efficiency", "*")
    pools = _shipped_maps(shipped, _names_keyed_by(shipped, {}))
    assert set(_ENGINE_EFFICIENCY) <= pools[path] | set(_READ_ALSO_IN[path])
    own = tmp_path / "own.yaml"
    own.write_text("engines:\n  vllm: {efficiency: {h100-sxm: {decode_bw_fraction: 0.8, gemm_scale: 1.0, "
                   "kv_bw_fraction: 0.2, prefill_overhead_ms: 5.0}}}\n")
    argv = ("infer", "llama-3.1-8b", "--gpu", "h100-sxm", "--engine", "vllm", "--prompt", "4000", "--output", "200",
            "--batch", "32", "--format", "json")
    base, mine = cli(*argv), cli("--catalog", str(own), *argv)
    assert base.code == 0 and mine.code == 0, mine.err
    assert mine.out != base.out


def test_every_shipped_table_is_accepted_as_a_user_file(tmp_path: Path):
    """The nested checks refuse nothing the shipped catalog itself holds: each table, written back as a user file,
    loads (a record's keys, GPU- and architecture-keyed maps, the kernel tables' dtypes and routes, named maps)."""
    import yaml

    shipped = Catalog().tables
    for kind, entries in shipped.items():
        f = tmp_path / f"{kind}.yaml"
        f.write_text(yaml.safe_dump({kind: {k: {n: v for n, v in e.items() if n != "path"} for k, e in entries.items()}}))
        Catalog([f])


def test_names_a_user_may_add_to_a_named_map_are_read(cli, tmp_path: Path):
    """Maps keyed by names a newer release brings (a Kubernetes release, a DRA feature gate) take a name the shipped
    catalog lacks, and the command uses it: DRA objects for Kubernetes 1.37."""
    own = tmp_path / "own.yaml"
    own.write_text("dra_driver:\n  nvidia-dra-driver:\n    resource_api:\n"
                   "      '1.34': {version: resource.k8s.io/v1, served: [resource.k8s.io/v1], default_on: true}\n"
                   "      '1.37': {version: resource.k8s.io/v1, served: [resource.k8s.io/v1], default_on: true}\n")
    r = cli("--catalog", str(own), "k8s", "render", "dra", "--gpu", "h100-sxm", "--k8s-version", "1.37", "--format", "json")
    assert r.code == 0, r.err
    assert "Kubernetes 1.37" in json.loads(r.out)["title"]


def test_the_kernel_table_names_the_loader_accepts_are_the_ones_its_reader_reads():
    """The loader's vocabulary for a kernel table's maps (_vocabulary) is a copy of the names perf.compute builds:
    every GEMM plateau name is read by KernelTable.plateau for some dtype and route, and every attention name is a
    route the table keeps. A name the loader accepted but the reader never read would be a silent drop again."""
    from aiinfra.catalog.loader import _vocabulary
    from aiinfra.perf.compute import KernelTable, _route_curves
    from aiinfra.perf.stacks import _attention_kernel
    from aiinfra.specs import FP8_GEMM_ROUTES, LINEAR_DTYPES

    names = _vocabulary(("kernels", "gemm_plateau"))
    plateau = {n: 0.5 + i / 100 for i, n in enumerate(sorted(names))}
    kt = KernelTable("x", plateau, ((1.0, 1.0),), 1.0, "", "")
    read = {kt.plateau(d, r) for d in LINEAR_DTYPES for r in FP8_GEMM_ROUTES}
    assert read == set(plateau.values())
    # each attention name is bf16 or bf16_<route> of a route a stack may call (stacks.yaml attention_kernel)
    routes = set(_route_curves(*[{n: 0.5 for n in _vocabulary(("kernels", "attention_fwd"))}] * 2))
    assert routes == {_attention_kernel("s", r) for r in ("", "cudnn", "fa2", "fa3", "triton")}
