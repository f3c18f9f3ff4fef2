"""Peak memory and time of a 2048 x 2048 edit with and without VAE tiling, diffgentor against diffusers.

The small FLUX.2-klein pipeline of tools/parity/tiny_pipelines.py (real diffusers classes, seeded random weights;
its AutoencoderKLFlux2 has four blocks of 32 channels) is given the class's own tiling geometry (sample_size 1024:
latent tiles of 128 every 96, 256 px blended), saved, exported, and asked for one 2048 x 2048 output from one
640 x 480 input with 1 step, four ways: diffgentor with and without --enable_vae_tiling, diffusers with and without
vae.enable_tiling(). Each run is its own process; its peak resident memory comes from wait4's rusage. diffgentor's
VAE time is results.csv's `vae_decode` stage and its tiles the counter `vae_decoder_tiles`; diffusers' are the
pipeline's vae.decode and the calls of its decoder, counted by wrappers.

    python bench/vae_tiling.py [--threads 2] [--markdown docs/performance.md]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tools" / "parity"), str(ROOT / "tools" / "export")]

import tiny_pipelines  # noqa: E402
from parity import CASES, pattern, replace_block  # noqa: E402

KIND, SIZE = "flux2_klein", 2048
DIFFUSERS_CHILD = r"""
import json, sys, time, torch, diffusers
from PIL import Image
snapshot, image, tiled, size, threads = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
OUT_LAYERS = tuple(json.loads(sys.argv[6]))
torch.set_num_threads(threads)
pipe = diffusers.Flux2KleinPipeline.from_pretrained(snapshot, torch_dtype=torch.float32)
if tiled:
    pipe.vae.enable_tiling()
decode, spent, tiles = pipe.vae.decode, [], []
inner = pipe.vae.decoder.forward
def counted(*a, **k):
    tiles.append(1)
    return inner(*a, **k)
pipe.vae.decoder.forward = counted
def timed(*a, **k):
    t0 = time.perf_counter()
    out = decode(*a, **k)
    spent.append(time.perf_counter() - t0)
    return out
pipe.vae.decode = timed
with torch.no_grad():
    pipe(prompt="Make it night", image=[Image.open(image).convert("RGB")], num_inference_steps=1, guidance_scale=4.0,
         width=size, height=size, text_encoder_out_layers=OUT_LAYERS, generator=torch.Generator("cpu").manual_seed(0))
print(json.dumps({"vae_decode_s": sum(spent), "tiles": len(tiles)}))
"""


def run(cmd: list, env=None) -> tuple[str, float]:
    """Runs `cmd`; returns its stdout and its peak RSS in MiB (wait4's ru_maxrss, KiB on Linux)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"{cmd[0]} failed: {err.read()[-2000:]}")
        return out.read(), usage.ru_maxrss / 1024


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--diffgentor", default=str(ROOT / "build" / "diffgentor"))
    p.add_argument("--work", default=None)
    p.add_argument("--markdown", default=None, help="replace the `bench vae_tiling` block of this file")
    args = p.parse_args(argv)
    import diffusers
    import torch
    from PIL import Image

    from diffgentor_export import cli
    work = Path(args.work or tempfile.mkdtemp(prefix="dg_vae_tiling_"))
    testdata = Path(os.environ.get("DIFFGENTOR_TESTDATA") or ROOT / "tests" / "data")
    pipe = tiny_pipelines.build(KIND, testdata, "small")
    pipe.vae.register_to_config(sample_size=1024)  # the class's default; sets only the tiling geometry
    snapshot = tiny_pipelines.save(pipe, work / "snapshot")
    if cli.main(["--model", str(snapshot), "--out", str(work / "bundle"), "--dtype", "float32", "--device", "cpu",
                 "--text_encoder_out_layers", ",".join(str(k) for k in CASES[KIND]["out_layers"]),
                 "--overwrite"]) != 0:
        raise SystemExit("export failed")
    image = work / "input.png"
    Image.fromarray(pattern(640, 480, 0)).save(image)
    manifest = work / "manifest.csv"
    manifest.write_text(f"index,input_images,instruction\n0,{image},Make it night\n")
    rows = []
    for tiled in (False, True):
        out = work / f"dg_{int(tiled)}"
        cmd = [args.diffgentor, "edit", "--backend", "diffusers", "--model_name", str(work / "bundle"), "--model_type",
               KIND, "--input", str(manifest), "--output_dir", str(out), "--width", str(SIZE), "--height",
               str(SIZE), "--num_inference_steps", "1", "--torch_dtype", "float32", "--device", "cpu", "--threads",
               str(args.threads), "--seed", "0", "--guidance_scale", "4", "--no_resume"]
        cmd += ["--enable_vae_tiling"] if tiled else []
        _, rss = run(cmd)
        with open(out / "results.csv") as f:
            record = next(csv.DictReader(f))
        stages, counters = json.loads(record["stage_times"]), json.loads(record["counters"])
        rows.append(("diffgentor", tiled, rss, stages["vae_decode"], counters.get("vae_decoder_tiles", 1)))
        text, rss = run([sys.executable, "-c", DIFFUSERS_CHILD, str(snapshot), str(image), str(int(tiled)), str(SIZE),
                         str(args.threads), json.dumps(list(CASES[KIND]["out_layers"]))])
        child = json.loads(text.strip().splitlines()[-1])
        rows.append(("diffusers", tiled, rss, child["vae_decode_s"], child["tiles"]))
        print(rows[-2], rows[-1], flush=True)
    head = (f"Measured by `bench/vae_tiling.py --threads {args.threads}` on {date.today()} ({platform.machine()}, "
            f"{os.cpu_count()} cores): torch {torch.__version__}, diffusers {diffusers.__version__}. One "
            f"{SIZE} x {SIZE} output, 1 step, float32 on the CPU.")
    table = ["| tool | VAE tiling | peak RSS MiB | VAE decode s | decode tiles |", "|---|---|---|---|---|"]
    table += [f"| {tool} | {'on' if t else 'off'} | {rss:.0f} | {s:.2f} | {n} |" for tool, t, rss, s, n in rows]
    body = head + "\n\n" + "\n".join(table)
    print(body)
    if args.markdown:
        replace_block(Path(args.markdown), "bench vae_tiling", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
