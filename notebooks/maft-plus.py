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
# # MAFT+ — Collaborative Vision-Text Representation Optimizing for Open-Vocabulary Segmentation
#
# Jiao, Zhu, Huang, Zhao, Wei, Shi — ECCV 2024 (oral) · [arXiv:2408.00744](https://arxiv.org/abs/2408.00744) ·
# official code [jiaosiyu1999/MAFT-Plus](https://github.com/jiaosiyu1999/MAFT-Plus) (MIT, snapshot fd12806; read,
# not copied), built on FC-CLIP / Mask2Former (detectron2).
#
# **Claim.** Class-agnostic mask proposals are classified by mask-pooling CLIP's dense image features against the
# text embeddings. MAFT+ fine-tunes CLIP's image tower for this with a mask-aware ranking loss and adds two pieces:
# a *content-dependent transfer* (CDT) that moves every text embedding toward the image it is scored on, and a
# *representation compensation* (RC) loss that keeps the fine-tuned tower's dense features close to the frozen
# tower's, to keep CLIP's zero-shot ability. Trained on COCO-Stuff, the paper reports the best open-vocabulary
# mIoU of its time on ADE-847/150, Pascal Context 459/59 and Pascal VOC 20 (README "Pretrained Weights" table; the
# README's introduction states gains of +0.5, +2.3, +3.4, +0.4, +1.1 over the previous state of the art).
#
# **This notebook.** The `offline` profile trains the tiny ResNet CLIP (`clipbook-tiny-rn`) with MAFT+'s losses on
# the COCO-Stuff-like toy benchmark (`toy-stuff`, its 500-image train split of 128-px 2×2 mosaics) and evaluates it
# cross-dataset on the VOC-20-like and Context-like toy benchmarks, against the frozen-CLIP proposal classifier on
# the same proposals,
# with both ablations (without CDT, without RC). The proposals are `dense.proposals.toy_proposals`, a **labelled toy
# stand-in** for Mask2Former's proposals (its recall is reported). The `paper` profile
# (`notebooks/profiles/paper/maft-plus.yaml`) loads open_clip `convnext_large_d_320` /
# `laion2b_s29b_b131k_ft_soup` with the released `maftp_l.pth` (Google Drive) on ADE20K-150, Pascal Context 59 and
# VOC 20; it has no Mask2Former, so it classifies **oracle** class-agnostic masks from the label maps (a proxy,
# labelled in the rows).

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
train_dataset = "toy-stuff"
datasets = ["toy-voc20", "toy-context"]
seeds = [1, 2, 3]
maft_checkpoint = ""
image_size = 128
iterations = 40
batch_size = 8
train_images = 320
evaluation_images = 100
learning_rate = 0.0001
backbone_multiplier = 0.1
weight_decay = 2e-05
gradient_clip = 0.01
rc_weight = 0.1
cdt_heads = 8
templates = 14
proposal_seed = 0
ablations = True
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Bool, Float, Int, Str, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "learning_rate", "device",
    train_dataset=Str(help="the training vocabulary and its train split (official: COCO-Stuff 171 classes; "
                           "offline: toy-stuff)"),
    maft_checkpoint=Str(help="the released MAFT+ weights (maftp_l.pth / maftp_b.pth) to evaluate instead of "
                             "training; '' trains on train_dataset's train split (toy benchmarks only)"),
    image_size=Int(minimum=32, help="square input side for the CLIP tower (offline 128: the toy mosaics' own size, "
                                    "no resize, a 4x4 map, as RC's pyramid of 1, 2, 4 cells needs)"),
    iterations=Int(minimum=1, help="training iterations (SOLVER.MAX_ITER: 55000 for Large, 60000 for Base; "
                                   "offline shortened to the 2-minute budget)"),
    batch_size=Int(minimum=1, help="images per iteration (SOLVER.IMS_PER_BATCH: 8)"),
    train_images=Int(minimum=0, help="the first images of train_dataset's train split that training draws from "
                                     "(0: all; offline 320 of 500 = iterations x batch_size, each seen once)"),
    evaluation_images=Int(minimum=0, help="the first images of each evaluation split (0: all; offline 100 of "
                                          "the 200 test images, for the 2-minute budget)"),
    backbone_multiplier=Float(minimum=0, help="learning-rate factor of the CLIP tower (SOLVER.BACKBONE_MULTIPLIER: "
                                              "0.1); CDT gets learning_rate (BASE_LR 1e-4)"),
    weight_decay=Float(minimum=0, help="AdamW weight decay (SOLVER.WEIGHT_DECAY: 2e-5; norms 0)"),
    gradient_clip=Float(minimum=0, help="full-model gradient-norm clip (SOLVER.CLIP_GRADIENTS.CLIP_VALUE: 0.01)"),
    rc_weight=Float(minimum=0, help="weight of the representation-compensation loss (MODEL.rc_weights: 0.1)"),
    cdt_heads=Int(minimum=1, help="CDT attention heads (MODEL.cdt_params: [embed dim, 8])"),
    templates=Int(minimum=1, maximum=14, help="the first n of ViLD's 14 templates per class (14, as MAFT+; fewer "
                                              "only as a rehearsal cap: a large text tower on a CPU)"),
    proposal_seed=Int(help="seed of the toy proposal stand-in"),
    ablations=Bool(help="also train MAFT+ without CDT and without RC"),
    needs=("tiny-clip",),
)

# %%
import copy
import math
import os
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

import clipbook
from clipbook import cache, claims, zeroshot
from clipbook.batch.parameters import ParameterError
from clipbook.data import registry
from clipbook.dense import benchmarks, proposals as toy_proposal_module
from clipbook.dense.features import maskclip_features
from clipbook.dense.pooling import mask_pool
from clipbook.dense.proposals import proposal_recall, semantic_inference, toy_proposals
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.evaluation.segmentation import IoUAccumulator, commonest_class_miou
from clipbook.models.loader import MissingCheckpointError, load_model, rehearsing
from clipbook.models.towers import resnet_trunk
from clipbook.report.rows import reported_rows, summarise
from clipbook.training.loop import code_fingerprint

session = clipbook.start(SPEC, globals())
TRAINING_THREADS = 1  # many small steps


def is_toy(name: str) -> bool:
    return registry.DATASETS[name]["kind"] == "toy-ovss"


def evaluation_split(name: str) -> str:
    return "test" if is_toy(name) else "val"  # the mmseg layouts have only val


if not maft_checkpoint and not (is_toy(train_dataset) and all(is_toy(name) for name in datasets)):
    raise ParameterError("parameter 'maft_checkpoint' must name the released weights (maftp_l.pth) when "
                         f"'datasets' or 'train_dataset' are real benchmarks ({datasets}, {train_dataset!r}): "
                         "offline, MAFT+ is trained only on a toy benchmark's train split")
