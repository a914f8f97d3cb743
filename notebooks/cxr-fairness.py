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
# # Fairness and Robustness of CLIP-Based Models for Chest X-rays
#
# Sourget, Hestbek-Møller, Jiménez-Sánchez, Junchi Xu, Cheplygina — 2025 · [arXiv:2507.21291](https://arxiv.org/abs/2507.21291)
# · official code [TheoSourget/clip_cxr_fairness](https://github.com/TheoSourget/clip_cxr_fairness) (MIT; read, not
# copied; snapshot `284b181`).
#
# **Claim.** Six medical CLIPs, used zero-shot ("Chest {finding}" against "Chest No findings"), detect a
# pneumothorax better on chest X-rays that also show a **chest drain** — the treatment, not the disease — than on
# those without one: on NIH-CXR14 with NEATX drain labels, the AUC is higher with drains for 5 of the 6 models
# (e.g. CheXzero 0.77 vs 0.67), so the models rely on a shortcut. Performance also drops with **age**
# (MIMIC-CXR, e.g. CheXzero atelectasis 0.77 at 18–25 vs 0.57 at 80+), and sensitive attributes can be predicted
# from the embeddings although a 2-D PCA shows no such pattern. This notebook regenerates the drain table
# (`data/performance/CXR14/zeroshot_*.csv`), the age gap and the attribute-prediction comparison.
#
# **This notebook.** The `offline` profile runs on `toyworld.medical`, a radiograph-like toy domain: a subtle
# pneumothorax-like finding, a chest-drain marker that co-occurs with it (in 65 % of positives and 5 % of negatives,
# as in CXR14), and sex and age groups that change the anatomy (older: larger heart, fainter ribs, lower contrast,
# more noise). The library's tiny CLIP never saw this domain, so its zero-shot scores carry no finding signal and
# every zero-shot claim is *not tested* by a precondition. To measure the shortcut at all, a **linear probe** on
# the tiny CLIP's image features (the official code's `lp` head) is trained on a cohort where the drain co-occurs
# with the finding, as the medical CLIPs learned from reports of such images — a proxy, labelled as one. A control
# probe is trained on the same images with every drain removed (a counterfactual only a toy world has). The
# `paper` profile (`notebooks/profiles/paper/cxr-fairness.yaml`) runs the medical CLIPs that open_clip can load
# (CheXzero: OpenAI ViT-B/32 with its Google-Drive weights; BiomedCLIP: `hf-hub:`) zero-shot on NIH-CXR14 + NEATX
# and MIMIC-CXR.
#
# **Deviations.** (1) Offline, the shortcut and age claims are tested on a linear probe, not on zero-shot scores
# (above). (2) Attribute prediction uses the official `lp` head (a linear probe), not its default `mlp` head: one
# `mlp` fit takes 50–110 s on two shared cores; and the `lp` head's logistic regression is fitted by L-BFGS with
# its L2 strength chosen on validation instead of by Adam with its learning rate chosen there (see the method). (3) The official `predict_attribute.py` indexes its training embeddings with positions taken
# inside the train+val subset and, under `--projection_type PCA`, refits the classifier on unprojected features but
# predicts projected ones; here every fit and prediction use the same rows and the same projection. (4) Each
# bootstrap interval draws from its own generator seeded with 1907 (the official script seeds numpy's global
# generator once, so its intervals depend on the order they are computed in); the draws are the same as there.
# (5) One image per patient in the toy world, so the official `GroupShuffleSplit` by patient is a plain split.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy-cxr"]
seeds = [1, 2, 3]
classifiers = ["zero-shot", "probe"]
train_images = 2000
test_images = 2000
bootstrap_samples = 1000
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Int, ListOf, Str, declare

SPEC = declare(
    "profile", "models", "datasets", "seeds", "device",
    classifiers=ListOf(Str(["zero-shot", "probe"]),
                       help="zero-shot: the paper's binary prompts; probe: a linear probe on the image features, "
                            "trained where the drain co-occurs with the finding (toy datasets only: they have a "
                            "training cohort with drain labels)"),
    train_images=Int(minimum=100, help="images in each toy training cohort (the validation cohort has a quarter)"),
    test_images=Int(minimum=100, help="images in each toy test cohort (CXR14-like: 10 % positives)"),
    bootstrap_samples=Int(minimum=10, help="bootstrap resamples per interval (evaluate_performance.py: 1000)"),
)

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from sklearn.decomposition import PCA
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

import clipbook
from clipbook import claims, determinism, metrics
from clipbook.data import registry
from clipbook.evaluation import fairness
from clipbook.features import image_features
from clipbook.models.loader import MissingCheckpointError, load_model
from clipbook.toyworld import medical

