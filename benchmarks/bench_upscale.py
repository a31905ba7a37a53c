"""Speed and peak memory of `srlib.upscale` with its default memory budget, against one whole-image call of
the Keras model and against this CPU's dense-conv throughput.

    python benchmarks/bench_upscale.py [--weights PATH] [--sizes 512 2048 4096] [--files-size 2048]
                                       [--max-memory 2G] [--precisions float32 bfloat16] [--data DIR] [--out FILE.md]
    python benchmarks/bench_upscale.py --memory   # bytes per LR pixel of the body and upsampler windows
    python benchmarks/bench_upscale.py --upsampler-sides 512   # upscale's time by the upsampler windows' size

Each measurement runs in its own process, which reports its peak resident memory (ru_maxrss). A process
times its first call (on a 64x64 image: tracing and TensorFlow's set-up) apart from its warm calls on the
full image, and measures a 3x3 conv of 64 to 64 channels on 512x512 before and after them, so that the
fraction of the dense-conv throughput that the network reaches compares figures taken under a like load (the
network's nominal cost is 4.44 MFLOP per LR pixel for SRResNet-16 x4). Speeds are megapixels of output
per second of the best warm call (of 2 where a call takes under about 30 s, else of 1). Printed and
(``--out``) written as a Markdown table:

- one `tf.function` of the Keras model over a whole 512x512 image (above that it needs tens of GB);
- `upscale` (returns an array) at each size, and `upscale_files` (writes the PNG band by band), with the
  ratio of their speed to the whole-image one;
- measured interleaved in one process, so that other work on the machine weighs on all alike: the
  Keras graph against `upscale`'s inference graph (the 9x9 tail computed before the last shuffle) on a
  whole 256x256 image, and the whole-image Keras call on 512x512 against the default `upscale` on
  512x512 and on 2048x2048 (``--interleaved-size``), both in float32 and in bfloat16, with the dense-conv probe
  run between every two calls: the fairest fraction of it on a host whose speed varies.

Both precisions are measured (``--precisions``), each against the dense-conv probe in its own precision;
with ``--data`` (benchmark sets), a last table gives the PSNR of both shipped models in float32 and in
bfloat16 on Set5, Set14, BSD100 and Urban100.

On a shared machine wall-clock speeds move with the other work (the load average is printed); the CPU
time of a call, and the interleaved ratios, move much less.
"""

import argparse
import json
import os
import subprocess
import sys

from srlib.precision import cpu_description
from srlib.upscale import DEFAULT_MODEL, SHIPPED

