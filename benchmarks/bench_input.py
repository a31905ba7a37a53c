"""Patches per second that the input pipeline alone delivers (LR made in the graph included), against the
training step's demand.

    python benchmarks/bench_input.py [--data ../shared/data/train] [--patches 480]
                                     [--degradation bicubic realistic] [--on-the-fly] [--shards]

For each degradation (``--degradation``, the training setting) and each profile's patch size (cpu: HR 64,
gpu: HR 96), the patches per second of ``training_dataset`` from images cached in memory (small sets such as
T91 + BSD200); ``--on-the-fly`` adds the same images as JPEG files decoded on the fly (the COCO / DIV2K case).
The demand is the profile's batch size / seconds per step of its network in the default precision, read
from figures/bench_train_precision.md (benchmarks/bench_train_step.py --compare-precision), for the
pretraining and the GAN step. On 2 cores the pipeline and the step share the cores, so the pipeline
needs a margin above the demand, not just to reach it: "CPU ms/patch" (all threads) is the steadier figure
on a busy machine, and 2000 / it the rate two otherwise idle cores would reach.

``--shards`` instead compares, in images per second (each patch decodes one image), the folder of PNGs decoded
file by file (what a set too large for memory gets) against the same images as TFRecord shards
(``python -m srlib data shard``) read with parallel interleave, at the gpu profile's patch and batch.
"""

import argparse
import re
import tempfile
import time
from pathlib import Path

from PIL import Image

from srlib.data import PatchSource, patches_per_second
from srlib.degradation import DEGRADATIONS
from srlib.errors import ImageReadError
from srlib.images import list_image_files, read_image
from srlib.pipeline import PROFILES
from srlib.precision import DEFAULT_PRECISION

STEP_FIGURES = Path(__file__).resolve().parent.parent / "figures" / "bench_train_precision.md"


def images_per_second(data: str, images: int, repeats: int = 2) -> dict[str, tuple[float, float]]:
    """{"PNG folder": (images/s, CPU ms/image), "TFRecord shards": (...)}: the gpu profile's patches with bicubic LR,
    from the PNGs under ``data`` decoded on the fly and from TFRecord shards of them, each the best of ``repeats``."""
    from srlib.shards import ShardSource, write_shards

    size, batch = PROFILES["gpu"]["patch_size"], PROFILES["gpu"]["batch_size"]
    with tempfile.TemporaryDirectory() as folder:
        write_shards([data], Path(folder) / "shards", images_per_shard=64, min_size=size)
        sources = {"PNG folder": PatchSource([data], patch_size=size, cache=False),
                   "TFRecord shards": ShardSource(Path(folder) / "shards", patch_size=size)}
        return {how: max((patches_per_second(source, images, batch) for _ in range(repeats)), key=lambda r: r[0])
                for how, source in sources.items()}


def step_demand(profile: str, path: Path = STEP_FIGURES) -> dict[str, float]:
    """{"pretrain": patches/s, "GAN": patches/s} that ``profile``'s training step consumes in the default
    precision, from the step benchmark's table (empty when the table or the profile's rows are missing)."""
    if not path.is_file():
        return {}
    header, demand = None, {}
    for line in path.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if header is None and "step" in cells:
            header = cells
        elif header and len(cells) == len(header) and cells[0].startswith(f"{profile}:"):
            column = next((i for i, name in enumerate(header) if name.startswith(DEFAULT_PRECISION)), None)
            batch = re.search(r"batch (\d+)", cells[0])
            if column is not None and batch:
                demand[cells[header.index("step")]] = int(batch.group(1)) / float(cells[column])
    return demand


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--patches", type=int, default=480, help="patches timed per case (default: %(default)s)")
    parser.add_argument("--degradation", nargs="+", choices=DEGRADATIONS, default=["bicubic", "realistic"])
    parser.add_argument("--profiles", nargs="+", choices=["cpu", "gpu"], default=["cpu", "gpu"])
    parser.add_argument("--on-the-fly", action="store_true", help="also time JPEG files decoded on the fly")
    parser.add_argument("--shards", action="store_true", help="compare TFRecord shards with the folder of PNGs instead")
    args = parser.parse_args()

    if args.shards:
        print("| source (gpu profile: HR 96, batch 16, bicubic) | images/s | CPU ms/image |\n|---|---|---|")
        for how, (rate, cpu_ms) in images_per_second(args.data, args.patches).items():
            print(f"| {how} | {rate:.0f} | {cpu_ms:.2f} |", flush=True)
        return

    print("| profile | HR patch | degradation | images | patches/s | CPU ms/patch | 2 cores / CPU time (patches/s) "
          f"| step demand (patches/s, {DEFAULT_PRECISION}) |\n|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        if args.on_the_fly:
            for i, path in enumerate(list_image_files(args.data)):
                try:
                    image = read_image(path)
                except ImageReadError:
                    continue
                Image.fromarray(image).save(Path(folder) / f"{i:06d}.jpg", quality=90)
        for profile in args.profiles:
            size, batch = PROFILES[profile]["patch_size"], PROFILES[profile]["batch_size"]
            demand = ", ".join(f"{step} {value:.0f}" for step, value in step_demand(profile).items()) or "?"
            sources = {"cached": PatchSource([args.data], patch_size=size, cache=True)}
            if args.on_the_fly:
                sources["JPEG on the fly"] = PatchSource([folder], patch_size=size, cache=False)
            for degradation in args.degradation:
                for how, source in sources.items():
                    rate, cpu_ms = patches_per_second(source, args.patches, batch, degradation)
                    print(f"| {profile} | {size} | {degradation} | {how} | {rate:.0f} | {cpu_ms:.2f} | "
                          f"{2000 / cpu_ms:.0f} | {demand} |", flush=True)


if __name__ == "__main__":
    main()
