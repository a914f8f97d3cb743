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
# # CapS-Adapter — Caption-based MultiModal Adapter in Zero-Shot Classification
#
# Wang, Liu, Wang — 2024 (venue unconfirmed) · [arXiv:2405.16591](https://arxiv.org/abs/2405.16591) ·
# official code [WLuLi/CapS-Adapter](https://github.com/WLuLi/CapS-Adapter) (no licence file; read, not copied),
# which builds on [SuS-X](https://github.com/vishaal27/SuS-X) (TIP-X) and Tip-Adapter.
#
# **Claim.** A *caption-based* support set — caption k labelled training images per class with a multimodal
# LLM (ShareCaptioner), generate new images from those captions with Stable Diffusion — used by a training-free
# adapter that reads both the generated images and their captions (M-Adapter), beats zero-shot CLIP, and the
# caption features it adds beat the image-only adapter it extends (TIP-X). The abstract's headline, **+2.19 %**
# average accuracy "over the previous leading method", is a gain over SuS-X — TIP-X with SuS-X's *own* support set
# (images generated from class names) — averaged over 19 datasets; this notebook builds no SuS-X support set, so
# no claim here carries that number. The main table's cells are unconfirmed.
#
# **This notebook** runs the whole pipeline and M-Adapter's validation grid search (2.2 M points), against
# zero-shot CLIP and TIP-X (SuS-X's adapter) on the same generated support set, with Tip-Adapter on the *real*
# sampled images as a reference. M-Adapter and TIP-X run twice: with the KL term as the released code computes it
# (*official KL*, which produced the paper's numbers) and as SuS-X computes it (a softmax over class logits). The
# `offline` profile plays it in the toy world: the captioner is `world.caption` and the text-to-image model is
# `clipbook.toyworld.text_to_image`, which renders a new scene with exactly the attributes a caption states and
# random ones elsewhere; it runs on the toy counterparts of the paper's own three datasets: land use from above
# (`toy-satellite` for EuroSAT), pets (`toy-pets` for Oxford Pets) and textures (`toy-textures` for DTD). The
# `paper` profile reads a support set built by the official scripts and runs OpenAI CLIP on
# EuroSAT, Oxford Pets and DTD.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy-satellite", "toy-pets", "toy-textures"]
seeds = [1, 2, 3]
samples_per_class = 16
images_per_class = 16
caption_level = "long"
support_domain = "photo"
text_prompt_type = "combined"
temperature = 0.5
alpha_steps = 20
beta_steps = 200
gamma_steps = 50
delta_steps = 11
caps_root = "caps"
ablate_support_domain = True
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Bool, Float, Int, Str, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "device",
    samples_per_class=Int(minimum=1, help="labelled train images sampled and captioned per class "
                                          "(official datasampler.py --k, default 100)"),
    images_per_class=Int(minimum=1, help="support images generated per class (official generate_caps.py "
                                         "--images_per_class: required, no default; encode_caps.py defaults to "
                                         "10); the paper's value is unconfirmed"),
    caption_level=Str(["name", "short", "medium", "long", "description"],
                      help="offline captioner: the world.caption level standing in for ShareCaptioner"),
    support_domain=Str(["photo", "caption"], help="offline generator style: always photos, or the style the "
                                                  "caption states"),
    text_prompt_type=Str(["template", "ensemble", "cupl", "combined"],
                         help="zero-shot classifier W (madapter.py --text_prompt_type, default combined: CuPL "
                              "prompts plus the 7-template ensemble); template: the dataset's own template"),
    temperature=Float(minimum=0, exclusive_minimum=True,
                      help="softmax temperature of the KL term (madapter.py --temperature, default 0.5)"),
    alpha_steps=Int(minimum=1, help="alpha grid points on [0.1, 50) (madapter.py hparam_search: 20)"),
    beta_steps=Int(minimum=1, help="beta grid points on [1, 50) (madapter.py hparam_search: 200)"),
    gamma_steps=Int(minimum=1, help="gamma grid points on [0.1, 30) (madapter.py hparam_search: 50)"),
    delta_steps=Int(minimum=2, help="delta grid points from 0 to 1 (madapter.py hparam_search: 11)"),
    caps_root=Str(help="paper profile: the official CapS output folder, which holds caps_sd/<dataset>/<class>/; "
                       "a relative path is under the data root $CLIPBOOK_DATA (default ~/data)"),
    ablate_support_domain=Bool(help="offline: rerun the shifted datasets with the other support_domain"),
)

# %%
import json
import random
import textwrap
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import scipy.special
import scipy.stats
import seaborn as sns
import torch
import torch.nn.functional as F
from PIL import Image

import clipbook
from clipbook import descriptors, features, metrics, zeroshot
from clipbook.claims import at_least, fact
from clipbook.data import fewshot, registry
from clipbook.determinism import DEFAULT_THREADS, SMALL_WORK_THREADS, deterministic_torch
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models.loader import load_model
from clipbook.report.rows import summarise
from clipbook.toyworld import world
from clipbook.toyworld.text_to_image import SceneDataset, scene_from_caption

session = clipbook.start(SPEC, globals())


def official_grid(first, end, steps):
    """madapter.py hparam_search: value_i = i * (end - first) / steps + first, i < steps (end excluded)."""
    return torch.tensor([i * (end - first) / steps + first for i in range(steps)], dtype=torch.float64)


# madapter.py hparam_search: search_scale = [50, 50, 30, 10], search_step = [200, 20, 50, 11]
OFFICIAL_STEPS = {"alpha": 20, "beta": 200, "gamma": 50, "delta": 11}
OFFICIAL_TEMPERATURE = 0.5
alphas, betas, gammas = official_grid(0.1, 50, alpha_steps), official_grid(1, 50, beta_steps), official_grid(
    0.1, 30, gamma_steps)
deltas = torch.tensor([i / (delta_steps - 1) for i in range(delta_steps)], dtype=torch.float64)
grid_size = len(alphas) * len(betas) * len(gammas) * len(deltas)
print(f"M-Adapter grid: {len(alphas)} alpha x {len(betas)} beta x {len(gammas)} gamma x {len(deltas)} delta "
      f"= {grid_size:,} points")

