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
# # CLIP-SVD — Singular Value Few-shot Adaptation of Vision-Language Models
#
# Koleilat, Rivaz, Xiao — 2025 (venue unconfirmed) · [arXiv:2509.03740](https://arxiv.org/abs/2509.03740) ·
# official code [HealthX-Lab/CLIP-SVD](https://github.com/HealthX-Lab/CLIP-SVD) (MIT; read, not copied).
#
# **Claim.** Writing every weight matrix of both CLIP encoders as $W = U\,\mathrm{diag}(\sigma)\,V^\top$ and
# fine-tuning only the singular values $\sigma$ (the abstract: 0.04 % of the model's parameters) adapts CLIP to a
# few-shot task better than prompt, adapter and LoRA methods, while keeping its generalisation to unseen classes.
# The README reports, over 11 datasets and 3 seeds, few-shot accuracy 73.20 → 82.97 % for K = 1 → 16 shots
# (zero-shot CLIP 65.36 %, linear probe 45.77 → 78.39 %) and a base-to-new harmonic mean of 80.13 % (zero-shot CLIP
# 71.70 %). (With the official selection rule, every block's q, k, v, output and MLP matrices in both towers, we
# count 92,160 σ on ViT-B/16: 0.062 % of its 149.6 M parameters; the sanity check below prints the count.)
#
# **This notebook** regenerates the few-shot table (K = 1–16 shots, seeds 1–3; CLIP-SVD vs zero-shot CLIP vs a
# linear probe) and the base-to-new table (base, new and harmonic-mean accuracy vs zero-shot CLIP). The `offline`
# profile runs it on the toy world with the library's tiny CLIP, with fewer, larger training steps (checked
# against the official recipe at one configuration) and an ablation of the training crops; the `paper` profile
# runs OpenAI ViT-B/16 on the 11 CoOp datasets with the official recipe and shows the README's averages beside
# ours.

# %% tags=["parameters"]
profile = "offline"  # "offline" (toy world, CPU) or "paper" (real checkpoints and datasets, GPU)
models = [["clipbook-tiny-rn", "toyworld"]]  # [open_clip architecture, pretrained tag]
datasets = ["toy", "toy-noise"]  # few-shot datasets (clipbook.data.registry names); the first is the headline
seeds = [1, 2, 3]
shots = [1, 2, 4, 8, 16]
iterations_per_shot = 5  # training steps per shot (official n_iters: 200; reduced offline, see "Offline reduction")
learning_rate = 0.02  # AdamW learning rate of the few-shot runs (official: 5e-4; see "Offline reduction")
check_reduction = True  # also train the smallest shot count, first seed, with the official 200 steps per shot
ablate_augmentation = True  # also train the largest shot count, first seed, without the random crops
weight_decay = 0.01  # AdamW weight decay (official: 0.01)
batch_size = 32  # (official: 32)
augment_scale = [0.08, 1.0]  # RandomResizedCrop area range of the training images (official: 0.08-1)
base_to_new_datasets = ["toy"]  # datasets of the base-to-new experiment ([] skips it)
base_to_new_shots = 16  # shots per base class (official: 16)
base_to_new_epochs = {"toy": 20}  # epochs per dataset (official configs/base2new/*.yaml: 10 or 20)
base_to_new_learning_rate = 0.0004  # (official configs/base2new/*.yaml: 4e-4)
device = "auto"

# %%
import copy

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet

import clipbook
from clipbook import baselines, features, metrics, zeroshot
from clipbook.data import fewshot, registry
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.models import svd, towers
from clipbook.models.loader import load_model
from clipbook.report.figures import few_shot_figure
from clipbook.report.record import record

session = clipbook.setup(profile, device=device)
for name, value in {"datasets": datasets, "base_to_new_datasets": base_to_new_datasets, "shots": shots,
                    "seeds": seeds}.items():
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list, got {value!r}")
if not datasets or not shots or not seeds:
    raise ValueError(f"datasets, shots and seeds must not be empty, got {datasets!r}, {shots!r}, {seeds!r}")
clipbook.preflight(models, list(dict.fromkeys(datasets + base_to_new_datasets)))
for k in shots + [base_to_new_shots]:
    fewshot.validate_shots(k)
for name, value in {"iterations_per_shot": iterations_per_shot, "batch_size": batch_size}.items():
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
for name, value in {"learning_rate": learning_rate, "base_to_new_learning_rate": base_to_new_learning_rate}.items():
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
    raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
if (not isinstance(augment_scale, list) or len(augment_scale) != 2
        or not all(isinstance(s, (int, float)) for s in augment_scale)
        or not 0 < augment_scale[0] <= augment_scale[1] <= 1):
    raise ValueError(f"augment_scale must be [low, high] with 0 < low <= high <= 1, got {augment_scale!r}")
if not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
    raise ValueError(f"seeds must be a list of integers, got {seeds!r}")
if not isinstance(base_to_new_epochs, dict):
    raise TypeError(f"base_to_new_epochs must be a dict {{dataset: epochs}}, got {base_to_new_epochs!r}")
missing_epochs = [ds for ds in base_to_new_datasets if not isinstance(base_to_new_epochs.get(ds), int)
                  or base_to_new_epochs[ds] < 1]
if missing_epochs:
    raise ValueError(f"base_to_new_epochs needs a positive integer for {', '.join(missing_epochs)}; "
                     f"got {base_to_new_epochs!r}")

