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
# # CLOC: Contrastive Localized Language-Image Pre-Training
#
# Chen, Gao, Du, Zhang, Li et al. (Apple) — ICML 2025 · [arXiv:2410.02746](https://arxiv.org/abs/2410.02746)
#
# > **No official code, weights or region annotations exist** (papers.md §26: the authors are "working on releasing"
# > checkpoints and the VESL region-text labels). Everything below is **reconstructed from the paper's text**; every
# > hyper-parameter the text does not give is ours, fixed before any result, and marked "ours" where it is set.
#
# **Claim.** CLIP aligns whole images with captions, so its features are weak for regions. CLOC adds a
# region–text contrastive loss (and a text→box grounding loss) on top of CLIP's, read through a *Prompter*: a light
# module that takes the image encoder's spatial tokens plus a spatial prompt (a box) and returns that region's
# embedding in the joint space ("promptable embeddings"). Against CLIP trained on the same data and compute with the
# image-level loss alone, CLOC gives much better region recognition and region–text retrieval, and keeps
# whole-image zero-shot classification (the paper's region-task tables and its image-level table).
#
# **This notebook.** The `offline` profile *continues training* the library's tiny CLIP (`clipbook-tiny-rn`) on the
# train split of a toy region benchmark (500 mosaics of four objects; each object's box and phrase is a region label,
# the image's caption is its objects' phrases in order) in two arms at **equal compute** (same start, steps, batch,
# data order and seeds): image-only CLIP (L_CLIP) and CLOC (L_CLIP + L_region + L_grounding, with a Prompter). It
# scores region–text retrieval and region classification from the test split's boxes and phrases, and whole-image
# zero-shot on the toy suite. Pre-training from scratch, as the paper does, is out of this notebook's budget: this
# is a deviation. The `paper` profile (`notebooks/profiles/paper/cloc.yaml`) has no CLOC weights to run: it runs the
# closest honest proxy — an open_clip checkpoint whose dense features are box-pooled — on COCO region
# classification, and every CLOC claim there is *not tested*.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy-context", "toy"]
seeds = [1, 2, 3]
learning_rate = 1e-4  # ours, as are steps and batch_size (the paper pre-trains from scratch at batch 32k)
steps = 60
batch_size = 32
zero_shot_images = 600  # an evenly spaced subset of the toy test split, for the budget
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Int, declare

SPEC = declare("profile", "models", "datasets", "seeds", "learning_rate", "device",
               steps=Int(minimum=1, help="continued-training steps, the same for both arms"),
               batch_size=Int(minimum=2, help="images per step, the same for both arms (each brings its regions)"),
               zero_shot_images=Int(minimum=1, help="whole-image zero-shot: test images of the classification set "
                                                    "(an evenly spaced subset)"))

# %%
import copy
import math

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from torchvision.ops import roi_align

import clipbook
from clipbook import cache, metrics, zeroshot
from clipbook.dense import benchmarks
from clipbook.dense.features import maskclip_features
from clipbook.dense.pooling import box_pool
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models.loader import LoadedModel, load_model
from clipbook.models.towers import attention_pool
from clipbook.report.rows import summarise
from clipbook.training.loop import RECIPE, clip_loss, code_fingerprint, train_clip, trained_clip, weights_key

session = clipbook.start(SPEC, globals())
TOY = session.profile == "offline"
region_sets = [d for d in datasets if d in benchmarks.OVSS_BENCHMARKS]
image_sets = [d for d in datasets if d not in benchmarks.OVSS_BENCHMARKS]
if TOY and (len(region_sets) != 1 or not image_sets):
    raise ValueError(f"the offline profile needs one toy region benchmark ({', '.join(benchmarks.OVSS_BENCHMARKS)}) "
                     f"and at least one classification set in `datasets`; got {datasets}")
if len(models) != 1:
    raise ValueError(f"one starting model: got {models}")
base = load_model(*models[0], device=session.device)

# %% [markdown]
# ## The method
#
# **Where the features come from.** The tiny CLIP's tower is a ResNet: a convolutional trunk, then an attention
# pool. A 128-px mosaic goes through the trunk once and gives a 4×4 map (one 64-px tile, the tower's training size,
# is 2×2 cells). The whole-image embedding is the tower's own attention pool over the 4×4 map with its positional
# embedding resized (bicubic) from 2×2 — as CLIP runs at a larger input — so L_CLIP and the regions read the same
# map: the image is encoded once and every box reads from it (a promptable embedding, not a crop re-encoded).
#
# **Prompter** (paper §3: region embedding $f(x, b)$ from the image tokens $x$ and a box prompt $b$; the paper's is a
# light transformer on the ViT's tokens — its exact form is not given in what we could read, so this one is ours):
# RoIAlign the box to 2×2 cells of the trunk map (the grid the tower's pool was trained on), then one attention
# layer whose query is the cells' mean plus a learned embedding of the box coordinates $(x_0, y_0, x_1, y_1)/128$
# (a two-layer MLP whose last layer starts at zero), its keys and values the four cells plus positions. Its
# attention weights start as a copy of the tower's attention pool, so at step 0 the Prompter *is* "RoIAlign + CLIP's
# own pool" — which is exactly the region read-out we give the image-only CLIP arm (its own trained pool, zero
# prompt). CLOC's gain is then what training adds, not a different read-out.

