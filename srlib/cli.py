"""The command line: ``python -m srlib <command>``.

  benchmark   PSNR/SSIM of a model on Set5, Set14, BSD100, Urban100 (the literature's protocol)
  train       run one stage of a training recipe, resuming from the run folder's last checkpoint
  pipeline    run the course notebooks 01-07 with papermill, sized by a profile (smoke, cpu, gpu)
  data shard  write image folders as TFRecord shards for training at scale
  upscale     upscale image files or folders with a shipped model (srresnet-x4, srgan-mse-x4, srresnet-real-x4) or any
              trained generator
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from .errors import SrlibError, Stopped


def _benchmark(args: argparse.Namespace) -> None:
    from .benchmark import ResultCache, find_image, find_set_dir, model_upscaler, run_benchmarks, showcase
    from .files import write_json
    from .images import list_image_files
    from .reporting import SHIPPED_LABELS, format_table, model_note, write_comparison, write_degradation_comparison

    if args.scale < 2:
        raise SrlibError(f"--scale must be 2 or more, got {args.scale}")
    models = list(args.model or ([] if args.weights else ["bicubic"])) + list(args.weights or [])
    if len(set(models)) < len(models):
        raise SrlibError(f"a model is named twice: {' '.join(models)}")
    if (len(models) > 1 or len(args.degradation) > 1) and args.out:
        raise SrlibError("--out takes one model and one degradation; with several, --table also writes every report "
                         "as JSON beside the table")
    if len(set(args.degradation)) < len(args.degradation):
        raise SrlibError(f"a degradation is named twice: {' '.join(args.degradation)}")
    if args.crop_images and not args.crops:
        raise SrlibError("--crop-images chooses the images of --crops: give --crops PNG too")
    # everything that can fail on a name or a file fails here, before the long work
    crop_images = [] if not args.crops else (
        [find_image(args.data, image) for image in args.crop_images] if args.crop_images else
        [list_image_files(find_set_dir(args.data, name), recursive=False)[0] for name in args.sets])
    upscalers, notes, ids = {}, {}, {}
    for model in models:
        upscale, card = model_upscaler(model, args.scale, args.precision)
        label = SHIPPED_LABELS.get(str(model), str(model))
        upscalers[label], notes[label], ids[label] = upscale, model_note(card), str(model)
    cache = None
    if args.results_cache:  # each model with weights: its file and precision
        from .upscale import weights_path

        cache = ResultCache(args.results_cache, {label: (weights_path(ids[label]), args.precision)
                                                 for label in upscalers if ids[label] != "bicubic"})
    by_degradation = {}
    for degradation in args.degradation:
        by_degradation[degradation] = measured = run_benchmarks(
            upscalers, args.data, args.sets, args.scale, save_images=args.save_images, degradation=degradation,
            cache=cache)
        for label, report in measured.items():
            report["model"] = ids[label]
            print(format_table(report))
    if args.out:
        write_json(args.out, next(iter(measured.values())))
        print(f"wrote {args.out}")
    if args.table and len(by_degradation) > 1:
        table = write_degradation_comparison(args.table, by_degradation, args.sets)
        print(f"{table}\nwrote {args.table} and its .json")
    elif args.table:
        table = write_comparison(args.table, measured, notes, args.sets, args.scale)
        print(f"{table}\nwrote {args.table} and its .csv and .json")
    if args.gallery:
        from .benchmark import photo_showcase, public_domain_photos
        from .figures import crops_figure, save_figure

        photos = public_domain_photos()
        save_figure(crops_figure(photo_showcase(photos, upscalers, scale=args.scale), crop=48 * args.scale),
                    args.gallery)
        print(f"wrote {args.gallery} ({', '.join(p.stem for p in photos)})")
    if args.crops:
        from .figures import crops_figure, save_figure

        save_figure(crops_figure(showcase(crop_images, upscalers, args.scale, args.degradation[0])), args.crops)
        print(f"wrote {args.crops} ({', '.join(f'{p.parent.name}/{p.stem}' for p in crop_images)})")


def _train(args: argparse.Namespace) -> None:
    from pathlib import Path

    from .recipes import get_stage, train_config
    from .settings import SettingError, check as check_setting
    from .training import train_stage

    try:  # a bad setting is said as the flag that gave it
        config = train_config({**vars(args), "batch_norm": not args.no_batch_norm})
        check_setting("steps", args.steps)
    except SettingError as error:
        raise SrlibError(error.as_flag()) from None
    stage = config.stage(get_stage(args.recipe, args.stage))
    val_dir = args.val_data
    if val_dir is None:  # a data mirror laid out as <root>/train and <root>/benchmark/Set5
        guess = Path(os.path.realpath(args.data[0])).parent / "benchmark" / "Set5"  # no error on a symlink loop
        val_dir = guess if guess.is_dir() else None
    print(f"{args.recipe}/{stage.name}: {stage.summary}")
    print(f"validation: {val_dir or 'none (give --val-data DIR)'}")
    trainer = train_stage(args.recipe, args.stage, args.data, args.run_dir, args.steps, config, val_data=val_dir,
                          init_generator=args.init_generator, from_scratch=args.from_scratch, restart=args.restart)
    print(f"{args.recipe}/{stage.name}: {trainer.current_step} steps; generator at {Path(args.run_dir) / 'generator.weights.h5'}")


def _data_shard(args: argparse.Namespace) -> None:
    from .settings import SettingError, check as check_setting
    from .shards import write_shards

    try:
        check_setting("images_per_shard", args.images_per_shard)
        check_setting("min_size", args.min_size)
    except SettingError as error:
        raise SrlibError(error.as_flag()) from None
    index = write_shards(args.folders, args.out, images_per_shard=args.images_per_shard, min_size=args.min_size)
    print(f"wrote {index['images']} images in {len(index['shards'])} TFRecord shards to {args.out}"
          + (f"; left out {index['skipped']} (unreadable or smaller than {args.min_size} pixels)" if index["skipped"] else "")
          + f"; train on them with --data {args.out}")


def _pipeline(args: argparse.Namespace) -> None:
    from .pipeline import run_pipeline

    logging.getLogger("papermill").setLevel(logging.WARNING)  # it logs every notebook's paths; we print our own

    executed = run_pipeline(args.profile, args.recipe, data_dir=args.data_dir, source_dir=args.source,
                            out_dir=args.out, notebooks=args.only, progress=not args.quiet,
                            publish_dir=args.publish)
    print(f"{args.profile}/{args.recipe}: {len(executed)} notebooks executed, copies in {executed[-1].parent}")


def _upscale(args: argparse.Namespace) -> None:
    from .upscale import upscale_files

    tile = "auto" if args.tile is None else (args.tile or None)
    done = upscale_files(args.inputs, args.out, weights=args.weights, tile=tile, max_memory=args.max_memory,
                         overwrite=args.overwrite, progress=not args.quiet, precision=args.precision)
    print(f"wrote {len(done['written'])} images to {args.out}"
          + (f"; kept {len(done['kept'])} existing (--overwrite to replace)" if done["kept"] else "")
          + (f"; could not read {len(done['failed'])}: " + ", ".join(str(p) for p, _ in done["failed"])
             if done["failed"] else ""))
    if done["failed"]:
        raise SrlibError(f"{len(done['failed'])} input(s) could not be read")


def _evaluation_degradation(name: str) -> str:
    from .degradation import parse_degradation

    try:
        parse_degradation(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


def build_parser() -> argparse.ArgumentParser:
    from .degradation import DEGRADATIONS
    from .pipeline import PROFILES
    from .precision import PRECISIONS
    from .recipes import CONTENT_LOSSES, RECIPES, TrainConfig
    from .upscale import DEFAULT_MODEL, DEFAULT_PRECISION, SHIPPED

    parser = argparse.ArgumentParser(prog="python -m srlib", description="SRGAN course project tools")
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("benchmark", help="PSNR/SSIM on the standard test sets")
    bench.add_argument("--model", nargs="+", action="extend", choices=["bicubic", *SHIPPED],
                       help="bicubic and/or the shipped models (" + ", ".join(SHIPPED) + "); default: bicubic unless --weights")
    bench.add_argument("--weights", nargs="+", action="extend", metavar="PATH",
                       help="also score these trained generators (.weights.h5 with the .json sidecar)")
    bench.add_argument("--data", required=True, help="folder holding the set folders (or a benchmark/ folder of them)")
    bench.add_argument("--sets", nargs="+", default=["Set5", "Set14", "BSD100"], help="set folder names")
    bench.add_argument("--scale", type=int, default=4, help="upscaling factor (default: 4)")
    bench.add_argument("--precision", default="float32", choices=["float32", "bfloat16"],
                       help="what the generators compute in: float32 (the reference, default) or bfloat16 (faster on "
                            "CPUs with AVX512_BF16 or AMX)")
    bench.add_argument("--degradation", nargs="+", default=["bicubic"], type=_evaluation_degradation, metavar="HOW",
                       help="how the LR inputs are made: bicubic (the literature's, default), realistic (Real-ESRGAN's "
                            "chain, a fixed seed per image), mixed, or jpeg50 / jpeg75 (bicubic, then JPEG at that "
                            "quality); SR is scored against the clean HR. Several: each is measured, and --table "
                            "shows them side by side")
    bench.add_argument("--out", help="write the results of one model as JSON here")
    bench.add_argument("--table", metavar="MD", help="write a Markdown table of the models (beside the published "
                       "figures, at x4) here, and .csv and .json files of the same beside it")
    bench.add_argument("--gallery", metavar="PNG", help="write a figure of the models on real camera JPEGs (public "
                       "domain, shipped with matplotlib and scikit-image) here")
    bench.add_argument("--crops", metavar="PNG", help="write a figure of zoomed crops (LR, each model, HR) here, "
                       "with the first --degradation's LR")
    bench.add_argument("--crop-images", nargs="+", metavar="SET/NAME",
                       help="the images of --crops, e.g. Set14/comic (default: the first image of each set)")
    bench.add_argument("--results-cache", metavar="DIR", help="reuse the per-image results of models (by their "
                       "weights' hash) on sets already scored, kept in DIR, and add new ones (make results: the "
                       "shipped models' own, in srlib/weights/results)")
    bench.add_argument("--save-images", metavar="DIR", help="write each SR image as DIR/<set>/<name>.png "
                       "(DIR/<model>/<set>/<name>.png with several models)")
    bench.set_defaults(run=_benchmark)

    train = commands.add_parser("train", help="train one stage of a recipe (rerun to resume)")
    train.add_argument("--recipe", required=True, choices=list(RECIPES))
    train.add_argument("--stage", required=True, help="; ".join(f"{r}: {', '.join(s)}" for r, s in RECIPES.items()))
    train.add_argument("--data", required=True, nargs="+", help="folders of training images (searched recursively), "
                       "or TFRecord shards: a folder written by `python -m srlib data shard`, or a pattern of its files")
    train.add_argument("--steps", required=True, type=int, help="train this stage until it has done this many steps")
    train.add_argument("--run-dir", required=True, help="folder for checkpoints, history.jsonl, TensorBoard logs and weights")
    defaults = TrainConfig()
    train.add_argument("--content-loss", choices=list(CONTENT_LOSSES),
                       help="the generator's content loss: mse (pixels), vgg22 / vgg54 (VGG19, the paper's), vgg16_22 / "
                            "vgg16_53 (VGG16, the report's); default: the stage's own")
    train.add_argument("--adversarial-weight", type=float, metavar="W", help="weight of the adversarial term (paper: 1e-3)")
    train.add_argument("--tv-weight", type=float, metavar="W", help="weight of the total-variation term (report: 1e-3)")
    train.add_argument("--label-smoothing", type=float, metavar="S", help="real images are labelled 1 - S for the discriminator")
    train.add_argument("--label-flip", type=float, metavar="P", help="each discriminator label is swapped with probability P")
    train.add_argument("--vgg-weights", default=defaults.vgg_weights, help="imagenet (Keras download), a local .h5 file, none (random), or auto (imagenet when it can be loaded, else random)")
    train.add_argument("--scale", type=int, default=defaults.scale, choices=[2, 4, 8])
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--patch-size", type=int, default=defaults.patch_size, help="HR patch size (default: %(default)s)")
    train.add_argument("--blocks", type=int, default=defaults.blocks, help="residual blocks (default: %(default)s)")
    train.add_argument("--filters", type=int, default=defaults.filters, help="filters per conv (default: %(default)s)")
    train.add_argument("--no-batch-norm", action="store_true", help="a generator without batch norm")
    train.add_argument("--learning-rate", type=float, help="override the stage's learning rate (also when resuming: a lower rate to finish a run)")
    train.add_argument("--checkpoint-every", type=int, default=defaults.checkpoint_every, metavar="S")
    train.add_argument("--validate-every", type=int, default=defaults.validate_every, metavar="K", help="validate and save a sample every K steps")
    train.add_argument("--val-data", help="HR images to validate on (default: <data>/../benchmark/Set5 when there)")
    train.add_argument("--val-images", type=int, default=defaults.val_images, help="validate on at most this many images")
    train.add_argument("--init-generator", help="start a new stage from these generator weights (with their .json card)")
    train.add_argument("--from-scratch", action="store_true",
                       help="let a later stage start from random weights when the previous stage's are missing")
    train.add_argument("--restart", action="store_true",
                       help="move this stage's existing files aside (<stage>.replaced-<time>) and train it again from step 0")
    train.add_argument("--warmup-steps", type=int, default=defaults.warmup_steps, metavar="N",
                       help="a learning-rate warm-up: raise the rate linearly over the stage's first N steps, for a stage that starts "
                            "from trained weights (Adam's first updates are about the full rate per weight); default: "
                            "%(default)s")
    train.add_argument("--ema", type=float, metavar="DECAY", help="validate and export an exponential moving average of the generator, e.g. 0.999; can be added when resuming")
    train.add_argument("--precision", default=defaults.precision, choices=PRECISIONS,
                       help="what the networks compute in: bfloat16 (twice the float32 speed on CPUs with AVX512_BF16 "
                            "or AMX and on Ampere+ GPUs; float32 elsewhere), float32, or mixed_float16 (older GPUs); "
                            "default: %(default)s")
    train.add_argument("--xla", action=argparse.BooleanOptionalAction, default=defaults.xla,
                       help="compile the training step with XLA or not; default: auto, which is on GPUs and for "
                            "mixed_float16 and otherwise, on CPUs, only for float32 stages with a discriminator on one "
                            "device (it makes float32 GAN runs repeat). On the AVX-512 CPUs measured XLA was slower and "
                            "gained nothing from bfloat16; on the AVX2-only CPU measured it made float32 steps faster, "
                            "so pass --xla there for long runs (benchmarks/bench_train_step.py --compare-xla)")
    train.add_argument("--degradation", default=defaults.degradation, choices=DEGRADATIONS,
                       help="how the LR patches are made: bicubic (MATLAB's, what the benchmarks measure), realistic "
                            "(Real-ESRGAN's random blur, resize, noise and JPEG, twice) or mixed (realistic for 60%% "
                            "of the patches, bicubic for 20%%, bicubic + JPEG for 20%%: for real photos, what "
                            "srresnet-real-x4 learned); default: %(default)s")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.set_defaults(run=_train)

    data = commands.add_parser("data", help="prepare training data").add_subparsers(dest="action", required=True)
    shard = data.add_parser("shard", help="write image folders as TFRecord shards of encoded PNG/JPEG (train with "
                                          "--data SHARD_FOLDER)")
    shard.add_argument("folders", nargs="+", metavar="FOLDER", help="folders of training images (searched recursively)")
    shard.add_argument("-o", "--out", required=True, help="a new folder for the shards and their shards.json index")
    shard.add_argument("--images-per-shard", type=int, default=256, metavar="N",
                       help="images per shard file (default: %(default)s; aim at 100-200 MB per shard)")
    shard.add_argument("--min-size", type=int, default=96, metavar="PIXELS",
                       help="leave out images with a side below this: the largest patch size to train on "
                            "(default: %(default)s)")
    shard.set_defaults(run=_data_shard)

    pipe = commands.add_parser("pipeline", help="run the notebooks 01-07 in order with papermill")
    pipe.add_argument("--profile", default="cpu", choices=list(PROFILES),
                      help="smoke (CI, minutes), cpu (the demo, ~10 min on 2 cores), gpu (one sitting on one GPU, the "
                           "paper's GAN from the shipped SRResNet), gpu-full (the report's scale, days)")
    pipe.add_argument("--recipe", default="report", choices=list(RECIPES))
    pipe.add_argument("--source", metavar="DIR", help="copy the data from this mirror (benchmark/<set>, train/<set>) "
                                                      "instead of downloading")
    pipe.add_argument("--data-dir", default="data", help="where the data go (default: data)")
    pipe.add_argument("--out", help="folder for the executed notebooks and the run (default: runs/<profile>/<recipe>)")
    pipe.add_argument("--only", nargs="+", metavar="NN", help="run only the notebooks starting with these (e.g. 05 06)")
    pipe.add_argument("--publish", metavar="DIR", help="also write each executed notebook here, to be read on GitHub")
    pipe.add_argument("--quiet", action="store_true", help="no progress bars")
    pipe.set_defaults(run=_pipeline)

    up = commands.add_parser("upscale", help="upscale images (files or folders) to PNGs")
    up.add_argument("inputs", nargs="+", metavar="IN", help="image files or folders of images")
    up.add_argument("-o", "--out", required=True, help="folder for the PNGs (named after the inputs)")
    up.add_argument("--weights", default=DEFAULT_MODEL, help="a shipped model (" + ", ".join(SHIPPED) +
                    f"; default {DEFAULT_MODEL}) or a .weights.h5 file")
    up.add_argument("--tile", type=int, help="LR pixels per window before context, instead of the size --max-memory "
                    "allows (0: the whole image at once)")
    up.add_argument("--max-memory", default="2G", metavar="SIZE", help="memory for the windows and the output rows "
                    "being written, beyond TensorFlow's own ~1 GB (default: 2G; e.g. 500M, 8G)")
    up.add_argument("--precision", default=DEFAULT_PRECISION, choices=["float32", "bfloat16"],
                    help="bfloat16: about twice as fast on CPUs with AVX512_BF16 or AMX, PSNR within 0.01 dB of "
                         "float32 (float32 where the hardware lacks it); default: %(default)s")
    up.add_argument("--overwrite", action="store_true", help="replace outputs that already exist")
    up.add_argument("--quiet", action="store_true", help="no progress bar")
    up.set_defaults(run=_upscale)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("srlib").setLevel(logging.INFO)  # ours; TensorFlow's absl notes stay out
    try:
        args.run(args)
    except Stopped as stopped:
        print(stopped, file=sys.stderr)
        return stopped.exit_code
    except SrlibError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # an output path that cannot be written, a full disk, ...
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
