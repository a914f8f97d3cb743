"""The index: a static dashboard over every profile that has run (reports/<profile>/results.json).

One HTML file, no server and no network: figures are inline images (SVG drawn by `clipbook.report.figures`), the
stylesheet and the one plain script (static/dashboard.js: profile switch, sortable and filterable table) are
inlined from the package. Each profile's folder gets the same dashboard opened on its own profile; links into a
profile go through `../<profile>/`, so they resolve from any of them.

Per profile: papers grouped by family (clipbook.papers) with ok/failed and verdict counts, the effects of every
claim (and, where a run covers the paper's own numbers, reproduced against reported), the toy suite's calibration,
a sortable and filterable table of claims, one card per paper and the workbook pages. Every sentence about a result
is written from the numbers (the claims' sentences, counts), never stated in fixed prose.
"""
from __future__ import annotations

import base64
import html
import io
import warnings
from importlib import resources

from clipbook.claims import VERDICTS
from clipbook.papers import FAMILIES, PAPERS
from clipbook.report.html import (failed_preconditions, link_list, paper_links, provenance_list, report_css,
                                  verdict_class)
from clipbook.report.provenance import describe
from clipbook.report.record import effect_text

CALIBRATION_ARTIFACT = "calibration.json"
UNREGISTERED = "not in clipbook.papers"
EXPLANATION = {
    "offline": "Offline, every notebook runs the paper's method against the paper's own baseline on the procedural "
               "toy world with the library's tiny CLIP: a verdict is the <em>effect on the toy world</em>, not a test "
               "of the paper's numbers.",
    "paper": "The paper profile runs the paper's checkpoints on the paper's datasets: each claim is tested on its "
             "rows, and each reported number is compared with its reproduced value.",
    "rehearsal": "A rehearsal runs each paper's own code path on its real architectures with random weights, on "
                 "generated data in the real datasets' layouts: it shows that the paper profile runs end to end, and "
                 "no claim is tested (every verdict is <em>not tested</em>).",
}


def dashboard_script() -> str:
    return resources.files("clipbook.report").joinpath("static/dashboard.js").read_text(encoding="utf-8")


