import torch

from clipbook import features
from clipbook.data import registry
from clipbook.toyworld import splits


def _dataset():
    splits.register_split("unit-test-features", domain="photo", size=20, home_background_p=None)
    return registry.load_dataset("toy", "unit-test-features")


def test_features_match_a_plain_encode_image_loop_and_are_cached(random_tiny_clip, cache_root):
    dataset = _dataset()
    ours = features.image_features(random_tiny_clip, dataset, normalize=False)
    with torch.no_grad():
        batch = torch.stack([random_tiny_clip.preprocess(dataset[i][0]) for i in range(len(dataset))])
        reference = random_tiny_clip.model.encode_image(batch)
    assert torch.allclose(ours, reference, atol=1e-5)
    assert len(list((cache_root / "features").glob("*.pt"))) == 1
    again = features.image_features(random_tiny_clip, dataset, normalize=False)
    assert torch.equal(ours, again)
    assert len(list((cache_root / "features").glob("*.pt"))) == 1


def test_subsets_and_augment_passes_are_separate_deterministic_entries(random_tiny_clip, cache_root):
    dataset = _dataset()
    full = features.image_features(random_tiny_clip, dataset)
    subset = features.image_features(random_tiny_clip, dataset, indices=[3, 1])
    assert torch.allclose(subset, full[[3, 1]], atol=1e-6)
    augment = features.augment_transform(random_tiny_clip)
    pass0 = features.image_features(random_tiny_clip, dataset, indices=[0, 1, 2], transform=augment, augment_pass=0)
    pass1 = features.image_features(random_tiny_clip, dataset, indices=[0, 1, 2], transform=augment, augment_pass=1)
    assert not torch.allclose(pass0, pass1)
    alone = features.image_features(random_tiny_clip, dataset, indices=[2], transform=augment, augment_pass=0)
    assert torch.allclose(alone[0], pass0[2], atol=1e-6)  # same image, same pass: same crop in any subset
    for path in (cache_root / "features").glob("*.pt"):  # recompute from scratch: same random crops
        path.unlink()
    again = features.image_features(random_tiny_clip, dataset, indices=[0, 1, 2], transform=augment, augment_pass=0)
    assert torch.equal(pass0, again)
    assert torch.allclose(full.norm(dim=-1), torch.ones(len(dataset)))


def test_rendered_features_match_the_cached_path_and_render_a_split_once(random_tiny_clip, cache_root, monkeypatch):
    dataset = _dataset()
    features._RENDERED.clear()
    renders = []
    original = type(dataset).render
    monkeypatch.setattr(type(dataset), "render", lambda self, idx: renders.append(1) or original(self, idx))
    ours = features.rendered_image_features(random_tiny_clip, dataset, batch_size=7)  # batches do not matter
    again = features.rendered_image_features(random_tiny_clip, dataset)
    assert len(renders) == 1 and torch.allclose(ours, again, atol=1e-5)
    reference = features.image_features(random_tiny_clip, dataset, normalize=False)  # an independent pixel path
    assert torch.allclose(ours, reference, atol=1e-4)
