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
# # Adapting OpenAI's CLIP for Few-Shot Image Inspection in Manufacturing Quality Control
#
# Megahed, Chen, Colosimo, Grasso, Jones-Farmer, Knoth, Sun, Zwetsloot — 2025 ·
# [arXiv:2501.12596](https://arxiv.org/abs/2501.12596) · official code
# [fmegahed/qe_genai](https://github.com/fmegahed/qe_genai) (MIT) and its package
# [FewShotIQ](https://github.com/Ying-Ju/FewShotIQ) (read, not copied).
#
# **Claim.** Without any training, CLIP image features make a good few-shot inspector: a test image is called
# defective when it is closer (cosine) to some defective learning image than to every nominal one. On simulated
# stochastic textured surfaces (Exp. 3) this beats zero-shot CLIP and its accuracy rises with the learning set:
# ViT-L/14 reaches 90.0 % with 10 learning images per class and 97.5 % with 50; ViT-B/32 stays near 70 %.
#
# **This notebook** regenerates Exp. 3 — accuracy against the learning-set size 10…350, the zero-shot baseline and
# the confusion matrices — on the real textile images (1,000 nominal, 500 local and 500 global defects, 250 px),
# which the PyPI package `conformal-clip-data` ships byte-identical to the official repository. The `offline`
# profile encodes them with the library's tiny CLIP, trained on the toy world at 64 px and never shown a textile:
# its numbers say how much a small, off-domain encoder's features carry, not what CLIP does. The `paper` profile
# runs OpenAI ViT-L/14 and ViT-B/32 on the paper's own split and adds Exp. 1 (metallic pans), whose official test
# set overlapped its learning set.

# %% tags=["parameters"]
profile = "offline"  # "offline" (tiny CLIP, CPU) or "paper" (OpenAI CLIP checkpoints, GPU)
models = [["clipbook-tiny-rn", "toyworld"]]  # [open_clip architecture, pretrained tag]; the first is the headline
dataset = "textile_sts"  # Exp. 3 images, class folders nominal / local / global (clipbook.data.registry)
seeds = [1, 2, 3]  # seeds of the official split procedure (the paper drew one split, with random.seed(2024))
learning_sizes = [10, 20, 30, 50, 60, 70, 80, 90, 100, 120, 150, 200, 250, 300, 350]  # official learn_grid
test_nominal = 100  # official test_size: 100 nominal + 50 global + 50 local test images
zero_shot_prompts = [  # [nominal, defective]; see "The zero-shot baseline" below for where they come from
    "A woven textile with a uniform and consistent pattern, featuring no visible tears, defects, or disruptions "
    "in the material's weave structure.",
    "A woven textile with a distinct defect, where the material has been damaged, disrupting the otherwise "
    "uniform pattern of the fabric.",
]
confusion_sizes = [10, 50, 350]  # learning sizes whose confusion matrices are shown
pan_dataset = None  # Exp. 1 metallic pans, e.g. "qe_genai_pan" (paper profile; the images are not shipped)
pan_zero_shot_prompts = ["A metallic pan free of black scuff marks",
                         "A metallic pan with a simulated scuff mark drawn by a black marker"]
device = "auto"

# %%
import random

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from IPython.display import display
from PIL import Image
from scipy import stats
from sklearn.neighbors import KNeighborsClassifier

import clipbook
from clipbook import features, metrics, zeroshot
from clipbook.data import registry
from clipbook.models.loader import load_model
from clipbook.report.record import record

TEXTILE_CLASSES = ["nominal", "local", "global"]  # label order of the registry's textile datasets


def check_int_list(name, values, minimum):
    if (not isinstance(values, list) or not values
            or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values)):
        raise ValueError(f"{name} must be a non-empty list of integers >= {minimum}, got {values!r}")