# %% [markdown]
# ## The zero-shot classifier
#
# Every method's logits start from $100\,fW$. The official `madapter.py` (and CapS's `tipx.py`) load
# `--text_prompt_type combined` by default: the weights `run_cupl_baseline.py` builds, where each class's text
# embedding is the normalised mean over the 7 Tip-Adapter templates filled with the class name *and* the class's
# CuPL prompts (GPT-3 descriptions shipped in `gpt3_prompts/CuPL_prompts_<dataset>.json`, generated by SuS-X), all
# L2-normalised first. The CuPL files are read through the library's descriptor sources, pinned to the official
# commit; a file that is not there is an error naming it, its source and where to put it. Offline, the toy world's
# own class descriptions stand in for the GPT-3 prompts, written as sentences in its caption grammar. Zero-shot CLIP
# below is this same classifier (the official `run_zs_baseline.py` reports the 7-template ensemble alone, which
# `text_prompt_type = "ensemble"` selects).

# %%
CAPS_REPOSITORY, CAPS_COMMIT = "WLuLi/CapS-Adapter", "bb2182a15e6246951dadcc6ca22e128c1483cff4"
# the official scripts' dataset names, where they differ from the registry's
OFFICIAL_DATASET_NAMES = {"oxford_pets": "oxfordpets", "stanford_cars": "stanfordcars",
                          "oxford_flowers": "flowers102", "fgvc_aircraft": "fgvcaircraft"}


def cupl_source(dataset_name: str) -> str:
    """The descriptor source of a dataset's CuPL prompts: the official file, or the toy world's descriptions."""
    if registry.DATASETS[dataset_name]["kind"] == "toy":
        return "toyworld"
    stem = OFFICIAL_DATASET_NAMES.get(dataset_name, dataset_name)
    name, file = f"caps-cupl-{stem}", f"gpt3_prompts/CuPL_prompts_{stem}.json"
    if name not in descriptors.DESCRIPTOR_SOURCES:
        descriptors.register_descriptor_source(
            name, kind="json-url", url=f"https://raw.githubusercontent.com/{CAPS_REPOSITORY}/{CAPS_COMMIT}/{file}",
            file=f"github.com/{CAPS_REPOSITORY}/blob/{CAPS_COMMIT}/{file}", paper="CapS-Adapter (notebook caps-adapter)",
            dataset=dataset_name)
    return name


def cupl_prompts(dataset_name: str, classnames: list[str]) -> list[list[str]]:
    """Per class, its CuPL prompts, looked up by the class name with spaces (run_cupl_baseline.py)."""
    source = cupl_source(dataset_name)
    found = descriptors.load_descriptors(source)
    if source == "toyworld":  # descriptions ("no corners") as sentences of the world's caption grammar
        found = {name: [f"a photo of a {name}. It has {d}." for d in items] for name, items in found.items()}
    names = [c.replace("_", " ") for c in classnames]
    missing = [n for n in names if n not in found]
    if missing:
        where = descriptors.DESCRIPTOR_SOURCES[source].get("file", source)
        raise KeyError(f"the CuPL prompts of {dataset_name!r} ({where}) have no entry for {missing[:5]}")
    return [found[n] for n in names]


class CapsTask(ClassificationTask):
    """The library's classification harness with the official zero-shot classifier W."""

    @cached_property
    def text_weights(self) -> torch.Tensor:
        """run_cupl_baseline.py zeroshot_classifier: ensemble templates, then the CuPL prompts, one mean per class."""
        if text_prompt_type == "template":
            return super().text_weights
        names = [c.replace("_", " ") for c in self.classnames]
        prompts = [[t.format(n) for t in zeroshot.TIP_IMAGENET_TEMPLATES] if text_prompt_type != "cupl" else []
                   for n in names]
        if text_prompt_type in ("cupl", "combined"):
            prompts = [own + cupl for own, cupl in zip(prompts, cupl_prompts(self.dataset_name, self.classnames))]
        return zeroshot.prompt_set_classifier(self.loaded, prompts)


if text_prompt_type in ("cupl", "combined"):  # fail before any encoding if a CuPL file is missing
    for dataset_name in datasets:
        cupl_prompts(dataset_name, registry.load_dataset(dataset_name, "test").classnames)

# %% [markdown]
# ## The support set: sample, caption, generate
#
# Per class, the official scripts sample k labelled training images (`datasampler.py`), caption each with
# ShareCaptioner (`generate_captions.py`), and prompt Stable Diffusion with "A photo of {class}. {caption}",
# cycling through the class's captions in random order until `images_per_class` images exist (`generate_caps.py`).
# The support features are CLIP's image features of the generated images, $F_I$, and CLIP's text features of their
# prompts, $F_C$ (`encode_caps.py`; its 10 "augment epochs" all use the deterministic eval preprocessing, so
# their average is one pass). How many images per class the paper generated is unconfirmed: `generate_caps.py`
# requires the number, `encode_caps.py` defaults to 10, and the paper profile's 100 (one per sampled image) is our
# choice. Offline, `world.caption` is the captioner, and `scene_from_caption` is the generator: faithful to every
# attribute the caption states, random in everything else.

# %%
def caption_prompt(classname: str, caption: str) -> str:
    return f"A photo of {classname.replace('_', ' ')}. {caption}"  # generate_caps.py generate_images


def generate_toy_support(train, indices, seed, style):
    """Toy CapS set: caption the sampled scenes, render new scenes from the prompts, class by class.
    Returns the support set, its prompts and, per generated image, the training index that was captioned."""
    scenes, prompts, sources = [], [], []
    for label in range(len(train.classnames)):
        rng = np.random.default_rng([seed, label])
        captioned = [int(i) for i in indices if train.labels[i] == label]
        order = rng.permutation(len(captioned))
        for j in range(images_per_class):
            source = captioned[order[j % len(order)]]
            prompt = caption_prompt(train.classnames[label], world.caption(train.scenes[source], caption_level))
            scenes.append(scene_from_caption(prompt, rng, domain="photo" if style == "photo" else None))
            prompts.append(prompt)
            sources.append(source)
    return SceneDataset(scenes, name=f"{train.name}-caps-{style}", split=f"seed{seed}"), prompts, sources


def _folder_key(name: str) -> str:
    return name.lower().replace(" ", "_").replace("/", "")


