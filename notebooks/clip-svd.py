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
# profile runs it on the toy world with the library's tiny CLIP and a shortened schedule (the official one scaled
# by a stated rule, see "Offline recipe"; its training loss is measured and is a precondition of every claim),
# with an ablation of the training crops; the `paper` profile runs OpenAI ViT-B/16 on the 11 CoOp datasets with the
# official recipe and shows the README's 11-dataset averages beside ours.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy", "toy-aircraft", "toy-satellite"]
seeds = [1, 2, 3]
shots = [1, 2, 4, 8, 16]
iterations_per_shot = 1
learning_rate = 0.1
check_reduction = False
ablate_augmentation = True
weight_decay = 0.01
batch_size = 32
augment_scale = [0.08, 1.0]
base_to_new_datasets = ["toy"]
base_to_new_shots = 16
base_to_new_epochs = {"toy": 4}
base_to_new_learning_rate = 0.002
sanity_images = 64
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Bool, Dataset, Float, Int, ListOf, Mapping, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "shots", "learning_rate", "device",
    iterations_per_shot=Int(minimum=1, help="few-shot training steps per shot (official n_iters: 200; offline 1 "
                                            "with learning_rate 0.1, the official recipe scaled, see 'Offline recipe')"),
    check_reduction=Bool(help="also train the smallest shot count, first seed, with the official 200 steps per shot "
                              "at lr 5e-4 (skipped when the run already uses them; offline it costs about 7 s "
                              "of the 45 s budget, so it is off by default)"),
    ablate_augmentation=Bool(help="also train the largest shot count, first seed, on un-cropped images"),
    weight_decay=Float(minimum=0, help="AdamW weight decay (official: 0.01)"),
    batch_size=Int(minimum=1, help="training batch size (official: 32)"),
    augment_scale=ListOf(Float(minimum=0, maximum=1, exclusive_minimum=True), length=2,
                         help="RandomResizedCrop area range [low, high] of the training images (official: 0.08-1)"),
    base_to_new_datasets=ListOf(Dataset(), min_length=0, help="datasets of the base-to-new experiment ([] skips it)"),
    base_to_new_shots=Int(minimum=1, help="shots per base class (official: 16)"),
    base_to_new_epochs=Mapping(help="{dataset: epochs} for every base-to-new dataset (official configs/base2new/"
                                    "*.yaml: 10 or 20; offline 4 on toy, the official 20 scaled, see 'Offline recipe')"),
    base_to_new_learning_rate=Float(minimum=0, exclusive_minimum=True,
                                    help="base-to-new AdamW learning rate (official: 4e-4; offline 2e-3 with 4 epochs)"),
    sanity_images=Int(minimum=1, help="test images the sanity checks push through both models (each is three "
                                      "full forward passes: about 1 s apiece through ViT-B/16 on one CPU core)"),
)

# %%
import copy
import math
from contextlib import contextmanager
from functools import partial
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet
from open_clip.transformer import text_global_pool
from threadpoolctl import threadpool_limits

import clipbook
# (determinism as a module: its int SMALL_WORK_THREADS imported by name would read as a stray parameter)
from clipbook import baselines, claims, determinism, features, metrics, parallel
from clipbook.batch.parameters import ParameterError
from clipbook.cache import cached
from clipbook.determinism import deterministic_torch, seed_everything
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models import svd, towers
from clipbook.models.loader import load_model
from clipbook.report.figures import few_shot_figure
from clipbook.report.rows import compare_with_reported, summarise
from clipbook.training.loop import code_fingerprint

session = clipbook.start(SPEC, globals())
clipbook.preflight(models, base_to_new_datasets)
if any(not isinstance(base_to_new_epochs.get(name), int) or base_to_new_epochs[name] < 1
       for name in base_to_new_datasets):
    raise ParameterError(f"parameter 'base_to_new_epochs' needs a positive integer for every base-to-new dataset "
                         f"{base_to_new_datasets}; got {base_to_new_epochs!r}")

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
# **Datasets offline.** A fixed subset of the toy suite, chosen for time before any method ran (README, "The toy
# suite"): generic objects (`toy`, modelled on Caltech101), fine-grained aircraft variants (`toy-aircraft`,
# FGVC-Aircraft) and land use from above (`toy-satellite`, EuroSAT), a style rare in the tiny CLIP's pretraining.


# %%
@contextmanager
def small_work():
    """Deterministic torch and BLAS on one CPU thread: this notebook's many small steps, probes and encodings ran
    up to 10x slower on two threads of the shared 2-core machine (clipbook.determinism.SMALL_WORK_THREADS).
    The GPU ignores it."""
    with threadpool_limits(determinism.SMALL_WORK_THREADS), deterministic_torch(determinism.SMALL_WORK_THREADS):
        yield


