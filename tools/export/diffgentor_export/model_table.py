"""The model table (src/models/model_table.json, the file the C++ runtime embeds): every model type diffgentor
knows, its upstream pipeline class and whether it is implemented. Pure Python, no torch.

DIFFGENTOR_MODEL_TABLE overrides the path (as DIFFGENTOR_CONTRACT does the contract's).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

STATUSES = ("implemented", "planned")


class ModelTableError(ValueError):
    pass


def table_path() -> Path:
    env = os.environ.get("DIFFGENTOR_MODEL_TABLE")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "src" / "models" / "model_table.json"


def rows(path: Path | None = None) -> list:
    """The table's rows, in its (detection-priority) order; each has at least type, status, pipeline_class."""
    path = path or table_path()
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelTableError(f"cannot read the model table {path}: {e}") from None
    out, seen = [], set()
    for row in doc.get("types", []):
        kind = row.get("type")
        if not kind or kind in seen:
            raise ModelTableError(f"{path}: a row has {'a repeated' if kind else 'no'} type ({kind!r})")
        if row.get("status") not in STATUSES:
            raise ModelTableError(f"{path}: type {kind} has status {row.get('status')!r} "
                                  f"(expected one of {', '.join(STATUSES)})")
        if not row.get("pipeline_class"):
            raise ModelTableError(f"{path}: type {kind} has no pipeline_class")
        seen.add(kind)
        out.append(row)
    if not out:
        raise ModelTableError(f"{path}: no model types")
    return out


def implemented_types(path: Path | None = None) -> list:
    """The types with a pipeline and a tiny bundle in the runtime: the ones the exporter and the parity
    harness must cover, in table order."""
    return [r["type"] for r in rows(path) if r["status"] == "implemented"]


def pipeline_types(path: Path | None = None) -> dict:
    """diffusers pipeline class (model_index.json `_class_name`) -> model type, for every row."""
    return {r["pipeline_class"]: r["type"] for r in rows(path)}


def row(model_type: str, path: Path | None = None) -> dict | None:
    return next((r for r in rows(path) if r["type"] == model_type), None)
