"""Hypothesis: random geometries and random YAML never crash the validator or the linter;
they give a result or an AiinfraError (CONVENTIONS.md, property tests)."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiinfra.errors import AiinfraError
from aiinfra.sharing import lint, mig

GPUS = [mig.mig_gpu(n) for n in ("h100-sxm", "a30", "rtx-pro-6000", "a100-40gb")]
PROFILE_NAMES = sorted({p for g in GPUS for p in g.profiles}) + ["1g10gb", "9g.1gb", "", "3g.20gb+", "1c.3g.40gb"]

counts = st.dictionaries(st.sampled_from(PROFILE_NAMES), st.integers(min_value=-2, max_value=9), max_size=6)


@settings(max_examples=300, deadline=None)
@given(gpu=st.sampled_from(GPUS), geo=counts)
def test_random_geometries_never_crash_the_validator(gpu, geo):
    try:
        check = mig.validate(gpu, geo)
    except AiinfraError:
        return
    assert check.valid == (not check.reasons)
    if check.valid:  # a valid answer always comes with a disjoint placement
        used: set[int] = set()
        for _, start, size in check.placement:
            span = set(range(start, start + size))
            assert not used & span
            used |= span


@settings(max_examples=200, deadline=None)
@given(gpu=st.sampled_from(GPUS), text=st.text(alphabet="0123456789gbcx.:,+-@me ", max_size=40))
def test_random_geometry_strings_never_crash(gpu, text):
    try:
        mig.validate(gpu, text)
    except AiinfraError:
        pass


scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 100), st.text(max_size=12), st.sampled_from(["v1", "all", "1g.10gb", "nvidia.com/gpu", "0x233010DE"]))
keys = st.one_of(st.text(max_size=10), st.sampled_from(["version", "mig-configs", "devices", "mig-enabled", "mig-devices", "device-filter", "sharing",
                                                          "timeSlicing", "mps", "resources", "name", "replicas", "flags", "migStrategy", "kind",
                                                          "apiVersion", "spec", "data", "metadata", "config.yaml", "rename"]))
trees = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)), max_leaves=30)
kinds = st.sampled_from([None, "ConfigMap", "ClusterPolicy", "NicClusterPolicy", "HostDeviceNetwork", "MacvlanNetwork", "Node", "Pod"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees, kind=kinds)
def test_random_yaml_documents_never_crash_the_linter(tree, kind):
    doc = tree
    if kind and isinstance(tree, dict):
        doc = {**tree, "kind": kind}
    text = yaml.safe_dump(doc)
    try:
        found = lint.lint_text(text, "random.yaml")
    except AiinfraError:
        return
    assert all(f.file == "random.yaml" for f in found)


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_never_crashes_the_linter(text):
    try:
        lint.lint_text(text, "random.yaml")
    except AiinfraError as e:
        assert "random.yaml" in str(e)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads=st.dictionaries(st.sampled_from(["config.yaml", "any", "a100"]), trees, min_size=1, max_size=3),
       policy=st.dictionaries(keys, trees, max_size=4))
def test_random_configmaps_and_policies_never_crash_the_linter(payloads, policy):
    """Embedded configs (ConfigMap data strings) and ClusterPolicy specs that reference them."""
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {k: yaml.safe_dump(v) for k, v in payloads.items()}}
    cp = {"apiVersion": "nvidia.com/v1", "kind": "ClusterPolicy", "metadata": {"name": "p"},
          "spec": {**policy, "migManager": {"config": {"name": "cfg", "default": "x"}}, "devicePlugin": {"config": {"name": "cfg"}}}}
    try:
        lint.lint_text(yaml.safe_dump_all([cm, cp]), "random.yaml")
    except AiinfraError:
        pass