def clip_svd_model(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of `model` with split attention and every Linear as U·diag(σ)·Vᵀ, only σ trainable
    (train.py::run_training: PlainMultiHeadAttention.set_parameters, then svf_torch.resolver)."""
    model = copy.deepcopy(model).eval()
    svd.split_multihead_attention(model)
    svd.split_attention_pools(model)  # the ModifiedResNet's pool, so its projections run factorised too
    with small_work():
        svd.factorize_linears(model)
    return model


def singular_values(model) -> list[torch.Tensor]:
    return [sigma.detach().clone() for sigma in svd.singular_value_parameters(model)]


def set_singular_values(model, values: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for sigma, value in zip(svd.singular_value_parameters(model), values):
            sigma.copy_(value)


def sigma_change(model, initial: list[torch.Tensor]) -> float:
    """How far training moved the singular values: 100 · ‖σ − σ₀‖ / ‖σ₀‖ over all layers (%)."""
    before, after = torch.cat(initial), torch.cat(singular_values(model))
    return float(100 * (after - before).norm() / before.norm())


def logit_scale(model) -> float:
    """The checkpoint's learned scale, frozen (main.py: 100 = OpenAI CLIP's, logit_scale.exp() otherwise)."""
    return float(model.logit_scale.detach().exp())


def encode_text(model, tokens):
    """open_clip `CLIP.encode_text` on the tokens up to the prompts' last end-of-text token. The same function
    (causal attention: no position sees a later one, and the feature is read at the end-of-text token; checked
    below), a few times cheaper than running the padding through every block at every step. Other text towers
    (CustomTextCLIP, other pooling) run their own encode_text."""
    if not hasattr(model, "token_embedding") or getattr(model, "text_pool_type", None) != "argmax":
        return model.encode_text(tokens)
    length = int(tokens.argmax(dim=-1).max()) + 1  # the end-of-text token has the largest id
    tokens = tokens[:, :length]
    x = model.token_embedding(tokens).to(model.transformer.get_cast_dtype())
    x = model.transformer(x + model.positional_embedding[:length].to(x.dtype),
                          attn_mask=None if model.attn_mask is None else model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, model.text_pool_type,
                         eos_token_id=getattr(model, "text_eos_id", None))
    projection = model.text_projection
    return x if projection is None else projection(x) if isinstance(projection, torch.nn.Linear) else x @ projection


def singular_value_logits(model, images, tokens):
    """s · cos(f_σ(x), g_σ(t_c)) with the prompts re-encoded (train.py::run_training, inner loop)."""
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(encode_text(model, tokens), dim=-1)
    return logit_scale(model) * image_features @ text_features.T


def train_singular_values(model, initial, train_images, tokens, *, iterations: int, lr: float, cosine_period: int,
                          seed: int) -> list[float]:
    """AdamW on σ, starting from `initial`, over shuffled batches until `iterations` steps (train.py::run_training
    and ::run_other_training); trains `model` in place. The cosine schedule is stepped once per batch with period
    `cosine_period`. Returns the loss of every step."""
    set_singular_values(model, initial)
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
    with small_work():
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
    return losses


def step_size_sum(lr: float, iterations: int, cosine_period: int, eta_min: float = 1e-6) -> float:
    """Σ_t η_t of the schedule above (CosineAnnealingLR's closed form, periodic beyond its period)."""
    return sum(eta_min + (lr - eta_min) * (1 + math.cos(math.pi * t / cosine_period)) / 2 for t in range(iterations))


# %% [markdown]
# ## Data
#
# The library's `ClassificationTask` holds each (model, dataset): its splits, the CoOp few-shot split, the cached
# frozen features (for the linear probe), the zero-shot classifier and accuracy over class subsets. Training the
# encoders needs two things more. The $k$-shot images are loaded once (offline: rendered once) and cropped afresh at
# every step. The test images are encoded by each adapted model: for the ModifiedResNet everything before the
# attention pool is frozen, so its output is computed once and only the (adapted) pool runs per model — the same
# computation, checked below; a ViT is adapted in every block, so its images go through the whole tower each time.
#
# **Training loss.** The loss of one step is that of one batch of fresh random crops, so two steps' losses differ by
# which crops were drawn as much as by training (at 1 shot a batch holds one image per class, 10–20 in the toy suite).
# The loss before and after training is therefore measured on the same crops: one random training crop of every
# $k$-shot image, drawn once from its own seed and read again after training (`FixedCrops`); "loss fell" below is
# the relative drop of that training objective.

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
NATURAL_DATASETS = set(FEW_SHOT_TEMPLATES)


class Transformed(torch.utils.data.Dataset):
    """(transform(image), label) for `indices` of a dataset; `preload` keeps the decoded images in memory."""

    def __init__(self, dataset, transform, indices=None, preload=False):
        self.dataset, self.transform = dataset, transform
        self.indices = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
        self.labels = torch.as_tensor(np.asarray(dataset.labels)[self.indices])
        self.images = [dataset[i] for i in self.indices] if preload else None

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, position):
        image, label = self.images[position] if self.images is not None else self.dataset[self.indices[position]]
        return self.transform(image), label


class FixedCrops(torch.utils.data.Dataset):
    """The images of a `Transformed` with its random transform drawn from a seed per image: the same crops on
    every read, whatever the order, and torch's global generator left as it was."""

    def __init__(self, images: Transformed, seed: int):
        self.images, self.seed, self.labels = images, seed, images.labels

    def __len__(self):
        return len(self.images)

    def __getitem__(self, position):
        with torch.random.fork_rng(devices=[]):
            # the CPU generator only: torch.manual_seed would also queue a seed for every lazy CUDA/XPU/MTIA
            # backend, recording a stack trace each time (a second of CPU per notebook run here)
            torch.default_generator.manual_seed(1_000_003 * self.seed + position)
            return self.images[position]


