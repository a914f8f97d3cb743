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
# # Toward a Holistic Evaluation of Robustness in CLIP Models
#
# Tu, Deng, Gedeon — 2024 · [arXiv:2410.01534](https://arxiv.org/abs/2410.01534) (extends "A Closer Look at the
# Robustness of Contrastive Language-Image Pre-Training", NeurIPS 2023, arXiv:2402.07410).
#
# **No official evaluation code exists.** The repository the authors name,
# [Klaus-Tu/Bag-of-Prototypes](https://github.com/Klaus-Tu/Bag-of-Prototypes) (MIT), holds only `BoP.py` (a
# K-means codebook and distribution distances from an earlier paper), nothing of this evaluation. This notebook
# follows the paper's protocol as its text describes it (papers.md §14): zero-shot classification by
# $\arg\max_c \cos(f(x), g(\text{prompt}_c))$, accuracy per visual factor relative to overall accuracy (ImageNet-X),
# shape bias on cue-conflict images (Geirhos et al.), calibration (ECE before and after temperature scaling) and
# out-of-distribution detection (AUROC and FPR@95 with MSP and MCM scores). **The paper's numbers are unconfirmed**
# (its tables could not be read); the claims below are its qualitative statements.
#
# **Claim.** Zero-shot CLIP is biased towards shape more than ImageNet-supervised models, and the bias shrinks after
# fine-tuning (abstract); CLIP is more robust than ImageNet models to most visual factors of ImageNet-X but less
# robust to pose and partial views (third-party summary of the factor figure). The paper varies six factors
# (architecture, training distribution, training-set size, fine-tuning, contrastive loss, test-time prompts).
#
# **This notebook.** The `offline` profile measures all four on the toy world for the library's tiny CLIP
# (zero-shot) against a **supervised classifier with the same image tower** (open_clip's ModifiedResNet of
# `clipbook-tiny-rn`, plus a linear head), trained on the same images with their class labels: the generic
# family's share of the tiny CLIP's pretraining set (the library's `clipbook-tiny-rn-supervised`). Visual factors are
# *single-factor shifts* of the same scenes (`clipbook.toyworld.factors`), so each accuracy change is due to that
# factor alone; cue conflicts put the shape of one class on the home background of another (the cue the toy world
# ties to classes). Of the paper's six factors, test-time prompts are varied; training data and model size would
# need more tiny CLIPs, which do not fit the notebook's 2-minute cold budget, so those claims are *not tested*. The
# `paper` profile (`notebooks/profiles/paper/holistic-robustness.yaml`) runs open_clip zoo models on the
# cue-conflict stimuli, ImageNet-R and ImageNet-Sketch.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy"]
seeds = [1, 2, 3]
factor_shifts = [["size", "tiny"], ["position", "top-left"], ["pose", 1.2], ["colour", "brown"],
                 ["background", "grain"], ["domain", "sketch"], ["domain", "cartoon"], ["domain", "noise"]]
cue_classes = [0, 1, 2, 3, 4, 5]
images_per_set = 200
ood_datasets = ["toy-textures", "toy-scenes"]
prompt_sets = ["a photo of a {}.", "class name", "tip-7 ensemble", "openai-80 ensemble"]
n_bins = 15
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Dataset, Int, ListOf, Param, Str, declare

PROMPT_SET_NAMES = ["a photo of a {}.", "class name", "tip-7 ensemble", "openai-80 ensemble"]


def _shift_problem(value) -> str | None:
    from clipbook.toyworld import factors

    try:
        factors.check_shift(*value)
    except (TypeError, ValueError) as err:
        return str(err)
    return None


# Names the experiment and the claims cell share (the contract runs the claims cell on its own).
ZERO_SHOT, SUPERVISED = "zero-shot CLIP", "supervised"


def factor_name(factor: str, value) -> str:
    """How a single-factor shift is named in the rows (the `dataset` column)."""
    from clipbook.toyworld import factors

    if factor == "position" and value in factors.CORNERS:
        return f"partial view ({value})"
    return f"{factor} = {value}"


