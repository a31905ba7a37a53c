"""The chapters' prose agrees with their outputs: a number or a claim in the text that the executed course
(course/<recipe>/, written by make demo) contradicts fails here."""

import re

import nbformat
import pytest

from srlib.pipeline import ROOT
from srlib.verdict import MAX_CLEAN_COST

COURSE = ROOT / "course"
RECIPES = sorted(p.name for p in COURSE.iterdir() if p.is_dir()) if COURSE.is_dir() else []
# figures the prose quotes from papers or from the verdict's criteria, not from the run
PUBLISHED_DB = {"04_full_train": {"29.40", "32.05", "2.7"}, "07_real_photos": {f"{MAX_CLEAN_COST:g}"}}


def _markdown(path) -> str:
    return "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown")


def _outputs(path) -> str:
    notebook = nbformat.read(path, as_version=4)
    return "\n".join(o.get("text", "") + "".join(str(v) for k, v in o.get("data", {}).items() if k.startswith("text/"))
                     for c in notebook.cells if c.cell_type == "code" for o in c.get("outputs", []))


def _table_psnr(outputs: str, sets: list[str]) -> dict[str, dict[str, float]]:
    """{method: {set: PSNR}} of the "measured here" rows of a comparison table in ``outputs``."""
    rows = {}
    for line in outputs.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == len(sets) + 2 and (cells[-1].startswith("measured here")):
            rows[cells[0]] = {s: float(c.split("/")[0]) for s, c in zip(sets, cells[1:-1]) if c[:1].isdigit()}
    return rows


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("name", ["02_pretrain_sr_vgg", "04_full_train", "05_loss_plots", "06_benchmarks",
                                  "07_real_photos"])
def test_every_db_figure_in_a_chapters_prose_is_one_its_outputs_show(recipe, name):
    """Chapter 2 once said sr_vgg reached 28.27 dB while its output said 27.64: a figure in dB is the run's, or
    a published one named here."""
    path = COURSE / recipe / f"{name}.ipynb"
    quoted = set(re.findall(r"(\d+\.\d+)\s*dB", _markdown(path)))
    shown = _outputs(path)
    missing = sorted(q for q in quoted - PUBLISHED_DB.get(name, set()) if q not in shown)
    assert not missing, f"{recipe}/{name}: the prose quotes {missing} dB, which no output shows"


@pytest.mark.parametrize("recipe", RECIPES)
def test_chapter_6_exercise_1_names_the_set_its_table_shows_gaining_most(recipe):
    path = COURSE / recipe / "06_benchmarks.ipynb"
    claim = re.search(r"In dB, (\w+) gains more", _markdown(path))
    assert claim, "exercise 1's answer names the set that gains more"
    table = _table_psnr(_outputs(path), ["Set5", "Set14", "BSD100", "Urban100"])
    bicubic = table.pop("bicubic")
    assert table, "the executed chapter shows measured networks"
    for method, psnr in table.items():
        gains = {s: psnr[s] - bicubic[s] for s in ("Set5", "Urban100")}
        assert max(gains, key=gains.get) == claim.group(1), (method, gains)


def test_chapters_3_and_4_agree_that_minus_log_d_does_not_saturate():
    chapter3 = _markdown(ROOT / "notebooks" / "03_pretrain_discriminator.ipynb")
    chapter4 = _markdown(ROOT / "notebooks" / "04_full_train.ipynb")
    assert "SRGAN uses\n$-\\log D$ for that reason" in chapter4 or "SRGAN uses $-\\log D$ for that reason" in chapter4
    said = re.findall(r"\$-\\log D\$ ([\w ]*?)saturate", chapter3 + chapter4)
    assert said and all("not" in s for s in said), said


@pytest.mark.skipif("report" not in RECIPES, reason="no executed course")
def test_the_readmes_demo_minutes_are_the_executed_courses():
    """README says how long make demo takes; course/report/ holds how long each notebook took (papermill's
    durations, from the make demo that wrote it)."""
    seconds = sum(nbformat.read(path, as_version=4).metadata["papermill"]["duration"]
                  for path in sorted((COURSE / "report").glob("0*.ipynb")))
    readme = (ROOT / "README.md").read_text()
    said = [int(m) for m in re.findall(r"about (\d+) minutes on 2 CPU cores|the demo: about (\d+) minutes", readme)
            for m in m if m]
    assert len(said) == 2, "README's two statements of the demo's time"
    assert all(abs(minutes - seconds / 60) <= 1 for minutes in said), (said, seconds / 60)


@pytest.mark.parametrize("recipe", RECIPES)
def test_no_cell_of_the_executed_course_shows_a_stray_return_value(recipe):
    """A cell that ends in a call whose result nobody reads (write_text returns its path) prints it."""
    for path in sorted((COURSE / recipe).glob("0*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for output in cell.get("outputs", []):
                text = str(output.get("data", {}).get("text/plain", ""))
                assert not re.match(r"(Posix|Windows)?Path\(", text), f"{path.name}: {text}"


def _degradation_rows(outputs: str, keys: int = 0) -> dict[str, dict[str, float]]:
    """{method: {"<set> <degradation>": figure}} of the first (keys=0: PSNR) or second (keys=1: colour shift)
    figure of each cell in the first table headed "| method | <set> bicubic | ..." in ``outputs``."""
    lines = outputs.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| method |") and " bicubic |" in line)
    columns = [c.strip() for c in lines[header].strip().strip("|").split("|")][1:]
    rows = {}
    for line in lines[header + 2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[cells[0]] = {column: float(cell.split("/")[keys]) for column, cell in zip(columns, cells[1:])}
    return rows


@pytest.mark.parametrize("recipe", RECIPES)
def test_chapter_7_reading_agrees_with_its_table(recipe):
    """Chapter 7's "Reading it" says what its table shows: the bicubic-trained SRResNet-16 is best on clean inputs;
    on degraded ones the bicubic-trained networks gain nothing over bicubic, or lose; JPEG 75 costs them less than
    JPEG 50; bicubic itself shows a colour shift of a few grey levels on degraded inputs."""
    path = COURSE / recipe / "07_real_photos.ipynb"
    markdown, outputs = _markdown(path), _outputs(path)
    assert "On clean inputs the bicubic-trained SRResNet-16 is best" in markdown
    psnr = _degradation_rows(outputs)
    sets = sorted({column.split()[0] for column in next(iter(psnr.values()))})
    assert sets, "the executed chapter shows its table"
    bicubic_trained = ["SRResNet-16 (shipped)", "SRGAN-MSE (shipped)"]
    for name in sets:
        clean = {method: row[f"{name} bicubic"] for method, row in psnr.items()}
        assert max(clean, key=clean.get) == "SRResNet-16 (shipped)", clean
        for method in bicubic_trained:
            assert psnr[method][f"{name} realistic"] <= psnr["bicubic"][f"{name} realistic"] + 0.1, (method, name)
            assert psnr[method][f"{name} jpeg75"] > psnr[method][f"{name} jpeg50"], (method, name)
    colour = _degradation_rows(outputs[outputs.index("Fine detail / colour shift"):], keys=1)
    assert all(1.0 <= colour["bicubic"][f"{name} realistic"] <= 5.0 for name in sets), colour["bicubic"]