# %% [markdown]
# ## The method
#
# Every `nn.MultiheadAttention` is first split into explicit $q, k, v$ and output projections (the fused
# `in_proj_weight` $[W_q; W_k; W_v]$ cut into three), so that each projection is its own matrix. Then every
# linear layer $y = Wx + b$ with $W\in\mathbb{R}^{m\times n}$ is reparametrised at full rank $r = \min(m, n)$,
#
# $$W = U\,\mathrm{diag}(\sigma)\,V^\top,\qquad U\in\mathbb{R}^{m\times r},\ \sigma\in\mathbb{R}^{r},\ V\in\mathbb{R}^{n\times r},$$
#
# with $U$, $V$ and $b$ frozen at the SVD of the pretrained $W$ and only $\sigma$ trained, in both encoders. With
# $f_\sigma$ and $g_\sigma$ the image and text encoders, $t_c$ the prompt of class $c$ (one template, re-encoded
# at every step since the text encoder changes too) and $s$ the model's logit scale, the loss on a batch is
#
# $$\mathcal{L}(\sigma) = -\frac{1}{B}\sum_{i=1}^{B}\log
#   \frac{\exp\big(s\,\cos(f_\sigma(x_i), g_\sigma(t_{y_i}))\big)}{\sum_{c}\exp\big(s\,\cos(f_\sigma(x_i), g_\sigma(t_c))\big)},$$
#
# minimised with AdamW (β = (0.9, 0.999), weight decay 0.01) and a cosine schedule down to $10^{-6}$, on
# random-resized crops (area 8–100 %) and flips of the $k$-shot images. The scale $s$ is fixed, not trained:
# `main.py` uses 100 for OpenAI CLIP (its learned $e^{\log 100}$) and `logit_scale.exp()` of the checkpoint for
# other models (BiomedCLIP); we read it from the checkpoint for every model, which is 100 for OpenAI's and about
# 20 for the tiny CLIP, whose pretraining settled there. A fixed 100 on the tiny CLIP would make its training
# logits five times sharper than any it was trained with.
#
# The surgery lives in the library (`clipbook.models.svd`, reusable by later papers): it follows
# `svf_utils/PlainHeadAttention.py` (the q/k/v split) and `svf_utils/svf_torch.py::resolver` with
# `global_low_rank_ratio=1.0` (every `nn.Linear`, full rank; the SVD runs in float64 so the reparametrised model
# computes the same function). Which $\sigma$ train follows `svf_utils/utils.py::set_clip_trainable_parameters`
# with the few-shot configs (`include_train_layers: all`, q, k, v, out and both MLP matrices, both towers).
#
# **Adaptation to the tiny CLIP.** Its image tower is a ModifiedResNet, not a ViT: its convolutions are not
# linear layers and, as in the official code (which never touches convolutions), stay frozen; its linear layers
# are the attention pool's $q, k, v$ and output projections, and those are reparametrised and trained. open_clip
# runs that pool through the fused `F.multi_head_attention_forward`; like the official split of
# `nn.MultiheadAttention`, it is rewritten to call its projections as modules (`svd.SplitAttentionPool`, exact;
# it computes only the pooled token's query, the one output the pool returns). (The
# official code runs only ViT towers: its trainable-parameter filter parses a block number out of every
# $\sigma$'s name and would fail on the attention pool's, which has none.) The model is kept in eval mode while
# training: CLIP's ViT has no dropout or BatchNorm, so the official `train()` changes nothing there, but here it
# would let the ResNet's BatchNorm statistics drift, and those are not singular values. So the tiny CLIP's image
# side adapts only through the pool's four projections, after a frozen convolutional trunk: a much narrower
# adaptation than a ViT's, where the projections of every block move.
#
# **Datasets offline.** The toy world's in-domain photos, where the tiny CLIP's zero-shot accuracy is already about
# 90 %, and its noisy domain, where it is about 24 % and a linear probe on 16 shots gets far more: there, few-shot
# adaptation has room to show.