# %%
def global_embedding(visual: nn.Module, feature_map: torch.Tensor) -> torch.Tensor:
    """CLIP's image embedding of a trunk map of any size: the tower's attention pool, positions resized
    (`towers.pool_positional_embedding`)."""
    return attention_pool(visual.attnpool, feature_map)


# %%
class Prompter(nn.Module):
    """Box prompt + trunk map → region embedding (ours; see the markdown above)."""

    def __init__(self, pool: nn.Module, width: int = 64, cells: int = 2):
        super().__init__()
        self.pool, self.cells = copy.deepcopy(pool), cells
        channels = pool.k_proj.in_features
        self.box_prompt = nn.Sequential(nn.Linear(4, width), nn.GELU(), nn.Linear(width, channels))
        nn.init.zeros_(self.box_prompt[-1].weight)
        nn.init.zeros_(self.box_prompt[-1].bias)

    def forward(self, feature_map: torch.Tensor, boxes: list[torch.Tensor], image_size: int) -> torch.Tensor:
        """feature_map (N, C, h, w); boxes: one (K_i, 4) tensor of [x0, y0, x1, y1] px per image → (ΣK_i, D)."""
        cells = roi_align(feature_map, [b.to(feature_map.dtype) for b in boxes], self.cells,
                          spatial_scale=feature_map.shape[-1] / image_size, sampling_ratio=2, aligned=True)
        x = cells.flatten(2).transpose(1, 2)  # (K, cells², C)
        x = torch.cat([x.mean(dim=1, keepdim=True), x], dim=1) + self.pool.positional_embedding.to(x.dtype)
        prompt = self.box_prompt(torch.cat(boxes).to(x.dtype) / image_size)
        query = x[:, :1] + prompt[:, None]

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.unflatten(-1, (self.pool.num_heads, -1)).transpose(1, 2)

        pooled = F.scaled_dot_product_attention(heads(self.pool.q_proj(query)), heads(self.pool.k_proj(x)),
                                                heads(self.pool.v_proj(x)))
        return self.pool.c_proj(pooled.transpose(1, 2).flatten(2))[:, 0]


# %% [markdown]
# **Grounding head** (paper: $\mathcal{L}_{\text{grounding}}$ predicts a region's box from its text, the mirror of
# box → embedding; its form is not in what we could read, so this is ours): the phrase embedding $t$ queries the
# image's trunk cells, $p_j = \mathrm{softmax}_j(\langle W_q t, W_k x_j\rangle/\sqrt{d})$; the box is a sigmoid MLP
# of $[\sum_j p_j W_v x_j,\ W_q t,\ \sum_j p_j c_j]$ ($c_j$ the cell centres), trained with L1 on $b/128$.

# %%
class GroundingHead(nn.Module):
    """Region text embedding + its image's trunk map → box [x0, y0, x1, y1] / image size (ours)."""

    def __init__(self, text_dim: int, channels: int, width: int = 64):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(text_dim, width), nn.Linear(channels, width), nn.Linear(channels, width)
        self.box = nn.Sequential(nn.Linear(2 * width + 2, width), nn.GELU(), nn.Linear(width, 4))

    def forward(self, text: torch.Tensor, feature_map: torch.Tensor, image_index: torch.Tensor) -> torch.Tensor:
        h, w = feature_map.shape[-2:]
        tokens = feature_map.flatten(2).transpose(1, 2)[image_index]  # (K, hw, C)
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
        centres = torch.stack([xs, ys], -1).flatten(0, 1).to(tokens)  # (hw, 2)
        query = self.query(text)
        attention = (self.key(tokens) @ query[:, :, None]).squeeze(-1).div(math.sqrt(query.shape[-1])).softmax(-1)
        pooled = (attention[..., None] * self.value(tokens)).sum(1)
        return torch.sigmoid(self.box(torch.cat([pooled, query, attention @ centres], -1)))


