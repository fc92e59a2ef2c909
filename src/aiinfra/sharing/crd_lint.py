"""Operator objects against the CRD schemas shipped in catalog/data/crd_schemas (each with its commit).

A value the schema refuses is rejected by the API server; a field it does not declare is accepted and
pruned silently, so both are findings.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aiinfra.catalog.loader import DATA_DIR
from aiinfra.sharing.findings import LintContext


@lru_cache(maxsize=32)
def crd_schema(kind: str) -> dict:
    path = DATA_DIR / "crd_schemas" / f"{kind.lower()}.json"
    return json.loads(path.read_text())


@lru_cache(maxsize=32)
def crd_validator(kind: str) -> Any:
    import jsonschema

    return jsonschema.Draft7Validator(crd_schema(kind)["schema"])


def lint_crd(ctx: LintContext, doc: dict, base: tuple) -> None:
    """An operator object against its CRD's shipped schema: rejected values, and fields the API server prunes."""
    kind = str(doc.get("kind"))
    shipped = crd_schema(kind)
    if doc.get("apiVersion") != shipped["apiVersion"]:
        ctx.add(base + ("apiVersion",), "crd.api-version", f"apiVersion {doc.get('apiVersion')!r} is not {shipped['apiVersion']}", f"use apiVersion: {shipped['apiVersion']}")
    for err in sorted(crd_validator(kind).iter_errors(doc), key=lambda e: [str(x) for x in e.absolute_path]):
        if err.instance is None and err.validator == "type":
            # The API server prunes a null in a non-nullable field before validation (structural schemas).
            ctx.add(base + tuple(err.absolute_path), "crd.null-pruned", "null value: the API server drops it and the default applies",
                    "remove the key, or give a value", severity="info")
            continue
        ctx.add(base + tuple(err.absolute_path), "crd.schema", f"{short(err.message)} (CRD {shipped['version']}); the API server rejects the object",
                "follow the CRD schema: " + _fix_for(err))
    _pruned(ctx, doc, shipped["schema"], base, kind)


def short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _fix_for(err: Any) -> str:
    if err.validator == "required":
        return "add the missing field"
    if err.validator == "enum":
        return f"use one of {err.validator_value}"
    if err.validator == "type":
        return f"give a value of type {err.validator_value}"
    return "correct the value"


def _pruned(ctx: LintContext, obj: Any, schema: dict, path: tuple, kind: str) -> None:
    """Fields the schema does not declare: the API server accepts and silently drops them."""
    if isinstance(obj, dict) and isinstance(schema.get("properties"), dict):
        if schema.get("x-kubernetes-preserve-unknown-fields"):
            return
        for k, v in obj.items():
            sub = schema["properties"].get(k)
            if v is None:
                continue  # reported as crd.null-pruned
            if sub is None:
                ctx.add(path + (str(k),), "crd.pruned", f"{kind} has no field '{k}' here; the API server drops it silently", "remove it or fix its spelling",
                        severity="warning")
            else:
                _pruned(ctx, v, sub, path + (str(k),), kind)
    elif isinstance(obj, dict) and isinstance(schema.get("additionalProperties"), dict):
        for k, v in obj.items():
            _pruned(ctx, v, schema["additionalProperties"], path + (str(k),), kind)
    elif isinstance(obj, list) and isinstance(schema.get("items"), dict):
        for i, v in enumerate(obj):
            _pruned(ctx, v, schema["items"], path + (i,), kind)