class CapsFolder(torch.utils.data.Dataset):
    """A support set made by the official scripts: caps_sd/<dataset>/<class>/*.png with updated_data.json
    (image paths and prompts). Like encode_caps.py, `images_per_class` images per class are drawn at random."""

    def __init__(self, root, dataset_name, classnames, seed):
        self.root = (registry.data_root() / Path(root).expanduser() / "caps_sd"  # an absolute root stays as it is
                     / OFFICIAL_DATASET_NAMES.get(dataset_name, dataset_name))
        self.name, self.split, self.classnames = f"{dataset_name}-caps", f"seed{seed}", list(classnames)
        how = ("Build it with the official scripts (github.com/WLuLi/CapS-Adapter: datasampler.py --k 100, "
               "generate_captions.py with ShareCaptioner, generate_caps.py --images_per_class N with "
               "stable-diffusion-v1-4), then set caps_root to the folder that holds caps_sd/")
        if not self.root.is_dir():
            raise FileNotFoundError(f"no CapS support set for {dataset_name!r}: {self.root} does not exist "
                                    f"(caps_root = {caps_root!r}). {how}.")
        class_folders = {_folder_key(p.name): p for p in self.root.iterdir() if p.is_dir()}
        self.paths, self.prompts, labels = [], [], []
        rng = random.Random(seed)
        for label, classname in enumerate(self.classnames):
            class_folder = class_folders.get(_folder_key(classname), self.root / _folder_key(classname))
            listing = class_folder / "updated_data.json"
            if not listing.exists():
                raise FileNotFoundError(f"no CapS images for class {classname!r} of {dataset_name!r}: {listing} "
                                        f"is missing. {how}.")
            entries = json.loads(listing.read_text())
            if len(entries) < images_per_class:
                raise ValueError(f"{listing} lists {len(entries)} images, "
                                 f"fewer than images_per_class={images_per_class}")
            for entry in rng.sample(entries, images_per_class):
                self.paths.append(f"{listing.parent.name}/{Path(entry['image_path']).name}")  # relative to root
                self.prompts.append(entry["caption"])
                labels.append(label)
        self.labels = np.array(labels, dtype=np.int64)

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        return Image.open(self.root / self.paths[index]).convert("RGB"), int(self.labels[index])

    def fingerprint(self):
        return {"dataset": self.name, "images": self.paths, "prompts": self.prompts}


if not session.offline:  # the paper path (and its rehearsal): fail before any encoding if a support set is missing
    for dataset_name in datasets:
        CapsFolder(caps_root, dataset_name, registry.load_dataset(dataset_name, "train").classnames, seeds[0])

# %% [markdown]
# ## The method: M-Adapter
#
# With L2-normalised test features $f$, the zero-shot classifier $W$ (above), support image features
# $F_I$, support caption features $F_C$ and one-hot support labels $L$, M-Adapter blends the two affinities,
#
# $$A = (1-\delta)\, f F_I^\top + \delta\, f F_C^\top, \qquad
#   \text{cache} = \exp\!\big(-\beta\,(1 - A)\big)\, L ,$$
#
# and adds TIP-X's KL term: each image gets a distribution over the classes, $p = \operatorname{softmax}(fW/\tau)$,
# each support image $q_j = \operatorname{softmax}(F_{I,j}W/\tau)$; the divergences
# $\mathrm{KL}_{ij} = \sum_k p_{ik}\log(p_{ik}/q_{jk})$ are min-max rescaled onto the range of $A$, negated and
# summed per class:
#
# $$\text{kl} = -\operatorname{rescale}_{[\min A,\,\max A]}(\mathrm{KL})\, L, \qquad
#   \text{logits} = 100\, fW + \alpha\,\text{cache} + \gamma\,\text{kl}.$$
#
# $\alpha, \beta, \gamma, \delta$ come from a grid search on the validation split. The functions follow
# `madapter.py` (`compute_image_text_distributions`, `get_kl_divergence_sims`, `scale_`, `hparam_search`).
#
# **Two KL variants.** CapS's `compute_image_text_distributions` (in `madapter.py` and in its own `tipx.py`)
# computes `features @ weights` and then overwrites it with `softmax(features / temp)`: a softmax over the raw
# feature dimensions instead of over the class logits (SuS-X's `tipx.py`, which it adapts, softmaxes the logits).
# The released code produced the paper's numbers, so both run: *official KL* (as released) and *class-logit KL*
# (SuS-X's). Methods without a suffix use the class-logit KL.

# %%
CLASS_LOGIT_KL, OFFICIAL_KL = "class logits", "official"
KL_VARIANTS = {CLASS_LOGIT_KL: False, OFFICIAL_KL: True}  # variant -> softmax over the raw features (as released)


def class_distributions(image_features, text_weights, features_softmax=False):
    """TIP-X's per-image class distribution softmax(f W / tau) (SuS-X tipx.py compute_image_text_distributions).
    features_softmax=True is CapS madapter.py's version as released: softmax over the raw features, softmax(f / tau)."""
    if features_softmax:
        return torch.softmax(image_features / temperature, dim=-1)
    return torch.softmax(image_features @ text_weights / temperature, dim=-1)


def kl_divergences(p, q):
    """KL(p_i || q_j) for every pair of rows, (N, S) (madapter.py get_kl_divergence_sims)."""
    return (p * p.log()).sum(dim=1, keepdim=True) - p @ q.log().T


def rescale_to(x, target):
    """Min-max rescale x onto target's range (madapter.py scale_: over the whole matrix, not per row)."""
    return (x - x.min()) / (x.max() - x.min()) * (target.max() - target.min()) + target.min()


@dataclass
class Terms:
    """What M-Adapter needs about one evaluation split and one support set (names of madapter.py in brackets)."""
    split: str
    labels: torch.Tensor  # (N,)
    zero_shot: torch.Tensor  # (N, K) 100 f W                   [clip_logits]
    image_affinity: torch.Tensor  # (N, S) f F_I^T
    caption_affinity: torch.Tensor  # (N, S) f F_C^T
    kl: dict  # variant -> (N, S) KL(p_i || q_j)                [*_kl_divs_sim]
    onehot: torch.Tensor  # (S, K) support labels L             [train_images_targets]


def make_terms(split, image_features, labels, text_weights, support_images, support_captions, support_labels):
    f, W = image_features.double(), text_weights.double()
    images, captions = support_images.double(), support_captions.double()
    kl = {variant: kl_divergences(class_distributions(f, W, raw), class_distributions(images, W, raw))
          for variant, raw in KL_VARIANTS.items()}
    return Terms(split=split, labels=torch.as_tensor(labels), zero_shot=100.0 * f @ W, image_affinity=f @ images.T,
                 caption_affinity=f @ captions.T, kl=kl,
                 onehot=F.one_hot(torch.as_tensor(support_labels), W.shape[1]).double())


