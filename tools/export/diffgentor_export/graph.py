"""Tracing, graph clean-up and checks (bundle contract §1 R6 and §8).

- `trace` turns every TracerWarning into an error: a value that became a Python number during the trace (an
  `.item()`, `.tolist()`, `int(tensor)`, `torch.tensor(list)`) would freeze a shape or a constant.
- `make_device_neutral` replaces each `Device` constant of every graph with `prim::device(<first tensor
  input>)`, so a bundle traced on cuda:0 runs on cuda:N or the CPU, then asserts none remain.
- `required_ops` lists the operators of the saved graphs, recorded in the manifest for the runtime's report.
- `compare` is the numeric check of a TorchScript output against the eager upstream module.
"""
from __future__ import annotations

import math
import warnings

import torch


class ExportError(RuntimeError):
    pass


# TracerWarnings that freeze a value which is the same for every input the wrappers give: (upstream file as a
# path suffix, a piece of the warning's source line, why the frozen value cannot change).
BENIGN_WARNINGS = (
    # sdpa_attention_forward: `q_length > 1 and attention_mask is None` turns a traced shape into a bool; the
    # wrappers always pass an explicit mask, so is_causal is False for every length.
    ("transformers/integrations/sdpa_attention.py", "is_causal",
     "an explicit mask (is_causal always False), or GLM's ar_lm, whose prefill (n > 1, causal) and decode (one "
     "query) are separate graphs"),
    # use_gqa_in_sdpa: whether SDPA repeats the KV heads itself, from the mask's absence (the same for every call of
    # a graph) and the key/value head dims (weight shapes).
    ("transformers/integrations/sdpa_attention.py", "key.shape[-1] == value.shape[-1]", "head dims: weight shapes"),
    ("transformers/integrations/sdpa_attention.py", "use_gqa_in_sdpa", "no mask in any call, head dims fixed"),
    # prepare_padding_mask pads a 2-D mask up to the key length; GLM's glyph encoder builds its mask over exactly
    # its keys, so the padding is always 0.
    ("transformers/masking_utils.py", "padding_length", "a mask over exactly the keys: nothing to pad"),
    # GlmImageVisionEmbeddings takes the side of its learned position table from the table's own row count.
    ("transformers/models/glm_image/modeling_glm_image.py", "orig_size", "the position table's side: a weight shape"),
    # The Qwen-Image VAE's causal frame cache: the wrappers always pass one frame (T = 1), so the frame counts
    # compared here are the same for every image.
    ("diffusers/models/autoencoders/autoencoder_kl_qwenimage.py", "shape[2]", "one frame (T = 1) always"),
)


def _is_guard(filename: str, lineno: int) -> bool:
    """A branch whose outcome cannot change the values: an input check that only raises (`assert ...`, or an
    `if ...:` whose body is a `raise`: group_norm's "more than 1 value per channel", CLIP's length limit,
    diffusers' channel asserts), which a valid input never takes, or an `if ...:` whose body only makes a
    tensor contiguous (diffusers' Upsample2D size workarounds)."""
    import linecache
    line = linecache.getline(filename, lineno).strip()
    if line.startswith("assert "):
        return True
    following = linecache.getline(filename, lineno + 1).strip()
    return line.startswith("if ") and line.endswith(":") and \
        (following.startswith("raise ") or following.endswith(".contiguous()"))


def _benign(w) -> bool:
    import linecache
    name = str(w.filename).replace("\\", "/")
    line = linecache.getline(str(w.filename), w.lineno)
    return _is_guard(str(w.filename), w.lineno) or \
        any(name.endswith(path) and piece in line for path, piece, _ in BENIGN_WARNINGS)


def trace(module, inputs: dict, methods=("forward",), allow_warnings: bool = False, log=print):
    """Traces `module` (an nn.Module whose methods take the contract's arguments) with TracerWarnings as
    errors (`allow_warnings`: printed instead; the checks on other shapes still guard the result).
    `inputs` maps method name -> tuple of example tensors."""
    module = module.eval()
    # Raising from inside the tracer would surface as a SystemError; record the warnings and fail after.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        with torch.no_grad():
            if list(methods) == ["forward"]:
                traced = torch.jit.trace(module, inputs["forward"], check_trace=False)
            else:
                traced = torch.jit.trace_module(module, {m: inputs[m] for m in methods}, check_trace=False)
    frozen = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning) and not _benign(w)]
    if frozen and allow_warnings:
        for w in frozen:
            log(f"  warning: {type(module).__name__} ({w.filename}:{w.lineno}): {w.message}")
    elif frozen:
        raise ExportError(f"{type(module).__name__}: the trace would freeze a value ({frozen[0].filename}:"
                          f"{frozen[0].lineno}): {frozen[0].message}")
    return traced