SPEC = declare(
    "profile", "models", "datasets", "seeds", "device", needs=("tiny-clip", "tiny-supervised"),
    factor_shifts=ListOf(Param("any", length=2, validator=_shift_problem),
                         help="single-factor shifts [factor, value] of the in-domain sets (toyworld.factors.FACTORS)"),
    cue_classes=ListOf(Int(minimum=0, maximum=19), min_length=2,
                       help="generic-family labels of the cue-conflict sets (different home backgrounds: 6 at most)"),
    images_per_set=Int(minimum=20, help="images of each in-domain, shifted and OOD set per seed"),
    ood_datasets=ListOf(Dataset(), min_length=0, help="out-of-distribution datasets (their test split)"),
    prompt_sets=ListOf(Str(PROMPT_SET_NAMES), help="test-time prompt sets; the first is the default"),
    n_bins=Int(minimum=1, help="equal-width confidence bins of the ECE (15 as Guo et al. 2017)"),
)

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from sklearn.metrics import roc_auc_score

import clipbook
from clipbook import claims, metrics, zeroshot
from clipbook.cache import load_torch
from clipbook.data import registry
from clipbook.evaluation import robustness
from clipbook.evaluation.classification import ClassificationTask
from clipbook.features import image_features
from clipbook.models import tiny_clip, tiny_supervised
from clipbook.models.loader import LoadedModel, load_model
from clipbook.report.figures import reliability_figure
from clipbook.report.rows import summarise
from clipbook.toyworld import factors
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld import world

session = clipbook.start(SPEC, globals())
offline = session.profile == "offline"
if offline and datasets != ["toy"]:
    raise ValueError(f"the offline profile measures the generic toy dataset; datasets must be ['toy'], got {datasets}")
if offline and len(set(toy_splits.home_background(c) for c in cue_classes)) != len(cue_classes):
    raise ValueError(f"cue_classes {cue_classes} share home backgrounds; pick at most six labels distinct mod 6")
PROMPT_SETS = {"a photo of a {}.": ["a photo of a {}."], "class name": ["{}"],
               "tip-7 ensemble": zeroshot.TIP_IMAGENET_TEMPLATES, "openai-80 ensemble": zeroshot.OPENAI_IMAGENET_TEMPLATES}

# %% [markdown]
# ## The two models
#
# **Zero-shot CLIP.** With $f$ the image tower and $g$ the text tower, class $c$'s logit is
# $s\cdot\cos\big(f(x), \bar g_c\big)$, where $\bar g_c$ is the normalised mean of the normalised text embeddings of
# the prompt set filled with class $c$'s name (CLIP's prompt ensembling) and $s = e^{t}$ is the model's own learnt
# logit scale (about 100 for OpenAI CLIP, about 20 for the tiny CLIP): the scale matters for calibration and MSP,
# not for accuracy.
#
# **Supervised baseline.** The paper's baselines are ImageNet-supervised models. Here: the library's supervised
# counterpart of the tiny CLIP, `clipbook-tiny-rn-supervised` (`clipbook/models/tiny_supervised.py`): the same
# image tower architecture, randomly initialised, with a linear head on its 128-d output, trained with
# cross-entropy on the same images the tiny CLIP saw of the generic family (its share of the pretraining set, every
# style it comes in), with their class labels, using the tiny CLIP's optimiser recipe (AdamW, learning rate 3e-3
# with warm-up and cosine decay, weight decay 0.1 on weights only, batch 128, no augmentation) for 2 passes (the
# tiny CLIP makes 4.2). Its recipe is the library's, not a parameter of this notebook: like the tiny CLIP, it is
# trained once on first use (minutes on 2 cores, see README's Quickstart; under `invoke batch`, before any kernel
# starts), cached content-addressed, and shared by any notebook that needs a supervised baseline.

