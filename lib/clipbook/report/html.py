"""HTML pages: one per executed notebook, nbconvert's rendering under a header band with the claims, verdicts and
provenance; the index over all papers is `clipbook.report.dashboard`.

Pages render offline from file://: the `clipbook` nbconvert template (templates/clipbook) drops nbconvert's CDN
scripts (require.js, mermaid) and loads MathJax 3 from a copy beside the pages (`install_mathjax`), taken from
the django-static-mathjax package (MathJax's own browser builds; no Django needed).
"""
from __future__ import annotations

import html
import shutil
from importlib import resources
from pathlib import Path

from clipbook.papers import FAMILIES, PAPERS
from clipbook.report.provenance import describe
from clipbook.report.record import VERDICT_COLOURS, claims_table

STATIC = "_static"
# one file with every TeX extension built in: nothing is loaded on demand, and the SVG output needs no web fonts
MATHJAX_BUILD = "tex-svg-full.js"
TEMPLATES = Path(__file__).resolve().parent / "templates"


def install_mathjax(report_dir: Path) -> str:
    """Copy MathJax next to the reports once; return its URL relative to the pages."""
    import mathjax  # the django-static-mathjax distribution

    source = Path(mathjax.__file__).parent / "static" / "mathjax" / "es5" / MATHJAX_BUILD
    target = report_dir / STATIC / MATHJAX_BUILD
    if not target.exists() or target.stat().st_size != source.stat().st_size:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    return f"{STATIC}/{MATHJAX_BUILD}"


def verdict_class(verdict: str) -> str:
    """The CSS class of a verdict's badge: "does not hold" -> "verdict-does-not-hold"."""
    return "verdict-" + verdict.replace(" ", "-")


def report_css() -> str:
    """The stylesheet the pages and the index share, with the verdict colours of the record's own tables."""
    colours = "".join(f".{verdict_class(verdict)} {{ --verdict: {colour}; }}\n"
                      for verdict, colour in VERDICT_COLOURS.items())
    return colours + resources.files("clipbook.report").joinpath("static/report.css").read_text(encoding="utf-8")


def paper_links(slug: str, record: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(label, href) of a paper's page, the paper, its official code and its executed notebook; `prefix` is the
    path from the linking page to the paper's report folder."""
    links = [("page", prefix + record["html"])] if record.get("html") else []
    registered = PAPERS.get(slug, {})
    links += [(label, registered[key]) for key, label in (("paper", "paper"), ("code", "official code"))
              if registered.get(key)]
    links.append(("executed notebook", f"{prefix}notebooks/{slug}.ipynb"))
    job = record.get("job") or {}
    if job.get("log"):  # a cluster job's output (batch.slurm), relative to the report folder
        links.append((f"{job.get('executor', 'cluster')} job {job.get('id', '')} log", prefix + job["log"]))
    return links


def link_list(links: list[tuple[str, str]]) -> str:
    return " · ".join(f"<a href='{html.escape(href)}'>{html.escape(label)}</a>" for label, href in links)


def provenance_list(lines: dict[str, str]) -> str:
    """`provenance.describe`'s lines as a definition list (empty without lines)."""
    if not lines:
        return ""
    return "<dl class='provenance'>" + "".join(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>"
                                               for label, text in lines.items()) + "</dl>"


def failed_preconditions(record: dict) -> list[str]:
    """Details of the preconditions that failed, measured by the notebook or required by a claim, each once."""
    checks = list(record.get("preconditions") or [])
    checks += [check for claim in record.get("claims") or [] for check in claim.get("preconditions") or []]
    return list(dict.fromkeys(check.get("detail") or check.get("id", "?") for check in checks
                              if not check.get("passed", True)))


def family_label(slug: str, record: dict) -> str:
    """The family and what it covers ("adaptation — few-shot, ..."); a workbook page or an unregistered slug
    says so."""
    if slug in PAPERS:
        family = PAPERS[slug]["family"]
        return f"{family} — {FAMILIES[family]}"
    return "workbook page" if record.get("kind") == "workbook" else "not in clipbook.papers"


def page_band(slug: str, record: dict) -> str:
    """The header band of a paper's page: back to the index, links, status, claims with verdicts, failed
    preconditions and provenance. Reads only the fields it shows, so a record with more fields renders the same."""
    status = record.get("status", "not run")
    facts = [html.escape(family_label(slug, record)),
             f"<span class='status-{html.escape(status)}'>{html.escape(status)}</span>"]
    if record.get("runtime_s") is not None:
        facts.append(f"{record['runtime_s']:.0f} s")
    if record.get("profile"):
        facts.append(f"{html.escape(record['profile'])} profile")
    parts = [f"<nav><a href='index.html'>← index of all papers</a> · "
             f"{link_list([link for link in paper_links(slug, record) if link[0] != 'page'])} · "
             f"<a href='results.json'>results.json</a></nav>",
             f"<p class='facts'>{' · '.join(facts)}</p>"]
    if record.get("error"):
        parts.append(f"<p class='error'>{html.escape(record['error'])}</p>")
    if record.get("summary"):
        parts.append(f"<p><b>{html.escape(record['summary'])}</b></p>")
    parts.append(claims_table(record.get("claims") or [], record.get("profile", "")))
    failed = failed_preconditions(record)
    if failed:
        parts.append("<p class='failed-preconditions'><b>Failed preconditions:</b> "
                     + "; ".join(html.escape(detail) for detail in failed) + "</p>")
    parts.append(provenance_list(describe(record.get("provenance") or {})))
    return f"<header class='clipbook-band' id='clipbook-band'>{''.join(parts)}</header>"


def notebook_to_html(notebook_path: Path, html_path: Path, record: dict | None = None) -> Path:
    """Render an executed notebook to its page, with the header band written from its `record` (a results.json
    entry; without one the band has only the links)."""
    import nbformat
    from nbconvert import HTMLExporter

    notebook = nbformat.read(notebook_path, as_version=4)
    exporter = HTMLExporter(template_name="clipbook", extra_template_basedirs=[str(TEMPLATES)])
    exporter.mathjax_url = install_mathjax(html_path.parent)
    body, _ = exporter.from_notebook_node(notebook, resources={
        "metadata": {"name": notebook_title(notebook)}, "clipbook_css": report_css(),
        "clipbook_band": page_band(html_path.stem, record or {})})
    html_path.write_text(body, encoding="utf-8")
    return html_path


def notebook_title(notebook) -> str:
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("#"):
            return cell.source.lstrip().splitlines()[0].lstrip("# ").strip()
    return "clipbook notebook"
