"""Figures of one training run from its history: the discriminator (loss, accuracy on HR and SR), the share of
each weighted term in the generator loss, and the validation PSNR.

    python tools/plot_history.py runs/srgan_mse_x4/history.jsonl --stage gan --out figures/srgan_mse_x4
        [--window 100]

writes ``<out>_discriminator.png``, ``<out>_loss_shares.png`` and ``<out>_validation.png``.
"""

import argparse
from pathlib import Path

from srlib import plots
from srlib.figures import save_figure
from srlib.run_folder import HistoryLog


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", help="a run's history.jsonl")
    parser.add_argument("--stage", required=True, help="the stage to plot, e.g. gan")
    parser.add_argument("--out", required=True, help="prefix of the PNG files")
    parser.add_argument("--window", type=int, default=plots.SMOOTHING, help="steps in the moving average")
    args = parser.parse_args()
    rows = HistoryLog(Path(args.history)).rows()
    figures = {"discriminator": plots.plot_discriminator(rows, args.stage, window=args.window),
               "loss_shares": plots.plot_loss_shares(rows, args.stage, window=args.window),
               "validation": plots.plot_validation([r for r in rows if r.get("stage") == args.stage])}
    for name, fig in figures.items():
        if fig is not None:
            print("wrote", save_figure(fig, f"{args.out}_{name}.png"))


if __name__ == "__main__":
    main()
