"""Put a trained generator into the package as the shipped model, with its measured figures.

    python tools/ship_model.py runs/paper_x4/generator.weights.h5 --data ../shared/data [--name srgan-mse-x4]
        [--calibrate-colour ../shared/data/train]

With `--calibrate-colour FOLDER...`, first removes the generator's mean colour shift measured on the HR images in
those folders (its training images; never a benchmark set, which is refused): the bias of its last conv becomes the
one that minimises the pixel MSE on them with every other weight fixed (`srlib.models.shift_colour`). A GAN's
adversarial term can tint the output by a grey level or so, which pixel MSE, weighted 10^3 times more but
quadratic in the shift, barely resists; the card records the shift removed.

Runs `python -m srlib benchmark --weights SOURCE` on Set5, Set14, BSD100 and Urban100, then writes the file of
`--name` in `srlib/weights/` (srresnet_x4.weights.h5 by default, srgan_mse_x4.weights.h5 for srgan-mse-x4) and its
sidecar (architecture, recipe, training data, steps, what it started from, training settings and the figures the
command measured, with no machine-local paths), both atomically. Refuses a generator that is not x4, or that was
trained against random VGG features.
"""

import argparse
import dataclasses
import datetime
import json
import shutil
import sys
import tempfile
from pathlib import Path

from srlib.benchmark import colour_offset, find_set_dir
from srlib.cli import main as srlib_main
from srlib.errors import SrlibError
from srlib.images import list_image_files
from srlib.models import load_generator, save_generator, shift_colour, upscale_with
from srlib.files import atomic_path, write_json
from srlib.model_card import ModelCard, card_path
from srlib.upscale import DEFAULT_MODEL, SHIPPED

SETS = ["Set5", "Set14", "BSD100", "Urban100"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", help="a trained generator (.weights.h5 with its .json sidecar)")
    parser.add_argument("--data", required=True, help="folder holding benchmark/{Set5,Set14,BSD100,Urban100}")
    parser.add_argument("--name", default=DEFAULT_MODEL, choices=sorted(SHIPPED))
    parser.add_argument("--calibrate-colour", nargs="+", metavar="FOLDER",
                        help="remove the mean colour shift measured on the HR images in these folders (training images)")
    args = parser.parse_args(argv)
    source = Path(args.source)
    if not source.is_file() or not card_path(source).is_file():
        print(f"error: {source} or its sidecar {card_path(source).name} does not exist", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        # a snapshot: a training run may export new weights to `source` while the benchmark runs
        snapshot = Path(tmp) / source.name
        shutil.copyfile(source, snapshot)
        shutil.copyfile(card_path(source), card_path(snapshot))
        code = _ship(snapshot, source, args)
    return code


def _ship(snapshot: Path, source: Path, args) -> int:
    card = ModelCard.read(snapshot)
    refusal = (f"{source} is not a x4 generator: {card.architecture}" if card.architecture["scale"] != 4 else
               f"{source} was trained against random VGG features: not shipped" if card.random_vgg else None)
    if refusal:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    if args.calibrate_colour:
        try:
            snapshot, card = _calibrate_colour(snapshot, card, args)
        except SrlibError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    report_path = snapshot.with_name("report.json")
    command = ["benchmark", "--weights", str(snapshot), "--data", args.data, "--sets", *SETS, "--out", str(report_path)]
    if srlib_main(command) != 0:
        return 1
    report = json.loads(report_path.read_text())
    target = SHIPPED[args.name]
    target.parent.mkdir(parents=True, exist_ok=True)
    training_data = {k: v for k, v in (card.training_data or {}).items() if k != "folders"}  # not local paths
    origin = dict(card.initialised_from or {}) or None
    if origin and Path(origin.get("weights", "")).is_absolute():  # relative to the checkout, or the file's name
        weights = Path(origin["weights"])
        root = Path(__file__).resolve().parent.parent
        origin["weights"] = str(weights.relative_to(root)) if weights.is_relative_to(root) else weights.name
    shipped = ModelCard(
        architecture=card.architecture, name=args.name, recipe=card.recipe, stage=card.stage, steps=card.steps,
        training_data=training_data or None, initialised_from=origin, vgg_weights=card.vgg_weights,
        config=card.config, learning_rates=card.learning_rates,
        benchmark={name: {k: row[k] for k in ("psnr", "ssim", "detail", "colour", "n")} for name, row in report["results"].items()},
        # the weights shipped are the source's unless calibrated; then the command names the shipped model
        extra={**{k: v for k, v in card.extra.items() if k == "colour_calibration"},
               "benchmark_command": " ".join(["python -m srlib benchmark",
                                              *(["--model", args.name] if args.calibrate_colour else ["--weights", str(source)]),
                                              *command[3:-2]]),
               "protocol": report["protocol"], "shipped": datetime.date.today().isoformat()})
    # both files are complete before either replaces the old ones (the card first, then the weights)
    with atomic_path(target) as weights_tmp, atomic_path(card_path(target)) as card_tmp:
        shutil.copyfile(snapshot, weights_tmp)
        write_json(card_tmp, shipped.to_dict())
    print(f"wrote {target} and {card_path(target)}")
    return 0


def _calibrate_colour(snapshot: Path, card: ModelCard, args) -> tuple[Path, ModelCard]:
    """The generator at ``snapshot`` with its mean colour shift on the images of ``args.calibrate_colour``
    removed, saved beside it, and its card (which records the shift)."""
    tests = {p.resolve() for name in SETS for p in list_image_files(find_set_dir(args.data, name), recursive=False)}
    files = [path for folder in args.calibrate_colour for path in list_image_files(folder)]
    if not files:
        raise SrlibError(f"no images in {', '.join(args.calibrate_colour)} to calibrate the colour on")
    clash = next((path for path in files if path.resolve() in tests), None)
    if clash is not None:
        raise SrlibError(f"{clash} is a benchmark image: calibrating on it would fit the test; give the training images")
    model = load_generator(snapshot)
    offset = colour_offset(upscale_with(model), files, card.architecture["scale"])
    shift_colour(model, -offset)
    card = dataclasses.replace(card, extra={**card.extra, "colour_calibration": {
        "images": len(files), "folders": [Path(folder).name for folder in args.calibrate_colour],
        "removed": [round(float(c), 3) for c in offset],
        "how": "the mean over these images of SR - HR per channel (R, G, B, grey levels), scored as the benchmark "
               "does, subtracted through the last conv's bias (srlib.models.shift_colour)"}})
    calibrated = snapshot.parent / "calibrated" / snapshot.name
    calibrated.parent.mkdir()
    save_generator(model, calibrated, card)
    print(f"colour calibrated on {len(files)} images: removed R, G, B "
          f"{', '.join(f'{c:+.2f}' for c in offset)} grey levels")
    return calibrated, card


if __name__ == "__main__":
    sys.exit(main())