if maft_checkpoint and not rehearsing() and not os.path.isfile(os.path.expanduser(maft_checkpoint)):
    raise MissingCheckpointError(
        f"checkpoint not found: {maft_checkpoint}.\n  It would come from: the MAFT+ README, 'Pretrained Weights' "
        "(Google Drive): maftp_l.pth https://drive.google.com/file/d/1EQo5guVuKkSSZj4bv0FQN_4X9h_Rwfe5\n"
        "  To provide it: download it and set maft_checkpoint to its path")
if not maft_checkpoint:  # the train split is read only where MAFT+ trains (the mmseg layouts have only val)
    registry.load_dataset(train_dataset, "train")  # checked before heavy work, like the evaluation sets
loaded = load_model(*models[0], device="cpu")
clip_model = loaded.model.float().eval()
tower = clip_model.visual

# %% [markdown]
# ## The CLIP tower, read densely
#
# MAFT+ reads CLIP's image tower as a dense map $F$ (`maft/modeling/backbone/clip.py`, `extract_features`:
# `clip_vis_dense` is the ConvNeXt trunk's output after `norm_pre`) and maps a vector of that map into the joint
# space with the tower's head (`visual_prediction_forward_convnext`: `trunk.head` then `head`). A proposal's
# embedding is the head applied to the **mask-pooled** trunk features (`fcclip_transformer_decoder.py`,
# `MaskPooling`: the mask is resized bilinearly to the feature grid and kept where it is $> 0$, a hard mask). The
# tiny CLIP is a ResNet: its trunk's map goes into the joint space through the attention pool's value and output
# projections, MaskCLIP's path (`dense.features.maskclip_features`), which is linear, so pooling before or after it
# is the same. The official ResNet path (FC-CLIP's masked attention pool) crashes in MAFT+'s CDT, which calls the
# ConvNeXt head on every location, so it is not used.

# %%
# LIBRARY CANDIDATE: dense_trunk / embed / embed_map / mask_pooling (a CLIP tower read densely for ResNet and
# open_clip ConvNeXt towers; FC-CLIP's hard-mask MaskPooling, which OVSeg-style proposal classifiers also need)
def is_convnext(visual: nn.Module) -> bool:
    return hasattr(visual, "trunk") and hasattr(visual.trunk, "stages")


