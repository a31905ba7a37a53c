"""The command line: ``python -m srlib <command>``.

  benchmark   PSNR/SSIM of a model on Set5, Set14, BSD100, Urban100 (the literature's protocol)
"""

from __future__ import annotations

import argparse
import logging
import sys

from .errors import SrlibError


def _benchmark(args: argparse.Namespace) -> None:
    from .benchmark import bicubic_upscaler, format_table, run_benchmark
    from .files import write_json

    if args.scale < 2:
        raise SrlibError(f"--scale must be 2 or more, got {args.scale}")
    upscale = bicubic_upscaler(args.scale)  # the only model until trained generators exist
    report = run_benchmark(
        upscale, args.data, args.sets, args.scale, model_name=args.model, save_images=args.save_images
    )
    print(format_table(report))
    if args.out:
        write_json(args.out, report)
        print(f"wrote {args.out}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m srlib", description="SRGAN course project tools")
    commands = parser.add_subparsers(dest="command", required=True)

    bench = commands.add_parser("benchmark", help="PSNR/SSIM on the standard test sets")
    bench.add_argument("--model", default="bicubic", choices=["bicubic"], help="model to score (default: bicubic)")
    bench.add_argument("--data", required=True, help="folder holding the set folders (or a benchmark/ folder of them)")
    bench.add_argument("--sets", nargs="+", default=["Set5", "Set14", "BSD100"], help="set folder names")
    bench.add_argument("--scale", type=int, default=4, help="upscaling factor (default: 4)")
    bench.add_argument("--out", help="write the results as JSON here")
    bench.add_argument("--save-images", metavar="DIR", help="write each SR image as DIR/<set>/<name>.png")
    bench.set_defaults(run=_benchmark)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args.run(args)
    except SrlibError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
