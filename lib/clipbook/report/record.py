"""The results record a notebook leaves behind (results contract v2, schema in reports/README.md).

A notebook ends with `record(session, rows=..., claims=..., reported=..., preconditions=...)`. The library
evaluates the claims on the rows, displays the verdicts (with their generated sentences) and the reported-
versus-reproduced comparison, and carries the same record as JSON under RECORD_MIME in that output, which
the batch runner reads back from the executed notebook: the record cannot disagree with what the page shows.
Provenance (commit, timings, package versions) rides in the output's metadata, which nbval does not compare.
"""
from __future__ import annotations

import html
import json
from dataclasses import asdict

from clipbook.claims import Claim, Precondition, evaluate, with_profile_preconditions
from clipbook.report.rows import as_frame, compare_with_reported, records

RECORD_MIME = "application/vnd.clipbook.record+json"
SCHEMA_VERSION = 2


def use_style() -> None:
    """One seaborn look for every figure of the workbook."""
    import matplotlib
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({"figure.dpi": 96, "savefig.dpi": 96, "figure.figsize": (7.5, 4.2),
                                "axes.titleweight": "bold", "svg.hashsalt": "clipbook"})


KINDS = ("paper", "workbook")


def make_record(*, rows, claims: list[Claim], reported=None, preconditions: list[Precondition] | None = None,
                profile: str = "offline", notes: str = "", kind: str = "paper", artifacts: dict | None = None,
                summary: str = "") -> dict:
    """The record's data (without provenance): rows, reported rows, evaluated claims, comparison.

    A workbook page that is not a paper (kind "workbook", e.g. the toy-suite calibration) may state no claims;
    its `summary` is what the index shows, and each of its `artifacts` ({file name: JSON data}) is written
    beside results.json by the batch."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not claims and kind == "paper":
        raise ValueError("a record states at least one claim of the paper")
    for name in artifacts or {}:
        if not isinstance(name, str) or "/" in name or not name.endswith(".json"):
            raise ValueError(f"an artifact is a plain file name ending in .json, got {name!r}")
    for claim in claims:
        if not isinstance(claim, Claim):
            raise TypeError(f"claims must be clipbook.claims.Claim, got {type(claim).__name__}")
    preconditions = list(preconditions or [])
    for item in preconditions:
        if not isinstance(item, Precondition):
            raise TypeError(f"preconditions must be built with claims.at_least / claims.fact, got {item!r}")
    claims, preconditions = with_profile_preconditions(claims, preconditions, profile)
    frame, reported_frame = as_frame(rows), as_frame(reported)
    if frame.empty:
        raise ValueError("a record needs result rows")
    verdicts = evaluate(claims, frame, preconditions=preconditions, reported=reported_frame,
                        toy=profile == "offline")
    comparison = compare_with_reported(frame, reported_frame)
    comparison = comparison[comparison["reproduced"].notna()] if len(comparison) else comparison
    return {
        "schema": SCHEMA_VERSION,
        "profile": profile,
        "rows": records(frame),
        "reported": records(reported_frame),
        "claims": _json_safe(verdicts),
        "preconditions": [asdict(p) for p in preconditions],
        "comparison": records(comparison),
        "notes": notes,
        **({"kind": kind, "summary": summary, "artifacts": _json_safe(artifacts or {})} if kind != "paper" else {}),
    }


def _json_safe(value):
    return json.loads(json.dumps(value, default=float))


VERDICT_COLOURS = {"holds": "#1a7f37", "does not hold": "#c62828", "inconclusive": "#b26a00", "not tested": "#666"}


def effect_text(claim: dict) -> str:
    """A verdict's effect with its interval, as the record and the index show it: "+1.25 [+0.50, +2.00]"."""
    if claim["effect"] is None:
        return "—"
    text = f"{claim['effect']:+.2f}"
    if claim.get("interval"):
        text += f" [{claim['interval'][0]:+.2f}, {claim['interval'][1]:+.2f}]"
    return text