def madapter_terms(terms, beta, delta, variant=CLASS_LOGIT_KL):
    """The cache and KL logits at one (beta, delta) (madapter.py hparam_search, inside its loops)."""
    affinity = (1 - delta) * terms.image_affinity + delta * terms.caption_affinity
    cache = torch.exp(beta * (affinity - 1)) @ terms.onehot
    kl = -rescale_to(terms.kl[variant], affinity) @ terms.onehot
    return cache, kl


def madapter_logits(terms, alpha, beta, gamma=0.0, delta=0.0, variant=CLASS_LOGIT_KL):
    cache, kl = madapter_terms(terms, beta, delta, variant)
    return terms.zero_shot + alpha * cache + gamma * kl


# %% [markdown]
# ### The grid search, vectorised
#
# The official search loops over 20 α × 200 β × 11 δ × 50 γ = 2.2 M points and classifies the whole validation
# split at each. For fixed $(\alpha, \beta, \delta)$ the logits are *linear* in $\gamma$, so validation image $i$
# (true class $y$) is right exactly where, for every other class $c$,
#
# $$m^{0}_{c} + \gamma\, m^{\text{kl}}_{c} > 0, \qquad m^{0}_{c} = (100fW + \alpha\,\text{cache})_{y} - (\cdot)_{c},
#   \quad m^{\text{kl}}_{c} = \text{kl}_{y} - \text{kl}_{c},$$
#
# i.e. on one interval of $\gamma$ (a lower bound from each $c$ with $m^{\text{kl}}_c > 0$, an upper bound from each
# with $m^{\text{kl}}_c < 0$). Counting the grid γ's inside each image's interval gives the accuracy at all 50 γ
# at once, exactly; the sanity checks below compare it with the official nested loop. Ties go to the first point
# in the official loop order (α, β, δ, γ), as its strict `>` does. Tip-Adapter has no γ: there the logits are
# linear in α, which plays the same role.

# %%
def margins(logits, labels):
    """(..., N, K) -> (..., N, K-1): the true class's logit minus each other class's logit."""
    k = logits.shape[-1]
    others = torch.stack([torch.cat([torch.arange(c), torch.arange(c + 1, k)]) for c in range(k)])[labels]
    true = logits.gather(-1, labels.expand(logits.shape[:-1]).unsqueeze(-1))
    return true - logits.gather(-1, others.expand(*logits.shape[:-1], k - 1))


def count_correct(base, outer_slope, outer_grid, inner_slope, inner_grid):
    """Correct predictions of margins base + x * outer_slope + g * inner_slope at every (x, b, g): (X, B, G).

    base (N, K-1); outer_slope (B, N, K-1) and inner_slope (B or 1, N, K-1) for B settings of the other
    hyper-parameters; x runs over the sorted outer_grid, g over the sorted inner_grid.
    """
    # The margins are linear in (x, g), so over the grid's box each is smallest (largest) at a corner: an image no
    # class beats at any corner is right everywhere, one that a class beats at all four corners is wrong
    # everywhere. Only the others (typically 10-30 %) need intervals.
    x_ends = [x * outer_slope for x in (outer_grid[0], outer_grid[-1])]
    g_ends = [g * inner_slope for g in (inner_grid[0], inner_grid[-1])]
    right_everywhere = (base + torch.minimum(*x_ends) + torch.minimum(*g_ends) > 0).all(dim=-1)  # (B, N)
    wrong_everywhere = (base + torch.maximum(*x_ends) + torch.maximum(*g_ends) < 0).any(dim=-1)
    open_ = ~(right_everywhere | wrong_everywhere).all(dim=0)  # (N,): undecided for some setting
    settled = right_everywhere[:, ~open_].sum(dim=1)  # (B,)
    base, outer_slope, inner_slope = base[open_], outer_slope[:, open_], inner_slope[:, open_]

    rises, falls, flat = inner_slope > 0, inner_slope < 0, inner_slope == 0
    bound_at_zero, bound_slope = -base / inner_slope, -outer_slope / inner_slope  # margin = 0 at g = a + x b
    inf = torch.tensor(float("inf"), dtype=base.dtype)
    # class-major layout: the max over the K-1 classes is then an elementwise max of slices
    lower_a, lower_b = (torch.where(rises, v, w).movedim(-1, 0) for v, w in ((bound_at_zero, -inf), (bound_slope, 0.0)))
    upper_a, upper_b = (torch.where(falls, v, w).movedim(-1, 0) for v, w in ((bound_at_zero, inf), (bound_slope, 0.0)))
    n_settings, n_grid = settled.shape[0], len(inner_grid)
    counts = []
    for x in outer_grid.tolist():
        lower = torch.amax(torch.add(lower_a, lower_b, alpha=x), dim=0)  # (B, N): right for lower < g < upper
        upper = torch.amin(torch.add(upper_a, upper_b, alpha=x), dim=0)
        start = torch.searchsorted(inner_grid, lower.expand(n_settings, -1).contiguous(), right=True)
        stop = torch.searchsorted(inner_grid, upper.expand(n_settings, -1).contiguous(), right=False)
        if flat.any():  # a class whose margin does not move with g must already be beaten
            beaten = ((base + x * outer_slope) > 0) | ~flat
            stop = torch.where(beaten.all(dim=-1), stop, start)
        stop = torch.maximum(stop, start)
        edges = torch.zeros(n_settings, n_grid + 1, dtype=torch.int64)
        edges.scatter_add_(1, start, torch.ones_like(start)).scatter_add_(1, stop, -torch.ones_like(stop))
        counts.append(edges.cumsum(dim=1)[:, :n_grid] + settled[:, None])
    return torch.stack(counts)


def cache_per_beta(affinity, onehot, chunk=25):
    """exp(-beta (1 - A)) L at every beta of the grid, (B, N, K); a few betas at a time, in one reused buffer."""
    n, s = affinity.shape
    out = torch.empty(len(betas), n, onehot.shape[1], dtype=affinity.dtype)
    buffer = torch.empty(chunk, n, s, dtype=affinity.dtype)
    for first in range(0, len(betas), chunk):
        block = betas[first:first + chunk]
        exponent = torch.mul(block[:, None, None], affinity - 1, out=buffer[:len(block)])
        torch.matmul(exponent.exp_().view(-1, s), onehot, out=out[first:first + len(block)].view(-1, onehot.shape[1]))
    return out