# %%
if offline:  # the library's recipe; its checkpoint also keeps the loss log and the number of training images
    supervised = tiny_supervised.load_tiny_supervised(device=session.device)
    supervised_checkpoint = load_torch(tiny_supervised.tiny_supervised_checkpoint())

# %% [markdown]
# ## Factor-controlled evaluation sets
#
# For every seed, an in-domain set of `images_per_set` scenes drawn like the toy test split (a class on its home
# background 30 % of the time), and from it one shifted set per entry of `factor_shifts`: the same scenes with one
# factor changed (`factors.shift_split`). The corner position cuts large objects at the frame: the toy world's
# *partial views*. The pose shift rotates every object by 1.2 rad on top of its own jitter (pretraining images
# are rotated by at most 0.25 rad). For the cue-conflict set, scenes of `cue_classes` (six classes whose home
# backgrounds differ) are each put on the home background of another of them (`factors.cue_conflict_split`);
# both models then classify among those six classes, as Geirhos et al. map ImageNet decisions to 16 categories.
# Out-of-distribution images come from families outside the label space (textures, places), as the paper's
# Textures/SUN/Places sets.

# %%
def evaluation_sets(seed: int) -> dict:
    base = f"holistic-s{seed}"
    toy_splits.register_split(base, domain="photo", size=images_per_set, home_background_p=0.3,
                              purpose="in-domain sample of the holistic-robustness notebook")
    cue_base = f"holistic-cue-s{seed}"
    # enough scenes that about images_per_set of them belong to cue_classes (only those are rendered)
    toy_splits.register_split(cue_base, domain="photo", size=math.ceil(images_per_set * 20 / len(cue_classes)),
                              home_background_p=0.3, purpose="scenes the cue-conflict set is drawn from")
    return {"in-domain": base,
            "shifts": {factor_name(f, v): factors.shift_split(base, f, v) for f, v in factor_shifts},
            "cue-conflict": factors.cue_conflict_split(cue_base, "background", cue_classes)}


if offline:
    clip = load_model(*models[0], device=session.device)
    sets = {seed: evaluation_sets(seed) for seed in seeds}
    examples = sets[seeds[0]]
    shown = [examples["in-domain"], *examples["shifts"].values(), examples["cue-conflict"]]
    fig, axes = plt.subplots(1, len(shown), figsize=(1.3 * len(shown), 1.8))
    for ax, split in zip(axes, shown):
        ax.imshow(world.render(toy_splits.scenes(split)[0])[0])
        ax.set_title("in-domain" if split == examples["in-domain"] else
                     "cue conflict" if split == examples["cue-conflict"] else split.split("@")[1], fontsize=7)
        ax.axis("off")
    plt.show()

# %% [markdown]
# ## Metrics
#
# All from `clipbook.evaluation.robustness`, on probabilities $p = \mathrm{softmax}(\text{logits})$:
#
# - **Relative accuracy** per factor (ImageNet-X reports error ratios per factor): accuracy on the shifted set over
#   accuracy on the same scenes unshifted, in %; 100 means the factor does not hurt.
# - **Shape bias** (Geirhos et al. 2019): among cue-conflict decisions naming the shape's class or the cue's class,
#   the fraction naming the shape, $\#\text{shape}/(\#\text{shape}+\#\text{cue})$.
# - **ECE** (Guo et al. 2017, eq. 3): $\sum_b \frac{|B_b|}{N}\,\lvert \mathrm{acc}(B_b)-\mathrm{conf}(B_b)\rvert$
#   over 15 equal-width confidence bins, before and after **temperature scaling** ($p=\mathrm{softmax}(z/T)$, $T$
#   minimising the NLL on the toy validation split).
# - **OOD detection**: AUROC of telling in-domain (positive) from OOD images, and FPR@95 (the share of OOD images
#   accepted at the threshold that accepts 95 % of in-domain ones), with the maximum softmax probability (MSP,
#   Hendrycks & Gimpel 2017) and, for CLIP, maximum concept matching (MCM, Ming et al. 2022:
#   $\max_c \mathrm{softmax}_c(\cos(f(x), \bar g_c)/\tau)$, $\tau = 1$).

