"""The README's result tables are rendered from the committed benchmark JSON, never typed by hand."""

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