class EncodedImages:
    """A set of images, encoded by any adapted copy of one model. A ModifiedResNet's frozen trunk runs once (and
    with `cache_as`, a name for deterministic images, is kept in the library's cache like frozen features)."""

    def __init__(self, loaded, images, cache_as: dict | None = None):
        self.labels = images.labels
        on_gpu = session.device.startswith("cuda")
        self.loader = torch.utils.data.DataLoader(images, batch_size=256, num_workers=8 if on_gpu else 0,
                                                  pin_memory=on_gpu)
        self.trunk = None
        if isinstance(loaded.model.visual, ModifiedResNet):
            def trunk():
                with torch.no_grad(), small_work():
                    return torch.cat([towers.resnet_trunk(loaded.model.visual, x.to(session.device))
                                      for x, _ in self.loader])

            self.trunk = trunk() if cache_as is None else cached(
                "features", {"kind": "ModifiedResNet trunk", "model": loaded.identity, **cache_as}, trunk,
                name="clip-svd-trunk").to(session.device)

    def features(self, model) -> torch.Tensor:
        with torch.no_grad(), small_work():
            if self.trunk is not None:  # the pool with its reparametrised weights formed once: one matmul each
                pool = model.visual.attnpool
                dense = SimpleNamespace(positional_embedding=pool.positional_embedding, num_heads=pool.num_heads, **{
                    name: partial(F.linear, weight=getattr(pool, name).weight, bias=getattr(pool, name).bias)
                    for name in ("q_proj", "k_proj", "v_proj", "c_proj")})
                encoded = [towers.attention_pool(dense, part) for part in self.trunk.split(256)]
            else:
                encoded = [model.encode_image(x.to(session.device)) for x, _ in self.loader]
        return F.normalize(torch.cat(encoded).float(), dim=-1).cpu()


class SingularValueTask(ClassificationTask):
    """A ClassificationTask with the official single template, plus the SVD model and the images it trains on."""

    def __init__(self, loaded, svd_model, initial, dataset, official_templates: dict):
        template = official_templates.get(dataset) or registry_template(loaded, dataset)
        super().__init__(loaded, dataset, templates=[template])
        self.svd_model, self.initial = svd_model, initial
        self.prompt_tokens = loaded.tokenizer([template.format(name.replace("_", " ")) for name in self.classnames])
        self.augment = features.augment_transform(loaded, scale=tuple(augment_scale))

    @property
    def test_images(self) -> EncodedImages:
        key = (self.model_name, self.dataset_name)
        if key not in TEST_IMAGES:
            test = self.split("test")
            TEST_IMAGES[key] = EncodedImages(self.loaded, Transformed(test, self.loaded.preprocess), cache_as={
                "data": test.fingerprint(), "transform": repr(self.loaded.preprocess)})
        return TEST_IMAGES[key]

    def train_images(self, indices, transform) -> Transformed:
        return Transformed(self.split("train"), transform, indices, preload=session.offline)

    def training_loss(self, crops: EncodedImages, tokens) -> float:
        """The cross-entropy of the SVD model (at its current σ) on fixed crops."""
        with torch.no_grad(), small_work():
            text = F.normalize(encode_text(self.svd_model, tokens.to(session.device)).float(), dim=-1).cpu()
        logits = logit_scale(self.svd_model) * crops.features(self.svd_model) @ text.T
        return float(F.cross_entropy(logits, crops.labels))

    def adapted_accuracy(self, tokens, *class_groups):
        """Test accuracy of the SVD model (at its current σ) within each group of classes (all: None)."""
        with torch.no_grad(), small_work():
            text = F.normalize(encode_text(self.svd_model, tokens.to(session.device)).float(), dim=-1).cpu()
        logits = self.test_images.features(self.svd_model) @ text.T
        return [self.accuracy(logits, self.test_images.labels, classes=classes) for classes in class_groups]

    def fit(self, indices, tokens, *, iterations, lr, cosine_period, seed, transform=None) -> dict:
        """Train σ from the pretrained values on the images `indices` and return the run's diagnostics;
        the SVD model keeps the trained σ until the next fit. Each fit is cached content-addressed, like the
        library's trained models: its trained σ and losses, keyed on the model, the images, the prompts, the recipe,
        the device and the training code (`fit_key`)."""
        transform = transform or self.augment

        def train() -> dict:
            images = self.train_images(indices, transform)
            crops = EncodedImages(self.loaded, FixedCrops(images, seed))
            set_singular_values(self.svd_model, self.initial)
            before = self.training_loss(crops, tokens)
            losses = train_singular_values(self.svd_model, self.initial, images, tokens, iterations=iterations,
                                           lr=lr, cosine_period=cosine_period, seed=seed)
            after = self.training_loss(crops, tokens)
            return {"sigma": singular_values(self.svd_model), "losses": losses, "before": before, "after": after}

        trained = cached("trained", self.fit_key(indices, tokens, iterations=iterations, lr=lr,
                                                 cosine_period=cosine_period, seed=seed, transform=transform),
                         train, name="clip-svd-fit")
        set_singular_values(self.svd_model, trained["sigma"])
        before, after, losses = trained["before"], trained["after"], trained["losses"]
        return {"steps": iterations, "lr": lr, "step size sum": step_size_sum(lr, iterations, cosine_period),
                "loss before": before, "loss after": after, "loss drop (%)": 100 * (1 - after / before),
                "first step loss": losses[0], "last step loss": losses[-1],
                "sigma change (%)": sigma_change(self.svd_model, self.initial)}

    def fit_key(self, indices, tokens, *, iterations, lr, cosine_period, seed, transform) -> dict:
        code = (train_singular_values, singular_value_logits, encode_text, logit_scale, clip_svd_model, Transformed,
                FixedCrops, EncodedImages, SingularValueTask.fit, SingularValueTask.training_loss,
                svd.SingularValueLinear, svd.SplitMultiheadAttention, svd.SplitAttentionPool)
        return {"model": self.loaded.identity, "data": self.split("train").fingerprint(),
                "indices": [int(i) for i in indices], "tokens": tokens.tolist(), "iterations": iterations, "lr": lr,
                "cosine_period": cosine_period, "seed": seed, "transform": repr(transform),
                "weight_decay": weight_decay, "batch_size": batch_size, "device": session.device,
                "torch": torch.__version__.split("+")[0], "code": [code_fingerprint(part) for part in code]}