# %%
class Outputs:
    """Logits (and, for CLIP, cosines) of one model on toy-world splits, from the library's feature cache."""

    def __init__(self, loaded: LoadedModel, templates: list[str] | None = None):
        self.loaded, self.is_clip = loaded, templates is not None
        if self.is_clip:
            self.task = ClassificationTask(loaded, "toy", templates=templates)
            self.scale = float(loaded.model.logit_scale.detach().exp())

    def cosines(self, split: str, dataset: str = "toy") -> torch.Tensor:
        features = image_features(self.loaded, registry.load_dataset(dataset, split))
        return features @ self.task.text_weights

    def logits(self, split: str, dataset: str = "toy") -> torch.Tensor:
        if self.is_clip:
            return self.scale * self.cosines(split, dataset)
        return image_features(self.loaded, registry.load_dataset(dataset, split), normalize=False)


def split_labels(split: str) -> torch.Tensor:
    return torch.as_tensor(factors.shape_labels(split))


def measure(outputs: Outputs, method: str, seed: int, temperature: float) -> list[dict]:
    base = {"model": tiny_clip.TINY_CLIP_NAME, "method": method, "seed": seed}
    evaluation = sets[seed]
    rows = []
    in_logits = outputs.logits(evaluation["in-domain"])
    in_labels = split_labels(evaluation["in-domain"])
    in_accuracy = metrics.accuracy(in_logits, in_labels)
    rows.append({**base, "dataset": "toy", "metric": "accuracy", "value": in_accuracy})
    for name, split in evaluation["shifts"].items():
        accuracy = metrics.accuracy(outputs.logits(split), split_labels(split))
        rows += [{**base, "dataset": name, "metric": "accuracy", "value": accuracy},
                 {**base, "dataset": name, "metric": "relative accuracy", "value": 100 * accuracy / in_accuracy}]
    cue_split = evaluation["cue-conflict"]
    six = outputs.logits(cue_split)[:, cue_classes].argmax(dim=1)
    predictions = torch.as_tensor(cue_classes)[six]
    shape, cue = factors.shape_labels(cue_split), factors.cue_labels(cue_split)
    rows += [{**base, "dataset": "cue conflict", "metric": "shape bias",
              "value": robustness.shape_bias(predictions, shape, cue)},
             {**base, "dataset": "cue conflict", "metric": "shape decisions (%)",
              "value": 100 * float((predictions.numpy() == shape).mean())},
             {**base, "dataset": "cue conflict", "metric": "cue decisions (%)",
              "value": 100 * float((predictions.numpy() == cue).mean())}]
    probabilities = torch.softmax(in_logits.double(), dim=1)
    scaled = torch.softmax(in_logits.double() / temperature, dim=1)
    rows += [{**base, "dataset": "toy", "metric": "ECE (%)",
              "value": 100 * robustness.expected_calibration_error(probabilities, in_labels, n_bins)},
             {**base, "dataset": "toy", "metric": "ECE after temperature scaling (%)",
              "value": 100 * robustness.expected_calibration_error(scaled, in_labels, n_bins)}]
    scores = {"MSP": robustness.msp_score}
    if outputs.is_clip:
        scores["MCM"] = None
    for ood in ood_datasets:
        # images_per_set images of the OOD dataset's test split, drawn by the seed
        dataset_ood = registry.load_dataset(ood, "test")
        take = np.random.default_rng(seed).permutation(len(dataset_ood))[:images_per_set]
        if outputs.is_clip:
            cos_ood = (image_features(outputs.loaded, dataset_ood, indices=take) @ outputs.task.text_weights)
            cos_in = outputs.cosines(evaluation["in-domain"])
            pairs = {"MSP": (robustness.msp_score(outputs.scale * cos_in), robustness.msp_score(outputs.scale * cos_ood)),
                     "MCM": (robustness.mcm_score(cos_in), robustness.mcm_score(cos_ood))}
        else:
            logits_ood = image_features(outputs.loaded, dataset_ood, indices=take, normalize=False)
            pairs = {"MSP": (robustness.msp_score(in_logits), robustness.msp_score(logits_ood))}
        for score_name, (score_in, score_out) in pairs.items():
            rows += [{**base, "dataset": ood, "metric": f"AUROC ({score_name}, %)",
                      "value": 100 * robustness.ood_auroc(score_in, score_out)},
                     {**base, "dataset": ood, "metric": f"FPR@95 ({score_name}, %)",
                      "value": 100 * robustness.fpr_at_tpr(score_in, score_out)}]
    return rows