# %% [markdown]
# **Region–text loss** (paper: a contrastive loss between region embeddings and their region captions, alongside
# L_CLIP). Our form, since the exact negatives are not given: over all regions $r_k$ of the batch and the batch's
# *distinct* phrases $u_j$ (a phrase such as "a green salad" recurs across images, and a copy must not be its own
# negative), $\mathcal{L}_{r\to t} = -\frac1K\sum_k \log \mathrm{softmax}_j(s\,r_k\!\cdot\!u_j)_{y_k}$ and
# $\mathcal{L}_{t\to r} = -\frac1J\sum_j \log \sum_{k:\,y_k=j} \mathrm{softmax}_k(s\,u_j\!\cdot\!r_k)$ (every region of
# the phrase is a positive), $\mathcal{L}_{\text{region}} = (\mathcal{L}_{r\to t}+\mathcal{L}_{t\to r})/2$ with CLIP's
# temperature $s$. With one region per image and distinct phrases it is exactly CLIP's InfoNCE — the sanity check
# below tests that against open_clip's `ClipLoss`. The total is
# $\mathcal{L} = \mathcal{L}_{\text{CLIP}} + \mathcal{L}_{\text{region}} + \mathcal{L}_{\text{grounding}}$ (paper §3;
# weights 1 are ours).

# %%
def region_text_loss(regions: torch.Tensor, phrase_embeddings: torch.Tensor, phrase_index: torch.Tensor,
                     scale: torch.Tensor) -> torch.Tensor:
    """regions (K, D), phrase_embeddings (J, D) distinct phrases, phrase_index (K,) in [0, J): normalised inputs."""
    logits = scale * regions @ phrase_embeddings.T  # (K, J)
    region_to_text = F.cross_entropy(logits, phrase_index)
    positives = F.one_hot(phrase_index, len(phrase_embeddings)).T.bool()  # (J, K)
    log_probabilities = logits.T.log_softmax(dim=-1)
    text_to_region = -torch.logsumexp(log_probabilities.masked_fill(~positives, -torch.inf), dim=-1).mean()
    return (region_to_text + text_to_region) / 2


# %% [markdown]
# ## The data
#
# Train: the benchmark's train split (500 mosaics). Regions are the objects' boxes and phrases
# (`Mosaic.annotations()` through `region_texts`); the image's caption is its phrases joined in tile order. The text
# tower is frozen in both arms (ours, for the budget): every phrase and caption is encoded once. The trunk up to its
# last stage is frozen too (ours): its 8×8 stage-3 map is computed once per image, and both arms train the last
# stage, the attention pool (and CLOC its Prompter and grounding head), with BatchNorm statistics fixed.

# %%
def image_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 → normalised (N, 3, H, W), at the mosaic's own 128 px (the trunk is convolutional)."""
    mean = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)  # the tiny CLIP's preprocess normalisation
    std = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std


def stage3_maps(model, split: str) -> torch.Tensor:
    """The frozen trunk's stage-3 maps of a split's mosaics, (N, C, 8, 8), computed once and cached."""
    visual = model.visual

    def build() -> torch.Tensor:
        images = image_tensor(benchmarks.load_segmentation(region_sets[0], split).images)
        with torch.no_grad():
            return torch.cat([visual.layer3(visual.layer2(visual.layer1(visual.stem(chunk))))
                              for chunk in images.split(100)])

    spec = {"what": "cloc stage-3 maps", "model": base.identity, "benchmark": region_sets[0], "split": split,
            "version": benchmarks.BENCHMARKS_VERSION}
    return cache.cached("features", spec, build, name=f"cloc-{split}")


def region_table(split: str) -> dict:
    """Per split: boxes per image, each region's phrase index and class name, the distinct phrases, the captions."""
    per_image = benchmarks.region_texts(region_sets[0], split)
    phrases = sorted({r["phrase"] for regions in per_image for r in regions})
    return {"boxes": [torch.tensor([r["box"] for r in regions], dtype=torch.float32) for regions in per_image],
            "phrase_index": [torch.tensor([phrases.index(r["phrase"]) for r in regions]) for regions in per_image],
            "classnames": [r["classname"] for regions in per_image for r in regions],
            "phrases": phrases, "captions": [", ".join(r["phrase"] for r in regions) for regions in per_image]}


def encode_texts(texts: list[str]) -> torch.Tensor:
    with torch.no_grad():
        return F.normalize(torch.cat([base.encode_text_prompts(texts[i:i + 256]).float().cpu()
                                      for i in range(0, len(texts), 256)]), dim=-1)


if TOY:
    train_maps, test_maps = stage3_maps(base.model, "train"), stage3_maps(base.model, "test")
    train_regions, test_regions = region_table("train"), region_table("test")
    train_captions, train_phrases = encode_texts(train_regions["captions"]), encode_texts(train_regions["phrases"])
    stats = {"train images": len(train_maps), "train regions": sum(len(b) for b in train_regions["boxes"]),
             "train distinct phrases": len(train_regions["phrases"]), "test images": len(test_maps),
             "test regions": len(test_regions["classnames"]), "test distinct phrases": len(test_regions["phrases"])}
