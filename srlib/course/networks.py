"""The two networks as chapters 2 and 3 show them: their Keras code, a diagram, their parameters by part.

``source_markdown`` gives the ``srlib.models`` builders' own code as Markdown; ``layer_shapes`` the output shape
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