CHILD = r"""
import json, resource, sys, time
import numpy as np
import tensorflow as tf
kind, size, weights, max_memory, precision = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4]), sys.argv[5]


def picture(size):
    # smooth shapes and grain, like a photo; made 256 rows at a time, so that its float64 temporaries do not
    # raise the peak memory the measurements read
    image = np.empty((size, size, 3), np.uint8)
    rng, x = np.random.default_rng(0), np.arange(size)
    for top in range(0, size, 256):
        y = np.arange(top, min(top + 256, size))[:, None]
        base = 120 + 60 * np.sin(y / 23.0) * np.cos(x / 31.0)
        noise = rng.normal(0, 12, (len(y), size, 3))
        image[top:top + len(y)] = np.clip(base[..., None] + noise, 0, 255).astype(np.uint8)
    return image


def timed(call, repeats=1, cpu=None):
    times = []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        times.append((time.perf_counter() - start, time.process_time() - start_cpu))
    if cpu is not None:
        cpu.append(min(times)[1])  # CPU seconds of all threads: less moved by other work than wall time
    return min(times)[0]


def rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # peak so far; KB on Linux


def conv_gflops(precision=precision):  # the dense-conv probe, in the precision measured
    dtype = tf.bfloat16 if precision == "bfloat16" else tf.float32
    x, kernel = tf.cast(tf.random.normal((1, 512, 512, 64)), dtype), tf.cast(tf.random.normal((3, 3, 64, 64)), dtype)
    conv = tf.function(lambda x: tf.nn.conv2d(x, kernel, 1, "SAME"))
    conv(x).numpy()
    return 2 * 512 * 512 * 64 * 64 * 9 / timed(lambda: conv(x).numpy(), 5) / 1e9


def keras_whole():
    from srlib.models import load_generator
    from srlib.upscale import weights_path
    model = load_generator(weights_path(weights))
    run = tf.function(lambda lr: model(lr, training=False), input_signature=[tf.TensorSpec((1, None, None, 3), tf.float32)])
    return lambda image: run(tf.constant(image[None].astype(np.float32) / 255.0)).numpy()


result, cpu = {}, []
from srlib.precision import effective
# best of 2 calls where one takes under about half a minute (on the AMX machine), else 1
repeats = 2 if size**2 * (1 if effective(precision) == "bfloat16" else 4) <= 2048**2 else 1
if kind in ("whole", "upscale", "files"):
    result["conv_before"] = conv_gflops()
if kind == "whole":
    call = keras_whole()
    result["first"] = timed(lambda: call(picture(64)))
    result["base_gb"] = rss_gb()
    image = picture(size)
    result["warm"] = timed(lambda: call(image), repeats, cpu)
elif kind == "upscale":
    from srlib.upscale import upscale
    result["first"] = timed(lambda: upscale(picture(64), weights, max_memory=max_memory, precision=precision))
    result["base_gb"] = rss_gb()
    image = picture(size)
    result["warm"] = timed(lambda: upscale(image, weights, max_memory=max_memory, precision=precision), repeats, cpu)
elif kind == "files":
    import os, tempfile
    from PIL import Image
    from srlib.upscale import upscale_files
    folder = tempfile.mkdtemp()
    Image.fromarray(picture(64)).save(f"{folder}/small.png")
    Image.fromarray(picture(size)).save(f"{folder}/in.png", compress_level=1)
    run = lambda name: upscale_files([f"{folder}/{name}.png"], f"{folder}/out", weights, overwrite=True,
                                     max_memory=max_memory, progress=False, precision=precision)
    result["first"] = timed(lambda: run("small"))
    result["base_gb"] = rss_gb()
    result["warm"] = timed(lambda: run("in"), repeats, cpu)
    result["png_mb"] = os.path.getsize(f"{folder}/out/in.png") / 1e6
elif kind == "interleaved":
    from srlib.upscale import upscale
    keras = keras_whole()
    small, image, large = picture(256), picture(512), picture(size)
    f32 = dict(max_memory=max_memory, precision="float32")
    bf16 = dict(max_memory=max_memory, precision="bfloat16")
    calls = {"keras_256": lambda: keras(small),
             "fast_256": lambda: upscale(small, weights, tile=None, precision="float32"),
             "keras_512": lambda: keras(image), "upscale_512": lambda: upscale(image, weights, **f32),
             "upscale_large": lambda: upscale(large, weights, **f32),
             "bf16_512": lambda: upscale(image, weights, **bf16), "bf16_large": lambda: upscale(large, weights, **bf16)}
    keras(small), upscale(small, weights, tile=None, precision="float32"), upscale(small, weights, **f32)
    upscale(small, weights, **bf16)
    times = {name: [] for name in calls}
    probes = {"float32": [], "bfloat16": []}
    for _ in range(2):
        for name, call in calls.items():
            times[name].append(timed(call))
            for p in probes:  # the dense-conv probe between every two calls: the same load as theirs
                probes[p].append(conv_gflops(p))
    result = {name: min(t) for name, t in times.items()}
    result.update({f"probe_{p}": max(g) for p, g in probes.items()})
    whole = np.clip(np.round(keras(image)[0] * 255), 0, 255).astype(np.int16)
    result["largest_difference"] = int(np.abs(upscale(image, weights, max_memory="200M", precision="float32")
                                              - whole).max())
elif kind == "sides":  # upscale in each precision with the upsampler's windows capped at each side, interleaved
    import importlib
    module = importlib.import_module("srlib.upscale")
    image, sides = picture(size), [0, 64, 96, 128, 192, 256]
    measured = sorted({module._load(weights, p).precision for p in ("float32", "bfloat16")})  # without bf16: one
    times = {(p, side): [] for p in measured for side in sides}
    for p in measured:
        module.upscale(picture(64), weights, precision=p)
    for _ in range(3):
        for p, side in times:
            module.UPSAMPLER_SIDE[p] = side or None
            times[p, side].append(timed(lambda: module.upscale(image, weights, max_memory=max_memory, precision=p)))
    result = {f"{p} {side}": min(t) for (p, side), t in times.items()}
elif kind == "psnr":  # the PSNR cost of bfloat16: the benchmark in float32 and in bfloat16, of both shipped models
    from srlib.benchmark import model_upscaler, run_benchmarks
    from srlib.upscale import SHIPPED
    sets = ["Set5", "Set14", "BSD100", "Urban100"]
    for model in SHIPPED:
        upscalers = {p: model_upscaler(model, 4, p)[0] for p in ("float32", "bfloat16")}
        measured = run_benchmarks(upscalers, weights, sets, 4, progress=False)
        result[model] = {s: {p: measured[p]["results"][s]["psnr"] for p in upscalers} for s in sets
                         if s in measured["float32"]["results"]}
elif kind in ("body", "upsampler"):
    from srlib.upscale import _load
    net = _load(weights)
    statm = lambda: int(open("/proc/self/statm").read().split()[1]) * 4096
    if kind == "body":
        call, x = net.body, picture(size)[None]
    else:
        call, x = net.upsampler, tf.random.normal((1, size, size, net.filters))
    call(x[:, :32, :32]).numpy()
    before = statm(); call(x).numpy()
    result["bytes_per_pixel"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1e3 - before) / size**2
result["peak_gb"] = rss_gb()
if kind in ("whole", "upscale", "files"):
    result["conv_gflops"] = (result.pop("conv_before") + conv_gflops()) / 2  # before and after the timed calls
    result["cpu"] = cpu[0]
print(json.dumps(result))
"""