def check_prompts(name, prompts):
    if not (isinstance(prompts, list) and len(prompts) == 2 and all(isinstance(p, str) and p for p in prompts)):
        raise ValueError(f"{name} must be two non-empty strings [nominal prompt, defective prompt], got {prompts!r}")


if (not isinstance(models, list) or not models
        or any(not (isinstance(m, list) and len(m) == 2 and all(isinstance(x, str) for x in m)) for m in models)):
    raise ValueError(f"models must be a non-empty list of [open_clip architecture, pretrained tag] pairs, "
                     f"got {models!r}")
if len({name for name, _ in models}) != len(models):
    raise ValueError(f"models must name each architecture once, got {models!r}")
check_int_list("seeds", seeds, 0)
check_int_list("learning_sizes", learning_sizes, 2)
check_int_list("confusion_sizes", confusion_sizes, 2)
if len(set(learning_sizes)) != len(learning_sizes) or learning_sizes != sorted(learning_sizes):
    raise ValueError(f"learning_sizes must be increasing and distinct, got {learning_sizes!r}")
if missing := sorted(set(confusion_sizes) - set(learning_sizes)):
    raise ValueError(f"confusion_sizes {missing} are not among the learning_sizes {learning_sizes}")
if isinstance(test_nominal, bool) or not isinstance(test_nominal, int) or test_nominal < 2 or test_nominal % 2:
    raise ValueError(f"test_nominal must be an even integer >= 2 (half as many test images per defect type), "
                     f"got {test_nominal!r}")
check_prompts("zero_shot_prompts", zero_shot_prompts)
check_prompts("pan_zero_shot_prompts", pan_zero_shot_prompts)
textile_datasets = [name for name in registry.known_datasets()
                    if registry.DATASETS[name].get("classes") == TEXTILE_CLASSES]
if dataset not in textile_datasets:
    raise ValueError(f"dataset {dataset!r} is not an Exp. 3 textile dataset (classes {', '.join(TEXTILE_CLASSES)}); "
                     f"accepted: {', '.join(textile_datasets)}")
if pan_dataset is not None and not isinstance(pan_dataset, str):
    raise ValueError(f"pan_dataset must be None or a dataset name such as 'qe_genai_pan', got {pan_dataset!r}")

session = clipbook.setup(profile, device=device)
clipbook.preflight(models, [dataset], splits=("all",))  # missing weights or images fail here, before any encoding
if pan_dataset is not None:
    clipbook.preflight([], [pan_dataset], splits=("train", "test"))