# The medical CLIPs of the official code (`models/*`, README "Models") and how each would be loaded here: only
# those open_clip can build are runnable; the others need their own code bases.
MEDICAL_CLIPS = {
    "CheXzero": {"architecture": "ViT-B-32", "weights": "chexzero/clip_weights.pt", "preprocess_from": "openai",
                 "loader": "open_clip: OpenAI ViT-B/32 + weights file (models/chexzero/chexzero.py: clip.load then "
                           "load_state_dict; OpenAI's resize 224, centre crop, normalisation)",
                 "source": "the CheXzero weights on Google Drive, https://drive.google.com/drive/folders/"
                           "1makFLiEMbSleYltaRxw81aBhEDMpVwno (README of clip_cxr_fairness, 'CheXzero'), saved as "
                           "<weights>/chexzero/clip_weights.pt"},
    "BiomedCLIP": {"architecture": "hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224", "weights": None,
                   "preprocess_from": None, "loader": "open_clip hf-hub: (models/biomedclip/biomedclip.py); not in "
                   "the paper's result files", "source": "Hugging Face hub"},
    "CXR-CLIP": {"loader": "unavailable here: its own code base (Soombit-ai/cxr-clip, ResNet50 'M,M,C14' checkpoint)"},
    "MedCLIP": {"loader": "unavailable here: the vendored medclip package (Swin-tiny + BERT)"},
    "BioViL": {"loader": "unavailable here: hi-ml-multimodal image encoder + microsoft/BiomedVLP-CXR-BERT-specialized"},
    "BioViL-T": {"loader": "unavailable here: hi-ml-multimodal BioViL-T + microsoft/BiomedVLP-BioViL-T"},
    "MedImageInsight": {"loader": "unavailable here: its own wrapper around HF lion-ai/MedImageInsights"},
}


def medical_clip(architecture: str, tag) -> str | None:
    """The name of the medical CLIP a [architecture, tag] pair loads, if it is one of MEDICAL_CLIPS."""
    for name, spec in MEDICAL_CLIPS.items():
        if spec.get("architecture") == architecture and (spec["weights"] is None or str(tag).endswith(spec["weights"])):
            return name
    return None


try:
    session = clipbook.start(SPEC, globals())
except MissingCheckpointError as error:  # say where a medical CLIP's weights come from
    named = [medical_clip(*pair) for pair in models if isinstance(pair, list) and len(pair) == 2]
    sources = "; ".join(f"{name}: {MEDICAL_CLIPS[name]['source']}" for name in named if name)
    raise MissingCheckpointError(f"{error}{' Get it from ' + sources if sources else ''}") from None

TOY = {name for name in datasets if registry.DATASETS[name]["kind"] == "toy-medical"}
if "probe" in classifiers and set(datasets) - TOY:
    raise ValueError(f"classifier 'probe' needs a training cohort with drain labels, which only the toy datasets "
                     f"have; datasets {sorted(set(datasets) - TOY)} take classifiers=['zero-shot']")
# the per-image attribute holding the shortcut marker, per dataset
MARKER = {name: registry.DATASETS[name]["marker_attribute"] for name in datasets}
SUBGROUPS = {"sex": None, "age_group": list(medical.AGE_GROUPS)}  # attribute -> order of its groups
print(f"models: {models}; datasets: {datasets}; classifiers: {classifiers}; seeds: {seeds}")
pd.DataFrame({name: {"loader": spec["loader"]} for name, spec in MEDICAL_CLIPS.items()}).T

# %% [markdown]
# ## The toy cohorts
#
# One seed draws three cohorts (`toyworld.medical.cohort_dataset`). **Train** and **validation**: 30 % positives, a
# drain in 90 % of them and 5 % of negatives — the co-occurrence a model learns the shortcut from. **Test**: as
# CXR14 with NEATX labels in the official evaluation, 10 % positives (its `baseline_auprc`), a drain in 65 % of
# them (the prevalences 0.07 and 0.04 of its drain and no-drain subsets, which share the negatives) and 5 % of
# negatives. The **drain-free twins** are the same patients with the drain removed
# (`dataclasses.replace(radiograph, marker=0)`): the control probe trains on the twin of the training cohort.

# %%
TRAIN_RATES = {"prevalence": 0.3, "marker_given_finding": 0.9, "marker_given_no_finding": 0.05}
TEST_RATES = {"prevalence": 0.1, "marker_given_finding": 0.65, "marker_given_no_finding": 0.05}