def madapter_grid(terms):
    """Correct validation predictions at every (alpha, beta, delta, gamma) of the official grid, per KL variant
    (the variants share the cache, computed once per delta)."""
    assert terms.split == "val", f"the grid search reads validation data only, got {terms.split!r}"
    base = margins(terms.zero_shot, terms.labels)
    counts = {variant: torch.zeros(len(alphas), len(betas), len(deltas), len(gammas), dtype=torch.int64)
              for variant in terms.kl}
    for d, delta in enumerate(deltas.tolist()):
        affinity = (1 - delta) * terms.image_affinity + delta * terms.caption_affinity
        cache_margins = margins(cache_per_beta(affinity, terms.onehot), terms.labels)
        for variant, divergences in terms.kl.items():
            kl = -rescale_to(divergences, affinity) @ terms.onehot
            counts[variant][:, :, d, :] = count_correct(base, cache_margins, alphas,
                                                        margins(kl, terms.labels)[None], gammas)
    return counts


def first_best(counts, *grids):
    """The official selection: scan in loop order, keep a point only if strictly better (= first argmax)."""
    flat = int(torch.argmax(counts))  # torch.argmax returns the first maximal index
    index = np.unravel_index(flat, counts.shape)
    return tuple(float(grid[i]) for grid, i in zip(grids, index)), int(counts.flatten()[flat])


# %% [markdown]
# ### Baselines on the same budget, with the same grid protocol
#
# - **Zero-shot CLIP**: $100\,fW$.
# - **TIP-X** (SuS-X's adapter): the generated images, image cache plus KL term, no captions — M-Adapter at δ = 0,
#   searched over α, β, γ in the loop order of CapS's own `tipx.py` (α, β, γ on the same grids: the M-Adapter grid's
#   δ = 0 slice). Like M-Adapter it runs with both KL variants; CapS's `tipx.py` has the official one.
# - **Tip-Adapter** (training-free), a reference: the cache holds the *real* sampled training images,
#   $100\,fW + \alpha\exp(-\beta(1-fF_{\text{real}}^\top))L$; α, β from the same grids (official loop order β, α).

# %%
def tip_adapter_grid(terms):
    """Correct validation predictions at every (beta, alpha) of Tip-Adapter: cache only, real images."""
    assert terms.split == "val", f"the grid search reads validation data only, got {terms.split!r}"
    cache = cache_per_beta(terms.image_affinity, terms.onehot)
    base = margins(terms.zero_shot, terms.labels)
    return count_correct(base, torch.zeros_like(base)[None], torch.zeros(1), margins(cache, terms.labels), alphas)[0]


# %% [markdown]
# ## The experiment
#
# For each model, dataset and seed: sample `samples_per_class` labelled training images per class, build the support
# set, search each method's hyper-parameters on the validation split, and measure test accuracy. The library's
# classification harness holds the splits, the cached features and the zero-shot classifier; the generated support
# set is cached under a hash of its scenes. Each method gives two rows: test accuracy (`accuracy`) and the
# validation accuracy at the point its search chose (`val accuracy`).

# %%
@dataclass
class Support:
    indices: np.ndarray  # the sampled labelled training images (captioned; Tip-Adapter's cache)
    generated: torch.utils.data.Dataset  # the generated support images
    prompts: list  # their prompts
    sources: list  # per generated image, the training index whose caption prompted it (None if unknown)
    image_features: torch.Tensor  # F_I
    caption_features: torch.Tensor  # F_C


def build_support(task, seed, style=support_domain):
    train = task.split("train")
    indices = fewshot.sample_few_shot(train.labels, samples_per_class, seed)
    if not session.offline:
        generated = CapsFolder(caps_root, task.dataset_name, task.classnames, seed)
        prompts, sources = generated.prompts, [None] * len(generated)
    else:
        generated, prompts, sources = generate_toy_support(train, indices, seed, style)
    with deterministic_torch():
        caption_features = F.normalize(task.loaded.encode_text_prompts(prompts).float().cpu(), dim=-1)
    return Support(indices, generated, prompts, sources, features.image_features(task.loaded, generated),
                   caption_features)


def make_all_terms(task, support, evaluation):
    """Terms of every split for M-Adapter/TIP-X (generated support set) and Tip-Adapter (real images)."""
    real, real_labels = task.features("train", support.indices)
    out = {}
    for split, (x, labels) in evaluation.items():
        out["caps", split] = make_terms(split, x, labels, task.text_weights, support.image_features,
                                        support.caption_features, support.generated.labels)
        out["tip", split] = make_terms(split, x, labels, task.text_weights, real, real, real_labels)
    return out


# Offline, the searches run thousands of small tensor operations (~1 M elements or fewer): the library's small-work
# thread count.
SEARCH_THREADS = SMALL_WORK_THREADS if session.offline else DEFAULT_THREADS
CAPS = {CLASS_LOGIT_KL: "CapS-Adapter", OFFICIAL_KL: "CapS-Adapter (official KL)"}
TIPX = {CLASS_LOGIT_KL: "TIP-X", OFFICIAL_KL: "TIP-X (official KL)"}
METHODS = ["zero-shot CLIP", TIPX[OFFICIAL_KL], CAPS[OFFICIAL_KL], TIPX[CLASS_LOGIT_KL], CAPS[CLASS_LOGIT_KL],
           "Tip-Adapter (real images)"]


def search_and_test(task, seed, terms):
    """Each method's grid search on the validation terms, then its test accuracy at the chosen point: tidy rows,
    the best validation accuracy at each delta, and the full grid counts."""
    base = {"model": task.model_name, "dataset": task.dataset_name, "seed": seed}

    def rows_for(method, kind, correct, **chosen):
        val, test = terms[kind, "val"], terms[kind, "test"]
        row = {**base, "method": method, **chosen}
        return [{**row, "metric": "accuracy", "value": metrics.accuracy(madapter_logits(test, **chosen), test.labels)},
                {**row, "metric": "val accuracy", "value": 100 * correct / len(val.labels)}]

    (beta, alpha), correct = first_best(tip_adapter_grid(terms["tip", "val"]), betas, alphas)
    rows = rows_for("Tip-Adapter (real images)", "tip", correct, alpha=alpha, beta=beta)
    counts = madapter_grid(terms["caps", "val"])
    for variant, grid in counts.items():
        (alpha, beta, gamma), correct = first_best(grid[:, :, 0, :], alphas, betas, gammas)  # TIP-X: delta = 0
        rows += rows_for(TIPX[variant], "caps", correct, alpha=alpha, beta=beta, gamma=gamma, delta=0.0,
                         variant=variant)
        (alpha, beta, delta, gamma), correct = first_best(grid, alphas, betas, deltas, gammas)
        rows += rows_for(CAPS[variant], "caps", correct, alpha=alpha, beta=beta, gamma=gamma, delta=delta,
                         variant=variant)
    # the best validation accuracy reachable at each delta: how much the caption features are worth
    n_val = len(terms["caps", "val"].labels)
    curves = [{**base, "variant": variant, "delta": float(delta), "best val": 100 * int(best) / n_val}
              for variant, grid in counts.items() for delta, best in zip(deltas, grid.amax(dim=(0, 1, 3)))]
    return rows, curves, counts


