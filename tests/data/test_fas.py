import numpy as np
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


@pytest.mark.parametrize("name", sorted(FAS_DATASETS))
def test_fake_layout_round_trips_through_the_loader(name, tmp_path):
    from clipbook.data import fake_layouts

    size = fake_layouts.LayoutSize(images_per_class={"train": 3, "val": 2, "test": 2})
    fake_layouts.write_layout(name, tmp_path, size)
    config = FAS_DATASETS[name]
    assert (tmp_path / "hyp-oc" / "datasets" / config["folder"]).is_dir()
    for split, split_file in config["splits"].items():
        assert (tmp_path / "hyp-oc" / "data" / config["folder"] / split_file).is_file()
        data = registry.load_dataset(name, split, root=tmp_path)
        counts = np.bincount(data.labels, minlength=2).tolist()
        if split == "train":
            assert counts[1] == 0 and counts[0] > 0  # one-class training: live frames only
        else:
            assert counts[0] > 0 and counts[1] > 0
        image, label = data[len(data) - 1]
        assert image.mode == "RGB" and label in (0, 1)
    if config["folder"] != "OULU_NPU":  # the official CSV header
        first = (tmp_path / "hyp-oc" / "data" / config["folder"] / config["splits"]["train"]).read_text().splitlines()
        assert first[0] == "path,label" and first[1].startswith(f"{config['folder']}/")


def test_fake_layout_is_replaced_whole(tmp_path):
    from clipbook.data import fake_layouts

    fake_layouts.write_layout("replay_attack", tmp_path)
    stale = tmp_path / "hyp-oc" / "data" / "ReplayAttack" / "stale.csv"
    stale.write_text("path,label\n")
    fake_layouts.write_layout("replay_attack", tmp_path)
    assert not stale.exists()
