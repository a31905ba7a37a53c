"""The course pipeline: the six notebooks run in order with papermill, sized by a profile.

``run_pipeline("cpu", "paper", source_dir="../shared/data")`` executes ``notebooks/01…07`` with the
profile's parameters and saves each executed copy as ``runs/<profile>/<recipe>/NN_name.ipynb``; the
first failure stops the pipeline with an error naming the notebook and the cell. Training resumes from
the run folder's checkpoints, so running the pipeline again after an interruption continues it.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import signal
import threading
import time
from pathlib import Path

from .errors import SrlibError, Stopped, TrainingStopped
from .files import disk_full, make_folder, write_text
from .recipes import RECIPES
from .settings import SettingError, check_parameters

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ("01_data_prep", "02_pretrain_sr_vgg", "03_pretrain_discriminator", "04_full_train",
             "05_loss_plots", "06_benchmarks", "07_real_photos")

_COMMON = dict(scale=4, batch_norm=True, vgg_weights="auto", training_sets=["T91", "BSD200"], seed=0, xla="auto",
               showcase="Set14/comic.png")
# the GAN's loss settings; None keeps the recipe stage's own (srlib.recipes)
_GAN_LOSSES = dict(content_loss=None, adversarial_weight=None, tv_weight=None, label_smoothing=None, label_flip=None)

# chapter 7's fine-tune (section "real"): the shipped SRResNet-16 on the mixed degradation, shown on an image with
# flat areas and sharp edges (where JPEG blocks and ringing show)
_REAL = dict(init_generator="srresnet-x4", blocks=16, filters=64, batch_norm=False, degradation="mixed",
             showcase="Set14/monarch.png")

# The stage of each training notebook: its section of a profile holds that stage's own settings (steps,
# learning_rate, ...), which reach the notebook under the same names.
NOTEBOOK_STAGES = {"02_pretrain_sr_vgg": "pretrain", "03_pretrain_discriminator": "discriminator", "04_full_train": "gan",
                   "07_real_photos": "real"}
STAGE_SECTIONS = tuple(NOTEBOOK_STAGES.values())

# Each profile sets sizes and steps; "{recipe}" in a path is filled in. XLA is "auto" (srlib.stage_model.use_xla):
# on for GPUs; on CPUs only where a float32 step has a discriminator, whose runs otherwise do not repeat. A long
# fine-tune of the shipped SRResNet-16 at 1e-4 warms its rate up over 500 steps (warmup_steps): with a cold Adam
# its first updates cost 0.8 dB on Set5 by step 500, 0.1 dB still lost at step 1500 (README, --warmup-steps). The
# cpu profile's short runs have none (in chapter 7's 200 steps a warm-up changed nothing measurable: its exercise 2).
PROFILES = {
    # CI: a tiny network and a handful of steps, so that every cell of every notebook runs in a few minutes
    "smoke": dict(_COMMON, blocks=2, filters=8, batch_size=4, patch_size=32, validate_every=4, checkpoint_every=4,
                  val_images=2, benchmark_sets=["Set5", "Set14"], training_sets=["T91"],
                  precision="bfloat16", figures_dir="runs/smoke/{recipe}/figures",
                  pretrain=dict(steps=8, learning_rate=1e-3, ema=0.99, init_generator=None, warmup_steps=0),
                  discriminator=dict(steps=4, learning_rate=1e-4),
                  gan=dict(_GAN_LOSSES, steps=8, learning_rate=1e-4, init_generator=None, warmup_steps=0),
                  # the tiny network from scratch: the pipeline working, not a model
                  real=dict(_REAL, steps=8, learning_rate=1e-3, ema=None, init_generator=None, warmup_steps=0, blocks=2,
                            filters=8, batch_norm=True, benchmark_sets=["Set5"])),
    # the demo: a real but small run, 10-14 minutes (report recipe) on 2 CPU cores, by the CPU (README)
    "cpu": dict(_COMMON, blocks=8, filters=32, batch_size=16, patch_size=64, validate_every=200, checkpoint_every=200,
                val_images=5, benchmark_sets=["Set5", "Set14", "BSD100", "Urban100"],
                precision="bfloat16", figures_dir="figures/cpu-{recipe}",
                # chapter 2's small network from scratch, at 1e-3
                pretrain=dict(steps=1000, learning_rate=1e-3, ema=0.99, init_generator=None, warmup_steps=0),
                discriminator=dict(steps=100, learning_rate=1e-4),
                # the GAN from the shipped SRResNet-16 (chapter 2's small network is too weak to show what the GAN
                # adds in minutes); 300 steps, since the paper's recipe drops its rate 10x halfway
                gan=dict(_GAN_LOSSES, steps=300, learning_rate=1e-4, validate_every=50, warmup_steps=0,
                         init_generator="srresnet-x4", blocks=16, filters=64, batch_norm=False),
                # chapter 7: a brief fine-tune of the shipped SRResNet-16 on the mixed degradation, scored on Set14
                real=dict(_REAL, steps=200, learning_rate=1e-4, ema=None, warmup_steps=0, patch_size=96,
                          validate_every=100, benchmark_sets=["Set14"])),
    # one sitting on one current GPU (about 1.5 hours; README, "A GPU run in one sitting"): the shipped SRResNet-16
    # fine-tuned on DIV2K, then the paper's GAN with ImageNet VGG54
    "gpu": dict(_COMMON, blocks=16, filters=64, batch_norm=False, batch_size=16, patch_size=96, validate_every=2000,
                checkpoint_every=1000, val_images=5, benchmark_sets=["Set5", "Set14", "BSD100", "Urban100"],
                training_sets=["DIV2K_train_HR"], precision="mixed_float16",
                figures_dir="figures/gpu-{recipe}",
                pretrain=dict(steps=10_000, learning_rate=1e-4, ema=0.999, init_generator="srresnet-x4",
                              warmup_steps=500),
                discriminator=dict(steps=10_000, learning_rate=1e-4),
                gan=dict(_GAN_LOSSES, steps=40_000, learning_rate=1e-4, init_generator=None, warmup_steps=0),
                real=dict(_REAL, steps=20_000, learning_rate=1e-4, ema=0.999, warmup_steps=500,
                          benchmark_sets=["Set14", "BSD100"])),
    # the report's scale: SRResNet-16 with batch norm from scratch on DIV2K (or COCO 2014, as the report used),
    # 10^5 steps per stage (days on one GPU)
    "gpu-full": dict(_COMMON, blocks=16, filters=64, batch_size=16, patch_size=96, validate_every=5000,
                     checkpoint_every=1000, val_images=5, benchmark_sets=["Set5", "Set14", "BSD100", "Urban100"],
                     training_sets=["DIV2K_train_HR"], precision="mixed_float16",
                     figures_dir="figures/gpu-full-{recipe}",
                     pretrain=dict(steps=100_000, learning_rate=1e-4, ema=0.999, init_generator=None, warmup_steps=0),
                     discriminator=dict(steps=100_000, learning_rate=1e-4),
                     gan=dict(_GAN_LOSSES, steps=100_000, learning_rate=1e-4, init_generator=None, warmup_steps=0),
                     real=dict(_REAL, steps=100_000, learning_rate=1e-4, ema=0.999, warmup_steps=500,
                               benchmark_sets=["Set14", "BSD100"])),
}


class TrainingProgress:
    """A progress bar in the terminal for a training notebook that papermill runs in its own kernel: a thread
    follows the run's ``history.jsonl`` and shows the stage's step, its losses and the time left."""

    SHOWN = ("g_loss", "d_loss", "content", "adversarial", "val_psnr")

    def __init__(self, history: Path, steps: int, description: str, enabled: bool = True):
        self.history, self.steps, self.description, self.enabled = history, steps, description, enabled
        self._stop = threading.Event()

    def __enter__(self):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.steps, desc=self.description, unit="step", dynamic_ncols=True,
                        disable=None if self.enabled else True)
        self._offset = self.history.stat().st_size if self.history.exists() else 0
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bar.close()

    def _follow(self) -> None:
        shown = {}
        while not self._stop.wait(1.0):
            if not self.history.exists():
                continue
            if self.history.stat().st_size < self._offset:  # rewritten when the stage resumed
                self._offset = 0
            with open(self.history, "rb") as file:
                file.seek(self._offset)
                chunk = file.read()
            complete = chunk[: chunk.rfind(b"\n") + 1]
            self._offset += len(complete)
            for line in complete.decode("utf-8", "replace").splitlines():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(row, dict) and isinstance(row.get("step"), int):
                    self.bar.set_description(f"{self.description} ({row.get('stage')})", refresh=False)
                    self.bar.n = min(row["step"], self.steps)
                    shown.update({k: f"{row[k]:.4g}" for k in self.SHOWN if isinstance(row.get(k), (int, float))})
            self.bar.set_postfix(shown, refresh=False)
            self.bar.refresh()


class PipelineError(SrlibError):
    """A notebook of the pipeline failed; the message names it, the cell, and the executed copy."""


def _kernel_manager():
    """nbclient's kernel manager class, remembering the kernel it starts (``latest``) so that a signal to the
    pipeline can interrupt the cell that runs, as Jupyter's interrupt button does."""
    from jupyter_client.manager import AsyncKernelManager

    class InterruptibleKernel(AsyncKernelManager):
        latest = None

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            type(self).latest = self

    return InterruptibleKernel