def measure(kind: str, size: int, weights: str, max_memory: float, precision: str = "float32") -> dict:
    run = subprocess.run([sys.executable, "-c", CHILD, kind, str(size), weights, str(max_memory), precision],
                         capture_output=True, text=True)
    if run.returncode != 0:
        return {"error": run.stderr.strip().splitlines()[-1] if run.stderr.strip() else f"exit {run.returncode}"}
    return json.loads(run.stdout.strip().splitlines()[-1])


def psnr_cost(data: str) -> str:
    """A Markdown table of the PSNR (Y, x4) of both shipped models computed in float32 and in bfloat16 on the
    benchmark sets in ``data``, and the difference; "" when the sets are not there."""
    from pathlib import Path

    if not (Path(data) / "benchmark" / "Set5").is_dir() and not (Path(data) / "Set5").is_dir():
        print(f"no benchmark sets in {data}: the PSNR cost of bfloat16 is not measured")
        return ""
    r = measure("psnr", 0, data, 0)
    if "error" in r:
        return f"The PSNR cost of bfloat16 could not be measured: {r['error']}."
    r.pop("peak_gb")
    sets = list(next(iter(r.values())))
    lines = ["| x4, Y, shave 4: PSNR float32 / bfloat16 (bfloat16 - float32) | " + " | ".join(sets) + " |",
             "|---|" + "---|" * len(sets)]
    for model, by_set in r.items():
        cells = [f"{v['float32']:.4f} / {v['bfloat16']:.4f} ({v['bfloat16'] - v['float32']:+.4f})"
                 for v in by_set.values()]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    worst = max(abs(v["bfloat16"] - v["float32"]) for by_set in r.values() for v in by_set.values())
    return "\n".join(lines) + f"\n\nThe largest PSNR change of bfloat16 on a set: {worst:.4f} dB."


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=DEFAULT_MODEL, help=f"a shipped model ({', '.join(SHIPPED)}; default "
                        f"{DEFAULT_MODEL}) or a .weights.h5 file")
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048, 4096], help="input sizes of `upscale`")
    parser.add_argument("--files-size", type=int, default=2048, help="input size of `upscale_files` (0: skip)")
    parser.add_argument("--interleaved-size", type=int, default=2048,
                        help="input size of `upscale` timed interleaved with the whole-image Keras call")
    parser.add_argument("--max-memory", default="2G", help="upscale's memory budget (default: 2G, its default)")
    parser.add_argument("--memory", action="store_true", help="only measure bytes per LR pixel of the windows")
    parser.add_argument("--upsampler-sides", type=int, metavar="SIZE", help="only time `upscale` on a SIZE x SIZE "
                        "image in each precision with the upsampler's windows capped at each of several sides "
                        "(srlib.upscale.UPSAMPLER_SIDE), interleaved in one process")
    parser.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"], choices=["float32", "bfloat16"],
                        help="the precisions of `upscale` to measure (default: both)")
    parser.add_argument("--data", default="../shared/data", help="benchmark sets for the PSNR cost of bfloat16 "
                        "(default: %(default)s; '' skips it)")
    parser.add_argument("--out", help="also write the figures as a Markdown table here")
    args = parser.parse_args()
    from srlib.upscale import _load, parse_memory, weights_path

    max_memory = parse_memory(args.max_memory)
    weights = str(weights_path(args.weights))
    if args.memory:
        for kind, sizes in (("body", (256, 512, 1024)), ("upsampler", (128, 256, 384))):
            for size in sizes:
                r = measure(kind, size, weights, max_memory)
                print(f"{kind} window {size}x{size}: " + (f"{r['bytes_per_pixel']:.0f} bytes per LR pixel"
                                                         if "error" not in r else f"failed: {r['error']}"))
        return
    architecture = _load(weights).architecture
    f, b, s = architecture["filters"], architecture["blocks"], architecture["scale"]
    steps = s.bit_length() - 1
    macs = 81 * 3 * f + (2 * b + 1) * 9 * f * f + sum(9 * f * 4 * f * 4**i for i in range(steps)) + 81 * f * 3 * s * s
    mflop = 2 * macs / 1e6  # per LR pixel, as the network is defined (the tail as a 9x9 conv at full scale)

    def of_probe(size, seconds, probe_gflops):
        """The fraction of the dense-conv probe's throughput that upscaling a size x size image in seconds reaches."""
        return size * size * mflop / 1e3 / seconds / probe_gflops
    if args.upsampler_sides:
        size = args.upsampler_sides
        r = measure("sides", size, weights, max_memory)
        if "error" in r:
            raise SystemExit(f"failed: {r['error']}")
        print(f"`upscale` on {size}x{size}, best of 3 interleaved, by srlib.upscale.UPSAMPLER_SIDE, the side of "
              f"the square the upsampler's windows are capped at (0: as large as the {max_memory / 1e9:g} GB budget "
              "allows):")
        for key, seconds in r.items():
            if key != "peak_gb":
                print(f"  {key:>14}: {seconds:6.2f} s, {size * size * mflop / 1e3 / seconds:5.0f} GFLOP/s")
        return
    load_before = os.getloadavg()[0]
    rows = ["| input | method | precision | output MP/s | vs whole 512x512 | vs float32 | of dense-conv throughput "
            "| first call, 64x64 (s) | warm call (s) | its CPU time (s) | peak memory (GB) "
            "| of it, beyond TensorFlow and the arrays (GB) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    whole_speed, float32_speed = None, {}

    def report(size, method, r, arrays=None, precision="float32"):
        """``arrays``: bytes of the input and output arrays the call holds whole, or None (no budget applies)."""
        nonlocal whole_speed
        if "error" in r:
            print(f"{size}x{size} {method}: failed: {r['error']}")
            rows.append(f"| {size}x{size} | {method} | {precision} | failed: {r['error'].replace('|', '/')} "
                        "| | | | | | | | |")
            return
        # what the budget bounds: the peak less the process after its first call (TensorFlow, the model) and the
        # arrays the caller holds in any case
        windows = None if arrays is None else r["peak_gb"] - r["base_gb"] - arrays / 1e9
        speed = size * size * s * s / 1e6 / r["warm"]
        whole_speed = whole_speed or speed
        if precision == "float32":
            float32_speed[(size, method)] = speed
        versus = speed / float32_speed[(size, method)] if (size, method) in float32_speed else None
        fraction = of_probe(size, r["warm"], r["conv_gflops"])
        print(f"{size}x{size} {method}, {precision}: {speed:.3f} output MP/s, {speed / whole_speed:.2f}x the "
              f"whole-image speed" + (f", {versus:.2f}x float32" if precision != "float32" and versus else "") +
              f", {fraction:.0%} of the {precision} dense-conv throughput ({r['conv_gflops']:.0f} GFLOP/s); first call "
              f"{r['first']:.1f} s, warm {r['warm']:.1f} s ({r['cpu']:.1f} s of CPU); peak memory {r['peak_gb']:.2f} GB"
              + (f" ({r['base_gb']:.2f} after the first call, {windows:.2f} beyond it and the arrays)" if windows is not None else "")
              + (f"; PNG of {r['png_mb']:.0f} MB" if "png_mb" in r else ""), flush=True)
        rows.append(f"| {size}x{size} | {method} | {precision} | {speed:.3f} | {speed / whole_speed:.2f}x | "
                    f"{'–' if versus is None else f'{versus:.2f}x'} | {fraction:.0%} | "
                    f"{r['first']:.1f} | {r['warm']:.1f} | {r['cpu']:.1f} | {r['peak_gb']:.2f} | "
                    + ("–" if windows is None else f"{windows:.2f}") + " |")

    report(512, "one `tf.function` of the Keras model, whole image", measure("whole", 512, weights, max_memory))
    budget = f"{max_memory / 1e9:g} GB"
    for precision in args.precisions:
        for size in args.sizes:
            report(size, f"`upscale`, default budget ({budget})",
                   measure("upscale", size, weights, max_memory, precision), arrays=size * size * 3 * (1 + s * s),
                   precision=precision)
        if args.files_size:
            report(args.files_size, f"`upscale_files` to PNG, band by band ({budget})",
                   measure("files", args.files_size, weights, max_memory, precision), arrays=args.files_size**2 * 3,
                   precision=precision)
    large = args.interleaved_size
    r = measure("interleaved", large, weights, max_memory)
    if "error" in r:
        note = f"The interleaved comparison failed: {r['error']}."
    else:
        per_pixel = r["keras_512"] / 512**2 / (r["upscale_large"] / large**2)
        note = (f"Interleaved in one process (best of 2), so that other work on the machine weighs on all alike: "
                f"whole 256x256 image, Keras graph {r['keras_256']:.2f} s, `upscale`'s inference graph (tail before "
                f"the shuffle) {r['fast_256']:.2f} s: {r['keras_256'] / r['fast_256']:.2f}x as fast. One whole-image "
                f"Keras call on 512x512 {r['keras_512']:.2f} s; the default `upscale` on 512x512 {r['upscale_512']:.2f} s "
                f"({r['keras_512'] / r['upscale_512']:.2f}x its speed) and on {large}x{large} {r['upscale_large']:.1f} s "
                f"({per_pixel:.2f}x its speed per pixel), all in float32. `upscale` in windows (a 200 MB budget) and the "
                f"whole-image Keras call differ by at most {r['largest_difference']} grey level on the 512x512 image. "
                f"**bfloat16 against float32**, `upscale` with the default budget: {r['bf16_512']:.2f} s against "
                f"{r['upscale_512']:.2f} s on 512x512 (**{r['upscale_512'] / r['bf16_512']:.2f}x**), {r['bf16_large']:.1f} s "
                f"against {r['upscale_large']:.1f} s on {large}x{large} (**{r['upscale_large'] / r['bf16_large']:.2f}x**). "
                f"The dense-conv probe, run between every two of these calls (best of them): float32 "
                f"{r['probe_float32']:.0f} GFLOP/s, bfloat16 {r['probe_bfloat16']:.0f}; of it, `upscale` reaches in "
                f"float32 {of_probe(512, r['upscale_512'], r['probe_float32']):.0%} on 512x512 and "
                f"{of_probe(large, r['upscale_large'], r['probe_float32']):.0%} on {large}x{large}, in "
                f"**bfloat16 {of_probe(512, r['bf16_512'], r['probe_bfloat16']):.0%}** and "
                f"**{of_probe(large, r['bf16_large'], r['probe_bfloat16']):.0%}**.")
    note += (f" Network cost {mflop:.2f} MFLOP per LR pixel. Load average {load_before:.1f} before the runs and "
             f"{os.getloadavg()[0]:.1f} after, on {cpu_description()}.")
    print(note)
    cost = psnr_cost(args.data) if args.data else ""
    print(cost)
    if args.out:
        from srlib.files import write_text

        write_text(args.out, "\n".join(rows) + "\n\n" + note + "\n" + (f"\n{cost}\n" if cost else ""))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
