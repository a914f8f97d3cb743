"""The rehearsal (README, "Rehearsal"): every notebook with a paper profile runs its paper path on the real
architectures with random weights and on generated data in the real layouts, exactly as
`invoke batch --profile rehearsal` runs it (the caps are the rehearsal YAMLs', so this test and the batch cannot
drift apart). A paper path that rotted — a loader reading a key its layout does not have, a rule that only holds
for one architecture — fails here. Notebooks are discovered: a new notebook with a paper-profile YAML is
rehearsed without an edit here, and the budget (all of them within 12 minutes on 2 cores) is kept by the caps in
its `notebooks/profiles/rehearsal/<slug>.yaml`."""
from pathlib import Path

import pytest

from clipbook.batch.profiles import plan
from clipbook.batch.runner import run_batch
from clipbook.models.loader import ARCHITECTURE_MISSING

ROOT = Path(__file__).resolve().parents[2]
REHEARSED = sorted(plan(ROOT, "rehearsal", None))  # every notebook with notebooks/profiles/paper/<slug>.yaml


# Notebooks side by side, the two cores split between them (`runner.rehearsal_threads`): their kernel starts,
# imports, layout generation and Python loops overlap, which the 12-minute budget needs (README, "Rehearsal").
WORKERS = 2


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory):
    """Every rehearsal, run once as `invoke batch --profile rehearsal --workers 2` runs them, into a workbook whose
    reports/ is temporary, on the library's own cache (`CLIPBOOK_CACHE`), as the batch runs: the layouts are
    generated once and the features a rehearsal encoded are reused, keyed by model, seeded random weights and data.
    On a fresh machine (CI) that cache is cold, so every paper path runs in full there; a warm re-run on a
    developer's machine reuses what the last one encoded, like nbval's notebooks do, which keeps the warm
    `invoke test` inside its 30 minutes. Each notebook's wall time is printed (`-s`) and kept in its record."""
    root = tmp_path_factory.mktemp("rehearsal")
    (root / "workbook").mkdir()
    (root / "workbook" / "notebooks").symlink_to(ROOT / "notebooks")  # reports/ goes here, not into the repository
    results = run_batch(root / "workbook", profile="rehearsal", papers=REHEARSED, workers=WORKERS, log=print)
    return results["papers"]


def test_every_notebook_with_a_paper_profile_is_rehearsed():
    assert {"gda", "coop", "clip-svd"} <= set(REHEARSED)
    assert "calibration" not in REHEARSED  # the toy suite's workbook page has no paper path (README, "Rehearsal")


@pytest.mark.parametrize("slug", REHEARSED)
def test_rehearsal_runs_the_paper_path_to_ok_with_every_claim_not_tested(rehearsal, slug):
    record = rehearsal[slug]
    error = str(record.get("error") or "")
    # an architecture defined by Hub files is built from models.hub_standins, or named as missing: never skipped here
    assert ARCHITECTURE_MISSING not in error, f"{slug}: add its Hub-defined architecture to models.hub_standins"
    assert record["status"] == "ok", f"{slug} rehearsal failed: {error}"
    assert record["claims"] and {claim["verdict"] for claim in record["claims"]} == {"not tested"}
    assert all("weights are random (rehearsal)" in claim["reason"] for claim in record["claims"])
    assert record["provenance"]["models"]
    assert all(model["weights"].startswith("random-init") for model in record["provenance"]["models"])
