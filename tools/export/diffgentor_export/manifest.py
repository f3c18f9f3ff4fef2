"""torchscript/manifest.json (docs/bundle-format.md): built from the contract and what the export found.

The runtime checks format_version, model_type, producer.torch (a bundle loads only in a libtorch at least as
new as the torch that wrote it), dtype and every component's file; this module writes exactly those fields,
plus the exporter's records (`verified`, `required_ops`) that the runtime treats as information.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from . import __version__
from .contract import DTYPES, FORMAT_VERSION, ContractError, component_names, manifest_entry

PRODUCER = "diffgentor export_bundle"


def torch_version(version: str) -> str:
    """'2.6.0+cu124' -> '2.6.0': the runtime compares major.minor; local tags say nothing about ops."""
    return version.split("+", 1)[0]


def build(model_type: str, dtype: str, *, source: dict, versions: dict, trace_device: str, attention: str,
          constants: dict | None = None, records: dict | None = None, unused_inputs: dict | None = None,
          optional=()) -> dict:
    """The manifest for an exported bundle.

    versions: {"torch": ..., "diffusers": ..., "transformers": ...}; records: per component extra fields
    ("verified", "required_ops"); unused_inputs: {component: [input names the graph ignores]} -> `used: false`;
    optional: the contract's optional groups the bundle holds (listed as `optional`, their methods included).
    """
    if dtype not in DTYPES:
        raise ContractError(f"unknown dtype '{dtype}'")
    if "torch" not in versions:
        raise ContractError("versions must name the torch that exported")
    comps = {}
    for name in component_names(model_type, optional=optional):
        entry = manifest_entry(model_type, name, dtype, optional=optional)
        for method in entry["methods"].values():
            for t in method["inputs"]:
                if t["name"] in (unused_inputs or {}).get(name, ()):
                    t["used"] = False
        entry.update((records or {}).get(name, {}))
        comps[name] = entry
    producer = {"name": PRODUCER, "version": __version__}
    producer.update({k: (torch_version(v) if k == "torch" else v) for k, v in versions.items()})
    return {
        "format_version": FORMAT_VERSION,
        "model_type": model_type,
        "source": {"model_id": source.get("model_id"), "revision": source.get("revision")},
        "producer": producer,
        "tiny": False,
        "dtype": dtype,
        "dtype_convertible": False,
        "trace_device": trace_device,
        "attention": attention,
        "optional": list(optional),
        "components": comps,
        "constants": dict(constants or {}),
    }


def check_files(manifest: dict, torchscript_dir: Path) -> list:
    """Problems the runtime would report about the component files (empty when none)."""
    problems = []
    for name in component_names(manifest["model_type"], optional=manifest.get("optional", ())):
        entry = manifest["components"].get(name)
        if entry is None:
            problems.append(f"component '{name}' is missing")
        elif not (Path(torchscript_dir) / entry["file"]).is_file():
            problems.append(f"component '{name}': file torchscript/{entry['file']} does not exist")
    return problems


def write(manifest: dict, bundle_dir: Path) -> Path:
    """Writes <bundle>/torchscript/manifest.json atomically, after checking every component file exists."""
    ts = Path(bundle_dir) / "torchscript"
    problems = check_files(manifest, ts)
    if problems:
        raise ContractError(f"{ts}: " + "; ".join(problems))
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(dir=ts, prefix=".manifest.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    target = ts / "manifest.json"
    os.replace(tmp, target)
    return target