# %% [markdown]
# ## The experiment
#
# Both models on the same sets, for every seed (a seed draws fresh in-domain, shifted, cue-conflict and OOD
# samples; both models are single trained checkpoints, so intervals reflect the evaluation samples). The
# temperature of each model is fitted once on the toy validation split. Zero-shot CLIP is then re-run with every
# prompt set (the paper's test-time prompt factor).

# %%
def offline_rows() -> tuple[pd.DataFrame, dict]:
    """Every metric of both models on every seed's sets, CLIP under every prompt set; and, for the reliability
    diagram and the sanity checks, both models' in-domain probabilities of the first seed."""
    clip_outputs = {name: Outputs(clip, PROMPT_SETS[name]) for name in prompt_sets}
    supervised_outputs = Outputs(supervised)
    val_labels = split_labels("val")
    temperatures.update({name: robustness.fit_temperature(out.logits("val"), val_labels)
                         for name, out in clip_outputs.items()})
    temperatures[SUPERVISED] = robustness.fit_temperature(supervised_outputs.logits("val"), val_labels)
    rows = []
    for seed in seeds:
        for name, out in clip_outputs.items():
            rows += [{**row, "prompts": name} for row in measure(out, ZERO_SHOT, seed, temperatures[name])]
        rows += measure(supervised_outputs, SUPERVISED, seed, temperatures[SUPERVISED])
    in_split = sets[seeds[0]]["in-domain"]
    labels = split_labels(in_split)
    reliability = {ZERO_SHOT: (torch.softmax(clip_outputs[prompt_sets[0]].logits(in_split).double(), 1), labels),
                   SUPERVISED: (torch.softmax(supervised_outputs.logits(in_split).double(), 1), labels)}
    if ood_datasets:  # the MCM scores of the first OOD set, for the sanity check
        dataset = registry.load_dataset(ood_datasets[0], "test")
        take = np.random.default_rng(seeds[0]).permutation(len(dataset))[:images_per_set]
        weights = clip_outputs[prompt_sets[0]].task.text_weights
        ood_example.update(inside=robustness.mcm_score(clip_outputs[prompt_sets[0]].cosines(in_split)),
                           outside=robustness.mcm_score(image_features(clip, dataset, indices=take) @ weights))
    return pd.DataFrame(rows), reliability