def registry_template(loaded, dataset: str) -> str:
    return ClassificationTask(loaded, dataset).templates[0]


TEST_IMAGES: dict = {}
loaded_models = {(name, tag): load_model(name, tag, device=session.device) for name, tag in models}
svd_models = {key: clip_svd_model(loaded.model) for key, loaded in loaded_models.items()}
initial_sigmas = {key: singular_values(model) for key, model in svd_models.items()}


def make_task(key, dataset, official_templates):
    return SingularValueTask(loaded_models[key], svd_models[key], initial_sigmas[key], dataset, official_templates)


few_shot_tasks = [make_task(key, ds, FEW_SHOT_TEMPLATES) for key in loaded_models for ds in datasets]
base_to_new_tasks = [make_task(key, ds, BASE_TO_NEW_TEMPLATES) for key in loaded_models for ds in base_to_new_datasets]

# %% [markdown]
# ## Few-shot classification
#
# For each seed and shot count: CLIP-SVD trained for `iterations_per_shot` × $k$ steps (official
# `train.py::run_training`, `total_iters = n_iters * shots`), the zero-shot classifier of the same template
# (the official baseline), and CoOp's linear probe on the frozen features of the same $k$-shot images, its
# regularisation chosen on the few-shot validation split ($\min(k, 4)$ shots per class), as CoOp's `lpclip`.
#
# **Offline recipe.** The official 200 steps per shot at lr 5e-4 (18,600 steps for 5 shot counts × 3 seeds, per
# dataset) cost about ten minutes of CPU per dataset here. Offline we scale it by one stated rule: 200× fewer
# steps (`iterations_per_shot = 1`) with a 200× larger learning rate (0.1) under the same cosine schedule, so that
# the summed step size $\sum_t \eta_t$, which bounds how far AdamW moves each σ, stays the official one (equal for
# long schedules; 2× the official at 1 shot and 1.5× at 2 shots, where the schedule has 1 and 2 steps: column
# "step size sum" below). Base-to-new scales the same way: 4 epochs at lr 2e-3 instead of 20 at 4e-4. The factor
# 200 is set by the CPU budget alone (the notebook's 45 s; the earlier 5 steps per shot at lr 0.02, the same rule,
# took several minutes); no accuracy of the method entered the choice. It is checked on the training loss only:
# on every run (section "Training loss"), where a loss that did not fall leaves the claims *not tested*, and, with
# `check_reduction = True`, at the one configuration where the official recipe also runs (next table). (The earlier recipe was flagged for a
# loss that rose from 1.64 to 1.98 at 1 shot; those were the losses of the first and the last batch, two
# different draws of random crops, which is why the loss is now measured on fixed crops.) The paper profile keeps
# the official recipe.

# %%
def few_shot_run(job) -> tuple[list[dict], dict]:
    """One (dataset, seed, shots): CLIP-SVD and the probe, as tidy accuracy rows, and the training run."""
    task, seed, k = job
    base = {"model": task.model_name, "dataset": task.dataset_name, "metric": "accuracy"}
    x_test, y_test = task.features("test")
    split = task.few_shot_split(k, seed)
    iterations = iterations_per_shot * k
    with small_work():
        run = task.fit(split["train"], task.prompt_tokens, iterations=iterations, lr=learning_rate,
                       cosine_period=iterations, seed=seed)
        (accuracy,) = task.adapted_accuracy(task.prompt_tokens, None)
        # the probe sees the k-shot images once, un-augmented, as CoOp's lpclip
        probe = baselines.linear_probe(*task.few_shot_features(split["train"]), *task.features("val", split["val"]))
    rows = [{**base, "seed": seed, "shots": k, "method": "CLIP-SVD", "value": accuracy},
            {**base, "seed": seed, "shots": k, "method": "linear probe",
             "value": metrics.accuracy(probe.predict(x_test.numpy()), y_test)}]
    return rows, {"model": task.model_name, "dataset": task.dataset_name, "experiment": "few-shot",
                  "seed": seed, "shots": k, **run, "accuracy": accuracy}


# The (dataset, seed, shots) runs are independent (each fit starts from the pretrained singular values): on a CPU
# they run on every core as forked processes (`clipbook.parallel`), the most steps first; the test images are
# encoded once, here, before the fork.
for task in few_shot_tasks:
    task.test_images
