"""The library stays readable: no class in srlib longer than 200 lines (its ``class`` line to its last line)."""

import ast
from pathlib import Path

SRLIB = Path(__file__).resolve().parent.parent / "srlib"
MAX_CLASS_LINES = 200


def class_lengths(folder: Path) -> dict[str, int]:
    """{"module.py:Class": lines} of every class (nested ones too) in the Python files under ``folder``."""
    lengths = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                lengths[f"{path.relative_to(folder)}:{node.name}"] = node.end_lineno - node.lineno + 1
    return lengths


def test_no_class_in_srlib_is_over_200_lines():
    lengths = class_lengths(SRLIB)
    assert "training.py:Trainer" in lengths and "run_folder.py:RunFolder" in lengths  # the walk finds them
    too_long = {name: lines for name, lines in lengths.items() if lines > MAX_CLASS_LINES}
    assert too_long == {}, f"split these by role: {too_long}"


def test_the_size_check_sees_a_long_class(tmp_path):
    (tmp_path / "long.py").write_text("class Long:\n" + "    x = 1\n" * MAX_CLASS_LINES)
    assert class_lengths(tmp_path) == {"long.py:Long": MAX_CLASS_LINES + 1}
