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
# # CLIP with Quality Captions: A Strong Pretraining for Vision Tasks
#
# Pavan Kumar Anasosalu Vasu, Hadi Pouransari, Fartash Faghri, Oncel Tuzel (Apple) — 2024 (venue unconfirmed) ·
# [arXiv:2405.08911](https://arxiv.org/abs/2405.08911).
#
# **A proxy: the paper has no official code and no released checkpoints** (papers.md §30: code search finds only
# citations; apple/ml-mobileclip is MobileCLIP, not this paper's dense-task pipeline). This notebook follows the
# paper's text (abstract and method summary); its dense-task decoders and hyper-parameters are unconfirmed, so the
# dense evaluation here is a frozen-feature linear probe, not the paper's fine-tuning.
#
# **Claim.** CLIP pretraining whose only change is the captions — dense, accurate ("quality", well-aligned)
# captions instead of web alt-text, same images — gives an image encoder that transfers far better to dense tasks:
# ViT-B/16 gains +12.1 % mIoU on semantic segmentation and −11.5 % RMSE on depth over MAE pretraining (abstract),
# and is more data-efficient (10×). Table cells are unconfirmed; the abstract's numbers are the reported rows.
#
# **This notebook.** The `offline` profile trains two contrastive models per seed from scratch at a reduced scale
# on the same images of the toy world's pretraining pool, the same steps, batch, initialisation and seed, differing
# only in the captions: the pool's alt-text (`tiny_clip.pretrain_captions`, what the library's tiny CLIP was
# pretrained on) or quality captions (`caption_sets.captions(..., style="detailed")`: the class, its size, colour,
# place and two visual details, and the background, in short sentences). Both image encoders are then *frozen* and
# evaluated on a dense task — a linear segmentation probe on the toy world's multi-object scenes (`toy-voc21`,
# mIoU) — and on classification (zero-shot and a linear probe on the toy suite). The `paper` profile
# (`notebooks/profiles/paper/quality-captions.yaml`) runs the closest honest proxy with public weights: zero-shot
# classification of open_clip's DataComp-XL ViT-B/16 against MobileCLIP-B trained on DataCompDR (the group's
# synthetic-caption DataComp), labelled as a proxy.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy", "toy-pets", "toy-food", "toy-scenes"]
seeds = [1, 2, 3]
pool_size = 4000
steps = 300
batch_size = 64
learning_rate = 3e-3
segmentation = "toy-voc21"
probe_resolution = 256
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Int, Str, declare
from clipbook.dense.benchmarks import OVSS_BENCHMARKS
from clipbook.toyworld import suite

SPEC = declare(
    "profile", "models", "datasets", "seeds", "learning_rate", "device",
    pool_size=Int(minimum=2, maximum=suite.PRETRAIN_SIZE,
                  help="pairs of the toy pretraining pool both arms train on (its first ones; offline)"),
    steps=Int(minimum=1, help="training steps of every run (offline; both caption arms alike)"),
    batch_size=Int(minimum=2, help="pairs per step (offline; both arms alike)"),
    segmentation=Str(choices=list(OVSS_BENCHMARKS),
                     help="the toy segmentation benchmark of the dense linear probe (offline)"),
    probe_resolution=Int(minimum=64, help="pixels the segmentation images are resized to before the frozen encoder "
                                          "(the trunk is convolutional: 256 px gives an 8x8 feature map)"),
)

# %%
import functools

import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import clipbook
from clipbook import cache, metrics, parallel
from clipbook.data import registry
from clipbook.dense.benchmarks import load_segmentation
from clipbook.determinism import SMALL_WORK_THREADS, deterministic_torch
from clipbook.evaluation.classification import ClassificationTask
from clipbook.evaluation.segmentation import IoUAccumulator
from clipbook.models.loader import load_model
from clipbook.models.tiny_clip import PRETRAIN, images_to_tensor, pretrain_captions, register_tiny_configs
from clipbook.report.rows import summarise
from clipbook.toyworld import caption_sets, world
from clipbook.toyworld import splits as toy_splits
from clipbook.training.locked import (BOTTOM_SEED, FrozenText, LockedCLIP, bottom_stages, frozen_stage_maps,
                                      random_tiny_clip)
