#!/usr/bin/env bash
# The report at scale (docs/report.md, "Size and speed"): a real tiny run of 4 rows, its records and images
# replicated to ROWS rows (hard links, new indices), then `diffgentor report` timed cold (every thumbnail made) and
# warm (thumbnails kept), the page's size, and its load in headless Chromium (the script's own render time, read
# back from the DOM, and the wall time of a --dump-dom).
#   bench/report.sh BUILD_DIR [ROWS]      (default 1000)
set -euo pipefail
build=$(realpath "${1:?usage: bench/report.sh BUILD_DIR [ROWS]}")
rows=${2:-1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$build/diffgentor" make-tiny --model_type qwen_singleimg --out "$work/Qwen-Image-Edit-tiny" >/dev/null
python3 - "$work" <<'PY'
import struct, sys, zlib
def png(path, w, h, seed):
    raw = b"".join(b"\0" + bytes(((x * 7 + y * 3 + seed * 50) % 256) for x in range(w) for _ in range(3)) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
work = sys.argv[1]
for k in range(4):
    png(f"{work}/in{k}.png", 96 + 16 * k, 64, k)
with open(f"{work}/m.csv", "w") as f:
    f.write("image,instruction\n" + "".join(f"in{k}.png,edit number {k}\n" for k in range(4)))
PY
"$build/diffgentor" edit --model_name "$work/Qwen-Image-Edit-tiny" --model_type qwen_singleimg --input "$work/m.csv" \
  --output_dir "$work/out" --num_inference_steps 2 --seed 0 --progress none 2>/dev/null
python3 - "$work" "$rows" <<'PY'
import csv, os, sys
work, rows = sys.argv[1], int(sys.argv[2])
with open(f"{work}/out/results.csv") as f:
    reader = csv.DictReader(f)
    fields, records = reader.fieldnames, list(reader)
with open(f"{work}/m.csv", "w") as m, open(f"{work}/out/results.csv", "w", newline="") as out:
    m.write("index,image,instruction\n")
    w = csv.DictWriter(out, fieldnames=fields)
    w.writeheader()
    for i in range(rows):
        r = dict(records[i % len(records)])
        src = r["output_image"]
        r["index"], r["output_image"], r["instruction"] = str(i), f"{i:06d}.png", f"edit number {i}"
        if i >= len(records):
            os.link(f"{work}/out/{src}", f"{work}/out/{i:06d}.png")
        w.writerow(r)
        m.write(f"{i},{r['image']},edit number {i}\n")
PY
t0=$(date +%s.%N); "$build/diffgentor" report --output_dir "$work/out" --input "$work/m.csv" >/dev/null; t1=$(date +%s.%N)
"$build/diffgentor" report --output_dir "$work/out" --input "$work/m.csv" >/dev/null; t2=$(date +%s.%N)
page="$work/out/report.html"
t3=$(date +%s.%N)
dom=$(chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --user-data-dir="$work/profile" \
  --dump-dom "file://$page" 2>/dev/null)
t4=$(date +%s.%N)
printf '| rows | report cold s | report warm s | report.html | thumbnails | cards on page 1 | script render ms | chromium --dump-dom s |\n'
printf '|---|---|---|---|---|---|---|---|\n'
printf '| %s | %.2f | %.2f | %s | %s in %s files | %s | %s | %.2f |\n' "$rows" "$(awk "BEGIN{print $t1 - $t0}")" \
  "$(awk "BEGIN{print $t2 - $t1}")" "$(du -h "$page" | cut -f1)" "$(du -sh "$work/out/report_files" | cut -f1)" \
  "$(ls "$work/out/report_files" | wc -l)" "$(sed -n 's/.*data-cards="\([0-9]*\)".*/\1/p' <<<"$dom")" \
  "$(sed -n 's/.*data-render-ms="\([0-9.]*\)".*/\1/p' <<<"$dom")" "$(awk "BEGIN{print $t4 - $t3}")"