def paper_rows() -> tuple[pd.DataFrame, dict]:
    """Zero-shot metrics of every open_clip model on the real sets: shape bias on the cue-conflict stimuli (a 16-way
    zero-shot classifier over the 16 categories), accuracy and ECE on the classification sets (ImageNet-R over its
    200 classes, as its class_subset says). No supervised baseline is wired (see the preconditions)."""
    rows, reliability = [], {}
    for name, tag in models:
        loaded = load_model(name, tag, device=session.device)
        scale = float(loaded.model.logit_scale.detach().exp())
        for prompts in prompt_sets:
            for dataset in datasets:
                task = ClassificationTask(loaded, dataset, templates=PROMPT_SETS[prompts])
                split = task.split("test")
                features, labels = task.features("test")
                # ImageNet-R/-A label 200 of the 1000 classes: only those are prompted (a fifth of the text encoding)
                subset = getattr(split, "class_subset", None)
                classes = list(range(task.num_classes)) if subset is None else [int(c) for c in subset]
                weights = zeroshot.zero_shot_classifier(loaded, [task.classnames[c] for c in classes],
                                                        PROMPT_SETS[prompts])
                logits = scale * features @ weights
                base = {"model": f"{name} · {tag}", "dataset": dataset, "method": ZERO_SHOT, "prompts": prompts}
                if hasattr(split, "cue_labels"):
                    bias = robustness.shape_bias(logits, labels, split.cue_labels)
                    if math.isfinite(bias):  # NaN: no decision named the shape or the cue (e.g. random weights)
                        rows.append({**base, "metric": "shape bias", "value": bias})
                    predictions = logits.argmax(dim=1).numpy()
                    rows += [{**base, "metric": "shape decisions (%)",
                              "value": 100 * float((predictions == labels.numpy()).mean())},
                             {**base, "metric": "cue decisions (%)",
                              "value": 100 * float((predictions == split.cue_labels).mean())}]
                    continue
                labels = torch.as_tensor(np.searchsorted(classes, labels.numpy()))
                probabilities = torch.softmax(logits.double(), 1)
                rows += [{**base, "metric": "accuracy", "value": metrics.accuracy(logits, labels)},
                         {**base, "metric": "ECE (%)",
                          "value": 100 * robustness.expected_calibration_error(probabilities, labels, n_bins)}]
                if prompts == prompt_sets[0] and f"{name} · {tag}" not in reliability:
                    reliability[f"{name} · {tag} ({dataset})"] = (probabilities, labels)
    return pd.DataFrame(rows), reliability


temperatures, ood_example = {}, {}
rows, reliability = offline_rows() if offline else paper_rows()
default_prompts = prompt_sets[0]
main = rows[rows["prompts"].isna() | (rows["prompts"] == default_prompts)]
main.pivot_table(index=["metric", "dataset"], columns=["model", "method"], values="value", aggfunc="mean",
                 sort=False).round(2)

# %%
if offline:
    display(pd.Series({"supervised training images": supervised_checkpoint["images"],
                       "supervised first / last 20-step loss": f"{np.mean(supervised_checkpoint['loss'][:20]):.3f} / "
                                                               f"{np.mean(supervised_checkpoint['loss'][-20:]):.3f}",
                       **{f"temperature ({name})": round(t, 3) for name, t in temperatures.items()}}))

# %% [markdown]
# ## Robustness per factor, shape bias and calibration

# %%
sns.set_theme(style="whitegrid", font_scale=0.8)
fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), gridspec_kw={"width_ratios": [2.2, 1, 1.2]})
relative = main[main["metric"] == "relative accuracy"]
if len(relative):
    sns.barplot(data=relative, x="dataset", y="value", hue="method", errorbar="sd", ax=axes[0])
    axes[0].axhline(100, color="0.5", linewidth=1)
    axes[0].set(xlabel="", ylabel="accuracy relative to in-domain (%)", title="single-factor shifts")
    axes[0].tick_params(axis="x", rotation=30)
elif (main["metric"] == "accuracy").any():  # the paper profile: accuracy per set
    sns.barplot(data=main[main["metric"] == "accuracy"], x="dataset", y="value", hue="model", ax=axes[0])
    axes[0].set(xlabel="", ylabel="top-1 accuracy (%)", title="zero-shot accuracy")
else:
    axes[0].set_visible(False)
bias = rows[rows["metric"] == "shape bias"].assign(
    label=lambda f: np.where(f["method"] == SUPERVISED, SUPERVISED,
                             f["model"] + " · " + f["prompts"].fillna("").astype(str)))
if len(bias):
    sns.barplot(data=bias, x="value", y="label", errorbar="sd", ax=axes[1], color="C0")
axes[1].axvline(0.5, color="0.5", linewidth=1)
axes[1].set(xlim=(0, 1), xlabel="shape bias", ylabel="", title="cue conflict")
reliability_figure({name: robustness.reliability_bins(p, y, n_bins) for name, (p, y) in reliability.items()},
                   ece={name: robustness.expected_calibration_error(p, y, n_bins) for name, (p, y) in reliability.items()},
                   ax=axes[2])
