"""The results record a notebook leaves behind, and the figure style all notebooks share.

A notebook ends with `record(...)`: it displays the numbers as a table (what the reader sees) and
carries the same numbers as JSON under RECORD_MIME in that output, which the batch runner reads
back from the executed notebook. The record therefore cannot disagree with what the page shows.
"""
from __future__ import annotations

import json
import math
import numbers

RECORD_MIME = "application/vnd.clipbook.record+json"


def use_style() -> None:
    """One seaborn look for every figure of the workbook."""
    import matplotlib
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 96, "savefig.dpi": 96, "figure.figsize": (7.5, 4.2),
                                "axes.titleweight": "bold", "svg.hashsalt": "clipbook"})


def _clean_numbers(name: str, values: dict | None) -> dict:
    out = {}
    for key, value in (values or {}).items():
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}[{key!r}] must be a number, got {type(value).__name__} {value!r}")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise ValueError(f"{name}[{key!r}] is {value}; record only finite numbers")
        out[str(key)] = round(value, 4)
    return out


def make_record(*, metrics: dict, baseline: dict | None = None, claim: str, claim_holds: bool | None,
                reported: dict | None = None, key_metric: str | None = None, key_baseline: str | None = None,
                notes: str = "") -> dict:
    if claim_holds not in (True, False, None):
        raise TypeError(f"claim_holds must be True, False or None, got {claim_holds!r}")
    record = {
        "metrics": _clean_numbers("metrics", metrics),
        "baseline": _clean_numbers("baseline", baseline),
        "reported": _clean_numbers("reported", reported),
        "claim": str(claim),
        "claim_holds": claim_holds,
        "key_metric": key_metric or next(iter(metrics), None),
        "key_baseline": key_baseline or next(iter(baseline or {}), None),
        "notes": notes,
    }
    for field, source in (("key_metric", "metrics"), ("key_baseline", "baseline")):
        if record[field] is not None and record[field] not in record[source]:
            raise KeyError(f"{field} {record[field]!r} is not among the {source}: {sorted(record[source])}")
    return record


def _html_table(record: dict) -> str:
    rows = []
    for section in ("metrics", "baseline", "reported"):
        for key, value in record[section].items():
            rows.append(f"<tr><td>{section}</td><td>{key}</td><td style='text-align:right'>{value:.2f}</td></tr>")
    verdict = {True: "holds", False: "does not hold", None: "not tested"}[record["claim_holds"]]
    return ("<div class='clipbook-record'><p><b>Claim:</b> " + record["claim"] + f" — <b>{verdict}</b></p>"
            + "<table><thead><tr><th>kind</th><th>name</th><th>value</th></tr></thead><tbody>"
            + "".join(rows) + "</tbody></table>"
            + (f"<p>{record['notes']}</p>" if record["notes"] else "") + "</div>")


def _text_table(record: dict) -> str:
    verdict = {True: "HOLDS", False: "DOES NOT HOLD", None: "NOT TESTED"}[record["claim_holds"]]
    lines = [f"Claim: {record['claim']} -> {verdict}"]
    for section in ("metrics", "baseline", "reported"):
        for key, value in record[section].items():
            lines.append(f"  {section:<9} {key:<40} {value:8.2f}")
    return "\n".join(lines)


def record(**kwargs) -> dict:
    """Validate, display and return the notebook's results record (see module docstring)."""
    from IPython.display import display

    result = make_record(**kwargs)
    # serialised as a string: nbval's sanitizers run regexes over every output value
    display({RECORD_MIME: json.dumps(result, sort_keys=True), "text/html": _html_table(result),
             "text/plain": _text_table(result)}, raw=True)
    return result


def read_record(notebook) -> dict | None:
    """The last record displayed in an executed notebook (nbformat node), or None."""
    found = None
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIME in data:
                value = data[RECORD_MIME]
                found = json.loads(value) if isinstance(value, str) else dict(value)
    return found
