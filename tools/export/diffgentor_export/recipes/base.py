"""The recipe record and its registry: everything model-specific an export needs, one `Recipe` per model type.

A family module (qwen.py, longcat.py, flux2.py, kontext.py) declares its types' recipes next to their case
builders with `register(Recipe(...))`; the generic code (cli.py, snapshot.py, manifest.py) only looks a type up
in `RECIPES`. Which types exist, and which of them are implemented, is src/models/model_table.json's business
(model_table.py); tests/test_recipes.py checks that the two agree.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Case:
    name: str
    args: tuple                       # the wrapper's arguments (contract order)
    reference: Callable[[], object]   # upstream called its own way; run before any pruning
    method: str = "forward"           # the wrapper method this case calls (GLM's ar_lm and transformer have two)


@dataclass
class Ctx:
    dtype: torch.dtype
    device: torch.device
    math: bool
    options: dict
    gen: torch.Generator | None = None

    def randn(self, *shape, dtype=None):
        return torch.randn(*shape, generator=self.gen, dtype=torch.float32).to(self.device, dtype or self.dtype)

    def randint(self, high, *shape):
        return torch.randint(0, high, shape, generator=self.gen).to(self.device)


@dataclass
class Job:
    component: str
    subfolder: str                    # the snapshot subfolder it loads from
    build: Callable[[object], torch.nn.Module]        # upstream module -> wrapper
    cases: Callable[[object, Ctx], list]               # upstream module -> cases
    unused: list = field(default_factory=list)         # contract inputs this checkpoint's graph ignores


def no_constants(ctx: Ctx, subfolder: str, module) -> dict:
    return {}


def no_options(args: argparse.Namespace) -> dict:
    return {}


@dataclass(frozen=True)
class Recipe:
    """What exporting one model type takes.

    jobs(ctx, configs): the component jobs in contract order; `configs` maps snapshot subfolder -> its
        config.json (already read, {} when absent).
    constants(ctx, subfolder, module): the manifest constants that `subfolder`'s loaded upstream module
        contributes (docs/bundle-format.md "Where constants live").
    runtime_files: files the runtime opens beyond the ones every type needs (model_index.json, the scheduler
        config, each exported subfolder's config.json, tokenizer/): an export without them is refused.
    options(args): type-specific export options from the command line, merged into `Ctx.options`.
    tokenizer: whether the runtime reads tokenizer/tokenizer.json (GLM-Image's byte-level glyph tokenizer: no).
    """
    model_type: str
    jobs: Callable[[Ctx, dict], list]
    constants: Callable[[Ctx, str, object], dict] = no_constants
    runtime_files: tuple = ()
    options: Callable[[argparse.Namespace], dict] = no_options
    tokenizer: bool = True


RECIPES: dict[str, Recipe] = {}


def register(recipe: Recipe) -> Recipe:
    """Adds `recipe` to RECIPES; a second recipe for the same type is a programming error."""
    if recipe.model_type in RECIPES:
        raise ValueError(f"model type {recipe.model_type} has two exporter recipes")
    RECIPES[recipe.model_type] = recipe
    return recipe


def first_tensor(out):
    if isinstance(out, torch.Tensor):
        return out
    for key in ("pooler_output", "last_hidden_state", "sample"):
        value = getattr(out, key, None)
        if isinstance(value, torch.Tensor):
            return value
    return out[0]
