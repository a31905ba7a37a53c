"""Speed and peak memory of `srlib.upscale` (tiled) on 512x512 and 2048x2048 inputs, against one
whole-image `model.predict` of the same network.

    python benchmarks/bench_upscale.py [--weights PATH] [--tile 192] [--sizes 512 2048] [--out FILE.md]

Each measurement runs in its own process, which reports its own peak resident memory (ru_maxrss). Prints
megapixels of output per second and peak memory in GB, and writes the same as a Markdown table with
``--out`` (the README includes figures/bench_upscale.md). The whole-image predict is skipped for inputs
whose activations would not fit (above 1024x1024 its upsampling layers alone need tens of GB).
"""

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import numpy as np
from srlib.upscale import _load, upscale
size, weights, tile, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
image = np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8)
model, _ = _load(weights)
upscale(image[:64, :64], weights, tile=tile)  # build and trace once, outside the timing
start = time.perf_counter()
if mode == "tiled":
    out = upscale(image, weights, tile=tile)
else:
    out = model.predict(image[None].astype(np.float32) / 255.0, verbose=0)[0]
seconds = time.perf_counter() - start
peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux
print(json.dumps({"seconds": seconds, "megapixels": out.shape[0] * out.shape[1] / 1e6, "peak_gb": peak_gb}))
"""


def measure(size: int, weights: str, tile: int, mode: str) -> dict:
    run = subprocess.run([sys.executable, "-c", CHILD, str(size), weights, str(tile), mode],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="srresnet-x4", help="srresnet-x4 (shipped) or a .weights.h5 file")
    parser.add_argument("--tile", type=int, default=192)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--out", help="also write the figures as a Markdown table here")
    args = parser.parse_args()
    rows = ["| input | method | output MP/s | seconds | peak memory (GB) |", "|---|---|---|---|---|"]
    for size in args.sizes:
        for mode in ("predict", "tiled"):
            method = "one `model.predict`" if mode == "predict" else f"`upscale`, tiles of {args.tile}"
            if mode == "predict" and size > 1024:
                print(f"{size}x{size} whole-image predict: skipped (would not fit in memory)")
                rows.append(f"| {size}x{size} | {method} | skipped: would not fit in memory | | |")
                continue
            r = measure(size, args.weights, args.tile, mode)
            if "error" in r:
                print(f"{size}x{size} {mode}: failed: {r['error']}")
                reason = r["error"].replace("|", "/")
                rows.append(f"| {size}x{size} | {method} | failed: {reason} | | |")
                continue
            print(f"{size}x{size} {mode:8s} {r['megapixels'] / r['seconds']:6.3f} output MP/s  "
                  f"{r['seconds']:7.2f} s  peak memory {r['peak_gb']:.2f} GB")
            rows.append(f"| {size}x{size} | {method} | {r['megapixels'] / r['seconds']:.3f} | {r['seconds']:.1f} "
                        f"| {r['peak_gb']:.2f} |")
    if args.out:
        from srlib.files import write_text

        write_text(args.out, "\n".join(rows) + "\n")
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