def val_accuracy_recomputed(run_rows, terms):
    """Whether every row's validation accuracy is the one recomputed from the logits at its chosen point."""
    same = []
    for row in run_rows:
        if row["metric"] == "val accuracy":
            val = terms["tip" if row["method"].startswith("Tip-Adapter") else "caps", "val"]
            chosen = {k: row[k] for k in ("alpha", "beta", "gamma", "delta", "variant") if k in row}
            same.append(abs(metrics.accuracy(madapter_logits(val, **chosen), val.labels) - row["value"]) < 1e-9)
    return bool(same) and all(same)


def run_seed(task, seed, style=support_domain, evaluation=None):
    """Every method on one seed; `evaluation` replaces the (features, labels) of val and test (sanity checks)."""
    evaluation = evaluation or {split: task.features(split) for split in ("val", "test")}
    support = build_support(task, seed, style)
    with deterministic_torch(threads=SEARCH_THREADS):
        terms = make_all_terms(task, support, evaluation)
        rows, curves, counts = search_and_test(task, seed, terms)
        recomputed = val_accuracy_recomputed(rows, terms)
    return {"rows": rows, "curves": curves, "counts": counts, "support": support, "terms": terms,
            "val recomputed": recomputed}


def zero_shot_rows(task):
    base = {"model": task.model_name, "dataset": task.dataset_name, "method": "zero-shot CLIP"}
    return [{**base, "metric": "accuracy", "value": task.zero_shot_accuracy("test")},
            {**base, "metric": "val accuracy", "value": task.zero_shot_accuracy("val")}]


tasks = [CapsTask(load_model(name, tag, device=session.device), dataset) for name, tag in models for dataset in datasets]
runs = {}
for task in tasks:
    for seed in seeds:
        run = run_seed(task, seed)
        if runs:  # keep the terms and full grid of the first run only, for the sanity checks
            del run["terms"], run["counts"]
        if seed != seeds[0]:
            del run["support"]
        runs[task.model_name, task.dataset_name, seed] = run
first_run = runs[tasks[0].model_name, tasks[0].dataset_name, seeds[0]]
rows = pd.DataFrame([row for task in tasks for row in zero_shot_rows(task)]
                    + [row for run in runs.values() for row in run["rows"]])
(summarise(rows).pivot_table(index=["model", "dataset", "method"], columns="metric", values=["mean", "std"])
 .reindex(METHODS, level="method").round(2))

# %% [markdown]
# Per seed, the hyper-parameters each method chose on validation and its test accuracy:

# %%
(rows[(rows.metric == "accuracy") & rows.seed.notna()]
 .drop(columns=["model", "metric"]).astype({"seed": int}).round(3).reset_index(drop=True))

# %% [markdown]
# ## What the generator makes of a caption
#
# Sampled training images (top), their toy captions as CapS prompts, and the support images rendered from those
# prompts (bottom), first seed. The generated image keeps what the caption says (class, colour, size, position,
# background) and redraws the rest; in the noisy domain it is rendered as a photo (`support_domain`).

