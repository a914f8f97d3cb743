import json

import pytest

from clipbook.models import hub_standins


def test_the_xlm_r_stand_in_is_the_published_architecture_with_a_labelled_tokenizer():
    from transformers import AutoConfig, AutoTokenizer

    folder = hub_standins.text_tower_standin("xlm-roberta-base")
    config = AutoConfig.from_pretrained(folder)
    assert (config.model_type, config.vocab_size, config.hidden_size, config.num_hidden_layers) == (
        "xlm-roberta", 250002, 768, 12)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer("ab c")["input_ids"]
    # XLM-R's wrapping and special ids: <s> (0) ... </s> (2); spaces marked by sentencepiece's ▁
    assert ids[0] == 0 and ids[-1] == 2 and tokenizer.pad_token_id == 1 and tokenizer.unk_token_id == 3
    assert tokenizer.convert_ids_to_tokens(ids[1:-1]) == ["▁", "a", "b", "▁", "c"]
    assert max(ids) < config.vocab_size
    assert hub_standins.STANDIN_LABEL in json.loads((folder / "tokenizer_config.json").read_text())["clipbook_note"]
    assert hub_standins.text_tower_standin("xlm-roberta-base") == folder  # written once


def test_an_unknown_text_tower_is_refused_by_name():
    with pytest.raises(KeyError, match="no rehearsal stand-in .*'bert-base'"):
        hub_standins.text_tower_standin("bert-base")


def test_every_hub_architecture_is_a_built_in_one_with_a_known_tag():
    import open_clip

    for name, spec in hub_standins.HUB_ARCHITECTURES.items():
        assert name.startswith("hf-hub:") and spec["source"]
        assert spec["architecture"] in open_clip.list_models()
        assert open_clip.get_pretrained_cfg(spec["architecture"], spec["preprocess_from"])