# %%
def clip_svd_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with split attention and every Linear as U·diag(σ)·Vᵀ, only σ trainable
    (train.py::run_training: PlainMultiHeadAttention.set_parameters, then svf_torch.resolver)."""
    model = copy.deepcopy(model).eval()
    svd.split_multihead_attention(model)
    svd.split_attention_pools(model)  # the ModifiedResNet's pool, so its projections run factorised too
    svd.factorize_linears(model)
    return model


def sigma_change(svd_model, adapted) -> float:
    """How far training moved the singular values: 100 · ‖σ − σ₀‖ / ‖σ₀‖ over all layers (%)."""
    before = torch.cat(svd.singular_value_parameters(svd_model)).detach()
    after = torch.cat(svd.singular_value_parameters(adapted)).detach()
    return float(100 * (after - before).norm() / before.norm())


def singular_value_logits(model, images, tokens):
    """s · cos(f_σ(x), g_σ(t_c)) with the prompts re-encoded (train.py::run_training, inner loop)."""
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(model.encode_text(tokens), dim=-1)
    return logit_scale(model) * image_features @ text_features.T


def logit_scale(model) -> float:
    """The checkpoint's learned scale, frozen (main.py: 100 = OpenAI CLIP's, logit_scale.exp() otherwise)."""
    return float(model.logit_scale.detach().exp())


def train_singular_values(svd_model, train_images, tokens, *, iterations: int, lr: float, cosine_period: int,
                          seed: int):
    """AdamW on σ over shuffled batches until `iterations` steps (train.py::run_training and
    ::run_other_training). The cosine schedule is stepped once per batch with period `cosine_period`.
    Returns the adapted copy and the loss of every step."""
    model = copy.deepcopy(svd_model)
    optimizer = torch.optim.AdamW(svd.singular_value_parameters(model), lr=lr, betas=(0.9, 0.999),
                                  weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, cosine_period, eta_min=1e-6)
    on_gpu = session.device.startswith("cuda")
    seed_everything(seed)  # the random crops draw from torch's global generator
    loader = torch.utils.data.DataLoader(train_images, batch_size=batch_size, shuffle=True, drop_last=False,
                                         generator=torch.Generator().manual_seed(seed),
                                         num_workers=8 if on_gpu else 0, pin_memory=on_gpu)
    tokens = tokens.to(session.device)
    losses = []
    with deterministic_torch():
        while len(losses) < iterations:
            for images, labels in loader:
                # official: float16 autocast on the GPU; the offline CPU run stays in float32
                with torch.autocast("cuda", dtype=torch.float16, enabled=on_gpu):
                    logits = singular_value_logits(model, images.to(session.device), tokens)
                loss = F.cross_entropy(logits.float(), labels.to(session.device))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                losses.append(loss.item())
                if len(losses) == iterations:
                    break
    return model, losses


# %% [markdown]
# ## Data
#
# The image tower is trained, so image features cannot come from the feature cache: the $k$-shot images are
# loaded once (offline: rendered once) and cropped afresh at every step. The test split is encoded by each adapted
# model. For the ModifiedResNet everything before the attention pool is frozen, so its output on the test images
# is computed once and only the (adapted) attention pool runs per model — the same computation, checked below.
# A ViT is adapted in every block, so its test images go through the whole tower for each model.

# %%
# Templates of the official configs (configs/few_shot/*.yaml and configs/base2new/*.yaml); others use the
# dataset's own first template.
FEW_SHOT_TEMPLATES = {
    "caltech101": "a photo of a {}.", "dtd": "{} texture.", "eurosat": "a centered satellite photo of {}.",
    "fgvc_aircraft": "a photo of a {}, a type of aircraft.", "food101": "a photo of a {}, a type of food.",
    "imagenet": "a photo of a {}.", "oxford_flowers": "a photo of a {}, a type of flower.",
    "oxford_pets": "a photo of a {}, a type of pet.", "stanford_cars": "a photo of a {}.",
    "sun397": "a photo of a {}.", "ucf101": "a photo of a person doing {}.",
}
BASE_TO_NEW_TEMPLATES = {
    **{name: "a photo of a {}." for name in FEW_SHOT_TEMPLATES},
    "fgvc_aircraft": "a photo of a {}, a type of aircraft.", "food101": "a photo of {}, a type of food.",
    "oxford_flowers": "a photo of a {}, a type of flower.", "oxford_pets": "a photo of a {}, a type of pet.",
}


class Transformed(torch.utils.data.Dataset):
    """(transform(image), label) for `indices` of a dataset; `preload` keeps the decoded images in memory."""

    def __init__(self, dataset, transform, indices=None, preload=False):
        self.dataset, self.transform = dataset, transform
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self.images = [dataset[i] for i in self.indices] if preload else None

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, position):
        image, label = self.images[position] if self.images is not None else self.dataset[self.indices[position]]
        return self.transform(image), label


class TestImages:
    """A test split, encoded by any adapted copy of one model."""

    def __init__(self, loaded, dataset):
        self.labels = torch.as_tensor(dataset.labels)
        on_gpu = session.device.startswith("cuda")
        self.loader = torch.utils.data.DataLoader(Transformed(dataset, loaded.preprocess), batch_size=256,
                                                  num_workers=8 if on_gpu else 0, pin_memory=on_gpu)
        self.trunk = None
        if isinstance(loaded.model.visual, ModifiedResNet):
            with torch.no_grad(), deterministic_torch():
                self.trunk = torch.cat([towers.resnet_trunk(loaded.model.visual, x.to(session.device))
                                        for x, _ in self.loader])

    def features(self, model) -> torch.Tensor:
        with torch.no_grad(), deterministic_torch():
            if self.trunk is not None:
                encoded = [model.visual.attnpool(part) for part in self.trunk.split(256)]
            else:
                encoded = [model.encode_image(x.to(session.device)) for x, _ in self.loader]
        return F.normalize(torch.cat(encoded).float(), dim=-1).cpu()


def class_text_features(model, tokens):
    with torch.no_grad(), deterministic_torch():
        return F.normalize(model.encode_text(tokens.to(session.device)).float(), dim=-1).cpu()


class Task:
    """One model on one dataset: its SVD-reparametrised copy, the data and the encoded test images."""

    def __init__(self, loaded, svd_model, dataset_name):
        self.loaded, self.svd_model = loaded, svd_model
        self.model_name, self.dataset_name = loaded.name, dataset_name
        self.train = registry.load_dataset(dataset_name, "train")
        self.val = registry.load_dataset(dataset_name, "val")
        self.test = registry.load_dataset(dataset_name, "test")
        self.num_classes = len(self.train.classnames)
        self.test_images = TestImages(loaded, self.test)
        self.augment = features.augment_transform(loaded, scale=tuple(augment_scale))

    def template(self, official: dict) -> str:
        return official.get(self.dataset_name) or self.train.templates[0]

    def tokens(self, template: str) -> torch.Tensor:
        return self.loaded.tokenizer([template.format(name.replace("_", " ")) for name in self.train.classnames])

    def split(self, k, seed):
        return fewshot.coop_few_shot_split(self.train.labels, self.val.labels, k, seed)

    def train_images(self, indices, transform=None):
        return Transformed(self.train, transform or self.augment, indices, preload=session.offline)

    def accuracy(self, model, tokens, *class_groups):
        """Test accuracy within each group of classes, on the test images of that group's classes."""
        image_features, text_features = self.test_images.features(model), class_text_features(model, tokens)
        accuracies = []
        for classes in class_groups:
            keep = torch.isin(self.test_images.labels, torch.as_tensor(classes))
            relabel = torch.full((self.num_classes,), -1, dtype=torch.long)
            relabel[classes] = torch.arange(len(classes))
            accuracies.append(metrics.accuracy(image_features[keep] @ text_features[classes].T,
                                               relabel[self.test_images.labels[keep]]))
        return accuracies[0] if len(accuracies) == 1 else accuracies


