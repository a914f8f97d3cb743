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
# # Trident — Harnessing Vision Foundation Models for High-Performance, Training-Free Open Vocabulary Segmentation
#
# Shi, Dong, Xu — ICCV 2025 · [arXiv:2411.09219](https://arxiv.org/abs/2411.09219) · official code
# [YuHengsss/Trident](https://github.com/YuHengsss/Trident) (Apache-2.0; read, not copied).
#
# **Claim.** Training-free open-vocabulary segmentation with CLIP is limited by CLIP's resolution: the usual
# *segment-then-splice* sliding window classifies each sub-image on its own. Trident *splices then segments*: CLIP
# features of the sub-images, computed with a DINO-guided proxy attention in the last block, are spliced into one
# full map, which SAM's encoder attention then aggregates globally before classification. The README table
# (ViT-B/16) reports 67.1 mIoU on VOC21 against 43.4 for MaskCLIP and 61.3 for ProxyCLIP, 45.8 on average over
# eight benchmarks.
#
# **This notebook.** The `offline` profile runs Trident on the toy OVSS benchmarks (`toy-voc21`, the headline, and
# `toy-context`: 128-px images, each a 2×2 mosaic of 64-px one-object tiles) with the library's tiny ViT CLIP
# (`clipbook-tiny-vit`, patch 8 at 64 px) as CLIP, the tiny self-supervised ViT (`clipbook-tiny-dino-vit`) as DINO,
# and the library's **toy proposal stand-in** (`dense.proposals.toy_proposals`: degraded ground-truth masks,
# labelled as a stand-in, its recall reported) in place of SAM's encoder. Against
# MaskCLIP and ClearCLIP (the library's last-block surgeries), a ProxyCLIP-style *segment-then-splice* run of
# Trident's own window attention, and Trident without the proposal aggregation. The `paper` profile
# (`notebooks/profiles/paper/trident.yaml`) names OpenAI ViT-B/16, DINO ViT-B/16, SAM ViT-B and the eight mmseg
# benchmarks.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-vit", "toyworld"]]
ssl_encoder = "clipbook-tiny-dino-vit"
datasets = ["toy-voc21", "toy-context"]
seeds = [1, 2, 3]
short_side = 128
slide_crop = 96
slide_stride = 64
baseline_crop = 64
baseline_stride = 32
guidance = "toy-proposals"
guidance_grid = 32
sam_checkpoint = ""
beta = 1.2
gamma = 3.0
cos_fac = 1.2
logit_scale = 40.0
test_images = 100
templates = 80
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Float, Int, Str, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "device",
    ssl_encoder=Str(["clipbook-tiny-dino-vit", "dino_vitb16", "dino_vits16", "dino_vits8", "dino_vitb8"],
                    help="the DINO encoder of the proxy attention (official: dino_vitb16)"),
    short_side=Int(minimum=8, help="images resized to this short side (official: 448 for VOC21, mmseg Resize, 2x "
                                   "CLIP's 224; toy: 128, the benchmarks' own size, 2x the tiny ViT's 64)"),
    slide_crop=Int(minimum=8, help="Trident's window (official slide_crop 336; toy 96 = 336 x 64/224)"),
    slide_stride=Int(minimum=8, help="Trident's window stride (official 224; toy 64)"),
    baseline_crop=Int(minimum=8, help="MaskCLIP / ClearCLIP slide-inference window (224 on B/16; toy 64)"),
    baseline_stride=Int(minimum=8, help="MaskCLIP / ClearCLIP slide-inference stride (112 on B/16; toy 32)"),
    guidance=Str(["toy-proposals", "sam_vit_b"], help="what plays SAM: the labelled toy proposal stand-in, or "
                                                      "SAM ViT-B's encoder (paper profile)"),
    guidance_grid=Int(minimum=2, help="the guidance grid on the long side (SAM: 64 tokens of a 1024 px image; "
                                      "toy stand-in: 32 cells of 2x2 px)"),
    sam_checkpoint=Str(help="sam_vit_b_01ec64.pth (paper profile only)"),
    beta=Float(help="proxy-attention mean factor (official 1.2)"),
    gamma=Float(minimum=0, exclusive_minimum=True, help="proxy-attention sharpness (official 3.0)"),
    cos_fac=Float(help="SAM value-cosine threshold factor (official 1.2; capped at 0.9)"),
    logit_scale=Float(minimum=0, exclusive_minimum=True, help="softmax scale of the cosine logits (official 40)"),
    templates=Int(minimum=1, maximum=80, help="the first this many of OpenAI's 80 ImageNet templates per query "
                                              "(official: all 80)"),
    test_images=Int(minimum=0, help="the first this many evaluation images of each benchmark, 0 for all (toy: 100 "
                                    "of 200, cut for time alone; the paper profile: all)"),
    needs=("tiny-clip-vit", "tiny-ssl"),
)

# %%
import functools
import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

import clipbook
from clipbook import cache, zeroshot
from clipbook.batch.parameters import ParameterError
from clipbook.claims import at_least
from clipbook.data import registry
from clipbook.dense import benchmarks, segmentor
from clipbook.dense import proposals as toy_proposal_module
from clipbook.dense.features import (VIT_SURGERIES, clip_to_imagenet, dense_logits, last_block_attention,
                                     project_tokens, ssl_patch_tokens, vit_dense_features,
                                     vit_tokens_before_last_block)
from clipbook.dense.windows import slide_inference, window_grid
from clipbook.determinism import deterministic_torch
from clipbook.evaluation.segmentation import IoUAccumulator, commonest_class_miou
from clipbook.models import tiny_ssl
from clipbook.models.loader import MissingCheckpointError, load_model, rehearsing
from clipbook.models.tiny_clip import images_to_tensor
from clipbook.report.rows import reported_rows
from clipbook.training.loop import code_fingerprint

session = clipbook.start(SPEC, globals())


def is_toy(name: str) -> bool:
    return registry.DATASETS[name]["kind"] == "toy-ovss"


# The official per-dataset settings (configs/cfg_<dataset>.py over configs/base_config.py): the mmseg Resize short
# side, Trident's background probability threshold and the one its comments give for plain CLIP ViT-B/16
# ("0.2 OURS 0.1 CLIP-B/16"), cos_fac and slide_stride where a config overrides them. A toy benchmark takes its
# counterpart's Trident threshold and the library's CLIP-baseline threshold (`segmentor.PROB_THRESHOLDS`, the same
# 0.1 on toy-voc21); its sizes are this notebook's parameters (the official ones scaled from CLIP's 224 px to the
# tiny ViT's 64 px).
OFFICIAL = {
    "voc21": {"short_side": 448, "prob_thd": 0.2, "clip_prob_thd": 0.1},
    "context60": {"short_side": 576, "prob_thd": 0.15, "clip_prob_thd": 0.05},
    "coco_object": {"short_side": 448, "prob_thd": 0.25, "clip_prob_thd": 0.1},
    "voc20": {"short_side": 336, "slide_stride": 112, "cos_fac": 0.0},
    "context59": {"short_side": 576},
    "coco_stuff": {"short_side": 448},
    "cityscapes": {"short_side": 688, "cos_fac": 3.0},
    "ade20k": {"short_side": 576},
}
TOY_COUNTERPART = {"toy-voc21": "voc21", "toy-voc20": "voc20", "toy-context": "context59", "toy-stuff": "coco_stuff"}


