#!/usr/bin/env python3
"""FLUX.2-dev's prompt upsampler: diffgentor against transformers on the same weights (docs/performance.md,
"Prompt upsampling").

A small Flux2Pipeline from the real classes (tools/parity/tiny_pipelines.py at --size, seeded random weights) is
saved and exported --with_upsampler. Then, for the same rows (one generated image and an instruction each):
  - transformers: what Flux2Pipeline.upsample_prompt runs (the pipeline's own image helpers and chat, the processor,
    Mistral3ForConditionalGeneration): "to first token" = the image helpers and the processor (resize, pixels,
    template, tokens) plus one forward pass with the cache (vision tower and prefill); the whole generate() of
    --tokens new tokens timed after it; decode tokens/s = (new tokens - 1) / (generate - forward pass);
  - diffgentor: `diffgentor edit --prompt_enhance_type flux2` (DG_FLUX2_ENHANCER_MODE unset) in its own process,
    its own timings from results.csv: "to first token" = `upsample_vision_ms` (concatenation, area cap, resize,
    pixels, tables, vision component) + `upsample_prefill_ms` (prefill and the first sample; the tokenization
    between them, about a millisecond, is not counted), decode from `upsample_decode_ms` and
    `upsample_new_tokens`; the first row left out as warm-up.
Both run on the same device, dtype and thread count. A benchmark, not a test.

  bench/upsampler.py [--size small] [--rows 4] [--tokens 128] [--threads 2] [--device cpu] [--json out.json]
                     [--markdown docs/performance.md]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "export"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "parity"))
import tiny_pipelines
from parity import pattern, replace_block
from vs_diffusers import INSTRUCTIONS

ROOT = Path(__file__).resolve().parent.parent
SIZE = (640, 480)


def export(work: Path, args) -> tuple:
    from diffgentor_export import cli
    pipe = tiny_pipelines.build("flux2", ROOT / "tests" / "data", args.size)
    snap = tiny_pipelines.save(pipe, work / "snapshot")
    code = cli.main(["--model", str(snap), "--out", str(work / "bundle"), "--dtype", args.dtype, "--device",
                     args.device, "--text_encoder_out_layers", "1,2,3", "--with_upsampler", "--overwrite"])
    if code != 0:
        raise RuntimeError("export failed")
    return pipe, snap, work / "bundle"


def run_transformers(pipe, rows: list, args) -> dict:
    import torch
    from diffusers.pipelines.flux2 import pipeline_flux2 as fp
    from PIL import Image
    torch.set_num_threads(args.threads)
    te, processor = pipe.text_encoder.to(args.device), pipe.tokenizer
    prefill, decode, prompt_tokens = [], [], []
    for k, (image, instruction) in enumerate(rows):
        opened = Image.open(image).convert("RGB")
        with torch.no_grad():
            t_prep = time.perf_counter()
            images = fp._validate_and_process_images([[opened]], pipe.image_processor, pipe.upsampling_max_image_size)
            messages = fp.format_input(prompts=[instruction], system_message=fp.SYSTEM_MESSAGE_UPSAMPLING_I2I,
                                       images=images)
            inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True, return_tensors="pt").to(args.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(te.dtype)
            t0 = time.perf_counter()
            te(**inputs, use_cache=True, logits_to_keep=1)
            t1 = time.perf_counter()
            torch.manual_seed(args.seed + k)
            out = te.generate(**inputs, max_new_tokens=args.tokens, do_sample=True, temperature=0.15, use_cache=True)
            t2 = time.perf_counter()
        new = out.shape[1] - inputs["input_ids"].shape[1]
        if k:  # the first row warms up
            prefill.append((t1 - t_prep) * 1000)
            decode.append((new - 1) / max((t2 - t1) - (t1 - t0), 1e-9))
        prompt_tokens.append(inputs["input_ids"].shape[1])
    return {"prefill_ms": statistics.median(prefill), "decode_tokens_per_s": statistics.median(decode),
            "prompt_tokens": prompt_tokens[0]}


def run_diffgentor(bundle: Path, manifest: Path, out: Path, args) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DG_FLUX2_ENHANCER_MODE"}
    env["DG_FLUX2_UPSAMPLE_MAX_TOKENS"] = str(args.tokens)
    cmd = [args.diffgentor, "edit", "--model_name", str(bundle), "--model_type", "flux2", "--input", str(manifest),
           "--output_dir", str(out), "--output_name_column", "output_name", "--num_inference_steps", "1",
           "--torch_dtype", args.dtype, "--device", args.device, "--threads", str(args.threads), "--seed",
           str(args.seed), "--no_resume", "--prompt_enhance_type", "flux2"]
    run = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"diffgentor failed ({run.returncode}): {run.stderr[-2000:]}")
    with open(out / "results.csv") as f:
        records = sorted(csv.DictReader(f), key=lambda r: int(r["index"]))
    counters = [json.loads(r["counters"]) for r in records][1:]  # the first row warms up
    return {"prefill_ms": statistics.median(c["upsample_vision_ms"] + c["upsample_prefill_ms"] for c in counters),
            "decode_tokens_per_s": statistics.median((c["upsample_new_tokens"] - 1) * 1000.0 /
                                                     max(c["upsample_decode_ms"], 1) for c in counters),
            "prompt_tokens": counters[0]["upsample_prompt_tokens"]}


def markdown(r: dict, args) -> str:
    import platform

    import torch
    import transformers
    cfg = r["config"]
    return "\n".join([
        f"Measured by `bench/upsampler.py --size {args.size} --rows {args.rows} --tokens {args.tokens} --threads "
        f"{args.threads} --dtype {args.dtype} --device {args.device}` on {time.strftime('%Y-%m-%d')} "
        f"({platform.machine()}, {os.cpu_count()} cores): torch {torch.__version__}, transformers "
        f"{transformers.__version__}. Mistral decoder {cfg}; one {SIZE[0]}x{SIZE[1]} image a row, "
        f"{r['diffgentor']['prompt_tokens']} prompt tokens; medians over rows 2..{args.rows}.", "",
        "| | to first token ms | decode tokens/s |", "|---|---|---|",
        f"| transformers (upsample_prompt's generate) | {r['transformers']['prefill_ms']:.1f} | "
        f"{r['transformers']['decode_tokens_per_s']:.1f} |",
        f"| diffgentor (AR engine) | {r['diffgentor']['prefill_ms']:.1f} | "
        f"{r['diffgentor']['decode_tokens_per_s']:.1f} |"])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="small", choices=sorted(tiny_pipelines.SIZES))
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--tokens", type=int, default=128)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--diffgentor", default=str(ROOT / "build" / "diffgentor"))
    p.add_argument("--work", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None, help="replace the 'bench upsampler' block of this file")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="dg_bench_up_"))
    pipe, _, bundle = export(work, args)
    from PIL import Image
    rows = []
    for k in range(args.rows):
        path = work / f"row{k}.png"
        Image.fromarray(pattern(*SIZE, k)).save(path)
        rows.append((str(path), INSTRUCTIONS[k % len(INSTRUCTIONS)]))
    manifest = work / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "input_images", "instruction", "output_name"])
        for k, (image, text) in enumerate(rows):
            w.writerow([k, image, text, f"row{k}.png"])
    tc = pipe.text_encoder.config.text_config
    report = {"config": f"{tc.num_hidden_layers} layers, hidden {tc.hidden_size}, {tc.num_attention_heads} heads / "
                        f"{tc.num_key_value_heads} KV heads, vocabulary {tc.vocab_size}",
              "diffgentor": run_diffgentor(bundle, manifest, work / "out", args),
              "transformers": run_transformers(pipe, rows, args)}
    print(markdown(report, args))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    if args.markdown:
        replace_block(Path(args.markdown), "bench upsampler", markdown(report, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