loaded_models = {(name, tag): load_model(name, tag, device=session.device) for name, tag in models}
svd_models = {key: clip_svd_model(loaded.model) for key, loaded in loaded_models.items()}
tasks = {(name, tag, ds): Task(loaded_models[(name, tag)], svd_models[(name, tag)], ds)
         for name, tag in models for ds in dict.fromkeys(datasets + base_to_new_datasets)}


# %% [markdown]
# ## Few-shot classification
#
# For each seed and shot count: CLIP-SVD trained for `iterations_per_shot` × $k$ steps (official
# `train.py::run_training`, `total_iters = n_iters * shots`), the zero-shot classifier of the same template
# (the official baseline), and CoOp's linear probe on the frozen features of the same $k$-shot images, its
# regularisation chosen on the few-shot validation split ($\min(k, 4)$ shots per class), as CoOp's `lpclip`.
#
# **Offline reduction.** The official 200 steps per shot (3200 at 16 shots; 18,600 for 5 shot counts × 3 seeds)
# would take about ten minutes of CPU per dataset here. Offline we take 40× fewer steps (`iterations_per_shot = 5`)
# with a 40× larger learning rate (0.02 instead of 5e-4) under the same cosine schedule, so that the summed step
# size $\sum_t \eta_t$, which bounds how far AdamW can move each σ, is the official one. The paper profile keeps
# the official 200 steps at 5e-4. The check after the table trains the cheapest configuration both ways.

# %%
def few_shot_rows(task):
    """Accuracy rows, one per (seed, shots, method), and the training losses of CLIP-SVD."""
    base = {"model": task.model_name, "dataset": task.dataset_name}
    template = task.template(FEW_SHOT_TEMPLATES)
    tokens, all_classes = task.tokens(template), list(range(task.num_classes))
    test_features = features.image_features(task.loaded, task.test)
    zero_shot_weights = zeroshot.zero_shot_classifier(task.loaded, task.train.classnames, [template])
    zero_shot = metrics.accuracy(zeroshot.zero_shot_logits(test_features, zero_shot_weights), task.test.labels)
    rows, losses = [], {}
    for seed in seeds:
        for k in shots:
            split = task.split(k, seed)
            iterations = iterations_per_shot * k
            adapted, losses[(task.dataset_name, seed, k)] = train_singular_values(
                task.svd_model, task.train_images(split["train"]), tokens, iterations=iterations,
                lr=learning_rate, cosine_period=iterations, seed=seed)
            # the probe sees the k-shot images once, un-augmented, as CoOp's lpclip
            probe = baselines.linear_probe(
                features.image_features(task.loaded, task.train, indices=split["train"]),
                task.train.labels[split["train"]],
                features.image_features(task.loaded, task.val, indices=split["val"]), task.val.labels[split["val"]])
            rows += [
                {**base, "seed": seed, "shots": k, "method": "CLIP-SVD",
                 "accuracy": task.accuracy(adapted, tokens, all_classes),
                 "sigma change (%)": sigma_change(task.svd_model, adapted)},
                {**base, "seed": seed, "shots": k, "method": "linear probe",
                 "accuracy": metrics.accuracy(probe.predict(test_features.numpy()), task.test.labels)},
                {**base, "seed": seed, "shots": k, "method": "zero-shot CLIP", "accuracy": zero_shot},
            ]
    return rows, losses


few_shot_results, few_shot_losses = [], {}
for name, tag in models:
    for dataset_name in datasets:
        rows, losses = few_shot_rows(tasks[(name, tag, dataset_name)])
        few_shot_results += rows
        few_shot_losses.update({(name, *key): value for key, value in losses.items()})
few_shot_results = pd.DataFrame(few_shot_results)
(few_shot_results.groupby(["model", "dataset", "method", "shots"])["accuracy"]
 .agg(["mean", "std"]).round(2).unstack("shots"))

# %% [markdown]
# **Check of the offline reduction.** The cheapest configuration (smallest shot count, first seed) trained again
# with the official recipe, 200 steps per shot at lr 5e-4, beside the reduced run of the table above; "sigma
# change" is $100\,\lVert\sigma-\sigma_0\rVert/\lVert\sigma_0\rVert$ over all layers.

