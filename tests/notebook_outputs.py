"""What the tests that run chapters through papermill share: reading an executed notebook."""

import nbformat


def read_executed(path) -> tuple[str, int]:
    """The text an executed notebook's code cells printed or displayed as Markdown, and how many PNG images they
    showed; fails if a cell ended in an error."""
    notebook = nbformat.read(path, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, errors[0].get("evalue")
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    text += "".join(o.get("data", {}).get("text/markdown", "") for o in outputs)
    images = sum("image/png" in o.get("data", {}) for o in outputs)
    return text, images
