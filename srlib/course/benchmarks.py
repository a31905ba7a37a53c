"""Chapter 6, benchmarks (``notebooks/06_benchmarks``): what the detail ratio measures, drawn.

The protocol itself, the tables and the crops are the library's (``srlib.benchmark``, ``srlib.reporting``,
``srlib.figures``), as ``python -m srlib benchmark`` uses them.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np


def plot_spectra(images: dict[str, np.ndarray], scale: int, title: str | None = None):
    """What the detail ratio measures: the power of each uint8 RGB image's Y channel by spatial frequency
    (``srlib.metrics.power_spectrum``, border of ``scale`` shaved, as the detail ratio takes it), averaged per
    frequency band, log scale, with the LR image's Nyquist frequency 1/(2 * scale) marked and the band above
    it shaded. The last image is the HR reference; each label in the legend gets its detail ratio."""
    from ..metrics import detail_ratio, power_spectrum, rgb_to_y, shave

    reference = images[list(images)[-1]]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    bands = np.linspace(0, 0.5, 41)
    for label, image in images.items():
        power, frequency = power_spectrum(shave(rgb_to_y(image), scale))
        band = np.clip(np.digitize(frequency, bands) - 1, 0, len(bands) - 2)
        counts = np.bincount(band.ravel(), minlength=len(bands) - 1)
        mean = np.bincount(band.ravel(), power.ravel(), len(bands) - 1) / np.maximum(counts, 1)
        ax.semilogy((bands[:-1] + bands[1:]) / 2, np.maximum(mean, 1e-6), linewidth=1.6,
                    label=f"{label}: detail {detail_ratio(image, reference, scale):.2f}")
    nyquist = 1 / (2 * scale)
    ax.axvspan(nyquist, 0.5, color="gold", alpha=0.15, label=f"above the LR image's Nyquist frequency, 1/(2×{scale})")
    ax.axvline(nyquist, color="goldenrod", linestyle="--", linewidth=1)
    ax.set(xlabel="spatial frequency (cycles per HR pixel)", ylabel="power of Y per pixel (grey levels², log)",
           xlim=(0, 0.5))
    ax.set_title(title or "Where the detail ratio looks: the power above the LR image's Nyquist frequency, "
                 "SR over HR", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    return fig


def slider_views(panels: dict[str, np.ndarray], model: str, crop: int) -> dict[str, tuple[str, np.ndarray]]:
    """The three stops of the interactive comparison, from one scene of ``srlib.benchmark.showcase`` (its panels:
    LR input, bicubic and the models labelled with their PSNR and detail, HR): {"bicubic" | "SR" | "HR": (caption,
    zoomed crop)}, the crop the busiest ``crop``-pixel square of the HR image, the same for all three. ``model`` is
    the label the scene was made with (its panel's label starts with it)."""
    from ..figures import busiest_box

    def panel(name: str) -> tuple[str, np.ndarray]:
        label = next((k for k in panels if k == name or k.startswith(name + " (")), None)
        if label is None:
            raise KeyError(f"no panel {name!r} in {list(panels)}")
        return label, panels[label]

    hr = panels["HR"]
    top, left, height, width = busiest_box(hr, crop)
    views = {}
    for stop, name in (("bicubic", "bicubic"), ("SR", model), ("HR", "HR")):
        label, image = panel(name)
        views[stop] = (label if stop != "HR" else "HR (the original)", image[top:top + height, left:left + width])
    return views


def comparison_widget(choices: dict, upscalers: dict, model: str, scale: int, crop: int):
    """The interactive comparison of chapter 6 (ipywidgets): pick an image of ``choices`` ({"set/name": HR
    file}) and a model of ``upscalers`` (``model`` first), then slide from bicubic to the model's output to HR,
    each with its PSNR and detail on that image (``slider_views``). Returns (the widget, the stops of the choice it
    starts at, for a static figure); each image and model is measured once, when first chosen."""
    import ipywidgets as widgets
    from IPython.display import Markdown, clear_output, display
    from PIL import Image

    from ..benchmark import showcase

    pick_image = widgets.Dropdown(options=list(choices), description="image")
    pick_model = widgets.Dropdown(options=[k for k in upscalers if k != "bicubic"], value=model, description="model",
                                  layout=widgets.Layout(width="420px"))
    stop = widgets.SelectionSlider(options=["bicubic", "SR", "HR"], value="SR", description="show")
    shown, views = widgets.Output(), {}

    def stops(image: str, chosen: str) -> dict:
        if (image, chosen) not in views:
            scene = showcase([choices[image]], {"bicubic": upscalers["bicubic"], chosen: upscalers[chosen]}, scale)
            views[image, chosen] = slider_views(scene[0][1], chosen, crop)
        return views[image, chosen]

    def draw(_=None) -> None:
        caption, image = stops(pick_image.value, pick_model.value)[stop.value]
        with shown:
            clear_output(wait=True)
            display(Markdown(f"**{caption}**"), Image.fromarray(image).resize((4 * crop, 4 * crop), Image.NEAREST))

    for control in (pick_image, pick_model, stop):
        control.observe(draw, "value")
    draw()
    return widgets.VBox([widgets.HBox([pick_image, pick_model]), stop, shown]), stops(pick_image.value, model)
