# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # From CLIP to DINO: Visual Encoders Shout in MLLMs (COMM) — a proxy
#
# Jiang, Liu, Liu, Zhang, Li, Xiong, Tian · 2023 · [arXiv:2310.08825](https://arxiv.org/abs/2310.08825) ·
# repository [YuchenLiu98/COMM](https://github.com/YuchenLiu98/COMM) (MIT) — read with `fetch` (snapshot
# `efcb0cd`): it holds only the README, figures and an unrelated Qwen-VL Colab ("code release will be delayed…
# legal review"). **No official code exists**, so every piece below follows the paper's text (§3, "LLN-Layerscale"
# merging, the MLP on DINOv2, the concatenation), cited by section, and the whole notebook is a **proxy**.
#
# **Claim.** CLIP's shallow layers help fine-grained tasks (referring, grounding), so the features of all layers,
# each passed through Linear–LayerNorm and merged with learned LayerScale weights, beat the last layer alone;
# DINOv2, given an MLP to align it, beats CLIP on fine-grained perception; COMM, the concatenation of the merged
# CLIP and the merged-then-MLP DINOv2 features, beats both (paper Tables 1–4, RefCOCO/+/g, with Vicuna-7B).
#
# **This notebook (offline).** The tiny CLIP (ResNet tower; levels = its four stages) and the tiny self-supervised
# DINO ViT (levels = its four blocks) on `toy-scenes`. Task: given a scene and one of its objects' phrases
# ("a red poppy"), pick the referred object among the scene's objects (**referring selection accuracy**). The
# merged visual feature of each object (mask-pooled from every level) is scored against the phrase's CLIP text
# embedding by a small probe trained on frozen features — the same probe, schedule, scenes and seeds for every arm.
#
# **Deviations.** (1) A selection probe on frozen features stands in for the MLLM (Vicuna-7B fine-tuned on
# instruction data, generating boxes): it cannot run here. (2) Region features are mask-pooled from the world's
# ground-truth masks (the MLLM sees the whole image and emits a box). (3) The tiny towers instead of CLIP ViT-L/14
# and DINOv2 ViT-L/14 (under the paper profile: OpenAI RN50 and DINO ViT-B/16, the library's real encoders;
# see the end). (4) A smaller evaluation: `scenes` scenes of the test split (70 % train / 30 % test for the probe),
# the same for every arm. (5) LayerScale's initial value and the MLP's width are not given in the text; ours are
# stated beside the code.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
ssl_encoder = "clipbook-tiny-dino-vit"
datasets = ["toy-scenes"]
seeds = [1, 2, 3]
scenes = 300
epochs = 150
learning_rate = 0.01
width = 64
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Int, ListOf, Str, declare

SPEC = declare(
    "profile", "models", "seeds", "epochs", "learning_rate", "device", needs=("tiny-clip", "tiny-ssl"),
    datasets=ListOf(Str(["toy-scenes"]), length=1,
                    help="scenes with object masks and referring phrases (RefCOCO is not registered)"),
    ssl_encoder=Str(["clipbook-tiny-dino-vit", "dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8"],
                    help="the DINO branch (paper: DINOv2 ViT-L/14, not in the library's registry)"),
    scenes=Int(minimum=10, help="scenes of the split used (70 % train the probe, 30 % test it)"),
    width=Int(minimum=1, help="width of each branch's merged feature (the paper feeds the LLM's 4096)"),
)

# %%
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import transforms

import clipbook
from clipbook import cache
from clipbook.data.registry import load_dataset
from clipbook.determinism import deterministic_torch
from clipbook.models import towers
from clipbook.models.loader import load_model
from clipbook.models.tiny_ssl import IMAGENET_MEAN, IMAGENET_STD, load_ssl_encoder
from clipbook.report.rows import summarise
from clipbook.toyworld import world

session = clipbook.start(SPEC, globals())
(model_name, tag), = models
clip = load_model(model_name, tag, device="cpu")
ssl = load_ssl_encoder(ssl_encoder, show_progress=False)
dataset = load_dataset(datasets[0], "test")
if scenes > len(dataset.scenes):
    raise ValueError(f"scenes={scenes} but {datasets[0]} has {len(dataset.scenes)} test scenes")

# %% [markdown]
# ## Multi-level region features, cached once per (model, dataset)
#
# COMM takes the output of every layer $\ell$ of each encoder (§3). Each level's feature map is average-pooled
# inside an object's mask, one region vector per level: $r_\ell = \sum_p m_p f_\ell(p) / \sum_p m_p$, with the
# mask averaged over each feature cell. The maps come from `clipbook.models.towers` (`resnet_stages`: a
# ResNet tower's four stage outputs; `vit_block_maps`: a ViT's patch tokens after each block). The DINO branch's
# images are resized to its input size without cropping, so the masks stay aligned.

