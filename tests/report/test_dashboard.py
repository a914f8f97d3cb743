"""The index as HTML: what it shows and what it loads (the browser checks are in test_browser.py)."""
import re

import pytest

from clipbook.papers import FAMILIES, PAPERS
from clipbook.report.dashboard import dashboard_script, render_index


@pytest.fixture(scope="module")
def index(fixture_results) -> str:
    return render_index(fixture_results, current="offline")


def _view(page: str, name: str) -> str:
    return page.split(f"data-view-name='{name}'")[1].split("<section class='view'")[0]


def test_papers_are_grouped_by_family_with_status_and_verdict_counts_and_empty_families_list_their_plans(index):
    offline = _view(index, "offline")
    overview = offline.split("<h3>Families</h3>")[1].split("<h3>Figures</h3>")[0]
    assert [name for name in re.findall(r"<b>([^<]+)</b>", overview)] == list(FAMILIES)
    adaptation = overview.split("<b>adaptation</b>")[1].split("family-summary")[0]
    # gda ok, coop failed; gda's three claims and coop's untested one
    for count in ("1 ok", "1 failed", ">1</span> holds", ">1</span> inconclusive", ">2</span> not tested",
                  ">0</span> does not hold"):
        assert count in adaptation, count
    dense = len([slug for slug, paper in PAPERS.items() if paper["family"] == "dense"])
    assert f"no notebook yet · {dense} papers planned" in overview
    adaptation_papers = len([slug for slug, paper in PAPERS.items() if paper["family"] == "adaptation"])
    assert f"(0 of {dense} papers run)" in offline and f"(2 of {adaptation_papers} papers run)" in offline
    assert PAPERS["clip-dinoiser"]["paper"] in offline  # a planned paper links to the paper


def test_a_card_has_each_claim_with_verdict_effect_and_interval_failed_preconditions_identities_and_links(index):
    card = _view(index, "offline").split("id='card-gda'")[1].split("</article>")[0]
    assert "holds</span> GDA beats zero-shot CLIP at every shot count" in card
    assert re.search(r"effect \+\d+\.\d\d \[\+\d+\.\d\d, \+\d+\.\d\d\]", card)
    assert "Failed preconditions:</b> k-NN accuracy: 12 &lt; 50" in card
    assert "clipbook-tiny-rn (toyworld:clipbook-tiny-rn-1234)" in card and "toy (test, train) #" in card
    assert "0123456789 " not in card and "0123456789" in card  # the commit, shortened
    for href in ("../offline/gda.html", PAPERS["gda"]["paper"], PAPERS["gda"]["code"],
                 "../offline/notebooks/gda.ipynb"):
        assert f"href='{href}'" in card, href
    failed = _view(index, "offline").split("id='card-coop'")[1].split("</article>")[0]
    assert "MissingDatasetError: no eurosat" in failed and "status-failed" in failed


def test_the_claims_table_has_one_row_per_claim_with_sortable_numbers_and_filters(index):
    table = _view(index, "offline").split("id='claims-offline'")[1].split("</table>")[0]
    rows = re.findall(r"<tr data-verdict='([^']+)' data-family='([^']+)'>", table)
    assert sorted(rows) == sorted([("not tested", "adaptation"), ("holds", "adaptation"),
                                   ("inconclusive", "adaptation"), ("not tested", "adaptation")])
    assert table.count("data-sort='number'") == 4 and "data-value=''" in table  # untested: no effect to sort by
    assert "data-filter-for='claims-offline'" in _view(index, "offline")


def test_the_figures_are_inline_images_with_captions_written_from_the_numbers(fixture_results, index):
    offline, paper = _view(index, "offline"), _view(index, "paper")
    assert offline.count("<img src='data:image/svg+xml;base64,") == 2  # effects, calibration
    assert paper.count("<img src='data:image/svg+xml;base64,") == 3  # and reproduced against reported
    assert "4 claims of 2 papers, 2 with an effect" in offline
    assert "2 reported numbers of 1 papers against their reproduced means; " in paper
    assert "1 of 2 calibration targets pass" in offline and "Not met: toy zero-shot within ±12 of RN50" in offline


def test_profiles_sit_behind_a_switch_and_side_by_side_and_links_resolve_from_any_profile_folder(fixture_results):
    both = render_index(fixture_results, current="paper")
    assert re.findall(r"<button type='button' value='([^']+)' aria-pressed='(\w+)'", both) == [
        ("offline", "false"), ("paper", "true"), ("side by side", "false")]
    assert "data-view-name='paper'>" in both and "data-view-name='offline' hidden>" in both
    side = _view(both, "side by side")
    assert side.count("<tr><td>gda</td>") == 3 and side.count("<tr><td>coop</td>") == 1
    alone = render_index({"offline": fixture_results["offline"]}, current="offline")
    assert "<nav class='profile-switch'" not in alone and " hidden>" not in alone
    with pytest.raises(ValueError, match="no results for profile 'paper'"):
        render_index({"offline": fixture_results["offline"]}, current="paper")


def test_a_paper_missing_from_the_registry_is_shown_apart_and_workbook_pages_outside_the_counts(fixture_results):
    results = {**fixture_results["offline"]}
    results["papers"] = {**results["papers"], "new-paper": {**results["papers"]["gda"], "html": "new-paper.html"}}
    page = render_index({"offline": results}, current="offline")
    assert "<b>not in clipbook.papers</b>" in page and "id='card-new-paper'" in page
    workbook = page.split("<h3>Workbook pages</h3>")[1]
    assert "id='card-calibration'" in workbook and "1 of 2 calibration targets pass" in workbook
    assert "id='card-calibration'" not in page.split("<h3>Workbook pages</h3>")[0]


def test_the_index_loads_nothing_and_its_one_script_is_plain_and_small(index):
    assert not re.search(r"<(script|img|link|iframe)[^>]*\s(src|href)=['\"]?(https?:)?//", index)
    assert "<link" not in index and index.count("<script") == 1
    script = dashboard_script()
    assert len(script.encode()) < 20_000 and script in index
    assert not re.search(r"\b(import|require)\s*\(|fetch\(|XMLHttpRequest", script)


def test_a_missed_calibration_target_states_how_many_pretraining_draws_it_passes_in(fixture_results):
    results = {**fixture_results["offline"]}
    page = results["papers"]["calibration"]
    calibration = {**page["artifacts"]["calibration.json"],
                   "draws": [{"target": "toy zero-shot within ±12 of RN50", "passes in draws": "1 of 3"},
                             {"target": "16-shot probe above 1-shot", "passes in draws": "3 of 3"}]}
    results["papers"] = {**results["papers"],
                         "calibration": {**page, "artifacts": {"calibration.json": calibration}}}
    index = render_index({"offline": results}, current="offline")
    assert "Not met: toy zero-shot within ±12 of RN50 (passes in 1 of 3 pretraining draws)." in index
    assert "3 of 3" not in index  # only missed targets are named


def test_a_calibration_artifact_without_curves_draws_no_figure(fixture_results):
    results = {**fixture_results["offline"]}
    page = {**results["papers"]["calibration"], "artifacts": {"calibration.json": {"average": {"zero_shot": 50.0}}}}
    results["papers"] = {**results["papers"], "calibration": page}
    index = render_index({"offline": results}, current="offline")
    assert "toy-suite calibration" not in index and "1 of 2 calibration targets pass" in index
