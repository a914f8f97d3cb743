from clipbook.report.html import render_index


def test_index_lists_every_paper_with_status_verdict_and_reported_number():
    results = {"profile": "paper", "provenance": {"git_commit": "abc", "device": "cuda"}, "papers": {
        "gda": {"status": "ok", "runtime_s": 12.3, "metrics": {"gda_16shot": 75.5}, "baseline": {"zero_shot": 58.8},
                "reported": {"gda_16shot": 76.05}, "key_metric": "gda_16shot", "key_baseline": "zero_shot",
                "claim": "GDA beats zero-shot", "claim_holds": True, "html": "gda.html"},
        "coop": {"status": "failed", "runtime_s": 1.0, "error": "MissingDatasetError: no eurosat", "html": "coop.html",
                 "claim_holds": None},
    }}
    page = render_index(results, {"gda": "A Hard-to-Beat Baseline"})
    assert page.index("coop") < page.index("gda.html")  # sorted by slug
    for text in ("75.50", "58.80", "76.05", "holds", "failed", "MissingDatasetError: no eurosat", "not tested",
                 "A Hard-to-Beat Baseline", "paper profile"):
        assert text in page
    assert "<script" not in page and "https://" not in page  # plain HTML: renders offline