else:
    stats = {}
stats

# %% [markdown]
# ## Training at equal compute
#
# Both arms start from the same tiny CLIP and run the library's loop (`clipbook.training.loop.train_clip`, AdamW
# with betas (0.9, 0.98) as the paper, weight decay 0.1 and cosine schedule as the library's recipe) for the same
# `steps` at the same `batch_size`, on the same images in the same order per seed. Learning rate, steps, batch,
# warm-up and the frozen parts are ours (the paper pre-trains from scratch at batch 32k). The loop's "caption" of a
# pair is its image index, which the forward uses to look up its frozen caption embedding and its regions.

# %%
RECIPE_HERE = {**RECIPE, "steps": steps, "batch_size": batch_size, "lr": learning_rate, "warmup_steps": 10,
               "train_logit_scale": False}


def run_last_stage(visual: nn.Module, maps: torch.Tensor) -> torch.Tensor:
    return visual.layer4(maps)


def clip_forward(model, images: torch.Tensor, image_ids: torch.Tensor) -> dict:
    """L_CLIP's inputs: the global embedding of the trainable last stage's map, the frozen caption embedding."""
    model.eval()  # BatchNorm statistics stay the pretrained ones, in both arms
    feature_map = run_last_stage(model.visual, images)
    return {"image_features": F.normalize(global_embedding(model.visual, feature_map), dim=-1),
            "text_features": train_captions[image_ids], "logit_scale": model.logit_scale.exp(),
            "feature_map": feature_map, "image_ids": image_ids}


def cloc_forward(model, images: torch.Tensor, image_ids: torch.Tensor) -> dict:
    """CLIP's forward plus every region of the batch: Prompter embeddings, the distinct phrases, predicted boxes."""
    out = clip_forward(model, images, image_ids)
    boxes = [train_regions["boxes"][i] for i in image_ids]
    phrase_ids = torch.cat([train_regions["phrase_index"][i] for i in image_ids])
    distinct, phrase_index = torch.unique(phrase_ids, return_inverse=True)
    image_index = torch.cat([torch.full((len(b),), n) for n, b in enumerate(boxes)])
    return {**out, "regions": F.normalize(model.prompter(out["feature_map"], boxes, benchmarks.IMAGE_SIZE), dim=-1),
            "phrases": train_phrases[distinct], "phrase_index": phrase_index,
            "predicted_boxes": model.grounding(train_phrases[phrase_ids], out["feature_map"], image_index),
            "boxes": torch.cat(boxes) / benchmarks.IMAGE_SIZE}


def cloc_loss(out: dict, batch: dict) -> torch.Tensor:
    """L_CLIP + L_region + L_grounding (weights 1: ours)."""
    region = region_text_loss(out["regions"], out["phrases"], out["phrase_index"], out["logit_scale"])
    grounding = F.l1_loss(out["predicted_boxes"], out["boxes"])
    return clip_loss(out, batch) + region + grounding


def with_cloc_modules(model) -> nn.Module:
    model.prompter = Prompter(model.visual.attnpool)
    model.grounding = GroundingHead(train_phrases.shape[1], model.visual.attnpool.k_proj.in_features)
    return model


TRAINABLE = ("visual.layer4.", "visual.attnpool.", "prompter.", "grounding.")
ARMS = {"CLIP": {"forward": clip_forward, "loss": clip_loss},
        "CLOC": {"forward": cloc_forward, "loss": cloc_loss}}


def continue_training(arm: str, seed: int) -> tuple[nn.Module, dict]:
    """One arm at one seed, cached by start model, data, recipe and the code of every part."""
    plugins = ARMS[arm]
    recipe = {**RECIPE_HERE, "seed": seed}

    def build() -> nn.Module:
        model = copy.deepcopy(base.model).cpu()
        return with_cloc_modules(model) if arm == "CLOC" else model

    def train(model) -> dict:
        return train_clip(model, train_maps, [str(i) for i in range(len(train_maps))],
                          lambda ids: torch.tensor([int(i) for i in ids]), recipe,
                          trainable=lambda name: name.startswith(TRAINABLE), show_progress=False, **plugins)

    helpers = {f.__name__: code_fingerprint(f) for f in (global_embedding, attention_pool, run_last_stage, clip_forward,
                                                          region_text_loss, with_cloc_modules, Prompter, GroundingHead)}
    data_key = {"benchmark": region_sets[0], "split": "train", "version": benchmarks.BENCHMARKS_VERSION,
                "trainable": TRAINABLE, "helpers": helpers}
    return trained_clip(f"cloc-{arm}", build, data_key, train, recipe=recipe, plugins=plugins, start=base.identity)


runs = {(arm, seed): continue_training(arm, seed) for arm in ARMS for seed in seeds} if TOY else {}

