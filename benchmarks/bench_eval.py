"""How long the bicubic x4 benchmark of Set5 + Set14 + BSD100 takes (it should be seconds).

    python benchmarks/bench_eval.py [--data ../shared/data/benchmark] [--repeat 3]

Prints the time of the whole benchmark (reading images included), the time per set, and the split between making LR/SR images (MATLAB bicubic)
and scoring them (PSNR + SSIM on Y).
"""

import argparse
import time

from srlib.benchmark import bicubic_upscaler, find_set_dir, run_benchmark
from srlib.degradation import bicubic_downscale, modcrop
from srlib.images import list_image_files, read_image
from srlib.metrics import psnr_y, ssim_y

SETS = ["Set5", "Set14", "BSD100"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/benchmark")
    parser.add_argument("--repeat", type=int, default=3, help="take the best of this many runs")
    args = parser.parse_args()

    upscale = bicubic_upscaler(4)
    images = {name: [read_image(p) for p in list_image_files(find_set_dir(args.data, name))] for name in SETS}
    best = None
    for _ in range(args.repeat):
        resize_s = score_s = 0.0
        per_set = {}
        for name, hrs in images.items():
            start = time.perf_counter()
            for hr in hrs:
                t0 = time.perf_counter()
                hr = modcrop(hr, 4)
                sr = upscale(bicubic_downscale(hr, 4))
                t1 = time.perf_counter()
                psnr_y(sr, hr, 4)
                ssim_y(sr, hr, 4)
                resize_s += t1 - t0
                score_s += time.perf_counter() - t1
            per_set[name] = time.perf_counter() - start
        total = sum(per_set.values())
        if best is None or total < best[0]:
            best = (total, per_set, resize_s, score_s)
    total, per_set, resize_s, score_s = best
    n = sum(len(v) for v in images.values())
    for name, seconds in per_set.items():
        print(f"{name:<8} {len(images[name]):>4} images {seconds:7.2f} s")
    print(f"resize (LR + bicubic SR) {resize_s:.2f} s, scoring (PSNR + SSIM) {score_s:.2f} s")
    whole = min(_timed(lambda: run_benchmark(upscale, args.data, SETS, 4, "bicubic", progress=False)) for _ in range(args.repeat))
    print(f"whole benchmark command (reading PNGs included): {whole:.2f} s")
    print(f"total_s={whole:.2f} compute_s={total:.2f} images={n} per_image_ms={1000 * whole / n:.1f}")


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
