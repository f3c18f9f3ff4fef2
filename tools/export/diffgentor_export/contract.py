"""The component contract (src/core/bundle_contract.json, the same file the C++ runtime embeds).

`components(model_type)` gives the methods a bundle of that type must hold, with argument names in order;
`check_module` compares a TorchScript module's method schemas with them, exactly as the runtime's loader
does (src/engine/bundle.cpp), so an export that would not load fails here first.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMAT_VERSION = 3
DTYPES = ("bfloat16", "float16", "float32")


def contract_path() -> Path:
    env = os.environ.get("DIFFGENTOR_CONTRACT")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "src" / "core" / "bundle_contract.json"


@dataclass
class Tensor:
    name: str
    dtype: str  # "W", "float32", "int64" or "bool"
    shape: list

    def resolved(self, weight_dtype: str) -> dict:
        dtype = weight_dtype if self.dtype == "W" else self.dtype
        return {"name": self.name, "dtype": dtype, "shape": list(self.shape)}


@dataclass
class Method:
    component: str
    subfolder: str
    method: str
    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    optional: str | None = None  # the optional group the method belongs to (None: every bundle has it)

    @property
    def input_names(self) -> list:
        return [t.name for t in self.inputs]


class ContractError(ValueError):
    pass


def _load(path: Path | None = None) -> dict:
    doc = json.loads((path or contract_path()).read_text(encoding="utf-8"))
    if doc.get("format_version") != FORMAT_VERSION:
        raise ContractError(f"{path or contract_path()}: format_version {doc.get('format_version')} "
                            f"is not {FORMAT_VERSION}")
    return doc


def _tensors(entry: dict, key: str) -> list:
    return [Tensor(t["name"], t["dtype"], list(t["shape"])) for t in entry[key]]


def _expand(doc: dict, name: str, depth: int = 0) -> list:
    lists = [doc[s][name] for s in ("types", "groups") if name in doc[s]]
    if not lists or depth > 8:
        raise ContractError(f"bundle_contract.json: unknown include '{name}'")
    out = []
    for e in lists[-1]:
        if "include" in e:
            out.extend(_expand(doc, e["include"], depth + 1))
            continue
        out.append(Method(e["component"], e["subfolder"], e.get("method", "forward"), _tensors(e, "inputs"),
                          _tensors(e, "outputs"), e.get("optional")))
    return out


def model_types(path: Path | None = None) -> list:
    return list(_load(path)["types"])


def components(model_type: str, path: Path | None = None, optional=()) -> list:
    """The contract's methods for `model_type`, in contract order (one entry per method): every required one and
    those of the optional groups named in `optional`."""
    doc = _load(path)
    if model_type not in doc["types"]:
        raise ContractError(f"unknown model type '{model_type}' (known: {', '.join(doc['types'])})")
    return [m for m in _expand(doc, model_type) if m.optional is None or m.optional in optional]


def optional_groups(model_type: str) -> list:
    """The optional groups `model_type`'s contract has (FLUX.2-dev: "upsampler")."""
    return list(dict.fromkeys(m.optional for m in _expand(_load(), model_type) if m.optional))


def component_names(model_type: str, optional=()) -> list:
    seen = []
    for m in components(model_type, optional=optional):
        if m.component not in seen:
            seen.append(m.component)
    return seen


def schema_names(module, method: str) -> list:
    """Argument names of a TorchScript module's method, without `self`."""
    fn = getattr(module, method, None)
    if fn is None or not hasattr(fn, "schema"):
        raise ContractError(f"the module has no TorchScript method {method}()")
    return [a.name for a in fn.schema.arguments][1:]


def check_module(module, model_type: str, component: str, optional=()) -> None:
    """Raises ContractError unless every contract method of `component` (with the groups in `optional`) exists
    with the contract's names."""
    methods = [m for m in components(model_type, optional=optional) if m.component == component]
    if not methods:
        raise ContractError(f"model type {model_type} has no component '{component}'")
    for m in methods:
        got = schema_names(module, m.method)
        if got != m.input_names:
            raise ContractError(f"{component}.{m.method}({', '.join(got)}) does not match the contract's "
                                f"{m.method}({', '.join(m.input_names)})")


def manifest_entry(model_type: str, component: str, weight_dtype: str, file: str | None = None,
                   optional=()) -> dict:
    """The manifest's `components[component]` entry (file, subfolder, methods with resolved dtypes), with the
    methods of the optional groups in `optional`."""
    if weight_dtype not in DTYPES:
        raise ContractError(f"unknown dtype '{weight_dtype}' (expected one of {', '.join(DTYPES)})")
    methods = [m for m in components(model_type, optional=optional) if m.component == component]
    if not methods:
        raise ContractError(f"model type {model_type} has no component '{component}'")
    return {
        "file": file or f"{component}.pt",
        "subfolder": methods[0].subfolder,
        "methods": {m.method: {"inputs": [t.resolved(weight_dtype) for t in m.inputs],
                               "outputs": [t.resolved(weight_dtype) for t in m.outputs]} for m in methods},
    }
