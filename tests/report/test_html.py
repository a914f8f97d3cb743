from clipbook.report.html import render_index


def _claim(verdict, effect, interval=None):
    return {"id": verdict, "statement": f"claim that {verdict}", "verdict": verdict, "effect": effect,
            "interval": interval, "margin": 0.0, "paper_effect": 17.28, "sentence": f"sentence {verdict}"}


def test_index_lists_every_paper_with_status_and_each_claims_verdict_effect_and_interval():
    results = {"schema": 2, "profile": "offline", "papers": {
        "gda": {"status": "ok", "runtime_s": 12.3, "title": "A Hard-to-Beat Baseline", "html": "gda.html",
                "claims": [_claim("holds", 1.25, [0.5, 2.0]), _claim("inconclusive", -0.05, [-0.26, 0.16])]},
        "coop": {"status": "failed", "runtime_s": 1.0, "error": "MissingDatasetError: no eurosat", "html": "coop.html",
                 "claims": [_claim("not tested", None)]},
    }}
    page = render_index(results)
    assert page.index("coop") < page.index("gda.html")  # sorted by slug
    for text in ("+1.25", "[+0.50, +2.00]", "[-0.26, +0.16]", "holds", "inconclusive", "not tested", "failed",
                 "MissingDatasetError: no eurosat", "A Hard-to-Beat Baseline", "effect on the toy world",
                 "1 holds", "0 does not hold", "1 inconclusive", "1 not tested", "paper +17.28"):
        assert text in page, text
    assert "does not hold</span>" not in page.split("<table>")[1]  # no red verdict where none was reached
    assert "<script" not in page and "https://" not in page  # plain HTML: renders offline


def test_index_lists_workbook_pages_apart_from_the_papers_and_out_of_the_verdict_counts():
    results = {"schema": 2, "profile": "offline", "papers": {
        "gda": {"status": "ok", "runtime_s": 12.3, "title": "GDA", "html": "gda.html",
                "claims": [_claim("holds", 1.25, [0.5, 2.0])]},
        "calibration": {"status": "ok", "runtime_s": 30.0, "title": "The toy suite", "html": "calibration.html",
                        "kind": "workbook", "summary": "7 of 11 calibration targets pass", "claims": []},
    }}
    page = render_index(results)
    papers, workbook = page.split("<h2>Workbook pages</h2>")
    assert "calibration.html" not in papers and "1 papers" in papers
    assert "calibration.html" in workbook and "7 of 11 calibration targets pass" in workbook
