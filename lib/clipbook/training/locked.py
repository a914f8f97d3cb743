"""A partly locked tiny CLIP for from-scratch comparisons that must fit a CPU notebook's budget.

Training the tiny CLIP's two towers from pixels takes ~875 steps of 128 before zero-shot transfer appears, which
several arms and seeds cannot afford on 2 cores. The training-recipe notebooks that train from scratch (cloob,
laclip) therefore train only the parts that form the embedding:

- image: the tiny CLIP's ModifiedResNet at random initialisation, its stem and first three stages frozen as random
  features (`frozen_stage_maps`, one draw at `BOTTOM_SEED`, cached), its last stage and attention pool trained;
- text: the library's tiny language model (`clipbook.models.tiny_lm`, masked-token pretraining on toy captions,
  never shown an image), either frozen (`FrozenText`: the loop's "tokenizer" returns its features) or trained
  from its masked-LM weights (`TrainableText`, with `TrainableText.tokenize` as the loop's tokenizer), with a
  linear projection to the embedding trained from scratch.

Nothing in either tower has seen an image-caption pair, so the alignment is learnt from scratch. Use with
`clipbook.training.loop.train_clip`: `images` are the frozen maps; the "tokenizer" is a `FrozenText`, or the
tiny LM's word ids when the text tower trains (`LockedCLIP(seed, text_dim, text_tower=TrainableText(lm))`).
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from clipbook import cache
from clipbook.models.tiny_clip import TINY_CLIP_CONFIG, images_to_tensor, random_tiny_clip

BOTTOM_SEED = 0  # the frozen random stages: one draw, shared by every run and every notebook


def bottom_stages(visual: nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """open_clip ModifiedResNet.forward up to (and with) layer3: the stem, avgpool, layer1-3."""
    x = visual.act1(visual.bn1(visual.conv1(pixels)))
    x = visual.act2(visual.bn2(visual.conv2(x)))
    x = visual.avgpool(visual.act3(visual.bn3(visual.conv3(x))))
    return visual.layer3(visual.layer2(visual.layer1(x)))


def frozen_stage_maps(images_of: Callable[[range], np.ndarray], n: int, what: dict) -> torch.Tensor:
    """The frozen stages' (N, C, h, w) maps of n images, float16 in the feature cache, returned as float32.

    Args:
        images_of: indices -> uint8 (len, H, W, 3) images (rendered in chunks of 500).
        n: how many images.
        what: JSON-able identity of the images (split fingerprint and range, or dataset fingerprint); with the
            architecture and `BOTTOM_SEED` it keys the cache.
    """
    def encode() -> torch.Tensor:
        visual = random_tiny_clip(BOTTOM_SEED).visual.eval()
        chunks = []
        with torch.no_grad():
            for start in range(0, n, 500):
                pixels = images_to_tensor(images_of(range(start, min(n, start + 500))))
                chunks.append(bottom_stages(visual, pixels).half())
        return torch.cat(chunks)

    spec = {"architecture": TINY_CLIP_CONFIG, "init_seed": BOTTOM_SEED, "stages": "stem..layer3",
            "torch": torch.__version__.split("+")[0], **what}
    return cache.cached("features", spec, encode, name="cloob-frozen-stages").float()


class LockedCLIP(nn.Module):
    """The trained parts: the ResNet's last stage and attention pool, a linear text projection, the temperature."""

    def __init__(self, seed: int, text_dim: int, text_tower: nn.Module | None = None):
        """text_tower: a trained module from the loop's tokens to (N, text_dim) features; None: the tokens are
        already the frozen features (`FrozenText`)."""
        super().__init__()
        tiny = random_tiny_clip(seed)
        self.layer4, self.attnpool = tiny.visual.layer4, tiny.visual.attnpool
        self.text_tower = text_tower
        torch.manual_seed(seed)
        self.text_projection = nn.Linear(text_dim, TINY_CLIP_CONFIG["embed_dim"])
        self.logit_scale = tiny.logit_scale  # open_clip's init, log(1/0.07)

    def encode_image(self, maps: torch.Tensor) -> torch.Tensor:
        return self.attnpool(self.layer4(maps))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.text_projection(tokens if self.text_tower is None else self.text_tower(tokens))


class TrainableText(nn.Module):
    """The tiny LM's encoder as a trained text tower: word ids -> mean-pooled last hidden states (as `encode`).

    Starts from a copy of the masked-LM weights (the LM itself is left untouched); `tokenize(texts)` gives the ids
    (padded with 0, the LM's [PAD], to the longest text of the batch).
    """

    def __init__(self, lm):
        import copy

        super().__init__()
        self.bert, self._lm = copy.deepcopy(lm.model.bert), lm
        self.width = lm.model.config.hidden_size

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self._lm.tokenize(list(texts))[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        from clipbook.models.tiny_lm import mean_pool

        mask = (ids != 0).long()
        return mean_pool(self.bert(input_ids=ids, attention_mask=mask).last_hidden_state, mask)


class FrozenText:
    """A frozen text encoder as the loop's "tokenizer": captions -> their pooled features, each computed once.

    `encoder.encode(texts) -> (N, D) numpy` (e.g. `clipbook.models.tiny_lm.TinyLM`).
    """

    def __init__(self, encoder):
        self.encoder, self.table = encoder, {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = sorted({text for text in texts if text not in self.table})
        if missing:
            self.table.update(zip(missing, torch.from_numpy(np.asarray(self.encoder.encode(missing)))))
        return torch.stack([self.table[text] for text in texts])
