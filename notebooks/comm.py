# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From CLIP to DINO: Visual Encoders Shout in MLLMs (COMM) — a proxy
#
# Jiang et al. · 2023 · [arXiv:2310.08825](https://arxiv.org/abs/2310.08825) · **no official code found**:
# this notebook follows the paper's text only and is a **proxy** (a light probe on frozen features, not an MLLM).
#
# **Claim.** Features from all layers of CLIP are better than the last layer alone for referring and grounding;
# DINO's features, multi-level too and passed through an MLP, add fine-grained localisation; COMM, the fusion of
# the two, beats either encoder alone (paper Tables 1–3, RefCOCO-style referring / grounding).
#
# **This notebook (offline).** The tiny CLIP (ResNet tower, levels = its four stages) and the tiny
# self-supervised ViT (levels = its blocks) on `toy-scenes`: given a scene and one of its objects' phrases
# ("a red poppy"), a light probe on frozen, mask-pooled region features picks the referred object among the
# scene's objects (selection accuracy). Variants: CLIP last layer, CLIP multi-level, SSL last, SSL multi-level,
# and the COMM fusion. **Deviations:** a selection probe instead of an LLM generating boxes; region features
# mask-pooled from ground-truth masks; the tiny towers instead of CLIP ViT-L/14 and DINOv2 ViT-g/14.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy-scenes"]
seeds = [1, 2, 3]
epochs = 200
learning_rate = 0.01
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import declare

SPEC = declare("profile", "models", "datasets", "seeds", "epochs", "learning_rate", "device")

# %%
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import clipbook
from clipbook.data.registry import load_dataset
from clipbook.models.loader import load_model
from clipbook.models.tiny_ssl import load_ssl_encoder
from clipbook.report.rows import summarise
from clipbook.toyworld import world

session = clipbook.start(SPEC, globals())
torch.set_num_threads(2)
(model_name, tag), = models
clip = load_model(model_name, tag, device="cpu")
ssl = load_ssl_encoder(show_progress=False)
dataset = load_dataset(datasets[0], "test")

# %% [markdown]
# ## Multi-level features
#
# COMM takes the outputs of every layer $\{f_\ell\}$ of each encoder. Here each level's feature map is
# average-pooled inside an object's mask, giving one region vector per level: $r_\ell = \sum_p m_p f_\ell(p) /
# \sum_p m_p$.

# %%
@torch.no_grad()
def clip_levels(images: torch.Tensor) -> list[torch.Tensor]:
    visual, x = clip.model.visual, images
    x = visual.stem(x) if hasattr(visual, "stem") else visual.avgpool(visual.act3(visual.bn3(visual.conv3(
        visual.act2(visual.bn2(visual.conv2(visual.act1(visual.bn1(visual.conv1(x))))))))))
    maps = []
    for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = stage(x)
        maps.append(x)
    return maps


@torch.no_grad()
def ssl_levels(images: torch.Tensor) -> list[torch.Tensor]:
    vit = ssl.model.vit
    x = vit._pos_embed(vit.patch_embed(images))
    maps, side = [], images.shape[-1] // ssl.model.patch_size
    for block in vit.blocks:
        x = block(x)
        tokens = vit.norm(x)[:, vit.num_prefix_tokens:]
        maps.append(tokens.transpose(1, 2).unflatten(2, (side, side)))
    return maps


def mask_pool(maps: list[torch.Tensor], masks: torch.Tensor) -> list[torch.Tensor]:
    """maps: per level (C, h, w); masks: (K, H, W) -> per level (K, C)."""
    pooled = []
    for fmap in maps:
        weights = F.adaptive_avg_pool2d(masks[:, None].float(), fmap.shape[-2:])[:, 0].flatten(1)
        pooled.append(weights @ fmap.flatten(1).T / weights.sum(1, keepdim=True).clamp_min(1e-6))
    return pooled


