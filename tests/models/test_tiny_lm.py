import numpy as np
import pytest
import torch

from clipbook.models import tiny_lm


def test_mean_pool_ignores_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert torch.allclose(tiny_lm.mean_pool(h, mask), torch.tensor([[2.0, 3.0]]))


def test_unknown_recipe_key_is_rejected_before_training():
    with pytest.raises(ValueError, match="unknown tiny-LM recipe keys"):
        tiny_lm.load_tiny_lm({"stepz": 1})


def test_vocabulary_specials_first():
    vocab = tiny_lm.vocabulary(["A red cat.", "a dog"])
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert {"a", "red", "cat", ".", "dog"} <= set(vocab)


def test_pretraining_loss_falls_and_model_is_cached():
    lm, losses = tiny_lm.load_tiny_lm()
    assert len(losses) == tiny_lm.RECIPE["steps"]
    assert np.mean(losses[-20:]) < np.mean(losses[:20]) - 1.0  # masked-token loss fell by over a nat
    features = lm.encode(["a red cat on a blue background.", "a red cat."])
    assert features.shape == (2, tiny_lm.CONFIG["hidden_size"]) and np.isfinite(features).all()
    assert type(lm.model).__module__.startswith("transformers.")


def test_padding_does_not_change_features():
    lm, _ = tiny_lm.load_tiny_lm()
    alone = lm.encode(["a red cat."])
    together = lm.encode(["a red cat.", "a photo of a place with a purple sunflower with a red poppy with a cyan ring."])
    assert np.allclose(alone[0], together[0], atol=1e-5)