def settings(name: str) -> dict:
    """The run's settings on one dataset: the parameters, with the official per-dataset overrides on real data."""
    official = OFFICIAL[TOY_COUNTERPART.get(name, name)]
    chosen = {"short_side": short_side, "slide_crop": slide_crop, "slide_stride": slide_stride, "cos_fac": cos_fac,
              "prob_thd": official.get("prob_thd", 0.0), "clip_prob_thd": official.get("clip_prob_thd", 0.0)}
    if is_toy(name):
        chosen["clip_prob_thd"] = segmentor.PROB_THRESHOLDS.get(name, 0.0)
    else:
        chosen.update({k: v for k, v in official.items() if k in ("short_side", "slide_stride", "cos_fac")})
    return chosen


unsupported = [name for name in datasets if not is_toy(name) and name not in OFFICIAL]
if unsupported:
    raise ParameterError(f"parameter 'datasets' must be toy OVSS benchmarks ({', '.join(TOY_COUNTERPART)}) or "
                         f"Trident's benchmarks ({', '.join(OFFICIAL)}); got {unsupported}")
if guidance == "toy-proposals" and not all(is_toy(name) for name in datasets):
    raise ParameterError("guidance 'toy-proposals' needs toy benchmarks (it degrades their ground-truth masks); "
                         "use guidance 'sam_vit_b' on real data")


def check_sam(checkpoint: str) -> None:
    """Fail now, before any heavy work, if SAM ViT-B cannot be built."""
    try:
        import segment_anything  # noqa: F401
    except ImportError as error:
        raise MissingCheckpointError("SAM is not installed: `pip install segment-anything` (facebookresearch/"
                                     "segment-anything, Trident vendors a copy)") from error
    if rehearsing():  # the rehearsal builds SAM ViT-B at a seeded random init instead (build_sam)
        return
    if not checkpoint or not Path(checkpoint).expanduser().is_file():
        raise MissingCheckpointError(
            f"checkpoint not found: SAM ViT-B {checkpoint!r}.\n  It comes from: https://dl.fbaipublicfiles.com/"
            "segment_anything/sam_vit_b_01ec64.pth (~375 MB)\n  To provide it: download it and set sam_checkpoint")


tiny_ssl.check_ssl_available(ssl_encoder)
if guidance == "sam_vit_b":
    check_sam(sam_checkpoint)
ssl = tiny_ssl.load_ssl_encoder(ssl_encoder, device=session.device, show_progress=False)
clips = {name: load_model(name, tag, device=session.device) for name, tag in models}
sets = {name: registry.load_dataset(name, "test" if is_toy(name) else "val") for name in datasets}  # mmseg: val

# %% [markdown]
# ## Step 1: the proxy attention in CLIP's last block (per window)
#
# Each window of the resized image goes through CLIP up to its last block; the last block's query–key attention is
# replaced by one computed from DINO's last-layer patch features $D$ of the same window (ProxyCLIP-style), applied to
# CLIP's values $V$ (bilinearly resized to DINO's grid), with no residual and no FFN:
#
# $$S_{ij} = \gamma\,\big(\cos(D_i, D_j) - \beta\,\overline{\cos}\big),\qquad S_{ij}<0 \mapsto -\infty,\qquad
#   O = W_o\,\operatorname{softmax}(S)\,V,$$
#
# with $\beta = 1.2$, $\gamma = 3$, and $\overline{\cos}$ the mean similarity over **all windows of the image** (the
# official batch is one image's windows and `torch.mean(similarity)` averages the whole batch). The same weights
# serve every head. (`open_clip/transformer.py` `VisionTransformer.forward`, which drops the class token before the
# last block, and `custom_attn`; DINO features from `trident.py` `get_trident_seg`,
# `vfm.get_intermediate_layers(imgs_norm)[0]`, on the window re-normalised from CLIP's to ImageNet's statistics.)

# %%
def proxy_weights(ssl_tokens: torch.Tensor, windows_per_image: int, beta: float, gamma: float):
    """custom_attn's weights from DINO patch tokens (B, L, C), B = images x windows (image-major).

    Returns (weights (B, L, L), how many rows had every entry below the threshold). The official code gives such a
    row softmax(-inf, ...) = NaN; here it attends to its own token alone (counted, reported below).
    """
    features = F.normalize(ssl_tokens, dim=-1)
    similarity = features @ features.transpose(1, 2)
    per_image_mean = similarity.unflatten(0, (-1, windows_per_image)).mean(dim=(1, 2, 3))
    mean = per_image_mean.repeat_interleave(windows_per_image).view(-1, 1, 1)
    scores = (similarity - beta * mean) * gamma
    scores = scores.masked_fill(scores < 0, float("-inf"))
    empty = torch.isinf(scores).all(dim=-1)
    eye = torch.eye(scores.shape[-1], dtype=torch.bool).expand_as(scores)
    scores = torch.where(empty.unsqueeze(-1) & eye, torch.zeros_like(scores), scores)
    return scores.softmax(dim=-1), int(empty.sum())


def last_block_values(visual, crops: torch.Tensor) -> torch.Tensor:
    """The last block's value tokens (B, h·w, width) of a batch of windows, the class token dropped first
    (`VisionTransformer.forward`: `x = x[1:]`; `custom_attn`: v from the in-projection of `ln_1(x)`)."""
    block = visual.transformer.resblocks[-1]
    tokens = vit_tokens_before_last_block(visual, crops)[:, 1:]
    return F.linear(block.ln_1(tokens), block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)[2]