from clipbook.training.loop import captions_key, train_clip, trained_clip

session = clipbook.start(SPEC, globals())
# offline: the two caption arms trained here from scratch (reduced scale, below); paper: released checkpoints
TRAIN_HERE = models == [["clipbook-tiny-rn", "toyworld"]]
if TRAIN_HERE and not all(name.startswith("toy") for name in datasets):
    raise ValueError(f"the runs trained here are evaluated on the toy suite (datasets like 'toy-pets'), got {datasets}")

# %% [markdown]
# ## The two caption sets, on the same images
#
# The pool is the first `pool_size` pairs of the toy pretraining split. *Alt-text* is exactly the caption the
# library's tiny CLIP was pretrained on: 85 % alt-text that names the class at its family's rate (else a synonym,
# a hypernym or nothing) with attributes and filler ("stock photo", "img 2041"), 15 % visual descriptions without
# the class name. *Quality captions* are the world's own detailed description of the same image — what the paper's
# DataCompDR-style captions aim at: dense (every visible attribute) and accurate (true of the image).
# How well each set is aligned with its image is measured below: the share of captions that name the image's
# class, its colour and its background.

# %%
POOL_SCENES = toy_splits.scenes(PRETRAIN["split"])[:pool_size]
CAPTIONS = {"alt-text": pretrain_captions(PRETRAIN)[:pool_size],
            "quality captions": caption_sets.captions(POOL_SCENES, "detailed", per_image=1, seed=0)[0]}
ARMS = list(CAPTIONS)


def mentions(texts: list[str], words_of) -> float:
    return 100 * float(np.mean([words_of(scene) in text.lower() for scene, text in zip(POOL_SCENES, texts)]))


alignment = pd.DataFrame({arm: {
    "names the class (%)": mentions(texts, lambda s: s.classname),
    "names the colour (%)": mentions(texts, lambda s: s.colour),
    "names the background (%)": mentions(texts, lambda s: world.BACKGROUNDS[s.background]["phrase"].split(" ", 1)[1]),
    "words per caption": float(np.mean([len(t.split()) for t in texts])),
    "example": texts[0]} for arm, texts in CAPTIONS.items()})
alignment

# %% [markdown]
# ## Training: alt-text against quality captions, from scratch, at a reduced scale
#
# Every run uses the library's loop (`clipbook.training.loop.train_clip`: open_clip's `ClipLoss`, AdamW with weight
# decay 0.1 on weights, linear warm-up over a tenth of the steps then cosine decay, learning rate = the tiny CLIP's
# own pretraining rate). The two arms of a seed start from the same initialisation and see the same images in the
# same batches; the only difference is the caption of each pair — the paper's single intervention.
#
# **Reduced scale (a deviation, the same for both arms).** As in the `cloob` notebook, training the tiny CLIP's
# two towers from pixels for six runs does not fit the budget (its own pretraining takes 875 steps of 128 before
# zero-shot transfer appears), so:
# - *Image tower:* the tiny CLIP's ResNet at random initialisation, its stem and first three stages frozen as
#   random features (one fixed seed, cached), its last stage (`layer4`) and attention pool trained from scratch.
#   The dense probe reads the trained `layer4` map, so what the captions taught the encoder is what it measures.
# - *Text tower:* the library's tiny language model (`clipbook.models.tiny_lm`, masked-token pretraining on toy
#   captions, never shown an image), frozen, with a linear projection trained from scratch.

