"""Does bfloat16 train as well as float32? The same pretraining run in each precision, with several seeds.

    python benchmarks/bench_precision_curves.py [--data ../shared/data] [--steps 1000] [--seeds 0 1 2]
                                                [--out figures/precision_curves]

Each run is the cpu profile's pretraining (SRResNet with 8 blocks x 32 filters, batch norm, batch 16, HR 64,
pixel MSE at 1e-3, EMA 0.99) on T91 + BSD200, validated on Set5 every 100 steps, in its own run folder
under ``runs/precision_curves/`` (rerunning resumes or reuses finished runs). The seeds give the run-to-run
spread of one precision: the curves of the two precisions agree when their difference is within it.
Prints the validation PSNR of every run at each validation and the spread, and writes ``OUT.png`` (the
curves), ``OUT.md`` (the table) and ``OUT.json`` (the numbers).
"""

import argparse
import json
import statistics
from pathlib import Path

from srlib.files import write_json, write_text
import matplotlib.pyplot as plt

from srlib.figures import save_figure
from srlib.plots import read_history, series
from srlib.recipes import TrainConfig
from srlib.training import train_stage

PRECISIONS = ("float32", "bfloat16")


def plot_agreement(finals: dict, seeds: list[int]):
    """Left: each run's validation PSNR (float32 solid, bfloat16 dashed, one colour per seed). Right: bfloat16
    minus float32 for each seed, against the spread (max - min) of the float32 seeds, drawn around zero."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    steps = sorted(set.intersection(*(set(by_step) for runs in finals.values() for by_step in runs.values())))
    for colour, seed in zip(colours, seeds):
        for precision, style in (("float32", "-"), ("bfloat16", "--")):
            left.plot(steps, [finals[precision][seed][s] for s in steps], style, color=colour, marker="o",
                      markersize=3, label=f"{precision}, seed {seed}")
        right.plot(steps, [finals["bfloat16"][seed][s] - finals["float32"][seed][s] for s in steps], "o-",
                   color=colour, markersize=3, label=f"seed {seed}")
    spread = [max(finals["float32"][seed][s] for seed in seeds) - min(finals["float32"][seed][s] for seed in seeds)
              for s in steps]
    right.fill_between(steps, [-x for x in spread], spread, color="grey", alpha=0.25,
                       label="± the spread of the float32 seeds")
    right.axhline(0, color="grey", linewidth=1)
    left.set(xlabel="training step", ylabel="validation PSNR on Set5 (dB)", title="each run")
    left.set_ylim(bottom=min(finals["float32"][seeds[0]][s] for s in steps[len(steps) // 3:]) - 0.5)
    right.set(xlabel="training step", ylabel="bfloat16 − float32 (dB)", title="bfloat16 − float32, same seed")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9)
    fig.suptitle("The cpu profile's pretraining in float32 and in bfloat16", fontsize=12)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--runs", default="runs/precision_curves")
    parser.add_argument("--out", default="figures/precision_curves")
    args = parser.parse_args()
    data = Path(args.data)
    finals = {}
    for seed in args.seeds:
        for precision in PRECISIONS:  # alternated, so that both see the machine alike
            run_dir = Path(args.runs) / f"{precision}_seed{seed}"
            config = TrainConfig(scale=4, blocks=8, filters=32, batch_norm=True, batch_size=16, patch_size=64,
                                 learning_rate=1e-3, ema=0.99, validate_every=100, checkpoint_every=500, val_images=5,
                                 precision=precision, seed=seed, progress=False)
            train_stage("paper", "mse", [data / "train" / "T91", data / "train" / "BSD200"], run_dir, args.steps,
                        config, val_data=data / "benchmark" / "Set5")
            rows = read_history(run_dir)
            steps, psnr = series(rows, "mse", "val_psnr")
            finals.setdefault(precision, {})[seed] = dict(zip(map(int, steps), map(float, psnr)))
            print(f"{precision} seed {seed}: validation PSNR {psnr[-1]:.3f} dB at step {int(steps[-1])}", flush=True)
    steps = sorted(set.intersection(*(set(by_step) for runs in finals.values() for by_step in runs.values())))
    lines = ["| step | " + " | ".join(f"{p} (seeds {', '.join(map(str, args.seeds))})" for p in PRECISIONS)
             + " | mean bfloat16 - float32 | spread within float32 | spread within bfloat16 |",
             "|---|" + "---|" * (len(PRECISIONS) + 3)]
    for step in steps:
        values = {p: [finals[p][seed][step] for seed in args.seeds] for p in PRECISIONS}
        spread = {p: max(v) - min(v) for p, v in values.items()}
        difference = statistics.mean(values["bfloat16"]) - statistics.mean(values["float32"])
        lines.append(f"| {step} | " + " | ".join(", ".join(f"{x:.2f}" for x in values[p]) for p in PRECISIONS)
                     + f" | {difference:+.3f} | {spread['float32']:.3f} | {spread['bfloat16']:.3f} |")
    table = "\n".join(lines)
    print(table)
    write_text(f"{args.out}.md", "Validation PSNR on Set5 (dB), the cpu profile's pretraining in each precision "
               "(benchmarks/bench_precision_curves.py)\n\n" + table + "\n")
    write_json(f"{args.out}.json", {p: {str(seed): by_step for seed, by_step in runs.items()}
                                    for p, runs in finals.items()})
    save_figure(plot_agreement(finals, args.seeds), f"{args.out}.png")
    print(f"wrote {args.out}.png, .md and .json")


if __name__ == "__main__":
    main()
