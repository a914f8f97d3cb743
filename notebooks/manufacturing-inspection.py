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
# # Adapting OpenAI's CLIP for Few-Shot Image Inspection in Manufacturing QC
#
# Megahed, Chen, Colosimo, Grasso, Jones-Farmer, Knoth, Sun, Zwetsloot — 2025 ·
# [arXiv:2501.12596](https://arxiv.org/abs/2501.12596) · official code
# [fmegahed/qe_genai](https://github.com/fmegahed/qe_genai) (MIT) and its package
# [FewShotIQ](https://github.com/Ying-Ju/FewShotIQ) (read, not copied).
#
# **Claim.** Without any training, CLIP image features make a good few-shot inspector: a test image is called
# defective when it is closer (cosine) to some defective learning image than to every nominal one. On simulated
# stochastic textured surfaces (Exp. 3) its accuracy rises with the learning set — ViT-L/14 reaches 90.0 % with 10
# learning images per class and 97.0–98.5 % from 50 on; ViT-B/32 stays near 70 % — and it beats zero-shot CLIP,
# which the official Exp. 3 zero-shot figure shows calling every test image nominal. The zero-shot prompts of that
# run are unconfirmed (see "The zero-shot baseline").
#
# **This notebook** regenerates Exp. 3 — accuracy against the learning-set size 10…350, the zero-shot baseline and
# the confusion matrices — on the real textile images (1,000 nominal, 500 local and 500 global defects, 250 px),
# which the PyPI package `conformal-clip-data` ships byte-identical to the official repository. The `offline`
# profile encodes them with the library's tiny CLIP, trained on the toy world at 64 px and never shown a textile:
# its numbers say how much a small, off-domain encoder's features carry, not what CLIP does. The `paper` profile
# runs OpenAI ViT-L/14 and ViT-B/32 on the paper's own split and adds Exp. 1 (metallic pans), whose official test
# set overlapped its learning set.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
textile_dataset = "textile_sts"
seeds = [1, 2, 3]
shots = [10, 20, 30, 50, 60, 70, 80, 90, 100, 120, 150, 200, 250, 300, 350]
test_nominal = 100
zero_shot_prompts = [
    "A woven textile with a uniform and consistent pattern, featuring no visible tears, defects, or disruptions "
    "in the material's weave structure.",
    "A woven textile with a distinct defect, where the material has been damaged, disrupting the otherwise "
    "uniform pattern of the fabric.",
]
confusion_shots = [10, 50, 350]
pan_dataset = None
pan_zero_shot_prompts = ["A metallic pan free of black scuff marks",
                         "A metallic pan with a simulated scuff mark drawn by a black marker"]
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Int, ListOf, Str, declare

SPEC = declare(
    "profile", "models", "seeds", "device",
    textile_dataset=Str(["textile_sts", "qe_genai_textile"],
                        help="Exp. 3 images, class folders nominal / local / global (one split, 'all')"),
    shots=ListOf(Int(minimum=2), help="learning-set sizes: nominal learning images, and as many defective ones "
                                      "(half local, half global); official learn_grid 10...350"),
    test_nominal=Int(minimum=2, help="nominal test images, with half as many of each defect type "
                                     "(official test_size: 100 + 50 + 50)"),
    zero_shot_prompts=ListOf(Str(), length=2, help="[nominal, defective] prompts of the zero-shot baseline; "
                                                   "unconfirmed as the paper's Exp. 3 prompts"),
    confusion_shots=ListOf(Int(minimum=2), help="learning-set sizes whose confusion matrices are shown "
                                                "(each among shots)"),
    pan_dataset=Str(["qe_genai_pan"], optional=True,
                    help="Exp. 1 metallic pans (paper profile; the images are not shipped), or null to skip"),
    pan_zero_shot_prompts=ListOf(Str(), length=2, help="[nominal, defective] prompts of Exp. 1 (FewShotIQ "
                                                       "usage guide)"),
)

# %%
import random

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from PIL import Image
from sklearn.neighbors import KNeighborsClassifier