# %%
OFFICIAL_ITERATIONS_PER_SHOT, OFFICIAL_LEARNING_RATE = 200, 5e-4


def reduction_check(task, k, seed):
    tokens = task.tokens(task.template(FEW_SHOT_TEMPLATES))
    iterations = OFFICIAL_ITERATIONS_PER_SHOT * k
    official, official_losses = train_singular_values(
        task.svd_model, task.train_images(task.split(k, seed)["train"]), tokens, iterations=iterations,
        lr=OFFICIAL_LEARNING_RATE, cosine_period=iterations, seed=seed)
    reduced = few_shot_results[(few_shot_results.dataset == task.dataset_name) & (few_shot_results.shots == k)
                               & (few_shot_results.seed == seed) & (few_shot_results.method == "CLIP-SVD")].iloc[0]
    reduced_losses = few_shot_losses[(task.model_name, task.dataset_name, seed, k)]
    zero_shot = few_shot_results[(few_shot_results.dataset == task.dataset_name)
                                 & (few_shot_results.method == "zero-shot CLIP")]["accuracy"].iloc[0]
    return pd.DataFrame([
        {"recipe": f"official: {iterations} steps at lr {OFFICIAL_LEARNING_RATE:g}",
         "accuracy": task.accuracy(official, tokens, list(range(task.num_classes))),
         "sigma change (%)": sigma_change(task.svd_model, official),
         "first / last training loss": f"{official_losses[0]:.2f} / {official_losses[-1]:.2f}"},
        {"recipe": f"this run: {len(reduced_losses)} steps at lr {learning_rate:g}", "accuracy": reduced["accuracy"],
         "sigma change (%)": reduced["sigma change (%)"],
         "first / last training loss": f"{reduced_losses[0]:.2f} / {reduced_losses[-1]:.2f}"},
        {"recipe": "zero-shot CLIP", "accuracy": zero_shot},
    ]).set_index("recipe").round(2)


reduction = None
if check_reduction and (iterations_per_shot, learning_rate) != (OFFICIAL_ITERATIONS_PER_SHOT, OFFICIAL_LEARNING_RATE):
    reduction = reduction_check(tasks[(*models[0], datasets[0])], min(shots), seeds[0])
reduction

# %% [markdown]
# **Ablation: how much of it is the cropping?** The official crops keep 8–100 % of the image area. On 224-px
# photos a crop usually still shows the object; on the toy world's 64-px images, whose one object is often small
# or off-centre, many crops show little or none of it, and fitting their labels can pull σ away from what
# separates the classes. At the largest shot count and the first seed, CLIP-SVD is trained again on the
# un-cropped images (flips only), everything else unchanged.

# %%
def augmentation_ablation(task, k, seed):
    tokens = task.tokens(task.template(FEW_SHOT_TEMPLATES))
    indices = task.split(k, seed)["train"]
    official = few_shot_results[(few_shot_results.dataset == task.dataset_name) & (few_shot_results.shots == k)
                                & (few_shot_results.seed == seed) & (few_shot_results.method == "CLIP-SVD")].iloc[0]
    flips_only = features.augment_transform(task.loaded, scale=(1.0, 1.0))  # area 1: the whole image, flipped or not
    adapted, _ = train_singular_values(task.svd_model, task.train_images(indices, flips_only), tokens,
                                       iterations=iterations_per_shot * k, lr=learning_rate,
                                       cosine_period=iterations_per_shot * k, seed=seed)
    zero_shot = few_shot_results[(few_shot_results.dataset == task.dataset_name)
                                 & (few_shot_results.method == "zero-shot CLIP")]["accuracy"].iloc[0]
    return pd.DataFrame([
        {"training images": f"crops {augment_scale[0]:g}-{augment_scale[1]:g} + flips (table above)",
         "accuracy": official["accuracy"], "sigma change (%)": official["sigma change (%)"]},
        {"training images": "flips only", "accuracy": task.accuracy(adapted, tokens, list(range(task.num_classes))),
         "sigma change (%)": sigma_change(task.svd_model, adapted)},
        {"training images": "zero-shot CLIP", "accuracy": zero_shot},
    ]).set_index("training images").round(2)


ablation = None
if ablate_augmentation:
    ablation = augmentation_ablation(tasks[(*models[0], datasets[0])], max(shots), seeds[0])
ablation

# %% [markdown]
# ## Base-to-new generalisation
#
# The classes are split in half, the first half being the base classes (CoOp's `subsample_classes`:
# $\lceil K/2\rceil$ base). CLIP-SVD trains on `base_to_new_shots` images per base class and is tested on the
# base classes' test images among the base classes, and on the new classes' test images among the new classes;
# the harmonic mean is $H = 2\,\text{base}\cdot\text{new}/(\text{base}+\text{new})$. The official base-to-new
# recipe (`train.py::run_other_training`) trains for a number of *epochs* (`base_to_new_epochs`, 20 on most
# datasets) at lr 4e-4, and steps its cosine schedule once per batch although its period is the number of
# epochs, so the learning rate falls and rises again every `epochs` batches instead of decaying once over
# training. We keep that schedule as it is, since it produced the reported numbers. On the toy world the
# official recipe is cheap (6 base classes × 16 shots = 3 batches per epoch), so it runs unreduced offline.

# %%
def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