axes[2].set_title("reliability" + (f", in-domain (seed {seeds[0]})" if offline else ""))
fig.tight_layout()
plt.show()

# %%
wanted = ["accuracy", "shape bias", "ECE (%)", "AUROC (MCM, %)"]
# accuracy on the in-domain (offline) or each real set; the other metrics averaged over their sets
headline = rows[(rows["method"] == ZERO_SHOT) & ((rows["metric"] != "accuracy") | rows["dataset"].isin(datasets))]
prompts_table = headline.pivot_table(
    index=["model", "prompts"], columns="metric", values="value", aggfunc="mean", sort=False)
prompts_table[[metric for metric in wanted if metric in prompts_table]].round(2)

# %% [markdown]
# ## Sanity checks
#
# Independent formulations on this notebook's own outputs: the library's ECE against a plain loop over images
# and bins (Guo et al.'s definition written out), and its AUROC against `sklearn.metrics.roc_auc_score`.

# %%
def ece_loop(probabilities: torch.Tensor, labels: torch.Tensor, bins: int) -> float:
    totals = np.zeros((bins, 3))
    for row, label in zip(probabilities.tolist(), labels.tolist()):
        confidence = max(row)
        b = min(bins - 1, max(0, math.ceil(confidence * bins) - 1))  # bin (b/bins, (b+1)/bins]
        totals[b] += (1, float(row.index(confidence) == label), confidence)
    filled = totals[totals[:, 0] > 0]
    return float(np.sum(np.abs(filled[:, 1] - filled[:, 2])) / len(labels))


checks = {}
if reliability:  # (the rehearsal's cue-conflict-only run has no classification set)
    ece_difference = max(abs(robustness.expected_calibration_error(p, y, n_bins) - ece_loop(p, y, n_bins))
                         for p, y in reliability.values())
    assert ece_difference < 1e-9, ece_difference
    checks["ECE: library − loop (max over models)"] = ece_difference
if ood_example:
    inside, outside = ood_example["inside"], ood_example["outside"]
    reference = roc_auc_score(np.r_[np.ones(len(inside)), np.zeros(len(outside))], np.r_[inside, outside])
    auroc_difference = abs(robustness.ood_auroc(inside, outside) - reference)
    assert auroc_difference < 1e-12, auroc_difference
    checks["AUROC (MCM): library − sklearn"] = auroc_difference
pd.Series(checks, dtype=float)

# %% [markdown]
# ## What the paper reports
#
# The paper's tables could not be read (papers.md §14): its numbers are **unconfirmed**, so no reported rows are
# recorded and each claim carries no paper effect size.

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# Preconditions: both models well above chance in-domain (otherwise a bias or robustness ratio means nothing), and
# the supervised baseline at least as accurate in-domain as zero-shot CLIP, as the paper's ImageNet models are on
# ImageNet: an under-trained baseline is no baseline (a 64-step version of it, 16.5 % in-domain, reversed the
# shape-bias comparison in a trial run of this notebook).
# The claims about training data and model size need tiny CLIPs trained on other data or at other widths
# (about 4 minutes each on two cores, beyond the notebook's 2-minute cold budget): *not tested*. Fine-tuning
# CLIP on the labelled images is not run either, for the same budget.

# %% tags=["claims"]
from clipbook.claims import Claim
from clipbook.toyworld import factors

POSE_AND_PARTIAL = [factor_name(f, v) for f, v in factor_shifts
                    if f == "pose" or (f == "position" and v in factors.CORNERS)]
