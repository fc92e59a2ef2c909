"""plan.heap: freed search temporaries stay in the heap while a search runs (glibc), and the process gets its
memory back afterwards."""

import resource

import numpy as np
import pytest

from aiinfra.plan import heap
from aiinfra.plan.heap import kept_heap

PAGES = (8 << 20) // resource.getpagesize()  # one 8 MiB float64 array


def churn(rounds: int = 20) -> int:
    """Minor page faults of allocating, filling and freeing a few 8 MiB arrays, as one search chunk does."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(rounds):
        a, b = np.ones(1 << 20), np.ones(1 << 20)
        c = a + b
        del a, b, c
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(heap._LIBC is None, reason="glibc only")
def test_freed_blocks_are_reused_inside_a_search():
    """With glibc's trim threshold at 0 every free hands the pages back and each round faults all three arrays in
    again (60 × 2,048 pages); inside kept_heap only the first round does."""
    with kept_heap():
        faults = churn()
    assert faults < 3 * PAGES * 2, faults


def test_nested_and_concurrent_uses_restore_once():
    """The thresholds are process-wide: only the last search to end lowers the trim threshold again."""
    assert heap._active == 0
    with kept_heap():
        with kept_heap():
            assert heap._active == 2
        assert heap._active == 1
    assert heap._active == 0


def test_without_glibc_it_does_nothing(monkeypatch):
    monkeypatch.setattr(heap, "_LIBC", None)
    with kept_heap():
        assert heap._active == 0


def test_plan_runs_inside_it(monkeypatch):
    """plan() holds the heap for the whole search (space, chunks, ranking), and lets it go at the end."""
    from aiinfra.catalog.gpus import gpu
    from aiinfra.catalog.models import model
    from aiinfra.plan import search

    seen, build = [], search.build_space

    def spy(*a, **k):
        seen.append(heap._active)
        return build(*a, **k)

    monkeypatch.setattr(search, "build_space", spy)
    search.plan(model("llama-3.1-8b"), gpu("h100-sxm"), 8, global_batch=64, seq=4096)
    assert seen == [1] and heap._active == 0
