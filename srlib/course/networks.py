"""The two networks as chapters 2 and 3 show them: their Keras code, a diagram, their parameters by part.

``builder_source`` gives the ``srlib.models`` builders' own code as Markdown; ``layer_shapes`` the output shape
of every layer for one input size, computed by the network itself; ``draw_generator`` and
``draw_discriminator`` draw the networks from those shapes; ``parameter_table`` counts the weights by part.
"""

from __future__ import annotations

import inspect
import re
import textwrap

import matplotlib.pyplot as plt
import numpy as np


# Parts of the two networks, by layer name (srlib.models names every layer), in the order they compute.
_PARTS = [
    (r"head_", "head: 9×9 conv + PReLU"),
    (r"block\d+_", "residual blocks: (3×3 conv, BN, PReLU, 3×3 conv, BN) + skip, each"),
    (r"body_", "3×3 conv + BN after the blocks (then the long skip)"),
    (r"up\d+_", "upsampling, per ×2: 3×3 conv to 4× the filters, sub-pixel shuffle, PReLU"),
    (r"tail_", "tail: 9×9 conv to RGB"),
    (r"(conv|bn|lrelu)\d+$", "8 convs (3×3, stride 1 or 2) with BN and leaky ReLU"),
    (r"dense", "dense layer of 1024 + leaky ReLU (after flattening)"),
    (r"logit", "dense layer to one logit"),
]


def parameter_table(model) -> list[dict]:
    """The weights of ``model`` by part (``_PARTS``): {"part", "count" (blocks, for the residual blocks),
    "trainable", "fixed" (batch norm's moving statistics), "share" of all trainable weights}; "count" is how
    many residual blocks or upsampling steps a part has (1 for the others)."""
    rows: dict[str, dict] = {}
    for layer in model.layers:
        part = next((name for pattern, name in _PARTS if re.match(pattern, layer.name)), None)
        if part is None or not layer.weights:
            continue
        row = rows.setdefault(part, {"part": part, "count": set(), "trainable": 0, "fixed": 0})
        repeated = re.match(r"(block|up)(\d+)_", layer.name)
        row["count"].add(repeated.group(2) if repeated else "")
        row["trainable"] += sum(int(np.prod(w.shape)) for w in layer.trainable_weights)
        row["fixed"] += sum(int(np.prod(w.shape)) for w in layer.non_trainable_weights)
    total = sum(row["trainable"] for row in rows.values()) or 1
    return [{**row, "count": len(row["count"]), "share": row["trainable"] / total} for row in rows.values()]


def parameter_markdown(rows: list[dict]) -> str:
    lines = ["| part | how many | trainable weights | share | fixed (BN statistics) |", "|---|---|---|---|---|"]
    lines += [f"| {r['part']} | {r['count'] if r['count'] > 1 else ''} | {r['trainable']:,} | "
              f"{r['share']:.1%} | {r['fixed']:,} |" for r in rows]
    total = sum(r["trainable"] for r in rows)
    lines.append(f"| **all** | | **{total:,}** | 100% | {sum(r['fixed'] for r in rows):,} |")
    return "\n".join(lines)


def source_markdown(*objects) -> str:
    """The source code of each function or class (e.g. ``srlib.models.generator``), as the library has it, in one
    fenced Python block of Markdown for a notebook to display."""
    code = "\n\n".join(textwrap.dedent(inspect.getsource(o)).rstrip() for o in objects)
    return f"```python\n{code}\n```"


def builder_source(network: str) -> str:
    """The Keras code in ``srlib.models`` that builds ``network`` ("generator" or "discriminator"), whole: the
    builder and what it calls (batch norm; for the generator, the sub-pixel shuffle layer), as Markdown."""
    from .. import models

    parts = {"generator": (models._batch_norm, models.SubpixelUpsampling, models.generator),
             "discriminator": (models._batch_norm, models.discriminator)}
    return source_markdown(*parts[network])