# %%
# The locked towers are the library's (`clipbook.training.locked`, shared with cloob and laclip): the random tiny
# CLIP's stem..layer3 frozen at one draw, their maps cached once (`frozen_stage_maps`), and the trained
# `LockedCLIP` over the frozen LM's features (`FrozenText`).
register_tiny_configs()
frozen_maps = frozen_stage_maps


if TRAIN_HERE:
    from clipbook.models import tiny_lm

    LM, _ = tiny_lm.load_tiny_lm()
    LM_KEY = tiny_lm.checkpoint_key()
    TEXT = FrozenText(LM)
    SPLIT_ID = toy_splits.fingerprint(PRETRAIN["split"])
    POOL_MAPS = frozen_maps(lambda idx: world.render_batch([POOL_SCENES[i] for i in idx], world.IMAGE_SIZE)[0],
                            pool_size, {"split": SPLIT_ID, "first": pool_size})
    # every caption through the frozen LM once, here, in one call (`FrozenText` keeps each text's features): the LM
    # pads a batch to its longest text, so a caption's last bits depend on the texts it was encoded with; this way
    # every run reads the same features, whichever process trains it and in whatever order
    TEXT([caption for arm in ARMS for caption in CAPTIONS[arm]])
    TEXT_DIM = TEXT(CAPTIONS[ARMS[0]][:1]).shape[1]


