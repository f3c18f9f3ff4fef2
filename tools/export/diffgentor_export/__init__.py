"""diffgentor's exporter: diffusers/transformers checkpoints -> diffgentor model bundles (docs/exporting.md).

The pure-Python parts (contract, manifest, tokenizer conversion, snapshot copying) import neither diffusers nor
transformers; the model wrappers need torch >= 2.5, diffusers and transformers. All of it is tested in CI in
the pinned environment (tools/requirements.txt), against the real upstream classes.
"""

__version__ = "0.1.0"
