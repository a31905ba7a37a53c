"""Render the README's result tables from the files in figures/ (never typed by hand): a benchmark JSON
is rendered as a table, a Markdown file (e.g. a notebook's benchmark_x4.md) is included as it is.

    python tools/readme_tables.py          # rewrite the README blocks
    python tools/readme_tables.py --check  # exit 1 if the README differs from figures/

A block in README.md looks like
    <!-- table: figures/bicubic_x4.json -->
    ...generated Markdown...
    <!-- end table -->
"""

import argparse
import json
import re
import sys
from pathlib import Path

from srlib.reporting import markdown_table
from srlib.files import atomic_path

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- table: (?P<src>\S+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.DOTALL)


def render(readme: str) -> str:
    def replace(match: re.Match) -> str:
        source = ROOT / match["src"]
        if not source.is_file():  # not made yet (e.g. the other recipe's demo has not run): left as it is
            print(f"{match['src']} does not exist yet: its README block is unchanged", file=sys.stderr)
            return match.group(0)
        if source.suffix == ".md":
            body = source.read_text().rstrip("\n")
        else:
            body = markdown_table(json.loads(source.read_text()))
        return f"{match.group(1)}{body}\n{match.group(4)}"

    return BLOCK.sub(replace, readme)


def main() -> int:
    parser = argparse.ArgumentParser(description="README tables from figures/*.json")
    parser.add_argument("--check", action="store_true", help="only check that the README is up to date")
    args = parser.parse_args()
    path = ROOT / "README.md"
    current = path.read_text()
    updated = render(current)
    if args.check:
        if updated != current:
            print("README.md tables differ from figures/*.json: run python tools/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    with atomic_path(path) as tmp:
        tmp.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
