"""Minimal notebooks on the contract, written by the batch tests (not a test module)."""
from pathlib import Path

import nbformat


def write_notebook(path: Path, body: str, *, title: str = "# A deliberately failing notebook",
                   claims: str = 'from clipbook.claims import Claim\nCLAIMS = [Claim("c", "A beats B", "A", "B")]',
                   needs: str = "") -> None:
    """A minimal notebook on the contract: its tagged cells, then `body`."""
    notebook = nbformat.v4.new_notebook()
    cells = {"parameters": 'profile = "offline"',
             "parameter-spec": f'from clipbook.batch.parameters import declare\nSPEC = declare("profile"{needs})',
             "claims": claims}
    tagged = []
    for tag, source in cells.items():
        tagged.append(nbformat.v4.new_code_cell(source))
        tagged[-1].metadata["tags"] = [tag]
    notebook.cells = [nbformat.v4.new_markdown_cell(title), *tagged, nbformat.v4.new_code_cell(body)]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)
