"""export_bundle: a diffusers checkpoint (hub id or local snapshot) -> a diffgentor bundle (docs/exporting.md).

  export_bundle --model Qwen/Qwen-Image-Edit-2511 --out bundles/Qwen-Image-Edit-2511 [--dtype bfloat16]
                [--device cuda] [--model_type qwen] [--attention sdpa|math] [--revision R]
                [--text_encoder_out_layers 10,20,30] [--with_upsampler] [--overwrite]

The bundle is written into <out>.partial and renamed to <out> only when every component is exported and
checked, so a failed or interrupted export never leaves something that looks like a bundle.
"""
from __future__ import annotations

import argparse
import gc
import importlib
import json
import shutil
import sys
import time
from pathlib import Path

from . import manifest, snapshot
from .contract import check_module, optional_groups


def parse_args(argv):
    p = argparse.ArgumentParser(prog="export_bundle", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="hub id (downloaded with huggingface_hub) or a local snapshot dir")
    p.add_argument("--out", required=True, help="bundle directory to create")
    p.add_argument("--model_type", help="force the type (default: from model_index.json's pipeline class)")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--device", default=None, choices=["cuda", "cpu"], help="trace device (default: cuda if present)")
    p.add_argument("--attention", default="sdpa", choices=["sdpa", "math"],
                   help="math: explicit softmax attention everywhere (debugging, parity, runtimes without SDPA)")
    p.add_argument("--revision", default=None, help="hub revision to download")
    p.add_argument("--text_encoder_out_layers", default=None,
                   help="FLUX.2: hidden-state layers to stack (default: the pipeline's own default)")
    p.add_argument("--with_upsampler", action="store_true",
                   help="FLUX.2-dev: also export the prompt upsampler (the text encoder's generative LM and the "
                        "vision tower), needed for --prompt_enhance_type flux2 without an API")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    p.add_argument("--allow_tracer_warnings", action="store_true",
                   help="report TracerWarnings instead of stopping (the checks on other shapes still apply)")
    return p.parse_args(argv)


def require_stack():
    """torch >= 2.5 (diffusers' attention passes enable_gqa to SDPA), diffusers and transformers."""
    try:
        import torch
    except ImportError:
        sys.exit("export_bundle: needs torch >= 2.5, diffusers and transformers (pip install torch diffusers "
                 "transformers accelerate); torch is not installed")
    major, minor = (int(x) for x in torch.__version__.split("+")[0].split(".")[:2])
    if (major, minor) < (2, 5):
        sys.exit(f"export_bundle: torch {torch.__version__} is too old; exporting needs torch >= 2.5 "
                 "(bundle contract §9)")
    versions = {"torch": torch.__version__}
    for name in ("diffusers", "transformers"):
        try:
            versions[name] = importlib.import_module(name).__version__
        except ImportError:
            sys.exit(f"export_bundle: needs {name} (pip install {name})")
    return versions


def resolve_snapshot(model: str, revision: str | None) -> Path:
    path = Path(model)
    if path.is_dir():
        return path
    if path.exists() or model.startswith((".", "/")):
        sys.exit(f"export_bundle: {model} is not a directory")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        sys.exit(f"export_bundle: {model} is not a local directory and huggingface_hub is not installed")
    return Path(snapshot_download(model, revision=revision))


def load_component(snap: Path, sub: str, dtype, device, math: bool):
    """from_pretrained of the class model_index.json names for `sub`, in W, on the trace device."""
    entry = snapshot.model_index(snap).get(sub)
    if not entry or not isinstance(entry, list) or entry[0] is None:
        raise snapshot.SnapshotError(f"{snap}/model_index.json has no component '{sub}'")
    library, cls_name = entry
    if library not in ("transformers", "diffusers"):
        # save_pretrained records a transformers model's submodule name (GLM-Image: "glm_image"); diffusers then
        # finds the class in transformers or diffusers, and so does this.
        library = next((lib for lib in ("transformers", "diffusers")
                        if hasattr(importlib.import_module(lib), cls_name)), library)
    cls = getattr(importlib.import_module(library), cls_name)
    kwargs = {"subfolder": sub}
    # diffusers takes torch_dtype; transformers renamed it dtype in 4.56 (an unknown keyword would be ignored
    # or land in the config, loading float32 without a word).
    dtype_key = "torch_dtype"
    if library == "transformers":
        kwargs["attn_implementation"] = "eager" if math else "sdpa"
        version = tuple(int(x) for x in importlib.import_module("transformers").__version__.split(".")[:2])
        dtype_key = "dtype" if version >= (4, 56) else "torch_dtype"
    model = cls.from_pretrained(snap, **{dtype_key: dtype}, **kwargs)
    floats = [p.dtype for p in model.parameters() if p.is_floating_point()]
    if floats and sum(d == dtype for d in floats) < len(floats) / 2:
        raise snapshot.SnapshotError(f"{sub}: from_pretrained gave {max(set(floats), key=floats.count)} weights, "
                                     f"not {dtype}")
    if library == "diffusers" and math and hasattr(model, "set_attention_backend"):
        model.set_attention_backend("_native_math")
    return model.to(device).eval()


