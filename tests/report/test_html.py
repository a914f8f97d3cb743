"""A paper's page: nbconvert's rendering under the header band, loading nothing from the network."""
import html
import re

import nbformat

from clipbook.papers import PAPERS
from clipbook.report.html import MATHJAX_BUILD, STATIC, notebook_to_html, page_band


def test_the_band_links_back_and_shows_claims_verdicts_failed_preconditions_and_provenance(fixture_results):
    record = fixture_results["offline"]["papers"]["gda"]
    band = page_band("gda", record)
    assert band.startswith("<header class='clipbook-band'") and "href='index.html'>← index of all papers" in band
    for href in (PAPERS["gda"]["paper"], PAPERS["gda"]["code"], "notebooks/gda.ipynb", "results.json"):
        assert f"href='{href}'" in band, href
    assert "adaptation — " in band and "status-ok" in band and "12 s" in band and "offline profile" in band
    for claim in record["claims"]:
        assert claim["statement"] in band and claim["verdict"] in band
        assert html.escape(claim["sentence"]) in band
    assert "Failed preconditions:</b> k-NN accuracy: 12 &lt; 50" in band
    assert "<dt>commit</dt><dd>0123456789</dd>" in band and "<dt>models</dt>" in band


def test_the_band_reads_only_what_it_shows_so_extra_record_fields_change_nothing(fixture_results):
    record = fixture_results["offline"]["papers"]["gda"]
    extra = {**record, "log": "logs/gda-1234.out", "queue": "gpu", "attempts": 2}
    assert page_band("gda", extra) == page_band("gda", record)


def test_a_cluster_jobs_log_is_linked_from_the_band():
    job = {"executor": "slurm", "id": "35_0", "log": "slurm/35_0_0_log.out"}
    band = page_band("gda", {"status": "ok", "job": job})
    assert "href='slurm/35_0_0_log.out'>slurm job 35_0 log</a>" in band
    assert "job 35_0" not in page_band("gda", {"status": "ok"})


def test_a_failed_run_and_a_page_without_record_still_get_a_band(fixture_results):
    failed = page_band("coop", fixture_results["offline"]["papers"]["coop"])
    assert "class='error'>MissingDatasetError: no eurosat" in failed and "status-failed" in failed
    assert "Not tested: the notebook failed" in failed
    bare = page_band("brand-new", {})
    assert "href='index.html'" in bare and "not in clipbook.papers" in bare and "<table>" not in bare


def test_the_page_keeps_nbconvert_rendering_under_the_band_and_loads_only_local_files(tmp_path, fixture_results):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_markdown_cell("# GDA — a page\n\nThe classifier $$w_c = P\\mu_c$$"),
                      nbformat.v4.new_code_cell("1 + 1", execution_count=1, outputs=[
                          nbformat.v4.new_output("execute_result", data={"text/plain": "2"}, execution_count=1)])]
    nbformat.write(notebook, tmp_path / "gda.ipynb")
    page = notebook_to_html(tmp_path / "gda.ipynb", tmp_path / "gda.html",
                            record=fixture_results["offline"]["papers"]["gda"]).read_text()
    body = page.split("<body", 1)[1]
    assert body.index("clipbook-band") < body.index("GDA — a page") < body.index("jp-OutputArea")
    assert "<title>GDA — a page</title>" in page and "$$w_c = P\\mu_c$$" in page
    scripts = re.findall(r"<script[^>]*\ssrc=\"([^\"]+)\"", page)
    assert scripts == [f"{STATIC}/{MATHJAX_BUILD}"] and (tmp_path / STATIC / MATHJAX_BUILD).stat().st_size > 1e6
    assert not re.search(r"(src|href)=['\"]https?://(?!arxiv\.org|github\.com)", page)
    assert "cdnjs" not in page and "require.js" not in page
