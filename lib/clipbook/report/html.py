"""HTML reports: one page per executed notebook and an index over all papers.

Pages render offline: MathJax is served from a copy next to the reports (from the
jupyter-server-mathjax package) instead of nbconvert's default CDN, and the index is plain HTML+CSS.
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

from clipbook.report.record import effect_text

STATIC = "_static"
MATHJAX_CONFIG = "MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"  # the config this MathJax copy ships


def install_mathjax(report_dir: Path) -> str:
    """Copy MathJax next to the reports once; return its URL relative to the pages."""
    import jupyter_server_mathjax

    source = Path(jupyter_server_mathjax.__file__).parent / "static"
    target = report_dir / STATIC / "mathjax"
    if not (target / "MathJax.js").exists():
        shutil.copytree(source, target, dirs_exist_ok=True)
    return f"{STATIC}/mathjax/{MATHJAX_CONFIG}"


def notebook_to_html(notebook_path: Path, html_path: Path) -> Path:
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(template_name="lab")
    exporter.mathjax_url = install_mathjax(html_path.parent)
    body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": notebook_title(notebook)}})
    # require.js only serves ipywidgets, which the reports do not use: drop the CDN script
    body = re.sub(r'<script src="https://[^"]*/require(\.min)?\.js"></script>', "", body)
    html_path.write_text(body, encoding="utf-8")
    return html_path


def notebook_title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            return cell.source.lstrip().splitlines()[0].lstrip("# ").strip()
    return "clipbook notebook"


VERDICT_CLASS = {"holds": "ok", "does not hold": "bad", "inconclusive": "warn", "not tested": "na"}


def _claim_rows(paper: dict) -> str:
    rows = []
    for claim in paper.get("claims", []):
        verdict = claim.get("verdict", "not tested")
        rows.append(
            f"<div class='claim'><span class='{VERDICT_CLASS.get(verdict, 'na')}'>{html.escape(verdict)}</span> "
            f"{html.escape(claim.get('statement', ''))} — effect {effect_text(claim)} vs margin {claim.get('margin', 0):+.2f}"
            + (f"; paper {claim['paper_effect']:+.2f}" if claim.get("paper_effect") is not None else "")
            + f"<div class='title'>{html.escape(claim.get('sentence') or claim.get('reason') or '')}</div></div>")
    return "".join(rows) or "<span class='na'>no claims recorded</span>"


def render_index(results: dict) -> str:
    """The index page: per paper its status, runtime, and every claim with its verdict, effect and interval."""
    profile = results["profile"]
    papers = {slug: paper for slug, paper in results["papers"].items() if paper.get("kind", "paper") == "paper"}
    workbook = {slug: paper for slug, paper in results["papers"].items() if paper.get("kind", "paper") != "paper"}
    counts = {verdict: 0 for verdict in VERDICT_CLASS}
    for paper in papers.values():
        for claim in paper.get("claims", []):
            counts[claim.get("verdict", "not tested")] = counts.get(claim.get("verdict", "not tested"), 0) + 1
    rows = []
    for slug, paper in sorted(papers.items()):
        status = paper.get("status", "?")
        rows.append(
            "<tr>"
            f"<td><a href='{html.escape(paper.get('html') or '#')}'>{html.escape(slug)}</a>"
            f"<div class='title'>{html.escape(paper.get('title', ''))}</div></td>"
            f"<td class='{'ok' if status == 'ok' else 'bad'}'>{html.escape(status)}</td>"
            f"<td class='num'>{paper.get('runtime_s', 0):.0f} s</td>"
            f"<td>{_claim_rows(paper)}"
            + (f"<div class='bad'>{html.escape(paper['error'])}</div>" if paper.get("error") else "")
            + "</td></tr>"
        )
    workbook_rows = "".join(
        f"<tr><td><a href='{html.escape(page.get('html') or '#')}'>{html.escape(slug)}</a>"
        f"<div class='title'>{html.escape(page.get('title', ''))}</div></td>"
        f"<td class='{'ok' if page.get('status') == 'ok' else 'bad'}'>{html.escape(page.get('status', '?'))}</td>"
        f"<td class='num'>{page.get('runtime_s', 0):.0f} s</td><td>{html.escape(page.get('summary', ''))}"
        + (f"<div class='bad'>{html.escape(page['error'])}</div>" if page.get("error") else "")
        + "</td></tr>" for slug, page in sorted(workbook.items()))
    workbook_section = "" if not workbook else (
        "<h2>Workbook pages</h2><p>Pages about the workbook itself (not papers), such as the toy suite's "
        "calibration against real CLIP baselines.</p><table><thead><tr><th>page</th><th>status</th><th>runtime</th>"
        f"<th>summary</th></tr></thead><tbody>{workbook_rows}</tbody></table>")
    verdict_heading = "effect on the toy world" if profile == "offline" else "verdict"
    explanation = (
        "Offline, every notebook runs the paper's method against the paper's own baseline on the procedural toy "
        "world with the library's tiny CLIP: a verdict here is the <em>effect on the toy world</em>, not a test of "
        "the paper's numbers." if profile == "offline" else
        "A rehearsal runs each paper's own code path on its real architectures with random weights and on generated "
        "data in the real datasets' layouts: it shows that the paper profile runs, and no verdict is tested." if
        profile == "rehearsal" else
        "Each claim is tested on this profile's rows; reported numbers are compared in each paper's record.")
    summary = " · ".join(f"<span class='{VERDICT_CLASS[v]}'>{n} {v}</span>" for v, n in counts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>clipbook — {html.escape(profile)} profile</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .45rem .6rem; vertical-align: top; text-align: left; }}
th {{ background: #f4f4f6; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.title {{ color: #666; font-size: .82em; }}
.claim {{ margin-bottom: .4rem; }}
.ok {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #c62828; font-weight: 600; }}
.warn {{ color: #b26a00; font-weight: 600; }} .na {{ color: #777; font-weight: 600; }}
</style></head><body>
<h1>clipbook — {html.escape(profile)} profile</h1>
<p>{explanation}</p>
<p>{len(papers)} papers · {summary}. Intervals are 95 % Student-t intervals over seeds; provenance (commit, library
hash, parameters, models, datasets, device, packages) is in <a href="results.json">results.json</a>.</p>
<table><thead><tr><th>paper</th><th>status</th><th>runtime</th><th>claims — {verdict_heading}</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
{workbook_section}
</body></html>
"""