def export_component(job, module, ctx, ts_dir: Path, model_type: str, log) -> dict:
    """Builds, traces, saves, reloads and checks one component; returns its manifest records."""
    import torch

    from . import graph
    with torch.no_grad():
        wrapper = job.build(module).eval()
        cases = job.cases(module, ctx)
        references = [case.reference() for case in cases]  # before the wrapper prunes anything
        if hasattr(wrapper, "prune"):
            wrapper.prune()
        started = time.time()
        methods = list(dict.fromkeys(case.method for case in cases))  # each traced with its first case
        first = {m: next(c for c in cases if c.method == m) for m in methods}
        traced = graph.trace(wrapper, {m: first[m].args for m in methods}, methods=methods,
                             allow_warnings=ctx.options.get("allow_warnings", False), log=log)
        graph.make_device_neutral(traced)
        path = ts_dir / f"{job.component}.pt"
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location=ctx.device)
        check_module(loaded, model_type, job.component, optional=ctx.options.get("optional", ()))
        verified, limit = [], graph.tolerance(ctx.dtype)
        for case, want in zip(cases, references, strict=True):
            result = graph.compare(getattr(loaded, case.method)(*case.args), want)
            result.update({"case": case.name, "reference": "upstream eager",
                           "trace_case": case is first[case.method]})
            if case.method != "forward":
                result["method"] = case.method
            verified.append(result)
            if result.pop("int_mismatch", False):
                raise graph.ExportError(f"{job.component}: case {case.name}: TorchScript ids differ from upstream's")
            if result["rel_err"] > limit:
                raise graph.ExportError(f"{job.component}: case {case.name}: TorchScript output differs from "
                                        f"upstream by {result['rel_err']:.3g} relative (limit {limit:g})")
        log(f"  {job.component}: traced and checked {len(cases)} cases in {time.time() - started:.1f} s, "
            f"worst relative error {max(v['rel_err'] for v in verified):.2e}, {path.stat().st_size / 2**20:.0f} MiB")
        return {"verified": verified, "required_ops": graph.required_ops(loaded)}


def main(argv=None) -> int:
    """Runs the export; any refusal or failed check stops it with one line naming the cause (no traceback),
    and the partial bundle is removed."""
    from .graph import ExportError
    try:
        return export(parse_args(sys.argv[1:] if argv is None else argv))
    except (snapshot.SnapshotError, ExportError, ValueError) as e:
        sys.exit(f"export_bundle: {e}")


def export(args) -> int:
    versions = require_stack()
    import torch

    def log(msg):
        print(msg, flush=True)

    snap = resolve_snapshot(args.model, args.revision)
    kind = snapshot.model_type(snap, args.model_type)
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("export_bundle: --device cuda but torch sees no CUDA device")
    dtype = getattr(torch, args.dtype)
    if dtype == torch.float16 and device.type == "cpu":
        sys.exit("export_bundle: float16 cannot be checked on the CPU; use --device cuda or another dtype")
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.overwrite:
        sys.exit(f"export_bundle: {out} exists and is not empty (pass --overwrite to replace it)")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "torchscript").mkdir(parents=True)
    try:
        return write_bundle(args, snap, kind, device, dtype, versions, partial, out, log)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def write_bundle(args, snap, kind, device, dtype, versions, partial: Path, out: Path, log) -> int:
    import torch

    from . import recipes

    log(f"export_bundle: {args.model} ({kind}) -> {out}, {args.dtype} on {device}, attention {args.attention}")
    snapshot.copy_non_weights(snap, partial)
    for folder in snapshot.split_processor_configs(partial):
        log(f"  processor {folder}: preprocessor_config.json written from processor_config.json")
    for folder, what in snapshot.ensure_tokenizers(partial).items():
        log(f"  tokenizer {folder}: {what}")
    configs = {}
    for sub in ("transformer", "vae", "text_encoder"):
        cfg = partial / sub / "config.json"
        configs[sub] = json.loads(cfg.read_text()) if cfg.is_file() else {}
    recipe = recipes.recipe(kind)
    if getattr(args, "with_upsampler", False) and "upsampler" not in optional_groups(kind):
        raise ValueError(f"--with_upsampler: model type {kind} has no prompt upsampler (FLUX.2-dev, type flux2, has)")
    options = {"allow_warnings": args.allow_tracer_warnings, **recipe.options(args)}
    ctx = recipes.Ctx(dtype, device, args.attention == "math", options, torch.Generator().manual_seed(0))
    jobs = recipe.jobs(ctx, configs)
    records, unused, consts = {}, {}, {}
    for sub in dict.fromkeys(job.subfolder for job in jobs):  # one upstream module in memory at a time
        module = load_component(snap, sub, dtype, device, ctx.math)
        consts.update(recipe.constants(ctx, sub, module))
        for job in (j for j in jobs if j.subfolder == sub):
            records[job.component] = export_component(job, module, ctx, partial / "torchscript", kind, log)
            if job.unused:
                unused[job.component] = job.unused
        del module
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    missing = snapshot.check_runtime_files(partial, sorted({j.subfolder for j in jobs}), recipe.runtime_files,
                                           tokenizer=recipe.tokenizer)
    if missing:
        sys.exit(f"export_bundle: the snapshot lacks files the runtime reads: {', '.join(missing)}")
    m = manifest.build(kind, args.dtype, source={"model_id": args.model, "revision": snapshot.revision_of(snap)},
                       versions=versions, trace_device=device.type, attention=args.attention, constants=consts,
                       records=records, unused_inputs=unused, optional=options.get("optional", ()))
    manifest.write(m, partial)
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    log(f"export_bundle: wrote {out} (run it with: diffgentor edit --backend diffusers --model_name {out} "
        f"--torch_dtype {args.dtype} --input <manifest>)")
    return 0
