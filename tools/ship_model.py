"""Put a trained generator into the package as the shipped model, with its measured figures.

    python tools/ship_model.py runs/paper_x4/generator.weights.h5 --data ../shared/data [--name srgan-mse-x4]
        [--calibrate-colour ../shared/data/train/T91 ../shared/data/train/BSD200]

With `--calibrate-colour FOLDER...`, first removes the generator's mean colour shift measured on the HR images in
those folders, its training images (`srlib.benchmark.colour_offset`, `srlib.models.shift_colour`): the bias of its
last conv moves by minus the mean over those images of SR - HR per channel, which is the bias with the least pixel
MSE on them, each image weighted alike, with every other weight fixed (and no pixel clipped). A GAN's adversarial
term can tint the output by a grey level or so, which the pixel MSE barely resists (a uniform shift of one grey
level adds 6e-5 to it). A benchmark image among them (by path or by content) is refused. The card records the
shift removed.

Runs `python -m srlib benchmark --weights` on the generator (calibrated or not) for Set5, Set14, BSD100 and
Urban100, then writes the file of `--name` in `srlib/weights/` (srresnet_x4.weights.h5 by default,
srgan_mse_x4.weights.h5 for srgan-mse-x4) and its sidecar (architecture, recipe, training data, steps, what it
started from, training settings, the figures the command measured and the commands, with no machine-local paths
beyond the ones given), both atomically. A generator trained on another degradation than bicubic (e.g.
`--degradation mixed`) is also scored on Set14 and BSD100 degraded by `realistic`, `jpeg50` and `jpeg75`
(`benchmark_degraded` in its card, with the chain's settings). Refuses a generator that is not x4, or that was trained against random
VGG features.
"""

import argparse
import dataclasses
import datetime
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

from srlib.benchmark import colour_offset, find_set_dir
from srlib.cli import main as srlib_main
from srlib.errors import SrlibError
from srlib.files import atomic_path, write_json
from srlib.images import list_image_files
from srlib.model_card import ModelCard, card_path, embed
from srlib.models import load_generator, save_generator, shift_colour, upscale_with
from srlib.upscale import DEFAULT_MODEL, SHIPPED

SETS = ["Set5", "Set14", "BSD100", "Urban100"]
# a model trained on another degradation than bicubic is also scored on these sets' degraded copies
DEGRADED, DEGRADED_SETS = ("realistic", "jpeg50", "jpeg75"), ["Set14", "BSD100"]


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
    try:
        ModelCard.read(source)  # an error naming both files when the sidecar describes other weights
    except SrlibError as error:
        print(f"error: {error}", file=sys.stderr)
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
    degraded = {}
    if (card.config or {}).get("degradation", "bicubic") != "bicubic":  # a model for real photos: their sets too
        table = snapshot.with_name("degraded.md")
        if srlib_main([*command[:5], "--sets", *DEGRADED_SETS, "--degradation", *DEGRADED, "--table", str(table)]):
            return 1
        degraded = {r["degradation"]: r for r in json.loads(table.with_suffix(".json").read_text())["reports"]}
    target = SHIPPED[args.name]
    target.parent.mkdir(parents=True, exist_ok=True)
    training_data = _without_folders(card.training_data or {})  # not local paths
    origin = dict(card.initialised_from or {}) or None
    if origin and Path(origin.get("weights", "")).is_absolute():  # relative to the checkout, or the file's name
        weights = Path(origin["weights"])
        root = Path(__file__).resolve().parent.parent
        origin["weights"] = str(weights.relative_to(root)) if weights.is_relative_to(root) else weights.name
    shipped = ModelCard(
        architecture=card.architecture, name=args.name, recipe=card.recipe, stage=card.stage, steps=card.steps,
        training_data=training_data or None, initialised_from=origin, vgg_weights=card.vgg_weights,
        config=card.config, learning_rates=card.learning_rates, precisions=card.precisions, emas=card.emas,
        benchmark={name: {k: row[k] for k in ("psnr", "ssim", "detail", "colour", "n")} for name, row in report["results"].items()},
        extra={**{k: v for k, v in card.extra.items() if k == "colour_calibration"},
               # the weights shipped are the source's unless calibrated; then the command names the shipped model
               "benchmark_command": " ".join(["python -m srlib benchmark",
                                              *(["--model", args.name] if args.calibrate_colour else ["--weights", str(source)]),
                                              *command[3:-2]]),
               "ship_command": " ".join(["python tools/ship_model.py", str(source), "--data", args.data,
                                         "--name", args.name,
                                         *(["--calibrate-colour", *args.calibrate_colour] if args.calibrate_colour else [])]),
               "protocol": report["protocol"], "shipped": datetime.date.today().isoformat(),
               **({"benchmark_degraded": {d: {"lr": r["protocol"]["lr"], **{
                   name: {k: row[k] for k in ("psnr", "ssim", "detail", "colour", "n")}
                   for name, row in r["results"].items()}} for d, r in degraded.items()},
                   "realistic_evaluation": degraded["realistic"]["protocol"]["realistic"]} if degraded else {})})
    # both files are complete before either replaces the old ones (the card first, then the weights); the weights
    # file holds the shipped card too (its arrays as they were), so that loaders can tell the pair belongs together
    with atomic_path(target) as weights_tmp, atomic_path(card_path(target)) as card_tmp:
        shutil.copyfile(snapshot, weights_tmp)
        embed(weights_tmp, shipped)
        write_json(card_tmp, shipped.to_dict())
    print(f"wrote {target} and {card_path(target)}")
    return 0