jobs = sorted([(task, seed, k) for task in few_shot_tasks for seed in seeds for k in shots], key=lambda job: -job[2])
results = dict(zip([(task.dataset_name, seed, k) for task, seed, k in jobs],
                   parallel.map_jobs(few_shot_run, jobs, device=session.device)))
few_shot = [([{"model": task.model_name, "dataset": task.dataset_name, "metric": "accuracy",
               "method": "zero-shot CLIP", "value": task.zero_shot_accuracy()}]
             + [row for seed in seeds for k in shots for row in results[(task.dataset_name, seed, k)][0]],
             [results[(task.dataset_name, seed, k)][1] for seed in seeds for k in shots])
            for task in few_shot_tasks]
rows = pd.DataFrame([row for task_rows, _ in few_shot for row in task_rows])
runs = pd.DataFrame([run for _, task_runs in few_shot for run in task_runs])


def accuracy_table(rows):
    """Mean accuracy over seeds per shot count (zero-shot CLIP, which has no shots, under every shot count)."""
    table = summarise(rows[rows.metric == "accuracy"])
    table = pd.concat([table[table.shots.notna()]] + [table[table.shots.isna()].assign(shots=k) for k in shots])
    return table.astype({"shots": int}).pivot_table(index=["model", "dataset", "method"], columns="shots",
                                                    values="mean").round(2)


accuracy_table(rows)

# %% [markdown]
# **The official recipe at one configuration** (`check_reduction`). The cheapest configuration (smallest shot
# count, first seed, first dataset) trained again with the official 200 steps per shot at lr 5e-4, beside this
# run's; "loss" is the training objective on fixed crops, "sigma change"
# $100\,\lVert\sigma-\sigma_0\rVert/\lVert\sigma_0\rVert$ over all layers.

# %%
OFFICIAL_ITERATIONS_PER_SHOT, OFFICIAL_LEARNING_RATE = 200, 5e-4
RUN_COLUMNS = ["steps", "lr", "step size sum", "loss before", "loss after", "loss drop (%)", "sigma change (%)",
               "accuracy"]


def reduction_check(task, k, seed):
    iterations = OFFICIAL_ITERATIONS_PER_SHOT * k
    official = task.fit(task.few_shot_split(k, seed)["train"], task.prompt_tokens, iterations=iterations,
                        lr=OFFICIAL_LEARNING_RATE, cosine_period=iterations, seed=seed)
    (official["accuracy"],) = task.adapted_accuracy(task.prompt_tokens, None)
    this_run = runs[(runs.dataset == task.dataset_name) & (runs.shots == k) & (runs.seed == seed)].iloc[0]
    return pd.DataFrame([{"recipe": "official", **official}, {"recipe": "this run", **this_run}]
                        ).set_index("recipe")[RUN_COLUMNS]


reduction = None
if check_reduction and (iterations_per_shot, learning_rate) != (OFFICIAL_ITERATIONS_PER_SHOT, OFFICIAL_LEARNING_RATE):
    with small_work():
        reduction = reduction_check(few_shot_tasks[0], min(shots), seeds[0])
reduction

# %% [markdown]
# **Ablation: how much of it is the cropping?** The official crops keep 8–100 % of the image area. On 224-px
# photos a crop usually still shows the object; on the toy world's 64-px images, whose one object is often small
# or off-centre, many crops show little or none of it, and fitting their labels can pull σ away from what
# separates the classes. At the largest shot count and the first seed, CLIP-SVD is trained again on the
# un-cropped images (flips only), everything else unchanged.

# %%
def augmentation_ablation(task, k, seed):
    iterations = iterations_per_shot * k
    flips_only = features.augment_transform(task.loaded, scale=(1.0, 1.0))  # area 1: the whole image, flipped or not
    ablated = task.fit(task.few_shot_split(k, seed)["train"], task.prompt_tokens, iterations=iterations,
                       lr=learning_rate, cosine_period=iterations, seed=seed, transform=flips_only)
    (ablated["accuracy"],) = task.adapted_accuracy(task.prompt_tokens, None)
    this_run = runs[(runs.dataset == task.dataset_name) & (runs.shots == k) & (runs.seed == seed)].iloc[0]
    return pd.DataFrame([
        {"training images": f"crops {augment_scale[0]:g}-{augment_scale[1]:g} + flips (table above)", **this_run},
        {"training images": "flips only", **ablated},
    ]).set_index("training images")[RUN_COLUMNS]


ablation = None
if ablate_augmentation:
    with small_work():
        ablation = augmentation_ablation(few_shot_tasks[0], max(shots), seeds[0])
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
# training. We keep that schedule as it is, since it produced the reported numbers; the offline 4 epochs at 5× the
# learning rate keep its shape (batches per epoch = steps per period) and its summed step size.

# %%
def harmonic_mean(base, new):
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


