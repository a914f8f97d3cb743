import torch

from clipbook.models import pretraining
from clipbook.toyworld import splits

RECIPE = {"split": "unit-test-pretraining", "seed": 0, "lr": 1e-3}


def _fake_pretrain(calls):
    def pretrain(recipe, show_progress=True):
        calls.append(recipe)
        return {"state_dict": {"w": torch.ones(2)}, "loss": [1.0, 0.5], "recipe": recipe}
    return pretrain


def test_key_changes_with_the_model_its_config_and_every_recipe_entry():
    splits.register_split("unit-test-pretraining", domain="photo", size=8, home_background_p=0.3)
    key = pretraining.checkpoint_key("tiny", {"width": 8}, RECIPE)
    assert key == pretraining.checkpoint_key("tiny", {"width": 8}, dict(reversed(RECIPE.items())))
    assert key != pretraining.checkpoint_key("other", {"width": 8}, RECIPE)
    assert key != pretraining.checkpoint_key("tiny", {"width": 16}, RECIPE)
    assert key != pretraining.checkpoint_key("tiny", {"width": 8}, {**RECIPE, "seed": 1})


def test_checkpoint_is_trained_once_and_stores_its_key_and_log(cache_root):
    splits.register_split("unit-test-pretraining", domain="photo", size=8, home_background_p=0.3)
    calls = []
    path = pretraining.toyworld_checkpoint("tiny", {"width": 8}, RECIPE, _fake_pretrain(calls), what="tiny thing",
                                           show_progress=False)
    again = pretraining.toyworld_checkpoint("tiny", {"width": 8}, RECIPE, _fake_pretrain(calls), what="tiny thing",
                                            show_progress=False)
    key = pretraining.checkpoint_key("tiny", {"width": 8}, RECIPE)
    assert path == again == str(cache_root / "checkpoints" / f"tiny-{key}.pt") and len(calls) == 1
    stored = torch.load(path, weights_only=True)
    assert stored["key"] == key and stored["loss"] == [1.0, 0.5] and stored["recipe"] == RECIPE