def layer_shapes(model, size: int | None = None) -> dict[str, tuple[int, ...]]:
    """{layer name: output shape without the batch axis} of every layer of ``model`` for one ``size`` x ``size`` RGB
    input (default: the size the model was built for), computed by running the model on zeros in inference mode."""
    import keras

    size = size or model.input.shape[1]
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    probe = keras.Model(model.input, [layer.output for layer in layers])
    outputs = probe(np.zeros((1, size, size, 3), np.float32), training=False)
    return {layer.name: tuple(int(d) for d in output.shape[1:]) for layer, output in zip(layers, outputs)}


# ---- the diagrams: a column of boxes, one inch a unit, text at the size of a notebook's body text --------

_FONT = 10
_COLOURS = {"io": "#e8e8e8", "conv": "#cfe3f7", "block": "#d5ecd4", "shuffle": "#fde2c4", "dense": "#e6d9f2"}


def _shape_text(shape: tuple[int, ...]) -> str:
    return "×".join(str(d) for d in shape)


_HEIGHTS = {"box": 0.48, "add": 0.28, "text": 0.34}  # of a row, in inches; rows are _GAP apart
_GAP = 0.24


def _width(side: int | None, smallest: int, largest: int, base: float = 2.9, span: float = 1.3) -> float:
    """A box's width in inches: wider for a larger image (log scale), so that enlarging and shrinking show."""
    if side is None or largest == smallest:
        return base
    return base + span * np.log2(side / smallest) / np.log2(largest / smallest)


def _draw_column(ax, rows: list[dict], skips: list[tuple[int, int, str]], centre: float, shape_x: float) -> list[float]:
    """Draw ``rows`` top to bottom at x = ``centre``: each {"kind": "box" | "add" | "text", "label", "shape" (text
    written at ``shape_x``), "width", "colour"}, joined by arrows; each skip (from row, to an "add" row, label) as
    a line on the left that leaves the arrow above its first row and enters the add. Returns each row's y."""
    heights = _HEIGHTS
    ys, y = [], 0.2
    for row in rows:
        y += heights[row["kind"]] / 2
        ys.append(y)
        y += heights[row["kind"]] / 2 + _GAP
    for i, (row, y) in enumerate(zip(rows, ys)):
        kind, half = row["kind"], heights[row["kind"]] / 2
        if kind == "box":
            w = row["width"]
            ax.add_patch(plt.Rectangle((centre - w / 2, y - half), w, 2 * half, facecolor=row["colour"],
                                       edgecolor="black", linewidth=1))
            ax.text(centre, y, row["label"], ha="center", va="center", fontsize=_FONT)
        elif kind == "add":
            ax.add_patch(plt.Circle((centre, y), 0.14, facecolor="white", edgecolor="black", linewidth=1.2))
            ax.text(centre, y, "+", ha="center", va="center", fontsize=_FONT + 2)
            if row.get("label"):
                ax.text(centre + 0.25, y, row["label"], ha="left", va="center", fontsize=_FONT, style="italic")
        else:
            ax.text(centre, y, row["label"], ha="center", va="center", fontsize=_FONT, style="italic")
        if row.get("shape"):
            ax.text(shape_x, y, row["shape"], ha="left", va="center", fontsize=_FONT, family="monospace")
        if i:
            above = rows[i - 1]
            top = ys[i - 1] + heights[above["kind"]] / 2
            ax.annotate("", (centre, y - half), (centre, top),
                        arrowprops=dict(arrowstyle="-|>", color="black", linewidth=1, shrinkA=0, shrinkB=0))
    for first, add, label in skips:
        long = label == "long skip"  # leaves a little above the first block's skip, so that the two stay apart
        fork = ys[first] - heights[rows[first]["kind"]] / 2 - _GAP * (0.75 if long else 0.4)
        reach = max(r.get("width", 0.3) for r in rows[first:add]) / 2
        left = centre - reach - (0.62 if long else 0.28)
        ax.plot([centre, left, left], [fork, fork, ys[add]], color="tab:red", linewidth=1.4)
        ax.plot([centre], [fork], "o", color="tab:red", markersize=3.5)
        ax.annotate("", (centre - 0.14, ys[add]), (left, ys[add]),
                    arrowprops=dict(arrowstyle="-|>", color="tab:red", linewidth=1.4, shrinkA=0, shrinkB=0))
        if label:
            ax.text(left - 0.08, (fork + ys[add]) / 2, label, rotation=90, ha="right", va="center",
                    fontsize=_FONT, color="tab:red")
    return ys