def toy_cohorts(name: str, seed: int) -> dict:
    """The seed's train, validation and test cohorts and the drain-free twins of train and test."""
    cohorts = {
        "train": medical.cohort_dataset("train", n=train_images, seed=100 * seed + 1, name=name, **TRAIN_RATES),
        "val": medical.cohort_dataset("val", n=train_images // 4, seed=100 * seed + 2, name=name, **TRAIN_RATES),
        "test": medical.cohort_dataset("test", n=test_images, seed=100 * seed + 3, name=name, **TEST_RATES),
    }
    for split in ("train", "test"):
        cohorts[f"{split}-drain-free"] = medical.RadiographDataset(
            [replace(r, marker=0) for r in cohorts[split].radiographs], name=name, split=f"{split}-drain-free")
    return cohorts


example = toy_cohorts("toy-cxr", seeds[0])["test"]
shown = [next(i for i, r in enumerate(example.radiographs) if (r.finding, r.marker, r.sex, r.age_group) == want)
         for want in [(0, 0, "male", "25-50"), (1, 0, "male", "25-50"), (1, 1, "male", "25-50"),
                      (0, 0, "female", "25-50"), (0, 0, "male", "80+"), (0, 1, "female", "65-80")]]
figure, axes = plt.subplots(1, len(shown), figsize=(2 * len(shown), 2.3))
for axis, index in zip(axes, shown):
    r = example.radiographs[index]
    axis.imshow(example.render([index])[0])
    axis.set_title(f"{'finding' if r.finding else 'no finding'}{', drain' if r.marker else ''}\n{r.sex}, {r.age_group}",
                   fontsize=8)
    axis.axis("off")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The method
#
# **Zero-shot score** (`evaluate_performance.py`, `compute_probas`; CheXzero's `get_predictions` in
# `models/chexzero/chexzero.py`). For image embedding $v$ and the text embeddings $t_+$ of "Chest Pneumothorax"
# and $t_0$ of "Chest No findings", all L2-normalised,
# $$p(\text{finding}\mid x) = \operatorname{softmax}\big(v^\top t_+,\; v^\top t_0\big)_1 .$$
# CheXzero applies no logit scale (BiomedCLIP's wrapper does); the AUC, a ranking metric, is the same either way.

# %%
def zero_shot_probability(loaded, image_embeddings: torch.Tensor, finding: str = medical.FINDING) -> np.ndarray:
    """The first entry of the softmax over the binary prompts' cosine similarities (CheXzero's wrapper)."""
    text = torch.nn.functional.normalize(loaded.encode_text_prompts(medical.binary_prompts(finding)).float(), dim=-1)
    return (image_embeddings @ text.T).softmax(dim=1)[:, 0].numpy()


# %% [markdown]
# **Linear probe** (`predict_attribute.py`, `--classification_head lp`): a logistic regression on the image
# embeddings, one hyper-parameter chosen among three by validation AUC, then refitted on train + validation. The
# official head is `MLPClassifier(hidden_layer_sizes=(), alpha=0, max_iter=1000)` trained by Adam, its learning
# rate ($10^{-3}, 10^{-4}, 10^{-5}$) being the hyper-parameter; here the same model is fitted by L-BFGS
# (`LogisticRegression`) and the hyper-parameter is its inverse L2 strength $C \in \{10, 1, 0.1\}$ — a small
# learning rate with a fixed epoch budget acts as that regularisation, and Adam's 120 fits took 255 s here against
# about a second. The same head predicts the finding (the probe classifier) and the sensitive attributes in
# the embedding analysis below.

# %%
INVERSE_L2 = [10.0, 1.0, 0.1]  # stands for predict_attribute.py's 'lp' learning rates 1e-3, 1e-4, 1e-5


def _auc(labels, probabilities) -> float:
    if probabilities.shape[1] == 2:  # predict_attribute.py: binary AUC on the positive column, else one-vs-rest
        return roc_auc_score(labels, probabilities[:, 1])
    return roc_auc_score(labels, probabilities, multi_class="ovr")


def linear_probe(x_train, y_train, x_val, y_val) -> LogisticRegression:
    """The official 'lp' head's protocol: hyper-parameter chosen on validation AUC, refitted on train + validation."""
    def fit(x, y, inverse_l2):
        # one BLAS thread: these problems are small, and threads contending for busy cores made them 100x slower
        with threadpool_limits(determinism.SMALL_WORK_THREADS):
            return LogisticRegression(C=inverse_l2, max_iter=2000).fit(x.astype(np.float64), y)

    scores = [_auc(y_val, fit(x_train, y_train, c).predict_proba(x_val)) for c in INVERSE_L2]
    return fit(np.concatenate([x_train, x_val]), np.concatenate([y_train, y_val]), INVERSE_L2[int(np.argmax(scores))])


# %% [markdown]
# **Metrics** (`evaluate_performance.py`, `clipbook.evaluation.fairness`): AUC and the adjusted AUPRC
# $1-\log(\mathrm{AUPRC})/\log(\pi)$ with $\pi$ the prevalence, each with a 95 % percentile interval from 1000
# bootstrap resamples (seed 1907). The **drain subsets** follow the official CXR14 branch: *without drain* is the
# positives without a drain plus all negatives, *with drain* the positives with one plus all negatives. Subgroups
# (sex, age) hold all of their images.

# %%
def subset_table(labels, scores, marker, attributes: dict) -> pd.DataFrame:
    masks = {} if marker is None else fairness.marker_masks(labels, marker, "drain")
    for attribute, values in attributes.items():
        masks.update(fairness.subgroup_masks(attribute, values, SUBGROUPS.get(attribute)))
    table = fairness.metric_table(labels, scores, masks, samples=bootstrap_samples)
    names = {"global": "all", "drain=0": "without drain", "drain=1": "with drain"}
    table["method"] = [names.get(g, g.replace("age_group=", "age ")) for g in table.group]
    return table.drop(columns="group")


# %% [markdown]
# ## The experiment
#
# For every model, dataset and seed: image features (cached), the zero-shot score, and on the toy cohorts the
# shortcut probe (trained with drains) and the control probe (trained on the drain-free twin); each scored on the
# test cohort, by drain subset and subgroup, with bootstrap intervals. The shortcut probe also scores the test
# cohort's drain-free twin: the same patients, drains removed.

# %%
def toy_run(loaded, name: str, seed: int) -> tuple[list[pd.DataFrame], dict]:
    cohorts = toy_cohorts(name, seed)
    x = {split: image_features(loaded, data) for split, data in cohorts.items()}
    test = cohorts["test"]
    labels, marker = test.labels, test.attribute(MARKER[name])
    attributes = {a: test.attribute(a) for a in SUBGROUPS}
    tables, scores = [], {}
    if "zero-shot" in classifiers:
        scores["zero-shot"] = zero_shot_probability(loaded, x["test"])
    if "probe" in classifiers:
        for classifier, train_split in (("probe", "train"), ("probe (drain-free training)", "train-drain-free")):
            probe = linear_probe(x[train_split].numpy(), cohorts["train"].labels, x["val"].numpy(),
                                 cohorts["val"].labels)
            scores[classifier] = probe.predict_proba(x["test"].numpy())[:, 1]
            if classifier == "probe":
                scores["probe, test drains removed"] = probe.predict_proba(x["test-drain-free"].numpy())[:, 1]
    for classifier, score in scores.items():
        if classifier == "probe, test drains removed":  # every image is drain-free: only the global numbers
            table = fairness.metric_table(labels, score, samples=bootstrap_samples).assign(method="all")
            table = table.drop(columns="group")
        else:  # subgroups for the compared classifiers; the control probe needs only the drain subsets
            table = subset_table(labels, score, marker, {} if "drain-free" in classifier else attributes)
        tables.append(table.assign(classifier=classifier))
    return tables, {"scores": scores, "labels": labels, "marker": marker, "attributes": attributes,
                    "features": x["test"].numpy(), "cohort": test}


def real_run(loaded, name: str) -> tuple[list[pd.DataFrame], dict]:
    data = registry.load_dataset(name, "test")
    x = image_features(loaded, data)
    labels = data.labels
    marker = data.attribute(MARKER[name]) if MARKER[name] else None  # MIMIC-CXR has no drain labels
    attributes = {a: data.attribute(a) for a in data.subgroup_attributes}
    score = zero_shot_probability(loaded, x)
    table = subset_table(labels, score, marker, attributes).assign(classifier="zero-shot")
    return [table], {"scores": {"zero-shot": score}, "labels": labels, "marker": marker, "attributes": attributes,
                     "features": x.numpy(), "cohort": data}


tables, runs = [], {}
for architecture, tag in models:
    known = medical_clip(architecture, tag)
    loaded = load_model(architecture, tag, device=session.device,
                        preprocess_from=MEDICAL_CLIPS[known]["preprocess_from"] if known else None)
    model_name = known or (architecture if tag is None else f"{architecture}/{tag}")
    for name in datasets:
        for seed in (seeds if name in TOY else [None]):
            found, runs[model_name, name, seed] = toy_run(loaded, name, seed) if name in TOY else real_run(loaded, name)
            tables += [t.assign(model=model_name, dataset=name, seed=seed) for t in found]
performance = pd.concat(tables, ignore_index=True)
rows = performance.rename(columns={"images": "n_images"})[
    ["model", "dataset", "classifier", "method", "metric", "seed", "value", "low", "high", "n_images", "positives"]]
rows = rows.dropna(subset=["value"])
if rows.seed.isna().all():
    rows = rows.drop(columns="seed")

# %% [markdown]
# ### The drain table
#
# AUC on all test images, without and with drains (the official CXR14 table's three rows), per classifier; the
# 95 % bootstrap interval of each seed in brackets.

# %%
def with_interval(frame: pd.DataFrame) -> pd.Series:
    return frame.apply(lambda r: f"{r.value:.3f} [{r.low:.2f}, {r.high:.2f}]", axis=1)


drain_view = performance[(performance.metric == "AUC") & performance.method.isin(["all", "without drain", "with drain"])]
drain_view = drain_view.assign(auc=with_interval(drain_view)).pivot_table(
    index=["model", "dataset", "classifier", "seed"], columns="method", values="auc", aggfunc="first", dropna=False)
drain_view[[c for c in ["all", "without drain", "with drain"] if c in drain_view.columns]]

# %%
plot = performance[(performance.metric == "AUC") & performance.method.isin(["without drain", "with drain"])]
grid = sns.catplot(data=plot, x="classifier", y="value", hue="method", kind="point", dodge=0.3, errorbar=None,
                   hue_order=["without drain", "with drain"], col="dataset", height=3.2, aspect=1.8,
                   linestyles="none", markers=["o", "s"])
for axis in grid.axes.flat:
    axis.axhline(0.5, color="grey", lw=0.8, ls=":")
    axis.set_ylabel("AUC (test)")
    axis.tick_params(axis="x", labelsize=8)
grid.figure.suptitle("Pneumothorax-like finding: AUC without and with a drain (one point per seed)", y=1.04)
plt.show()

# %% [markdown]
# ### Subgroups
#
# AUC and adjusted AUPRC per sex and age group (mean over seeds; each cell's bootstrap intervals are in `rows`).

# %%
subgroup_view = performance[~performance.method.isin(["without drain", "with drain"])]
subgroup_view.groupby(["model", "dataset", "classifier", "metric", "method"], sort=False)["value"].mean().unstack(
    "method").round(3)

# %% [markdown]
# ### Worst-group accuracy
#
# The probes thresholded at 0.5, with groups (finding, drain) as in Waterbirds-style reporting
# (`clipbook.metrics.worst_group_accuracy`): the shortcut shows as a weak group of positives without a drain.

# %%
accuracy_rows = []
for (model_name, name, seed), run in runs.items():
    if run["marker"] is None or not any(c.startswith("probe") for c in run["scores"]):
        continue
    groups = np.array([f"{'finding' if y else 'no finding'}, {'drain' if m else 'no drain'}"
                       for y, m in zip(run["labels"], run["marker"])])
    for classifier, score in run["scores"].items():
        if classifier.startswith("probe") and "removed" not in classifier:
            predicted = (score > 0.5).astype(int)
            per_group = metrics.group_accuracies(predicted, run["labels"], groups)
            accuracy_rows.append({"model": model_name, "dataset": name, "classifier": classifier, "seed": seed,
                                  **{f"accuracy: {g}": v for g, v in per_group.items()},
                                  "worst-group accuracy": metrics.worst_group_accuracy(predicted, run["labels"], groups)})
pd.DataFrame(accuracy_rows).round(1) if accuracy_rows else "no probe was trained (classifiers has no 'probe')"

# %% [markdown]
# ## What the embeddings carry
#
# As `embedding_analysis.py` and `predict_attribute.py`: a 2-D PCA of the test images' embeddings coloured by each
# attribute, and each attribute predicted from the embeddings with the `lp` head on an 80/20 split of the test
# cohort (a further 80/20 split for validation, `random_state=1907` as there), once from the full embedding and
# once from its first two principal components (fitted on the training part). Test AUC, one-vs-rest for the five
# age groups. The paper: the attributes can be predicted from the embeddings although PCA shows no such pattern.

# %%
def attribute_prediction(features: np.ndarray, values: np.ndarray) -> dict:
    classes, y = np.unique(values, return_inverse=True)
    train_val, test = train_test_split(np.arange(len(y)), test_size=0.2, random_state=1907)
    train, val = train_test_split(train_val, test_size=0.2, random_state=1907)
    if any(len(np.unique(y[part])) < len(classes) for part in (train, val, test)):
        return {}  # a split without every class has no AUC (a handful of images)
    result = {}
    for view in ("full embedding", "PCA (2 components)"):
        x = features
        if view != "full embedding":
            with threadpool_limits(determinism.SMALL_WORK_THREADS):
                x = PCA(n_components=2, random_state=1907).fit(features[train]).transform(features)
        probe = linear_probe(x[train], y[train], x[val], y[val])
        result[view] = _auc(y[test], probe.predict_proba(x[test]))
    return result


EMBEDDING_ATTRIBUTES = {"drain": None, "sex": None, "age_group": None, "finding": None}
embedding_rows = []
for (model_name, name, seed), run in runs.items():
    values = {"finding": run["labels"], **run["attributes"]}
    if run["marker"] is not None:
        values["drain"] = run["marker"]
    for attribute in EMBEDDING_ATTRIBUTES:
        if attribute in values and len(np.unique(values[attribute])) > 1:
            for view, value in attribute_prediction(run["features"], values[attribute]).items():
                embedding_rows.append({"model": model_name, "dataset": name, "seed": seed, "attribute": attribute,
                                       "method": view, "metric": "attribute AUC", "value": value})
embedding = pd.DataFrame(embedding_rows)
(embedding.groupby(["model", "dataset", "attribute", "method"])["value"].agg(["mean", "std"]).unstack("method").round(3)
 if len(embedding) else "too few images for an 80/20/20 split holding every class")

# %%
(model_name, name, seed), run = next(iter(runs.items()))
projected = PCA(n_components=2, random_state=1907).fit_transform(run["features"])
colours = {"finding": np.where(run["labels"] == 1, "finding", "no finding"), **run["attributes"]}
if run["marker"] is not None:
    colours = {"drain": np.array(["unknown", "no drain", "drain"])[run["marker"] + 1], **colours}
figure, axes = plt.subplots(1, len(colours), figsize=(3.2 * len(colours), 3.2), sharex=True, sharey=True)
for axis, (attribute, values) in zip(axes, colours.items()):
    order = SUBGROUPS.get(attribute) or sorted(set(values))
    sns.scatterplot(x=projected[:, 0], y=projected[:, 1], hue=values, hue_order=[o for o in order if o in set(values)],
                    s=6, alpha=0.5, linewidth=0, ax=axis, rasterized=True)
    axis.set_title(attribute)
    axis.set_xlabel("PCA 1")
    axis.set_ylabel("PCA 2")
    axis.legend(fontsize=7, markerscale=2)
figure.suptitle(f"Test-image embeddings, first two principal components ({model_name}, {name}, seed {seed})", y=1.02)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Sanity check
#
# The library's bootstrap is vectorised (every resample as integer weights over the images, all resamples sorted
# once). An independent formulation: the official loop — `randint(0, n, n)` per resample from numpy's generator
# seeded with 1907, resamples without a positive skipped, sklearn's `roc_auc_score` and `average_precision_score`
# on each — must give the same intervals on the first run's test scores, and the point estimates must equal
# sklearn's. This fails if the weighting, the tie handling, the skipped resamples or the draw order differ.

# %%
def official_interval(labels, scores, metric, samples):
    generator, values = np.random.RandomState(1907), []
    for _ in range(samples):
        index = generator.randint(0, len(labels), len(labels))
        if labels[index].sum() == 0 or labels[index].sum() == len(index):
            continue
        values.append(metric(labels[index], scores[index]))
    return np.percentile(values, [2.5, 97.5])


def official_adjusted_auprc(labels, scores):
    from sklearn.metrics import average_precision_score
    return 1 - np.log(average_precision_score(labels, scores)) / np.log(labels.mean())


(model_name, name, seed), run = next(iter(runs.items()))
classifier, score = next(iter(run["scores"].items()))
check = []
for metric, reference in (("AUC", roc_auc_score), ("adjusted AUPRC", official_adjusted_auprc)):
    library = fairness.bootstrap_interval(run["labels"], score, metric, samples=bootstrap_samples)
    loop = official_interval(run["labels"], score, reference, bootstrap_samples)
    point = fairness.POINT_ESTIMATES[metric](run["labels"], score) - reference(run["labels"], score)
    check.append({"metric": metric, "library interval": np.round(library, 6), "official loop": np.round(loop, 6),
                  "largest difference": float(np.abs(np.array(library) - loop).max()), "point difference": point})
check = pd.DataFrame(check)
assert (check["largest difference"] < 1e-9).all() and (check["point difference"].abs() < 1e-12).all(), check
print(f"{model_name}, {name}, seed {seed}, {classifier}: {len(run['labels'])} images, {bootstrap_samples} resamples")
check

# %% [markdown]
# ## What the paper reports
#
# The authors' own result files in the official repository (snapshot `284b181`): pneumothorax AUC on CXR14, on all
# images, without and with a drain, for the six models (`data/performance/CXR14/zeroshot_<model>.csv`, groups
# `global`, `0.0`, `1.0`); and the AUC of the 18–25 and 80+ age groups for the six MIMIC-CXR findings
# (`data/performance/MIMIC/zeroshot_<model>.csv`). The attribute-prediction AUCs are not in the repository (the
# script appends them to an uncommitted `data/sensitive_attribute_classification.csv`): no reported rows.

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

REPOSITORY = "https://github.com/TheoSourget/clip_cxr_fairness/blob/284b18176d0159257837b5c95103e33238d9a1af"
CXR14_AUC = {  # model: (global, without drain, with drain)
    "BioViL": (0.70, 0.65, 0.73), "BioViL-T": (0.68, 0.63, 0.71), "CheXzero": (0.73, 0.67, 0.77),
    "CXR-CLIP": (0.54, 0.57, 0.52), "MedCLIP": (0.86, 0.77, 0.91), "MedImageInsight": (0.86, 0.79, 0.91),
}
MIMIC_AGE_AUC = {  # model: {finding: (18-25, 80+)}
    "BioViL": {"Atelectasis": (0.79, 0.60), "Cardiomegaly": (0.77, 0.69), "Consolidation": (0.26, 0.50),
               "Pleural Effusion": (0.54, 0.67), "Pneumonia": (0.35, 0.49), "Pneumothorax": (0.57, 0.71)},
    "BioViL-T": {"Atelectasis": (0.77, 0.54), "Cardiomegaly": (0.81, 0.66), "Consolidation": (0.73, 0.57),
                 "Pleural Effusion": (0.72, 0.76), "Pneumonia": (0.75, 0.54), "Pneumothorax": (0.52, 0.64)},
    "CheXzero": {"Atelectasis": (0.77, 0.57), "Cardiomegaly": (0.85, 0.77), "Consolidation": (0.85, 0.76),
                 "Pleural Effusion": (0.93, 0.85), "Pneumonia": (0.75, 0.60), "Pneumothorax": (0.74, 0.77)},
    "CXR-CLIP": {"Atelectasis": (0.57, 0.58), "Cardiomegaly": (0.49, 0.56), "Consolidation": (0.51, 0.50),
                 "Pleural Effusion": (0.62, 0.63), "Pneumonia": (0.47, 0.48), "Pneumothorax": (0.52, 0.38)},
    "MedCLIP": {"Atelectasis": (0.75, 0.72), "Cardiomegaly": (0.85, 0.75), "Consolidation": (0.85, 0.81),
                "Pleural Effusion": (0.95, 0.90), "Pneumonia": (0.80, 0.67), "Pneumothorax": (0.96, 0.79)},
    "MedImageInsight": {"Atelectasis": (0.73, 0.62), "Cardiomegaly": (0.96, 0.77), "Consolidation": (0.90, 0.78),
                        "Pleural Effusion": (0.89, 0.84), "Pneumonia": (0.77, 0.62), "Pneumothorax": (0.92, 0.87)},
}
FILE = {"BioViL": "biovil", "BioViL-T": "biovil-t", "CheXzero": "chexzero", "CXR-CLIP": "cxrclip",
        "MedCLIP": "medclip", "MedImageInsight": "medimageinsight"}
REPORTED = []
for model_name, values in CXR14_AUC.items():
    REPORTED += reported_rows(
        [{"method": method, "value": value} for method, value in zip(("all", "without drain", "with drain"), values)],
        source=f"data/performance/CXR14/zeroshot_{FILE[model_name]}.csv (groups global, 0.0, 1.0)",
        url=f"{REPOSITORY}/data/performance/CXR14/zeroshot_{FILE[model_name]}.csv",
        model=model_name, dataset="cxr14-neatx", classifier="zero-shot", metric="AUC")
for model_name, findings in MIMIC_AGE_AUC.items():
    REPORTED += reported_rows(
        [{"method": f"age {group}", "finding": finding, "value": value}
         for finding, pair in findings.items() for group, value in zip(("18-25", "80+"), pair)],
        source=f"data/performance/MIMIC/zeroshot_{FILE[model_name]}.csv (groups 18-25, 80+)",
        url=f"{REPOSITORY}/data/performance/MIMIC/zeroshot_{FILE[model_name]}.csv",
        model=model_name, dataset="mimic-cxr", classifier="zero-shot", metric="AUC")

# %%
pd.DataFrame(REPORTED).pivot_table(index=["dataset", "model"], columns="method", values="value", aggfunc="mean").round(3)

# %% [markdown]
# ## Claims
#
# Each claim compares two subsets' AUC for one classifier: the effect is their difference, per seed and then
# averaged over the models and datasets present, with a Student-t interval over seeds (`clipbook.claims`). On the
# paper's reported rows the drain rule gives +0.078 (mean over the six models; 5 of 6 positive) and the age rule
# +0.056 (mean over models and findings): both *hold*. The zero-shot claims need a zero-shot score with signal:
# the lower end of the bootstrap interval of its global AUC above 0.5 for every model, dataset and seed. The probe
# claims (the offline proxy) need the finding to be visible to the encoder: the control probe, trained without
# drains, above chance on the positives without a drain (lower end of its *without drain* interval above 0.5).

# %% tags=["claims"]
from clipbook.claims import Claim

CXR14_SOURCE = f"mean over six models of data/performance/CXR14/zeroshot_*.csv, {REPOSITORY}/data/performance/CXR14"
MIMIC_SOURCE = "mean over six models and six findings of data/performance/MIMIC/zeroshot_*.csv"
CLAIMS = [
    Claim("drain-zero-shot", "Zero-shot medical CLIPs detect the finding better on images with a chest drain than "
          "without (AUC with drain minus without)", method="with drain", baseline="without drain", metric="AUC",
          where={"classifier": "zero-shot"}, margin=0.0, unit="AUC", paper_effect=0.078,
          paper_effect_source=CXR14_SOURCE, requires=("zero-shot-signal",)),
    Claim("drain-probe", "Proxy for drain-zero-shot: a linear probe on the encoder's features, trained where the "
          "drain co-occurs with the finding, detects it better on images with a drain than without",
          method="with drain", baseline="without drain", metric="AUC", where={"classifier": "probe"}, margin=0.0,
          unit="AUC", paper_effect=0.078, paper_effect_source=CXR14_SOURCE, requires=("finding-signal",)),
    Claim("age-zero-shot", "Zero-shot medical CLIPs have a lower AUC for the oldest patients (80+) than for the "
          "youngest (18-25)", method="age 18-25", baseline="age 80+", metric="AUC",
          where={"classifier": "zero-shot"}, margin=0.0, unit="AUC", paper_effect=0.056,
          paper_effect_source=MIMIC_SOURCE, requires=("zero-shot-signal",)),
    Claim("age-probe", "Proxy for age-zero-shot: the drain-trained linear probe has a lower AUC for the oldest "
          "patients (80+) than for the youngest (18-25)", method="age 18-25", baseline="age 80+", metric="AUC",
          where={"classifier": "probe"}, margin=0.0, unit="AUC", paper_effect=0.056, paper_effect_source=MIMIC_SOURCE,
          requires=("finding-signal",)),
    Claim("attributes-beyond-pca", "Each attribute (drain, sex, age group, finding) is predicted better from the full "
          "image embedding than from its first two principal components", method="full embedding",
          baseline="PCA (2 components)", metric="attribute AUC", per=("attribute",), margin=0.0, unit="AUC"),
]

# %% [markdown]
# The zero-shot rules applied to the paper's own rows must give *holds* (the claims are stated as the paper states
# them); the per-model drain effects show the 5 of 6.

# %%
on_reported = {claim.id: claims.evaluate_claim(claim, REPORTED) for claim in CLAIMS
               if claim.where.get("classifier") == "zero-shot"}
assert all(result["verdict"] == "holds" for result in on_reported.values()), on_reported
per_model = pd.DataFrame(REPORTED).query("dataset == 'cxr14-neatx'").pivot(index="model", columns="method", values="value")
per_model["with − without drain"] = per_model["with drain"] - per_model["without drain"]
print({claim_id: (result["verdict"], round(result["effect"], 3)) for claim_id, result in on_reported.items()})
per_model.round(3)

# %%
def lowest(frame: pd.DataFrame, column: str) -> float:
    return float(frame[column].min()) if len(frame) else float("nan")


zero_shot_global = rows[(rows.classifier == "zero-shot") & (rows.method == "all") & (rows.metric == "AUC")]
control = rows[(rows.classifier == "probe (drain-free training)") & (rows.method == "without drain")
               & (rows.metric == "AUC")]
zero_shot_low, control_low = lowest(zero_shot_global, "low"), lowest(control, "low")
preconditions = [
    claims.fact("zero-shot-signal", "the zero-shot score carries a finding signal", zero_shot_low > 0.5,
                f"lowest lower end of the zero-shot global AUC interval, over models, datasets and seeds: "
                f"{zero_shot_low:.3f} {'>' if zero_shot_low > 0.5 else 'is not above'} 0.5"
                + ("" if zero_shot_low > 0.5 else " (the encoder has no zero-shot signal for this finding)")),
    claims.fact("finding-signal", "the encoder's features show the finding itself, not only the drain",
                control_low > 0.5,
                f"lowest lower end of the AUC interval of a probe trained without drains, on the positives without "
                f"a drain: {control_low:.3f} {'>' if control_low > 0.5 else 'is not above'} 0.5"
                if len(control) else "no probe trained without drains (classifiers has no 'probe')"),
]
all_rows = pd.concat([rows, embedding], ignore_index=True)
clipbook.record(session, rows=all_rows, claims=CLAIMS, reported=REPORTED, preconditions=preconditions,
                notes=f"classifiers: {', '.join(classifiers)}; {bootstrap_samples} bootstrap resamples per interval; "
                      "offline, the probe is a proxy for the medical CLIPs' zero-shot scores (see Deviations).")

# %% [markdown]
# ## What each profile runs
#
# - **offline**: the tiny CLIP on `toy-cxr` cohorts (three seeds): zero-shot binary prompts, the drain-trained
#   linear probe (the proxy) and its drain-free control, bootstrap intervals per drain subset and subgroup, the
#   attribute prediction from full and PCA-projected embeddings. The verdicts are in the record above.
# - **paper**: CheXzero (OpenAI ViT-B/32 + its weights file, OpenAI preprocessing) and BiomedCLIP (`hf-hub:`)
#   zero-shot on the NIH-CXR14 test images with NEATX drain labels and on MIMIC-CXR's test split (sex, race, age),
#   with the same tables and claims; CXR-CLIP, MedCLIP, BioViL, BioViL-T and MedImageInsight are listed in
#   `MEDICAL_CLIPS` as unavailable (their own code bases) and enter through their reported rows only.
# - **rehearsal**: the paper path with CheXzero's architecture at random initialisation on generated CXR14 + NEATX
#   and MIMIC-CXR layouts; BiomedCLIP's `hf-hub:` architecture cannot be built without its config on disk.