@contextlib.contextmanager
def _interrupting(kernels):
    """While a notebook runs, SIGINT or SIGTERM to this process interrupts the kernel's running cell (a training cell
    then saves its step and stops; ``srlib.callbacks.StopOnSignal``) and the notebook ends with that cell's error,
    instead of the kernel being shut down with the cell's work. (The kernel runs in its own session, so a Ctrl-C in
    the terminal reaches this process only.) Yields the list of signals received. Signals this process ignores
    (a background job's SIGINT) stay ignored; a signal before the kernel runs interrupts this process as usual."""
    received = []

    def forward(signum, frame):
        received.append(signum)
        kernel = kernels.latest
        if kernel is None or not kernel.has_kernel or getattr(kernel.provisioner, "pid", None) is None:
            raise KeyboardInterrupt
        os.kill(kernel.provisioner.pid, signal.SIGINT)

    chosen = [s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN]
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        chosen = []
    previous = {s: signal.signal(s, forward) for s in chosen}
    try:
        yield received
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _stopped(error, received: list, name: str) -> Stopped:
    """What to say when a signal interrupted notebook ``name``: the step a training cell saved, or where it stopped."""
    step = TrainingStopped.step_in(str(error.evalue)) if error is not None else None
    if step is not None:
        return TrainingStopped(step, received[0])
    return Stopped(f"stopped by {signal.Signals(received[0]).name} in {name}.ipynb; rerun the same command to "
                   "continue (training resumes from its last checkpoint)", received[0])


