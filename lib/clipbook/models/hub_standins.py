"""What the rehearsal builds where an architecture is defined by files on the Hugging Face Hub.

Two cases stop a rehearsal (random weights, no network) that open_clip's own architectures do not:

- a text tower that is a Hugging Face model (open_clip's `text_cfg.hf_model_name`, e.g. `xlm-roberta-base`): open_clip
  reads its `config.json` and tokenizer from the Hub whenever the model is built, even at random initialisation;
- a model that is an `hf-hub:` repo: its `open_clip_config.json` lives in the repo.

`HUB_TEXT_TOWERS` holds the published `config.json` of such text towers (a few hundred bytes: the architecture, no
weights), so the rehearsal builds the real tower; its tokenizer is a labelled character-level stand-in with the
tower's special-token ids, since the real vocabulary file (5 MB) cannot be had offline. `HUB_ARCHITECTURES` names
the built-in open_clip architecture an `hf-hub:` repo was fine-tuned without architectural change, with the source
that says so. Neither is ever used outside the rehearsal: the paper profile needs the real files.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from clipbook.cache import cache_dir, content_key

# config.json of https://huggingface.co/FacebookAI/xlm-roberta-base (MIT licence), the fields that define the
# architecture (the file also records training-time metadata such as transformers_version and architectures).
HUB_TEXT_TOWERS: dict[str, dict] = {
    "xlm-roberta-base": {
        "source": "https://huggingface.co/FacebookAI/xlm-roberta-base/blob/main/config.json (MIT licence)",
        "config": {
            "model_type": "xlm-roberta", "vocab_size": 250002, "hidden_size": 768, "num_hidden_layers": 12,
            "num_attention_heads": 12, "intermediate_size": 3072, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 514, "type_vocab_size": 1,
            "initializer_range": 0.02, "layer_norm_eps": 1e-05, "position_embedding_type": "absolute",
            "bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "use_cache": True,
        },
        # the special tokens' ids in the real vocabulary (fairseq's dictionary order), which the stand-in keeps
        "special_tokens": {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3},
    },
}

HUB_ARCHITECTURES: dict[str, dict] = {
    "hf-hub:joaodaniel/RS-M-CLIP": {
        "architecture": "xlm-roberta-base-ViT-B-32", "preprocess_from": "laion5b_s13b_b90k",
        "source": "github.com/DannielSilva/RS-M-CLIP README: training started from "
                  "laion/CLIP-ViT-B-32-xlm-roberta-base-laion5B-s13B-b90k (open_clip's xlm-roberta-base-ViT-B-32)",
    },
}

STANDIN_LABEL = "rehearsal stand-in tokenizer (character-level, not the real vocabulary)"
_CHARACTERS = [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0xC0, 0x180)] + ["▁"]


def text_tower_standin(repo: str) -> Path:
    """A folder that `transformers.AutoConfig` / `AutoTokenizer.from_pretrained` read as `repo`: the published config
    and the stand-in tokenizer. Written once into the cache, atomically (a finished folder is renamed into place)."""
    if repo not in HUB_TEXT_TOWERS:
        raise KeyError(f"no rehearsal stand-in for the Hugging Face text tower {repo!r}; known: {sorted(HUB_TEXT_TOWERS)}")
    spec = HUB_TEXT_TOWERS[repo]
    target = cache_dir("hf-standins") / f"{repo.replace('/', '--')}-{content_key([spec, _CHARACTERS])}"
    if (target / "tokenizer.json").exists():
        return target
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    try:
        (staging / "config.json").write_text(json.dumps(spec["config"], indent=1), encoding="utf-8")
        _standin_tokenizer(spec["special_tokens"]).save_pretrained(staging)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: theirs is identical
            shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _standin_tokenizer(special: dict[str, int]):
    """Characters as tokens after sentencepiece-style whitespace marking (▁), wrapped as XLM-R wraps a sentence:
    `<s> … </s>`. Its ids lie in the real vocabulary's range, so the real embedding table is exercised."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    ordinary = {c: i + len(special) for i, c in enumerate(_CHARACTERS)}
    vocab = {**special, **ordinary}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", special["<s>"]), ("</s>", special["</s>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", cls_token="<s>", sep_token="</s>", model_max_length=512)
    fast.init_kwargs["clipbook_note"] = STANDIN_LABEL
    return fast
