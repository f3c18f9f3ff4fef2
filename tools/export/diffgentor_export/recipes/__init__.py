"""What to export for each model type: one `Recipe` per type (base.py), declared in its family's module next to
the case builders. A recipe's jobs give one Job per component (its wrapper, the trace case, the check cases
with their upstream references); its constants, runtime files and options are the rest of what is
model-specific. Needs torch >= 2.5, diffusers, transformers.

Each check case calls the upstream module its own way (`text_encoder(..., pixel_values, image_grid_thw,
output_hidden_states=True)`, `transformer(..., img_shapes=...)`, `vae.encode(x).latent_dist.mode()`), with
inputs made by inputs.py (the Python copy of the runtime's builders), so a wrapper or builder that departs
from upstream fails the export. Case 0 is the trace case; the others differ in image size, aspect, text
length, references and padding, so a trace that froze a shape fails too.

Adding a type: its row in src/models/model_table.json, its contract in src/core/bundle_contract.json, then a
`register(Recipe(...))` in a family module of this package: every module here is imported below, so a new one
needs no list (tests/test_recipes.py checks the three agree).
"""
from __future__ import annotations

import importlib
import pkgutil

from .base import RECIPES, Case, Ctx, Job, Recipe, register

# Importing a family's module registers its recipes; base and common hold no recipe.
FAMILIES = tuple(importlib.import_module(f"{__name__}.{m.name}") for m in pkgutil.iter_modules(__path__)
                 if m.name not in ("base", "common"))

__all__ = ["RECIPES", "Case", "Ctx", "Job", "Recipe", "recipe", "register"]


def recipe(model_type: str) -> Recipe:
    """The recipe of `model_type`; ValueError when the exporter has none."""
    found = RECIPES.get(model_type)
    if found is None:
        raise ValueError(f"model type '{model_type}' cannot be exported yet (implemented: "
                         f"{', '.join(RECIPES)})")
    return found
