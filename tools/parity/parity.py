#!/usr/bin/env python3
"""Numeric parity of diffgentor's pipelines with diffusers' own (docs/parity.md).

For each model type: build a small diffusers pipeline with seeded random weights (tiny_pipelines.py, no
downloads), save it as a snapshot, export it with tools/export (float32), run diffusers' pipeline and
diffgentor_parity (the C++ engine) on the same images, prompt and CPU-generator seed, and compare the stages
both sides expose: text embeddings, packed reference latents, noise, sigmas, first-step prediction, final
latents and the output image. Prints a table (max |diff|, mean |diff|, PSNR) and exits 1 past the tolerances.

  parity.py --runner build/diffgentor_parity [--types qwen,flux2] [--device cpu] [--steps 2] [--work DIR]
  parity.py --self_check --runner build/diffgentor_parity   # the harness's own plumbing, no diffusers needed

Runs in the pinned environment (tools/requirements.txt: torch, diffusers, transformers); CI runs it in float32 on
the CPU.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tiny_pipelines
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))  # diffgentor_export
from diffgentor_export import model_table  # pure Python: the runtime's model table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# Relative tolerances (max |ours - theirs| / max |theirs|) per stage, float32 on one machine. Embeddings and
# latents go through the same kernels in the same order except where the contract re-implements attention
# (Qwen2.5-VL vision masks, LM masks), which moves summation order only; the prediction and the final latents
# accumulate that over the steps. `noise` and `sigmas` are computed, not learned: they must agree exactly.
TOLERANCE = {"prompt_embeds": 1e-4, "pooled_prompt_embeds": 1e-4, "negative_prompt_embeds": 1e-4,
             "image_latents": 1e-4, "noise": 0.0, "sigmas": 0.0, "timesteps": 0.0, "noise_pred_0": 1e-3,
             "final_latents": 1e-2,
             # GLM-Image's AR stages: ids and positions are computed, not learned; logits as the text embeddings.
             "ref_image_tokens": 0.0, "ar_input_ids": 0.0, "ar_position_ids": 0.0, "prior_token_ids": 0.0,
             "ar_logits_0": 1e-4, "ar_logits": 1e-4,
             # FLUX.2-dev's prompt upsampler: the chat-template ids, the sampler's draws on transformers' own logits
             # and the decoded text are computed, not learned; the vision features and the teacher-forced logits as
             # the text embeddings.
             "upsample_input_ids": 0.0, "upsample_image_embeds": 1e-4, "upsample_logits": 1e-4,
             "upsample_tokens": 0.0, "upsample_text": 0.0}
IMAGE_MAX_LEVELS, IMAGE_MIN_PSNR = 2, 40.0

# One row per implemented type of src/models/model_table.json (the run refuses to start when one is missing):
# images (w, h), the call's guidance settings, and how the diffusers call and its stages differ by pipeline:
#   image_list: the pipeline takes a list of images (else the first one);
#   out_layers: FLUX.2's text_encoder_out_layers, for the export and the call (the tiny text encoder has 4
#     layers; both stack the same three);
#   output_size: the call is given the runtime's output size (docs/models/flux1_kontext.md);
#   pooled: encode_prompt's second result is the pooled embedding;
#   image_latents_apart: the packed reference latents come from prepare_image_latents, not prepare_latents;
#   upsampler: exported --with_upsampler, and Flux2Pipeline.upsample_prompt compared too (run_upsampler), ours run
#     offloaded with parked weights emptied (--cpu_offload_check), as the LoRA runs are: the upsampler's LM and the
#     LoRA merge touch modules outside call(), and must hold them on the device (docs/performance.md);
#   lora: the run is repeated with a random LoRA, fused into diffusers' pipeline by load_lora_weights + fuse_lora and
#     given to ours as --lora FILE:SCALE (run_lora; naming "comfy": diffusion_model. + lora_down/lora_up/alpha written
#     by hand, as few-step LoRAs ship; "diffusers": written by the pipeline's own save_lora_weights from a PEFT
#     adapter, lora_alpha in its metadata);
#   tiling: the run is repeated with the VAE tiled, diffusers' vae.enable_tiling() against ours --vae_tiling
#     (run_tiling): one case per VAE class (AutoencoderKLQwenImage, AutoencoderKLFlux2, AutoencoderKL).
CASES = {
    "qwen": dict(images=[(640, 480), (512, 512)], guidance=1.0, true_cfg=4.0, negative=" ", image_list=True,
                 lora=dict(naming="comfy", rank=4, alpha=2.0, scale=0.8), tiling=True),
    "qwen_singleimg": dict(images=[(640, 480)], guidance=1.0, true_cfg=4.0, negative=" "),
    "longcat": dict(images=[(640, 480)], guidance=4.5, negative=""),
    # FLUX.2-dev is exported with its prompt upsampler, compared by run_upsampler after the pipeline's stages.
    "flux2": dict(images=[(640, 480), (512, 512)], guidance=4.0, image_list=True, out_layers=(1, 2, 3),
                  image_latents_apart=True, upsampler=True),
    "flux2_klein": dict(images=[(640, 480)], guidance=4.0, image_list=True, out_layers=(1, 2, 3),
                        image_latents_apart=True, lora=dict(naming="diffusers", rank=4, alpha=8.0, scale=0.5),
                        tiling=True),
    "flux1_kontext": dict(images=[(640, 480)], guidance=2.5, output_size=True, pooled=True,
                          lora=dict(naming="diffusers", rank=2, alpha=2.0, scale=1.0), tiling=True),
    # GLM-Image: sizes the reference policy keeps (multiples of 32 within the tiny processor's 64..256); diffusers
    # 0.40's timesteps (docs/models/glm_image.md, "Timesteps"); the AR stages are compared teacher-forced and the
    # DiT gets the same injected prior on both sides (run_glm).
    "glm_image": dict(images=[(160, 96), (128, 128)], guidance=1.5, glm=True, image_list=True,
                      model_options=["timesteps=shifted"]),
}
PROMPT = 'Make the sky purple and write "hello" on the wall'


def pattern(w: int, h: int, seed: int) -> np.ndarray:
    """A deterministic RGB test image with edges, gradients and texture."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1)).astype(np.uint8)
    g = (((x // 16 + y // 16) % 2) * 200 + seed * 20).astype(np.uint8)
    b = ((np.sin(x / 7.0 + seed) * np.cos(y / 5.0) + 1) * 127).astype(np.uint8)
    return np.stack([r, g, b], -1)


# ---- comparison --------------------------------------------------------------------------------------------------

def metrics(ours: np.ndarray, theirs: np.ndarray, peak: float | None = None) -> dict:
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    d = np.abs(ours - theirs)
    peak = float(np.abs(theirs).max()) if peak is None else peak
    rmse = float(np.sqrt(np.mean(d ** 2))) if d.size else 0.0
    return {"max_abs": float(d.max()) if d.size else 0.0, "mean_abs": float(d.mean()) if d.size else 0.0,
            "psnr": math.inf if rmse == 0 else 20 * math.log10(max(peak, 1e-30) / rmse), "peak": peak}


def compare(ours: dict, theirs: dict) -> list:
    """Rows (stage, shape, metrics, verdict) over the stages either side has."""
    rows = []
    for stage in sorted(set(ours) | set(theirs), key=lambda s: (s == "image", s)):
        if stage not in ours or stage not in theirs:
            rows.append({"stage": stage, "verdict": f"FAIL (only {'ours' if stage in ours else 'diffusers'})"})
            continue
        a, b = ours[stage], theirs[stage]
        if a.shape != b.shape:
            rows.append({"stage": stage, "verdict": f"FAIL (shape {a.shape} vs {b.shape})"})
            continue
        if stage == "image":
            m = metrics(a, b, 255.0)
            ok = m["max_abs"] <= IMAGE_MAX_LEVELS or m["psnr"] >= IMAGE_MIN_PSNR
        else:
            m = metrics(a, b)
            ok = m["max_abs"] <= TOLERANCE.get(stage, 1e-4) * max(m["peak"], 1e-30)
        rows.append({"stage": stage, "shape": list(a.shape), **m, "verdict": "ok" if ok else "FAIL"})
    return rows


def table(kind: str, rows: list) -> str:
    lines = [f"{kind}:", f"  {'stage':24} {'shape':>18} {'max |diff|':>11} {'mean |diff|':>11} {'PSNR dB':>8}  verdict"]
    for r in rows:
        if "max_abs" not in r:
            lines.append(f"  {r['stage']:24} {'':>18} {'':>11} {'':>11} {'':>8}  {r['verdict']}")
            continue
        psnr = "inf" if math.isinf(r["psnr"]) else f"{r['psnr']:.1f}"
        lines.append(f"  {r['stage']:24} {r['shape']!s:>18} {r['max_abs']:11.3e} {r['mean_abs']:11.3e} {psnr:>8}  "
                     f"{r['verdict']}")
    return "\n".join(lines)


STAGE_COLUMNS = ("prompt_embeds", "negative_prompt_embeds", "pooled_prompt_embeds", "image_latents", "noise",
                 "sigmas", "timesteps", "noise_pred_0", "final_latents", "image", "ref_image_tokens", "ar_input_ids",
                 "ar_position_ids", "ar_logits_0", "ar_logits", "prior_token_ids", "upsample_input_ids",
                 "upsample_image_embeds", "upsample_logits", "upsample_tokens", "upsample_text")


def markdown_table(report: dict, args) -> str:
    """The run as a markdown block: versions, then one row per type with `max |diff| / PSNR dB` per stage."""
    import platform

    import diffusers
    import torch
    import transformers
    head = (f"Generated by `tools/parity/parity.py --dtype {args.dtype} --device {args.device}` on "
            f"{time.strftime('%Y-%m-%d')} ({platform.machine()}, {torch.get_num_threads()} threads): torch "
            f"{torch.__version__}, diffusers {diffusers.__version__}, transformers {transformers.__version__}; "
            f"{args.steps} steps, seed {args.seed}. Each cell: max |ours − diffusers| / PSNR in dB; `·` = the type "
            "has no such stage.")
    lines = [head, "", "| type | " + " | ".join(f"`{c}`" for c in STAGE_COLUMNS) + " | verdict |",
             "|---" * (len(STAGE_COLUMNS) + 2) + "|"]
    for kind, rows in report.items():
        by_stage = {r["stage"]: r for r in rows}
        cells = []
        for c in STAGE_COLUMNS:
            r = by_stage.get(c)
            if r is None or "max_abs" not in r:
                cells.append("·" if r is None else "—")
                continue
            psnr = "∞" if math.isinf(r["psnr"]) else f"{r['psnr']:.0f}"
            cells.append(f"{r['max_abs']:.1e} / {psnr}" if r["max_abs"] else "0 / ∞")
        bad = [r for r in rows if r["verdict"] != "ok"]
        verdict = "ok" if not bad else "; ".join(f"{r['stage']}: {r['verdict']}" for r in bad)
        if args.dtype != "float32" and all("max_abs" in r for r in rows):
            verdict = "figures only"
        lines.append(f"| `{kind}` | " + " | ".join(cells) + f" | {verdict} |")
    return "\n".join(lines)


def replace_block(path: Path, name: str, body: str):
    """Replaces what stands between `<!-- NAME -->` and the next `<!-- /FIRST WORD OF NAME -->` in `path`."""
    begin, end = f"<!-- {name} -->", f"<!-- /{name.split()[0]} -->"
    text = path.read_text(encoding="utf-8")
    a = text.find(begin)
    b = text.find(end, a)
    if a < 0 or b < 0:
        raise SystemExit(f"{path} has no '{begin}' ... '{end}' block")
    path.write_text(text[:a + len(begin)] + "\n" + body + "\n" + text[b:], encoding="utf-8")


def write_markdown(path: Path, report: dict, args):
    replace_block(path, f"parity {args.dtype} {args.device}", markdown_table(report, args))


# ---- our side ----------------------------------------------------------------------------------------------------

def run_ours(runner: Path, bundle: Path, kind: str, out: Path, images: list, case: dict, steps: int, seed: int,
             device: str, make_tiny: bool = False, dtype: str = "float32", inject: dict | None = None,
             extra: tuple = ()) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cmd = [str(runner), "--bundle", str(bundle), "--model_type", kind, "--out", str(out), "--device", device,
           "--dtype", dtype, "--prompt", PROMPT, "--seed", str(seed), "--steps", str(steps),
           "--guidance", str(case["guidance"])]
    if "true_cfg" in case:
        cmd += ["--true_cfg", str(case["true_cfg"])]
    if "negative" in case:
        cmd += ["--negative", case["negative"]]
    if make_tiny:
        cmd += ["--make_tiny"]
    for option in case.get("model_options", ()):
        cmd += ["--model_option", option]
    for stage, values in (inject or {}).items():
        floats = np.asarray(values).dtype.kind == "f"
        path = out / f"inject_{stage}.{'f32' if floats else 'i64'}"
        path.write_bytes(np.ascontiguousarray(values, np.float32 if floats else np.int64).tobytes())
        cmd += ["--inject", stage, str(path)]
    cmd += list(extra)
    for k, img in enumerate(images):
        path = out / f"input{k}.rgb"
        path.write_bytes(np.ascontiguousarray(img, np.uint8).tobytes())
        cmd += ["--image", str(img.shape[1]), str(img.shape[0]), str(path)]
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{runner} failed ({run.returncode}): {run.stderr.strip()}")
    index = json.loads((out / "stages.json").read_text())
    stages = {}
    for stage, entry in index.items():
        dtype = np.uint8 if entry.get("dtype") == "uint8" else np.float32
        stages[stage] = np.fromfile(out / entry["file"], dtype=dtype).reshape(entry["shape"])
    return stages


# ---- diffusers' side ---------------------------------------------------------------------------------------------

class Capture:
    """Wraps the pipeline's own methods to record the stages as diffusers computes them."""

    def __init__(self, pipe):
        self.encodes, self.prepared, self.image_prepared, self.stages = [], None, None, {}
        self._wrap(pipe, "encode_prompt", lambda r: self.encodes.append(r))
        self._wrap(pipe, "prepare_latents", lambda r: setattr(self, "prepared", r))
        if hasattr(pipe, "prepare_image_latents"):
            self._wrap(pipe, "prepare_image_latents", lambda r: setattr(self, "image_prepared", r))
        sched = pipe.scheduler
        set_timesteps, step = sched.set_timesteps, sched.step

        @functools.wraps(set_timesteps)  # retrieve_timesteps inspects the signature for `sigmas`
        def set_ts(*a, **k):
            result = set_timesteps(*a, **k)
            self.stages["sigmas"], self.stages["timesteps"] = sched.sigmas.clone(), sched.timesteps.clone()
            return result

        @functools.wraps(step)
        def do_step(model_output, timestep, sample, *a, **k):
            self.stages.setdefault("noise_pred_0", model_output.clone())
            result = step(model_output, timestep, sample, *a, **k)
            self.stages["final_latents"] = (result[0] if isinstance(result, tuple) else result.prev_sample).clone()
            return result
        sched.set_timesteps, sched.step = set_ts, do_step

    @staticmethod
    def _wrap(obj, name, record):
        original = getattr(obj, name)

        @functools.wraps(original)
        def wrapped(*a, **k):
            result = original(*a, **k)
            record(result)
            return result
        setattr(obj, name, wrapped)

    def result(self, case: dict) -> dict:
        def first(r):
            return r[0] if isinstance(r, (tuple, list)) else r
        s = dict(self.stages)
        s["prompt_embeds"] = first(self.encodes[0])
        if case.get("pooled"):
            s["pooled_prompt_embeds"] = self.encodes[0][1]
        if len(self.encodes) > 1:
            s["negative_prompt_embeds"] = first(self.encodes[1])
        s["noise"] = self.prepared[0]
        s["image_latents"] = first(self.image_prepared) if case.get("image_latents_apart") else self.prepared[1]
        return {k: v.detach().float().cpu().numpy() for k, v in s.items()}


def restore_mrope(pipe) -> bool:
    """diffusers 0.40's Qwen-Image-Edit and LongCat pipelines call their Qwen2.5-VL text encoder without the
    processor's `mm_token_type_ids`; transformers >= 5 then gives every token a 1-D position instead of the 3-D
    image positions the model was trained with (transformers 4 derived them from the ids). This hands the
    encoder the types the processor makes (1 at image tokens), so the reference is the model as designed
    (docs/parity.md, "Upstream defects the reference works around"). Returns whether it applied."""
    from diffgentor_export.recipes.qwen import mm_token_types
    te = getattr(pipe, "text_encoder", None)
    model = getattr(te, "model", None)
    if model is None or not hasattr(model, "get_rope_index"):
        return False
    forward, image_token = te.forward, int(te.config.image_token_id)

    @functools.wraps(forward)
    def with_types(*a, **k):
        if k.get("mm_token_type_ids") is None and k.get("image_grid_thw") is not None:
            k.update(mm_token_types(model, k["input_ids"], image_token))
        return forward(*a, **k)
    te.forward = with_types
    return True


def run_diffusers(pipe, images: list, case: dict, steps: int, seed: int, size, upstream_as_is: bool = False) -> dict:
    import torch
    from PIL import Image
    pil = [Image.fromarray(img) for img in images]
    kwargs = dict(prompt=PROMPT, num_inference_steps=steps, generator=torch.Generator("cpu").manual_seed(seed),
                  output_type="pil", guidance_scale=case["guidance"])
    kwargs["image"] = pil if case.get("image_list") else pil[0]
    if "true_cfg" in case:
        kwargs["true_cfg_scale"] = case["true_cfg"]
    if "negative" in case:
        kwargs["negative_prompt"] = case["negative"]
    if "out_layers" in case:
        kwargs["text_encoder_out_layers"] = case["out_layers"]
    if case.get("output_size"):
        kwargs["width"], kwargs["height"] = size
    if not upstream_as_is:
        restore_mrope(pipe)
    capture = Capture(pipe)
    with torch.no_grad():
        out = pipe(**kwargs).images[0]
    stages = capture.result(case)
    stages["image"] = np.asarray(out, dtype=np.uint8)
    return stages


def run_type(kind: str, args, testdata: Path) -> list:
    import torch

    import tiny_pipelines
    from diffgentor_export import cli

    work = Path(args.work) / kind
    case = CASES[kind]
    images = [pattern(w, h, k) for k, (w, h) in enumerate(case["images"])]
    pipe = tiny_pipelines.builder(kind)(testdata)
    snap = tiny_pipelines.save(pipe, work / "snapshot")
    export = ["--model", str(snap), "--out", str(work / "bundle"), "--dtype", args.dtype, "--device", args.device,
              "--attention", args.attention, "--overwrite"]
    if "out_layers" in case:
        export += ["--text_encoder_out_layers", ",".join(str(k) for k in case["out_layers"])]
    if case.get("upsampler"):
        export += ["--with_upsampler"]
    try:
        code = cli.main(export)
    except SystemExit as e:  # the CLI stops with a message; report it as this type's failure
        raise RuntimeError(f"export failed: {e.code}") from None
    if code != 0:
        raise RuntimeError(f"export failed with exit code {code}")
    if case.get("glm"):
        pipe.to(torch.device(args.device))
        return run_glm(pipe, work, images, case, args)
    ours = run_ours(Path(args.runner), work / "bundle", kind, work / "ours", images, case, args.steps, args.seed,
                    args.device, dtype=args.dtype)
    if args.dtype != "float32":
        pipe = reload_in(pipe, snap, getattr(torch, args.dtype))
    pipe.to(torch.device(args.device))
    size = (ours["image"].shape[1], ours["image"].shape[0])
    theirs = run_diffusers(pipe, images, case, args.steps, args.seed, size, upstream_as_is=args.upstream_as_is)
    rows = compare(ours, theirs)
    if case.get("tiling"):
        rows += run_tiling(pipe, kind, work, images, case, args, size, ours, theirs)
    if case.get("lora"):
        rows += run_lora(pipe, kind, work, images, case, args, size, ours)
    if case.get("upsampler"):
        rows += run_upsampler(pipe, work, images, case, args)
    return rows


# ---- VAE tiling ----------------------------------------------------------------------------------------------------

def run_tiling(pipe, kind: str, work: Path, images: list, case: dict, args, size, ours_plain: dict,
               theirs_plain: dict) -> list:
    """The same row with the VAE tiled on both sides: `tiled <stage>` rows, and a row giving how far tiling moved each
    side's image from its untiled one (diffusers' own tiling tolerance, docs/performance.md "VAE tiling")."""
    ours = run_ours(Path(args.runner), work / "bundle", kind, work / "ours_tiled", images, case,
                    args.steps, args.seed, args.device, dtype=args.dtype, extra=("--vae_tiling",))
    pipe.vae.enable_tiling()
    try:
        theirs = run_diffusers(pipe, images, case, args.steps, args.seed, size, upstream_as_is=args.upstream_as_is)
    finally:
        pipe.vae.disable_tiling()
    rows = [{**r, "stage": f"tiled {r['stage']}"} for r in compare(ours, theirs)]
    moved = {side: metrics(tiled["image"], plain["image"], 255.0)
             for side, tiled, plain in (("ours", ours, ours_plain), ("diffusers", theirs, theirs_plain))}
    rows.append({"stage": "tiling moved the image by " + ", ".join(
        f"{side} {m['max_abs']:.0f} levels max, {m['mean_abs']:.2f} mean, PSNR {m['psnr']:.1f} dB"
        for side, m in moved.items()),
        "verdict": "ok" if moved["diffusers"]["max_abs"] > 0 else "FAIL (diffusers did not tile)"})
    return rows


# ---- LoRA ----------------------------------------------------------------------------------------------------------

def lora_targets(transformer) -> list:
    """Every Linear of the transformer: the blocks' attention projections, feed-forwards and modulations, and the
    top-level embedders and output layers (FLUX's top-level `proj_out` shares its name's tail with every single
    block's `proj_out`: the runtime must pick the top-level one, as PEFT does)."""
    import torch
    return [name for name, m in transformer.named_modules() if isinstance(m, torch.nn.Linear)]


def make_lora(pipe, work: Path, spec: dict, seed: int) -> Path:
    """A random LoRA for the pipeline's transformer in the case's naming; returns the .safetensors file."""
    import torch
    from safetensors.torch import save_file
    torch.manual_seed(seed + 1)
    targets, rank = lora_targets(pipe.transformer), spec["rank"]
    folder = work / "lora"
    folder.mkdir(parents=True, exist_ok=True)
    if spec["naming"] == "comfy":
        tensors = {}
        for name in targets:
            lin, key = pipe.transformer.get_submodule(name), f"diffusion_model.{name}"
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, lin.in_features) / lin.in_features ** .5
            tensors[f"{key}.lora_up.weight"] = torch.randn(lin.out_features, rank) / rank ** .5
            tensors[f"{key}.alpha"] = torch.tensor(spec["alpha"])
        save_file(tensors, folder / "lora.safetensors")
        return folder / "lora.safetensors"
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict
    config = LoraConfig(r=rank, lora_alpha=spec["alpha"], target_modules=targets, init_lora_weights=False)
    pipe.transformer.add_adapter(config, adapter_name="dg_random")
    layers = get_peft_model_state_dict(pipe.transformer, adapter_name="dg_random")
    type(pipe).save_lora_weights(folder, transformer_lora_layers=layers,
                                 transformer_lora_adapter_metadata=config.to_dict())
    pipe.transformer.delete_adapters("dg_random")
    return folder / "pytorch_lora_weights.safetensors"


def run_lora(pipe, kind: str, work: Path, images: list, case: dict, args, size, ours_plain: dict) -> list:
    """The same row with the case's LoRA on both sides: `lora <stage>` rows, and a row saying the LoRA changed the
    denoised latents (a LoRA that merges nothing would otherwise compare equal too)."""
    spec = case["lora"]
    path = make_lora(pipe, work, spec, args.seed)
    ours = run_ours(Path(args.runner), work / "bundle", kind, work / "ours_lora", images, case,
                    args.steps, args.seed, args.device, dtype=args.dtype,
                    # offloaded with parked weights emptied: the merge must run on the transformer brought back
                    extra=("--lora", f"{path}:{spec['scale']}", "--cpu_offload_check"))
    pipe.load_lora_weights(str(path.parent), weight_name=path.name, adapter_name="dg_lora")
    pipe.fuse_lora(components=["transformer"], lora_scale=spec["scale"], adapter_names=["dg_lora"])
    theirs = run_diffusers(pipe, images, case, args.steps, args.seed, size, upstream_as_is=args.upstream_as_is)
    rows = [{**r, "stage": f"lora {r['stage']}"} for r in compare(ours, theirs)]
    moved = float(np.abs(ours["final_latents"] - ours_plain["final_latents"]).max())
    rows.append({"stage": f"lora moved final_latents by {moved:.3g} ({spec['naming']} naming)",
                 "verdict": "ok" if moved > 1e-3 else "FAIL (the LoRA changed nothing)"})
    return rows


# ---- FLUX.2-dev's prompt upsampler -------------------------------------------------------------------------------

UPSAMPLE_STEPS = 33  # the prefill's logits and 32 decode steps


def upsample_reference(pipe, pil: list, seed: int) -> dict:
    """Flux2Pipeline.upsample_prompt's steps, called as it calls them for a nested image list (a flat list of two
    fails format_input's assertion in diffusers 0.40; docs/enhancement.md, "Deviations from diffusers"): the images
    validated, concatenated and capped by its own helpers, format_input's chat, apply_chat_template with its
    padding and truncation (the ids compared are the unpadded ones), the vision features, generate() with its
    sampling settings after torch.manual_seed(seed), and batch_decode of the new tokens. generate() is given the
    unpadded prompt: upstream pads to 2048 on the tokenizer's padding side, and the tiny tokenizer pads on the
    right, where generating after the pads would continue from a pad; unpadded equals left-padded."""
    import torch
    from diffusers.pipelines.flux2 import pipeline_flux2 as fp
    te, processor = pipe.text_encoder, pipe.tokenizer
    images = fp._validate_and_process_images([pil], pipe.image_processor, pipe.upsampling_max_image_size)
    messages = fp.format_input(prompts=[PROMPT], system_message=fp.SYSTEM_MESSAGE_UPSAMPLING_I2I, images=images)
    padded = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt", padding="max_length", truncation=True,
                                           max_length=2048)
    keep = padded["attention_mask"][0].bool()
    inputs = {"input_ids": padded["input_ids"][:, keep], "attention_mask": padded["attention_mask"][:, keep],
              "pixel_values": padded["pixel_values"].to(te.dtype), "image_sizes": padded["image_sizes"]}
    feats = torch.cat(te.model.get_image_features(inputs["pixel_values"], image_sizes=inputs["image_sizes"],
                                                  return_dict=True).pooler_output, 0)
    torch.manual_seed(seed)
    out = te.generate(**inputs, max_new_tokens=UPSAMPLE_STEPS, do_sample=True, temperature=0.15, use_cache=True,
                      output_logits=True, return_dict_in_generate=True)
    n = inputs["input_ids"].shape[1]
    tokens = out.sequences[0, n:]
    text = processor.tokenizer.batch_decode(tokens[None], skip_special_tokens=True,
                                            clean_up_tokenization_spaces=True)[0]
    return {"tokens": tokens, "logits": torch.stack([lg[0] for lg in out.logits]).float(),
            "stages": {"upsample_input_ids": inputs["input_ids"][0], "upsample_image_embeds": feats,
                       "upsample_tokens": tokens,
                       "upsample_text": torch.tensor(list(text.encode("utf-8")), dtype=torch.float32)}}


def run_upsampler(pipe, work: Path, images: list, case: dict, args) -> list:
    """The upsampler's stages: our prefill/decode teacher-forced with transformers' sampled tokens (each step's
    logits compared), our sampler drawing from transformers' own logits with the row seed (the draws must be
    transformers' exactly), the template ids, the vision features and the decoded text of the same ids."""
    import torch
    from PIL import Image
    pil = [Image.fromarray(img) for img in images]
    with torch.no_grad():
        ref = upsample_reference(pipe, pil, args.seed)
    ours = run_ours(Path(args.runner), work / "bundle", "flux2", work / "ours_upsample", images, case, 1, args.seed,
                    args.device, dtype=args.dtype,
                    inject={"upsample_teacher_tokens": ref["tokens"].cpu().numpy(),
                            "upsample_reference_logits": ref["logits"].cpu().numpy()},
                    # offloaded with parked weights emptied: the upsampler runs its LM and vision tower itself, and
                    # this shows it holds both on the device (docs/performance.md, "Model CPU offload")
                    extra=("--upsample", "--upsample_max_tokens", str(UPSAMPLE_STEPS), "--cpu_offload_check"))
    ours = {k: v for k, v in ours.items() if k.startswith("upsample_")}
    theirs = {k: v.detach().float().cpu().numpy() for k, v in ref["stages"].items()}
    theirs["upsample_logits"] = ref["logits"].cpu().numpy()
    return compare(ours, theirs)


# ---- GLM-Image ---------------------------------------------------------------------------------------------------

def glm_ar_reference(pipe, pil: list, size, seed: int) -> dict:
    """transformers' side of the AR prior, called as GlmImagePipeline.generate_prior_tokens calls it: the
    processor's ids and grids, the references' VQ codes, get_rope_index positions, and generate() after
    torch.manual_seed(seed) with its raw logits per step."""
    import torch
    vle, (w, h) = pipe.vision_language_encoder, size
    content = [{"type": "image", "image": img} for img in pil] + [{"type": "text", "text": PROMPT}]
    inputs = pipe.processor.apply_chat_template([[{"role": "user", "content": content}]], tokenize=True,
                                                target_h=h, target_w=w, return_dict=True, return_tensors="pt")
    inputs = inputs.to(vle.device)
    grids = inputs["image_grid_thw"]
    source = grids[:len(pil)]
    feats = vle.model.get_image_features(inputs["pixel_values"], source, return_dict=True).pooler_output
    codes = vle.model.get_image_tokens(torch.cat(feats, 0), source)
    ids = inputs["input_ids"]
    expanded = ids.masked_scatter(ids == vle.config.image_token_id, codes)
    pos, _ = vle.model.get_rope_index(ids, image_grid_thw=grids, images_per_sample=inputs["images_per_sample"])
    th, tw = int(grids[-1, 1]), int(grids[-1, 2])
    torch.manual_seed(seed)
    out = vle.generate(**inputs, max_new_tokens=th * tw + 1, do_sample=True, output_logits=True,
                       return_dict_in_generate=True)
    tokens = out.sequences[0, ids.shape[1]:]
    logits = torch.stack([lg[0] for lg in out.logits]).float()
    steps = min(th * tw, tokens.numel())
    return {"codes": codes, "source": source, "target": (th, tw), "tokens": tokens,
            "stages": {"ref_image_tokens": codes, "ar_input_ids": expanded[0], "ar_position_ids": pos[:, 0],
                       "ar_logits_0": logits[:1], "ar_logits": logits[:steps]}}


def run_glm(pipe, work: Path, images: list, case: dict, args) -> list:
    """GLM-Image parity: the AR stages teacher-forced (our LM is fed transformers' sampled tokens and each step's
    logits are compared), then the DiT stages with the same prior injected on both sides (diffusers'
    prior_token_ids / prior_token_image_ids / source_image_grid_thw). Also prints how many sampled tokens agree
    before the first difference (not a gate: the draws are bit-equal only with bit-equal logits)."""
    import torch
    from PIL import Image
    pil = [Image.fromarray(img) for img in images]
    size = (images[0].shape[1], images[0].shape[0])
    with torch.no_grad():
        ar = glm_ar_reference(pipe, pil, size, args.seed)
    th, tw = ar["target"]
    prior = np.random.default_rng(args.seed).integers(0, pipe.transformer.config.prior_vq_quantizer_codebook_size,
                                                      th * tw)
    ours = run_ours(Path(args.runner), work / "bundle", "glm_image", work / "ours", images, case, args.steps,
                    args.seed, args.device, dtype=args.dtype,
                    inject={"ar_teacher_tokens": ar["tokens"].cpu().numpy(), "prior_codes": prior})
    sampled, teacher = ours.pop("ar_sampled").astype(np.int64), ar["tokens"].cpu().numpy()
    n = min(sampled.size, teacher.size)
    agree = int(np.argmax(sampled[:n] != teacher[:n])) if (sampled[:n] != teacher[:n]).any() else n
    print(f"glm_image: sampled tokens equal to transformers' for {agree} of {n} steps", flush=True)

    # diffusers with the prior injected: its own upsampling of the target and reference codes.
    up = pipe._upsample_token_ids
    prior_ids = up(torch.tensor(prior, device=pipe.device), th, tw)
    split = torch.split(ar["codes"], ar["source"].prod(-1).tolist())
    ref_ids = torch.cat([up(c, int(g[1]), int(g[2]))[0] for c, g in zip(split, ar["source"], strict=True)])
    grids = ar["source"].clone()
    grids[:, 1:] *= 2
    capture = Capture(pipe)
    latents = []
    forward = pipe.transformer.forward

    @functools.wraps(forward)
    def recording(*a, **k):
        caches = k.get("kv_caches")
        if caches is not None and caches[0].mode == "write":
            latents.append(k["hidden_states"].flatten(2).transpose(1, 2).detach().clone())
        return forward(*a, **k)
    pipe.transformer.forward = recording
    try:
        with torch.no_grad():
            out = pipe(prompt=PROMPT, image=pil, height=size[1], width=size[0], num_inference_steps=args.steps,
                       guidance_scale=case["guidance"], generator=torch.Generator("cpu").manual_seed(args.seed),
                       prior_token_ids=prior_ids, prior_token_image_ids=[ref_ids], source_image_grid_thw=[grids],
                       output_type="pil").images[0]
    finally:
        pipe.transformer.forward = forward
    s = dict(capture.stages)
    s["prompt_embeds"], s["negative_prompt_embeds"] = capture.encodes[0][0], capture.encodes[0][1]
    s["noise"] = capture.prepared
    s["image_latents"] = torch.cat(latents, 1)
    s["prior_token_ids"] = prior_ids
    s.update(ar["stages"])
    theirs = {k: v.detach().float().cpu().numpy() for k, v in s.items()}
    theirs["image"] = np.asarray(out, dtype=np.uint8)
    return compare(ours, theirs)


def reload_in(pipe, snapshot: Path, dtype):
    """The pipeline as a user loads it in `dtype`: from_pretrained(torch_dtype=...) keeps what transformers
    keeps in float32 (the rotary `inv_freq` buffers, built at init), where `.to(dtype)` would round it too.
    The processors and tokenizers stay the built pipeline's (the PIL image processor, see tiny_pipelines)."""
    import torch
    loaded = type(pipe).from_pretrained(snapshot, torch_dtype=dtype)
    loaded.register_modules(**{name: c for name, c in pipe.components.items()
                               if c is not None and not isinstance(c, torch.nn.Module)})
    return loaded


def self_check(args) -> int:
    """The harness's plumbing without diffusers: the same run twice must compare equal, a different seed must
    be caught (noise, prediction, image)."""
    work = Path(args.work)
    case = CASES["qwen"]
    images = [pattern(w // 8, h // 8, k) for k, (w, h) in enumerate(case["images"])]
    bundle = work / "tiny_qwen"
    a = run_ours(Path(args.runner), bundle, "qwen", work / "a", images, case, 2, 7, "cpu", make_tiny=True)
    b = run_ours(Path(args.runner), bundle, "qwen", work / "b", images, case, 2, 7, "cpu")
    c = run_ours(Path(args.runner), bundle, "qwen", work / "c", images, case, 2, 8, "cpu")
    same, other = compare(a, b), compare(a, c)
    print(table("self-check, same seed", same))
    print(table("self-check, other seed", other))
    expected = {"prompt_embeds", "negative_prompt_embeds", "image_latents", "noise", "sigmas", "timesteps",
                "noise_pred_0", "final_latents", "image"}
    problems = []
    if {r["stage"] for r in same} != expected:
        problems.append(f"stages {sorted(r['stage'] for r in same)} != {sorted(expected)}")
    if any(r["verdict"] != "ok" or r["max_abs"] != 0 for r in same):
        problems.append("identical runs differ")
    caught = {r["stage"] for r in other if r["verdict"] != "ok"}
    if not {"noise", "noise_pred_0", "final_latents", "image"} <= caught:
        problems.append(f"a different seed was not caught (failed stages: {sorted(caught)})")
    if caught & {"prompt_embeds", "image_latents", "sigmas"}:
        problems.append(f"seed-independent stages differ: {sorted(caught)}")
    for p in problems:
        print("self-check:", p)
    return 1 if problems else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runner", default=str(ROOT / "build" / "diffgentor_parity"))
    p.add_argument("--types", default=None, help="comma-separated (default: every type src/models/model_table.json "
                                                  "marks implemented)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--attention", default="sdpa", choices=["sdpa", "math"])
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", default=None, help="scratch folder (default: a new temporary one)")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                   help="bfloat16: figures only (the tolerances are float32's), exit 0 unless a run fails")
    p.add_argument("--upstream_as_is", action="store_true",
                   help="call diffusers without restoring the Qwen2.5-VL 3-D positions (docs/parity.md, "
                        "\"Upstream defects\"): shows what the defect costs")
    p.add_argument("--json", default=None, help="also write the rows here")
    p.add_argument("--markdown", default=None,
                   help="replace this dtype and device's table in a markdown file (docs/parity.md) with this run's")
    p.add_argument("--self_check", action="store_true")
    args = p.parse_args(argv)
    args.work = args.work or tempfile.mkdtemp(prefix="dg_parity_")
    if not Path(args.runner).is_file():
        print(f"parity: no runner at {args.runner} (build the diffgentor_parity target)", file=sys.stderr)
        return 2
    if args.self_check:
        return self_check(args)
    try:
        for name in ("diffusers", "torch", "transformers"):
            importlib.import_module(name)
    except ImportError as e:
        print(f"parity: {e.name} is not installed: run it with the Python of the pinned environment "
              "(tools/requirements.txt; ./setup.sh makes it)", file=sys.stderr)
        return 2
    implemented = model_table.implemented_types()
    import tiny_pipelines
    missing = [(kind, "tiny pipeline builder (tools/parity/tiny_pipelines.py BUILDERS)")
               for kind in tiny_pipelines.missing_builders(implemented)]
    missing += [(kind, "parity case (tools/parity/parity.py CASES)") for kind in implemented if kind not in CASES]
    for kind, what in missing:
        print(f"parity: model type {kind} is implemented ({model_table.table_path()}) but has no {what}",
              file=sys.stderr)
    if missing:
        return 2
    args.types = args.types or ",".join(implemented)
    testdata = Path(os.environ.get("DIFFGENTOR_TESTDATA") or ROOT / "tests" / "data")
    if not (testdata / "tokenizers").is_dir():
        print(f"parity: no tokenizer test data at {testdata} (set DIFFGENTOR_TESTDATA)", file=sys.stderr)
        return 2
    failed, report = False, {}
    for kind in args.types.split(","):
        try:
            rows = run_type(kind, args, testdata)
        except Exception as e:  # one type's failure is reported, the others still run
            rows = [{"stage": "(run)", "verdict": f"FAIL ({type(e).__name__}: {e})"}]
        report[kind] = rows
        print(table(kind, rows), flush=True)
        if args.dtype == "float32":
            failed |= any(r["verdict"] != "ok" for r in rows)
        else:  # figures only; a run that did not finish still fails
            failed |= any("max_abs" not in r for r in rows)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    if args.markdown:
        write_markdown(Path(args.markdown), report, args)
    verdict = "all stages within tolerance" if args.dtype == "float32" else "figures only (bfloat16)"
    print("parity:", "FAILED" if failed else verdict, f"(work: {args.work})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