textile = registry.load_dataset(dataset, "all")
class_counts = dict(zip(TEXTILE_CLASSES, np.bincount(textile.labels, minlength=3).tolist()))
most_nominal = class_counts["nominal"] - test_nominal
most_defective = 2 * (min(class_counts["local"], class_counts["global"]) - test_nominal // 2)
if min(most_nominal, most_defective) < 1:
    raise ValueError(f"test_nominal={test_nominal} leaves no learning images; images per class: {class_counts}")
if learning_sizes[-1] > min(most_nominal, most_defective + 1):
    raise ValueError(f"learning size {learning_sizes[-1]} is too large: with test_nominal={test_nominal} this dataset "
                     f"({class_counts}) leaves {most_nominal} nominal and {most_defective // 2} images per defect type "
                     f"for learning, so learning sizes must be <= {min(most_nominal, most_defective + 1)}")
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


headline_model = load_model(*models[0], device=session.device)
fig, axes = plt.subplots(2, 3, figsize=(9, 6.2))
for column, classname in enumerate(TEXTILE_CLASSES):
    image, _ = textile[int(np.flatnonzero(textile.labels == column)[0])]
    small = input_size(headline_model)
    axes[0, column].imshow(image)
    axes[1, column].imshow(image.resize((small, small), Image.BICUBIC))
    axes[0, column].set_title(f"{classname} · {image.size[0]} px", fontsize=10)
    axes[1, column].set_title(f"{classname} · {small} px ({models[0][0]})", fontsize=10)
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
# prompts $t_{\text{nom}}, t_{\text{def}}$, argmax. The pan prompts are those of FewShotIQ's usage guide. The
# official notebook version that added zero-shot to Exp. 3 (commit e075919) was not readable in our snapshot of
# the repository, so the textile prompts are the authors' own two-class textile descriptions from the official
# textile transfer run (`results/exp03_transfer_learning_results.csv`); they are a parameter, and unconfirmed as
# the Exp. 3 zero-shot prompts. The paper reports no Exp. 3 zero-shot accuracy that we could confirm, so none is
# shown.

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
# exactly; the check below compares it with file names in the official `results/exp03_results_10.csv`.

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
# Every image is encoded once per model (the library caches the features); each seed draws its own split; the
# zero-shot baseline and the few-shot rule at every learning size see the same test images.

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


def evaluate(loaded, model_name):
    """Rows (one per model, seed, method, learning size) and the per-image predictions behind them."""
    image_features = features.image_features(loaded, textile)
    rows, predictions = [], []
    for seed in seeds:
        split = official_split(textile.labels, seed, test_nominal)
        test = split["test"]
        truth = textile.labels[test]
        zero_shot = zero_shot_defective(loaded, image_features[test], zero_shot_prompts).numpy()
        rows.append({"model": model_name, "seed": seed, "method": "zero-shot CLIP", "learning size": 0,
                     **rates(zero_shot, truth, TEXTILE_CLASSES)})
        for n in learning_sizes:
            nominal, defective = learning_set(split, n)
            probabilities, is_defective, nearest = few_shot_classify(image_features[test], image_features[nominal],
                                                                     image_features[defective])
            is_defective = is_defective.numpy()
            three_class = np.where(is_defective, textile.labels[defective][nearest.numpy()], 0)
            rows.append({"model": model_name, "seed": seed, "method": "few-shot 1-NN", "learning size": n,
                         **rates(is_defective, truth, TEXTILE_CLASSES)})
            predictions.append({"model": model_name, "seed": seed, "learning size": n, "truth": truth,
                                "three_class": three_class, "correct": is_defective == (truth > 0),
                                "probabilities": probabilities, "test": test, "nominal": nominal,
                                "defective": defective})
    return rows, predictions, image_features


loaded_models = {name: headline_model if [name, tag] == models[0] else load_model(name, tag, device=session.device)
                 for name, tag in models}
rows, predictions, encoded = [], [], {}
for name, loaded in loaded_models.items():
    model_rows, model_predictions, encoded[name] = evaluate(loaded, name)
    rows += model_rows
    predictions += model_predictions
results = pd.DataFrame(rows)
few_shot = results[results.method == "few-shot 1-NN"]
zero_shot = results[results.method == "zero-shot CLIP"]
RATES = ["accuracy", "sensitivity", "specificity", "local detected", "global detected"]


def mean_table(frame, by):
    """Means over seeds of every rate, and the seeds' standard deviation of the accuracy."""
    table = frame.groupby(by)[RATES].mean()
    table.insert(1, "accuracy sd", frame.groupby(by)["accuracy"].std())
    return table.round(1)


mean_table(few_shot, ["model", "learning size"])

# %%
mean_table(zero_shot, ["model"])

# %% [markdown]
# ## Sanity check against an independent formulation
#
# The rule is a 1-nearest-neighbour classifier, so scikit-learn's `KNeighborsClassifier(1, metric="cosine")`
# fitted on the union of the nominal and defective learning images must predict the same label for every test
# image — with binary labels for the paper's decision, and with nominal / local / global labels for the 3-class
# reading. The softmax probabilities must sum to 1. Checked for the headline model at every seed and learning size.

# %%
def check_against_knn(model_name):
    image_features = encoded[model_name].numpy()
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


sanity = check_against_knn(models[0][0])
assert sanity["agreement with sklearn 1-NN, binary (%)"] == 100, sanity
assert sanity["agreement with sklearn 1-NN, 3-class (%)"] == 100, sanity
assert sanity["max |p_nom + p_def - 1|"] < 1e-6, sanity
sanity.round(6)

# %% [markdown]
# ## Accuracy against the learning-set size
#
# Our curves are the mean ± standard deviation over the seeds' splits; the stars are the paper's reported
# accuracies (Exp. 3, `results/exp03_aggregated_results.csv` and `exp03_b32_aggregated_results.csv`), one split
# of 200 test images each, so one image is 0.5 points.

# %%
# Reported (papers.md): accuracy (%) at the nominal learning size, Exp. 3 textiles, OpenAI checkpoints.
REPORTED = {"ViT-L-14-quickgelu": {10: 90.0, 30: 96.0, 50: 97.5, 200: 98.5},
            "ViT-B-32-quickgelu": {10: 72.0, 50: 68.5}}
REPORTED_LABEL = {"ViT-L-14-quickgelu": "ViT-L/14", "ViT-B-32-quickgelu": "ViT-B/32"}

fig, ax = plt.subplots(figsize=(8.5, 4.6))
palette = dict(zip(loaded_models, sns.color_palette(n_colors=len(loaded_models))))
sns.lineplot(data=few_shot, x="learning size", y="accuracy", hue="model", palette=palette, marker="o",
             errorbar="sd", ax=ax)
for name, accuracy in zero_shot.groupby("model")["accuracy"].mean().items():
    ax.axhline(accuracy, color=palette[name], linestyle="--", linewidth=1.2, label=f"{name} zero-shot")
for reported_name, curve in REPORTED.items():
    ax.plot(list(curve), list(curve.values()), "*", markersize=11, color="black" if "L-14" in reported_name else "grey",
            label=f"{REPORTED_LABEL[reported_name]} few-shot (reported)")
ax.axhline(50, color="black", linewidth=0.6, alpha=0.4)
ax.set_xlabel("learning images per class (nominal; defective split local/global)")
ax.set_ylabel("accuracy on 200 test images (%)")
ax.set_ylim(40, 101)
ax.set_title(f"Exp. 3 textiles · {dataset}")
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
    items = [p for p in predictions if p["model"] == model_name and p["learning size"] == n]
    if three_class:
        return sum(confusion(p["truth"], p["three_class"], 3) for p in items)
    return sum(confusion((p["truth"] > 0).astype(int), (p["three_class"] > 0).astype(int), 2) for p in items)


fig, axes = plt.subplots(1, len(confusion_sizes) + 1, figsize=(3.6 * (len(confusion_sizes) + 1) + 1.2, 3.6),
                         gridspec_kw={"width_ratios": [1] * len(confusion_sizes) + [1.4]})
for ax, n in zip(axes, confusion_sizes):
    sns.heatmap(summed_confusion(models[0][0], n, False), annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax,
                xticklabels=["nominal", "defective"], yticklabels=["nominal", "defective"])
    ax.set_title(f"learning size {n}", fontsize=10)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
sns.heatmap(summed_confusion(models[0][0], confusion_sizes[-1], True), annot=True, fmt="d", cmap="Purples",
            cbar=False, ax=axes[-1], xticklabels=TEXTILE_CLASSES, yticklabels=TEXTILE_CLASSES)
axes[-1].set_title(f"3-class, learning size {confusion_sizes[-1]}", fontsize=10)
axes[-1].set_xlabel("predicted (defect type of nearest defective image)")
axes[-1].set_ylabel("true")
fig.suptitle(f"{models[0][0]} · summed over seeds {', '.join(map(str, seeds))}", fontsize=11)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Exp. 1: metallic pans and the overlapping test set (paper profile)
#
# The pans (Megahed & Camelio 2012) have 10 nominal and 10 defective learning images; the paper reports 94 of 100
# test images correct. On 2025-06-08 the authors deleted 22 test images that duplicated learning images (commit
# 981073a) without regenerating `results/exp01_results.csv`; on the 78 that remain, its stored predictions give
# 72/78 = 92.3 %. The paper profile recomputes both numbers from the stored predictions, then runs the rule on the
# de-duplicated test set. The images are not shipped with clipbook, so the offline profile skips this part.

# %%
PAN_REPORTED = 94.0  # README and results/exp01_results.csv: 94 of 100 test images


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


pan_results = pd.DataFrame()
if pan_dataset is None:
    print("Exp. 1 skipped: pan_dataset is None (the pan images are not shipped; the paper profile sets "
          "pan_dataset: qe_genai_pan and reads them from a clone of the official repository).")
else:
    pan_learn, pan_test = registry.load_dataset(pan_dataset, "train"), registry.load_dataset(pan_dataset, "test")
    pan_stored = stored_pan_predictions(pan_test)
    display(pan_stored.round(1))
    pan_rows = []
    for name, loaded in loaded_models.items():
        x_learn, x_test = features.image_features(loaded, pan_learn), features.image_features(loaded, pan_test)
        nominal, defective = torch.as_tensor(pan_learn.labels == 0), torch.as_tensor(pan_learn.labels == 1)
        _, is_defective, _ = few_shot_classify(x_test, x_learn[nominal], x_learn[defective])
        pan_rows += [{"model": name, "method": "few-shot 1-NN",
                      **rates(is_defective.numpy(), pan_test.labels, pan_test.classnames)},
                     {"model": name, "method": "zero-shot CLIP",
                      **rates(zero_shot_defective(loaded, x_test, pan_zero_shot_prompts).numpy(), pan_test.labels,
                              pan_test.classnames)}]
    pan_results = pd.DataFrame(pan_rows).round(1)
pan_results

# %% [markdown]
# ## Verdict
#
# The claim has two parts, tested on the headline model: (1) few-shot beats zero-shot — mean accuracy over the
# seeds above the zero-shot mean at every learning size; (2) accuracy rises with the learning set — the largest
# learning size classifies the same test images significantly better than the smallest (exact one-sided McNemar
# test on the test images pooled over seeds, p < 0.05). The table puts our curve beside the paper's reported
# ViT-L/14 and ViT-B/32 ones; with the tiny CLIP the gap is a statement about its features, not about CLIP.

# %%
def short(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")


def mcnemar_rise(model_name, small, large) -> tuple[float, int, int]:
    """One-sided exact McNemar p-value that learning size `large` is more accurate than `small`."""
    def correct(n):
        return np.concatenate([p["correct"] for p in predictions if p["model"] == model_name and p["learning size"] == n])
    gained = int((correct(large) & ~correct(small)).sum())
    lost = int((~correct(large) & correct(small)).sum())
    p_value = stats.binomtest(gained, gained + lost, 0.5, alternative="greater").pvalue if gained + lost else 1.0
    return float(p_value), gained, lost


headline = models[0][0]
mean_few_shot = few_shot.groupby(["model", "learning size"])["accuracy"].mean()
mean_zero_shot = zero_shot.groupby("model")["accuracy"].mean()
curve = mean_few_shot.loc[headline]
margin = curve - mean_zero_shot[headline]
beats_zero_shot = bool((margin > 0).all())
smallest, largest = learning_sizes[0], learning_sizes[-1]
p_rise, gained, lost = mcnemar_rise(headline, smallest, largest)
rises = p_rise < 0.05

shown_sizes = sorted({n for reported_curve in REPORTED.values() for n in reported_curve if n in learning_sizes}
                     | {smallest, largest})
verdict = pd.DataFrame({"few-shot 1-NN (ours)": curve, "zero-shot (ours)": mean_zero_shot[headline],
                        "few-shot − zero-shot": margin}).loc[shown_sizes]
for reported_name, reported_curve in REPORTED.items():
    column = f"{REPORTED_LABEL[reported_name]} (reported)"
    verdict[column] = pd.Series(reported_curve)
    verdict[f"ours − {REPORTED_LABEL[reported_name]}"] = verdict["few-shot 1-NN (ours)"] - verdict[column]
verdict = verdict.round(1)
display(verdict)
pd.Series({f"accuracy at {largest} − at {smallest} (points)": round(curve[largest] - curve[smallest], 2),
           "test images gained / lost": f"{gained} / {lost}", "McNemar one-sided p": round(p_rise, 4),
           "few-shot beats zero-shot at every size": beats_zero_shot, "accuracy rises (p < 0.05)": rises})

# %%
metric_values, baseline_values, reported_values = {}, {}, {}
for name in loaded_models:
    suffix = "" if name == headline else f"_{short(name)}"
    metric_values.update({f"few_shot_{n}{suffix}": mean_few_shot[name][n] for n in shown_sizes})
    baseline_values[f"zero_shot{suffix}"] = mean_zero_shot[name]
    if session.profile == "paper" and name in REPORTED:  # reported numbers are comparable only for the paper's models
        reported_values.update({f"few_shot_{n}{suffix}": v for n, v in REPORTED[name].items() if n in learning_sizes})
if not pan_results.empty:
    for name in loaded_models:
        suffix = "" if name == headline else f"_{short(name)}"
        part = pan_results[pan_results.model == name].set_index("method")["accuracy"]
        metric_values[f"pan_few_shot{suffix}"] = part["few-shot 1-NN"]
        baseline_values[f"pan_zero_shot{suffix}"] = part["zero-shot CLIP"]
    metric_values["pan_stored_predictions_deduplicated"] = pan_stored["stored predictions, de-duplicated (%)"]
    reported_values["pan_few_shot"] = PAN_REPORTED
key_size = 50 if 50 in learning_sizes else largest
detected = few_shot[(few_shot.model == headline) & (few_shot["learning size"] == largest)][RATES].mean()
gaps = verdict["ours − ViT-L/14"].dropna()
gap_note = (f" Against the paper's ViT-L/14 curve: {', '.join(f'{v:+.1f} at {n}' for n, v in gaps.items())} points"
            + (" (a statement about the tiny CLIP's 64 px toy-world features)." if session.profile == "offline" else "."))
result = record(
    metrics=metric_values, baseline=baseline_values, reported=reported_values,
    key_metric=f"few_shot_{key_size}", key_baseline="zero_shot",
    claim="Few-shot 1-NN on CLIP image features beats zero-shot CLIP and improves with the learning-set size "
          "(Exp. 3 textiles; ViT-L/14 reported 90.0 % at 10, 97.5 % at 50 per class)",
    claim_holds=beats_zero_shot and rises,
    notes=(f"{headline}: few-shot {'beat' if beats_zero_shot else 'did not beat'} zero-shot at every learning size "
           f"(margin {margin.min():.1f} to {margin.max():.1f} points); accuracy at {largest} vs {smallest}: "
           f"{curve[largest] - curve[smallest]:+.1f} points, McNemar p = {p_rise:.3f} "
           f"({'a significant rise' if rises else 'no significant rise'}). Seeds {seeds} of the official split "
           f"procedure (the paper's split is seed 2024). At learning size {largest} it flags "
           f"{detected['global detected']:.0f} % of global and {detected['local detected']:.0f} % of local defects "
           f"(and {100 - detected['specificity']:.0f} % of nominal images).{gap_note}"),
)
# manufacturing-inspection under the paper profile: `invoke batch --profile paper --papers manufacturing-inspection`,
# or `papermill notebooks/manufacturing-inspection.ipynb out.ipynb -f notebooks/profiles/paper/manufacturing-inspection.yaml`.
