"""Linter rules for Dynamic Resource Allocation objects (filled in below)."""

from __future__ import annotations

from typing import Any

DRA_KINDS = {"DeviceClass", "ResourceClaim", "ResourceClaimTemplate", "ComputeDomain", "GPUCluster", "ResourceFlavor", "ClusterQueue"}


def is_dra(doc: dict) -> bool:
    return isinstance(doc.get("kind"), str) and doc["kind"] in DRA_KINDS


def lint_dra(docs: list, items: list) -> list:
    return []
