import pytest

from clipbook.data import registry
from clipbook.data.fas import FAS_DATASETS


def _write_csv_layout(root, folder, split_file, rows):
    (root / "hyp-oc" / "datasets" / folder).mkdir(parents=True, exist_ok=True)
    path = root / "hyp-oc" / "data" / folder / split_file
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))


def test_all_five_registered():
    assert set(FAS_DATASETS) == {"rose_youtu", "msu_mfsd", "casia_mfsd", "replay_attack", "oulu_npu"}
    assert all(registry.DATASETS[name]["kind"] == "fas" for name in FAS_DATASETS)


@pytest.mark.parametrize("name", sorted(FAS_DATASETS))
def test_missing_dataset_says_restricted_and_where_to_ask(name, tmp_path):
    with pytest.raises(registry.MissingDatasetError, match="restricted: request it from"):
        registry.load_dataset(name, "train", root=tmp_path)


def test_csv_layout_reads_paths_and_labels(tmp_path):
    rows = [("ReplayAttack/devel_frames/attack/a.png", 1), ("ReplayAttack/devel_frames/real/b.png", 0)]
    _write_csv_layout(tmp_path, "ReplayAttack", "eval.csv", rows)
    data = registry.load_dataset("replay_attack", "val", root=tmp_path)
    assert data.relative_paths == [p for p, _ in rows] and data.labels.tolist() == [1, 0]
    assert data.classnames == ["live", "spoof"]


def test_oulu_training_split_keeps_live_videos(tmp_path):
    frames = tmp_path / "hyp-oc" / "datasets" / "OULU_NPU" / "Train_frames"
    for video in ("1_1_01_1", "1_1_01_2"):
        (frames / video).mkdir(parents=True)
        for frame in ("0.png", "1.png"):
            (frames / video / frame).write_bytes(b"")
    protocol = tmp_path / "hyp-oc" / "data" / "OULU_NPU" / "Protocols" / "Protocol_1" / "Train.txt"
    protocol.parent.mkdir(parents=True)
    protocol.write_text("+1,1_1_01_1\n-1,1_1_01_2\n")
    data = registry.load_dataset("oulu_npu", "train", root=tmp_path)
    assert data.relative_paths == ["OULU_NPU/Train_frames/1_1_01_1/0.png", "OULU_NPU/Train_frames/1_1_01_1/1.png"]
    assert data.labels.tolist() == [0, 0]