# %% [markdown]
# ## Region read-outs and the evaluation
#
# Test split of the benchmark: every visible object is a region (box + phrase + class). Region–text retrieval: each
# region against the split's distinct phrases (region→text R@1: its own phrase ranks first) and each distinct phrase
# against all regions (text→region R@1: the top region carries that phrase). Region classification: each region
# against the benchmark's class names ("a photo of a {}."), top-1 accuracy. The read-outs: CLOC's Prompter;
# for the image-only arm and the starting model, the same module at zero prompt with their own pool (RoIAlign + CLIP's
# pool); and MaskCLIP's value path box-pooled (`dense.pooling.box_pool`) as a second training-free read-out.

# %%
def region_embeddings(model, readout: str) -> torch.Tensor:
    """Every test region's embedding (ΣK, D), normalised."""
    with torch.no_grad():
        feature_map = run_last_stage(model.visual, test_maps)
        if readout == "prompter":
            prompter = model.prompter if hasattr(model, "prompter") else Prompter(model.visual.attnpool)
            regions = prompter(feature_map, test_regions["boxes"], benchmarks.IMAGE_SIZE)
        elif readout == "maskclip":
            pool = model.visual.attnpool
            dense = pool.c_proj(pool.v_proj(feature_map.permute(0, 2, 3, 1))).permute(0, 3, 1, 2)
            regions = box_pool(dense, test_regions["boxes"], (benchmarks.IMAGE_SIZE,) * 2, sampling_ratio=0)
        else:
            raise ValueError(f"unknown read-out {readout!r}; known: prompter, maskclip")
    return F.normalize(regions, dim=-1)


def region_scores(regions: torch.Tensor) -> dict:
    similarity = regions @ test_phrase_embeddings.T  # (K, J)
    region_to_text = 100.0 * float((similarity.argmax(1) == test_phrase_index).float().mean())
    text_to_region = 100.0 * float((test_phrase_index[similarity.argmax(0)] == torch.arange(len(similarity.T)))
                                   .float().mean())
    accuracy = metrics.accuracy(zeroshot.zero_shot_logits(regions, region_classifier), test_labels)
    return {"region→text R@1": region_to_text, "text→region R@1": text_to_region, "region accuracy": accuracy}


def as_loaded(model, arm: str) -> LoadedModel:
    return LoadedModel(model, base.preprocess, base.tokenizer, base.name, base.pretrained,
                       identity={**base.identity, "arm": arm, "weights": weights_key(model)})


def zero_shot(loaded: LoadedModel, dataset: str) -> float:
    """Whole-image zero-shot accuracy at the tower's own 64 px on an evenly spaced subset of the test split (the text
    tower is frozen in both arms, so one classifier serves every model)."""
    task = ClassificationTask(loaded, dataset)
    count = len(task.split("test"))
    indices = np.linspace(0, count - 1, min(zero_shot_images, count)).round().astype(int)
    features, labels = task.features("test", indices)
    return metrics.accuracy(zeroshot.zero_shot_logits(features, image_classifiers[dataset]), labels)


def evaluate(model, method: str, readout: str, seed: int | None, arm: str) -> list[dict]:
    common = {"model": base.name, "method": method, "seed": seed}
    rows = [{**common, "dataset": region_sets[0], "metric": metric, "value": value}
            for metric, value in region_scores(region_embeddings(model, readout)).items()]
    if readout == "prompter":
        loaded = base if arm == "start" else as_loaded(model, arm)
        rows += [{**common, "dataset": d, "metric": "accuracy", "value": zero_shot(loaded, d)} for d in image_sets]
    return rows


if TOY:
    # the text side, once: the text tower is frozen in both arms
    test_phrase_index = torch.cat(test_regions["phrase_index"])
    test_phrase_embeddings = encode_texts(test_regions["phrases"])
    region_names = benchmarks.classnames(region_sets[0])
    test_labels = torch.tensor([region_names.index(c) for c in test_regions["classnames"]])
    region_classifier = zeroshot.zero_shot_classifier(base, region_names, zeroshot.TOY_TEMPLATES)
    image_classifiers = {d: ClassificationTask(base, d).text_weights for d in image_sets}
    rows = evaluate(base.model, "tiny CLIP (start)", "prompter", None, "start")
    rows += evaluate(base.model, "tiny CLIP (start), MaskCLIP box pool", "maskclip", None, "start")
    for (arm, seed), (model, _) in runs.items():
        rows += evaluate(model, arm, "prompter", seed, arm)
        rows += evaluate(model, f"{arm}, MaskCLIP box pool", "maskclip", seed, arm)
    rows = pd.DataFrame(rows)
    table = (summarise(rows).pivot_table(index="method", columns=["dataset", "metric"], values="mean", sort=False)
             .round(2))