def base_to_new_rows(task):
    """Base, new and harmonic-mean accuracy rows, one per (seed, method)."""
    base_classes = list(range(-(-task.num_classes // 2)))
    new_classes = list(range(len(base_classes), task.num_classes))
    tokens = task.tokens(task.template(BASE_TO_NEW_TEMPLATES))
    epochs = base_to_new_epochs[task.dataset_name]
    zero_shot = dict(zip(("base", "new"), task.accuracy(task.loaded.model, tokens, base_classes, new_classes)))
    rows = []
    for seed in seeds:
        # the official code samples k shots of every class, then keeps the base classes; those are the first
        # classes, so their labels already index the base prompts
        indices = task.split(base_to_new_shots, seed)["train"]
        indices = indices[np.isin(task.train.labels[indices], base_classes)]
        iterations = epochs * -(-len(indices) // batch_size)
        adapted, _ = train_singular_values(
            task.svd_model, task.train_images(indices), tokens[base_classes], iterations=iterations,
            lr=base_to_new_learning_rate, cosine_period=epochs, seed=seed)
        adapted_acc = dict(zip(("base", "new"), task.accuracy(adapted, tokens, base_classes, new_classes)))
        for method, acc in (("CLIP-SVD", adapted_acc), ("zero-shot CLIP", zero_shot)):
            rows.append({"model": task.model_name, "dataset": task.dataset_name, "seed": seed, "method": method,
                         **acc, "HM": harmonic_mean(acc["base"], acc["new"])})
    return rows


base_to_new_results = pd.DataFrame(
    [row for name, tag in models for ds in base_to_new_datasets for row in base_to_new_rows(tasks[(name, tag, ds)])],
    columns=["model", "dataset", "seed", "method", "base", "new", "HM"])
base_to_new_results.groupby(["model", "dataset", "method"])[["base", "new", "HM"]].agg(["mean", "std"]).round(2)

# %% [markdown]
# ## Sanity checks against independent formulations
#
# 1. **q/k/v split.** Every `nn.MultiheadAttention` (and the ModifiedResNet's attention pool) of the pretrained
#    model, fed the inputs it sees while encoding test images and class prompts, gives the same outputs as its
#    split version.
# 2. **Exact reparametrisation.** Before training, the SVD model's image and text features equal the pretrained
#    model's (float64 SVD, cast to float32).
# 3. **Parameter count.** The trainable parameters are exactly the singular values, $\sum \min(m, n)$ over the
#    wrapped layers.
# 4. **Descent.** A few AdamW steps on σ, on the un-augmented 16-shot images (no crops, so the loss is the same
#    function at every step), lower the cross-entropy.
# 5. **Cached trunk.** Test features computed from the cached ModifiedResNet trunk equal a full forward pass.

# %%
SPLITS = {torch.nn.MultiheadAttention: lambda m: svd.SplitMultiheadAttention.from_multihead_attention(m),
          AttentionPool2d: svd.SplitAttentionPool}


def attention_split_error(model, images, tokens) -> float:
    """Max |Δ| between every attention layer's outputs and its split version's, on the inputs it sees."""
    captured = []
    hooks = [module.register_forward_hook(lambda mod, args, kwargs, out: captured.append((mod, args, kwargs, out)),
                                          with_kwargs=True)
             for module in model.modules() if type(module) in SPLITS]
    with torch.no_grad():
        model.encode_image(images), model.encode_text(tokens)
        for hook in hooks:
            hook.remove()
        first = lambda out: out[0] if isinstance(out, tuple) else out  # noqa: E731  (MHA returns (output, weights))
        return max(float((first(SPLITS[type(module)](module)(*args, **kwargs)) - first(output)).abs().max())
                   for module, args, kwargs, output in captured)


def sanity_checks(task, n_images=64):
    original, reparametrised = task.loaded.model, task.svd_model
    tokens = task.tokens(task.template(FEW_SHOT_TEMPLATES)).to(session.device)
    n_images = min(n_images, len(task.test))
    images = torch.stack([task.loaded.preprocess(task.test[i][0]) for i in range(n_images)]).to(session.device)
    with torch.no_grad(), deterministic_torch():
        before = original.encode_image(images).float(), original.encode_text(tokens).float()
        after = reparametrised.encode_image(images).float(), reparametrised.encode_text(tokens).float()
    wrapped = [m for m in reparametrised.modules() if isinstance(m, svd.SingularValueLinear)]
    image_error, text_error = (after[0] - before[0]).abs().max(), (after[1] - before[1]).abs().max()
    trainable = sum(p.numel() for p in reparametrised.parameters() if p.requires_grad)

    split = task.split(16, seeds[0])["train"]
    fixed_images = Transformed(task.train, task.loaded.preprocess, split, preload=session.offline)
    all_images = torch.stack([image for image, _ in fixed_images]).to(session.device)
    labels = torch.as_tensor(task.train.labels[split]).to(session.device)

    def loss_of(model):
        with torch.no_grad(), deterministic_torch():
            return float(F.cross_entropy(singular_value_logits(model, all_images, tokens).float(), labels))

    stepped, _ = train_singular_values(reparametrised, fixed_images, tokens, iterations=10, lr=learning_rate,
                                       cosine_period=10, seed=seeds[0])
    trunk_error = 0.0
    if task.test_images.trunk is not None:
        with torch.no_grad(), deterministic_torch():
            direct = F.normalize(stepped.encode_image(images).float(), dim=-1).cpu()
        trunk_error = float((task.test_images.features(stepped)[:n_images] - direct).abs().max())
    return pd.Series(dtype=object, data={
        "attention split: max |Δ output|": attention_split_error(original, images, tokens),
        "SVD: max |Δ image feature|": float(image_error),
        "SVD: max |Δ image feature| / max |feature|": float(image_error / before[0].abs().max()),
        "SVD: max |Δ text feature| / max |feature|": float(text_error / before[1].abs().max()),
        "SVD: max |Δ normalised feature|": max(float((F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).abs().max())
                                              for a, b in zip(after, before)),
        "wrapped linear layers": len(wrapped),
        "trainable parameters": trainable,
        "Σ min(m, n) over wrapped layers": sum(min(m.in_features, m.out_features) for m in wrapped),
        "trainable share of the model (%)": 100 * trainable / sum(p.numel() for p in original.parameters()),
        "CE before 10 steps": loss_of(reparametrised),
        "CE after 10 steps": loss_of(stepped),
        "cached trunk: max |Δ normalised feature|": trunk_error,
    })


sanity = sanity_checks(tasks[(*models[0], datasets[0])])
assert sanity["attention split: max |Δ output|"] < 1e-5, sanity
assert sanity["SVD: max |Δ image feature| / max |feature|"] < 1e-5, sanity
assert sanity["SVD: max |Δ text feature| / max |feature|"] < 1e-5, sanity
assert sanity["SVD: max |Δ normalised feature|"] < 1e-5, sanity
assert sanity["trainable parameters"] == sanity["Σ min(m, n) over wrapped layers"], sanity
assert sanity["CE after 10 steps"] < sanity["CE before 10 steps"], sanity
assert sanity["cached trunk: max |Δ normalised feature|"] < 1e-5, sanity
sanity.map(lambda v: f"{v:,}" if isinstance(v, int) else f"{v:.3g}").to_frame("value")

# %% [markdown]
# ## Figures

# %%
def plot_results(few_shot, base_to_new):
    fig, extra = few_shot_figure(few_shot, shots, ["CLIP-SVD", "linear probe", "zero-shot CLIP"],
                                 extra_panels=1 if len(base_to_new) else 0)
    if len(base_to_new):
        ax = extra[0]
        long = base_to_new.melt(id_vars=["dataset", "seed", "method"], value_vars=["base", "new", "HM"],
                                var_name="classes", value_name="accuracy")
        sns.barplot(data=long, x="classes", y="accuracy", hue="method", errorbar="sd", ax=ax,
                    hue_order=["CLIP-SVD", "zero-shot CLIP"])
        ax.set_title(f"base-to-new · {', '.join(base_to_new_datasets)} · {models[0][0]}", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("top-1 accuracy (%)")
    fig.tight_layout()
    return fig

plot_results(few_shot_results, base_to_new_results)
plt.show()

# %% [markdown]
# ## Verdict
#
# The claim holds here if, on every dataset and at every shot count, CLIP-SVD's accuracy is above zero-shot
# CLIP's and above the linear probe's for every seed (each seed pairs the methods on the same $k$-shot images),
# and if its base-to-new harmonic mean is above zero-shot CLIP's for every seed.

# %%
first_model = models[0][0]
few_shot_first = few_shot_results[few_shot_results.model == first_model]
per_seed = few_shot_first.pivot_table(index=["dataset", "shots", "seed"], columns="method", values="accuracy")
few_shot_mean = per_seed.groupby(["dataset", "shots"]).mean()
beats_zero_shot = (per_seed["CLIP-SVD"] > per_seed["zero-shot CLIP"]).groupby(["dataset", "shots"]).all()
beats_probe = (per_seed["CLIP-SVD"] > per_seed["linear probe"]).groupby(["dataset", "shots"]).all()
few_shot_wins = beats_zero_shot & beats_probe
few_shot_margins = pd.DataFrame({
    "CLIP-SVD": few_shot_mean["CLIP-SVD"],
    "per seed": per_seed["CLIP-SVD"].groupby(["dataset", "shots"]).agg(lambda a: ", ".join(f"{v:.2f}" for v in a)),
    "vs zero-shot": few_shot_mean["CLIP-SVD"] - few_shot_mean["zero-shot CLIP"],
    "above zero-shot in every seed": beats_zero_shot,
    "vs linear probe": few_shot_mean["CLIP-SVD"] - few_shot_mean["linear probe"],
    "above the probe in every seed": beats_probe,
    "sigma change (%)": few_shot_first.groupby(["dataset", "shots"])["sigma change (%)"].mean(),
})
few_shot_margins.round(2)

# %%
base_to_new_first = base_to_new_results[base_to_new_results.model == first_model]
base_to_new_mean = base_to_new_first.groupby("method")[["base", "new", "HM"]].mean()
base_to_new_holds = None
if len(base_to_new_mean):
    hm = base_to_new_first.pivot_table(index=["dataset", "seed"], columns="method", values="HM")
    base_to_new_holds = bool((hm["CLIP-SVD"] > hm["zero-shot CLIP"]).all())
    display(pd.concat([base_to_new_mean, (base_to_new_mean.loc["CLIP-SVD"] - base_to_new_mean.loc["zero-shot CLIP"])
                       .to_frame("CLIP-SVD − zero-shot").T]).round(2))

# %%
# Reported: README of HealthX-Lab/CLIP-SVD, ViT-B/16, averages over the 11 natural datasets and 3 seeds.
REPORTED_FEW_SHOT = {1: 73.20, 2: 76.06, 4: 78.18, 8: 80.55, 16: 82.97}
REPORTED_LINEAR_PROBE = {1: 45.77, 2: 56.92, 4: 66.79, 8: 73.43, 16: 78.39}
REPORTED_ZERO_SHOT = 65.36
REPORTED_BASE_TO_NEW = {"base": 84.38, "new": 76.29, "HM": 80.13}
REPORTED_BASE_TO_NEW_ZERO_SHOT = {"base": 69.34, "new": 74.22, "HM": 71.70}
NATURAL_DATASETS = set(FEW_SHOT_TEMPLATES)


def suffix(dataset_name):
    return "" if dataset_name == datasets[0] else f"_{dataset_name}"


metric_values, baseline_values, reported_values = {}, {}, {}
for dataset_name in datasets:
    part = few_shot_mean.loc[dataset_name]
    metric_values.update({f"clip_svd_{k}shot{suffix(dataset_name)}": part["CLIP-SVD"][k] for k in shots})
    baseline_values[f"zero_shot{suffix(dataset_name)}"] = part["zero-shot CLIP"][shots[0]]
    baseline_values.update({f"linear_probe_{k}shot{suffix(dataset_name)}": part["linear probe"][k] for k in shots})
if len(datasets) > 1:
    average = few_shot_mean.groupby("shots").mean()
    metric_values.update({f"clip_svd_{k}shot_average": average["CLIP-SVD"][k] for k in shots})
    baseline_values["zero_shot_average"] = average["zero-shot CLIP"][shots[0]]
    baseline_values.update({f"linear_probe_{k}shot_average": average["linear probe"][k] for k in shots})
if len(base_to_new_mean):
    metric_values.update({f"base_to_new_{c.lower()}": base_to_new_mean.loc["CLIP-SVD", c]
                          for c in ("base", "new", "HM")})
    baseline_values.update({f"zero_shot_base_to_new_{c.lower()}": base_to_new_mean.loc["zero-shot CLIP", c]
                            for c in ("base", "new", "HM")})

if session.profile == "paper" and first_model.startswith("ViT-B-16"):
    if NATURAL_DATASETS <= set(datasets):
        reported_values.update({f"clip_svd_{k}shot_average": v for k, v in REPORTED_FEW_SHOT.items() if k in shots})
        reported_values.update({f"linear_probe_{k}shot_average": v
                                for k, v in REPORTED_LINEAR_PROBE.items() if k in shots})
        reported_values["zero_shot_average"] = REPORTED_ZERO_SHOT
    if NATURAL_DATASETS <= set(base_to_new_datasets):
        reported_values.update({f"base_to_new_{c.lower()}": v for c, v in REPORTED_BASE_TO_NEW.items()})
        reported_values.update({f"zero_shot_base_to_new_{c.lower()}": v
                                for c, v in REPORTED_BASE_TO_NEW_ZERO_SHOT.items()})
if reported_values:
    reproduced = {**metric_values, **baseline_values}
    display(pd.DataFrame({"reproduced": {k: reproduced[k] for k in reported_values}, "reported": reported_values})
            .assign(difference=lambda t: t.reproduced - t.reported).round(2))

# %%
claim_holds = bool(few_shot_wins.all()) and base_to_new_holds is not False
losing = [f"{ds} at {k} shot{'s' if k > 1 else ''} ({row['vs zero-shot']:+.2f} vs zero-shot, "
          f"{row['vs linear probe']:+.2f} vs the probe)"
          for (ds, k), row in few_shot_margins[~few_shot_wins].iterrows()]
notes = ("Few-shot: it beat both baselines at every shot count in every seed." if not losing
         else "Few-shot: it did not beat both baselines in every seed at " + ", ".join(losing) + ".")
if base_to_new_holds is not None:
    notes += (f" Base-to-new HM {base_to_new_mean.loc['CLIP-SVD', 'HM']:.2f} vs zero-shot "
              f"{base_to_new_mean.loc['zero-shot CLIP', 'HM']:.2f}"
              + (" (above in every seed)." if base_to_new_holds else " (not above in every seed)."))
notes += f" Few-shot: {iterations_per_shot} steps per shot at lr {learning_rate:g} (official: 200 at 5e-4)."
if base_to_new_datasets:
    notes += (" Base-to-new: " + ", ".join(f"{base_to_new_epochs[ds]} epochs on {ds}" for ds in base_to_new_datasets)
              + f" at lr {base_to_new_learning_rate:g}.")
result = record(
    metrics=metric_values, baseline=baseline_values, reported=reported_values,
    key_metric=f"clip_svd_{shots[-1]}shot", key_baseline="zero_shot",
    claim=("Fine-tuning only the singular values of both encoders beats zero-shot CLIP and a linear probe at every "
           "shot count, and raises the base-to-new harmonic mean above zero-shot CLIP's (in every seed)"),
    claim_holds=claim_holds, notes=notes,
)
# clip-svd under the paper profile: `invoke batch --profile paper --papers clip-svd`, or with plain papermill
# `papermill notebooks/clip-svd.ipynb out.ipynb -f notebooks/profiles/paper/clip-svd.yaml` (on a GPU machine).
# Datasets are read from $CLIPBOOK_DATA (default ~/data) in the CoOp layout; see clipbook/data/real.py.
