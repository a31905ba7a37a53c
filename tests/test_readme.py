"""The README's result tables are rendered from the committed benchmark JSON, never typed by hand."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_figures_json():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- table: figures/bicubic_x4.json -->" in readme
    result = subprocess.run([sys.executable, "tools/readme_tables.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_names_the_two_commands_first():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```sh", 1)[1].split("```", 1)[0]
    assert "make demo" in first_block and "make test" in first_block


def test_the_readmes_xla_speed_up_on_an_avx2_cpu_matches_its_table():
    """The prose's range of XLA's speed-up is the table's, for the cpu, gpu and gpu-full profiles' rows."""
    rows = [line.split("|") for line in (ROOT / "figures/bench_train_xla_avx2.md").read_text().splitlines()
            if line.startswith("| ") and not line.startswith("| smoke") and not line.startswith("| profile")]
    speed_ups = [float(row[3]) / float(row[4]) for row in rows]  # XLA off / XLA on
    assert len(speed_ups) == 6
    phrase = f"steps {min(speed_ups):.1f}-{max(speed_ups):.1f} times as fast"
    assert phrase in re.sub(r"\s+", " ", (ROOT / "README.md").read_text())


def test_the_readmes_warm_up_figures_are_the_runs_validation_and_the_shipped_card():
    """Set5 of the SRResNet-16 shipped then (its card kept beside its run's snapshot) trained on at 1e-4, without and
    with --warmup-steps 500; the warm-up run's step 1500 was shipped next."""
    import json

    def at_step(path, step):
        return next(row["val_psnr"] for row in map(json.loads, (ROOT / path).read_text().splitlines())
                    if row["step"] == step)

    then = json.loads((ROOT / "snapshots/srresnet_x4_bf16/shipped_card.json").read_text())
    shipped = then["benchmark"]["Set5"]["psnr"]
    cold, warm = "snapshots/srresnet_x4_bf16/validation_2.jsonl", "snapshots/warmup_x4/validation.jsonl"
    assert at_step(cold, 500) < shipped - 0.5 and at_step(warm, 500) > shipped - 0.01
    now = json.loads((ROOT / "srlib/weights/srresnet_x4.json").read_text())["benchmark"]["Set5"]["psnr"]
    assert now == at_step(warm, 1500) > shipped  # what ships now is that run's step 1500 (validation: Set5, float32)
    phrase = (f"fell from {shipped:.2f} to {at_step(cold, 500):.2f} dB on Set5 by step 500 ({at_step(cold, 1500):.2f} "
              f"at step 1500), and with `--warmup-steps 500` it held {at_step(warm, 500):.2f} at step 500 and rose to "
              f"{at_step(warm, 1500):.2f} at step 1500")
    assert phrase in re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
    curve = (f"in step 4 it rose to {at_step(warm, 1250):.2f} by step 1250 and fell back to {at_step(warm, 2250):.2f} "
             "by step 2250")
    assert curve in re.sub(r"\s+", " ", (ROOT / "README.md").read_text())