else:
    rows, table = pd.DataFrame(), "the paper profile's rows follow"
table

# %% [markdown]
# The same numbers as a figure: each metric per arm and read-out, mean over seeds with the 95 % interval (the
# starting model has one value).

# %%
import matplotlib.pyplot as plt
import seaborn as sns

from clipbook.report.record import use_style

use_style()
if TOY:
    order = ["tiny CLIP (start)", "CLIP", "CLOC", "tiny CLIP (start), MaskCLIP box pool", "CLIP, MaskCLIP box pool",
             "CLOC, MaskCLIP box pool"]
    grid = sns.catplot(data=rows, x="value", y="method", col="metric", kind="bar", order=order, errorbar=("ci", 95),
                       col_wrap=4, height=3.2, aspect=1.0, sharex=False, color="tab:blue")
    grid.set_titles("{col_name}").set_axis_labels("%", "")
    grid.figure.set_size_inches(13, 3.25)  # whole pixels at 96 dpi, so the figure's text repr is sanitised
    plt.show()

# %% [markdown]
# ## The paper profile: a labelled proxy
#
# No CLOC weights exist, so the paper profile cannot test a CLOC claim. It runs what a CLOC checkpoint would be
# compared against: an open_clip model's dense features box-pooled (MaskCLIP's value path for a ResNet, the last
# block's MaskCLIP surgery for a ViT; `dense.features`), classifying ground-truth class regions of COCO-Object
# (the mmseg layout of `clipbook.data.segmentation`; one box per class present in an image, the box around its
# pixels — instance boxes are not in that layout), and its whole-image zero-shot accuracy. The rows are labelled
# "(proxy)". A missing dataset or checkpoint fails in `clipbook.start`/`load_model` with the loader's error, before
# any of this runs.

