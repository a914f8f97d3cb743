"""A tiny language model trained on the toy world's captions (the LLM of LLM2CLIP's offline profile).

A small BERT-style transformer (`transformers.BertConfig`, bidirectional attention as LLM2Vec enables
for its LLMs) pretrained with masked-token prediction on captions of the toy world's "pretrain" split
(LLM2Vec's MNTP stage, here on toy text). Its features are the mean of the last hidden states over the
non-padding tokens (LLM2Vec's default "mean" pooling). Cached content-addressed (config, recipe with
seed, toy-world version of the split, torch/transformers versions) under `clipbook.cache`, trained once
under a file lock and written atomically, like the tiny CLIP.

First use: trains the LM, about 20 s of CPU (one thread, 200 steps; measured 21 s user+sys at load 5 on the
2-core machine); later uses load it from the cache (well under a second).
"""
from __future__ import annotations

import numpy as np
import torch

from clipbook import cache
from clipbook.determinism import SMALL_WORK_THREADS, deterministic_torch
from clipbook.toyworld import captions as toy_captions
from clipbook.toyworld import long_captions
from clipbook.toyworld import splits as toy_splits

CONFIG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
          "max_position_embeddings": 128}
# Sized for the CPU budget of a first use (about 20 s of CPU on one thread): 1500 alt-texts and 300 long
# captions of the "pretrain" split (the LLM has read long text too; without it positions past the alt-text's
# ~26 words would never be trained), 200 steps of 32, each batch padded to its own longest text only.
RECIPE = {"split": "pretrain", "alt_scenes": 1500, "long_scenes": 300, "steps": 200, "batch_size": 32,
          "lr": 1e-3, "mask_prob": 0.2, "max_length": 112, "seed": 0}


def vocabulary(texts) -> list[str]:
    """Word-level vocabulary of the texts (lower-cased, whitespace/punctuation split), special tokens first."""
    words = sorted({w for t in texts for w in _words(t)})
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words


def _words(text: str) -> list[str]:
    out = []
    for token in text.lower().replace(",", " , ").replace(".", " . ").split():
        out.append(token)
    return out


class TinyLM:
    """The trained tiny LM with its word-level tokenizer; `encode(texts)` gives pooled features."""

    def __init__(self, model, vocab: list[str], max_length: int):
        self.model, self.vocab, self.max_length = model.eval(), vocab, max_length
        self.index = {w: i for i, w in enumerate(vocab)}

    def tokenize(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        ids = np.zeros((len(texts), self.max_length), dtype=np.int64)
        for row, text in enumerate(texts):
            toks = [2] + [self.index.get(w, 1) for w in _words(text)][: self.max_length - 2] + [3]
            ids[row, : len(toks)] = toks
        ids = torch.from_numpy(ids)
        ids = ids[:, : max(2, int((ids != 0).sum(1).max()))]  # padded to the longest text only
        return ids, (ids != 0).long()

    def hidden(self, texts) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts)
        out = self.model.bert(input_ids=ids, attention_mask=mask)
        return out.last_hidden_state, mask

    @torch.no_grad()
    def encode(self, texts, batch_size: int = 256) -> np.ndarray:
        """Mean-pooled last hidden states (LLM2Vec "mean" pooling), float32, not normalised."""
        feats = []
        for start in range(0, len(texts), batch_size):
            h, mask = self.hidden(list(texts[start:start + batch_size]))
            feats.append(mean_pool(h, mask))
        return torch.cat(feats).numpy().astype(np.float32)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1.0)


def _texts(recipe: dict) -> list[str]:
    scenes = toy_splits.scenes(recipe["split"])
    rng = np.random.default_rng(recipe["seed"])
    alt = [toy_captions.alt_text(s, rng, 1.0) for s in scenes[: recipe["alt_scenes"]]]
    tail = scenes[recipe["alt_scenes"]: recipe["alt_scenes"] + recipe["long_scenes"]]
    return alt + [long_captions.long_caption(s, rng) for s in tail]


def _build(recipe: dict) -> dict:
    # one thread: at this size a second one only spin-waits (7m56s of wall at load 8 with two, ~20 s CPU with one)
    with deterministic_torch(SMALL_WORK_THREADS):
        return _pretrain(recipe)


def _pretrain(recipe: dict) -> dict:
    from transformers import BertConfig, BertForMaskedLM

    texts = _texts(recipe)
    vocab = vocabulary(texts)
    torch.manual_seed(recipe["seed"])
    model = BertForMaskedLM(BertConfig(vocab_size=len(vocab), **CONFIG))
    lm = TinyLM(model, vocab, recipe["max_length"])
    ids_all, _ = lm.tokenize(texts)
    gen = torch.Generator().manual_seed(recipe["seed"])
    opt = torch.optim.AdamW(model.parameters(), lr=recipe["lr"])
    model.train()
    losses = []
    for _ in range(recipe["steps"]):
        batch = ids_all[torch.randint(len(texts), (recipe["batch_size"],), generator=gen)]
        batch = batch[:, : int((batch != 0).sum(1).max())]  # pad to this batch's longest text only
        maskable = batch > 4
        chosen = (torch.rand(batch.shape, generator=gen) < recipe["mask_prob"]) & maskable
        labels = torch.where(chosen, batch, torch.full_like(batch, -100))
        inputs = torch.where(chosen, torch.full_like(batch, 4), batch)
        loss = model(input_ids=inputs, attention_mask=(batch != 0).long(), labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {"state_dict": model.state_dict(), "vocab": vocab, "losses": losses}


def checkpoint_key(recipe: dict | None = None) -> str:
    import transformers

    recipe = {**RECIPE, **(recipe or {})}
    return cache.content_key({"name": "tiny-lm", "config": CONFIG, "recipe": recipe,
                              "world": toy_splits.fingerprint(recipe["split"]),
                              "torch": torch.__version__.split("+")[0], "transformers": transformers.__version__})


def load_tiny_lm(recipe: dict | None = None) -> tuple[TinyLM, list[float]]:
    """The pretrained tiny LM (trained and cached on first use) and its training losses."""
    from transformers import BertConfig, BertForMaskedLM

    unknown = set(recipe or {}) - set(RECIPE)
    if unknown:
        raise ValueError(f"unknown tiny-LM recipe keys {sorted(unknown)}; known: {', '.join(RECIPE)}")
    recipe = {**RECIPE, **(recipe or {})}
    path = cache.cache_dir("tiny-lm") / f"{checkpoint_key(recipe)}.pt"
    with cache.file_lock(path):
        if not path.exists():
            cache.atomic_torch_save(_build(recipe), path)
    blob = cache.load_torch(path)
    model = BertForMaskedLM(BertConfig(vocab_size=len(blob["vocab"]), **CONFIG))
    model.load_state_dict(blob["state_dict"])
    return TinyLM(model, blob["vocab"], recipe["max_length"]), list(blob["losses"])