def dense_trunk(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """F: (N, 3, H, W) normalised images → (N, C, H/32, W/32), the map RC compares (`clip_vis_dense`)."""
    if is_convnext(visual):
        trunk = visual.trunk
        x = trunk.stem(images)
        for stage in trunk.stages:
            x = stage(x)
        return trunk.norm_pre(x)
    return resnet_trunk(visual, images)


def embed(visual: nn.Module, vectors: torch.Tensor) -> torch.Tensor:
    """Trunk vectors (..., C) → joint-space embeddings (..., D): the ConvNeXt head on 1x1 inputs
    (`visual_prediction_forward_convnext`), or the ResNet attention pool's value path (MaskCLIP)."""
    shape = vectors.shape[:-1]
    flat = vectors.reshape(-1, vectors.shape[-1])
    if is_convnext(visual):
        out = visual.head(visual.trunk.head(flat[:, :, None, None]))
    else:
        out = visual.attnpool.c_proj(visual.attnpool.v_proj(flat))
    return out.reshape(*shape, -1)


def embed_map(visual: nn.Module, feature_map: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) → (N, D, h, w): every location embedded (MAFT_Plus.visual_prediction_forward_convnext)."""
    return embed(visual, feature_map.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def mask_pooling_weights(masks: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """FC-CLIP's MaskPooling, its mask part: (Q, H, W) masks → (Q, h, w) weights; each mask resized bilinearly to
    the feature grid, kept where > 0 (a hard mask), divided by its cell count (an empty mask gives 0 weights).
    Unlike `dense.pooling.mask_pool`'s area-averaged soft weights (see the sanity checks)."""
    masks = F.interpolate(masks[None].float(), size=grid, mode="bilinear", align_corners=False)[0]
    masks = (masks > 0).float()
    return masks / (masks.sum(dim=(-2, -1), keepdim=True) + 1e-8)


def mask_pooling(feature_map: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """MaskPooling's mean: (N, C, h, w) features, (N, Q, h, w) `mask_pooling_weights` → (N, Q, C)."""
    return torch.einsum("nchw,nqhw->nqc", feature_map, weights)


# %% [markdown]
# ## The text embeddings and the proposal classifier
#
# Every class name fills ViLD's 14 templates (`maft/utils/text_templetes.py`, `VILD_PROMPT`); the normalised
# embeddings are averaged and renormalised (`MAFT_Plus.get_text_classifier`) into $t_c$. A proposal with pooled
# embedding $x_q$ scores class $c$ with
#
# $$\ell_{qc} = s\,\frac{x_q^\top t_c}{\lVert x_q\rVert},\qquad s=\min(e^{\tau}, 100),$$
#
# (`get_classification_logits`: only $x$ is normalised; $t$ is unit-norm for frozen CLIP but not after CDT). Each
# toy class has one name, so the official max over synonyms is the identity. Semantic inference
# (`MAFT_Plus.semantic_inference`, Mask2Former's) sums the class probabilities $\operatorname{softmax}_c(\ell_q)$
# over the masks covering a pixel. The official also multiplies by one minus Mask2Former's "void" probability;
# the stand-in proposals have no such score, so it is 1 for every proposal (and the learnable void embedding, which
# no loss here reaches, is left out).

# %%
VILD_PROMPT = ["a photo of a {}.", "This is a photo of a {}", "There is a {} in the scene",
               "There is the {} in the scene", "a photo of a {} in the scene", "a photo of a small {}.",
               "a photo of a medium {}.", "a photo of a large {}.", "This is a photo of a small {}.",
               "This is a photo of a medium {}.", "This is a photo of a large {}.",
               "There is a small {} in the scene.", "There is a medium {} in the scene.",
               "There is a large {} in the scene."]  # maft/utils/text_templetes.py


def text_classifier(classnames: list[str]) -> torch.Tensor:
    """(C, D) unit text embeddings t_c: ViLD templates, normalised, averaged, renormalised (the text tower is
    frozen, so each vocabulary is encoded once)."""
    key = tuple(classnames)
    if key not in TEXT_CLASSIFIERS:
        TEXT_CLASSIFIERS[key] = zeroshot.prompt_set_classifier(
            loaded, [[t.format(name) for t in VILD_PROMPT[:templates]] for name in classnames]).T
    return TEXT_CLASSIFIERS[key]


TEXT_CLASSIFIERS: dict[tuple, torch.Tensor] = {}


def logit_scale() -> torch.Tensor:
    return clip_model.logit_scale.detach().exp().clamp(max=100)  # get_classification_logits


def classification_logits(pooled: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    """pooled (N, Q, D), texts (C, D) or per image (N, C, D) → (N, Q, C) = s · x̂ · tᵀ."""
    x = F.normalize(pooled, dim=-1)
    return logit_scale() * (x @ texts.T if texts.ndim == 2 else x @ texts.transpose(1, 2))


# %% [markdown]
# ## Content-dependent transfer (CDT)
#
# The text embeddings attend to the image: queries $t_c$, keys the embedded dense map plus a sine positional
# encoding $P$ (DETR's `PositionEmbeddingSine`, $d/2$ features per axis, normalised), values the map itself,
#
# $$t'_c = \operatorname{LN}\big(t_c + W\,\operatorname{MHA}(q=t_c,\ k=F+P,\ v=F)\big)$$
#
# with 8 heads of width $d/8$ (`content_dependent_transfer.py`, `ContentDependentTransfer`,
# `ShortCut_CrossAttention`; MAFT_Plus.forward feeds it `visual_prediction_forward_convnext(clip_feature)`, the
# embedded map). The attention's weights are Xavier-initialised and $W$ keeps `nn.Linear`'s default init; the
# panoptic variant is $t + \operatorname{LN}(W\,\operatorname{MHA})$ with $W=0$ at the start, i.e. the identity.

# %%
def sine_position_encoding(height: int, width: int, channels: int, temperature: float = 10000.0) -> torch.Tensor:
    """(channels, h, w) DETR sine encoding with normalize=True (position_encoding.py, PositionEmbeddingSine with
    num_pos_feats = channels / 2): y features first, then x; sin on even, cos on odd feature indices."""
    half, scale, eps = channels // 2, 2 * math.pi, 1e-6
    y = torch.arange(1, height + 1, dtype=torch.float32)[:, None].expand(height, width)
    x = torch.arange(1, width + 1, dtype=torch.float32)[None, :].expand(height, width)
    y, x = y / (height + eps) * scale, x / (width + eps) * scale
    frequencies = temperature ** (2 * (torch.arange(half) // 2) / half)

    def encode(position):
        angles = position[..., None] / frequencies  # (h, w, half)
        return torch.stack((angles[..., 0::2].sin(), angles[..., 1::2].cos()), dim=-1).flatten(-2)

    return torch.cat([encode(y), encode(x)], dim=-1).permute(2, 0, 1)


class ContentDependentTransfer(nn.Module):
    def __init__(self, dim: int, heads: int, panoptic: bool = False):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=0.0)
        self.norm = nn.LayerNorm(dim)
        for parameter in self.parameters():  # ShortCut_CrossAttention._reset_parameters, before W exists
            if parameter.dim() > 1:
                nn.init.xavier_uniform_(parameter)
        self.transfer = nn.Linear(dim, dim)  # the paper's W (`self.MLP`)
        self.panoptic = panoptic
        if panoptic:
            nn.init.zeros_(self.transfer.weight)
            nn.init.zeros_(self.transfer.bias)

    def forward(self, image_map: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
        """image_map (N, D, h, w) embedded dense map, texts (C, D) → per-image text embeddings (N, C, D)."""
        n, d, h, w = image_map.shape
        position = sine_position_encoding(h, w, d).to(image_map).flatten(1).T[:, None]  # (hw, 1, D)
        memory = image_map.flatten(2).permute(2, 0, 1)  # (hw, N, D), sequence-first as the official module
        queries = texts[:, None].expand(-1, n, -1)  # (C, N, D)
        attended = self.attention(queries, memory + position, memory)[0]
        if self.panoptic:
            out = queries + self.norm(self.transfer(attended))
        else:
            out = self.norm(queries + self.transfer(attended))
        return out.transpose(0, 1)


# %% [markdown]
# ## Representation compensation (RC) and the mask-aware ranking loss
#
# RC compares the fine-tuned trunk's map $F$ with the frozen copy's $F^0$ after a ReLU, through POD's spatial
# pyramid: at each scale $s\in\{1,2,4\}$ the map is average-pooled into $s\times s$ cells (kernel $w/s$), then
# summed over rows and over columns, and the concatenated vectors are compared with SmoothL1
# (`representation_compensation.py`, `_global_pod`, `Representation_Compensation`; weight `rc_weights` = 0.1).
#
# The ranking loss (`mask_aware_loss.py`, `MA_Loss`) asks each proposal's probability of a ground-truth segment's
# class to follow that proposal's IoU with the segment, min–max normalised over the image's proposals:
# $\mathcal L_{MA}=\operatorname{SmoothL1}\big(p_q(c_g),\ \widetilde{\operatorname{IoU}}(m_q, g)\big)$ over all
# segments $g$ and proposals $q$. It is the only loss reaching CLIP's tower and CDT in the official code (the
# Mask2Former losses train the proposal head on detached features), so with fixed proposals the training loss is
# $\mathcal L_{MA} + 0.1\,\mathcal L_{RC}$.

# %%
def pod(feature_map: torch.Tensor, scales=(1, 2, 4)) -> torch.Tensor:
    """_global_pod(normalize=False) of a square (N, C, w, w) map → (N, Σ_s 2·C·s)."""
    n, width = feature_map.shape[0], feature_map.shape[-1]
    parts = []
    for scale in scales:
        pooled = F.avg_pool2d(feature_map, kernel_size=width // scale)
        parts += [pooled.sum(dim=2).reshape(n, -1), pooled.sum(dim=3).reshape(n, -1)]
    return torch.cat(parts, dim=1)


def rc_loss(student_map: torch.Tensor, teacher_map: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(pod(student_map.clamp(min=0)), pod(teacher_map.clamp(min=0)))


def ranking_targets(proposals: torch.Tensor, segments: torch.Tensor) -> torch.Tensor:
    """MA_Loss's target for one image: IoU of every segment (G, H, W) with every proposal (Q, H, W), min–max
    normalised over the proposals → (G, Q). It depends on neither the tower nor CDT, so it is computed once."""
    flat_masks, flat_gts = proposals.flatten(1).float(), segments.flatten(1).float()
    intersection = flat_gts @ flat_masks.T
    iou = intersection / (flat_gts.sum(1, keepdim=True) + flat_masks.sum(1)[None] - intersection + 1e-7)
    low, high = iou.min(dim=1, keepdim=True).values, iou.max(dim=1, keepdim=True).values
    return (iou - low) / (high - low + 1e-8)


def ranking_loss(logits: list[torch.Tensor], targets: list[torch.Tensor],
                 segment_classes: list[torch.Tensor]) -> torch.Tensor:
    """MA_Loss over a batch: per image, logits (Q, C), `ranking_targets` (G, Q), the segments' classes (G,)."""
    predicted = [image_logits.softmax(-1)[:, classes].T.flatten() for image_logits, classes in
                 zip(logits, segment_classes)]
    return F.smooth_l1_loss(torch.cat(predicted), torch.cat([t.flatten() for t in targets]))


# %% [markdown]
# ## Data: toy scenes, the proposal stand-in, ground-truth segments
#
# The semantic dataset mapper gives one ground-truth segment per class present in the label map
# (`MaskFormerSemanticDatasetMapper`), which is what the ranking loss ranks proposals against. A toy image is a
# 128-px 2×2 mosaic of 64-px tiles (`dense.benchmarks`), each tile at the tiny CLIP's pretraining scale, so the
# whole image goes through the convolutional trunk at its own size (`image_size` = 128: no resize, a 4×4 map);
# proposals and labels are at 128 px too (Mask2Former's masks are at a quarter of the input, ours at the full
# input). The hard mask pooling reads a mask at the 4×4 cell centres only (bilinear between the four pixels nearest
# each centre), so an object that covers no cell centre pools to an empty mask and a zero feature, as the official
# pooling does for a mask smaller than a feature cell; the same for every method. On real benchmarks the proposals
# are the label map's own class segments (oracle proposals, a proxy: there is no Mask2Former here).

# %%
# LIBRARY CANDIDATE: to_input / class_segments / membership_patterns / Annotated (uint8 images to a normalised CLIP
# input of a given size; one ground-truth segment per class of a label map, as Mask2Former's semantic dataset mapper
# gives, which OVSeg and CLIP-DINOiser train on too; Mask2Former's semantic inference over the distinct proposal-
# membership rows instead of every pixel, for any notebook scoring binary proposals; a mosaic's annotations drawn
# once for both `toy_proposals` and the recall)
MEAN, STD = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1), torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def to_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, h, w, 3) → normalised (N, 3, image_size, image_size)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255)
    if tuple(x.shape[-2:]) != (image_size, image_size):  # the toy mosaics are already 128 px
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (x - MEAN) / STD


def class_segments(label: np.ndarray, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    classes = [c for c in np.unique(label) if c != ignore_index]
    return (torch.from_numpy(np.stack([label == c for c in classes])) if classes else torch.zeros(0, *label.shape,
                                                                                                    dtype=torch.bool),
            torch.as_tensor(classes, dtype=torch.long))


def membership_patterns(masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary proposals (K, H, W) → the distinct rows of proposal membership among the pixels (U, K) and every
    pixel's row (H, W): semantic inference then scores U rows instead of H·W pixels (the same sums)."""
    if len(masks) > 62:
        raise ValueError(f"membership rows are packed into int64 codes: at most 62 proposals, got {len(masks)}")
    bits = np.left_shift(np.int64(1), np.arange(len(masks), dtype=np.int64))
    codes = np.tensordot(bits, masks.reshape(len(masks), -1).astype(np.int64), axes=1)  # (H·W,) one code a pixel
    unique, inverse = np.unique(codes, return_inverse=True)
    rows = (unique[:, None] & bits[None, :]) > 0  # (U, K)
    return torch.from_numpy(rows.astype(np.float32)), torch.from_numpy(inverse.reshape(masks.shape[1:]))


@dataclass(frozen=True)
class Annotated:
    """A mosaic's annotations, drawn once (`toy_proposals` reads any object with `.annotations()`)."""
    objects: list

    def annotations(self) -> list[dict]:
        return self.objects


def segmentation_data(name: str, split: str, limit: int = 0) -> dict:
    """Images (uint8), labels, class names, proposals (per image (K, H, W) bool) and the stand-in's recall."""
    dataset = registry.load_dataset(name, split)
    count = min(limit, len(dataset)) if limit else len(dataset)  # the first `count` images
    if is_toy(name):
        images, labels = dataset.images[:count], dataset.labels[:count]
        annotated = [Annotated(mosaic.annotations()) for mosaic in benchmarks.scenes(name, split)[:count]]
        proposals = toy_proposals(annotated, seed=proposal_seed)
        objects = [np.stack([a["mask"] for a in image.annotations()]) for image in annotated]
        recall = proposal_recall(proposals, objects, iou=0.5)
        kind = "toy stand-in"
    else:  # real benchmark, paper profile: oracle class segments
        pairs = [dataset[i] for i in range(count)]
        images = [np.asarray(image.convert("RGB")) for image, _ in pairs]
        labels = [np.asarray(label) for _, label in pairs]
        proposals = [class_segments(label, dataset.ignore_index)[0].numpy() for label in labels]
        recall, kind = 1.0, "oracle class segments (proxy for Mask2Former)"
    grid = (image_size // 32, image_size // 32)  # the trunk's stride (real images: see `predict`)
    return {"name": name, "images": images, "labels": labels, "classnames": list(dataset.classnames),
            "ignore_index": dataset.ignore_index, "proposals": proposals, "recall": recall, "proposal_kind": kind,
            "pool_weights": [mask_pooling_weights(torch.from_numpy(m), grid) for m in proposals] if is_toy(name)
            else None, "patterns": [membership_patterns(m) for m in proposals]}


evaluation_sets = {name: segmentation_data(name, evaluation_split(name), evaluation_images) for name in datasets}
pd.DataFrame([{"dataset": d["name"], "images": len(d["images"]), "classes": len(d["classnames"]),
               "proposals per image": np.mean([len(p) for p in d["proposals"]]).round(2),
               "proposal recall @ IoU 0.5": round(d["recall"], 3), "proposals": d["proposal_kind"]}
              for d in evaluation_sets.values()])


# %% [markdown]
# ## Evaluation: proposals classified, semantic inference, mIoU
#
# mmseg's mIoU (`evaluation.segmentation.IoUAccumulator`) over each benchmark's evaluation split; a pixel no
# proposal covers scores 0 for every class (argmax: class 0), the same for every method.

# %%
def predict(visual: nn.Module, cdt: ContentDependentTransfer | None, data: dict, chunk: int = 50) -> list[np.ndarray]:
    texts = text_classifier(data["classnames"])
    predictions = []
    with torch.no_grad():
        for start in range(0, len(data["images"]), chunk):
            images = data["images"][start:start + chunk]
            x = to_input(np.stack(images)) if is_toy(data["name"]) else torch.cat([to_input(i[None]) for i in images])
            trunk_map = dense_trunk(visual, x)
            per_image_texts = cdt(embed_map(visual, trunk_map), texts) if cdt is not None else None
            for i, masks in enumerate(data["proposals"][start:start + chunk]):
                if len(masks) == 0:
                    predictions.append(np.zeros(data["labels"][start + i].shape, np.int64))
                    continue
                weights = (data["pool_weights"][start + i] if data["pool_weights"] is not None else
                           mask_pooling_weights(torch.from_numpy(masks), tuple(trunk_map.shape[-2:])))
                pooled = embed(visual, mask_pooling(trunk_map[i:i + 1], weights[None]))  # (1, Q, D)
                logits = classification_logits(pooled, texts if cdt is None else per_image_texts[i:i + 1])[0]
                rows, inverse = data["patterns"][start + i]
                # Mask2Former's semantic inference on the distinct membership rows, as a (K, U, 1) "image"
                scores = semantic_inference(rows.T[:, :, None], logits.softmax(-1))  # (C, U, 1)
                predictions.append(scores[:, :, 0].argmax(0)[inverse].numpy())
    return predictions


def mean_iou(predictions: list[np.ndarray], data: dict) -> float:
    accumulator = IoUAccumulator(len(data["classnames"]), data["ignore_index"])
    if is_toy(data["name"]):  # one 128-px size: one update over the stack
        accumulator.update(np.stack(predictions), np.asarray(data["labels"]))
    else:
        for prediction, label in zip(predictions, data["labels"], strict=True):
            accumulator.update(prediction, label)
    return float(accumulator.compute()["mIoU"])


def floor_miou(data: dict) -> float:
    """mIoU of predicting the benchmark's most frequent class everywhere (the floor a classifier must beat)."""
    every_pixel = np.concatenate([label.ravel() for label in data["labels"]])  # real images differ in size
    return commonest_class_miou(every_pixel, len(data["classnames"]), data["ignore_index"])


# %% [markdown]
# ## Training
#
# The official recipe (`configs/semantic/train_semantic_large.yaml`, `configs/maskformer2_R50_bs16_50ep.yaml`,
# `train_net.py` `build_optimizer`): AdamW, base learning rate $10^{-4}$ for CDT and $10^{-5}$ (backbone multiplier
# 0.1) for the CLIP tower, weight decay $2\cdot10^{-5}$ (0 on norm layers), poly schedule with power 0.9 and no
# warm-up, full-model gradient clipping at norm 0.01, 8 images per iteration. Trainable: the tower's trunk (the
# official `_freeze` opens ConvNeXt's stem, stages and `norm_pre`; the head stays frozen: here the ResNet's stem
# and stages train, the attention pool stays frozen); the text tower is frozen. The official run has 55 000
# iterations on COCO-Stuff; offline it has `iterations` = 40 of batch 8 over the first `train_images` = 320 of the
# 500 toy-stuff train images (each seen once), same learning rates: a **shortened** schedule, a deviation fixed for
# the 2-minute budget before any result (the earlier draft's 60 iterations took 5.4 minutes cold with the rest),
# and if it does not lower the ranking loss, the claims are not tested (precondition below). The ResNet's
# BatchNorm statistics stay frozen (the
# ConvNeXt tower has LayerNorms only, so batch statistics of 8 toy images would be a change the official run
# does not make). Augmentation (large-scale jitter and crops) is left out.

# %%
VARIANTS = {"MAFT+": {"cdt": True, "rc": True},
            "MAFT+ without CDT": {"cdt": False, "rc": True},
            "MAFT+ without RC": {"cdt": True, "rc": False}}
TRAINED = list(VARIANTS) if ablations else ["MAFT+"]
EMBED_DIM = clip_model.text_projection.shape[1]


def trainable_trunk(visual: nn.Module) -> list[tuple[str, nn.Parameter]]:
    if is_convnext(visual):
        keep = ("trunk.stem", "trunk.stages", "trunk.norm_pre")
        return [(n, p) for n, p in visual.named_parameters() if n.startswith(keep)]
    return [(n, p) for n, p in visual.named_parameters() if not n.startswith("attnpool")]


def parameter_groups(named: list[tuple[str, nn.Parameter]], modules: nn.Module, lr: float) -> list[dict]:
    """build_optimizer: one group per parameter, weight decay 0 on norm layers."""
    norms = {id(p) for m in modules.modules() if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm))
             for p in m.parameters(recurse=False)}
    return [{"params": [p], "lr": lr, "initial_lr": lr, "weight_decay": 0.0 if id(p) in norms else weight_decay}
            for _, p in named]


def training_data(name: str) -> dict:
    """The train split with what the losses need and no trained weight changes: per image the ranking targets
    against its class segments, the segments' classes, and the frozen tower's trunk map F⁰ (RC's reference)."""
    data = segmentation_data(name, "train", train_images)
    segments = [class_segments(label, data["ignore_index"]) for label in data["labels"]]
    data["targets"] = [ranking_targets(torch.from_numpy(masks), gts) for masks, (gts, _) in
                       zip(data["proposals"], segments)]
    data["segment_classes"] = [classes for _, classes in segments]
    with torch.no_grad():
        data["teacher_maps"] = torch.cat([dense_trunk(tower, to_input(data["images"][start:start + 50]))
                                          for start in range(0, len(data["images"]), 50)])
    return data


def train(variant: str, seed: int, train_data: dict) -> dict:
    recipe = VARIANTS[variant]
    with deterministic_torch(TRAINING_THREADS):
        seed_everything(seed)
        student = copy.deepcopy(tower).eval()  # eval: frozen BatchNorm statistics (see above)
        for parameter in student.parameters():
            parameter.requires_grad_(False)
        trunk_parameters = trainable_trunk(student)
        for _, parameter in trunk_parameters:
            parameter.requires_grad_(True)
        groups = parameter_groups(trunk_parameters, student, learning_rate * backbone_multiplier)
        cdt = ContentDependentTransfer(EMBED_DIM, cdt_heads) if recipe["cdt"] else None
        if cdt is not None:
            groups += parameter_groups(list(cdt.named_parameters()), cdt, learning_rate)
        optimizer = torch.optim.AdamW(groups, lr=learning_rate)
        every = [p for g in groups for p in g["params"]]
        texts = text_classifier(train_data["classnames"])
        generator = torch.Generator().manual_seed(seed)
        order, log = torch.randperm(len(train_data["images"]), generator=generator).tolist(), []
        for iteration in range(iterations):
            for group in optimizer.param_groups:  # WarmupPolyLR, no warm-up, ending at 0
                group["lr"] = group["initial_lr"] * (1 - iteration / iterations) ** 0.9
            if len(order) < batch_size:
                order += torch.randperm(len(train_data["images"]), generator=generator).tolist()
            batch, order = order[:batch_size], order[batch_size:]
            x = to_input(train_data["images"][batch])
            trunk_map = dense_trunk(student, x)
            pooled = [embed(student, mask_pooling(trunk_map[j:j + 1], train_data["pool_weights"][i][None]))[0]
                      for j, i in enumerate(batch)]
            per_image_texts = cdt(embed_map(student, trunk_map), texts) if cdt is not None else None
            logits = [classification_logits(pooled[j][None], texts if cdt is None else per_image_texts[j:j + 1])[0]
                      for j in range(len(batch))]
            ma = ranking_loss(logits, [train_data["targets"][i] for i in batch],
                              [train_data["segment_classes"][i] for i in batch])
            rc = rc_loss(trunk_map, train_data["teacher_maps"][batch])  # the frozen tower's F⁰, computed once
            loss = ma + rc_weight * rc if recipe["rc"] else ma
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(every, gradient_clip)
            optimizer.step()
            log.append([float(ma.detach()), float(rc.detach())])
    return {"student": student.eval(), "cdt": cdt.eval() if cdt is not None else None,
            "losses": torch.tensor(log)}


def trained_results(variant: str, seed: int, train_data) -> dict:
    """Losses and mIoU per evaluation set of one trained variant and seed, cached by everything they depend on."""
    spec = {"clip": loaded.identity, "train": registry.load_dataset(train_dataset, "train").fingerprint(),
            "evaluate": [registry.load_dataset(n, evaluation_split(n)).fingerprint() for n in datasets],
            "train_images": train_images, "evaluation_images": evaluation_images,
            "proposals": {"seed": proposal_seed, "config": toy_proposal_module.PROPOSALS},
            "variant": VARIANTS[variant], "seed": seed, "image_size": image_size, "iterations": iterations,
            "batch_size": batch_size, "learning_rate": learning_rate, "backbone_multiplier": backbone_multiplier,
            "weight_decay": weight_decay, "gradient_clip": gradient_clip, "rc_weight": rc_weight,
            "cdt_heads": cdt_heads,
            "code": [code_fingerprint(f) for f in (train, predict, mean_iou, dense_trunk, embed, embed_map,
                                                   mask_pooling_weights, mask_pooling, classification_logits,
                                                   text_classifier, sine_position_encoding, pod, rc_loss,
                                                   ranking_targets, ranking_loss, to_input, class_segments,
                                                   membership_patterns, segmentation_data, training_data,
                                                   parameter_groups, trainable_trunk)]
                    + [code_fingerprint(ContentDependentTransfer.__init__),
                       code_fingerprint(ContentDependentTransfer.forward)]}

    def compute() -> dict:
        trained = train(variant, seed, train_data())
        return {"losses": trained["losses"],
                "miou": {name: mean_iou(predict(trained["student"], trained["cdt"], data), data)
                         for name, data in evaluation_sets.items()}}

    return cache.cached("maft-plus-runs", spec, compute, name=f"{variant.replace(' ', '-')}-{seed}")


# %% [markdown]
# The paper profile loads the released weights instead: the fine-tuned image tower is
# `backbone.clip_model.visual.*` of the detectron2 checkpoint, CDT is `cdt.cross_atten.{multihead_attn, norm, MLP}`.

# %%
def load_released(path: str) -> tuple[nn.Module, ContentDependentTransfer]:
    if rehearsing() and not os.path.isfile(os.path.expanduser(path)):
        # the rehearsal stands in for the missing released file as the loader does for checkpoints: the tower at its
        # seeded random init and a CDT at its own seeded init (README, "Rehearsal")
        torch.manual_seed(0)
        return copy.deepcopy(tower).eval(), ContentDependentTransfer(EMBED_DIM, cdt_heads).eval()
    state = torch.load(os.path.expanduser(path), map_location="cpu", weights_only=False)
    state = state.get("model", state)
    prefix = "backbone.clip_model.visual."
    released = copy.deepcopy(tower)
    released.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}, strict=True)
    renamed = {"cdt.cross_atten.multihead_attn.": "attention.", "cdt.cross_atten.norm.": "norm.",
               "cdt.cross_atten.MLP.": "transfer."}
    cdt = ContentDependentTransfer(EMBED_DIM, cdt_heads)
    cdt.load_state_dict({new + k[len(old):]: v for k, v in state.items() for old, new in renamed.items()
                         if k.startswith(old)}, strict=True)
    return released.eval(), cdt.eval()


# %% [markdown]
# ## The experiment
#
# The frozen-CLIP proposal classifier and the trained variants on the same proposals, images and seeds.

# %%
rows, losses = [], []
for name, data in evaluation_sets.items():
    base = {"model": models[0][0], "dataset": name, "metric": "mIoU"}
    rows.append({**base, "method": "most-frequent class", "value": floor_miou(data)})
    rows.append({**base, "method": "frozen CLIP", "value": mean_iou(predict(tower, None, data), data)})
if maft_checkpoint:  # paper profile: the released weights, no training
    released_tower, released_cdt = load_released(maft_checkpoint)
    for name, data in evaluation_sets.items():
        rows.append({"model": models[0][0], "dataset": name, "metric": "mIoU", "method": "MAFT+",
                     "proposals": data["proposal_kind"],
                     "value": mean_iou(predict(released_tower, released_cdt, data), data)})
stored_train_data = {}


def train_data() -> dict:  # built on the first cache miss only
    if not stored_train_data:
        stored_train_data.update(training_data(train_dataset))
    return stored_train_data


for variant in [] if maft_checkpoint else TRAINED:
    for seed in seeds:
        result = trained_results(variant, seed, train_data)
        losses += [{"method": variant, "seed": seed, "iteration": i, "ranking loss": float(ma), "RC loss": float(rc)}
                   for i, (ma, rc) in enumerate(result["losses"].tolist())]
        rows += [{"model": models[0][0], "dataset": name, "metric": "mIoU", "method": variant, "seed": seed,
                  "value": value} for name, value in result["miou"].items()]
# the columns are named even where nothing trained (the paper path evaluates the released weights only)
rows = pd.DataFrame(rows)
losses = pd.DataFrame(losses, columns=["method", "seed", "iteration", "ranking loss", "RC loss"])
summarise(rows).round(2)

# %% [markdown]
# ## Figure

# %%
sns.set_theme(style="whitegrid", context="notebook")
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
order = ["most-frequent class", "frozen CLIP", *TRAINED]
sns.barplot(rows, x="dataset", y="value", hue="method", hue_order=order, errorbar="sd", ax=left)
left.set(ylabel="mIoU (%)", xlabel="", title="Cross-dataset mIoU (trained on " + train_dataset + ")")
left.legend(fontsize=8)
if len(losses):  # the paper profile evaluates the released weights and trains nothing
    smoothed = losses.assign(**{"ranking loss": losses.groupby(["method", "seed"])["ranking loss"]
                                .transform(lambda s: s.rolling(10, min_periods=1).mean())})
    sns.lineplot(smoothed, x="iteration", y="ranking loss", hue="method", errorbar=None, ax=right)
    right.set(title="Ranking loss (10-iteration mean, over seeds)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Preconditions
#
# Fixed before any result: (1) the frozen-CLIP proposal classifier beats the most-frequent-class floor by 2 mIoU
# points on every evaluation set (otherwise the tiny CLIP's dense signal is too weak to test anything); (2) the
# proposal stand-in finds at least half the objects at IoU 0.5 on every evaluation set; (3) for every trained
# variant, the ranking loss over the last quarter of the iterations is below the first quarter's (mean over seeds).

# %%
frozen = rows[rows["method"] == "frozen CLIP"].set_index("dataset")["value"]
floor = rows[rows["method"] == "most-frequent class"].set_index("dataset")["value"]
quarter = max(1, iterations // 4)


def first_minus_last_quarter(series: pd.Series) -> float:
    return series.iloc[:quarter].mean() - series.iloc[-quarter:].mean()


fell = {variant: part.groupby("seed")["ranking loss"].apply(first_minus_last_quarter).mean()
        for variant, part in losses.groupby("method")}
PRECONDITIONS = [
    claims.at_least("frozen-beats-floor", "smallest margin of frozen CLIP over the most-frequent-class floor (mIoU)",
                    float((frozen - floor).min()), 2.0, " points"),
    claims.at_least("proposals-recall", "smallest proposal recall at IoU 0.5 over the evaluation sets",
                    min(d["recall"] for d in evaluation_sets.values()), 0.5),
    claims.at_least("training-loss-fell", "smallest drop of the ranking loss, first to last quarter of training",
                    float(min(fell.values())) if fell else float("nan"), 1e-9),
]
display(pd.DataFrame([{"id": p.id, "passed": p.passed, "detail": p.detail} for p in PRECONDITIONS]))
# the ranking loss's drop per trained variant (first minus last quarter of training, mean over seeds)
pd.Series(fell, name="ranking-loss drop").apply(lambda v: f"{v:+.2e}")

# %% [markdown]
# ## Sanity checks
#
# 1. **CDT against an independent formulation.** The module (built on `nn.MultiheadAttention`) against the
#    attention written out per head from its weights: $\operatorname{softmax}(QK^\top/\sqrt{d_h})V$ with the
#    positional encoding on the keys only, then the out-projection, $W$ and the LayerNorm. A misplaced encoding,
#    a transposed sequence layout or a wrong head split would fail it.
# 2. **The panoptic CDT with $W=0$ is the identity** (papers.md §18 item 7).
# 3. **POD against a loop.** `pod` against explicit block means summed row- and column-wise, on a random map; and RC is
#    0 for identical maps and positive otherwise.
# 4. **Logits are $s\cdot\cos$** for the frozen classifier, against `F.cosine_similarity`.
# 5. **Hard mask pooling against the library's soft one.** On masks made of whole 32-px cells, FC-CLIP's
#    resize-and-threshold pooling and `dense.pooling.mask_pool`'s area averaging must give the same features (a
#    transposed grid or a misplaced bilinear sample would not).
# 6. **Semantic inference on membership rows against the per-pixel einsum.** `predict` scores the distinct rows of
#    proposal membership; the library's `semantic_inference` over every pixel must give the same labels on the
#    first evaluation images.
# 7. **The embedded map against an independent read-out.** On a ResNet, `embed_map(dense_trunk(·))` against
#    `dense.features.maskclip_features`; on a ConvNeXt (the paper's tower), the embedding of the trunk map's spatial
#    mean against the tower's own forward, which pools, normalises and projects inside timm and open_clip.

# %%
torch.manual_seed(0)
check_map, check_texts = torch.randn(2, EMBED_DIM, 4, 4), F.normalize(torch.randn(5, EMBED_DIM), dim=-1)
check_cdt = ContentDependentTransfer(EMBED_DIM, cdt_heads)
with torch.no_grad():
    nn.init.normal_(check_cdt.norm.weight), nn.init.normal_(check_cdt.norm.bias)  # a non-trivial LayerNorm
    module_out = check_cdt(check_map, check_texts)
    attention, head_dim = check_cdt.attention, EMBED_DIM // cdt_heads
    wq, wk, wv = attention.in_proj_weight.chunk(3)
    bq, bk, bv = attention.in_proj_bias.chunk(3)
    by_hand = []
    for n in range(2):
        values = check_map[n].flatten(1).T  # (hw, D)
        keys = values + sine_position_encoding(4, 4, EMBED_DIM).flatten(1).T
        q, k, v = check_texts @ wq.T + bq, keys @ wk.T + bk, values @ wv.T + bv
        heads = []
        for h in range(cdt_heads):
            part = slice(h * head_dim, (h + 1) * head_dim)
            weights = (q[:, part] @ k[:, part].T / math.sqrt(head_dim)).softmax(-1)
            heads.append(weights @ v[:, part])
        attended = attention.out_proj(torch.cat(heads, dim=1))
        by_hand.append(F.layer_norm(check_texts + check_cdt.transfer(attended), (EMBED_DIM,),
                                    check_cdt.norm.weight, check_cdt.norm.bias))
    cdt_difference = float((module_out - torch.stack(by_hand)).abs().max())
    identity_difference = float((ContentDependentTransfer(EMBED_DIM, cdt_heads, panoptic=True)(check_map, check_texts)
                                 - check_texts).abs().max())
    pod_map = torch.randn(3, 6, 8, 8)
    loop = []
    for s in (1, 2, 4):
        cells = pod_map.reshape(3, 6, s, 8 // s, s, 8 // s).mean(dim=(3, 5))  # (N, C, s, s) block means
        loop += [torch.stack([cells[:, :, :, j].sum(2) for j in range(s)], -1).flatten(1),  # over rows, per column
                 torch.stack([cells[:, :, i, :].sum(2) for i in range(s)], -1).flatten(1)]
    pod_difference = float((pod(pod_map) - torch.cat(loop, 1)).abs().max())
    rc_same, rc_other = float(rc_loss(pod_map, pod_map)), float(rc_loss(pod_map, pod_map + 0.5))
    pooled_check = torch.randn(1, 7, EMBED_DIM)
    cos = F.cosine_similarity(pooled_check[0][:, None], check_texts[None], dim=-1)
    logits_difference = float((classification_logits(pooled_check, check_texts)[0] - logit_scale() * cos).abs().max())
    blocks = torch.rand(6, 4, 4) < 0.4
    blocks[:, 0, 0] = True  # no empty mask
    block_masks = blocks.repeat_interleave(32, dim=1).repeat_interleave(32, dim=2)  # (6, 128, 128)
    block_map = torch.randn(1, 16, 4, 4)
    pooling_difference = float((mask_pooling(block_map, mask_pooling_weights(block_masks, (4, 4))[None])
                                - mask_pool(block_map, block_masks[None])).abs().max())
    first = next(iter(evaluation_sets.values()))
    sub = {key: value[:5] if key in ("images", "labels", "proposals", "pool_weights", "patterns")
           and value is not None else value for key, value in first.items()}
    by_rows = predict(tower, None, sub)
    per_pixel, readout_differences = [], []
    for image, masks in zip(sub["images"], sub["proposals"], strict=True):  # one image at a time: real sizes differ
        x, masks_t = to_input(image[None]), torch.from_numpy(masks)
        image_map = dense_trunk(tower, x)
        weights = mask_pooling_weights(masks_t, tuple(image_map.shape[-2:]))
        pooled = embed(tower, mask_pooling(image_map, weights[None]))
        probabilities = classification_logits(pooled, text_classifier(sub["classnames"]))[0].softmax(-1)
        per_pixel.append(semantic_inference(masks_t.float(), probabilities).argmax(0).numpy())
        # the dense read-out against an independent formulation: MaskCLIP's for a ResNet; for a ConvNeXt (the paper's
        # tower), the tower's own forward, whose timm head average-pools the trunk map and then normalises and projects
        independent = (maskclip_features(tower, x) if not is_convnext(tower) else tower(x)[:, :, None, None])
        ours = embed_map(tower, image_map) if not is_convnext(tower) else embed_map(
            tower, image_map.mean(dim=(-2, -1), keepdim=True))
        readout_differences.append(float((ours - independent).abs().max()))
    inference_agreement = float(np.mean(np.concatenate([(a == b).ravel() for a, b in zip(by_rows, per_pixel)])))
    maskclip_difference = max(readout_differences)
SANITY = pd.Series({"CDT module vs per-head attention by hand (max |Δ|)": cdt_difference,
                    "panoptic CDT with W = 0 vs identity (max |Δ|)": identity_difference,
                    "POD vs block-mean loop (max |Δ|)": pod_difference,
                    "RC loss, identical maps": rc_same, "RC loss, shifted maps": rc_other,
                    "logits vs s·cos (max |Δ|)": logits_difference,
                    "hard vs library soft mask pooling on whole cells (max |Δ|)": pooling_difference,
                    "semantic inference, rows vs per pixel (share of equal labels)": inference_agreement,
                    "embedded map vs an independent read-out (max |Δ|)": maskclip_difference})
assert cdt_difference < 1e-4 and identity_difference < 1e-6 and pod_difference < 1e-4, SANITY
assert rc_same == 0.0 and rc_other > 0 and logits_difference < 1e-4, SANITY
assert pooling_difference < 1e-5 and inference_agreement >= 0.999 and maskclip_difference < 1e-4, SANITY
SANITY.apply(lambda v: f"{v:.1e}" if v != 1.0 else "1")

# %% [markdown]
# ## What the paper reports
#
# The README's "Pretrained Weights" table (semantic, mIoU) for both released models, and the previous state of the
# art as the README's introduction states it (MAFTP-Large minus the stated gains +0.5, +2.3, +3.4, +0.4, +1.1). The
# README reports no frozen-CLIP baseline and no ablation; the paper's ablation tables are **unconfirmed** here.

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

README = "https://github.com/jiaosiyu1999/MAFT-Plus/blob/fd12806/README.md"
BENCHMARKS = ["ade20k-full", "ade20k", "context459", "context59", "voc20"]  # PC-459, PC-59, PAS-20
LARGE, BASE = [15.1, 36.1, 21.6, 59.4, 96.5], [13.8, 34.6, 16.2, 57.5, 95.4]
GAINS = [0.5, 2.3, 3.4, 0.4, 1.1]
REPORTED = (
    reported_rows([{"dataset": d, "value": v} for d, v in zip(BENCHMARKS, LARGE)], url=README,
                  source="README, Pretrained Weights (semantic), MAFTP-Large", model="convnext_large_d_320",
                  method="MAFT+", metric="mIoU")
    + reported_rows([{"dataset": d, "value": v} for d, v in zip(BENCHMARKS, BASE)], url=README,
                    source="README, Pretrained Weights (semantic), MAFTP-Base", model="convnext_base_w_320",
                    method="MAFT+", metric="mIoU")
    + reported_rows([{"dataset": d, "value": round(v - g, 1)} for d, v, g in zip(BENCHMARKS, LARGE, GAINS)],
                    url=README, source="README, Introduction: MAFTP-Large minus the stated gains over the previous "
                                       "state of the art", model="convnext_large_d_320",
                    method="previous state of the art", metric="mIoU")
)

# %% [markdown]
# ## Claims
#
# Each is the mean over seeds of the method's mIoU minus the baseline's, averaged over the evaluation sets, with a
# Student-t interval over seeds; all offline claims require the three preconditions. `beats-previous-sota` compares
# the paper's reported rows only: the toy world has no previous state of the art, so offline it is not tested.

# %% tags=["claims"]
from clipbook.claims import Claim

REQUIRED = ("frozen-beats-floor", "proposals-recall", "training-loss-fell")
CLAIMS = [
    Claim("maftp-beats-frozen", "MAFT+ (fine-tuned tower with CDT and RC) classifies the same proposals better than "
          "the frozen-CLIP proposal classifier, cross-dataset", method="MAFT+", baseline="frozen CLIP",
          metric="mIoU", margin=0.0, requires=REQUIRED),
    Claim("cdt-helps", "Content-dependent transfer of the text embeddings improves MAFT+ (ablation without CDT)",
          method="MAFT+", baseline="MAFT+ without CDT", metric="mIoU", margin=0.0, requires=REQUIRED),
    Claim("rc-helps", "Representation compensation improves MAFT+ cross-dataset (ablation without RC)",
          method="MAFT+", baseline="MAFT+ without RC", metric="mIoU", margin=0.0, requires=REQUIRED),
    Claim("beats-previous-sota", "MAFT+ beats the previous state of the art on the five benchmarks",
          method="MAFT+", baseline="previous state of the art", metric="mIoU", margin=0.0,
          where={"model": "convnext_large_d_320"}, paper_effect=sum(GAINS) / len(GAINS),
          paper_effect_source="README introduction, mean of +0.5, +2.3, +3.4, +0.4, +1.1"),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS,
                notes="Proposals: dense.proposals.toy_proposals, a toy stand-in for Mask2Former (recall reported). "
                      f"Schedule shortened: {iterations} iterations of batch {batch_size} over {train_images} "
                      f"train images (official 55 000 iterations); evaluation on the first {evaluation_images} "
                      "images of each test split.")