def render_index(reports: dict[str, dict], current: str) -> str:
    """The index page.

    Args:
        reports: {profile: its results.json}, every profile that has run.
        current: the profile whose folder the page is written to; it is shown first, the others behind the switch
            (and side by side in the comparison view).

    Returns:
        The page's HTML.
    """
    if current not in reports:
        raise ValueError(f"no results for profile {current!r}; profiles with results: {', '.join(reports)}")
    views = {profile: _profile_section(profile, results) for profile, results in reports.items()}
    if len(reports) > 1:
        views["side by side"] = _comparison(reports)
    switch = "" if len(views) == 1 else "<nav class='profile-switch' aria-label='profile'>" + "".join(
        f"<button type='button' value='{html.escape(name)}' aria-pressed='{str(name == current).lower()}'>"
        f"{html.escape(name)}</button>" for name in views) + "</nav>"
    sections = "".join(f"<section class='view' data-view-name='{html.escape(name)}'"
                       f"{'' if name == current else ' hidden'}>{body}</section>" for name, body in views.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>clipbook — {html.escape(current)} profile</title>
<style>
{report_css()}
</style></head>
<body><div class="clipbook-index">
<h1>clipbook — reproducibility workbook</h1>
<p class="muted">Profiles run: {html.escape(', '.join(reports))}. Effects are method − baseline in the claim's metric;
intervals are 95 % Student-t intervals over seeds. Provenance of every number is in each profile's results.json.</p>
{switch}
{sections}
</div>
<script>
{dashboard_script()}
</script>
</body></html>
"""


def _papers_and_pages(results: dict) -> tuple[dict, dict]:
    papers = {slug: rec for slug, rec in results["papers"].items() if rec.get("kind", "paper") == "paper"}
    pages = {slug: rec for slug, rec in results["papers"].items() if rec.get("kind", "paper") != "paper"}
    return papers, pages


def _by_family(papers: dict) -> dict[str, dict]:
    families = {family: {} for family in FAMILIES}
    for slug, record in sorted(papers.items()):
        families.setdefault(PAPERS.get(slug, {}).get("family", UNREGISTERED), {})[slug] = record
    return families


def _counts(records: dict) -> str:
    """The papers ok and failed ("2 ok · 1 failed") and their claims' verdict counts, as badges."""
    statuses = [record.get("status", "failed") for record in records.values()]
    verdicts = [claim.get("verdict", "not tested")
                for record in records.values() for claim in record.get("claims", [])]
    parts = [f"<span class='status-ok'>{statuses.count('ok')} ok</span>",
             f"<span class='status-failed'>{len(statuses) - statuses.count('ok')} failed</span>"]
    parts += [f"<span><span class='badge {verdict_class(v)}'>{verdicts.count(v)}</span> {v}</span>" for v in VERDICTS]
    return "<div class='counts'>" + "".join(parts) + "</div>"


def _profile_section(profile: str, results: dict) -> str:
    prefix = f"../{profile}/"
    papers, pages = _papers_and_pages(results)
    families = _by_family(papers)
    return (f"<h2>{html.escape(profile)} profile</h2><p>{EXPLANATION.get(profile, '')}</p>"
            f"<p>{len(papers)} papers and {len(pages)} workbook pages · "
            f"<a href='{prefix}results.json'>results.json</a></p>{_counts(papers)}"
            f"<h3>Families</h3><div class='families'>{_family_overview(families)}</div>"
            f"<h3>Figures</h3><div class='figures'>{_figures(profile, papers, pages, prefix)}</div>"
            f"<h3>Claims</h3>{_claims_table(profile, papers, prefix)}"
            + "".join(_family_cards(profile, family, members, prefix) for family, members in families.items())
            + _workbook(pages, prefix))


def _family_overview(families: dict[str, dict]) -> str:
    return "".join(
        f"<div class='family-summary{'' if members else ' empty'}'><b>{html.escape(family)}</b>"
        f"<div class='muted'>{html.escape(FAMILIES.get(family, 'slugs missing from the registry'))}</div>"
        + (_counts(members) if members else
           f"<div>no notebook yet · {len(_planned(family, members))} papers planned</div>") + "</div>"
        for family, members in families.items())


def _family_cards(profile: str, family: str, members: dict, prefix: str) -> str:
    planned = len(_planned(family, members))
    cards = "".join(_card(slug, record, prefix) for slug, record in members.items())
    return (f"<h3 id='{html.escape(profile)}-{html.escape(family.replace(' ', '-'))}'>{html.escape(family)} "
            f"<span class='muted'>({len(members)} of {len(members) + planned} papers run)</span></h3>"
            + (f"<div class='cards'>{cards}</div>" if cards else "") + _planned_list(family, members))


def _planned(family: str, members: dict) -> list[str]:
    if family not in FAMILIES:
        return []
    return [slug for slug, paper in PAPERS.items() if paper["family"] == family and slug not in members]


def _planned_list(family: str, members: dict) -> str:
    planned = _planned(family, members)
    if not planned:
        return ""
    return ("<p class='planned'>Planned, no notebook run under this profile: " + ", ".join(
        f"<a href='{html.escape(PAPERS[slug]['paper'])}' title='{html.escape(PAPERS[slug]['title'])}'>"
        f"{html.escape(slug)}</a>" for slug in planned) + "</p>")


def _card(slug: str, record: dict, prefix: str) -> str:
    status = record.get("status", "failed")
    claims = "".join(
        f"<li><details><summary><span class='badge {verdict_class(claim.get('verdict', 'not tested'))}'>"
        f"{html.escape(claim.get('verdict', 'not tested'))}</span> {html.escape(claim.get('statement', ''))} "
        f"<span class='muted'>effect {effect_text(claim)}, margin {claim.get('margin', 0):+.2f}</span></summary>"
        f"<div class='sentence'>{html.escape(claim.get('sentence') or claim.get('reason') or '')}</div>"
        "</details></li>" for claim in record.get("claims", []))
    failed = failed_preconditions(record)
    identity = describe(record.get("provenance") or {})
    shown = {label: identity[label] for label in ("models", "data", "commit") if label in identity}
    return (f"<article class='card' id='card-{html.escape(slug)}'><header><h4>{html.escape(slug)}</h4>"
            f"<span><span class='status-{html.escape(status)}'>{html.escape(status)}</span>"
            f" · {record.get('runtime_s', 0):.0f} s</span></header>"
            f"<div class='muted'>{html.escape(PAPERS.get(slug, {}).get('title') or record.get('title', ''))}</div>"
            + (f"<p class='error'>{html.escape(record['error'])}</p>" if record.get("error") else "")
            + f"<ul class='claims'>{claims or '<li class=muted>no claims recorded</li>'}</ul>"
            + ("<p><b>Failed preconditions:</b> " + "; ".join(map(html.escape, failed)) + "</p>" if failed else "")
            + provenance_list(shown)
            + f"<div>{link_list(paper_links(slug, record, prefix))}</div></article>")


def _claims_table(profile: str, papers: dict, prefix: str) -> str:
    table_id = f"claims-{profile}"
    rows = []
    for slug, record in sorted(papers.items()):
        family = PAPERS.get(slug, {}).get("family", UNREGISTERED)
        page = f"{prefix}{record['html']}" if record.get("html") else f"#card-{slug}"
        status = record.get("status", "failed")
        for claim in record.get("claims") or [{"statement": "no claims recorded", "verdict": "not tested",
                                               "effect": None}]:
            verdict = claim.get("verdict", "not tested")
            rows.append(
                f"<tr data-verdict='{html.escape(verdict)}' data-family='{html.escape(family)}'>"
                f"<td><a href='{html.escape(page)}'>{html.escape(slug)}</a></td><td>{html.escape(family)}</td>"
                f"<td class='status-{html.escape(status)}'>{html.escape(status)}</td>"
                f"<td title='{html.escape(claim.get('sentence') or claim.get('reason') or '')}'>"
                f"{html.escape(claim.get('statement', ''))}</td>"
                f"<td><span class='badge {verdict_class(verdict)}'>{html.escape(verdict)}</span></td>"
                + _number_cell(claim.get("effect"), effect_text(claim))
                + _number_cell(claim.get("margin"), _signed(claim.get("margin")))
                + _number_cell(claim.get("paper_effect"), _signed(claim.get("paper_effect")))
                + _number_cell(record.get("runtime_s"), f"{record.get('runtime_s', 0):.0f} s") + "</tr>")
    columns = [("paper", "text"), ("family", "text"), ("status", "text"), ("claim", "text"), ("verdict", "text"),
               ("effect [CI]", "number"), ("margin", "number"), ("paper's effect", "number"), ("runtime", "number")]
    header = "".join(f"<th data-sort='{kind}'{' class=num' if kind == 'number' else ''}>{name}</th>"
                     for name, kind in columns)
    return (f"<div class='table-controls'><input type='search' data-filter-for='{table_id}' "
            f"placeholder='filter: paper, claim, verdict, family…' aria-label='filter the claims'>"
            f"<select data-filter-for='{table_id}' data-column='verdict' aria-label='verdict'>"
            f"<option value=''>every verdict</option>{_options(VERDICTS)}</select>"
            f"<select data-filter-for='{table_id}' data-column='family' aria-label='family'>"
            f"<option value=''>every family</option>{_options(list(FAMILIES) + [UNREGISTERED])}</select>"
            f"<span class='muted' data-count-for='{table_id}'>{len(rows)} claims</span></div>"
            f"<table class='claims-table' id='{table_id}'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")


def _number_cell(value, text: str) -> str:
    """A numeric cell; the script sorts by data-value, and a missing number sorts last."""
    return f"<td class='num' data-value='{'' if value is None else value}'>{html.escape(text)}</td>"


def _signed(value) -> str:
    return "—" if value is None else f"{value:+.2f}"


def _options(values) -> str:
    return "".join(f"<option>{html.escape(value)}</option>" for value in values)


def _workbook(pages: dict, prefix: str) -> str:
    if not pages:
        return ""
    return "<h3>Workbook pages</h3><div class='cards'>" + "".join(
        f"<article class='card' id='card-{html.escape(slug)}'><header><h4>{html.escape(slug)}</h4>"
        f"<span class='status-{html.escape(page.get('status', 'failed'))}'>"
        f"{html.escape(page.get('status', 'failed'))}</span></header>"
        f"<div class='muted'>{html.escape(page.get('title', ''))}</div>"
        f"<p>{html.escape(page.get('summary', ''))}</p>"
        + (f"<p class='error'>{html.escape(page['error'])}</p>" if page.get("error") else "")
        + f"<div>{link_list(paper_links(slug, page, prefix))}</div></article>"
        for slug, page in sorted(pages.items())) + "</div>"


def _figures(profile: str, papers: dict, pages: dict, prefix: str) -> str:
    from clipbook.report import figures
    from clipbook.report.record import use_style

    use_style()
    claims = [{**claim, "paper": slug} for slug, record in sorted(papers.items()) for claim in record.get("claims", [])]
    comparison = [{**row, "paper": slug} for slug, record in sorted(papers.items())
                  for row in record.get("comparison", []) if row.get("reproduced") is not None]
    parts = []
    if comparison:
        within = sum(abs(row["reproduced"] - row["reported"]) <= 1 for row in comparison)
        parts.append(_figure(figures.reproduced_vs_reported_figure(comparison), "reproduced against reported",
                             f"{len(comparison)} reported numbers of {len({r['paper'] for r in comparison})} papers "
                             f"against their reproduced means; {within} lie within ±1 point of the paper's value."))
    if claims:
        tested = [claim for claim in claims if claim.get("effect") is not None]
        label = "effects on the toy world" if profile == "offline" else "effects"
        parts.append(_figure(figures.claim_effects_figure(claims), label,
                             f"{len(claims)} claims of {len({c['paper'] for c in claims})} papers, {len(tested)} "
                             f"with an effect: dot and bar, the effect and its 95 % interval over seeds; tick, the "
                             f"claim's margin; diamond, the paper's own effect."))
    for slug, page in sorted(pages.items()):
        calibration = (page.get("artifacts") or {}).get(CALIBRATION_ARTIFACT)
        if calibration:
            parts.append(_calibration(slug, page, calibration, prefix))
    return "".join(parts) or "<p class='muted'>No figure: no claim has been evaluated under this profile.</p>"


def _calibration(slug: str, page: dict, calibration: dict, prefix: str) -> str:
    """The calibration page's own figure (toy suite against RN50), redrawn from its record and calibration.json."""
    from clipbook.report.figures import calibration_figure

    datasets = calibration.get("datasets", {})
    rows = [row for row in page.get("rows", []) if row["dataset"] in datasets]
    if not rows:  # a calibration.json without curves (an older or partial page): nothing to draw
        return ""
    shots = sorted({int(row["shots"]) for row in rows if row.get("shots") is not None})
    reference = {entry["counterpart"]: entry["reference"] for entry in datasets.values() if entry.get("reference")}
    counterparts = {name: entry.get("counterpart") for name, entry in datasets.items()}
    # how each missed target fares over the stored pretraining draws of the same recipe (the page's "draws" table):
    # a miss that passes in other draws is within the instrument's noise
    in_draws = {row["target"]: row["passes in draws"] for row in calibration.get("draws", []) if "target" in row}
    missed = [target["target"] + (f" (passes in {in_draws[target['target']]} pretraining draws)"
                                  if target["target"] in in_draws else "")
              for target in calibration.get("targets", []) if not target.get("passed")]
    caption = (f"{html.escape(page.get('summary', ''))}."
               + (f" Not met: {html.escape('; '.join(missed))}." if missed else "")
               + (f" <a href='{html.escape(prefix + page['html'])}'>{html.escape(slug)} page</a>"
                  if page.get("html") else ""))
    return _figure(calibration_figure(rows, reference, counterparts, shots), "toy-suite calibration", caption,
                   escaped=True, wide=True)


def _figure(fig, alt: str, caption: str, escaped: bool = False, wide: bool = False) -> str:
    """A matplotlib figure as an inline SVG image (an <img>, so each figure's SVG ids stay its own), closed after."""
    import matplotlib
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # long dataset labels can leave no room; bbox_inches="tight" below still fits them
        warnings.filterwarnings("ignore", message="Tight layout not applied")
        fig.tight_layout()
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # text as text: a few times smaller than glyph paths
        fig.savefig(buffer, format="svg", bbox_inches="tight")
    plt.close(fig)
    source = "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()
    return (f"<figure{' class=wide' if wide else ''}><img src='{source}' alt='{html.escape(alt)}'>"
            f"<figcaption>{caption if escaped else html.escape(caption)}</figcaption></figure>")


def _comparison(reports: dict[str, dict]) -> str:
    """Every claim's verdict and effect under each profile, side by side."""
    profiles = list(reports)
    claims: dict[tuple[str, str], dict[str, dict]] = {}  # (slug, statement): {profile: claim}
    for profile, results in reports.items():
        papers, _ = _papers_and_pages(results)
        for slug, record in papers.items():
            for claim in record.get("claims", []):
                claims.setdefault((slug, claim.get("statement", "")), {})[profile] = claim
    rows = "".join(
        f"<tr><td>{html.escape(slug)}</td><td>{html.escape(statement)}</td>"
        + "".join(f"<td><span class='badge {verdict_class(by[p]['verdict'])}'>{html.escape(by[p]['verdict'])}</span>"
                  f" {effect_text(by[p])}</td>" if p in by else "<td class='muted'>not run</td>" for p in profiles)
        + "</tr>" for (slug, statement), by in sorted(claims.items()))
    header = "".join(f"<th>{html.escape(p)}</th>" for p in profiles)
    return (f"<h2>Profiles side by side</h2><p>{len(claims)} claims; each profile's verdict and effect [95 % CI].</p>"
            f"<table><thead><tr><th>paper</th><th>claim</th>{header}</tr></thead><tbody>{rows}</tbody></table>")