def claims_table(claims: list[dict], profile: str) -> str:
    """The claims as an HTML table: statement, verdict, effect [CI], margin, the paper's effect and the sentence
    written from the numbers. The notebook's record output and the page's header band show this same table."""
    if not claims:
        return ""
    heading = "Effect on the toy world" if profile == "offline" else "Verdict"
    rows = "".join(
        f"<tr><td>{html.escape(c['statement'])}</td>"
        f"<td style='color:{VERDICT_COLOURS.get(c['verdict'], '#666')};font-weight:600'>"
        f"{html.escape(c['verdict'])}</td>"
        f"<td style='text-align:right'>{effect_text(c)}</td><td style='text-align:right'>{c['margin']:+.2f}</td>"
        f"<td style='text-align:right'>"
        f"{'—' if c.get('paper_effect') is None else format(c['paper_effect'], '+.2f')}</td>"
        f"<td>{html.escape(c.get('sentence') or c.get('reason') or '')}</td></tr>" for c in claims)
    return (f"<table><thead><tr><th>claim</th><th>{heading}</th><th>effect [CI]</th>"
            f"<th>margin</th><th>paper</th><th>from the numbers</th></tr></thead><tbody>{rows}</tbody></table>")


def _html(record: dict) -> str:
    rehearsal = [p for p in record["preconditions"] if p["id"] == "weights-are-trained" and not p["passed"]]
    parts = [f"<p><b>Rehearsal, not a test:</b> {html.escape(rehearsal[0]['detail'])}.</p>"] if rehearsal else []
    parts.append(claims_table(record["claims"], record["profile"]))
    if record["preconditions"]:
        parts.append("<p><b>Preconditions:</b> " + "; ".join(
            f"{'✓' if p['passed'] else '✗'} {html.escape(p['detail'])}" for p in record["preconditions"]) + "</p>")
    if record["comparison"]:
        parts.append("<p><b>Reproduced vs reported:</b> " + "; ".join(
            f"{html.escape(r['method'])} {html.escape(r['dataset'])}"
            + (f" {r['shots']}-shot" if "shots" in r else "")
            + f": {r['reproduced']:.2f} vs {r['reported']:.2f} ({r['delta']:+.2f})" for r in record["comparison"])
            + "</p>")
    if record.get("summary"):
        parts.append(f"<p><b>{html.escape(record['summary'])}</b></p>")
    if record["notes"]:
        parts.append(f"<p>{html.escape(record['notes'])}</p>")
    return "<div class='clipbook-record'>" + "".join(parts) + "</div>"


def _text(record: dict) -> str:
    lines = [record["summary"]] if record.get("summary") else []
    for claim in record["claims"]:
        lines.append(f"[{claim['verdict'].upper()}] {claim['statement']}")
        lines.append(f"    {claim['sentence']}")
    for p in record["preconditions"]:
        lines.append(f"  precondition {'ok  ' if p['passed'] else 'FAIL'} {p['detail']}")
    for r in record["comparison"]:
        lines.append(f"  reported {r['method']} {r['dataset']} {r.get('shots', '')}: reproduced {r['reproduced']:.2f}"
                     f" vs reported {r['reported']:.2f} ({r['delta']:+.2f})")
    return "\n".join(lines)


def record(session, *, rows, claims: list[Claim] = (), reported=None,
           preconditions: list[Precondition] | None = None, notes: str = "", kind: str = "paper",
           artifacts: dict | None = None, summary: str = "") -> None:
    """Evaluate and display the notebook's results record (see module docstring). It returns nothing, so the
    last cell of a notebook stores no execute_result holding volatile provenance for nbval to compare; read it
    back with `read_record` or from reports/<profile>/results.json."""
    from IPython.display import display

    from clipbook.report import provenance

    result = make_record(rows=rows, claims=list(claims), reported=reported, preconditions=preconditions,
                         profile=session.profile, notes=notes, kind=kind, artifacts=artifacts, summary=summary)
    stamp = provenance.collect(parameters=session.parameters, device=session.device, started=session.started)
    # serialised as a string: nbval's sanitizers run regexes over every output value
    display({RECORD_MIME: json.dumps(result, sort_keys=True), "text/html": _html(result), "text/plain": _text(result)},
            metadata={RECORD_MIME: {"provenance": stamp}}, raw=True)


def read_record(notebook) -> dict | None:
    """The last record displayed in an executed notebook (nbformat node), provenance included, or None."""
    found = None
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if RECORD_MIME in data:
                value = data[RECORD_MIME]
                found = json.loads(value) if isinstance(value, str) else dict(value)
                found["provenance"] = output.get("metadata", {}).get(RECORD_MIME, {}).get("provenance", {})
    return found
