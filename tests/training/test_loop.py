import numpy as np
import pytest
import torch
import torch.nn.functional as F
from clipbook.models.tiny_clip import TINY_CLIP_NAME, quiet_open_clip, register_tiny_configs
from clipbook.training.loop import (RECIPE, clip_loss, code_fingerprint, cosine_lr, train_clip, trained_clip)

COLOURS = {"red": (1.0, -1.0, -1.0), "green": (-1.0, 1.0, -1.0), "blue": (-1.0, -1.0, 1.0), "grey": (0.0, 0.0, 0.0)}
RECIPE_SMALL = {"steps": 12, "batch_size": 8, "lr": 2e-3, "warmup_steps": 2}


def _model(seed=0):
    import open_clip

    register_tiny_configs()
    torch.manual_seed(seed)
    with quiet_open_clip():
        return open_clip.create_model(TINY_CLIP_NAME, pretrained=None)


def _data(n=32, seed=0):
    """Flat colour images whose caption names the colour: learnable in a few steps."""
    rng = np.random.default_rng(seed)
    names = list(COLOURS)
    labels = rng.integers(0, len(names), n)
    images = torch.tensor([COLOURS[names[k]] for k in labels]).view(n, 3, 1, 1).expand(n, 3, 64, 64).contiguous()
    images = images + 0.1 * torch.randn(n, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    return images, [f"a {names[k]} square" for k in labels]


def _tokenizer():
    import open_clip

    return open_clip.get_tokenizer(TINY_CLIP_NAME)


def _naive_clip_loss(out, batch):
    """InfoNCE written pair by pair, independently of open_clip."""
    image, text, scale = out["image_features"], out["text_features"], out["logit_scale"]
    total = 0.0
    for i in range(len(image)):
        logits_i = scale * image[i] @ text.T
        logits_t = scale * text[i] @ image.T
        total = total + (torch.logsumexp(logits_i, 0) - logits_i[i]) + (torch.logsumexp(logits_t, 0) - logits_t[i])
    return total / (2 * len(image))


def test_the_loss_falls():
    images, captions = _data()
    log = train_clip(_model(), images, captions, _tokenizer(), {**RECIPE_SMALL, "steps": 16}, show_progress=False)
    assert np.mean(log["loss"][-4:]) < np.mean(log["loss"][:4]) - 0.2
    assert log["seen_pairs"] == 16 * 8


def test_runs_are_bit_identical():
    images, captions = _data()
    runs = []
    for _ in range(2):
        model = _model()
        log = train_clip(model, images, captions, _tokenizer(), {**RECIPE_SMALL, "steps": 3}, show_progress=False)
        runs.append((log, model.state_dict()))
    (log, weights), (log2, weights2) = runs
    assert log["loss"] == log2["loss"] and all(torch.equal(weights[k], weights2[k]) for k in weights)


def test_the_baseline_loss_equals_an_independent_infonce_loop():
    images, captions = _data()
    default, naive = _model(), _model()
    recipe = {**RECIPE_SMALL, "steps": 4}
    log = train_clip(default, images, captions, _tokenizer(), recipe, show_progress=False)
    log_naive = train_clip(naive, images, captions, _tokenizer(), recipe, loss=_naive_clip_loss,
                           show_progress=False)
    np.testing.assert_allclose(log["loss"], log_naive["loss"], rtol=1e-4)


def test_frozen_parameters_stay_put_and_plugged_in_parts_are_used():
    images, captions = _data()
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen_indices, rewritten = [], []

    def sampler(step, rng):
        chosen = rng.choice(16, size=8, replace=False)  # only the first 16 pairs
        seen_indices.extend(chosen.tolist())
        return chosen

    def rewrite(index, rng):
        rewritten.append(index)
        return captions[index].replace("square", "shape")

    train_clip(model, images, captions, _tokenizer(), {**RECIPE_SMALL, "steps": 3}, sampler=sampler,
               caption_transform=rewrite, trainable=lambda name: name.startswith("visual."), show_progress=False)
    after = model.state_dict()
    assert max(seen_indices) < 16 and sorted(rewritten) == sorted(seen_indices)
    assert all(torch.equal(before[k], after[k]) for k in before if not k.startswith("visual."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("visual."))
    assert all(p.requires_grad for p in model.parameters())  # handed back trainable


def test_a_teacher_adds_targets_without_gradient():
    images, captions = _data()
    teacher_model = _model(seed=1)

    def teacher(batch):
        return {"teacher_image": F.normalize(teacher_model.encode_image(batch["images"]), dim=-1)}

    def distill(out, batch):
        assert not out["teacher_image"].requires_grad
        return clip_loss(out, batch) + (out["image_features"] - out["teacher_image"]).pow(2).sum(-1).mean()

    log = train_clip(_model(), images, captions, _tokenizer(), {**RECIPE_SMALL, "steps": 2}, teacher=teacher,
                     loss=distill, show_progress=False)
    assert len(log["loss"]) == 2


def test_cached_training_runs_once_and_a_changed_method_retrains(tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPBOOK_CACHE", str(tmp_path))
    images, captions = _data()
    calls = []

    def run(loss):
        def train(model):
            calls.append(1)
            return train_clip(model, images, captions, _tokenizer(), {**RECIPE_SMALL, "steps": 1}, loss=loss,
                              show_progress=False)
        return trained_clip("test", _model, {"colours": 1}, train, recipe={**RECIPE_SMALL, "steps": 1},
                            plugins={"loss": loss})

    first, log = run(clip_loss)
    second, _ = run(clip_loss)
    assert len(calls) == 1 and all(torch.equal(a, b) for a, b in zip(first.state_dict().values(),
                                                                     second.state_dict().values()))
    run(_naive_clip_loss)
    assert len(calls) == 2


def test_code_fingerprint_follows_source_and_closure_values():
    def make(weight):
        def loss(out, batch):
            return weight * clip_loss(out, batch)
        return loss

    assert code_fingerprint(make(1.0)) == code_fingerprint(make(1.0))
    assert code_fingerprint(make(1.0)) != code_fingerprint(make(2.0))
    assert code_fingerprint(clip_loss) != code_fingerprint(_naive_clip_loss)
    assert code_fingerprint(None) is None


def test_schedule_and_recipe_checks():
    assert cosine_lr(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert cosine_lr(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert cosine_lr(99, 100, 1.0, 10) < 0.01
    images, captions = _data(8)
    with pytest.raises(ValueError, match="unknown training recipe keys"):
        train_clip(_model(), images, captions, _tokenizer(), {"epochs": 2})
    with pytest.raises(ValueError, match="non-negative int"):
        train_clip(_model(), images, captions, _tokenizer(), {"steps": 2.5})
    with pytest.raises(ValueError, match="smaller than one batch"):
        train_clip(_model(), images, captions, _tokenizer(), {"batch_size": 16})
    with pytest.raises(ValueError, match="captions"):
        train_clip(_model(), images, captions[:3], _tokenizer(), RECIPE_SMALL)
    assert set(RECIPE_SMALL) <= set(RECIPE)


def test_weights_key_follows_every_weight():
    from clipbook.training.loop import weights_key

    model = _model()
    key = weights_key(model)
    assert key == weights_key(_model()) and len(key) == 16
    with torch.no_grad():
        model.logit_scale.add_(1e-6)
    assert weights_key(model) != key


def test_preprocessed_images_feed_train_clip_batches():
    from PIL import Image

    from clipbook.training.loop import PreprocessedImages

    class Pictures:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return Image.new("RGB", (8, 6), (40 * i, 0, 0)), i

    images = PreprocessedImages(Pictures(), lambda image: torch.tensor(np.asarray(image), dtype=torch.float32),
                                size=4)
    assert len(images) == 4 and len(PreprocessedImages(Pictures(), None)) == 5
    batch = images[torch.tensor([3, 1])]
    assert batch.shape == (2, 6, 8, 3) and batch[0, 0, 0, 0] == 120 and batch[1, 0, 0, 0] == 40


def _cell_class(source: str, cell: str):
    """A class as a notebook kernel holds it: its module has no file, so `inspect.getsource(cls)` fails, while its
    methods' source stays readable through linecache (as IPython registers each cell)."""
    import linecache
    import sys
    import types

    module = types.ModuleType(f"notebook_cell_{cell}")
    sys.modules[module.__name__] = module
    filename = f"<cell-{cell}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), module.__dict__)
    return module.Head


def test_code_fingerprint_of_a_class_typed_in_a_notebook_follows_its_methods():
    import inspect

    # forward calls super(): its `__class__` cell leads back to the class, which must not recurse
    base = ("class Head(dict):\n    scale = 2\n    def forward(self, x):\n        super().keys()\n"
            "        return x * {}\n")
    first, same, edited = (_cell_class(base.format(body), cell) for body, cell in (("2", "a"), ("2", "b"), ("3", "c")))
    with pytest.raises((OSError, TypeError)):
        inspect.getsource(first)  # the case being covered: no source for the class itself
    assert code_fingerprint(first) == code_fingerprint(same)
    assert code_fingerprint(first) != code_fingerprint(edited)
    attribute = _cell_class(base.format("2").replace("scale = 2", "scale = 4"), "d")
    assert code_fingerprint(attribute) != code_fingerprint(first)