import clipbook
from clipbook import metrics, zeroshot
from clipbook.batch.parameters import ParameterError
from clipbook.claims import at_least
from clipbook.data import registry
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models.loader import load_model
from clipbook.report.rows import summarise

session = clipbook.start(SPEC, globals())
# the textile sets have one split ("all"), which clipbook.start's train/val/test preflight does not cover
clipbook.preflight(models, [textile_dataset], splits=("all",))
if pan_dataset is not None:
    clipbook.preflight([], [pan_dataset], splits=("train", "test"))

TEXTILE_CLASSES = ["nominal", "local", "global"]  # label order of the registry's textile datasets
textile = registry.load_dataset(textile_dataset, "all")
class_counts = dict(zip(TEXTILE_CLASSES, np.bincount(textile.labels, minlength=3).tolist()))
most = min(class_counts["nominal"] - test_nominal,
           2 * (min(class_counts["local"], class_counts["global"]) - test_nominal // 2) + 1)
if max(shots) > most:  # checks SPEC cannot state: they depend on the data and on two parameters together
    raise ParameterError(f"parameter 'shots' must be <= {most}: with test_nominal={test_nominal} the dataset "
                         f"({class_counts}) leaves that many learning images per class; got {max(shots)}")
if missing := sorted(set(confusion_shots) - set(shots)):
    raise ParameterError(f"parameter 'confusion_shots' must be among shots {shots}; got {missing} outside")
learning_sizes = sorted(set(shots))
pd.Series(class_counts, name="images").to_frame().T.assign(package=textile.fingerprint().get("package", "—"),
                                                           version=textile.fingerprint().get("version", "—"))

# %% [markdown]
# ## The images
#
# Each textile is a 250 × 250 px simulated weave (R package spc4sts). A *local* defect is a small blemish a few
# pixels wide; a *global* defect lowers both spatial-autoregressive parameters of the weave by 5 %. The bottom row
# shows the same images at the input size of the headline model, which is all that model sees.

# %%
def input_size(loaded) -> int:
    size = loaded.model.visual.image_size
    return size[0] if isinstance(size, (tuple, list)) else size


loaded_models = {name: load_model(name, tag, device=session.device) for name, tag in models}
headline = models[0][0]
fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
for column, classname in enumerate(TEXTILE_CLASSES):
    image, _ = textile[int(np.flatnonzero(textile.labels == column)[0])]
    small = input_size(loaded_models[headline])
    axes[0, column].imshow(image)
    axes[1, column].imshow(image.resize((small, small), Image.BICUBIC))
    axes[0, column].set_title(f"{classname} · {image.size[0]} px", fontsize=10)
    axes[1, column].set_title(f"{classname} · {small} px ({headline})", fontsize=10)
for ax in axes.flat:
    ax.set_axis_off()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## The method
#
# With L2-normalised CLIP image features $f(\cdot)$, a set of $n$ nominal learning images $\{x^{\text{nom}}_i\}$
# and $n$ defective ones $\{x^{\text{def}}_j\}$ ($n/2$ local, $n/2$ global), a test image $x$ gets the scores
#
# $$s_{\text{nom}} = \max_i \cos\big(f(x), f(x^{\text{nom}}_i)\big), \qquad
#   s_{\text{def}} = \max_j \cos\big(f(x), f(x^{\text{def}}_j)\big), \qquad
#   (p_{\text{nom}}, p_{\text{def}}) = \operatorname{softmax}(s_{\text{nom}}, s_{\text{def}}),$$
#
# at temperature 1 (so the probabilities stay near 0.5: they rank, they are not calibrated), and is called
# defective when $p_{\text{def}} > p_{\text{nom}}$ — a 1-nearest-neighbour rule on cosine similarity. The
# learning images' text descriptions are only logged by the official code, never used. The paper's matrices are
# binary; we also read a defect type off the nearest defective image (the official `map_multiclass_labels` rule
# of Exp. 5) for a 3-class matrix.

# %%
def few_shot_classify(test_features, nominal_features, defective_features):
    """FewShotIQ classification.py::few_shot_fault_classification (its per-image loops as matrix products).

    Returns the probabilities (N, 2) [nominal, defective], the defective decisions (N,) and, per test image,
    the index of its nearest defective learning image.
    """
    nominal_similarity, _ = (test_features @ nominal_features.T).max(dim=1)
    defective_similarity, nearest_defective = (test_features @ defective_features.T).max(dim=1)
    probabilities = torch.stack([nominal_similarity, defective_similarity], dim=1).softmax(dim=1)
    is_defective = probabilities[:, 1] > probabilities[:, 0]  # a tie is "Nominal", as in the official code
    return probabilities, is_defective, nearest_defective


# %% [markdown]
# ## The zero-shot baseline
#
# FewShotIQ's `evaluate_zero_shot_predictions`: $\operatorname{softmax}(100\cos(f(x), g(t_k)))$ over two text
# prompts $t_{\text{nom}}, t_{\text{def}}$, argmax. The pan prompts are those of FewShotIQ's usage guide.
#
# **The textile prompts are unconfirmed.** The notebook version that added zero-shot to Exp. 3 (commit e075919)
# is not readable in our snapshot of the repository (its blob is missing), so we do not know which two prompts the
# paper's Exp. 3 zero-shot run used. Ours are the authors' own two-class textile descriptions from the official
# textile transfer run (`results/exp03_transfer_learning_results.csv`), and a parameter. The official figure
# `results/exp03_zero_shot_confusion_matrix.png` (same commit) shows that run calling all 200 test images nominal
# (50 % accuracy), with its model unlabelled, so it is not a reported row here. The claim against zero-shot CLIP
# says so in its statement: a verdict on it is a verdict against zero-shot CLIP *with these prompts*. (We did not
# make it a precondition: a precondition that can never pass would hide a comparison that is meaningful as
# stated.)

# %%
def zero_shot_defective(loaded, image_features, prompts):
    """FewShotIQ classification.py::evaluate_zero_shot_predictions: argmax of softmax(100 cos) over the prompts."""
    classifier = zeroshot.prompt_set_classifier(loaded, [[prompt] for prompt in prompts])
    probabilities = zeroshot.zero_shot_logits(image_features, classifier).softmax(dim=1)
    return probabilities.argmax(dim=1) == 1


# %% [markdown]
# ## The split
#
# The official Exp. 3 split (notebook `image_inspection_with_clip.ipynb`, section "Experiment 3", and FewShotIQ's
# `docs/usage_guide.md`): seed Python's `random`, draw the test images — 100 nominal, then 50 global, then 50
# local, each from its class's file list in name order — and shuffle the rest of each class. The learning set of
# size $n$ is the first $n$ nominal and the first $n/2$ global and local images of those shuffled lists, so learning
# sets are nested and the test set is the same for every $n$. With seed 2024 this reproduces the paper's split
# exactly; the check below compares it, file by file, with the official
# [`results/exp03_results_10.csv`](https://github.com/fmegahed/qe_genai/blob/981073a6f3bc1a21584147a08a67f643e3fa9e4c/results/exp03_results_10.csv)
# (its test images in order; the nominal learning images named in its descriptions).

# %%
DRAW_ORDER = ["nominal", "global", "local"]  # the order in which the official code samples and shuffles


def official_split(labels, seed: int, n_test_nominal: int) -> dict[str, list[int]]:
    """Test indices (nominal, global, local) and the shuffled learning pools of each class, as in the official code."""
    rng = random.Random(seed)  # the same stream as the official module-level random.seed(seed)
    pools = {name: np.flatnonzero(labels == TEXTILE_CLASSES.index(name)).tolist() for name in DRAW_ORDER}
    test = {name: rng.sample(pools[name], n_test_nominal if name == "nominal" else n_test_nominal // 2)
            for name in DRAW_ORDER}
    learning = {name: [i for i in pools[name] if i not in set(test[name])] for name in DRAW_ORDER}
    for name in DRAW_ORDER:
        rng.shuffle(learning[name])
    return {"test": test["nominal"] + test["global"] + test["local"], **learning}


def learning_set(split, n: int) -> tuple[list[int], list[int]]:
    """Nominal and defective learning indices for learning size n (official vary_training_set, equal sizes)."""
    return split["nominal"][:n], split["global"][:n // 2] + split["local"][:n // 2]


def file_name(index: int) -> str:
    """<class folder>/<file name> of an image (paths are relative to the package or to the data root)."""
    return "/".join(textile.relative_paths[index].split("/")[-2:])


official = official_split(textile.labels, 2024, 100)


def file_numbers(indices) -> str:
    return " ".join(sorted(file_name(i).split("_")[-1].split(".")[0] for i in indices))


split_check = pd.DataFrame({
    "official (results/exp03_results_10.csv)": [
        "nominal/textile_0482.jpg", "nominal/textile_0187.jpg", "nominal/textile_0746.jpg",
        "global/textile_0121.jpg", "local/textile_0135.jpg",
        "0006 0048 0155 0159 0284 0303 0553 0736 0873 0991"],
    "official_split(seed=2024)": [file_name(official["test"][i]) for i in (0, 1, 2, 100, 150)]
    + [file_numbers(learning_set(official, 10)[0])],
}, index=["test image 1", "test image 2", "test image 3", "test image 101 (first global)",
          "test image 151 (first local)", "nominal learning images, n = 10"])
split_check["same"] = split_check.iloc[:, 0] == split_check.iloc[:, 1]
assert split_check["same"].all(), split_check
split_check

# %% [markdown]
# ## The experiment
#
# Every image is encoded once per model (the library's classification harness caches the features); each seed draws
# its own split; the zero-shot baseline and the few-shot rule at every learning size see the same test images. The
# rows hold accuracy, sensitivity (defective recall), specificity (nominal recall) and the share of each defect type
# flagged, with `shots` the learning-set size.

# %%
def rates(is_defective, truth, classnames) -> dict:
    """Accuracy, sensitivity (defective recall), specificity (nominal recall) and, per defect type, the share
    detected as defective; labels index `classnames`, label 0 nominal."""
    is_defective, truth = np.asarray(is_defective, bool), np.asarray(truth)
    out = {"accuracy": metrics.accuracy(is_defective.astype(int), (truth > 0).astype(int)),
           "sensitivity": float(is_defective[truth > 0].mean() * 100),
           "specificity": float((~is_defective[truth == 0]).mean() * 100)}
    if len(classnames) > 2:
        out.update({f"{name} detected": float(is_defective[truth == label].mean() * 100)
                    for label, name in enumerate(classnames) if label > 0})
    return out


def metric_rows(base: dict, values: dict) -> list[dict]:
    return [{**base, "metric": metric, "value": value} for metric, value in values.items()]


def read_features(task) -> torch.Tensor:
    """Image features indexed like the dataset, encoded for the images some seed's test or learning set reads (every
    one when the sets cover the dataset); the rows of the others are never read and stay zero."""
    used = sorted({index for seed in seeds for split in [official_split(textile.labels, seed, test_nominal)]
                   for index in split["test"] + [i for n in learning_sizes for part in learning_set(split, n)
                                                 for i in part]})
    if len(used) == len(textile):
        return task.features("all")[0]
    encoded = task.features("all", indices=used)[0]
    image_features = torch.zeros(len(textile), encoded.shape[1], dtype=encoded.dtype)
    image_features[torch.as_tensor(used)] = encoded
    return image_features


def evaluate(task):
    """Tidy rows (zero-shot and few-shot per seed and learning size) and the per-image predictions behind them."""
    image_features = read_features(task)
    rows, predictions = [], []
    for seed in seeds:
        split = official_split(textile.labels, seed, test_nominal)
        test = split["test"]
        truth = textile.labels[test]
        base = {"model": task.model_name, "dataset": task.dataset_name, "seed": seed}
        zero_shot = zero_shot_defective(task.loaded, image_features[test], zero_shot_prompts).numpy()
        rows += metric_rows({**base, "method": "zero-shot CLIP"}, rates(zero_shot, truth, TEXTILE_CLASSES))
        for n in learning_sizes:
            nominal, defective = learning_set(split, n)
            probabilities, is_defective, nearest = few_shot_classify(image_features[test], image_features[nominal],
                                                                     image_features[defective])
            is_defective = is_defective.numpy()
            three_class = np.where(is_defective, textile.labels[defective][nearest.numpy()], 0)
            rows += metric_rows({**base, "method": "few-shot 1-NN", "shots": n},
                                rates(is_defective, truth, TEXTILE_CLASSES))
            predictions.append({"model": task.model_name, "seed": seed, "shots": n, "truth": truth,
                                "three_class": three_class, "probabilities": probabilities, "test": test,
                                "nominal": nominal, "defective": defective})
    return rows, predictions


tasks = {name: ClassificationTask(loaded, textile_dataset) for name, loaded in loaded_models.items()}
evaluated = {name: evaluate(task) for name, task in tasks.items()}
predictions = [p for _, model_predictions in evaluated.values() for p in model_predictions]
rows = pd.DataFrame([row for model_rows, _ in evaluated.values() for row in model_rows])
# mean over seeds; zero-shot CLIP, which has no learning set, is shown at learning size 0
summarise(rows).fillna({"shots": 0}).pivot_table(index=["model", "method", "shots"], columns="metric",
                                                 values="mean").round(1)

# %% [markdown]
# ## Sanity check against an independent formulation
#
# The rule is a 1-nearest-neighbour classifier, so scikit-learn's `KNeighborsClassifier(1, metric="cosine")`
# fitted on the union of the nominal and defective learning images must predict the same label for every test
# image — with binary labels for the paper's decision, and with nominal / local / global labels for the 3-class
# reading. The softmax probabilities must sum to 1. Checked for the headline model at every seed and learning size.

# %%
def check_against_knn(model_name):
    image_features = read_features(tasks[model_name]).numpy()
    agree_binary = agree_three_class = total = 0
    worst_sum = 0.0
    for item in (p for p in predictions if p["model"] == model_name):
        union = item["nominal"] + item["defective"]
        x_learn, x_test = image_features[union], image_features[item["test"]]
        neighbour_binary = KNeighborsClassifier(1, metric="cosine").fit(x_learn, textile.labels[union] > 0)
        neighbour_three = KNeighborsClassifier(1, metric="cosine").fit(x_learn, textile.labels[union])
        ours_binary = item["three_class"] > 0
        agree_binary += int((neighbour_binary.predict(x_test) == ours_binary).sum())
        agree_three_class += int((neighbour_three.predict(x_test) == item["three_class"]).sum())
        total += len(x_test)
        worst_sum = max(worst_sum, float((item["probabilities"].sum(dim=1) - 1).abs().max()))
    return pd.Series({"test predictions compared": total,
                      "agreement with sklearn 1-NN, binary (%)": 100 * agree_binary / total,
                      "agreement with sklearn 1-NN, 3-class (%)": 100 * agree_three_class / total,
                      "max |p_nom + p_def - 1|": worst_sum})


sanity = check_against_knn(headline)
assert sanity["agreement with sklearn 1-NN, binary (%)"] == 100, sanity
assert sanity["agreement with sklearn 1-NN, 3-class (%)"] == 100, sanity
assert sanity["max |p_nom + p_def - 1|"] < 1e-6, sanity
sanity.round(6)

# %% [markdown]
# ## What the paper reports
#
# Exp. 3 accuracy, sensitivity and specificity at every learning size, for ViT-L/14 and ViT-B/32, from the
# official aggregated results (one split, seed 2024, 200 test images: one image is 0.5 points). The rows
# "few-shot 1-NN (smallest learning set)" repeat the 10-image accuracy without a learning size, so that a claim can
# set the curve's end against its start.

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

RESULTS = "https://github.com/fmegahed/qe_genai/blob/981073a6f3bc1a21584147a08a67f643e3fa9e4c/results/"
PAPER_SIZES = [10, 20, 30, 50, 60, 70, 80, 90, 100, 120, 150, 200, 250, 300, 350]
EXP03 = {
    ("ViT-L-14-quickgelu", "exp03_aggregated_results.csv"): {
        "accuracy": [90.0, 91.5, 96.0, 97.5, 97.5, 97.5, 97.5, 97.5, 97.5, 97.0, 97.0, 98.5, 97.0, 97.0, 97.0],
        "sensitivity": [84.0, 85.0, 94.0, 96.0, 97.0, 97.0, 97.0, 97.0, 97.0, 96.0, 96.0, 98.0, 96.0, 96.0, 96.0],
        "specificity": [96.0, 98.0, 98.0, 99.0, 98.0, 98.0, 98.0, 98.0, 98.0, 98.0, 98.0, 99.0, 98.0, 98.0, 98.0]},
    ("ViT-B-32-quickgelu", "exp03_b32_aggregated_results.csv"): {
        "accuracy": [72.0, 69.0, 69.0, 68.5, 68.0, 68.5, 68.5, 71.5, 70.5, 73.0, 75.5, 74.0, 74.5, 74.0, 73.5],
        "sensitivity": [65.0, 66.0, 70.0, 66.0, 65.0, 62.0, 62.0, 65.0, 66.0, 66.0, 68.0, 67.0, 67.0, 66.0, 66.0],
        "specificity": [79.0, 72.0, 68.0, 71.0, 71.0, 75.0, 75.0, 78.0, 75.0, 80.0, 83.0, 81.0, 82.0, 82.0, 81.0]},
}
REPORTED = [
    row for (model, file), curves in EXP03.items()
    for row in reported_rows(
        [{"metric": metric, "shots": n, "value": value} for metric, curve in curves.items()
         for n, value in zip(PAPER_SIZES, curve)]
        + [{"method": "few-shot 1-NN (smallest learning set)", "metric": "accuracy", "value": curves["accuracy"][0]}],
        source=f"results/{file} (Exp. 3, seed 2024)", url=RESULTS + file, model=model, dataset="textile_sts",
        method="few-shot 1-NN")
]

# %% [markdown]
# ## Accuracy against the learning-set size
#
# Our curves are the mean ± standard deviation over the seeds' splits, the dashed lines zero-shot CLIP; the stars
# are the paper's reported accuracies.

# %%
reported = pd.DataFrame(REPORTED)
few_shot = rows[(rows.method == "few-shot 1-NN") & (rows.metric == "accuracy")]
fig, ax = plt.subplots(figsize=(8.5, 4.6))
palette = dict(zip(loaded_models, sns.color_palette(n_colors=len(loaded_models))))
sns.lineplot(data=few_shot, x="shots", y="value", hue="model", palette=palette, marker="o", errorbar="sd", ax=ax)
zero_shot_means = rows[(rows.method == "zero-shot CLIP") & (rows.metric == "accuracy")].groupby("model")["value"].mean()
for name, accuracy in zero_shot_means.items():
    ax.axhline(accuracy, color=palette[name], linestyle="--", linewidth=1.2, label=f"{name} zero-shot")
for (name, curve), colour in zip(reported[(reported.metric == "accuracy") & reported.shots.notna()].groupby("model"),
                                 ["grey", "black"]):
    ax.plot(curve["shots"], curve["value"], "*", markersize=11, color=colour, label=f"{name} few-shot (reported)")
ax.axhline(50, color="black", linewidth=0.6, alpha=0.4)
ax.set_xlabel("learning images per class (nominal; defective split local/global)")
ax.set_ylabel("accuracy on the test images (%)")
ax.set_ylim(40, 101)
ax.set_title(f"Exp. 3 textiles · {textile_dataset}")
ax.legend(fontsize=8, loc="lower right")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Confusion matrices
#
# The paper's binary matrices at a few learning sizes, and the 3-class reading (our addition) at the largest,
# for the headline model, summed over the seeds' test sets.

# %%
def confusion(truth, predicted, classes) -> np.ndarray:
    return np.array([[int(((truth == t) & (predicted == p)).sum()) for p in range(classes)] for t in range(classes)])


def summed_confusion(model_name, n, three_class: bool) -> np.ndarray:
    items = [p for p in predictions if p["model"] == model_name and p["shots"] == n]
    if three_class:
        return sum(confusion(p["truth"], p["three_class"], 3) for p in items)
    return sum(confusion((p["truth"] > 0).astype(int), (p["three_class"] > 0).astype(int), 2) for p in items)


fig, axes = plt.subplots(1, len(confusion_shots) + 1, figsize=(3.6 * (len(confusion_shots) + 1) + 1.2, 3.6),
                         gridspec_kw={"width_ratios": [1] * len(confusion_shots) + [1.4]})
for ax, n in zip(axes, confusion_shots):
    sns.heatmap(summed_confusion(headline, n, False), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=["nominal", "defective"], yticklabels=["nominal", "defective"])
    ax.set_title(f"learning size {n}", fontsize=10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
sns.heatmap(summed_confusion(headline, confusion_shots[-1], True), annot=True, fmt="d", cmap="Purples",
            cbar=False, ax=axes[-1], xticklabels=TEXTILE_CLASSES, yticklabels=TEXTILE_CLASSES)
axes[-1].set_title(f"3-class, learning size {confusion_shots[-1]}", fontsize=10)
axes[-1].set_xlabel("predicted (defect type of nearest defective image)")
axes[-1].set_ylabel("true")
fig.suptitle(f"{headline} · summed over seeds {', '.join(map(str, seeds))}", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Exp. 1: metallic pans and the overlapping test set (paper profile)
#
# The pans (Megahed & Camelio 2012) have 10 nominal and 10 defective learning images; the README reports 94 of 100
# test images correct (the model of that run is not stated). On 2025-06-08 the authors deleted 22 test images that
# duplicated learning images (commit 981073a) without regenerating `results/exp01_results.csv`; on the 78 that
# remain, its stored predictions give 72/78 = 92.3 %. The paper profile recomputes both numbers from the stored
# predictions, then runs the rule on the de-duplicated test set (rows with dataset `qe_genai_pan`). The images are
# not shipped with clipbook, so the offline profile skips this part.

# %%
def stored_pan_predictions(pan_test) -> pd.Series:
    """Accuracy of the official stored predictions on all 100 test images and on the 78 still in the repository."""
    path = registry.data_root() / "qe_genai" / "results" / "exp01_results.csv"
    if not path.exists():
        raise registry.MissingDatasetError(f"official Exp. 1 predictions not found: {path}\n"
                                           "Clone https://github.com/fmegahed/qe_genai into the data root.")
    stored = pd.read_csv(path)
    truth = ["nominal"] * 50 + ["defective"] * 50  # label_counts [50, 50]: nominal rows first, as the official code
    kept = {tuple(p.split("/")[-2:]) for p in pan_test.relative_paths}
    correct = stored["classification_result"].str.lower().to_numpy() == np.array(truth)
    still_there = np.array([(label, name) in kept for label, name in zip(truth, stored["image_name"])])
    return pd.Series({"stored predictions, all 100 (%)": 100 * correct.mean(),
                      "test images still in the repository": int(still_there.sum()),
                      "stored predictions, de-duplicated (%)": 100 * correct[still_there].mean()})


def pan_rows(pan_learn, pan_test) -> list[dict]:
    """Few-shot and zero-shot rows on the pans: one fixed learning set, so no seed."""
    out = []
    nominal, defective = pan_learn.labels == 0, pan_learn.labels == 1
    for name, loaded in loaded_models.items():
        task = ClassificationTask(loaded, pan_dataset)
        x_learn, x_test = task.features("train")[0], task.features("test")[0]
        _, is_defective, _ = few_shot_classify(x_test, x_learn[torch.as_tensor(nominal)],
                                               x_learn[torch.as_tensor(defective)])
        base = {"model": name, "dataset": pan_dataset}
        out += metric_rows({**base, "method": "few-shot 1-NN", "shots": int(nominal.sum())},
                           rates(is_defective.numpy(), pan_test.labels, pan_test.classnames))
        out += metric_rows({**base, "method": "zero-shot CLIP"},
                           rates(zero_shot_defective(loaded, x_test, pan_zero_shot_prompts).numpy(), pan_test.labels,
                                 pan_test.classnames))
    return out


if pan_dataset is None:
    print("Exp. 1 skipped: pan_dataset is None (the pan images are not shipped; the paper profile sets "
          "pan_dataset: qe_genai_pan and reads them from a clone of the official repository).")
else:
    pan_learn, pan_test = registry.load_dataset(pan_dataset, "train"), registry.load_dataset(pan_dataset, "test")
    display(stored_pan_predictions(pan_test).round(1))
    rows = pd.concat([rows, pd.DataFrame(pan_rows(pan_learn, pan_test))], ignore_index=True)
    display(rows[rows.dataset == pan_dataset].pivot_table(index=["model", "method"], columns="metric",
                                                          values="value").round(1))

# %% [markdown]
# ## Claims
#
# The paper reads its Exp. 3 curves per model, one split each; here each claim is the mean over seeds, then over
# models. "Rises with the learning set" sets the few-shot accuracy at the largest learning size against the same
# rule with the smallest learning set, on the same test images, and requires encoder features that separate the
# classes at all (few-shot accuracy at the largest learning size at least 10 points above the 50 % of a balanced
# guess, for every model). "Beats zero-shot" is required at every learning size, and its zero-shot prompts are
# unconfirmed (see "The zero-shot baseline").

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = [
    Claim("rises-with-learning-set",
          "Few-shot 1-NN accuracy rises with the learning set: the largest learning size beats the smallest "
          "(Exp. 3 textiles, same test images; mean over seeds, then models)",
          method="few-shot 1-NN", baseline="few-shot 1-NN (smallest learning set)",
          where={"dataset": textile_dataset, "shots": max(shots)},
          paper_effect=4.25, paper_effect_source="mean over models of 350 − 10 learning images: ViT-L/14 "
          "97.0 − 90.0 (exp03_aggregated_results.csv), ViT-B/32 73.5 − 72.0 (exp03_b32_aggregated_results.csv)",
          requires=("features-separate-classes",)),
    Claim("beats-zero-shot",
          "Few-shot 1-NN beats zero-shot CLIP at every learning size (Exp. 3 textiles; mean over seeds, then "
          "models), zero-shot prompted with two textile descriptions unconfirmed as the paper's Exp. 3 prompts",
          method="few-shot 1-NN", baseline="zero-shot CLIP", where={"dataset": textile_dataset}, per=("shots",)),
]

# %%
textile_rows = rows[rows.dataset == textile_dataset]
smallest = textile_rows[(textile_rows.method == "few-shot 1-NN") & (textile_rows.shots == min(learning_sizes))
                        & (textile_rows.metric == "accuracy")]
rows = pd.concat([rows, smallest.drop(columns="shots").assign(method="few-shot 1-NN (smallest learning set)")],
                 ignore_index=True)
at_largest = textile_rows[(textile_rows.method == "few-shot 1-NN") & (textile_rows.metric == "accuracy")
                          & (textile_rows.shots == max(learning_sizes))].groupby("model")["value"].mean()
preconditions = [at_least("features-separate-classes",
                          f"few-shot 1-NN accuracy at {max(learning_sizes)} learning images, worst model",
                          float(at_largest.min()), 60.0, " %")]
flagged = textile_rows[(textile_rows.model == headline) & (textile_rows.shots == max(learning_sizes))]
flagged = flagged.groupby("metric")["value"].mean()
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=preconditions,
                notes=(f"Zero-shot prompts unconfirmed as the paper's Exp. 3 prompts (the notebook commit that added "
                       f"them is unreadable). Seeds {seeds} of the official split procedure (the paper's split is "
                       f"seed 2024). {headline} at learning size {max(learning_sizes)} flags "
                       f"{flagged['global detected']:.0f} % of global and {flagged['local detected']:.0f} % of local "
                       f"defects, and {100 - flagged['specificity']:.0f} % of nominal images."))