def _without_folders(training_data: dict) -> dict:
    """``training_data`` (a card's) without the folders it names, machine-local paths, in its parts too."""
    kept = {k: v for k, v in training_data.items() if k != "folders"}
    if isinstance(kept.get("segments"), list):
        kept["segments"] = [_without_folders(s) if isinstance(s, dict) else s for s in kept["segments"]]
    return kept


def _calibrate_colour(snapshot: Path, card: ModelCard, args) -> tuple[Path, ModelCard]:
    """The generator at ``snapshot`` with its mean colour shift on the images of ``args.calibrate_colour``
    removed, saved beside it, and its card (which records the shift)."""
    if "colour_calibration" in card.extra:
        raise SrlibError(f"{args.source} is colour-calibrated already: ship the generator it was made from")
    files = [path for folder in args.calibrate_colour for path in list_image_files(folder)]
    if not files:
        raise SrlibError(f"no images in {', '.join(args.calibrate_colour)} to calibrate the colour on")
    _refuse_benchmark_images(files, args.data)
    model = load_generator(snapshot)
    offset, scored = colour_offset(upscale_with(model), files, card.architecture["scale"])
    shift_colour(model, -offset)
    card = dataclasses.replace(card, extra={**card.extra, "colour_calibration": {
        "images": scored, "folders": [Path(folder).name for folder in args.calibrate_colour],
        "removed": [round(float(c), 3) for c in offset],
        "how": "the mean over these images of SR - HR per channel (R, G, B, grey levels), scored as the benchmark "
               "does, subtracted through the last conv's bias (srlib.models.shift_colour)"}})
    calibrated = snapshot.parent / "calibrated" / snapshot.name
    calibrated.parent.mkdir()
    save_generator(model, calibrated, card)
    print(f"colour calibrated on {scored} images: removed R, G, B "
          f"{', '.join(f'{c:+.2f}' for c in offset)} grey levels")
    return calibrated, card


def _refuse_benchmark_images(files: list[Path], data: str) -> None:
    """An error naming the first of ``files`` that lies in a benchmark set's folder or has the bytes of an image
    there (a copy or a link): calibrating on it would fit the test."""
    set_dirs = [find_set_dir(data, name).resolve() for name in SETS]
    tests = {_digest(path) for folder in set_dirs for path in list_image_files(folder)}
    for path in files:
        if any(path.resolve().is_relative_to(folder) for folder in set_dirs) or _digest(path) in tests:
            raise SrlibError(f"{path} is a benchmark image: calibrating on it would fit the test; "
                             "give the training images")


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


if __name__ == "__main__":
    sys.exit(main())