def _graphs(module):
    """(qualified name, graph) of every method of `module` and its submodules."""
    for prefix, sub in module.named_modules():
        c = sub._c
        for name in c._method_names():
            yield f"{prefix or '<top>'}.{name}", c._get_method(name).graph


def _blocks(block):
    yield block
    for node in block.nodes():
        for b in node.blocks():
            yield from _blocks(b)


def _device_constants(graph):
    return [n for b in _blocks(graph) for n in b.nodes()
            if n.kind() == "prim::Constant" and n.output().type().kind() == "DeviceObjType"]


def make_device_neutral(module) -> int:
    """Rewrites device constants in place (R6); returns how many were replaced."""
    replaced = 0
    for where, graph in _graphs(module):
        constants = _device_constants(graph)
        if not constants:
            continue
        tensor_inputs = [v for v in list(graph.inputs())[1:] if v.type().kind() == "TensorType"]
        if not tensor_inputs:
            raise ExportError(f"{where}: a device constant in a graph without tensor inputs")
        anchor = next(graph.nodes(), None)
        for node in constants:
            dev = graph.create("prim::device", [tensor_inputs[0]])
            dev.output().setType(node.output().type())
            if anchor is None:
                graph.appendNode(dev)
            else:
                dev.insertBefore(anchor)
            node.output().replaceAllUsesWith(dev.output())
            node.destroy()
            replaced += 1
    left = [where for where, g in _graphs(module) if _device_constants(g)]
    if left:
        raise ExportError(f"device constants remain in {', '.join(left)}")
    return replaced


def required_ops(module) -> list:
    """Sorted `aten::` operator names used by any graph of the module: the registered operators a runtime
    may lack (prim:: nodes are interpreter instructions, always present)."""
    return sorted({n.kind() for _, graph in _graphs(module) for b in _blocks(graph) for n in b.nodes()
                   if n.kind().startswith("aten::")})


def compare(got, want) -> dict:
    """max |a-b|, mean |a-b| and max |a-b| / max |b| over float32 copies (tensor or tuple of tensors)."""
    gots = got if isinstance(got, (tuple, list)) else (got,)
    wants = want if isinstance(want, (tuple, list)) else (want,)
    if len(gots) != len(wants):
        raise ExportError(f"{len(gots)} outputs against {len(wants)}")
    worst = {"max_abs_err": 0.0, "mean_abs_err": 0.0, "rel_err": 0.0}
    for a, b in zip(gots, wants, strict=True):
        if tuple(a.shape) != tuple(b.shape):
            raise ExportError(f"shape {tuple(a.shape)} against {tuple(b.shape)}")
        if not a.is_floating_point():  # ids: any difference is a failure (`int_mismatch`)
            diff = (a != b).float()
            worst["max_abs_err"] = max(worst["max_abs_err"], float(diff.max()) if diff.numel() else 0.0)
            if diff.numel() and float(diff.max()) > 0:
                worst["int_mismatch"] = True
            continue
        d = (a.float() - b.float()).abs()
        scale = float(b.float().abs().max()) if b.numel() else 0.0
        mx = float(d.max()) if d.numel() else 0.0
        worst["max_abs_err"] = max(worst["max_abs_err"], mx)
        worst["mean_abs_err"] = max(worst["mean_abs_err"], float(d.mean()) if d.numel() else 0.0)
        worst["rel_err"] = max(worst["rel_err"], mx / scale if scale > 0 else (0.0 if mx == 0 else math.inf))
    return worst


def tolerance(dtype: torch.dtype) -> float:
    """Relative error allowed between a traced graph and its eager module (contract §8)."""
    return 1e-5 if dtype == torch.float32 else 1e-2