# %%
def show_support_examples(columns=4):
    shown = [task for task in tasks if task.model_name == tasks[0].model_name]
    fig, axes = plt.subplots(2 * len(shown), columns, figsize=(2.9 * columns, 3.6 * 2 * len(shown)), squeeze=False)
    for row, task in enumerate(shown):
        support = runs[task.model_name, task.dataset_name, seeds[0]]["support"]
        picks = [j * task.num_classes // columns * images_per_class for j in range(columns)]
        for column, j in enumerate(picks):
            top, bottom = axes[2 * row, column], axes[2 * row + 1, column]
            if support.sources[j] is not None:
                top.imshow(task.split("train")[support.sources[j]][0])
            top.set_title(textwrap.fill(support.prompts[j], 38), fontsize=6.5, fontweight="normal")
            bottom.imshow(support.generated[j][0])
            for ax in (top, bottom):
                ax.set_xticks([]), ax.set_yticks([])
        axes[2 * row, 0].set_ylabel(f"{task.dataset_name}\ncaptioned", fontsize=9)
        axes[2 * row + 1, 0].set_ylabel("generated", fontsize=9)
    fig.tight_layout()
    return fig


show_support_examples()
plt.show()

# %% [markdown]
# ## Ablation: the style the generator renders in
#
# The noisy domain's captions say "a noisy photo of …", and a text-to-image model would follow them. The main
# experiment renders photos regardless (`support_domain = "photo"`), so its support set does not mirror the shifted
# test domain; here each shifted dataset is run again with the other choice, so that the generated images take the
# style the caption states (or the reverse, if `support_domain` is "caption"). Test accuracy, first seed (an
# ablation, outside the claims; one seed keeps the offline run within its time budget).

# %%
other_style = {"photo": "caption", "caption": "photo"}[support_domain]
# the styles a photo prompt does not draw (a satellite or texture dataset's native style renders like a photo)
shifted = [task for task in tasks
           if getattr(task.split("train"), "config", {}).get("domain", "photo") in ("sketch", "noise", "cartoon")]
ablation_methods = [TIPX[OFFICIAL_KL], CAPS[OFFICIAL_KL], TIPX[CLASS_LOGIT_KL], CAPS[CLASS_LOGIT_KL]]
ablation = pd.DataFrame()
if ablate_support_domain and session.profile == "offline" and shifted:
    ablation_rows = [{**row, "support style": style}
                     for task in shifted for seed in seeds[:1]
                     for style, style_rows in ((support_domain, runs[task.model_name, task.dataset_name, seed]["rows"]),
                                               (other_style, run_seed(task, seed, other_style)["rows"]))
                     for row in style_rows if row["method"] in ablation_methods and row["metric"] == "accuracy"]
    ablation = (pd.DataFrame(ablation_rows).groupby(["model", "dataset", "support style", "method"])["value"].mean()
                .unstack("method")[ablation_methods].round(2))
ablation

# %% [markdown]
# ## Sanity checks against independent formulations
#
# 1. With α = γ = 0 the M-Adapter logits are exactly the zero-shot logits.
# 2. With δ = 0 and γ = 0 the cache term is Tip-Adapter's, $\sum_{j\in c}\exp(-\beta(1-\cos(f, F_{I,j})))$,
#    recomputed here in NumPy from the cached (unit-norm) features.
# 3. The KL matrix (both variants) matches `scipy.stats.entropy(p_i, q_j)`.
# 4. The vectorised grid search counts exactly what the official nested loop counts — α, β, δ, then every γ,
#    argmax over the logits — on a 3 × 3 × 3 × 50 sub-grid, and picks the same point there.
# 5. The search reads validation data only: each search asserts its input is the validation split; running the
#    first seed again with the test set replaced by random features and shuffled labels leaves every chosen
#    hyper-parameter and validation accuracy unchanged; and the validation accuracy each run reports is the one
#    recomputed from the logits at its chosen point.

# %%
def official_loop(terms, variant, alpha_index, beta_index, delta_index):
    """madapter.py hparam_search, loop for loop, on a sub-grid: correct counts and the strictly-best point."""
    table, best, best_point = {}, 0, None
    for a in alpha_index:
        for b in beta_index:
            for d in delta_index:
                cache, kl = madapter_terms(terms, float(betas[b]), float(deltas[d]), variant)
                for g in range(len(gammas)):
                    logits = terms.zero_shot + kl * float(gammas[g]) + cache * float(alphas[a])
                    table[a, b, d, g] = int((logits.argmax(dim=1) == terms.labels).sum())
                    if table[a, b, d, g] > best:
                        best, best_point = table[a, b, d, g], (a, b, d, g)
    return table, best_point


def independent_cache(test_features, support_features, support_labels, beta, num_classes):
    # the cached features are unit vectors, so their dot products are the cosines
    cosine = test_features.numpy().astype(np.float64) @ support_features.numpy().astype(np.float64).T
    return np.stack([np.exp(-beta * (1 - cosine[:, support_labels == c])).sum(axis=1)
                     for c in range(num_classes)], axis=1)


def scipy_kl(features_a, features_b, text_weights, features_softmax, rows=50):
    def distribution(x):
        x = x.numpy().astype(np.float64)
        return scipy.special.softmax((x if features_softmax else x @ text_weights.numpy()) / temperature, axis=1)

    p, q = distribution(features_a[:rows]), distribution(features_b)
    return scipy.stats.entropy(p[:, None, :], q[None, :, :], axis=-1)


def sanity_checks():
    task, terms, support = tasks[0], first_run["terms"], first_run["support"]
    val, test = terms["caps", "val"], terms["caps", "test"]
    x_val, _ = task.features("val")
    x_test, y_test = task.features("test")
    checks = {}
    checks["alpha=gamma=0 logits == zero-shot logits (bitwise)"] = all(
        torch.equal(madapter_logits(test, 0.0, float(b), 0.0, float(d), v), test.zero_shot)
        for b in betas[::99] for d in deltas[::5] for v in KL_VARIANTS)
    beta = float(betas[len(betas) // 3])
    ours = ((madapter_logits(test, 1.0, beta) - test.zero_shot)).numpy()
    reference = independent_cache(x_test, support.image_features, support.generated.labels, beta, task.num_classes)
    checks["delta=gamma=0 cache - independent Tip-Adapter cache (max abs)"] = float(np.abs(ours - reference).max())
    for variant, raw in KL_VARIANTS.items():
        reference = scipy_kl(x_val, support.image_features, task.text_weights, raw)
        checks[f"KL ({variant}) - scipy.stats.entropy (max abs)"] = float(
            np.abs(val.kl[variant][: len(reference)].numpy() - reference).max())
    sub = tuple([0, n // 2, n - 1] for n in (len(alphas), len(betas), len(deltas)))  # first, middle, last
    for variant in KL_VARIANTS:
        table, point = official_loop(val, variant, *sub)
        counts = first_run["counts"][variant]
        checks[f"grid vs official loop ({variant}): points compared"] = len(table)
        checks[f"grid vs official loop ({variant}): mismatches"] = sum(
            int(counts[index]) != correct for index, correct in table.items())
        sub_counts = counts[np.ix_(*sub, range(len(gammas)))]
        index = np.unravel_index(int(torch.argmax(sub_counts)), sub_counts.shape)
        checks[f"grid vs official loop ({variant}): same point chosen"] = (
            tuple(int(grid[i]) for grid, i in zip(sub, index[:3])) + (int(index[3]),) == point)
    noise = torch.randn(x_test.shape, generator=torch.Generator().manual_seed(0))
    shuffled = torch.as_tensor(np.random.default_rng(0).permutation(y_test.numpy()))
    again = pd.DataFrame(run_seed(task, seeds[0], evaluation={"val": task.features("val"),
                                                                "test": (noise, shuffled)})["rows"])
    original = pd.DataFrame(first_run["rows"])
    on_val, on_test = original.metric == "val accuracy", original.metric == "accuracy"
    checks["test set replaced by noise: choices and val accuracy unchanged"] = original[on_val].equals(again[on_val])
    checks["test set replaced by noise: test accuracy changed"] = not original[on_test].equals(again[on_test])
    checks["reported val accuracy == recomputed at the chosen point (all runs)"] = all(
        run["val recomputed"] for run in runs.values())
    return pd.Series(checks, dtype=object)


with deterministic_torch(threads=SEARCH_THREADS):
    sanity = sanity_checks()
assert sanity["alpha=gamma=0 logits == zero-shot logits (bitwise)"], sanity
assert sanity["delta=gamma=0 cache - independent Tip-Adapter cache (max abs)"] < 1e-9, sanity
assert all(sanity[f"KL ({v}) - scipy.stats.entropy (max abs)"] < 1e-9 for v in KL_VARIANTS), sanity
assert all(sanity[f"grid vs official loop ({v}): mismatches"] == 0 for v in KL_VARIANTS), sanity
assert all(sanity[f"grid vs official loop ({v}): same point chosen"] for v in KL_VARIANTS), sanity
assert sanity["test set replaced by noise: choices and val accuracy unchanged"], sanity
assert sanity["test set replaced by noise: test accuracy changed"], sanity
assert sanity["reported val accuracy == recomputed at the chosen point (all runs)"], sanity
sanity.map(lambda v: f"{v:.2e}" if isinstance(v, float) else v)

# %% [markdown]
# ## Results
#
# Left: each method's test accuracy minus zero-shot CLIP's (mean ± sd over seeds). Right, one panel per dataset:
# the best validation accuracy M-Adapter reaches at each δ (over all α, β, γ; mean over seeds and models) — δ = 0
# is TIP-X on the generated images, δ = 1 uses only the caption features in the cache.

# %%
def plot_results():
    fig, axes = plt.subplots(1, 1 + len(datasets), figsize=(6.5 + 3.6 * len(datasets), 4.2),
                             gridspec_kw={"width_ratios": [1.8] + [1] * len(datasets)})
    test = rows[rows.metric == "accuracy"]
    zero_shot = test[test.method == "zero-shot CLIP"].set_index(["model", "dataset"])["value"]
    gains = test[test.method != "zero-shot CLIP"].assign(
        gain=lambda frame: frame["value"].values - zero_shot.loc[list(zip(frame.model, frame.dataset))].values)
    sns.barplot(data=gains, x="dataset", y="gain", hue="method", hue_order=METHODS[1:], errorbar="sd", ax=axes[0])
    axes[0].axhline(0, color="black", linewidth=0.8)
    axes[0].set_ylabel("test accuracy - zero-shot CLIP (points)")
    axes[0].legend(fontsize=7)
    curves = pd.DataFrame([c for run in runs.values() for c in run["curves"]])
    for ax, dataset_name in zip(axes[1:], datasets):
        sns.lineplot(data=curves[curves.dataset == dataset_name], x="delta", y="best val", hue="variant",
                     marker="o", errorbar=None, ax=ax)
        ax.set_title(dataset_name, fontsize=10)
        ax.set_xlabel("δ (weight of the caption features)")
        ax.set_ylabel("best validation accuracy (%)")
        ax.legend(fontsize=7, title="KL variant", title_fontsize=7)
    fig.tight_layout()
    return fig


plot_results()
plt.show()

# %% [markdown]
# ## Where this notebook departs from the official code
#
# - **KL term**: run both ways — as released (official KL, a softmax over the raw features) and as SuS-X computes it
#   (class logits); the claims are stated for both.
# - **Exactness and precision**: everything is float64 (the official KL logits are fp16 on a GPU), the KL matrix
#   covers every image (the official `get_kl_divergence_sims` leaves the last N mod 10 rows at zero; all splits
#   here are multiples of 10), and the vectorised search is checked against the official loop above.
# - **Zero-shot CLIP** uses the adapters' own classifier W (`text_prompt_type`), so the comparison isolates what the
#   support set adds; the official `run_zs_baseline.py` reports the 7-template ensemble.
# - **Tip-Adapter** is searched on M-Adapter's α and β grids (same protocol for every method), not on its own.
# - **Support set size**: the paper's images per class is unconfirmed (see above). Offline: 16 captioned and 16
#   generated images per class instead of k = 100; the captioner is `world.caption(level="long")` (the longest
#   prompts exceed the tiny CLIP's 48 tokens and are cut, as CLIP cuts long ShareCaptioner captions at 77), the
#   generator `text_to_image.scene_from_caption`, the CuPL prompts the toy world's class descriptions. The grid,
#   temperature and seeds are the official ones: nothing is reduced offline.

# %% [markdown]
# ## What the paper reports
#
# Nothing this notebook can compare row for row: the main table's cells are unconfirmed, and the abstract's one
# confirmed number (+2.19 % over SuS-X, averaged over 19 datasets) compares CapS-Adapter with a method and support
# set this notebook does not run. Rows added here once confirmed belong under the method
# "CapS-Adapter (official KL)", the released code that produced them.

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# The paper argues from averages over its datasets, so each claim is the mean test accuracy over seeds, then over
# models and datasets, above the baseline's. Each is stated for the released code (official KL) and for the
# class-logit KL. They require the official grid and temperature (a smaller grid is another protocol) and an encoder
# whose zero-shot classifier carries class information (at least 10 points above chance on every dataset).

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = [
    Claim("beats-zero-shot", "CapS-Adapter as released (official KL) beats zero-shot CLIP "
                             "(mean test accuracy over seeds, then datasets)",
          method="CapS-Adapter (official KL)", baseline="zero-shot CLIP", requires=("official-grid", "encoder-signal")),
    Claim("captions-beat-tip-x", "CapS-Adapter as released (official KL) beats TIP-X (official KL) on the same "
                                 "caption-based support set: the caption features add accuracy "
                                 "(mean test accuracy over seeds, then datasets)",
          method="CapS-Adapter (official KL)", baseline="TIP-X (official KL)",
          requires=("official-grid", "encoder-signal")),
    Claim("beats-zero-shot-class-logit-kl", "CapS-Adapter with the class-logit KL beats zero-shot CLIP "
                                            "(mean test accuracy over seeds, then datasets)",
          method="CapS-Adapter", baseline="zero-shot CLIP", requires=("official-grid", "encoder-signal")),
    Claim("captions-beat-tip-x-class-logit-kl", "CapS-Adapter with the class-logit KL beats TIP-X with the same KL on "
                                                "the same caption-based support set "
                                                "(mean test accuracy over seeds, then datasets)",
          method="CapS-Adapter", baseline="TIP-X", requires=("official-grid", "encoder-signal")),
]

# %%
steps = {"alpha": alpha_steps, "beta": beta_steps, "gamma": gamma_steps, "delta": delta_steps}
above_chance = min(task.zero_shot_accuracy("test") - 100 / task.num_classes for task in tasks)
preconditions = [
    fact("official-grid", "the official grid and KL temperature",
         steps == OFFICIAL_STEPS and temperature == OFFICIAL_TEMPERATURE,
         f"grid steps {steps} (official {OFFICIAL_STEPS}), temperature {temperature} (official {OFFICIAL_TEMPERATURE})"),
    at_least("encoder-signal", "zero-shot CLIP test accuracy above chance, worst model and dataset",
             above_chance, 10.0, " points"),
]
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=preconditions,
                notes=(f"Support: {samples_per_class} captioned and {images_per_class} generated images per class "
                       f"(the paper's images per class is unconfirmed); zero-shot classifier W: {text_prompt_type}; "
                       f"the full grid ({grid_size:,} points) searched on validation."))