def profile_parameters(profile: str, recipe: str = "report", data_dir: str | os.PathLike = "data",
                       source_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                       **overrides) -> dict:
    """Every notebook parameter of a profile, with absolute paths, and ``overrides`` on top (a stage's
    section is updated key by key: ``gan={"steps": 2}``)."""
    if profile not in PROFILES:
        raise SrlibError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if recipe not in RECIPES:
        raise SrlibError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    unknown = set(overrides) - set(PROFILES[profile])
    if unknown:
        raise SrlibError(f"unknown parameters {sorted(unknown)}; a profile has {sorted(PROFILES[profile])}")
    params = {**PROFILES[profile], **overrides, "profile": profile, "recipe": recipe}
    for section in STAGE_SECTIONS:
        params[section] = {**PROFILES[profile][section], **overrides.get(section, {})}
    out_dir = Path(out_dir) if out_dir else ROOT / "runs" / profile / recipe
    figures_dir = overrides.get("figures_dir") or ROOT / PROFILES[profile]["figures_dir"].format(recipe=recipe)
    params["figures_dir"] = str(Path(figures_dir).resolve())
    params["out_dir"] = str(out_dir.resolve())
    params["run_dir"] = str((out_dir / "train").resolve())
    params["real"]["run_dir"] = str((out_dir / "real").resolve())  # chapter 7's fine-tune: a run of its own
    if source_dir is None and "training_sets" not in overrides and not profile.startswith("gpu") and not all(
            (Path(data_dir) / "train" / name).is_dir() for name in params["training_sets"]):
        params["training_sets"] = ["DIV2K_valid_HR"]  # no mirror: the smallest downloadable set (100 images, 449 MB)
    params["data_dir"] = str(Path(data_dir).resolve())
    params["source_dir"] = str(Path(source_dir).resolve()) if source_dir else None
    for section in (None, *STAGE_SECTIONS):  # a bad override fails here, before any notebook runs
        try:
            check_parameters(params if section is None else {**params, **params[section]})
        except SettingError as error:
            raise SrlibError(f"profile {profile}{f', section {section}' if section else ''}: {error}") from None
    return params


