"""The paper registry: every notebook's paper is in it, in a known family, with its links."""
import json
from pathlib import Path

import nbformat
import pytest

from clipbook.papers import FAMILIES, PAPERS, family_of, papers_in
from clipbook.report.record import RECORD_MIME

ROOT = Path(__file__).resolve().parents[1]


def _kind(notebook: Path) -> str:
    """The kind the committed notebook's record declares (paper or workbook)."""
    for cell in nbformat.read(notebook, as_version=4).cells:
        for output in cell.get("outputs", []):
            if RECORD_MIME in output.get("data", {}):
                return json.loads(output["data"][RECORD_MIME]).get("kind", "paper")
    return "paper"


def test_every_paper_notebook_is_registered_and_workbook_pages_are_not():
    notebooks = {path.stem: _kind(path) for path in (ROOT / "notebooks").glob("*.ipynb")
                 if not path.stem.startswith("_")}
    assert {slug for slug, kind in notebooks.items() if kind == "paper"} <= set(PAPERS)
    assert not {slug for slug, kind in notebooks.items() if kind == "workbook"} & set(PAPERS)


def test_the_forty_papers_each_have_a_family_a_title_and_an_arxiv_link():
    assert len(PAPERS) == 40
    assert all(paper["family"] in FAMILIES and paper["title"] for paper in PAPERS.values())
    assert all(paper["paper"].startswith("https://arxiv.org/abs/") for paper in PAPERS.values())
    assert all(paper["code"] == "" or paper["code"].startswith("https://github.com/") for paper in PAPERS.values())
    assert sorted(slug for family in FAMILIES for slug in papers_in(family)) == sorted(PAPERS)
    assert all(papers_in(family) for family in FAMILIES)
    assert family_of("gda") == "adaptation" and family_of("calibration") is None
    with pytest.raises(ValueError, match="unknown family 'adapters'; families: adaptation, "):
        papers_in("adapters")


def test_the_families_are_those_of_the_issues_that_bring_the_papers_in():
    by_family = {family: {slug for slug, paper in PAPERS.items() if paper["family"] == family} for family in FAMILIES}
    assert by_family["dense"] == {"clip-dinoiser", "trident", "declip", "ovseg", "maft-plus", "cloc", "farslip",
                                  "grain"}
    assert by_family["analyses"] == {"holistic-robustness", "cxr-fairness", "schur-dissection", "medical-survey",
                                     "hyp-oc", "ip-clip"}
    assert by_family["adaptation"] == {"gda", "coop", "clip-svd", "nola", "perceptionclip", "caps-adapter",
                                       "classify-by-description", "manufacturing-inspection"}
    assert len(by_family["training recipes"]) == 10 and len(by_family["text side"]) == 8