# %%
def mask_pool(maps: list[torch.Tensor], masks: torch.Tensor) -> list[torch.Tensor]:
    """maps: per level (C, h, w); masks: (K, H, W) -> per level (K, C)."""
    pooled = []
    for fmap in maps:
        weights = F.adaptive_avg_pool2d(masks[:, None].float(), fmap.shape[-2:])[:, 0].flatten(1)
        pooled.append(weights @ fmap.flatten(1).T / weights.sum(1, keepdim=True).clamp_min(1e-6))
    return pooled


SSL_SIZE = ssl.model.vit.patch_embed.img_size[0]
ssl_preprocess = transforms.Compose([transforms.Resize((SSL_SIZE, SSL_SIZE), interpolation=transforms.InterpolationMode.BICUBIC),
                                     transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def encode_levels() -> dict:
    """Per scene and object: the mask-pooled features of every level of both towers, padded to K objects."""
    annotations = [world.annotations(dataset.scenes[i]) for i in range(scenes)]
    K = max(len(a) for a in annotations)
    clip_levels, ssl_levels = [], []
    with torch.no_grad(), deterministic_torch(threads=1):  # one thread: a second only spins on a loaded 2-core box
        for start in range(0, scenes, 50):
            batch = range(start, min(start + 50, scenes))
            images = [dataset[i][0] for i in batch]
            clip_maps = towers.resnet_stages(clip.model.visual, torch.stack([clip.preprocess(im) for im in images]))
            ssl_maps = towers.vit_block_maps(ssl.model.vit, torch.stack([ssl_preprocess(im) for im in images]))
            for offset, i in enumerate(batch):
                masks = torch.from_numpy(np.stack([a["mask"] for a in annotations[i]]))
                for out, maps in ((clip_levels, clip_maps), (ssl_levels, ssl_maps)):
                    out.append([F.pad(p, (0, 0, 0, K - len(p))) for p in mask_pool([m[offset] for m in maps], masks)])
    return {"clip": [torch.stack([s[l] for s in clip_levels]) for l in range(len(clip_levels[0]))],
            "ssl": [torch.stack([s[l] for s in ssl_levels]) for l in range(len(ssl_levels[0]))],
            "phrases": [[a["phrase"] for a in scene] for scene in annotations]}


features = cache.cached("comm-levels", {"clip": clip.identity, "ssl": ssl.identity, "dataset": datasets[0],
                                        "split": "test", "scenes": scenes, "version": 1}, encode_levels, name="comm")
K = features["clip"][0].shape[1]
phrases = sorted({p for scene in features["phrases"] for p in scene})
with torch.no_grad():
    phrase_features = F.normalize(clip.encode_text_prompts(phrases).float(), dim=-1)
index = {p: i for i, p in enumerate(phrases)}
text = torch.stack([F.pad(phrase_features[[index[p] for p in scene]], (0, 0, 0, K - len(scene)))
                    for scene in features["phrases"]])
valid = torch.tensor([[j < len(scene) for j in range(K)] for scene in features["phrases"]])
pd.DataFrame({"branch": ["CLIP"] * len(features["clip"]) + ["SSL"] * len(features["ssl"]),
              "level": list(range(1, len(features["clip"]) + 1)) + list(range(1, len(features["ssl"]) + 1)),
              "channels": [f.shape[-1] for f in features["clip"] + features["ssl"]]})

# %% [markdown]
# ## The COMM merge
#
# Paper §3 (text only; no code). Each level's feature is aligned by a *Linear–LayerNorm* (LLN) and the levels
# are summed with learned per-channel *LayerScale* weights (Touvron et al.'s LayerScale, $\gamma_\ell \in
# \mathbb R^{d}$):
#
# $$v = \sum_\ell \gamma_\ell \odot \mathrm{LN}_\ell(W_\ell r_\ell).$$
#
# The CLIP branch uses it as is. The DINO branch is merged the same way and then passed through an MLP
# (Linear–GELU–Linear), because DINO was never aligned with text ("equipping it with an MLP layer for alignment").
# COMM concatenates the two along channels, $[v_{\rm CLIP};\ \mathrm{MLP}(v_{\rm DINO})]$, before the projection
# into the LLM. Here the projection $U$ maps into the CLIP text space and the probe scores object $k$ against the
# phrase's text embedding $t$: $s_k = \langle U v_k, t\rangle$, softmax over the scene's objects, cross-entropy on
# the referred object. A last-layer arm is the same module with one level. LayerScale's initial value is not
# given in the text; we start every $\gamma_\ell$ at $1/L$ (the mean of the levels).

# %%
class LLNLayerScale(nn.Module):
    """Multi-level merge of COMM §3: Linear–LayerNorm per level, summed with per-channel LayerScale weights."""

    def __init__(self, dims: list[int], width: int):
        super().__init__()
        self.align = nn.ModuleList(nn.Sequential(nn.Linear(d, width), nn.LayerNorm(width)) for d in dims)
        self.scale = nn.Parameter(torch.full((len(dims), width), 1.0 / len(dims)))

    def forward(self, levels: list[torch.Tensor]) -> torch.Tensor:
        return sum(g * align(x) for g, align, x in zip(self.scale, self.align, levels))


class Probe(nn.Module):
    """[merged CLIP ; MLP(merged DINO)] -> a linear projection into the text space (the LLM's input in COMM)."""

    def __init__(self, clip_dims: list[int], ssl_dims: list[int], text_dim: int, width: int):
        super().__init__()
        self.clip = LLNLayerScale(clip_dims, width) if clip_dims else None
        self.ssl = nn.Sequential(LLNLayerScale(ssl_dims, width), nn.Linear(width, width), nn.GELU(),
                                 nn.Linear(width, width)) if ssl_dims else None  # §3: an MLP aligns DINO
        self.project = nn.Linear(width * (bool(clip_dims) + bool(ssl_dims)), text_dim)

    def forward(self, clip_levels: list[torch.Tensor], ssl_levels: list[torch.Tensor]) -> torch.Tensor:
        parts = ([self.clip(clip_levels)] if self.clip else []) + ([self.ssl(ssl_levels)] if self.ssl else [])
        return self.project(torch.cat(parts, dim=-1))  # §3: channel concatenation


ALL_CLIP, ALL_SSL = list(range(len(features["clip"]))), list(range(len(features["ssl"])))
ARMS = {  # arm -> (CLIP levels, SSL levels)
    "CLIP last layer": ([ALL_CLIP[-1]], []), "CLIP multi-level": (ALL_CLIP, []),
    "SSL last layer + MLP": ([], [ALL_SSL[-1]]), "SSL multi-level + MLP": ([], ALL_SSL),
    "COMM (CLIP + SSL multi-level)": (ALL_CLIP, ALL_SSL),
}
n_train = int(0.7 * scenes)
TRAIN, TEST = slice(0, n_train), slice(n_train, scenes)


def scores_of(probe: Probe, arm: str, part: slice) -> torch.Tensor:
    clip_keep, ssl_keep = ARMS[arm]
    vision = probe([features["clip"][l][part] for l in clip_keep], [features["ssl"][l][part] for l in ssl_keep])
    scores = torch.einsum("bkd,bjd->bjk", vision, text[part])  # phrase j against object k
    return scores.masked_fill(~valid[part][:, None, :], float("-inf"))


def train_probe(arm: str, seed: int) -> dict:
    torch.manual_seed(seed)
    clip_keep, ssl_keep = ARMS[arm]
    probe = Probe([features["clip"][l].shape[-1] for l in clip_keep], [features["ssl"][l].shape[-1] for l in ssl_keep],
                  text.shape[-1], width)
    optimizer = torch.optim.AdamW(probe.parameters(), lr=learning_rate, weight_decay=1e-4)
    targets = torch.arange(K).expand(n_train, K)
    losses = []
    for _ in range(epochs):  # full batch: one step per epoch
        loss = F.cross_entropy(scores_of(probe, arm, TRAIN)[valid[TRAIN]], targets[valid[TRAIN]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    with torch.no_grad():
        picked = scores_of(probe, arm, TEST).argmax(-1)
    accuracy = 100.0 * float((picked == torch.arange(K).expand_as(picked))[valid[TEST]].float().mean())
    return {"losses": losses, "accuracy": accuracy}


with deterministic_torch(threads=1):  # tiny full-batch steps: a second thread only spins
    runs = {(arm, seed): train_probe(arm, seed) for arm in ARMS for seed in seeds}
rows = pd.DataFrame([{"model": model_name, "dataset": datasets[0], "metric": "referring selection accuracy",
                      "method": arm, "seed": seed, "value": runs[arm, seed]["accuracy"]} for arm, seed in runs])
CHANCE = 100.0 * float((valid[TEST] / valid[TEST].sum(1, keepdim=True)).sum() / valid[TEST].sum())
summary = summarise(rows).round(2)
summary

# %% [markdown]
# Chance (a uniform guess among each test scene's objects), and each arm's training loss, first and last step
# (mean over seeds):

# %%
pd.DataFrame({"arm": list(ARMS),
              "first loss": [np.mean([runs[a, s]["losses"][0] for s in seeds]) for a in ARMS],
              "last loss": [np.mean([runs[a, s]["losses"][-1] for s in seeds]) for a in ARMS]}).round(3), round(CHANCE, 2)

# %% [markdown]
# ## Sanity check: mask pooling against a naive loop
#
# An independent formulation of the pooling: on one scene and one level, the full-resolution mask is averaged
# over each feature cell by explicit slicing (cells as the input pixels each feature location covers, also when the
# sizes do not divide, e.g. RN50's 56 × 56 stage over a 64-pixel mask), then the feature map is weighted and
# summed by hand. It fails if
# the adaptive pooling misaligns masks and cells (e.g. a crop in the preprocessing, or a transposed map).

# %%
with torch.no_grad(), deterministic_torch(threads=1):
    fmap = towers.resnet_stages(clip.model.visual, clip.preprocess(dataset[0][0])[None])[1][0]
mask = torch.from_numpy(world.annotations(dataset.scenes[0])[0]["mask"]).float()
H, W, h, w = *mask.shape, *fmap.shape[-2:]


def cell(i: int, n: int, size: int) -> slice:  # feature cell i of n covers input pixels [floor(i s/n), ceil((i+1) s/n))
    return slice(i * size // n, -(-(i + 1) * size // n))


cell_weights = torch.tensor([[float(mask[cell(y, h, H), cell(x, w, W)].mean()) for x in range(w)] for y in range(h)])
naive = (fmap * cell_weights).sum((1, 2)) / cell_weights.sum()
pooling_error = float((naive - mask_pool([fmap], mask[None])[0][0]).abs().max())
assert pooling_error < 1e-4, pooling_error
# and the cached features equal a fresh computation for scene 0, level 2 of the CLIP branch
cache_error = float((features["clip"][1][0, 0] - naive).abs().max())
assert cache_error < 1e-4, cache_error
f"max |naive - pooled| = {pooling_error:.1e}; max |cached - naive| = {cache_error:.1e}"

# %% [markdown]
# ## What the paper reports
#
# No numbers are entered. The README's radar chart (`images/performance.png`) prints ring labels, not COMM's
# values, and the paper's RefCOCO tables measure an MLLM, not this probe (papers.md §33: exact numbers
# **unconfirmed**).

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims (proxy: a referring-selection probe on frozen features)
#
# Against the paper's own baseline, CLIP's last layer (LLaVA / Shikra's visual input), and between the branches.
# Preconditions: every arm's probe loss fell in every seed (first step minus last step, smallest over seeds, > 0),
# and the baseline is above chance by at least 10 points (otherwise the encoders carry no referring signal here).

# %% tags=["claims"]
from clipbook.claims import Claim

PROXY = "a referring-selection probe on frozen, mask-pooled features (proxy for the MLLM; no official code)"
METRIC = "referring selection accuracy"
ARM_NAMES = ["CLIP last layer", "CLIP multi-level", "SSL last layer + MLP", "SSL multi-level + MLP",
             "COMM (CLIP + SSL multi-level)"]  # the arms above (this cell stands alone for the contract's checks)
REQUIRES = ("baseline-above-chance", *(f"loss-fell | {arm}" for arm in ARM_NAMES))
CLAIMS = [
    Claim("clip-multi-level", "Multi-level CLIP features (LLN-Layerscale) beat CLIP's last layer at referring",
          method="CLIP multi-level", baseline="CLIP last layer", metric=METRIC, measured_on=PROXY, requires=REQUIRES),
    Claim("dino-beats-clip", "DINO features with an MLP beat CLIP's last layer at fine-grained referring",
          method="SSL multi-level + MLP", baseline="CLIP last layer", metric=METRIC, measured_on=PROXY,
          requires=REQUIRES),
    Claim("comm-beats-clip", "COMM beats CLIP's last layer (the paper's baseline) at referring",
          method="COMM (CLIP + SSL multi-level)", baseline="CLIP last layer", metric=METRIC, measured_on=PROXY,
          requires=REQUIRES),
    Claim("comm-beats-clip-multi", "COMM beats multi-level CLIP alone",
          method="COMM (CLIP + SSL multi-level)", baseline="CLIP multi-level", metric=METRIC, measured_on=PROXY,
          requires=REQUIRES),
    Claim("comm-beats-dino-multi", "COMM beats multi-level DINO (with its MLP) alone",
          method="COMM (CLIP + SSL multi-level)", baseline="SSL multi-level + MLP", metric=METRIC,
          measured_on=PROXY, requires=REQUIRES),
]

# %%
from clipbook.claims import at_least

baseline_accuracy = float(rows.query("method == 'CLIP last layer'")["value"].mean())
PRECONDITIONS = [at_least("baseline-above-chance", "CLIP last layer: mean accuracy minus chance", baseline_accuracy - CHANCE,
                          10.0, "points")] + [
    at_least(f"loss-fell | {arm}", f"{arm}: smallest drop of the probe's loss over seeds (first minus last step)",
             float(min(runs[arm, s]["losses"][0] - runs[arm, s]["losses"][-1] for s in seeds)), 1e-6)
    for arm in ARMS]
assert {p.id for p in PRECONDITIONS} == set(REQUIRES) and list(ARMS) == ARM_NAMES

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS)