def base_to_new_rows(task):
    """Base, new and harmonic-mean accuracy rows (zero-shot once; CLIP-SVD per seed) and the training runs."""
    base_classes, new_classes = task.base_new_classes()
    epochs = base_to_new_epochs[task.dataset_name]
    common = {"model": task.model_name, "dataset": task.dataset_name}
    zero_shot = [task.zero_shot_accuracy(classes=classes) for classes in (base_classes, new_classes)]
    results, runs = [("zero-shot CLIP", {}, zero_shot)], []
    for seed in seeds:
        # the official code samples k shots of every class, then keeps the base classes; those are the first
        # classes, so their labels already index the base prompts
        indices = task.few_shot_split(base_to_new_shots, seed)["train"]
        indices = indices[np.isin(task.split("train").labels[indices], base_classes)]
        iterations = epochs * -(-len(indices) // batch_size)
        run = task.fit(indices, task.prompt_tokens[base_classes], iterations=iterations,
                       lr=base_to_new_learning_rate, cosine_period=epochs, seed=seed)
        results.append(("CLIP-SVD", {"seed": seed}, task.adapted_accuracy(task.prompt_tokens, base_classes,
                                                                            new_classes)))
        runs.append({**common, "experiment": "base-to-new", "seed": seed, "shots": base_to_new_shots, **run})
    rows = [{**common, "method": method, **seed, "metric": metric, "value": value}
            for method, seed, (base, new) in results
            for metric, value in (("base accuracy", base), ("new accuracy", new), ("HM", harmonic_mean(base, new)))]
    return rows, runs


with small_work():
    base_to_new = [base_to_new_rows(task) for task in base_to_new_tasks]
rows = pd.concat([rows, pd.DataFrame([row for task_rows, _ in base_to_new for row in task_rows])], ignore_index=True)
runs = pd.concat([runs, pd.DataFrame([run for _, task_runs in base_to_new for run in task_runs])], ignore_index=True)
base_to_new_metrics = ["base accuracy", "new accuracy", "HM"]
summarise(rows[rows.metric.isin(base_to_new_metrics)]).pivot_table(
    index=["model", "dataset", "method"], columns="metric", values="mean").reindex(
    columns=base_to_new_metrics).round(2)  # reindex: with base_to_new_datasets = [] the table is empty

# %% [markdown]
# ## Training loss
#
# Every run's training objective on its fixed crops, before and after training (mean over seeds). A claim is
# tested only if training lowered it: by at least `LOSS_DROP_MINIMUM` = 1 % of its starting value, in every model,
# dataset and shot count of the claim's experiment (mean over seeds). Otherwise the run did not train, and
# comparing its accuracy with the baselines would test the optimiser, not the method.

# %%
LOSS_DROP_MINIMUM = 1.0  # %


def loss_precondition(experiment: str, claim_rows: str):
    part = runs[runs.experiment == experiment] if len(runs) else runs
    if part.empty:
        return claims.fact(f"{experiment}-loss-fell", f"{experiment} training loss fell", False,
                           f"no {experiment} run to measure the training loss of")
    drops = part.groupby(["model", "dataset", "shots"])["loss drop (%)"].mean()
    weakest = drops.idxmin()
    return claims.at_least(
        f"{experiment}-loss-fell",
        f"{experiment} training loss fell in every {claim_rows} (relative drop on fixed crops, mean over seeds; "
        f"smallest: {weakest[1]} at {weakest[2]:g} shot{'s' if weakest[2] != 1 else ''})", float(drops.min()),
        LOSS_DROP_MINIMUM, unit=" %")


preconditions = [loss_precondition("few-shot", "dataset and shot count"),
                 loss_precondition("base-to-new", "dataset")]
display(runs.groupby(["model", "experiment", "dataset", "shots"])[
    ["steps", "lr", "step size sum", "loss before", "loss after", "loss drop (%)", "first step loss",
     "last step loss", "sigma change (%)"]].mean().round(3))
pd.DataFrame([{"precondition": p.id, "passed": p.passed, "detail": p.detail} for p in preconditions])

# %% [markdown]
# ## Sanity checks against independent formulations
#
# 1. **q/k/v split.** Every `nn.MultiheadAttention` (and the ModifiedResNet's attention pool) of the pretrained
#    model, fed the inputs it sees while encoding test images and class prompts, gives the same outputs as its
#    split version.
# 2. **Exact reparametrisation.** Before training, the SVD model's image and text features equal the pretrained
#    model's (float64 SVD, cast to float32), and its test accuracy with the official template equals the library's
#    zero-shot accuracy (cached features of the pretrained model) to within one test image.
#    The text encoder run only up to the prompts' end-of-text token (`encode_text`) gives open_clip's features.
# 3. **Parameter count.** The trainable parameters are exactly the singular values, $\sum \min(m, n)$ over the
#    wrapped layers (92,160 on ViT-B/16).
# 4. **Descent.** A few AdamW steps on σ, on the un-augmented images of the largest shot count run (16; no crops,
#    so the loss is the same function at every step), lower the cross-entropy.
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


def sanity_checks(task, n_images=sanity_images):
    original, reparametrised = task.loaded.model, task.svd_model
    set_singular_values(reparametrised, task.initial)
    tokens = task.prompt_tokens.to(session.device)
    test = task.split("test")
    n_images = min(n_images, len(test))
    images = torch.stack([task.loaded.preprocess(test[i][0]) for i in range(n_images)]).to(session.device)
    with torch.no_grad(), small_work():
        before = original.encode_image(images).float(), original.encode_text(tokens).float()
        after = reparametrised.encode_image(images).float(), reparametrised.encode_text(tokens).float()
    wrapped = [m for m in reparametrised.modules() if isinstance(m, svd.SingularValueLinear)]
    image_error, text_error = (after[0] - before[0]).abs().max(), (after[1] - before[1]).abs().max()
    with torch.no_grad(), small_work():
        truncated_error = (encode_text(reparametrised, tokens).float() - after[1]).abs().max()
    trainable = sum(p.numel() for p in reparametrised.parameters() if p.requires_grad)
    (accuracy_at_initial_sigma,) = task.adapted_accuracy(task.prompt_tokens, None)

    # the largest shot count run (16 offline and in the paper profile; the rehearsal's cap is cheaper through ViT-B/16)
    fixed_images = task.train_images(task.few_shot_split(max(shots), seeds[0])["train"], task.loaded.preprocess)
    all_images = torch.stack([image for image, _ in fixed_images]).to(session.device)
    labels = fixed_images.labels.to(session.device)

    def loss_of(model):
        with torch.no_grad(), small_work():
            return float(F.cross_entropy(singular_value_logits(model, all_images, tokens).float(), labels))

    loss_before = loss_of(reparametrised)
    train_singular_values(reparametrised, task.initial, fixed_images, tokens, iterations=10, lr=learning_rate,
                          cosine_period=10, seed=seeds[0])
    trunk_error = 0.0
    if task.test_images.trunk is not None:
        with torch.no_grad(), small_work():
            direct = F.normalize(reparametrised.encode_image(images).float(), dim=-1).cpu()
        trunk_error = float((task.test_images.features(reparametrised)[:n_images] - direct).abs().max())
    result = pd.Series(dtype=object, data={
        "attention split: max |Δ output|": attention_split_error(original, images, tokens),
        "SVD: max |Δ image feature|": float(image_error),
        "SVD: max |Δ image feature| / max |feature|": float(image_error / before[0].abs().max()),
        "SVD: max |Δ text feature| / max |feature|": float(text_error / before[1].abs().max()),
        "SVD: max |Δ normalised feature|": max(float((F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).abs().max())
                                              for a, b in zip(after, before)),
        "text up to end-of-text: max |Δ text feature| / max |feature|": float(truncated_error / after[1].abs().max()),
        "SVD at σ₀ − library zero-shot: |Δ accuracy| (points)": abs(accuracy_at_initial_sigma
                                                                     - task.zero_shot_accuracy()),
        "one test image (points)": 100 / len(test),
        "wrapped linear layers": len(wrapped),
        "trainable parameters": trainable,
        "Σ min(m, n) over wrapped layers": sum(min(m.in_features, m.out_features) for m in wrapped),
        "trainable share of the model (%)": 100 * trainable / sum(p.numel() for p in original.parameters()),
        "CE before 10 steps": loss_before,
        "CE after 10 steps": loss_of(reparametrised),
        "cached trunk: max |Δ normalised feature|": trunk_error,
    })
    set_singular_values(reparametrised, task.initial)
    return result


with small_work():
    sanity = sanity_checks(few_shot_tasks[0])
assert sanity["attention split: max |Δ output|"] < 1e-5, sanity
assert sanity["SVD: max |Δ image feature| / max |feature|"] < 1e-5, sanity
assert sanity["SVD: max |Δ text feature| / max |feature|"] < 1e-5, sanity
assert sanity["SVD: max |Δ normalised feature|"] < 1e-5, sanity
assert sanity["text up to end-of-text: max |Δ text feature| / max |feature|"] < 1e-5, sanity
assert sanity["SVD at σ₀ − library zero-shot: |Δ accuracy| (points)"] <= sanity["one test image (points)"] + 1e-9, sanity
assert sanity["trainable parameters"] == sanity["Σ min(m, n) over wrapped layers"], sanity
assert sanity["CE after 10 steps"] < sanity["CE before 10 steps"], sanity
assert sanity["cached trunk: max |Δ normalised feature|"] < 1e-5, sanity
sanity.map(lambda v: f"{v:,}" if isinstance(v, int) else f"{v:.3g}").to_frame("value")

# %% [markdown]
# ## What the paper reports
#
# The README of the official repository (ViT-B/16, averages over the 11 natural datasets and 3 seeds): the
# "Natural Few-shot Evaluation" and "Base-to-Novel Generalization (Natural Domain)" tables. They are averages, not
# per-dataset numbers, so their dataset is the 11-dataset mean; the paper profile compares them with this run's
# mean over the same 11 datasets (below the figure).

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

README = "https://github.com/HealthX-Lab/CLIP-SVD/blob/022b1ed/README.md"
MEAN_OF_11 = "11 CoOp datasets (mean)"
README_SHOTS = [1, 2, 4, 8, 16]
COMMON = {"model": "ViT-B-16-quickgelu", "dataset": MEAN_OF_11}
REPORTED = (
    reported_rows([{"method": "CLIP-SVD", "shots": k, "value": v}
                   for k, v in zip(README_SHOTS, [73.20, 76.06, 78.18, 80.55, 82.97])]
                  + [{"method": "linear probe", "shots": k, "value": v}
                     for k, v in zip(README_SHOTS, [45.77, 56.92, 66.79, 73.43, 78.39])]
                  + [{"method": "zero-shot CLIP", "value": 65.36}],
                  source="README, Natural Few-shot Evaluation (CLIP-SVD (Ours), Linear Probing, Zero-shot CLIP rows)",
                  url=README, metric="accuracy", **COMMON)
    + reported_rows([{"method": method, "metric": metric, "value": value}
                     for method, values in (("CLIP-SVD", (84.38, 76.29, 80.13)), ("zero-shot CLIP", (69.34, 74.22, 71.70)))
                     for metric, value in zip(("base accuracy", "new accuracy", "HM"), values)],
                    source="README, Base-to-Novel Generalization (Natural Domain) (CLIP-SVD (ours), CLIP rows)",
                    url=README, **COMMON)
)

# %% [markdown]
# ## Claims
#
# The README reports averages over seeds, then over the 11 datasets, per shot count, and the paper's text claims
# CLIP-SVD ahead "under few-shot settings" at every K of its table; its base-to-new claim is the harmonic mean, and
# "better preservation of its generalization ability" is the new-class accuracy, which it reports above zero-shot
# CLIP's. So each claim is the mean over seeds, then over datasets, the few-shot ones required at every shot count.
# Each requires that its experiment's training loss fell.

# %% tags=["claims"]
from clipbook.claims import Claim

FEW_SHOT_LOSS, BASE_TO_NEW_LOSS = ("few-shot-loss-fell",), ("base-to-new-loss-fell",)
CLAIMS = [
    Claim("beats-zero-shot", "CLIP-SVD beats zero-shot CLIP at every shot count (mean over seeds, then datasets)",
          method="CLIP-SVD", baseline="zero-shot CLIP", per=("shots",), margin=0.0, requires=FEW_SHOT_LOSS,
          paper_effect=7.84, paper_effect_source="K = 1, the smallest gap of the README's 11-dataset means: "
                                                 "73.20 − 65.36 (82.97 − 65.36 = 17.61 at K = 16)"),
    Claim("beats-linear-probe", "CLIP-SVD beats a linear probe at every shot count (mean over seeds, then datasets)",
          method="CLIP-SVD", baseline="linear probe", per=("shots",), margin=0.0, requires=FEW_SHOT_LOSS,
          paper_effect=4.58, paper_effect_source="K = 16, the smallest gap of the README's 11-dataset means: "
                                                 "82.97 − 78.39 (73.20 − 45.77 = 27.43 at K = 1)"),
    Claim("base-to-new-hm", "CLIP-SVD's base-to-new harmonic mean is above zero-shot CLIP's (mean over seeds, "
                            "then datasets)",
          method="CLIP-SVD", baseline="zero-shot CLIP", metric="HM", margin=0.0, requires=BASE_TO_NEW_LOSS,
          paper_effect=8.43, paper_effect_source="README base-to-novel, 11-dataset means: 80.13 − 71.70"),
    Claim("keeps-new-classes", "CLIP-SVD's accuracy on the new (unseen) classes is above zero-shot CLIP's "
                               "(mean over seeds, then datasets)",
          method="CLIP-SVD", baseline="zero-shot CLIP", metric="new accuracy", margin=0.0, requires=BASE_TO_NEW_LOSS,
          paper_effect=2.07, paper_effect_source="README base-to-novel, 11-dataset means: 76.29 − 74.22"),
]

# %% [markdown]
# ## Figures
#
# Left: accuracy against shots (mean ± sd over seeds) per model and dataset; right: base-to-new accuracy.

# %%
def plot_results(rows):
    base_to_new_part = rows[rows.metric.isin(base_to_new_metrics)]
    fig, extra = few_shot_figure(rows, shots, ["CLIP-SVD", "linear probe", "zero-shot CLIP"], reported=REPORTED,
                                 extra_panels=1 if len(base_to_new_part) else 0)
    if len(base_to_new_part):
        ax = extra[0]
        sns.barplot(data=base_to_new_part, x="metric", y="value", hue="method", errorbar="sd", ax=ax,
                    order=base_to_new_metrics, hue_order=["CLIP-SVD", "zero-shot CLIP"])
        ax.set_title(f"base-to-new · {', '.join(base_to_new_datasets)} · {models[0][0]}", fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("top-1 accuracy (%)")
    fig.tight_layout()
    return fig


plot_results(rows)
plt.show()

# %% [markdown]
# **Against the README (paper profile).** Where a run covers all 11 natural datasets, its means over seeds, then
# datasets, beside the README's 11-dataset means.

# %%
def mean_over_datasets(rows, metrics_and_datasets):
    """Rows of the mean over seeds, then over the 11 datasets, for each metric whose datasets cover all 11."""
    means = []
    for metric_names, names in metrics_and_datasets:
        if not NATURAL_DATASETS <= set(names):
            continue
        part = summarise(rows[rows.metric.isin(metric_names) & rows.dataset.isin(NATURAL_DATASETS)])
        keys = [key for key in ("model", "method", "metric", "shots") if key in part]
        means.append(part.groupby(keys, dropna=False)["mean"].mean().reset_index()
                     .rename(columns={"mean": "value"}).assign(dataset=MEAN_OF_11))
    return pd.concat(means, ignore_index=True) if means else pd.DataFrame()


averages = mean_over_datasets(rows, [(["accuracy"], datasets), (base_to_new_metrics, base_to_new_datasets)])
compare_with_reported(averages, REPORTED).dropna(subset=["reproduced"]).round(2) if len(averages) else None

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=preconditions,
                notes=f"Few-shot: {iterations_per_shot} steps per shot at lr {learning_rate:g} (official: 200 at 5e-4). "
                      + "".join(f"Base-to-new: {base_to_new_epochs[name]} epochs at lr {base_to_new_learning_rate:g} "
                                f"on {name} (official: 10 or 20 at 4e-4). " for name in base_to_new_datasets)
                      + f"Training crops: area {augment_scale[0]:g}-{augment_scale[1]:g}.");