# %%
# LIBRARY CANDIDATE: class region boxes from a label map (clipbook.dense.benchmarks or evaluation)
def class_region_boxes(label: np.ndarray, skip: set[int]) -> tuple[torch.Tensor, list[int]]:
    """One [x0, y0, x1, y1] pixel box per class present in a (H, W) label map — the box around all of that class's
    pixels, `skip` left out (ignore index, background) — and the classes in ascending order: ground-truth regions for
    region classification on a semantic-segmentation layout that has no instance boxes."""
    boxes, classes = [], []
    for value in sorted(set(np.unique(label).tolist()) - skip):
        ys, xs = np.nonzero(label == value)
        boxes.append([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
        classes.append(int(value))
    return torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), classes


def proxy_region_rows(dataset_name: str, side: int = 224, limit: int = 500) -> list[dict]:
    """Box-pooled dense features of the proxy model, region classification accuracy on a real segmentation set."""
    from clipbook.data.registry import load_dataset
    from clipbook.dense.features import vit_dense_features

    dataset = load_dataset(dataset_name, "val")
    background = {dataset.ignore_index} | ({0} if dataset.classnames[0] == "background" else set())
    names = [n for i, n in enumerate(dataset.classnames) if i not in background]
    label_of = {i: names.index(n) for i, n in enumerate(dataset.classnames) if i not in background}
    classifier = zeroshot.zero_shot_classifier(base, names, list(dataset.templates)).to(session.device)
    visual, correct, total = base.model.visual, 0, 0
    normalise = base.preprocess.transforms[-1]
    for index in range(min(limit, len(dataset))):
        image, label = dataset[index]
        boxes, classes = class_region_boxes(label, background)
        if not classes:
            continue
        height, width = label.shape
        boxes = boxes * torch.tensor([side / width, side / height] * 2)
        pixels = normalise(torch.from_numpy(np.asarray(image.resize((side, side)), dtype=np.float32) / 255)
                           .permute(2, 0, 1))[None].to(session.device)
        with torch.no_grad():
            dense = (maskclip_features(visual, pixels) if hasattr(visual, "attnpool") else
                     vit_dense_features(visual, pixels, "maskclip"))
            regions = F.normalize(box_pool(dense.float(), [boxes.to(session.device)], (side, side), sampling_ratio=0), dim=-1)
        predicted = (regions @ classifier.float()).argmax(1).cpu()
        correct += int((predicted == torch.tensor([label_of[c] for c in classes])).sum())
        total += len(classes)
    return [{"model": base.name, "dataset": dataset_name, "method": "box-pooled open_clip (proxy)",
             "metric": "region accuracy", "value": 100.0 * correct / max(total, 1)}]


if not TOY:
    region_datasets = [d for d in datasets if d in ("coco_object", "voc21", "context59", "coco_stuff")]
    rows = pd.DataFrame([row for d in region_datasets for row in proxy_region_rows(d)] +
                        [{"model": base.name, "dataset": d, "method": "open_clip (proxy)", "metric": "accuracy",
                          "value": ClassificationTask(base, d).zero_shot_accuracy()}
                         for d in datasets if d not in region_datasets])
    table = summarise(rows)
    table

# %% [markdown]
# ## Sanity check
#
# Checks that can fail, each against code we did not write:
# 1. **L_region reduces to CLIP's loss.** With one region per image, each with its own distinct phrase, our
#    region–text loss must equal open_clip's `ClipLoss` on the same (random) embeddings, in whatever order the phrases
#    are listed; and a repeated phrase must change it (the copy is no longer a negative), so the check can fail.
# 2. **The Prompter at zero prompt is CLIP's own pool on the box.** For a box covering exactly one 64-px tile, RoIAlign
#    with one sample per cell must return that tile's 2×2 cells (the box convention), and the untrained Prompter must
#    equal the library's `towers.attention_pool` (an independent implementation of open_clip's pool) on its RoIAlign
#    cells.
# 3. **The whole-image embedding is CLIP's.** At the tower's own 2×2 grid (a 64-px tile), `global_embedding` (the pool
#    with its positions resized) must equal open_clip's `encode_image`, so the resizing is the identity there.

# %%
from open_clip import ClipLoss

generator = torch.Generator().manual_seed(0)
checks = {}
random_image = F.normalize(torch.randn(16, 128, generator=generator), dim=-1)
random_text = F.normalize(torch.randn(16, 128, generator=generator), dim=-1)
scale = torch.tensor(20.0)
reference = float(ClipLoss()(random_image, random_text, scale))
checks["L_region − ClipLoss"] = float(region_text_loss(random_image, random_text, torch.arange(16), scale)) - reference
permuted = torch.randperm(16, generator=generator)  # the phrases listed in another order: the loss must not change
checks["phrases reordered: L_region − ClipLoss"] = float(
    region_text_loss(random_image, random_text[permuted], torch.argsort(permuted), scale)) - reference
# a repeated phrase (its copy is no longer a negative) must change it: the check can tell the two apart
repeated = torch.cat([torch.arange(15), torch.tensor([0])])
checks["one phrase repeated: L_region − ClipLoss (must differ)"] = float(
    region_text_loss(random_image, random_text[:15], repeated, scale)) - reference

visual = base.model.visual
if TOY:  # the tower checks run on the tiny ResNet tower and the toy test maps (the paper profile has no CLOC tower)
    tile_box = [torch.tensor([[64.0, 0.0, 128.0, 64.0]])]  # the top-right tile: rows 0-1, columns 2-3 of the 4×4 map
    with torch.no_grad():
        feature_map = run_last_stage(visual, test_maps[:1])
        one_sample = roi_align(feature_map, tile_box, 2, spatial_scale=feature_map.shape[-1] / 128, sampling_ratio=1,
                               aligned=True)
        checks["RoIAlign of a tile (1 sample per cell) − its 2×2 cells"] = float(
            (one_sample - feature_map[:, :, 0:2, 2:4]).abs().max())
        prompter = Prompter(visual.attnpool)
        two_samples = roi_align(feature_map, tile_box, 2, spatial_scale=feature_map.shape[-1] / 128, sampling_ratio=2,
                                aligned=True)
        checks["untrained Prompter − towers.attention_pool on its RoIAlign cells"] = float(
            (prompter(feature_map, tile_box, 128) - attention_pool(visual.attnpool, two_samples)).abs().max())
        # the whole-image embedding at the tower's own 2×2 grid (a 64-px image) must be open_clip's encode_image
        tile_images = image_tensor(benchmarks.load_segmentation(region_sets[0], "test").images[:4, :64, :64])
        trunk = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(tile_images)))))
        checks["global_embedding at 64 px − open_clip encode_image"] = float(
            (global_embedding(visual, trunk) - base.model.encode_image(tile_images)).abs().max())
assert abs(checks["L_region − ClipLoss"]) < 1e-5, checks
assert abs(checks["phrases reordered: L_region − ClipLoss"]) < 1e-5, checks
assert abs(checks["one phrase repeated: L_region − ClipLoss (must differ)"]) > 1e-3, checks
if TOY:
    assert checks["RoIAlign of a tile (1 sample per cell) − its 2×2 cells"] < 1e-5, checks
    assert checks["untrained Prompter − towers.attention_pool on its RoIAlign cells"] < 1e-4, checks
    assert checks["global_embedding at 64 px − open_clip encode_image"] < 1e-4, checks
{k: f"{v:.1e}" for k, v in checks.items()}

# %% [markdown]
# ## Training curves
#
# Mean loss of the first and last five steps of every run (each arm's own objective).

