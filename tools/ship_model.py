"""Put a trained generator into the package as the shipped model, with its measured figures.

    python tools/ship_model.py runs/paper_x4/generator.weights.h5 --data ../shared/data

Runs `python -m srlib benchmark --weights SOURCE` on Set5, Set14, BSD100 and Urban100, then writes
`srlib/weights/srresnet_x4.weights.h5` and its sidecar `srresnet_x4.json` (architecture, recipe, training
data, steps, training settings and the figures the command measured), both atomically. Refuses a
generator that is not x4, or that was trained against random VGG features.
"""

import argparse
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

from srlib.cli import main as srlib_main
from srlib.files import atomic_path, write_json
from srlib.models import sidecar_path
from srlib.upscale import SHIPPED

SETS = ["Set5", "Set14", "BSD100", "Urban100"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a trained generator (.weights.h5 with its .json sidecar)")
    parser.add_argument("--data", required=True, help="folder holding benchmark/{Set5,Set14,BSD100,Urban100}")
    parser.add_argument("--name", default="srresnet-x4", choices=sorted(SHIPPED))
    args = parser.parse_args()
    source = Path(args.source)
    metadata = json.loads(sidecar_path(source).read_text())
    if metadata.get("architecture", {}).get("scale") != 4:
        sys.exit(f"{source} is not a x4 generator: {metadata.get('architecture')}")
    if metadata.get("vgg_weights") == "random":
        sys.exit(f"{source} was trained against random VGG features: not shipped")
    with tempfile.TemporaryDirectory() as tmp:
        report_path = Path(tmp) / "report.json"
        command = ["benchmark", "--weights", str(source), "--data", args.data, "--sets", *SETS, "--out", str(report_path)]
        if srlib_main(command) != 0:
            return 1
        report = json.loads(report_path.read_text())
    target = SHIPPED[args.name]
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    write_json(sidecar_path(target), {
        "name": args.name,
        "architecture": metadata["architecture"],
        "recipe": metadata.get("recipe"),
        "stage": metadata.get("stage"),
        "steps": metadata.get("steps"),
        "training_data": metadata.get("training_data"),
        "config": metadata.get("config"),
        "benchmark": {name: {k: row[k] for k in ("psnr", "ssim", "n")} for name, row in report["results"].items()},
        "benchmark_command": "python -m srlib " + " ".join(command[:-2]),
        "protocol": report["protocol"],
        "shipped": datetime.date.today().isoformat(),
    })
    print(f"wrote {target} and {sidecar_path(target)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