def _figure(columns: list[tuple[float, list[dict]]], title: str):
    """A figure with one axes per (width in inches, rows), in inch units with y downwards, tall enough for the
    longest column, under ``title``."""
    body = max(sum(_HEIGHTS[r["kind"]] + _GAP for r in rows) for _, rows in columns) + 0.2
    title_height = 0.3 + 0.22 * title.count("\n")
    total = sum(width for width, _ in columns)
    fig = plt.figure(figsize=(total, body + title_height))
    fig.suptitle(title, fontsize=_FONT + 2, y=1 - 0.08 / (body + title_height), va="top")
    axes, left = [], 0.0
    for width, _ in columns:
        ax = fig.add_axes((left / total, 0, width / total, body / (body + title_height)))
        ax.set_xlim(0, width)
        ax.set_ylim(body, 0)
        ax.set_axis_off()
        axes.append(ax)
        left += width
    return fig, axes


def _block_rows(batch_norm: bool, shape: str) -> list[dict]:
    """The inside of one residual block, as rows."""
    names = ["3×3 conv", "batch norm", "PReLU", "3×3 conv", "batch norm"]
    if not batch_norm:
        names = [n for n in names if n != "batch norm"]
    rows = [{"kind": "text", "label": "x, from the block before", "shape": shape}]
    rows += [{"kind": "box", "label": n, "shape": shape, "width": 2.2, "colour": _COLOURS["block"]} for n in names]
    return rows + [{"kind": "add", "label": "x + F(x)", "shape": shape}, {"kind": "text", "label": "to the next block"}]


def draw_generator(model, lr_size: int = 24):
    """A diagram of a generator built by ``srlib.models.generator``: its layers top to bottom, each box with the
    shape it outputs for an ``lr_size`` x ``lr_size`` LR image (computed by the network, ``layer_shapes``), wider
    for larger images, the residual blocks' skips and the long skip in red; right, the inside of one residual
    block. Up to four residual blocks are drawn, the rest said in words."""
    arch = model.architecture
    blocks, filters, norm = arch["blocks"], arch["filters"], arch["batch_norm"]
    shapes = layer_shapes(model, lr_size)
    sides = [s[0] for s in shapes.values()]
    width = lambda name: _width(shapes[name][0], min(sides), max(sides))  # noqa: E731
    bn = " + BN" if norm else ""
    rows = [{"kind": "box", "label": "LR image, [0, 1] → [−1, 1]", "shape": _shape_text(shapes["to_pm1"]),
             "width": width("to_pm1"), "colour": _COLOURS["io"]},
            {"kind": "box", "label": f"9×9 conv, {filters} filters, PReLU", "shape": _shape_text(shapes["head_prelu"]),
             "width": width("head_prelu"), "colour": _COLOURS["conv"]}]
    skips = []
    shown = list(range(blocks)) if blocks <= 4 else [0, 1, None, blocks - 1]
    for i in shown:
        if i is None:
            rows.append({"kind": "text", "label": f"⋮  blocks 3 to {blocks - 1}, the same"})
            continue
        rows.append({"kind": "box", "label": f"residual block {i + 1}: F(x)", "width": width(f"block{i}_add"),
                     "colour": _COLOURS["block"]})
        rows.append({"kind": "add", "shape": _shape_text(shapes[f"block{i}_add"])})
        skips.append((len(rows) - 2, len(rows) - 1, ""))
    first_block = 2
    rows.append({"kind": "box", "label": f"3×3 conv{bn}", "shape": _shape_text(shapes["body_conv"]),
                 "width": width("body_conv"), "colour": _COLOURS["conv"]})
    rows.append({"kind": "add", "shape": _shape_text(shapes["long_skip"])})
    skips.append((first_block, len(rows) - 1, "long skip"))
    for i in range(int(np.log2(arch["scale"]))):
        rows.append({"kind": "box", "label": f"3×3 conv, {4 * filters} filters", "width": width(f"up{i}_conv"),
                     "shape": _shape_text(shapes[f"up{i}_conv"]), "colour": _COLOURS["conv"]})
        rows.append({"kind": "box", "label": "pixel shuffle ×2, PReLU", "width": width(f"up{i}_prelu"),
                     "shape": _shape_text(shapes[f"up{i}_prelu"]), "colour": _COLOURS["shuffle"]})
    rows.append({"kind": "box", "label": "9×9 conv to RGB", "shape": _shape_text(shapes["tail_conv"]),
                 "width": width("tail_conv"), "colour": _COLOURS["conv"]})
    rows.append({"kind": "box", "label": "SR image, [−1, 1] → [0, 1]", "shape": _shape_text(shapes["from_pm1"]),
                 "width": width("from_pm1"), "colour": _COLOURS["io"]})
    inside = _block_rows(norm, _shape_text(shapes["block0_add"]))
    fig, (left, right) = _figure([(6.1, rows), (4.1, inside)],
                                 f"The generator for a {lr_size}×{lr_size} LR image: {blocks} residual blocks, "
                                 f"{filters} filters, ×{arch['scale']}\n(shapes: height × width × channels)")
    _draw_column(left, rows, skips, centre=2.9, shape_x=5.15)
    _draw_column(right, inside, [(1, len(inside) - 2, "skip: x")], centre=1.75, shape_x=3.0)
    right.text(1.75, 0.05, "inside one residual block", ha="center", va="top", fontsize=_FONT + 1, fontweight="bold")
    return fig