scenes = dataset.scenes
images_clip = torch.stack([clip.preprocess(dataset[i][0]) for i in range(len(scenes))])
images_ssl = torch.stack([ssl.preprocess(dataset[i][0]) for i in range(len(scenes))])
objects = []  # (scene index, clip levels (list), ssl levels (list), phrase)
for start in range(0, len(scenes), 100):
    clip_maps, ssl_maps = clip_levels(images_clip[start:start + 100]), ssl_levels(images_ssl[start:start + 100])
    for offset in range(len(clip_maps[0])):
        index = start + offset
        annotations = world.annotations(scenes[index])
        masks = torch.from_numpy(np.stack([a["mask"] for a in annotations]))
        objects.append((index, mask_pool([m[offset] for m in clip_maps], masks),
                        mask_pool([m[offset] for m in ssl_maps], masks), [a["phrase"] for a in annotations]))
phrases = sorted({p for _, _, _, ps in objects for p in ps})
with torch.no_grad():
    phrase_features = F.normalize(clip.encode_text_prompts(phrases).float(), dim=-1)
phrase_index = {p: i for i, p in enumerate(phrases)}
[(name, [m.shape[0] for m in objects[0][k]]) for name, k in (("CLIP levels", 1), ("SSL levels", 2))]

# %% [markdown]
# ## The COMM fusion
#
# Paper §3 (no code): CLIP's multi-level features are each passed through a linear layer and a LayerNorm and
# combined by learned layer weights, $v_{\rm CLIP} = \sum_\ell \alpha_\ell\,{\rm LN}(W_\ell r_\ell)$; DINO's
# multi-level features are fused the same way and then passed through an MLP (DINO features are not aligned to
# text); COMM concatenates the two, $v = [v_{\rm CLIP}; {\rm MLP}(v_{\rm DINO})]$. The probe scores an
# object against the phrase's CLIP text embedding $t$: $s = \langle U v, t\rangle$, softmax over the scene's
# objects.

# %%
class LevelFusion(nn.Module):
    def __init__(self, dims: list[int], width: int, mlp: bool = False):
        super().__init__()
        self.project = nn.ModuleList(nn.Sequential(nn.Linear(d, width), nn.LayerNorm(width)) for d in dims)
        self.alpha = nn.Parameter(torch.zeros(len(dims)))
        self.mlp = nn.Sequential(nn.Linear(width, width), nn.GELU(), nn.Linear(width, width)) if mlp else nn.Identity()

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        weights = self.alpha.softmax(0)
        return self.mlp(sum(w * p(x) for w, p, x in zip(weights, self.project, levels)))


class Probe(nn.Module):
    def __init__(self, clip_dims, ssl_dims, text_dim: int, width: int = 64):
        super().__init__()
        self.clip = LevelFusion(clip_dims, width) if clip_dims else None
        self.ssl = LevelFusion(ssl_dims, width, mlp=True) if ssl_dims else None
        self.out = nn.Linear(width * (bool(clip_dims) + bool(ssl_dims)), text_dim)

    def forward(self, clip_levels, ssl_levels):
        parts = ([self.clip(clip_levels)] if self.clip else []) + ([self.ssl(ssl_levels)] if self.ssl else [])
        return self.out(torch.cat(parts, dim=-1))


VARIANTS = {  # name -> (CLIP levels used, SSL levels used)
    "CLIP last layer": ([-1], []), "CLIP multi-level": ([0, 1, 2, 3], []),
    "SSL last layer": ([], [-1]), "SSL multi-level": ([], [0, 1, 2, 3]),
    "COMM (CLIP + SSL multi-level)": ([0, 1, 2, 3], [0, 1, 2, 3]),
}
# Padded per-scene tensors: (scenes, K, C) per level, the phrases' text features (scenes, K, D), a validity mask.
K = max(len(ps) for *_, ps in objects)


