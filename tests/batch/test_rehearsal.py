"""The rehearsal (README, "Rehearsal"): paper paths run on their real architectures with random weights and on
generated data in the real layouts, here for a few notebooks with caps tighter than their rehearsal YAMLs (the
whole rehearsal is `invoke batch --profile rehearsal`). A paper path that rotted — a loader reading a key its
layout does not have, a rule that only holds for one architecture — fails this test."""
from pathlib import Path

from clipbook.batch.runner import run_batch

ROOT = Path(__file__).resolve().parents[2]
# gda: RN50 and ViT-B/16 through the feature cache and the CoOp split files; coop: prompt learning through RN50's
# and ViT-B/32's text towers, with backpropagation; clip-svd: ViT-B/16's singular values, trained through the
# image tower (a rule written for the tiny CLIP's ResNet fails here, not offline)
REHEARSED = {"gda": {}, "coop": {"contexts": ["unified-end", "csc-middle"]},
             "clip-svd": {"datasets": ["eurosat"]}}


def test_rehearsal_runs_paper_paths_to_ok_with_every_claim_not_tested(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPBOOK_CACHE", str(tmp_path / "cache"))  # cold: every feature is encoded again
    workbook = tmp_path / "workbook"  # reports/ goes here, not into the repository
    workbook.mkdir()
    (workbook / "notebooks").symlink_to(ROOT / "notebooks")
    for slug, caps in REHEARSED.items():
        results = run_batch(workbook, profile="rehearsal", papers=[slug], extra=caps, log=lambda message: None)
        record = results["papers"][slug]
        assert record["status"] == "ok", f"{slug} rehearsal failed: {record.get('error')}"
        assert record["claims"] and {claim["verdict"] for claim in record["claims"]} == {"not tested"}
        assert all("weights are random (rehearsal)" in claim["reason"] for claim in record["claims"])
        assert all(model["weights"].startswith("random-init") for model in record["provenance"]["models"])