def train_arm(arm: str, seed: int):
    recipe = {"steps": steps, "batch_size": batch_size, "lr": learning_rate, "warmup_steps": max(1, steps // 10),
              "seed": seed}
    data = {"split": SPLIT_ID, "pool": pool_size, "captions": captions_key(CAPTIONS[arm]),
            "image": "tiny-rn stem..layer3 frozen at init seed 0", "text": f"tiny LM {LM_KEY} frozen",
            "text features": "every caption encoded in one call before training"}
    return trained_clip("quality-captions", lambda: LockedCLIP(seed, TEXT_DIM), data,
                        lambda model: train_clip(model, POOL_MAPS, CAPTIONS[arm], TEXT, recipe,
                                                 desc=f"{arm}, seed {seed}"),
                        recipe=recipe, plugins={"model": LockedCLIP},
                        start={"scratch": "locked tiny CLIP", "init_seed": seed})


JOBS = [(arm, seed) for seed in seeds for arm in ARMS] if TRAIN_HERE else []
# the runs are independent single-thread trainings: on a CPU they train side by side in forked processes, which
# store each checkpoint (`trained_clip`'s cache); this process then reads them back
parallel.map_jobs(lambda job: train_arm(*job) and None, JOBS, device=session.device)
runs = {job: train_arm(*job) for job in JOBS}
losses = pd.DataFrame([{"captions": arm, "seed": seed, "seen pairs": log["seen_pairs"],
                        "loss, first 10 steps": np.mean(log["loss"][:10]),
                        "loss, last 10 steps": np.mean(log["loss"][-10:])}
                       for (arm, seed), (_, log) in runs.items()])
losses.round(3)

# %% [markdown]
# ## Dense task: a linear segmentation probe on frozen features
#
# The paper fine-tunes the pretrained encoder with a dense decoder (its recipe is unconfirmed); here the encoder is
# frozen and only a linear head is trained, the standard frozen-feature protocol for comparing dense features
# (a 1×1 convolution on the last feature map, logits resized bilinearly to the label map, pixel-wise cross-entropy
# ignoring label 255). Scenes of `segmentation` (toy-voc21: 1–3 of the 20 generic objects on photo backgrounds,
# "background" a class) are resized to `probe_resolution` px — the trunk is convolutional, so 256 px gives an 8×8
# map of `layer4` (MaskCLIP's reading of a ResNet CLIP at a larger input, `clipbook.dense.features`). The head is
# trained on the benchmark's `val` split and scored on its `test` split with mmseg's dataset-level mIoU
# (`clipbook.evaluation.segmentation`). Features are standardised with the val split's per-channel statistics
# (the BatchNorm of a linear segmentation head at eval time); the head trains full-batch with Adam, 300 steps at
# 1e-2, the same for every encoder. The untrained `layer4` (the shared initialisation) is scored too, for scale.

# %%
PROBE = {"steps": 300, "lr": 1e-2, "label_stride": 4, "seed": 0}


@functools.cache
def segmentation_split(split: str):
    data = load_segmentation(segmentation, split)
    def resized(idx):
        images = torch.from_numpy(data.images[list(idx)]).permute(0, 3, 1, 2).float()
        images = F.interpolate(images, size=(probe_resolution, probe_resolution), mode="bilinear", align_corners=False)
        return images.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()
    maps = frozen_maps(resized, len(data.images), {"benchmark": segmentation, "split": split,
                                                    "resolution": probe_resolution})
    return maps, torch.from_numpy(data.labels), len(data.classnames)


def dense_features(model: LockedCLIP, maps: torch.Tensor) -> torch.Tensor:
    # one thread wherever it runs (a forked evaluation is capped at one): the same floats in every process
    with torch.no_grad(), deterministic_torch(SMALL_WORK_THREADS):
        return model.layer4(maps)


def linear_probe_segmentation(train_x, train_y, test_x, num_classes: int) -> torch.Tensor:
    """Train a 1x1-conv head on (N, C, h, w) features against (N, H, W) labels; predicted (N, H, W) test labels.

    Training compares the resized logits with every `PROBE["label_stride"]`-th label pixel (a 16x16 grid of the
    64x64 maps). A 1x1 convolution and bilinear resizing are both linear and commute (the resize weights sum to
    1, so the bias passes through), so the head runs on the h x w feature positions and only its logits are
    resized, to the grid alone: a fixed matrix, bilinear resizing applied to each position's indicator. The
    test prediction is scored at full resolution."""
    mean, std = train_x.mean((0, 2, 3), keepdim=True), train_x.std((0, 2, 3), keepdim=True) + 1e-6
    size, stride = tuple(train_y.shape[-2:]), PROBE["label_stride"]
    grid = slice(stride // 2, None, stride)
    n, channels, h, w = train_x.shape
    indicators = torch.eye(h * w).reshape(h * w, 1, h, w)
    to_grid = F.interpolate(indicators, size=size, mode="bilinear", align_corners=False)[:, 0, grid, grid]
    to_grid = to_grid.reshape(h * w, -1)  # (h*w positions, grid pixels)
    x = ((train_x - mean) / std).permute(0, 2, 3, 1).reshape(n, h * w, channels)
    target = train_y[:, grid, grid].reshape(n, -1)
    with deterministic_torch(SMALL_WORK_THREADS):
        torch.manual_seed(PROBE["seed"])
        head = nn.Conv2d(channels, num_classes, 1)
        optimizer = torch.optim.Adam(head.parameters(), lr=PROBE["lr"])
        for _ in range(PROBE["steps"]):
            logits = torch.einsum("npk,pg->nkg", F.linear(x, head.weight.flatten(1), head.bias), to_grid)
            loss = F.cross_entropy(logits, target, ignore_index=255)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            logits = F.interpolate(head((test_x - mean) / std), size=size, mode="bilinear", align_corners=False)
    return logits.argmax(1)


def dense_rows(model: LockedCLIP, method: str, seed) -> tuple[list[dict], torch.Tensor]:
    (val_maps, val_labels, num_classes), (test_maps, test_labels, _) = (segmentation_split("val"),
                                                                        segmentation_split("test"))
    prediction = linear_probe_segmentation(dense_features(model, val_maps), val_labels,
                                           dense_features(model, test_maps), num_classes)
    accumulator = IoUAccumulator(num_classes)
    accumulator.update(prediction, test_labels)
    scores = accumulator.compute()
    base = {"model": MODEL_LABEL, "dataset": segmentation, "method": method, "seed": seed}
    # plain floats: the rows are cached, and torch's weights-only loading refuses numpy scalars
    return [{**base, "metric": "mIoU (linear probe)", "value": float(scores["mIoU"])},
            {**base, "metric": "pixel accuracy (linear probe)", "value": float(scores["aAcc"])}], prediction


MODEL_LABEL = "locked tiny CLIP (from scratch)"

# %% [markdown]
# ## Classification: zero-shot and a linear probe on the toy suite
#
# Zero-shot: each class's prompt ensemble (the dataset's templates) through the text side, cosine with the image
# embedding. Linear probe: multinomial logistic regression on the frozen image embeddings of each dataset's train
# split (`clipbook.metrics`-style accuracy on test; sklearn's `LogisticRegression`, C = 1, the same for both arms).

# %%
@functools.cache
def classification_split(name: str, split: str):
    data = registry.load_dataset(name, split)
    maps = frozen_maps(data.render, len(data), {"dataset": name, "split": split, "fingerprint": data.fingerprint()})
    return data, maps


def class_prompts(name: str) -> list[list[str]]:
    """Each class's prompts: the dataset's templates filled with its name."""
    test, _ = classification_split(name, "test")
    return [[template.format(c) for template in test.templates] for c in test.classnames]


def classification_rows(model: LockedCLIP, method: str, seed) -> list[dict]:
    from sklearn.linear_model import LogisticRegression

    base = {"model": MODEL_LABEL, "method": method, "seed": seed}
    out = []
    # one thread wherever it runs (a forked evaluation is capped at one): the same floats in every process
    with torch.no_grad(), deterministic_torch(SMALL_WORK_THREADS):
        for name in datasets:
            test, test_maps = classification_split(name, "test")
            train, train_maps = classification_split(name, "train")
            prompts = class_prompts(name)
            weights = torch.stack([F.normalize(F.normalize(model.encode_text(TEXT(p)), dim=-1).mean(0), dim=0)
                                   for p in prompts])
            test_x = F.normalize(model.encode_image(test_maps), dim=-1)
            train_x = F.normalize(model.encode_image(train_maps), dim=-1)
            probe = LogisticRegression(C=1.0, max_iter=1000).fit(train_x.numpy(), np.asarray(train.labels))
            probe_accuracy = 100 * float(np.mean(probe.predict(test_x.numpy()) == np.asarray(test.labels)))
            out += [{**base, "dataset": name, "metric": "zero-shot accuracy",
                     "value": metrics.accuracy(test_x @ weights.T, test.labels)},
                    {**base, "dataset": name, "metric": "linear-probe accuracy", "value": probe_accuracy},
                    {**base, "dataset": name, "metric": "chance", "value": 100.0 / len(test.classnames)}]
    return out


# %% [markdown]
# ## The experiment

# %%
from clipbook.training.loop import code_fingerprint, weights_key


def evaluated_rows(model: LockedCLIP, method: str, seed) -> list[dict]:
    """Dense and classification rows of one encoder, cached by its weights and the evaluation's settings."""
    spec = {"weights": weights_key(model), "method": method, "seed": seed, "segmentation": segmentation,
            "resolution": probe_resolution, "probe": PROBE, "datasets": datasets, "lm": LM_KEY,
            "code": [code_fingerprint(f) for f in (linear_probe_segmentation, dense_features, dense_rows, class_prompts,
                                                   classification_rows)]}
    return cache.cached("quality-captions-eval", spec,
                        lambda: dense_rows(model, method, seed)[0] + (classification_rows(model, method, seed)
                                                                      if method in ARMS else []),
                        name="quality-captions-rows")


if TRAIN_HERE:
    for split in ("val", "test"):  # the frozen maps, made here once before the evaluations fork
        segmentation_split(split)
    for name in datasets:
        classification_split(name, "train"), classification_split(name, "test")
    # the class prompts through the frozen LM once, in one call, for the reason given where the captions are
    TEXT([prompt for name in datasets for prompts in class_prompts(name) for prompt in prompts])
    encoders = [(LockedCLIP(seeds[0], TEXT_DIM), "untrained layer4 (init)", None)] + [
        (model, arm, seed) for (arm, seed), (model, _) in runs.items()]
    # each evaluation is single-thread small work: side by side in forked processes, in this order
    rows = pd.DataFrame([row for rows_ in parallel.map_jobs(lambda job: evaluated_rows(*job), encoders,
                                                            device=session.device) for row in rows_])
else:
    rows = pd.DataFrame()
summarise(rows[rows["metric"] != "chance"]).round(2) if len(rows) else rows

# %% [markdown]
# Quality captions minus alt-text, per dataset and metric (mean over seeds).

# %%
if TRAIN_HERE:
    paired = rows[rows["method"].isin(ARMS)].pivot_table(index=["dataset", "metric", "seed"], columns="method",
                                                          values="value")
    difference = (paired["quality captions"] - paired["alt-text"]).groupby(["dataset", "metric"]).mean()
    difference.unstack("metric").drop(columns="chance", errors="ignore").round(2)

# %% [markdown]
# ## Paper profile: the closest public proxy
#
# No checkpoint of the paper exists. The paper profile evaluates, zero-shot on the real datasets, open_clip's
# ViT-B/16 trained on DataComp-XL alt-text against MobileCLIP-B trained on DataCompDR (the same group's DataComp
# images with synthetic captions) — a **proxy**: the architectures, schedules and data sizes differ too, and it
# measures classification, not the paper's dense fine-tuning (no segmentation benchmark is in the data registry).

# %%
PROXY_METHODS = {"datacompdr": "quality captions (proxy: MobileCLIP on DataCompDR)",
                 "datacomp_xl_s13b_b90k": "alt-text (proxy: DataComp-XL)"}


def released_rows(name: str, tag: str) -> list[dict]:
    loaded = load_model(name, tag, device=session.device)
    return [{"model": name, "dataset": dataset, "method": PROXY_METHODS.get(tag, tag), "metric": "zero-shot accuracy",
             "value": ClassificationTask(loaded, dataset).zero_shot_accuracy()} for dataset in datasets]


if not TRAIN_HERE:
    rows = pd.DataFrame([row for name, tag in models for row in released_rows(name, tag)])
    display_rows = summarise(rows).round(2)

# %% [markdown]
# ## Sanity checks
#
# 1. **The probe's shortcut.** The head trains on features resized to the label grid, which equals resizing its
#    logits only if a 1×1 convolution and bilinear resizing commute (both linear, resize weights summing to 1).
#    Checked on the val maps with a random head: the two orders must agree to float precision.
# 2. **The locked encoder is the tiny CLIP's ResNet.** The frozen stages, then the trained `layer4` and attention
#    pool, must equal open_clip's own `ModifiedResNet.forward` of a tower holding those same weights, on a
#    pool batch — it fails if a stage is skipped or reordered, or a BatchNorm runs in training mode.

# %%
if TRAIN_HERE:
    val_maps, _, num_classes = segmentation_split("val")
    features = dense_features(runs[(ARMS[1], seeds[0])][0], val_maps[:16])
    torch.manual_seed(0)
    head = nn.Conv2d(features.shape[1], num_classes, 1)
    with torch.no_grad():
        one = F.interpolate(head(features), size=(64, 64), mode="bilinear", align_corners=False)
        other = head(F.interpolate(features, size=(64, 64), mode="bilinear", align_corners=False))
    commute_gap = float((one - other).abs().max() / one.abs().max())
    assert commute_gap < 1e-5, commute_gap

    model = runs[(ARMS[1], seeds[0])][0]
    tower = random_tiny_clip(BOTTOM_SEED).visual.eval()
    tower.layer4.load_state_dict(model.layer4.state_dict())
    tower.attnpool.load_state_dict(model.attnpool.state_dict())
    pixels = images_to_tensor(world.render_batch(POOL_SCENES[:16], world.IMAGE_SIZE)[0])
    with torch.no_grad():
        tower_gap = float((tower(pixels) - model.encode_image(bottom_stages(tower, pixels))).abs().max())
    assert tower_gap < 1e-4, tower_gap
    sanity = {"conv/resize commute, relative gap < 1e-5": commute_gap < 1e-5,
              "locked encoder = open_clip ModifiedResNet, max gap < 1e-4": tower_gap < 1e-4}
else:
    sanity = {}
sanity

# %% [markdown]
# ## What the paper reports
#
# The abstract's numbers only (the tables are unconfirmed): ViT-B/16 CLIP-pretrained on well-aligned pairs gains
# +12.1 % mIoU on semantic segmentation and −11.5 % RMSE on depth over MAE pretraining. They are effects against
# MAE, not against alt-text, so they stand beside the claims as the paper's effect sizes, not as rows.

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# Offline: quality captions beat alt-text (same images, steps, seed) on the dense probe, and on zero-shot and
# linear-probe classification (mean over the suite, Student-t interval over seeds). Preconditions: every run's loss
# fell and both arms saw the same pairs; and the alt-text baseline learned what each claim measures: its zero-shot
# and its linear-probe accuracy at least twice chance's on the suite, and its probe mIoU above the untrained
# `layer4`'s (worst seed each). (The first run required zero-shot 2 points above chance for every claim; the lead's
# review set the bar per claim after seeing the results: each claim needs the baseline to have learned the ability it
# measures, at the 2x-chance level cloob and metaclip use.) The comparison with MAE, the depth claim and the 10× data efficiency are *not tested*: the toy
# world has no MAE-pretrained encoder of the same architecture (and round 1 found the tiny self-supervised ViT's
# features carry almost no class information), no depth maps, and no data-scale sweep fits the budget. Paper
# profile: the DataCompDR proxy against DataComp-XL at zero-shot, labelled as a proxy.

# %% tags=["claims"]
from clipbook.claims import Claim, at_least, fact

TRAINED = ("loss-fell", "equal-seen-pairs")
CLAIMS = [
    Claim("quality-helps-dense", "Quality captions instead of alt-text give frozen image features that segment better "
          "(linear probe mIoU)", method="quality captions", baseline="alt-text", metric="mIoU (linear probe)",
          margin=0.0, requires=TRAINED + ("baseline-segments",), paper_effect=12.1,
          paper_effect_source="abstract: +12.1 mIoU over MAE (not over alt-text; no alt-text number is confirmed)"),
    Claim("quality-helps-zero-shot", "Quality captions instead of alt-text improve zero-shot classification",
          method="quality captions", baseline="alt-text", metric="zero-shot accuracy", margin=0.0,
          requires=TRAINED + ("baseline-zero-shot",)),
    Claim("quality-helps-linear-probe", "Quality captions instead of alt-text improve linear-probe classification",
          method="quality captions", baseline="alt-text", metric="linear-probe accuracy", margin=0.0,
          requires=TRAINED + ("baseline-probe",)),
    Claim("beats-mae-dense", "CLIP pretrained on quality captions beats MAE pretraining on segmentation",
          method="quality captions", baseline="MAE", metric="mIoU", margin=0.0, requires=("mae-encoder",),
          paper_effect=12.1, paper_effect_source="abstract (ViT-B/16)"),
    Claim("proxy-datacompdr-zero-shot", "Proxy: MobileCLIP-B on DataCompDR's quality captions beats ViT-B/16 on "
          "DataComp-XL alt-text at zero-shot (architectures and data sizes differ too)",
          # the methods PROXY_METHODS names the two tags' rows (the claims cell reads parameters only)
          method="quality captions (proxy: MobileCLIP on DataCompDR)", baseline="alt-text (proxy: DataComp-XL)",
          metric="zero-shot accuracy", margin=0.0, requires=("released-proxies",)),
]

# %%
MAE = fact("mae-encoder", "an MAE-pretrained encoder of the same architecture on the same images", False,
           "the toy world has none (its self-supervised tiny ViT is DINO-style and carries almost no class "
           "information); the paper's MAE numbers need its ViT-B/16 setup")
if TRAIN_HERE:
    drops = [np.mean(log["loss"][:10]) - np.mean(log["loss"][-10:]) for _, log in runs.values()]
    chance = rows[rows["metric"] == "chance"].groupby("dataset")["value"].first()

    def baseline_over_chance(metric: str) -> float:
        """The alt-text arm's suite-mean accuracy over chance's, in its worst seed."""
        values = rows[(rows["metric"] == metric) & (rows["method"] == "alt-text")]
        return float(min(values[values["seed"] == seed]["value"].mean() / chance.mean() for seed in seeds))

    miou = rows[rows["metric"] == "mIoU (linear probe)"]
    baseline_miou_gain = float(min(miou[(miou["method"] == "alt-text") & (miou["seed"] == seed)]["value"].mean()
                                   for seed in seeds) - miou[miou["method"] == "untrained layer4 (init)"]["value"].mean())
    seen = {log["seen_pairs"] for _, log in runs.values()}
    PRECONDITIONS = [
        at_least("loss-fell", "smallest drop of the loss over arms and seeds (first 10 minus last 10 steps)",
                 float(min(drops)), 1e-6),
        at_least("baseline-zero-shot", "alt-text zero-shot accuracy over chance's, suite mean (worst seed)",
                 baseline_over_chance("zero-shot accuracy"), 2.0, "x"),
        at_least("baseline-probe", "alt-text linear-probe accuracy over chance's, suite mean (worst seed)",
                 baseline_over_chance("linear-probe accuracy"), 2.0, "x"),
        at_least("baseline-segments", "alt-text probe mIoU above the untrained layer4's (worst seed)",
                 baseline_miou_gain, 1e-6, " points"),
        fact("equal-seen-pairs", "both arms saw the same number of pairs", len(seen) == 1,
             f"seen pairs per run: {sorted(seen)}"),
        fact("released-proxies", "the proxy checkpoints are evaluated under the paper profile", False,
             "offline runs train the toy arms; the released proxies run under the paper profile"),
        MAE,
    ]
else:
    PRECONDITIONS = [fact(id, "measured only when the caption arms are trained here (offline)", False,
                          "the paper profile evaluates released proxy checkpoints; the toy training runs offline")
                     for id in TRAINED + ("baseline-zero-shot", "baseline-probe", "baseline-segments")] + [fact("released-proxies", "the proxy checkpoints are evaluated", True,
                                                f"{models}"), MAE]

# %% [markdown]
# ## Closing note
#
# **Verdicts** are the claims' sentences below, generated from the rows (offline: three seeds, each its own
# initialisation and batch order, shared by both arms).
#
# **Paper profile** (`notebooks/profiles/paper/quality-captions.yaml`, a GPU): zero-shot ImageNet of
# ('MobileCLIP-B', 'datacompdr') against ('ViT-B-16', 'datacomp_xl_s13b_b90k'), a proxy; the paper's dense
# fine-tuning (ADE20k / NYUv2, decoders unconfirmed) is not run.
#
# **Proxies and reduced scale.** No official code: the method is the paper's text (only the captions change).
# Training is a reduced, locked version of CLIP pretraining (frozen random ResNet stem..layer3, trained layer4 and
# attention pool; frozen tiny LM with a trained projection), 300 steps of 64 pairs on a 4,000-pair pool; the dense
# evaluation is a frozen linear probe, not the paper's fine-tuning.

# %%
clipbook.record(session, rows=rows[rows["metric"] != "chance"] if len(rows) else rows, claims=CLAIMS,
                reported=REPORTED, preconditions=PRECONDITIONS)
