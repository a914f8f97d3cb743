"""HTML reports: one page per executed notebook and an index over all papers.

Pages render offline: MathJax is served from a copy next to the reports (from the
jupyter-server-mathjax package) instead of nbconvert's default CDN, and the index is plain HTML+CSS.
"""
from __future__ import annotations

import html
import re
import shutil
from pathlib import Path

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


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _verdict(holds) -> str:
    return {True: "<span class='ok'>holds</span>", False: "<span class='bad'>does not hold</span>",
            None: "<span class='na'>not tested</span>"}[holds]


def render_index(results: dict, titles: dict[str, str]) -> str:
    """The index page: one row per paper with status, runtime, key metric vs baseline, verdict."""
    rows = []
    for slug, paper in sorted(results["papers"].items()):
        metrics, baseline, reported = paper.get("metrics", {}), paper.get("baseline", {}), paper.get("reported", {})
        key, base_key = paper.get("key_metric"), paper.get("key_baseline")
        key_value = metrics.get(key) if key else None
        base_value = baseline.get(base_key) if base_key else None
        reported_value = reported.get(key) if key else None
        status = paper.get("status", "?")
        rows.append(
            "<tr>"
            f"<td><a href='{html.escape(paper.get('html') or '#')}'>{html.escape(slug)}</a>"
            f"<div class='title'>{html.escape(titles.get(slug, ''))}</div></td>"
            f"<td class='{'ok' if status == 'ok' else 'bad'}'>{html.escape(status)}</td>"
            f"<td class='num'>{paper.get('runtime_s', 0):.0f} s</td>"
            f"<td>{html.escape(key or '—')}</td><td class='num'>{_fmt(key_value)}</td>"
            f"<td class='num'>{_fmt(base_value)}<div class='title'>{html.escape(base_key or '')}</div></td>"
            f"<td class='num'>{_fmt(reported_value)}</td>"
            f"<td>{_verdict(paper.get('claim_holds'))}<div class='title'>{html.escape(paper.get('claim', ''))}</div>"
            + (f"<div class='bad'>{html.escape(paper['error'])}</div>" if paper.get("error") else "")
            + "</td></tr>"
        )
    prov = results.get("provenance", {})
    prov_line = " · ".join(f"{k}: {html.escape(str(v))}" for k, v in prov.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>clipbook — {html.escape(results['profile'])} profile</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .45rem .6rem; vertical-align: top; text-align: left; }}
th {{ background: #f4f4f6; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
.title {{ color: #666; font-size: .82em; }}
.ok {{ color: #1a7f37; font-weight: 600; }} .bad {{ color: #c62828; font-weight: 600; }} .na {{ color: #777; }}
.prov {{ color: #666; font-size: .85em; }}
</style></head><body>
<h1>clipbook — {html.escape(results['profile'])} profile</h1>
<p class="prov">{prov_line}</p>
<p>Each row is one paper's notebook, executed with papermill. <em>Key metric</em> is the paper's headline number as
reproduced here; <em>baseline</em> is the paper's own baseline on the same data and seeds; <em>reported</em> is the
number the paper reports (paper profile only: the offline toy world has no reported numbers).</p>
<table><thead><tr><th>paper</th><th>status</th><th>runtime</th><th>key metric</th><th>reproduced</th>
<th>baseline</th><th>reported</th><th>claim</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
</body></html>
"""