# %%
curves = pd.DataFrame([{"method": arm, "seed": seed, "first 5 steps": np.mean(log["loss"][:5]),
                        "last 5 steps": np.mean(log["loss"][-5:])} for (arm, seed), (_, log) in runs.items()])
curves.round(3) if len(curves) else "nothing is trained under this profile"

# %% [markdown]
# ## What the paper reports
#
# No number is transcribed: the paper's tables (region classification on COCO/LVIS, GRIT region–text retrieval,
# image-level zero-shot, CLIP vs CLOC at equal data) could not be read from a primary source here (only the
# abstract and introduction were readable; papers.md §26 marks the numbers **unconfirmed**). The REPORTED list stays
# empty rather than holding guesses.

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# Fixed before any result (2026-12-07 01:36 UTC). The paper's region claims, as "CLOC beats image-only CLIP at equal
# compute" (margin 0): region→text and text→region retrieval R@1 and region classification accuracy on the
# benchmark's test regions, CLOC's Prompter against the image-only arm's RoIAlign + its own pool. Its image-level
# claim, "keeps zero-shot": no more than 2 points below the image-only arm (a non-inferiority margin, ours).
# Preconditions: CLOC was trained here (not in the paper profile: no weights exist); the image-only arm's region
# classification is at least 5 points above chance (1 / classes) — otherwise there is no region signal to improve on;
# both arms' losses fell in every seed; the starting model's whole-image zero-shot is at least 10 points above
# chance. Not tested: the MLLM referring/grounding claims (no MLLM here) and the VESL pseudo-labelling pipeline
# (the toy world's boxes and phrases are exact, not pseudo-labels).

# %% tags=["claims"]
from clipbook.claims import Claim

METHOD, BASELINE = "CLOC", "CLIP"
REGION_NEEDS = ("cloc-trained", "baseline-region-signal", "loss-fell | CLIP", "loss-fell | CLOC")
CLAIMS = [
    Claim("region-to-text", "CLOC's promptable region embeddings beat image-only CLIP (same data and compute) on "
          "region→text retrieval", method=METHOD, baseline=BASELINE, metric="region→text R@1", requires=REGION_NEEDS),
    Claim("text-to-region", "CLOC beats image-only CLIP on text→region retrieval", method=METHOD, baseline=BASELINE,
          metric="text→region R@1", requires=REGION_NEEDS),
    Claim("region-classification", "CLOC beats image-only CLIP on region classification from ground-truth boxes",
          method=METHOD, baseline=BASELINE, metric="region accuracy", requires=REGION_NEEDS),
    Claim("zero-shot-kept", "CLOC keeps whole-image zero-shot classification (no more than 2 points below CLIP)",
          method=METHOD, baseline=BASELINE, metric="accuracy", margin=-2.0,
          requires=("cloc-trained", "start-zero-shot-signal", "loss-fell | CLIP", "loss-fell | CLOC")),
    Claim("mllm-grounding", "CLOC's encoder improves a multimodal LLM on referring and grounding", method=METHOD,
          baseline=BASELINE, metric="accuracy", requires=("mllm-available",)),
]

# %%
from clipbook.claims import at_least, fact


def mean_value(method: str, metric: str) -> float:
    part = rows[(rows["method"] == method) & (rows["metric"] == metric)] if len(rows) else rows
    return float(part["value"].mean()) if len(part) else float("nan")


region_chance = 100.0 / len(benchmarks.classnames(region_sets[0])) if TOY else float("nan")
image_chance = (100.0 / np.mean([len(ClassificationTask(base, d).classnames) for d in image_sets])) if TOY else float("nan")
PRECONDITIONS = [
    fact("cloc-trained", "CLOC and its image-only baseline were trained here at equal compute", TOY and bool(runs),
         f"both arms continued from {base.name} for {steps} steps of {batch_size} images, seeds {seeds}" if TOY else
         "no CLOC checkpoint exists (papers.md §26): this profile measures a box-pooled open_clip model, a labelled "
         "proxy, and tests no CLOC claim"),
    at_least("baseline-region-signal", "image-only CLIP: region accuracy minus chance",
             mean_value(BASELINE, "region accuracy") - region_chance, 5.0, " points"),
    *[at_least(f"loss-fell | {arm}", f"{arm}: smallest drop of its loss over seeds (first 5 minus last 5 steps)",
               float(min(np.mean(runs[arm, s][1]["loss"][:5]) - np.mean(runs[arm, s][1]["loss"][-5:]) for s in seeds)),
               1e-6) for arm in ARMS if TOY],
    at_least("start-zero-shot-signal", "starting model: whole-image zero-shot accuracy minus chance",
             mean_value("tiny CLIP (start)", "accuracy") - image_chance, 10.0, " points"),
    fact("mllm-available", "a multimodal LLM to plug the encoder into", False, "the toy world has no multimodal LLM"),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS)
