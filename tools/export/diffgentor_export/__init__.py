"""diffgentor's exporter: diffusers/transformers checkpoints -> diffgentor model bundles (docs/exporting.md).

The pure-Python parts (contract, manifest, tokenizer conversion, snapshot copying) import neither diffusers nor
transformers, so they are unit-tested in CI with Debian's python3-torch; the model wrappers need torch >= 2.5,
diffusers and transformers.
"""

__version__ = "0.1.0"
