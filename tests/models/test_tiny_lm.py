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