def notebook_parameters(params: dict, notebook: str) -> dict:
    """The parameters one notebook gets: the profile's common ones and its stage's section."""
    return {**{k: v for k, v in params.items() if k not in STAGE_SECTIONS}, **params.get(NOTEBOOK_STAGES.get(notebook), {})}


def run_pipeline(profile: str, recipe: str = "report", data_dir: str | os.PathLike = "data",
                 source_dir: str | os.PathLike | None = None, out_dir: str | os.PathLike | None = None,
                 notebooks: list[str] | None = None, progress: bool = True, publish_dir: str | os.PathLike | None = None,
                 **overrides) -> list[Path]:
    """Execute the notebooks (all, or those whose names start with one of ``notebooks``) in order; with
    ``publish_dir``, a copy of each executed notebook is also written there, with this checkout's paths made
    relative, to be committed and read on GitHub (``make demo`` writes ``course/<recipe>/``).

    Returns the executed copies. Raises ``PipelineError`` at the first notebook that fails.
    """
    import papermill

    params = profile_parameters(profile, recipe, data_dir, source_dir, out_dir, **overrides)
    out = Path(params["out_dir"])
    make_folder(out, "output folder")
    chosen = [n for n in NOTEBOOKS if not notebooks or any(n.startswith(p) for p in notebooks)]
    if not chosen:
        raise SrlibError(f"no notebook matches {notebooks}; the notebooks: {', '.join(NOTEBOOKS)}")
    executed = []
    kernels = _kernel_manager()
    for name in chosen:
        source = ROOT / "notebooks" / f"{name}.ipynb"
        if not source.is_file():
            raise PipelineError(f"{source} is missing")
        declared = papermill.inspect_notebook(str(source))
        given = {k: v for k, v in notebook_parameters(params, name).items() if k in declared}
        target = out / f"{name}.ipynb"
        running = out / f".{name}.running.ipynb"  # renamed into place when done, even when it failed
        print(f"[{profile}/{recipe}] {name} ...", flush=True)
        started = time.monotonic()
        training = name in NOTEBOOK_STAGES and "steps" in given
        follow = (TrainingProgress(Path(given.get("run_dir", params["run_dir"])) / "history.jsonl", given["steps"], f"[{profile}/{recipe}] "
                                   f"{name}", progress) if training else contextlib.nullcontext())
        try:
            with follow, _interrupting(kernels) as received:  # a training notebook's steps, not papermill's cells
                papermill.execute_notebook(str(source), str(running), parameters=given, kernel_name="python3",
                                           cwd=str(ROOT / "notebooks"), progress_bar=progress and not training,
                                           # the kernel's own notes (e.g. "running over TCP") are not the user's business
                                           extra_arguments=["--IPKernelApp.log_level=ERROR"],
                                           kernel_manager_class=kernels)
            if received:  # the cell that was interrupted ended the notebook without an error
                raise _stopped(None, received, name)
        except papermill.PapermillExecutionError as error:
            os.replace(running, target)
            if received:
                raise _stopped(error, received, name) from None
            first_line = next((line for line in error.source.splitlines() if line.strip()), "")
            raise PipelineError(
                f"{name}.ipynb failed in cell {error.cell_index} of the executed copy (execution count "
                f"{error.exec_count}, starting `{first_line}`): {error.ename}: {error.evalue}\n"
                f"the executed copy, with the traceback, is {target}"
            ) from None
        except Exception as error:  # the kernel died or could not start, or the copy could not be written
            if disk_full(error):  # the copy is cut short: the one from before stays
                running.unlink(missing_ok=True)
                raise PipelineError(f"{name}.ipynb stopped: could not write its executed copy {target}: "
                                    f"{os.strerror(errno.ENOSPC)}") from None
            if running.exists():
                os.replace(running, target)
            if isinstance(error, Stopped):
                raise
            raise PipelineError(f"{name}.ipynb could not run: {type(error).__name__}: {error}") from None
        os.replace(running, target)
        print(f"[{profile}/{recipe}] {name} done in {time.monotonic() - started:.0f} s -> {target}", flush=True)
        executed.append(target)
        if publish_dir is not None:
            write_text(Path(publish_dir) / target.name, publishable(target.read_text()))
    return executed