def draw_discriminator(model):
    """A diagram of a discriminator built by ``srlib.models.discriminator``: its convolutions top to bottom with
    their filters and strides, each box with the shape it outputs for the patch size it was built for, narrower
    as the strides shrink the patch, then the dense layers and the logit."""
    shapes = layer_shapes(model)
    size = model.input.shape[1]
    convs = [layer for layer in model.layers if re.fullmatch(r"conv\d+", layer.name)]
    sides = [shapes[c.name][0] for c in convs] + [size]
    width = lambda side: _width(side, min(sides), max(sides), base=3.5, span=0.9)  # noqa: E731
    rows = [{"kind": "box", "label": "patch, [0, 1] → [−1, 1]", "shape": _shape_text(shapes["to_pm1"]),
             "width": width(size), "colour": _COLOURS["io"]}]
    for conv in convs:
        i = conv.name[4:]
        parts = [f"3×3 conv, {conv.filters} filters, stride {conv.strides[0]}"]
        parts += ["BN"] if f"bn{i}" in shapes else []
        last = f"lrelu{i}"
        rows.append({"kind": "box", "label": ", ".join(parts + ["LReLU"]), "shape": _shape_text(shapes[last]),
                     "width": width(shapes[last][0]), "colour": _COLOURS["conv"]})
    dense = model.get_layer("dense")
    rows += [{"kind": "box", "label": "flatten", "shape": f"{shapes['flatten'][0]:,}", "width": 2.6,
              "colour": _COLOURS["io"]},
             {"kind": "box", "label": f"dense {dense.units:,}, LReLU", "shape": f"{shapes['dense_lrelu'][0]:,}",
              "width": 2.6, "colour": _COLOURS["dense"]},
             {"kind": "box", "label": "dense 1: the logit z", "shape": f"{shapes['logit'][0]}",
              "width": 2.6, "colour": _COLOURS["dense"]},
             {"kind": "text", "label": "P(real) = σ(z), in the loss"}]
    fig, (ax,) = _figure([(7.4, rows)], f"The discriminator for a {size}×{size} patch\n"
                         "(shapes: height × width × channels)")
    _draw_column(ax, rows, [], centre=2.75, shape_x=5.35)
    return fig