def proxy_window_tokens(visual, encoder, crops: torch.Tensor, windows_per_image: int, beta: float, gamma: float):
    """custom_attn on a batch of windows: (B, width, h, w) last-block outputs on DINO's grid (before ln_post)."""
    attention = visual.transformer.resblocks[-1].attn
    values = last_block_values(visual, crops)
    clip_grid = (crops.shape[-2] // visual.patch_size[0], crops.shape[-1] // visual.patch_size[1])
    ssl_map = ssl_patch_tokens(encoder.model, clip_to_imagenet(crops))  # library: (B, C, h, w)
    ssl_grid = tuple(ssl_map.shape[-2:])
    ssl_tokens = ssl_map.flatten(2).transpose(1, 2)
    if ssl_grid != clip_grid:  # custom_attn: v interpolated bilinearly to DINO's token grid
        values = values.transpose(1, 2).unflatten(2, clip_grid)
        values = F.interpolate(values, size=ssl_grid, mode="bilinear", align_corners=False).flatten(2).transpose(1, 2)
    weights, empty_rows = proxy_weights(ssl_tokens, windows_per_image, beta, gamma)
    out = attention.out_proj(weights @ values)
    return out.transpose(1, 2).unflatten(2, ssl_grid), empty_rows


# %% [markdown]
# ## Step 2: splice, then aggregate with SAM
#
# **Splice.** The windows' outputs are written into one map of the whole image on the token grid, overlaps averaged
# (`guidance_attn`: `dst_v[..., coord] += raw_v; count_mat[...] += 1; dst_v / count_mat`).
#
# **Aggregate.** The spliced map $\tilde V$ is resized bilinearly to SAM's grid and aggregated with SAM's last-layer
# encoder attention $A^{(h)}$, kept only where SAM's value vectors agree (`get_sam_sim`):
#
# $$\tau_i = \min\Big(0.9,\ c\cdot\tfrac{1}{H N}\sum_{h,j}\cos\big(v^{(h)}_i, v^{(h)}_j\big)\Big),\qquad
#   \hat A_{ij} = \frac1H\sum_h A^{(h)}_{ij}\,[\cos(v^{(h)}_i, v^{(h)}_j) > \tau_i],\qquad
#   O_i = \frac{\sum_j \hat A_{ij}\tilde V_j}{\sum_j \hat A_{ij}},$$
#
# with $c$ = `cos_fac` = 1.2, then `ln_post` and the projection.
#
# **The SAM stand-in (offline).** The toy world has no SAM. `toy_proposals` degrades each image's true object
# masks (missed objects, jittered boundaries, halves, merges, a background proposal, clutter). Each cell of a
# `guidance_grid`² grid gets as its value vector $v_i$ the fraction of the cell inside each proposal, so that
# $\cos(v_i, v_j)$ is high for cells in the same proposals. The stand-in's attention is uniform ($A_{ij} = 1/N$):
# SAM's attention *pattern* is not modelled, and the threshold on the value cosine selects the cells. A cell no
# proposal covers gets its own indicator channel, so it keeps its own feature, as SAM's self-similarity of 1 does.

# %%
def splice(window_maps: torch.Tensor, coordinates: list[tuple[int, int, int, int]], size: tuple[int, int]) -> torch.Tensor:
    """(N, W, D, h, w) window maps (image-major), windows at token `coordinates` (y1, y2, x1, x2) -> (N, D, *size)."""
    n, _, channels = window_maps.shape[:3]
    total = window_maps.new_zeros((n, channels, *size))
    count = window_maps.new_zeros((1, 1, *size))
    for index, (y1, y2, x1, x2) in enumerate(coordinates):
        total[..., y1:y2, x1:x2] += window_maps[:, index]
        count[..., y1:y2, x1:x2] += 1
    return total / count


def sam_similarity(sam_values: torch.Tensor, sam_attention: torch.Tensor, cos_fac: float) -> torch.Tensor:
    """get_sam_sim: (H, N, c) value vectors and (H, N, N) attention -> (N, N) row-stochastic aggregation weights."""
    values = F.normalize(sam_values, dim=-1)
    similarity = values @ values.transpose(1, 2)
    threshold = (cos_fac * similarity.mean(dim=0, keepdim=True).mean(dim=-1, keepdim=True)).clamp(max=0.9)
    kept = torch.where(similarity > threshold, sam_attention, torch.zeros_like(sam_attention)).mean(dim=0)
    return kept / kept.sum(dim=-1, keepdim=True)


def proposal_guidance(masks: np.ndarray, grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The SAM stand-in: (1, N, c) value vectors and (1, N, N) uniform attention from (K, H, W) proposals."""
    cells = F.adaptive_avg_pool2d(torch.from_numpy(masks).float().unsqueeze(0), grid)[0].flatten(1).T  # (N, K)
    uncovered = (cells.sum(dim=1) == 0).nonzero().flatten()
    own = torch.zeros(len(cells), len(uncovered))
    own[uncovered, torch.arange(len(uncovered))] = 1.0
    values = torch.cat([cells, own], dim=1)
    return values.unsqueeze(0), torch.full((1, len(cells), len(cells)), 1.0 / len(cells))


def stand_in_weights(proposal_masks: list[np.ndarray], grid: tuple[int, int], cos_fac: float) -> torch.Tensor:
    """`sam_similarity(*proposal_guidance(masks, grid), cos_fac)` for a batch of images at once, (B, N, N), in
    closed form: the uniform attention cancels in the row normalisation, and an uncovered cell's own indicator
    channel only adds 1 to its own cosine, so only the K proposal channels are multiplied (checked below against
    the general path)."""
    most = max(1, max(len(masks) for masks in proposal_masks))
    stacked = torch.zeros(len(proposal_masks), most, *proposal_masks[0].shape[-2:])
    for index, masks in enumerate(proposal_masks):
        stacked[index, :len(masks)] = torch.from_numpy(masks).float()
    cells = F.adaptive_avg_pool2d(stacked, grid).flatten(2).transpose(1, 2)  # (B, N, K), zero-padded channels
    unit = F.normalize(cells, dim=-1)
    similarity = unit @ unit.transpose(1, 2) + torch.diag_embed((cells.sum(dim=-1) == 0).float())
    threshold = (cos_fac * similarity.mean(dim=-1, keepdim=True)).clamp(max=0.9)
    kept = (similarity > threshold).float()
    return kept / kept.sum(dim=-1, keepdim=True)


def guide(spliced: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """guidance_attn's last step: (B, width, h, w) spliced maps -> (B, width, *grid), each aggregated with its
    (N, N) weights (B, N, N)."""
    resized = F.interpolate(spliced, size=grid, mode="bilinear", align_corners=False)
    return (weights @ resized.flatten(2).transpose(1, 2)).transpose(1, 2).unflatten(2, grid)


# %% [markdown]
# **SAM itself (paper profile).** `trident.py` `get_sam_feat` sets the image on SAM's predictor (long side 1024)
# and reads the last encoder block's attention and values (the vendored `segment_anything` stores them as
# `last_attn`, `last_v`), cut to the image's valid region of the 64×64 grid. The stock package does not keep them,
# so a hook on the last block recomputes them from its input. This path needs the SAM weights and a GPU; it was not
# run offline.

# %%
def build_sam(checkpoint: str):
    """SAM ViT-B's predictor with the released weights; under the rehearsal, where the released file is missing, the
    same architecture at a seeded random init (as the loader stands in for a missing checkpoint; README,
    "Rehearsal"), so the paper path still runs end to end."""
    from segment_anything import SamPredictor, sam_model_registry

    path = Path(checkpoint).expanduser() if checkpoint else None
    if rehearsing() and (path is None or not path.is_file()):
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = sam_model_registry["vit_b"](checkpoint=None)
    else:
        model = sam_model_registry["vit_b"](checkpoint=str(path))
    return SamPredictor(model.to(session.device).eval())


def sam_guidance(predictor, image: np.ndarray, patch: int = 16):
    """(H, N, c) values and (H, N, N) attention of SAM's last encoder block on the image's valid grid."""
    from segment_anything.modeling.image_encoder import add_decomposed_rel_pos

    captured = {}
    block = predictor.model.image_encoder.blocks[-1]

    def hook(module, inputs, output):
        x = inputs[0]
        b, h, w, _ = x.shape
        qkv = module.qkv(x).reshape(b, h * w, 3, module.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.reshape(3, b * module.num_heads, h * w, -1).unbind(0)
        attention = (q * module.scale) @ k.transpose(-2, -1)
        if module.use_rel_pos:
            attention = add_decomposed_rel_pos(attention, q, module.rel_pos_h, module.rel_pos_w, (h, w), (h, w))
        captured.update(attention=attention.softmax(dim=-1), values=v, grid=(h, w))

    handle = block.attn.register_forward_hook(hook)
    try:
        predictor.set_image(image)
    finally:
        handle.remove()
    grid_h, grid_w = captured["grid"]
    valid_h, valid_w = predictor.input_size[0] // patch, predictor.input_size[1] // patch
    heads = captured["values"].shape[0]
    attention = captured["attention"].view(heads, grid_h, grid_w, grid_h, grid_w)[:, :valid_h, :valid_w, :valid_h, :valid_w]
    values = captured["values"].view(heads, grid_h, grid_w, -1)[:, :valid_h, :valid_w]
    return (values.flatten(1, 2).float(), attention.flatten(1, 2).flatten(2, 3).float(), (valid_h, valid_w))


# %% [markdown]
# ## Step 3: classification
#
# Every method is read out the same way, by the library's training-free OVSS protocol (`clipbook.dense.segmentor`,
# Trident `trident.py` `__init__` and `postprocess_result`): cosine of every location with each query's text
# embedding (OpenAI's 80-template ensemble), resized bilinearly to the label map; softmax of `logit_scale` × cosine
# over all queries, a class's probability the largest of its queries' (toy-voc21's "background" is queried by the
# world's surface names, as `cls_voc21.txt` queries VOC's by stuff words); argmax, and background (index 0) where
# the winning probability is below `prob_thd`.

# %%
def queries_for(name: str, data) -> tuple[list[str], list[int]]:
    """The query words and the class each stands for: the segmentor's on a toy benchmark; on real data each class
    is its own name (the official multi-name `configs/cls_<benchmark>.txt` files are not shipped here)."""
    if is_toy(name):
        return segmentor.query_words(name)
    return list(data.classnames), list(range(len(data.classnames)))


def query_embeddings(loaded, words: list[str]) -> torch.Tensor:
    """(Q, D) text embeddings of the query words, OpenAI's 80-template ensemble (`trident.py` `__init__`). Every
    word of every benchmark of the run is embedded once (toy-context's queries include all of toy-voc21's) and
    cached by model, words, templates and code, since 80 prompts per query dominate the text side on two cores."""
    chosen = list(zeroshot.OPENAI_IMAGENET_TEMPLATES[:templates])
    union = list(dict.fromkeys(word for name in datasets for word in queries_for(name, sets[name])[0]))

    def compute() -> torch.Tensor:
        return zeroshot.zero_shot_classifier(loaded, union, chosen).T.contiguous()

    if rehearsing():
        table = compute()
    else:
        spec = {"model": loaded.identity, "words": union, "templates": chosen,
                "code": [code_fingerprint(f) for f in (zeroshot.zero_shot_classifier, zeroshot.prompt_set_classifier)]}
        table = cache.cached("trident-queries", spec, compute)
    return table[[union.index(word) for word in words]]


def predict_labels(logits: torch.Tensor, query_class: list[int], prob_thd: float) -> torch.Tensor:
    """(N, Q, H, W) query cosines -> (N, H, W) labels (`segmentor.segment` with Trident's logit scale)."""
    return segmentor.segment(logits, query_class, logit_scale=logit_scale, prob_threshold=prob_thd)


# %% [markdown]
# ## The methods
#
# Every method sees the same resized image (short side `short_side`; the toy images are already 128 px). MaskCLIP
# and ClearCLIP are the library's
# last-block surgeries read by mmseg slide inference (`baseline_crop`/`baseline_stride`, CLIP's own input size and
# half of it). ProxyCLIP-style is Trident's window attention classified window by window and averaged by slide
# inference on Trident's windows (*segment-then-splice*); "Trident without proposals" splices but does not
# aggregate; Trident splices and aggregates.

# %%
def resize_short_side(images: torch.Tensor, config: dict, patch: int) -> torch.Tensor:
    """mmseg Resize(scale=(2048, short_side), keep_ratio=True), then `seg_utils.preprocess_image`: round up to whole
    patches and to at least one window. Bilinear, on the normalised tensor."""
    h, w = images.shape[-2:]
    scale = min(config["short_side"] / min(h, w), 2048 / max(h, w))
    new_h = max(math.ceil(round(h * scale) / patch) * patch, config["slide_crop"])
    new_w = max(math.ceil(round(w * scale) / patch) * patch, config["slide_crop"])
    if (new_h, new_w) == (h, w):  # the toy benchmarks' 128 px images are already at the toy short side
        return images
    return F.interpolate(images, size=(new_h, new_w), mode="bilinear", align_corners=False)


def trident_windows(loaded, images: torch.Tensor, config: dict) -> dict:
    """`get_trident_seg` up to the guidance step, for a batch of images of one size: the windows' proxy-attention
    outputs and their splice on the token grid."""
    visual = loaded.model.visual
    patch = visual.patch_size[0]
    windows = window_grid(tuple(images.shape[-2:]), (config["slide_crop"],) * 2, (config["slide_stride"],) * 2)
    crops = torch.stack([images[:, :, y1:y2, x1:x2] for y1, y2, x1, x2 in windows], dim=1).flatten(0, 1)
    tokens, empty_rows = proxy_window_tokens(visual, ssl, crops, len(windows), beta, gamma)
    ratio = tokens.shape[-1] / (crops.shape[-1] // patch)  # DINO grid / CLIP grid (1 when the patches agree)
    coordinates = [tuple(int(c // patch * ratio) for c in window) for window in windows]
    size = (int(images.shape[-2] // patch * ratio), int(images.shape[-1] // patch * ratio))
    spliced = splice(tokens.unflatten(0, (len(images), len(windows))), coordinates, size)
    return {"spliced": spliced, "tokens": tokens, "windows": windows, "empty_rows": empty_rows,
            "rows": tokens.shape[0] * tokens.shape[-2] * tokens.shape[-1]}


def segment_then_splice_logits(loaded, parts: dict, text: torch.Tensor, images: torch.Tensor, config: dict):
    """ProxyCLIP-style: every window classified on its own, its logits resized to the window and averaged over
    overlaps by mmseg slide inference on the same windows."""
    per_window = dense_logits(project_tokens(loaded.model.visual, parts["tokens"]), text)
    per_window = per_window.unflatten(0, (len(images), len(parts["windows"])))
    crop = (config["slide_crop"],) * 2

    def predict(crops: torch.Tensor) -> torch.Tensor:  # slide_inference stacks the windows window-major
        return torch.cat([F.interpolate(per_window[:, index], size=crop, mode="bilinear", align_corners=False)
                          for index in range(len(parts["windows"]))])

    return slide_inference(images, predict, crop, (config["slide_stride"],) * 2)


BASELINES = {"MaskCLIP": "maskclip", "ClearCLIP": "clearclip"}


def baseline_features(visual, crops: torch.Tensor) -> dict[str, torch.Tensor]:
    """MaskCLIP's and ClearCLIP's (N, D, h, w) features: what `vit_dense_features(visual, crops, attention)` returns
    for each (its last-block surgery, residual and FFN as VIT_SURGERIES says), with the blocks before the last run
    once for both (checked below against the library)."""
    tokens = vit_tokens_before_last_block(visual, crops)
    block = visual.transformer.resblocks[-1]
    grid = (crops.shape[-2] // visual.patch_size[0], crops.shape[-1] // visual.patch_size[1])
    features = {}
    for method, attention in BASELINES.items():
        surgery = VIT_SURGERIES[attention]
        out = last_block_attention(block, tokens, surgery["attention"])
        if surgery["residual"]:
            out = tokens + block.ls_1(out)
            out = out + block.ls_2(block.mlp(block.ln_2(out)))
        features[method] = project_tokens(visual, out[:, 1:].transpose(1, 2).unflatten(2, grid))
    return features


def baseline_logits(loaded, images: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
    """MaskCLIP and ClearCLIP: the library's last-block surgeries, each read by mmseg slide inference (both in one
    pass of slide_inference, their logits side by side on the channel axis)."""
    visual = loaded.model.visual

    def predict(crops: torch.Tensor) -> torch.Tensor:
        features = baseline_features(visual, crops)
        return torch.cat([dense_logits(features[method], text, size=crops.shape[-2:]) for method in BASELINES], dim=1)

    crop = min(baseline_crop, *images.shape[-2:])
    both = slide_inference(images, predict, (crop, crop), (baseline_stride, baseline_stride))
    return dict(zip(BASELINES, both.split(len(text), dim=1)))


def guidance_grid_for(size: tuple[int, int]) -> tuple[int, int]:
    longest = max(size)
    return (round(guidance_grid * size[0] / longest), round(guidance_grid * size[1] / longest))


def trident_logits(loaded, spliced: torch.Tensor, weights: torch.Tensor, grid: tuple[int, int],
                   text: torch.Tensor) -> torch.Tensor:
    """Aggregate each image's spliced map with its (N, N) guidance weights on the guidance grid, then project and
    classify: (B, C, g_h, g_w)."""
    return dense_logits(project_tokens(loaded.model.visual, guide(spliced, weights, grid)), text)


# %% [markdown]
# ## The experiment
#
# All five methods on every test image of each benchmark, mIoU with mmseg's definition (`IoUAccumulator`). The seeds
# are the SAM stand-in's proposal draws: only Trident depends on them; the other methods are deterministic.

# %%
METHODS = ["MaskCLIP", "ClearCLIP", "ProxyCLIP-style (segment-then-splice)", "Trident without proposals", "Trident"]
BATCH = 25  # toy images per forward pass


@functools.cache
def stand_in_proposals(name: str, seed: int) -> list[np.ndarray]:
    """The SAM stand-in's proposals (K_i, H, W) for every test image of a toy benchmark, drawn with `seed`
    (computed once per notebook run: the runs and the recall precondition read the same draws)."""
    return toy_proposal_module.toy_proposals(benchmarks.scenes(name, "test")[:evaluated(sets[name])], seed=seed)


def toy_proposal_sets(name: str) -> dict[int, list[np.ndarray]]:
    """The SAM stand-in's proposals for every test image, one draw per seed."""
    return {seed: stand_in_proposals(name, seed) for seed in seeds}


def evaluated(data) -> int:
    """How many of a benchmark's images are evaluated: the first `test_images` (all when 0)."""
    return len(data) if test_images == 0 else min(test_images, len(data))


def batches(data):
    """(CLIP-normalised images (N, 3, H, W), labels (N, H, W), uint8 images) in batches of one size."""
    count = evaluated(data)
    if hasattr(data, "images"):  # a toy benchmark: all images benchmarks.IMAGE_SIZE px
        for start in range(0, count, BATCH):
            chunk = data.images[start:min(start + BATCH, count)]
            yield start, images_to_tensor(chunk), torch.from_numpy(data.labels[start:start + len(chunk)]), chunk
    else:
        for index in range(count):
            image, label = data[index]
            pixels = np.asarray(image.convert("RGB"))
            yield index, images_to_tensor(pixels[None]), torch.as_tensor(np.asarray(label))[None], pixels[None]


def evaluate(model_name: str, loaded, name: str) -> tuple[list[dict], dict]:
    data, config = sets[name], settings(name)
    words, query_class = queries_for(name, data)
    text = query_embeddings(loaded, words)
    patch = loaded.model.visual.patch_size[0]
    accumulators: dict = {}
    counts = {"empty rows": 0, "rows": 0}
    if guidance == "toy-proposals":
        proposal_sets = toy_proposal_sets(name)
    else:
        predictor = build_sam(sam_checkpoint)

    def add(method: str, logits: torch.Tensor, labels: torch.Tensor, threshold: float, seed=None) -> None:
        resized = F.interpolate(logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        accumulator = accumulators.setdefault((method, seed), IoUAccumulator(len(data.classnames), data.ignore_index))
        accumulator.update(predict_labels(resized, query_class, threshold), labels)

    with torch.no_grad(), deterministic_torch():
        for start, images, labels, pixels in batches(data):
            images = resize_short_side(images.to(session.device), config, patch)
            for method, logits in baseline_logits(loaded, images, text).items():
                add(method, logits, labels, config["clip_prob_thd"])
            parts = trident_windows(loaded, images, config)
            counts["empty rows"] += parts["empty_rows"]
            counts["rows"] += parts["rows"]
            add(METHODS[2], segment_then_splice_logits(loaded, parts, text, images, config), labels, config["prob_thd"])
            add(METHODS[3], dense_logits(project_tokens(loaded.model.visual, parts["spliced"]), text), labels,
                config["prob_thd"])
            if guidance == "toy-proposals":
                grid = guidance_grid_for(tuple(images.shape[-2:]))
                for seed in seeds:
                    weights = stand_in_weights(proposal_sets[seed][start:start + len(images)], grid, config["cos_fac"])
                    add("Trident", trident_logits(loaded, parts["spliced"], weights, grid, text), labels,
                        config["prob_thd"], seed)
            else:  # one real image per batch
                values, attention, grid = sam_guidance(predictor, pixels[0])
                weights = sam_similarity(values, attention, config["cos_fac"]).unsqueeze(0)
                add("Trident", trident_logits(loaded, parts["spliced"], weights, grid, text), labels,
                    config["prob_thd"])
    rows = []
    for (method, seed), accumulator in accumulators.items():
        scores = accumulator.compute()
        for metric in ("mIoU", "aAcc"):
            rows.append({"model": model_name, "dataset": name, "method": method, "metric": metric,
                         "seed": seed, "value": float(scores[metric])})
    return rows, counts


# Training-free, but not free on two cores: each (model, dataset) run is cached, keyed by everything it reads (the
# weights' identities, the data, every setting and the source of every function of the method).
RUN_SETTINGS = ("seeds", "short_side", "slide_crop", "slide_stride", "baseline_crop", "baseline_stride", "guidance",
                "guidance_grid", "sam_checkpoint", "beta", "gamma", "cos_fac", "logit_scale", "test_images", "templates")
METHOD_CODE = (evaluate, settings, evaluated, batches, toy_proposal_sets, stand_in_proposals, resize_short_side,
               trident_windows, proxy_window_tokens, last_block_values, proxy_weights, splice,
               segment_then_splice_logits, baseline_features, baseline_logits, guidance_grid_for, trident_logits,
               sam_similarity, stand_in_weights, guide, build_sam, sam_guidance, queries_for, query_embeddings, predict_labels)
# the library functions the runs go through (a change there is a new cache entry too)
LIBRARY_CODE = (segmentor.segment, segmentor.query_words, vit_tokens_before_last_block, last_block_attention,
                project_tokens, ssl_patch_tokens, clip_to_imagenet, dense_logits, slide_inference, window_grid,
                toy_proposal_module.toy_proposals, toy_proposal_module.scene_proposals, IoUAccumulator.update,
                IoUAccumulator.compute)


def cached_evaluate(model_name: str, loaded, name: str) -> tuple[list[dict], dict]:
    if rehearsing():
        return evaluate(model_name, loaded, name)
    spec = {"version": 2, "model": loaded.identity, "ssl": ssl.identity, "data": sets[name].fingerprint(),
            "settings": {setting: globals()[setting] for setting in RUN_SETTINGS}, "official": settings(name),
            "code": [code_fingerprint(function) for function in METHOD_CODE + LIBRARY_CODE]}
    rows_found, counts = cache.cached("trident-runs", spec, lambda: list(evaluate(model_name, loaded, name)))
    return rows_found, counts


results = {(model_name, name): cached_evaluate(model_name, loaded, name)
           for model_name, loaded in clips.items() for name in datasets}
rows = pd.DataFrame([row for found, _ in results.values() for row in found])
table = rows[rows.metric == "mIoU"].groupby(["dataset", "method"], sort=False)["value"].agg(["mean", "std", "count"])
table.round(2)

# %% [markdown]
# ## Preconditions, fixed before any result was seen
#
# Fixed on 2026-12-06 at 03:15 UTC with the claims; item 3 re-worded on 2026-12-07 at 01:31 UTC, before any result on
# the new benchmarks, because the test images became 128-px mosaics (the library's benchmarks version 2).
#
# 1. **The CLIP baselines read something.** MaskCLIP and ClearCLIP each beat the most-frequent-class floor (every
#    pixel given the commonest test label, `commonest_class_miou`) by at least 1 mIoU point on every benchmark:
#    otherwise the tiny CLIP has no dense signal to refine.
# 2. **The SAM stand-in is decent.** Its class-agnostic recall (a true object covered by some proposal at IoU ≥ 0.5)
#    is at least 0.5 on every benchmark (seed 1). SAM's own recall on VOC is far higher; the stand-in's is reported.
# 3. **The DINO proxy follows the segments.** On what the proxy attention reads, the SSL encoder's patch tokens of
#    each 96-px Trident window of each test image (8-px patches labelled by their majority pixel), the patch cosine
#    ranks same-label pairs within a window above different-label pairs with AUC ≥ 0.6 on every benchmark
#    (was: within each 64-px test image): otherwise the proxy attention has nothing to offer.

# %%
def proposal_recall(name: str, seed: int) -> float:
    """The stand-in's class-agnostic recall at IoU 0.5 against every test image's visible object masks."""
    truth = [np.stack([annotation["mask"] for annotation in mosaic.annotations()])
             for mosaic in benchmarks.scenes(name, "test")[:evaluated(sets[name])]]
    return toy_proposal_module.proposal_recall(stand_in_proposals(name, seed), truth, iou=0.5)


def ssl_affinity_auc(name: str) -> float:
    """AUC of DINO patch cosine for same- vs different-label patch pairs within each Trident window."""
    from sklearn.metrics import roc_auc_score

    data, config = sets[name], settings(name)
    patch = ssl.model.patch_size
    count = evaluated(data)
    images = torch.from_numpy(data.images[:count])
    labels = torch.from_numpy(data.labels[:count])
    windows = window_grid(tuple(images.shape[1:3]), (config["slide_crop"],) * 2, (config["slide_stride"],) * 2)
    scores, same_label = [], []
    with torch.no_grad():
        for y1, y2, x1, x2 in windows:
            crops = images_to_tensor(data.images[:count, y1:y2, x1:x2])
            tokens = ssl_patch_tokens(ssl.model, clip_to_imagenet(crops)).flatten(2).transpose(1, 2)
            cells = labels[:, y1:y2, x1:x2].unfold(1, patch, patch).unfold(2, patch, patch).flatten(3)
            majority = cells.mode(dim=-1).values.flatten(1)  # (N, cells)
            features = F.normalize(tokens, dim=-1)
            upper = torch.triu_indices(majority.shape[1], majority.shape[1], offset=1)
            similarity = (features @ features.transpose(1, 2))[:, upper[0], upper[1]]
            valid = (majority[:, upper[0]] != data.ignore_index) & (majority[:, upper[1]] != data.ignore_index)
            scores.append(similarity[valid])
            same_label.append((majority[:, upper[0]] == majority[:, upper[1]])[valid])
    return float(roc_auc_score(torch.cat(same_label).numpy(), torch.cat(scores).numpy()))


def all_labels(data) -> np.ndarray:
    """Every label of a benchmark split: the toy set's (N, H, W) array, or a real set's maps flattened together."""
    if hasattr(data, "labels"):
        return data.labels[:evaluated(data)]
    return np.concatenate([data.label_map(index).ravel() for index in range(evaluated(data))])


def miou_of(method: str, name: str) -> float:
    chosen = rows[(rows.method == method) & (rows.dataset == name) & (rows.metric == "mIoU")]
    return float(chosen.value.mean())


def stand_in_measures(name: str) -> dict:
    """The measured preconditions of a toy benchmark (stand-in recall per seed, SSL affinity AUC), cached like the
    runs, keyed by everything they read (about a third of a warm run otherwise)."""
    def compute() -> dict:
        recall = [proposal_recall(name, seed) for seed in seeds] if guidance == "toy-proposals" else []
        return {"recall": recall, "auc": ssl_affinity_auc(name)}

    if rehearsing():
        return compute()
    spec = {"ssl": ssl.identity, "data": sets[name].fingerprint(), "official": settings(name),
            "settings": {setting: globals()[setting] for setting in ("seeds", "guidance", "test_images")},
            "code": [code_fingerprint(function) for function in (
                stand_in_measures, proposal_recall, ssl_affinity_auc, stand_in_proposals, evaluated,
                toy_proposal_module.toy_proposals, toy_proposal_module.scene_proposals,
                toy_proposal_module.proposal_recall, ssl_patch_tokens, clip_to_imagenet, window_grid)]}
    return cache.cached("trident-preconditions", spec, compute)


stand_in = {name: stand_in_measures(name) for name in datasets if is_toy(name)}
recalls = {name: dict(zip(seeds, stand_in[name]["recall"])) for name in datasets if guidance == "toy-proposals"}
stand_in_proposals.cache_clear()  # 600 images' masks: not kept past this point
measured = pd.DataFrame({name: {
    "floor mIoU (commonest class)": commonest_class_miou(all_labels(sets[name]), len(sets[name].classnames),
                                                         sets[name].ignore_index),
    "MaskCLIP mIoU": miou_of("MaskCLIP", name),
    "ClearCLIP mIoU": miou_of("ClearCLIP", name),
    "stand-in proposal recall @0.5 (seed 1)": recalls[name][seeds[0]] if guidance == "toy-proposals" else np.nan,
    "stand-in proposal recall @0.5 (mean over seeds)": (np.mean(list(recalls[name].values()))
                                                        if guidance == "toy-proposals" else np.nan),
    "SSL patch-affinity AUC": stand_in[name]["auc"] if is_toy(name) else np.nan,
    "proxy rows below threshold everywhere (%)": 100 * sum(results[(m, name)][1]["empty rows"] for m in clips)
                                                 / sum(results[(m, name)][1]["rows"] for m in clips),
} for name in datasets})
PRECONDITIONS = [
    at_least("maskclip-above-floor", "MaskCLIP's lowest mIoU margin over the commonest-class floor",
             float((measured.loc["MaskCLIP mIoU"] - measured.loc["floor mIoU (commonest class)"]).min()), 1.0,
             " points"),
    at_least("clearclip-above-floor", "ClearCLIP's lowest mIoU margin over the commonest-class floor",
             float((measured.loc["ClearCLIP mIoU"] - measured.loc["floor mIoU (commonest class)"]).min()), 1.0,
             " points"),
]
if guidance == "toy-proposals":
    PRECONDITIONS += [
        at_least("proposal-recall", "the SAM stand-in's lowest recall at IoU 0.5 (seed 1)",
                 float(measured.loc["stand-in proposal recall @0.5 (seed 1)"].min()), 0.5),
        at_least("ssl-affinity", "the SSL encoder's lowest same-vs-different-label patch-affinity AUC",
                 float(measured.loc["SSL patch-affinity AUC"].min()), 0.6),
    ]
measured.round(3)

# %% [markdown]
# ## Sanity checks that can fail
#
# 1. **Splicing** windows cut from a known map at the windows Trident visits (`window_grid`) returns the map
#    (§13 item 7), and splicing each window's index gives every cell the mean index of the windows covering it
#    (a per-cell loop).
# 2. **`get_sam_sim`** rows sum to 1 (§13 item 7), and on a test image's proposals the weights equal a per-row loop:
#    uniform over the cells whose value cosine exceeds min(0.9, 1.2 × the row's mean cosine). The closed form the
#    runs use for the stand-in (`stand_in_weights`) equals this general path at the run's grid.
# 3. **Identity guidance** (every cell its own proposal) returns the spliced values unchanged.
# 4. **The proxy attention's mean** is taken over one image's windows: two images batched together give each the
#    weights it gets alone.
# 5. **The values the proxy attention mixes** are CLIP's: with identity weights, the out-projection of this
#    notebook's value tokens equals the library's MaskCLIP last-block attention (`last_block_attention`, computed
#    per head from q/k/v, CLS token included) on a real test window.
# 6. **The baselines' shared pass** (the blocks before the last run once for MaskCLIP and ClearCLIP) equals the
#    library's `vit_dense_features` for each on a real test window.

# %%
def sanity_checks() -> pd.Series:
    generator = torch.Generator().manual_seed(0)
    loaded = next(iter(clips.values()))
    patch = loaded.model.visual.patch_size[0]
    config = settings(datasets[0])
    image_px = (config["short_side"],) * 2
    windows = window_grid(image_px, (config["slide_crop"],) * 2, (config["slide_stride"],) * 2)
    coordinates = [tuple(c // patch for c in window) for window in windows]
    known = torch.randn(2, 5, config["short_side"] // patch, config["short_side"] // patch, generator=generator)
    cut = torch.stack([known[..., y1:y2, x1:x2] for y1, y2, x1, x2 in coordinates], dim=1)
    spliced = splice(cut, coordinates, known.shape[-2:])
    constant = splice(torch.ones_like(cut) * torch.arange(len(windows)).view(1, -1, 1, 1, 1).float(), coordinates,
                      known.shape[-2:])[0, 0]
    expected = torch.zeros(known.shape[-2:])
    for y in range(expected.shape[0]):
        for x in range(expected.shape[1]):
            expected[y, x] = np.mean([i for i, (y1, y2, x1, x2) in enumerate(coordinates) if y1 <= y < y2 and x1 <= x < x2])

    name = next((n for n in datasets if is_toy(n)), "toy-voc21")  # the paper profile checks on a toy scene too
    scene_masks = toy_proposal_module.toy_proposals(benchmarks.scenes(name, "test")[:1], seed=seeds[0])[0]
    grid = (8, 8)  # small enough for the loop
    values, attention = proposal_guidance(scene_masks, grid)
    weights = sam_similarity(values, attention, cos_fac)
    unit = F.normalize(values[0], dim=-1).tolist()
    loop = torch.zeros_like(weights)
    for i in range(len(unit)):
        cosines = [sum(a * b for a, b in zip(unit[i], unit[j])) for j in range(len(unit))]
        threshold = min(0.9, cos_fac * sum(cosines) / len(cosines))
        kept = [j for j, c in enumerate(cosines) if c > threshold]
        loop[i, kept] = 1.0 / len(kept)
    identity_values = torch.eye(grid[0] * grid[1]).unsqueeze(0)
    identity_weights = sam_similarity(identity_values, torch.full((1, 64, 64), 1 / 64), cos_fac)
    field = torch.randn(1, 5, *grid, generator=generator)
    # at the run's grid where the stand-in runs; the paper path (SAM's 64x64 grid) checks it at 16x16, since the
    # general path on 4096 cells with their own indicator channels is a 4096^3 product for a path it does not run
    full_grid = guidance_grid_for((config["short_side"],) * 2) if guidance == "toy-proposals" else (16, 16)
    closed_form = stand_in_weights([scene_masks], full_grid, cos_fac)[0]
    general = sam_similarity(*proposal_guidance(scene_masks, full_grid), cos_fac)

    visual = loaded.model.visual
    crop = images_to_tensor(benchmarks.load_segmentation(name, "test").images[:2, :96, :96]).to(session.device)
    block = visual.transformer.resblocks[-1]
    library_values = last_block_attention(block, vit_tokens_before_last_block(visual, crop), "maskclip")[:, 1:]
    value_path = (block.attn.out_proj(last_block_values(visual, crop)) - library_values).abs().max()
    shared = baseline_features(visual, crop[..., :baseline_crop, :baseline_crop])
    shared_gap = max(float((shared[method] - vit_dense_features(visual, crop[..., :baseline_crop, :baseline_crop],
                                                                attention=attention)).abs().max())
                     for method, attention in BASELINES.items())

    tokens = torch.randn(2 * len(windows), 9, 4, generator=generator)
    together, _ = proxy_weights(tokens, len(windows), beta, gamma)
    alone = torch.cat([proxy_weights(part, len(windows), beta, gamma)[0] for part in tokens.split(len(windows))])
    return pd.Series({
        "|splice(windows of a known map) - map|max": float((spliced - known).abs().max()),
        "|splice(window index) - per-cell mean index|max": float((constant - expected).abs().max()),
        "|sam weights row sum - 1|max": float((weights.sum(-1) - 1).abs().max()),
        "|sam weights - per-row loop|max": float((weights - loop).abs().max()),
        "|closed-form stand-in weights - general path|max": float((closed_form - general).abs().max()),
        "|identity guidance - spliced values|max": float((guide(field, identity_weights[None], grid) - field).abs().max()),
        "|proxy weights batched - per image|max": float((together - alone).abs().max()),
        "|identity proxy - library value path|max": float(value_path),
        "|shared-pass baselines - vit_dense_features|max": shared_gap,
    })


with torch.no_grad():
    sanity = sanity_checks()
assert (sanity < 1e-5).all(), sanity
sanity

# %% [markdown]
# ## mIoU per method

# %%
def plot_miou(frame: pd.DataFrame):
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8.5, 3.8))
    shown = frame[frame.metric == "mIoU"]
    sns.barplot(data=shown, x="dataset", y="value", hue="method", hue_order=METHODS, errorbar="sd", ax=ax)
    for name in datasets:
        ax.axhline(measured.loc["floor mIoU (commonest class)", name], ls=":", c="grey", lw=1)
    ax.set_ylabel("mIoU (%)")
    ax.set_xlabel("")
    ax.legend(fontsize=8, ncols=3, loc="upper center", bbox_to_anchor=(0.5, -0.12))
    ax.set_title("training-free OVSS on the toy benchmarks (dotted: commonest-class floor; "
                 f"Trident: sd over {len(seeds)} proposal draws)", fontsize=9)
    fig.tight_layout()
    return fig


plot_miou(rows)
plt.show()

# %% [markdown]
# ## Deviations from the official code
#
# - **Sizes scaled from CLIP's 224 px to the tiny ViT's 64 px** (offline): the toy images are 128 px mosaics, the
#   same 2× of CLIP's input size as VOC21's 448 px short side, so they are not resized (official: 448 on VOC21, 576
#   on Context). Trident's windows are 96 px with stride 64 (official 336 / 224: windows 1.5× CLIP's input size,
#   overlapping by a third), the baselines' windows 64 / 32 (224 / 112 on ViT-B/16), and the guidance grid is 32×32
#   (SAM: 64 tokens on the long side of a 1024 px image, 2.3× CLIP's 28-token map of a 448 px image; here 2× the
#   16×16 map).
# - **SAM is a stand-in** (offline): degraded true masks (`toy_proposals`), not SAM's encoder; its attention is
#   uniform and only the value-cosine threshold selects cells. Its recall is reported above.
# - **Empty proxy rows**: where every similarity of a row falls below β × the mean, the official softmax returns NaN;
#   here the token keeps itself (the share of such rows is reported above).
# - **Background names**: the official VOC21 and Context60 background is a list of stuff words whose maximum
#   probability is the background's (`get_cls_idx`, `postprocess_result`); toy-voc21 queries its background by the
#   world's six surface names the same way (`segmentor.query_words`). On real data the paper profile queries each
#   class by its one name: the official multi-name `cls_*.txt` files are not shipped here.
# - **Precision**: float32 on the CPU; the official code runs CLIP, DINO and SAM in float16.
# - **Not run**: `--sam_refine` (SAM prompted by the coarse masks) and PAMR, both off in the README's default config;
#   the Cityscapes split into two SAM halves.
# - **Thresholds for the baselines**: MaskCLIP and ClearCLIP use the CLIP threshold the official configs state in a
#   comment ("0.1 CLIP-B/16" on VOC21), the Trident family Trident's own.

# %% [markdown]
# ## The paper profile, the proxies and the cost
#
# - **The paper profile** (`notebooks/profiles/paper/trident.yaml`, a GPU) runs open_clip ViT-B/16 with OpenAI's
#   weights, DINO ViT-B/16 (timm's copy of the torch.hub weights) and SAM ViT-B (`sam_vit_b_01ec64.pth`) on the
#   eight mmseg benchmarks (val splits, `$CLIPBOOK_DATA`) with each official config's short side, threshold,
#   `cos_fac` and stride, beside the README table's rows below. It was not run with real weights here (no GPU, no
#   weights); the Cityscapes two-halves SAM special case and `--sam_refine` are not implemented.
# - **The rehearsal** (`notebooks/profiles/rehearsal/trident.yaml`; README, "Rehearsal") runs that paper path end to
#   end on VOC21's generated mmseg layout: CLIP ViT-B/16 and DINO ViT-B/16 at the loader's seeded random init, and,
#   since the SAM checkpoint is a released file the loader does not know, SAM ViT-B built by `segment_anything` at
#   a seeded random init in its place (`build_sam`, as maft-plus stands in for its released weights file). Its caps:
#   one image and the first of the 80 templates (ViT-B's text tower on 21 × 80 prompts would take minutes on 2 cores).
# - **Proxied offline**: CLIP ViT-B/16 by the tiny ViT CLIP (patch 8 at 64 px), DINO ViT-B/16 by the tiny DINO ViT
#   (last layer, post-norm), SAM's encoder by the labelled toy proposal stand-in (its recall above), the eight
#   benchmarks by toy-voc21 and toy-context (128-px 2×2 mosaics); all sizes scaled from 224 to 64 px. The stand-in
#   proposes the whole unlabelled area of a mosaic as one "background" segment, so on toy-context (where each tile's
#   surface is its own stuff class) its affinity joins cells of different classes: a property of the stand-in, not of
#   SAM, left as it is.
# - **Re-based** on 2026-12-07 (benchmarks version 2): the pre-registered claims, margins, seeds, datasets and
#   hyper-parameters are those fixed on 2026-12-06 at 03:15 UTC; what the new benchmarks forced (no 64→128 px
#   resize, the library's read-out with toy-voc21's background queried by surface names, the SSL-affinity
#   precondition measured on the 96-px windows) was fixed on 2026-12-07 at 01:31 UTC, before any result.
# - **Cost: one cut, made after the first results, for time alone** (the notebook must run in 2 CPU-minutes cold).
#   A profile of the first version (per stage, cold, toy-voc21) put 141 of its ~175 CPU-s in the five methods' runs
#   over the 200 test images, a third of that in the stand-in's SAM aggregation on the 32×32 grid; a second
#   benchmark doubles it. **Evaluation images: all 200 test images of each benchmark → the first 100**
#   (`test_images`), the same images for every method, baseline and precondition. Nothing else was cut: the grid,
#   the windows, the templates and the seeds are as before. What was made faster without changing a result: the
#   stand-in's `get_sam_sim` in closed form for a batch at once (`stand_in_weights`, checked above against the
#   general path), MaskCLIP and ClearCLIP read from one pass of the blocks before the last (`baseline_features`,
#   checked above against `vit_dense_features`), and the measured preconditions cached like the runs.

# %% [markdown]
# ## What the paper reports
#
# The README table (`assets/data_result.png`, the paper's Table 1), CLIP ViT-B/16 block: Trident, MaskCLIP and
# ProxyCLIP (the segment-then-splice method Trident builds on) on the eight benchmarks. ClearCLIP is not in it.

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

README = "https://github.com/YuHengsss/Trident/blob/main/assets/data_result.png"
BENCHMARKS = ["voc21", "context60", "coco_object", "voc20", "context59", "coco_stuff", "cityscapes", "ade20k"]
TABLE = {
    "Trident": [67.1, 38.6, 41.1, 84.5, 42.2, 28.3, 42.9, 21.9],
    "MaskCLIP": [43.4, 23.2, 20.6, 74.9, 26.4, 16.7, 24.9, 11.9],
    "ProxyCLIP-style (segment-then-splice)": [61.3, 35.3, 37.5, 80.3, 39.1, 26.5, 38.1, 20.2],
}
REPORTED = [row for method, values in TABLE.items() for row in reported_rows(
    [{"dataset": name, "value": value} for name, value in zip(BENCHMARKS, values)], url=README,
    source="README table (paper Table 1), CLIP ViT-B/16" + (", ProxyCLIP [ECCV'24] row" if "Proxy" in method else ""),
    model="ViT-B-16", method=method, metric="mIoU")]

# %% [markdown]
# ## Claims
#
# Each claim must hold on every benchmark (`per=("dataset",)`), the paper's own rows included; mIoU, margin 0. The
# effect's interval comes from the proposal draws (seeds), the only randomness of a training-free method here.

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = [
    Claim("beats-maskclip", "Trident beats MaskCLIP in mIoU on every benchmark", method="Trident",
          baseline="MaskCLIP", metric="mIoU", per=("dataset",), margin=0.0,
          requires=("maskclip-above-floor", "proposal-recall", "ssl-affinity"), paper_effect=23.7,
          paper_effect_source="VOC21, 67.1 vs 43.4, README table"),
    Claim("beats-clearclip", "Trident beats the ClearCLIP-style last-block surgery in mIoU on every benchmark",
          method="Trident", baseline="ClearCLIP", metric="mIoU", per=("dataset",), margin=0.0,
          requires=("clearclip-above-floor", "proposal-recall", "ssl-affinity")),
    Claim("beats-segment-then-splice", "Splice-then-segment with SAM aggregation (Trident) beats segment-then-splice "
          "with the same proxy attention (ProxyCLIP-style) on every benchmark", method="Trident",
          baseline="ProxyCLIP-style (segment-then-splice)", metric="mIoU", per=("dataset",), margin=0.0,
          requires=("clearclip-above-floor", "proposal-recall", "ssl-affinity"), paper_effect=5.8,
          paper_effect_source="VOC21, 67.1 vs ProxyCLIP 61.3, README table"),
    Claim("proposal-aggregation-helps", "Aggregating the spliced features with the (stand-in) SAM affinity beats "
          "splicing alone on every benchmark", method="Trident", baseline="Trident without proposals",
          metric="mIoU", per=("dataset",), margin=0.0, requires=("clearclip-above-floor", "proposal-recall")),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS,
                notes=f"CLIP {', '.join(clips)}; DINO proxy {ssl_encoder}; guidance {guidance}; short side "
                      f"{short_side}, windows {slide_crop}/{slide_stride}, baselines {baseline_crop}/{baseline_stride}"
                      f", grid {guidance_grid}; beta {beta}, gamma {gamma}, cos_fac {cos_fac}, logit scale "
                      f"{logit_scale}; seeds (proposal draws) {', '.join(map(str, seeds))}.")