def _relative_paths(value, relative):
    """``value`` (parsed notebook JSON) with ``relative`` applied to every string except image data."""
    if isinstance(value, str):
        return relative(value)
    if isinstance(value, list):
        return [_relative_paths(v, relative) for v in value]
    if isinstance(value, dict):
        return {k: v if k.startswith("image/") and isinstance(v, str) else _relative_paths(v, relative)
                for k, v in value.items()}
    return value


def _widget_text(state: dict, model_id: str) -> str:
    """The text a saved widget shows at the end of the run: a label's or HTML's value, a progress bar drawn
    from its value, a box's children in order ("" for anything else)."""
    import html

    model = state.get(model_id, {})
    values = model.get("state", {})
    if "children" in values:
        parts = (_widget_text(state, child.removeprefix("IPY_MODEL_")) for child in values["children"])
        return " ".join(part for part in parts if part)
    if model.get("model_name") in ("HTMLModel", "LabelModel"):
        return html.unescape(str(values.get("value", ""))).strip()
    if model.get("model_name") in ("FloatProgressModel", "IntProgressModel") and values.get("max"):
        filled = round(10 * min(1.0, values.get("value", 0) / values["max"]))
        return "|" + "█" * filled + " " * (10 - filled) + "|"
    return ""


def publishable(notebook_json: str, photo_bytes: int = 100_000, quality: int = 85) -> str:
    """An executed notebook (its JSON text) as committed for reading on GitHub: this checkout's paths, and those
    beside it, made relative to ``notebooks/`` (in text, never in image data), and each PNG output larger than
    ``photo_bytes`` stored as a JPEG of ``quality`` when that is less than half the size (photographs and image
    grids; line plots stay PNG, whose lines JPEG would blur). A widget's text fallback (what GitHub shows of a
    progress bar) becomes its final state, as saved in the notebook, instead of its first. Returns the JSON text."""
    import base64
    import io
    import re

    from PIL import Image

    folders = [(str(ROOT), "..")]
    if ROOT.parent != ROOT.parent.parent:  # a data mirror beside the checkout (../shared/data)
        folders.append((str(ROOT.parent), "../.."))
    patterns = [(re.compile(re.escape(path) + r"(?=/|$|[\s\"'`),;:|])"), short) for path, short in folders]

    def relative(text: str) -> str:
        for pattern, short in patterns:
            text = pattern.sub(short, text)
        return text

    notebook = _relative_paths(json.loads(notebook_json), relative)
    widgets = notebook.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            view = data.get("application/vnd.jupyter.widget-view+json")
            final = _widget_text(widgets.get("state", {}), view["model_id"]) if view else ""
            if final:
                data["text/plain"] = final
            png = data.get("image/png")
            if not png or len(png) * 3 // 4 <= photo_bytes:
                continue
            image = Image.open(io.BytesIO(base64.b64decode(png)))
            if image.mode in ("RGBA", "LA", "P"):  # on white, as the notebook shows it
                image = image.convert("RGBA")
                image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "JPEG", quality=quality)
            if buffer.tell() * 2 < len(png) * 3 // 4:
                data["image/jpeg"] = base64.b64encode(buffer.getvalue()).decode("ascii")
                del data["image/png"]
                metadata = output.get("metadata", {})
                if "image/png" in metadata:
                    metadata["image/jpeg"] = metadata.pop("image/png")
    return json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
