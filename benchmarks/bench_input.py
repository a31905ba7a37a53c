"""HR-96 patches per second that the input pipeline alone delivers (LR made in the graph included).

    python benchmarks/bench_input.py [--data ../shared/data/train] [--batches 200]

Two cases: the images decoded once and cached in memory (small sets such as T91 + BSD200), and the
same images as JPEG files decoded on the fly (the COCO / DIV2K case). Compare with the trainer's
patches per second (batch / seconds per step) to see whether the pipeline keeps a GPU fed.
"""

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from srlib.data import PatchSource, training_dataset
from srlib.errors import ImageReadError
from srlib.images import list_image_files, read_image


def patches_per_second(source: PatchSource, batches: int, batch_size: int = 16) -> float:
    dataset = iter(training_dataset(source, scale=4, batch_size=batch_size))
    for _ in range(5):  # warm up: threads, autotuning
        next(dataset)
    start = time.perf_counter()
    for _ in range(batches):
        next(dataset)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/train")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()

    cached = PatchSource([args.data], patch_size=96, cache=True)
    print(f"in-memory cache ({len(cached)} images): {patches_per_second(cached, args.batches):8.0f} patches/s")
    with tempfile.TemporaryDirectory() as folder:
        for i, path in enumerate(list_image_files(args.data)):
            try:
                image = read_image(path)
            except ImageReadError:
                continue
            Image.fromarray(image).save(Path(folder) / f"{i:06d}.jpg", quality=90)
        streamed = PatchSource([folder], patch_size=96, cache=False)
        print(f"JPEG decoded on the fly ({len(streamed)} files): {patches_per_second(streamed, args.batches):8.0f} patches/s")


if __name__ == "__main__":
    main()
