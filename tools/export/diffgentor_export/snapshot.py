"""The diffusers snapshot side of an export (pure Python): where the snapshot is, which model type its
pipeline class is, which of its files a bundle keeps, and the tokenizer.json each tokenizer folder needs."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from . import model_table
from .tokenizer_convert import ensure_tokenizer_json

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".gguf", ".onnx", ".onnx_data", ".msgpack", ".h5",
                   ".pkl", ".npz")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "spiece.model")


class SnapshotError(ValueError):
    pass


def model_index(snapshot: Path) -> dict:
    path = Path(snapshot) / "model_index.json"
    if not path.is_file():
        raise SnapshotError(f"{snapshot}: no model_index.json (not a diffusers pipeline snapshot)")
    return json.loads(path.read_text(encoding="utf-8"))


def model_type(snapshot: Path, requested: str | None = None) -> str:
    """The type of the snapshot's pipeline class; `requested` (--model_type) must agree with it.

    The pipeline classes and statuses come from src/models/model_table.json; only its "implemented" rows can be
    exported (a "planned" type has no pipeline in the runtime yet)."""
    cls = model_index(snapshot).get("_class_name", "")
    pipeline_types = model_table.pipeline_types()
    found = pipeline_types.get(cls)
    if requested and found and requested != found:
        raise SnapshotError(f"{snapshot}: model_index.json names {cls} (type {found}), not --model_type {requested}")
    kind = requested or found
    if kind is None:
        raise SnapshotError(f"{snapshot}: pipeline class '{cls}' is not one diffgentor runs "
                            f"(known: {', '.join(sorted(pipeline_types))}); pass --model_type to force one")
    exportable = model_table.implemented_types()
    if kind not in exportable:
        row = model_table.row(kind)
        status = f": {model_table.table_path().name} lists it as {row['status']}" if row else ""
        raise SnapshotError(f"model type {kind} cannot be exported yet{status} (exportable: {', '.join(exportable)})")
    return kind


def revision_of(snapshot: Path) -> str | None:
    """The hub commit of a snapshot inside the Hugging Face cache (…/snapshots/<40 hex>/), else None."""
    for part in reversed(Path(snapshot).resolve().parts):
        if re.fullmatch(r"[0-9a-f]{40}", part):
            return part
    return None


def copy_non_weights(snapshot: Path, out: Path) -> list:
    """Copies every file of the snapshot except weights (bundle contract §2), keeping folders; returns the
    relative paths copied."""
    copied = []
    for src in sorted(Path(snapshot).rglob("*")):
        rel = src.relative_to(snapshot)
        if src.is_dir() or rel.parts[0].startswith(".") or src.name.endswith(WEIGHT_SUFFIXES) \
                or src.name.endswith(".index.json"):
            continue
        dst = Path(out) / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        copied.append(str(rel))
    return copied


def split_processor_configs(out: Path) -> list:
    """transformers >= 5 saves a processor as one `processor_config.json` with the image processor's settings
    nested under "image_processor"; the runtime reads the older layout, `preprocessor_config.json` beside it
    (as the published checkpoints have it). Writes that file where only the nested form exists; returns the
    folders done."""
    done = []
    for combined in sorted(Path(out).rglob("processor_config.json")):
        target = combined.with_name("preprocessor_config.json")
        nested = json.loads(combined.read_text(encoding="utf-8")).get("image_processor")
        if target.exists() or not isinstance(nested, dict):
            continue
        target.write_text(json.dumps(nested, indent=2) + "\n", encoding="utf-8")
        done.append(str(combined.parent.relative_to(out)))
    return done


def ensure_tokenizers(out: Path) -> dict:
    """Writes tokenizer.json into every folder of the bundle that holds tokenizer files without one."""
    done = {}
    for folder in sorted({p.parent for name in TOKENIZER_FILES for p in Path(out).rglob(name)}):
        if folder.name == "torchscript":
            continue
        done[str(folder.relative_to(out))] = ensure_tokenizer_json(folder)
    return done


def check_runtime_files(out: Path, subfolders: list, extra: tuple | list = (), tokenizer: bool = True) -> list:
    """What the runtime will open that the bundle lacks: the files every type needs (scheduler config, the
    exported subfolders' configs, the tokenizer unless `tokenizer` is false) plus `extra`, the type's own (its
    recipe's runtime_files)."""
    need = ["model_index.json", "scheduler/scheduler_config.json"] + [f"{s}/config.json" for s in subfolders]
    if tokenizer:
        need += ["tokenizer/tokenizer.json", "tokenizer/tokenizer_config.json"]
    need += list(extra)
    return [n for n in dict.fromkeys(need) if not (Path(out) / n).is_file()]
