#!/usr/bin/env python3
"""diffgentor against diffusers on the same weights, side by side on one machine (docs/performance.md).

For each type: a "small" pipeline from the real diffusers/transformers classes (tools/parity/tiny_pipelines.py,
seeded random weights) is saved as a snapshot and exported to a bundle in the run dtype; a manifest of N rows
(generated images, one instruction each) is then edited by
  - diffusers: the pipeline loaded with from_pretrained, then a plain loop over the rows (open the image(s),
    call the pipeline with the row's seed, save a PNG), as the Python tool does it;
  - diffgentor: `diffgentor edit` on the bundle, in a process of its own.
Both use the same steps, guidance, dtype, device and thread count, and run interleaved (diffusers, diffgentor,
diffusers, ...) `--repeats` times. Printed per type: load time, rows/s over the rows (load excluded), wall time
of the whole job (load included), the ratio diffgentor / diffusers, and on CUDA each side's peak GPU memory
(torch.cuda.max_memory_allocated over the rows; diffgentor's largest `device_peak_mib`, the same allocator's figure).

--offload runs both with model-level CPU offload: diffusers' enable_model_cpu_offload (needs accelerate) and
diffgentor's --enable_cpu_offload. --engine_bench PATH runs diffgentor's side through diffgentor_engine_bench
(bench/engine_bench.cpp) instead of the CLI, for a machine with only the engine-only build (bench/device_bench.sh):
the same bundle, image sizes, steps and guidance, with generated images; its wall time is load + rows.

  bench/vs_diffusers.py [--types qwen,flux2_klein,flux1_kontext] [--rows 4] [--steps 4] [--threads 2]
                        [--dtype float32] [--device cpu] [--repeats 2] [--offload] [--engine_bench PATH]
                        [--json out.json]

Runs in the pinned environment (./setup.sh makes it; tools/requirements.txt). A benchmark, not a test.
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
from parity import CASES, pattern, replace_block  # per-type images, guidance and call settings

ROOT = Path(__file__).resolve().parents[1]

INSTRUCTIONS = ["Make the sky purple", 'Write "hello" on the wall', "Turn it into a watercolour painting",
                "Remove the person on the left", "Add snow on the ground", "Make it night time"]


def make_manifest(folder: Path, kind: str, rows: int) -> Path:
    """N rows with generated images (sizes from the parity cases), as a CSV the tool reads."""
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    sizes = CASES[kind]["images"]
    lines = []
    for r in range(rows):
        names = []
        for k, (w, h) in enumerate(sizes):
            name = folder / f"row{r}_{k}.png"
            Image.fromarray(pattern(w, h, r + k)).save(name)
            names.append(str(name))
        lines.append({"index": r, "input_images": json.dumps(names) if len(names) > 1 else names[0],
                      "instruction": INSTRUCTIONS[r % len(INSTRUCTIONS)], "output_name": f"row{r}.png"})
    manifest = folder / "manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(lines[0]))
        w.writeheader()
        w.writerows(lines)
    return manifest


def run_diffusers(snapshot: Path, manifest: Path, out: Path, kind: str, args) -> dict:
    """The Python tool's way: one pipeline, a loop over the rows. Returns load and per-row seconds (the whole row
    with its image reading and writing; against the engine bench, which has neither and warms up first, the
    pipeline call alone after one untimed call). On CUDA the peak GPU memory counts from what was allocated before
    the pipeline loaded (this process also exported the bundle)."""
    import gc

    import diffusers
    import torch
    from PIL import Image
    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        baseline = torch.cuda.memory_allocated(args.device)
    started = time.perf_counter()
    cls = getattr(diffusers, json.loads((snapshot / "model_index.json").read_text())["_class_name"])
    pipe = cls.from_pretrained(snapshot, dtype=getattr(torch, args.dtype))
    if args.offload:
        pipe.enable_model_cpu_offload(device=args.device)
    else:
        pipe = pipe.to(args.device)
    pipe.set_progress_bar_config(disable=True)
    load = time.perf_counter() - started
    case = CASES[kind]
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(manifest) as f:
        records = list(csv.DictReader(f))
    if args.engine_bench:
        records = records[:1] + records  # the first row once more, untimed (its result is not kept)
    for n, row in enumerate(records):
        if n == (1 if args.engine_bench else 0) and cuda:
            torch.cuda.reset_peak_memory_stats(args.device)
        t0 = time.perf_counter()
        paths = json.loads(row["input_images"]) if row["input_images"].startswith("[") else [row["input_images"]]
        images = [Image.open(p).convert("RGB") for p in paths]
        kwargs = dict(prompt=row["instruction"], image=images if case.get("image_list") else images[0],
                      num_inference_steps=args.steps, guidance_scale=case["guidance"],
                      generator=torch.Generator("cpu").manual_seed(args.seed + int(row["index"])))
        if "true_cfg" in case:
            kwargs.update(true_cfg_scale=case["true_cfg"], negative_prompt=case["negative"])
        if "out_layers" in case:
            kwargs["text_encoder_out_layers"] = case["out_layers"]
        if case.get("glm"):  # GlmImagePipeline needs the size; diffgentor takes the first image's
            kwargs.update(width=images[0].width, height=images[0].height)
        with torch.no_grad():
            t_call = time.perf_counter()
            image = pipe(**kwargs).images[0]
            t_call = time.perf_counter() - t_call
            image.save(out / row["output_name"])
        if args.engine_bench and n == 0:
            continue
        rows.append(t_call if args.engine_bench else time.perf_counter() - t0)
    peak = -(-(torch.cuda.max_memory_allocated(args.device) - baseline) // 2**20) if cuda else None
    return {"load_s": load, "row_s": rows, "wall_s": time.perf_counter() - started, "peak_mib": peak}


def run_diffgentor(bundle: Path, manifest: Path, out: Path, kind: str, args) -> dict:
    """`diffgentor edit` in its own process; per-row seconds from results.csv (prepare + model + write)."""
    case = CASES[kind]
    cmd = [str(args.diffgentor), "edit", "--backend", "diffusers", "--model_name", str(bundle), "--model_type", kind,
           "--input", str(manifest), "--output_dir", str(out), "--output_name_column", "output_name",
           "--num_inference_steps", str(args.steps), "--guidance_scale", str(case["guidance"]),
           "--torch_dtype", args.dtype, "--device", args.device, "--threads", str(args.threads),
           "--seed", str(args.seed), "--no_resume"]
    if "true_cfg" in case:
        cmd += ["--true_cfg_scale", str(case["true_cfg"]), "--negative_prompt", case["negative"]]
    for option in case.get("model_options", ()):
        cmd += ["--model_option", option]
    if args.offload:
        cmd += ["--enable_cpu_offload"]
    started = time.perf_counter()
    run = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if run.returncode != 0:
        raise RuntimeError(f"diffgentor failed ({run.returncode}): {run.stderr[-2000:]}")
    with open(out / "results.csv") as f:
        records = list(csv.DictReader(f))
    rows = [float(r["time_model_s"]) for r in records]
    stages = [{**json.loads(r["stage_times"] or "{}"), **json.loads(r["counters"] or "{}")} for r in records]
    peak = max((st["device_peak_mib"] for st in stages if "device_peak_mib" in st), default=None)
    return {"row_s": rows, "wall_s": wall, "load_s": wall - sum(rows), "stages": stages, "peak_mib": peak}


def run_engine_bench(bundle: Path, kind: str, args) -> dict:
    """diffgentor's side through diffgentor_engine_bench: one pipeline, --rows rows one at a time (as the CLI's
    default --batch_size 1), CFG fused on CUDA and split on the CPU (--cfg_batch auto)."""
    case = CASES[kind]
    mode = "b1-fused" if args.device.startswith("cuda") else "b1-split"
    if args.offload:  # the run without offload first: the bench then checks that offload changes no image
        mode += f",{mode}-offload"
    fd, name = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    report = Path(name)
    cmd = [str(args.engine_bench), "--type", kind, "--bundle", str(bundle), "--device", args.device,
           "--dtype", args.dtype, "--steps", str(args.steps), "--rows", str(args.rows), "--threads", str(args.threads),
           "--guidance", str(case["guidance"]), "--modes", mode, "--json", str(report)]
    for w, h in case["images"]:
        cmd += ["--image", f"{w}x{h}"]
    if "true_cfg" in case:
        cmd += ["--true_cfg", str(case["true_cfg"]), "--negative", case["negative"]]
    for option in case.get("model_options", ()):
        cmd += ["--model_option", option]
    try:
        run = subprocess.run(cmd, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"diffgentor_engine_bench failed ({run.returncode}): {run.stderr[-2000:]}")
        result = json.loads(report.read_text())["modes"][-1]
    finally:
        report.unlink(missing_ok=True)
    rows = [result["seconds_per_row"]] * args.rows
    peak = result["device_peak_mib"]  # None (JSON null) off CUDA
    return {"row_s": rows, "load_s": result["load_s"], "wall_s": result["load_s"] + sum(rows), "stages": [],
            "peak_mib": peak}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--types", default="qwen,flux2_klein,flux1_kontext")
    p.add_argument("--size", default="small", choices=sorted(tiny_pipelines.SIZES))
    p.add_argument("--rows", type=int, default=4)
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--diffgentor", default=str(ROOT / "build" / "diffgentor"))
    p.add_argument("--engine_bench", default=None, help="diffgentor_engine_bench: run diffgentor's side through it")
    p.add_argument("--offload", action="store_true", help="model-level CPU offload on both sides")
    p.add_argument("--work", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None,
                   help="replace the `bench DEVICE` block of this file (docs/performance.md)")
    p.add_argument("--block", default=None, help="the block's name instead (default: bench DEVICE)")
    args = p.parse_args(argv)
    if args.offload and not args.device.startswith("cuda"):
        p.error("--offload moves components between the CPU and a GPU: it needs --device cuda")
    work = Path(args.work or tempfile.mkdtemp(prefix="dg_vs_diffusers_"))
    testdata = Path(os.environ.get("DIFFGENTOR_TESTDATA") or ROOT / "tests" / "data")
    from diffgentor_export import cli
    report = {}
    for kind in args.types.split(","):
        # The pipeline is seeded, so a --work folder's snapshot and bundle of the same size and dtype are reused.
        folder = work / f"{kind}-{args.size}-{args.dtype}"
        snapshot = folder / "snapshot"
        if not (folder / "bundle" / "torchscript" / "manifest.json").exists():
            snapshot = tiny_pipelines.save(tiny_pipelines.build(kind, testdata, args.size), snapshot)
            export = ["--model", str(snapshot), "--out", str(folder / "bundle"), "--dtype", args.dtype, "--device",
                      "cuda" if args.device.startswith("cuda") else "cpu", "--overwrite"]
            if "out_layers" in CASES[kind]:
                export += ["--text_encoder_out_layers", ",".join(str(k) for k in CASES[kind]["out_layers"])]
            if cli.main(export) != 0:
                raise SystemExit(f"{kind}: export failed")
        manifest = make_manifest(folder / "inputs", kind, args.rows)
        runs = {"diffusers": [], "diffgentor": []}
        for rep in range(args.repeats):  # interleaved, so drift hits both alike
            runs["diffusers"].append(run_diffusers(snapshot, manifest, folder / f"py{rep}", kind, args))
            runs["diffgentor"].append(run_engine_bench(folder / "bundle", kind, args) if args.engine_bench else
                                      run_diffgentor(folder / "bundle", manifest, folder / f"dg{rep}", kind, args))
        summary = {}
        for tool, rs in runs.items():
            rows_per_s = [len(r["row_s"]) / sum(r["row_s"]) for r in rs]
            summary[tool] = {"rows_per_s": statistics.median(rows_per_s), "load_s": statistics.median(
                r["load_s"] for r in rs), "wall_s": statistics.median(r["wall_s"] for r in rs), "runs": rs,
                "peak_mib": max((r["peak_mib"] for r in rs if r.get("peak_mib") is not None), default=None)}
        per_row = [st for r in runs["diffgentor"] for st in r["stages"]]
        summary["diffgentor"]["stages"] = {k: statistics.median(st[k] for st in per_row if k in st)
                                           for k in dict.fromkeys(k for st in per_row for k in st)}
        ratio = summary["diffgentor"]["rows_per_s"] / summary["diffusers"]["rows_per_s"]
        report[kind] = {**summary, "ratio": ratio}
        print(f"{kind:14} {args.size} {args.dtype} {args.device} {args.rows} rows x {args.steps} steps, "
              f"{args.threads} threads{', model CPU offload' if args.offload else ''}:")
        for tool in ("diffusers", "diffgentor"):
            s = summary[tool]
            peak = f"   peak GPU memory {s['peak_mib']} MiB" if s["peak_mib"] is not None else ""
            print(f"  {tool:10} {s['rows_per_s']:.3f} rows/s   load {s['load_s']:.1f} s   job {s['wall_s']:.1f} s"
                  + peak)
        print(f"  ratio (diffgentor / diffusers rows/s): {ratio:.2f}", flush=True)
        if summary["diffgentor"]["stages"]:
            print("  diffgentor per row (median): " + ", ".join(
                f"{k} {v:.3g}" for k, v in summary["diffgentor"]["stages"].items()), flush=True)
        if args.json:  # after each type, so that an interrupted run keeps what it measured
            Path(args.json).write_text(json.dumps(report, indent=2))
    if args.markdown:
        replace_block(Path(args.markdown), args.block or f"bench {args.device}", markdown(report, args))
    return 0


def markdown(report: dict, args) -> str:
    import platform

    import diffusers
    import torch
    flags = (" --offload" if args.offload else "") + (" --engine_bench ..." if args.engine_bench else "")
    lines = [f"Measured by `bench/vs_diffusers.py --size {args.size} --rows {args.rows} --steps {args.steps} "
             f"--threads {args.threads} --dtype {args.dtype} --device {args.device} --repeats {args.repeats}"
             f"{flags}` on "
             f"{time.strftime('%Y-%m-%d')} ({platform.machine()}, {os.cpu_count()} cores): torch {torch.__version__}, "
             f"diffusers {diffusers.__version__}. Medians over the repeats.", "",
             "| type | diffusers rows/s | diffgentor rows/s | ratio | diffusers job s | diffgentor job s | "
             "peak GPU MiB (diffusers / diffgentor) |",
             "|---|---|---|---|---|---|---|"]
    for kind, r in report.items():
        py, dg = r["diffusers"], r["diffgentor"]
        peaks = f"{py['peak_mib']} / {dg['peak_mib']}" if py["peak_mib"] is not None else "·"
        lines.append(f"| `{kind}` | {py['rows_per_s']:.3f} | {dg['rows_per_s']:.3f} | {r['ratio']:.2f}× | "
                     f"{py['wall_s']:.1f} | {dg['wall_s']:.1f} | {peaks} |")
    if not any(r["diffgentor"].get("stages") for r in report.values()):
        return "\n".join(lines)
    lines += ["", "diffgentor per row, medians (results.csv `stage_times` in seconds and `counters`):", "",
              "| type | stages and counters |", "|---|---|"]
    for kind, r in report.items():
        stages = r["diffgentor"].get("stages", {})
        lines.append(f"| `{kind}` | " + ", ".join(f"{k} {v:.3g}" for k, v in stages.items()) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