def pad(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack([F.pad(t, (0, 0, 0, K - len(t))) for t in tensors])


clip_padded = [pad([o[1][level] for o in objects]) for level in range(4)]
ssl_padded = [pad([o[2][level] for o in objects]) for level in range(len(objects[0][2]))]
text_padded = pad([phrase_features[[phrase_index[p] for p in o[3]]] for o in objects])
valid = pad([torch.ones(len(o[3]), 1) for o in objects])[..., 0].bool()
n_train = int(0.7 * len(objects))


def scores_of(probe, variant, part):
    clip_keep, ssl_keep = VARIANTS[variant]
    vision = probe([clip_padded[i][part] for i in clip_keep], [ssl_padded[i][part] for i in ssl_keep])
    scores = torch.einsum("bkd,bjd->bjk", vision, text_padded[part])  # phrase j against object k
    return scores.masked_fill(~valid[part][:, None, :], float("-inf"))


def run(variant: str, seed: int) -> float:
    torch.manual_seed(seed)
    clip_keep, ssl_keep = VARIANTS[variant]
    probe = Probe([clip_padded[i].shape[-1] for i in clip_keep], [ssl_padded[i].shape[-1] for i in ssl_keep],
                  phrase_features.shape[1])
    optimizer = torch.optim.AdamW(probe.parameters(), lr=learning_rate, weight_decay=1e-4)
    train, test = slice(0, n_train), slice(n_train, None)
    targets = torch.arange(K).expand(n_train, K)
    for _ in range(epochs):  # full batch: one step per epoch
        scores = scores_of(probe, variant, train)
        loss = F.cross_entropy(scores[valid[train]], targets[valid[train]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        picked = scores_of(probe, variant, test).argmax(-1)
    truth = torch.arange(K).expand_as(picked)
    return 100.0 * float((picked == truth)[valid[test]].float().mean())


rows = pd.DataFrame([{"model": model_name, "dataset": datasets[0], "metric": "selection accuracy",
                      "method": variant, "seed": seed, "value": run(variant, seed)}
                     for variant in VARIANTS for seed in seeds])
summarise(rows).round(2)

# %% [markdown]
# ## Sanity check
#
# The mask pooling is checked against a naive loop over pixels on one scene and level (nearest-resolution
# independent formulation: the full-resolution mask averaged over each feature cell by explicit loops).

# %%
fmap = clip_levels(images_clip[:1])[1][0]
mask = torch.from_numpy(world.annotations(scenes[0])[0]["mask"]).float()
cell = mask.shape[0] // fmap.shape[-1]
weights = torch.tensor([[mask[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell].mean() for x in range(fmap.shape[-1])]
                        for y in range(fmap.shape[-2])])
naive = (fmap * weights).sum((1, 2)) / weights.sum()
difference = float((naive - mask_pool([fmap], mask[None])[0][0]).abs().max())
assert difference < 1e-4, difference
difference

# %% [markdown]
# ## What the paper reports
#
# Not entered: the RefCOCO numbers of Tables 1–3 are unconfirmed here (no code, numbers not transcribed).

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims (proxy: a selection probe on the toy world)

# %% tags=["claims"]
from clipbook.claims import Claim

PROXY = "proxy: selection probe on frozen tiny CLIP / tiny SSL features, toy-scenes (no official code)"
CLAIMS = [
    Claim("clip-multi-level", "Multi-level CLIP features beat CLIP's last layer for referring",
          method="CLIP multi-level", baseline="CLIP last layer", metric="selection accuracy", measured_on=PROXY),
    Claim("ssl-multi-level", "Multi-level SSL (DINO) features beat the last layer for referring",
          method="SSL multi-level", baseline="SSL last layer", metric="selection accuracy", measured_on=PROXY),
    Claim("comm-beats-clip", "COMM's fusion beats multi-level CLIP alone",
          method="COMM (CLIP + SSL multi-level)", baseline="CLIP multi-level", metric="selection accuracy",
          measured_on=PROXY),
    Claim("comm-beats-ssl", "COMM's fusion beats multi-level SSL alone",
          method="COMM (CLIP + SSL multi-level)", baseline="SSL multi-level", metric="selection accuracy",
          measured_on=PROXY),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED)