OTHER_FACTORS = [factor_name(f, v) for f, v in factor_shifts if factor_name(f, v) not in POSE_AND_PARTIAL]
CLAIMS = [
    Claim("shape-bias", "Zero-shot CLIP has a higher shape bias on cue conflicts than a supervised model",
          method=ZERO_SHOT, baseline=SUPERVISED, metric="shape bias", where={"prompts": prompt_sets[0]},
          requires=("clip-above-chance", "supervised-above-chance", "supervised-as-accurate"), unit=""),
    Claim("shape-bias-every-prompt", "CLIP's higher shape bias holds under every test-time prompt set",
          method=ZERO_SHOT, baseline=SUPERVISED, metric="shape bias", per=("prompts",),
          requires=("clip-above-chance", "supervised-above-chance", "supervised-as-accurate"), unit=""),
    Claim("more-robust-most-factors", "CLIP is more robust than the supervised model to most visual factors "
          "(mean relative accuracy over the factors other than pose and partial views)",
          method=ZERO_SHOT, baseline=SUPERVISED, metric="relative accuracy",
          where={"dataset": OTHER_FACTORS, "prompts": prompt_sets[0]},
          requires=("clip-above-chance", "supervised-above-chance", "supervised-as-accurate")),
    Claim("less-robust-pose-partial", "CLIP is less robust than the supervised model to pose and partial views",
          method=SUPERVISED, baseline=ZERO_SHOT, metric="relative accuracy", per=("dataset",),
          where={"dataset": POSE_AND_PARTIAL, "prompts": prompt_sets[0]},
          requires=("clip-above-chance", "supervised-above-chance", "supervised-as-accurate")),
    Claim("fine-tuning-reduces-shape-bias", "Shape bias diminishes after fine-tuning CLIP on labelled images",
          method=ZERO_SHOT, baseline="fine-tuned CLIP", metric="shape bias", requires=("fine-tuned-clip",), unit=""),
    Claim("training-data-size", "CLIP's robustness depends on its training distribution and training-set size",
          method="CLIP (more data)", baseline=ZERO_SHOT, metric="relative accuracy", requires=("clip-variants",)),
    Claim("model-size", "CLIP's robustness depends on the size of its visual encoder",
          method="CLIP (larger tower)", baseline=ZERO_SHOT, metric="relative accuracy", requires=("clip-variants",)),
]
# %%
if offline:
    chance = 100 / len(world.CLASS_NAMES)
    in_domain = main[(main["metric"] == "accuracy") & (main["dataset"] == "toy")].groupby("method")["value"].mean()
    preconditions = [
        claims.at_least("clip-above-chance", "zero-shot CLIP in-domain accuracy minus chance",
                        in_domain[ZERO_SHOT] - chance, 10, " points"),
        claims.at_least("supervised-above-chance", "supervised in-domain accuracy minus chance",
                        in_domain[SUPERVISED] - chance, 10, " points"),
        claims.at_least("supervised-as-accurate", "supervised minus zero-shot CLIP in-domain accuracy",
                        in_domain[SUPERVISED] - in_domain[ZERO_SHOT], 0, " points")]
else:
    accuracy_rows = main[main["metric"] == "accuracy"]
    preconditions = [
        claims.at_least("clip-above-chance", "lowest zero-shot accuracy over models and classification sets",
                        accuracy_rows["value"].min() if len(accuracy_rows) else float("nan"), 10, " %"),
        claims.fact("supervised-above-chance", "a supervised ImageNet baseline was evaluated", False,
                    "the paper profile evaluates open_clip zero-shot models only; the paper's ImageNet-supervised "
                    "models (timm) are not wired into clipbook"),
        claims.fact("supervised-as-accurate", "the supervised baseline is at least as accurate as CLIP", False,
                    "no supervised baseline in the paper profile")]
preconditions += [
    claims.fact("fine-tuned-clip", "a fine-tuned CLIP was evaluated", False,
                "fine-tuning the tiny CLIP end to end on the labelled images (and encoding every set again) does not "
                "fit the 2-minute cold budget of this notebook" if offline else
                "no ImageNet-fine-tuned CLIP checkpoints are wired in the paper profile"),
    claims.fact("clip-variants", "CLIPs with other training data or tower sizes were compared", False,
                "pretraining one more tiny CLIP takes about 4 minutes on 2 cores, beyond the 2-minute cold budget"
                if offline else "the paper profile's model list is not grouped by training data or size here"),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=preconditions)
