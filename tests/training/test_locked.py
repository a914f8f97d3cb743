import numpy as np
import pytest
import torch
from clipbook.training.locked import (FrozenText, LockedCLIP, TrainableText, bottom_stages, frozen_stage_maps,
                                      random_tiny_clip)
from clipbook.training.loop import train_clip


def test_bottom_stages_then_trained_stages_equal_the_whole_resnet():
    visual = random_tiny_clip(0).visual.eval()
    pixels = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        split = visual.attnpool(visual.layer4(bottom_stages(visual, pixels)))
        whole = visual(pixels)
    torch.testing.assert_close(split, whole)


def test_frozen_stage_maps_are_cached_and_match_a_direct_pass(cache_root):
    images = np.random.default_rng(0).integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    calls = []

    def images_of(indices):
        calls.append(list(indices))
        return images[list(indices)]

    first = frozen_stage_maps(images_of, 4, {"test": "four images"})
    again = frozen_stage_maps(images_of, 4, {"test": "four images"})
    assert len(calls) == 1 and torch.equal(first, again)
    from clipbook.models.tiny_clip import images_to_tensor
    with torch.no_grad():
        direct = bottom_stages(random_tiny_clip(0).visual.eval(), images_to_tensor(images))
    torch.testing.assert_close(first, direct.half().float())


class _Encoder:
    def __init__(self):
        self.seen = []

    def encode(self, texts):
        self.seen += list(texts)
        return np.stack([np.full(3, len(t), dtype=np.float32) for t in texts])


def test_frozen_text_encodes_each_text_once():
    encoder = _Encoder()
    text = FrozenText(encoder)
    out = text(["ab", "abc", "ab"])
    assert out.shape == (3, 3) and out[0, 0] == 2 and out[1, 0] == 3
    text(["abc", "abcd"])
    assert sorted(encoder.seen) == ["ab", "abc", "abcd"]


class _TinyLM:
    """A stand-in for clipbook.models.tiny_lm.TinyLM: a 1-layer BERT and a word tokenizer."""

    def __init__(self):
        from transformers import BertConfig, BertForMaskedLM

        torch.manual_seed(0)
        self.model = BertForMaskedLM(BertConfig(vocab_size=12, hidden_size=16, num_hidden_layers=1,
                                                num_attention_heads=2, intermediate_size=32))
        self.words = ["[PAD]", "[UNK]", "a", "red", "green", "blue", "square", "circle"]

    def tokenize(self, texts):
        rows = [[self.words.index(w) if w in self.words else 1 for w in t.split()] for t in texts]
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
        return ids, (ids != 0).long()


def test_trainable_text_pools_over_real_tokens_and_leaves_the_lm_untouched():
    lm = _TinyLM()
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    tower = TrainableText(lm).eval()  # no dropout for the padding comparison
    ids = tower.tokenize(["a red square", "a circle"])
    assert ids.shape == (2, 3) and ids[1, 2] == 0
    single = tower(tower.tokenize(["a circle"]))
    torch.testing.assert_close(tower(ids)[1], single[0], atol=1e-5, rtol=1e-5)  # padding does not change a text
    model = LockedCLIP(0, tower.width, text_tower=tower)
    maps = torch.randn(8, 256, 4, 4)
    captions = [f"a {c} square" for c in ("red", "green", "blue", "red", "green", "blue", "red", "green")]
    log = train_clip(model, maps, captions, tower.tokenize, {"steps": 2, "batch_size": 4, "warmup_steps": 1},
                     show_progress=False)
    assert log["seen_pairs"] == 8
    assert any(not torch.equal(p, q) for p, q in zip(before.values(), [v for v in tower.bert.state_dict().values()])
               if p.shape == q.shape)
    for key, value in lm.model.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} of the source LM changed"


def test_locked_clip_without_a_tower_projects_frozen_features():
    model = LockedCLIP(0, 5)
    assert model.encode_text(torch.randn(2, 5)).shape[0] == 2
    with pytest.raises(RuntimeError):
        model.encode_text(torch.randn(2, 6))
