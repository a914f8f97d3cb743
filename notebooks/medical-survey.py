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
# # CLIP in Medical Imaging: A Survey
#
# Zihao Zhao, Yuxiao Liu, Han Wu, Mei Wang, Yonghao Li, Sheng Wang, Lin Teng, Disheng Liu, Zhiming Cui, Qian Wang,
# Dinggang Shen — Medical Image Analysis 2025 (arXiv v1 Dec 2023) · [arXiv:2312.07353](https://arxiv.org/abs/2312.07353)
# · companion list [zhaozh10/Awesome-CLIP-in-Medical-Imaging](https://github.com/zhaozh10/Awesome-CLIP-in-Medical-Imaging)
# (MIT; its README is vendored, with its licence, in `notebooks/data/medical-survey/awesome-list/`).
#
# **Claim.** A literature survey, not a method: it sorts the work on CLIP in medical imaging into *refined
# pre-training* (multi-scale, data-efficient and knowledge-enhanced contrast, and others) and *CLIP-driven
# applications* (classification, dense prediction, cross-modal tasks), tabulates the image–text datasets, and
# states that interest in the topic is increasing. It gives no numbers that a notebook could reproduce (no
# headline, no table of results).
#
# **This notebook** regenerates the survey's statistics — papers per year, per taxonomy node, per venue and per
# imaging modality, and its dataset-resource table — from data files the project derives from the survey's
# public list (`notebooks/data/medical-survey/derive.py` parses the vendored README at two commits: the list on
# the day of arXiv v1, and its newest version). No survey prose is copied; the figures are rebuilt from the
# data files. It tests the one statement about the literature that the list can test (the growth of papers per
# year), checks the parsed counts against an independent count of the raw README, and adds a short
# zero-shot demonstration on the library's medical-style toy domain so that the page measures a method as
# well as counts. The statistics are the same in every profile; the `paper` profile runs the demonstration
# with OpenAI's ViT-B/16 and BiomedCLIP (`hf-hub:microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224`).

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
seeds = [1, 2, 3]
shots = [16, 64]
snapshots = ["survey-v1", "latest"]
growth_snapshot = "latest"
test_images = 1000
train_images = 400
val_images = 200
prevalence = 0.5
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Float, Int, ListOf, Str, declare

SPEC = declare(
    "profile", "models", "seeds", "shots", "device",
    snapshots=ListOf(Str(["survey-v1", "latest"]), min_length=1,
                     help="snapshots of the survey's list to count: survey-v1 (2023-12-12, the day of arXiv v1), "
                          "latest (entries as of 2024-07-29); see notebooks/data/medical-survey/snapshots.csv"),
    growth_snapshot=Str(["survey-v1", "latest"],
                        help="the snapshot on which the growth of papers per year is tested (complete years only)"),
    test_images=Int(minimum=4, help="demonstration: radiographs in the test cohort (toyworld.medical)"),
    train_images=Int(minimum=4, help="demonstration: the labelled pool the k-shot probes are drawn from"),
    val_images=Int(minimum=4, help="demonstration: the cohort that picks the probe's C and checks the encoder's signal"),
    prevalence=Float(minimum=0, maximum=1, exclusive_minimum=True,
                     help="demonstration: P(finding) in every cohort (AUC does not depend on it; 0.5 keeps both "
                          "classes large enough for the k-shot probes)"),
)

# %%
import datetime
import importlib.util
import re
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

import torch
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_score

import clipbook
from clipbook import claims, zeroshot
from clipbook.baselines import linear_probe
from clipbook.evaluation import fairness
from clipbook.features import image_features
from clipbook.models.loader import load_model
from clipbook.report.figures import few_shot_figure
from clipbook.session import preflight
from clipbook.toyworld import medical

session = clipbook.start(SPEC, globals())
preflight(models, [])  # the demonstration's weights (BiomedCLIP: a Hugging Face Hub repo) exist before any work

DATA = Path("data/medical-survey")  # relative to notebooks/, where papermill and nbval run the notebook
if not (DATA / "papers.csv").exists():
    raise FileNotFoundError(f"the survey's derived data is missing: {DATA.resolve()}/papers.csv; run the notebook "
                            "from notebooks/ (papermill --cwd notebooks), or regenerate it with "
                            "`python notebooks/data/medical-survey/derive.py`")
if growth_snapshot not in snapshots:
    raise ValueError(f"growth_snapshot {growth_snapshot!r} must be one of the counted snapshots {snapshots}")

snapshot_info = pd.read_csv(DATA / "snapshots.csv").set_index("snapshot")
papers = pd.read_csv(DATA / "papers.csv")
papers = papers[papers["snapshot"].isin(snapshots)]
resource_table = pd.read_csv(DATA / "datasets.csv")
resource_table = resource_table[resource_table["snapshot"].isin(snapshots)]
snapshot_info.loc[snapshots, ["commit", "commit_date", "entries_as_of", "description"]]

# %% [markdown]
# ## The data file
#
# `papers.csv` has one row per entry of the list — `[**VENUE YEAR**] Title` followed by authors and links — with
# the taxonomy node it is listed under, the venue and year as the list states them, whether a code link is given,
# and the imaging modality when the title names one. The list has no modality field for papers, so the modality
# is read from the title with the narrow keyword rules of `derive.py` (`MODALITY_KEYWORDS`), and a title naming
# none counts as *not stated*. An entry listed under two nodes counts in both, as in the list; `unique titles`
# counts each title once.

# %%
BRANCH_ORDER = ["refined pre-training", "CLIP-driven applications"]
NODE_ORDER = ["multi-scale", "data-efficient", "knowledge-enhanced", "other pre-training",
              "classification", "dense prediction", "cross-modal"]
unknown_nodes = sorted(set(papers["node"]) - set(NODE_ORDER))
if unknown_nodes:
    raise ValueError(f"nodes {unknown_nodes} are not in the survey's taxonomy {NODE_ORDER}; update NODE_ORDER")

overview = papers.groupby("snapshot").agg(
    entries=("title", "size"), unique_titles=("title", lambda t: t.str.lower().nunique()),
    preprints=("preprint", "mean"), with_code=("has_code", "mean"), first_year=("year", "min"),
    last_year=("year", "max")).reindex(snapshots)
overview[["preprints", "with_code"]] = (100 * overview[["preprints", "with_code"]]).round(1)
overview.rename(columns={"preprints": "arXiv only (%)", "with_code": "code link (%)"})

# %% [markdown]
# ## Papers per year and per taxonomy node
#
# A year counts completely in a snapshot only if the list's entries were last changed after that year ended
# (`entries_as_of`); the snapshot's last year is partial and drawn hatched.

# %%
def complete_years(snapshot: str) -> list[int]:
    """The years a snapshot covers completely: from its first listed year to the last year that ended before its
    entries were last changed."""
    as_of = datetime.date.fromisoformat(snapshot_info.loc[snapshot, "entries_as_of"])
    years = papers.loc[papers["snapshot"] == snapshot, "year"]
    return [year for year in range(int(years.min()), int(years.max()) + 1) if datetime.date(year, 12, 31) < as_of]


per_year = (papers.groupby(["snapshot", "year"]).size().rename("papers").reset_index())
per_year["complete"] = [year in complete_years(snapshot) for snapshot, year in zip(per_year["snapshot"], per_year["year"])]
per_node = (papers.groupby(["snapshot", "branch", "node"]).size().rename("papers").reset_index())
per_node_wide = per_node.pivot_table(index=["branch", "node"], columns="snapshot", values="papers", fill_value=0)
per_node_wide = per_node_wide.reindex(columns=snapshots).reindex(
    [(branch, node) for branch in BRANCH_ORDER for node in NODE_ORDER if (branch, node) in per_node_wide.index])
per_node_wide.astype(int)

# %%
def venue_counts(snapshot: str, minimum: int = 2) -> pd.Series:
    """Entries per venue; venues with fewer than `minimum` entries pooled as "other (n venues)"."""
    counts = papers.loc[papers["snapshot"] == snapshot, "venue"].value_counts()
    rare = counts[counts < minimum]
    return pd.concat([counts[counts >= minimum], pd.Series({f"other ({len(rare)} venues)": int(rare.sum())})])


def modality_counts(snapshot: str) -> pd.DataFrame:
    """Entries per modality named in the title and per branch (a title naming two modalities counts in both)."""
    part = papers[papers["snapshot"] == snapshot].assign(modality=lambda f: f["modality"].str.split("; "))
    return part.explode("modality").groupby(["modality", "branch"]).size().rename("papers").reset_index()


palette = dict(zip(snapshots, sns.color_palette("colorblind", len(snapshots))))
fig, axes = plt.subplots(2, 2, figsize=(13, 9))
ax = axes[0, 0]
years = list(range(int(per_year["year"].min()), int(per_year["year"].max()) + 1))
width = 0.8 / len(snapshots)
for position, snapshot in enumerate(snapshots):
    part = per_year[per_year["snapshot"] == snapshot].set_index("year").reindex(years)
    x = np.arange(len(years)) + (position - (len(snapshots) - 1) / 2) * width
    bars = ax.bar(x, part["papers"].fillna(0), width, color=palette[snapshot],
                  label=f"{snapshot} (entries as of {snapshot_info.loc[snapshot, 'entries_as_of']})")
    for bar, complete in zip(bars, part["complete"].fillna(False)):
        if not complete:
            bar.set_hatch("//")
            bar.set_edgecolor("white")
    ax.bar_label(bars, fontsize=8, padding=1)
ax.set_xticks(range(len(years)), [str(year) for year in years])
ax.set_xlabel("year (as the list states the venue's year); hatched: year not complete in the snapshot")
ax.set_ylabel("papers listed")
ax.set_title("Papers per year")
ax.legend(fontsize=8)

ax = axes[0, 1]
nodes = per_node.assign(label=lambda f: f["node"] + " · " + f["branch"].map(
    {"refined pre-training": "pre-training", "CLIP-driven applications": "application"}))
order = [label for node in NODE_ORDER for label in nodes.loc[nodes["node"] == node, "label"].unique()]
sns.barplot(data=nodes, y="label", x="papers", hue="snapshot", hue_order=snapshots, order=order, palette=palette,
            ax=ax)
for container in ax.containers:
    ax.bar_label(container, fontsize=8, padding=1)
ax.set_ylabel("")
ax.set_title("Papers per taxonomy node")
ax.legend(fontsize=8)

ax = axes[1, 0]
latest = snapshots[-1]
heat = (papers[papers["snapshot"] == latest].pivot_table(index="node", columns="year", values="title",
                                                           aggfunc="size", fill_value=0).reindex(
    [node for node in NODE_ORDER if node in set(papers.loc[papers["snapshot"] == latest, "node"])]))
sns.heatmap(heat, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
ax.set_title(f"Node × year ({latest})")
ax.set_ylabel("")

ax = axes[1, 1]
venues = venue_counts(latest)
colours = ["#999999" if name == "arXiv" or name.startswith("other") else palette[latest] for name in venues.index]
ax.barh(venues.index[::-1], venues.values[::-1], color=colours[::-1])
for y, value in enumerate(venues.values[::-1]):
    ax.annotate(str(value), (value, y), xytext=(2, 0), textcoords="offset points", va="center", fontsize=8)
ax.set_title(f"Papers per venue ({latest}; grey: arXiv only, pooled)")
ax.set_xlabel("papers listed")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Imaging modality and the dataset-resource table
#
# The modality named in each title (left), and the survey's table of public image–text datasets, regenerated from
# the list's "Dataset Resource" table (right: image and text counts on a log scale, one colour per domain).

# %%
modality = modality_counts(latest)
modality_order = (modality.groupby("modality")["papers"].sum().drop("not stated", errors="ignore")
                  .sort_values(ascending=False).index.tolist() + ["not stated"])
table = resource_table[resource_table["snapshot"] == latest]
sizes = table.melt(id_vars=["dataset", "domain"], value_vars=["images", "texts"], var_name="count of",
                   value_name="items")

fig, axes = plt.subplots(1, 2, figsize=(13, 4.6), gridspec_kw={"width_ratios": [1, 1.2]})
sns.barplot(data=modality, y="modality", x="papers", hue="branch", hue_order=BRANCH_ORDER, order=modality_order,
            ax=axes[0])
axes[0].set_title(f"Modality named in the title ({latest})")
axes[0].set_ylabel("")
axes[0].legend(fontsize=8)
sns.barplot(data=sizes, x="dataset", y="items", hue="count of", ax=axes[1])
axes[1].set_yscale("log")
axes[1].set_title(f"Dataset resource table ({latest})")
axes[1].tick_params(axis="x", rotation=40)
for label in axes[1].get_xticklabels():
    label.set_horizontalalignment("right")
domain_colour = dict(zip(table["domain"].unique(), sns.color_palette("dark", table["domain"].nunique())))
for label in axes[1].get_xticklabels():
    label.set_color(domain_colour[table.set_index("dataset").loc[label.get_text(), "domain"]])
axes[1].set_xlabel("dataset (label colour: domain — " + ", ".join(domain_colour) + ")")
fig.tight_layout()
plt.show()

(table[["dataset", "domain", "images_raw", "texts_raw", "source", "language", "pretrained_clip"]]
 .rename(columns={"images_raw": "images", "texts_raw": "texts", "pretrained_clip": "pre-trained CLIP"})
 .reset_index(drop=True))

# %% [markdown]
# ## Sanity check: the parsed counts against an independent count of the raw README
#
# The data files come from `derive.py`'s line-by-line parser. Here the vendored README of each snapshot is
# counted a second way: a regular expression for the `[**VENUE YEAR**]` tags over the whole text, and the same
# count within each `###` section (the sections found by splitting the text at its headings, mapped to the
# taxonomy by their first word, independently of `derive.py`'s heading table); the dataset table's rows are
# counted as lines starting with `| [`, and its sizes are re-read with a different rule. Finally the committed
# CSV files must equal what the parser writes from the vendored READMEs today (a stale data file fails here).

# %%
TAG = re.compile(r"^\[\*\*[^*\]]*?\b(?:19|20)\d\d\b[^*\]]*\*\*\]", re.MULTILINE)
FIRST_WORD_TO_NODE = {"multi-scale": "multi-scale", "fine-grained": "multi-scale", "data-efficient": "data-efficient",
                      "knowledge-enhanced": "knowledge-enhanced", "others": "other pre-training",
                      "classification": "classification", "dense": "dense prediction", "cross-modal": "cross-modal"}


def independent_counts(text: str) -> tuple[int, dict[str, int], int, list[float]]:
    """(entries, entries per node, dataset rows, dataset image sizes) of one README, without derive.py."""
    chunks = re.split(r"^###? (.+)$", text, flags=re.MULTILINE)  # [preamble, heading, body, heading, body, ...]
    per_node: dict[str, int] = {}
    for heading, body in zip(chunks[1::2], chunks[2::2]):
        node = FIRST_WORD_TO_NODE.get(heading.split()[0].lower())
        if node and len(TAG.findall(body)):
            per_node[node] = per_node.get(node, 0) + len(TAG.findall(body))
    rows = re.findall(r"^\|\s*\[[^\]]+\]\([^)]*\)\s*\|[^|]*\|\s*([^|]*?)\s*\|", text, re.MULTILINE)
    multiplier = {"K": 1_000, "M": 1_000_000}
    image_sizes = [float(cell[:-1]) * multiplier[cell[-1]] if cell[-1] in multiplier else float(cell) for cell in rows]
    return len(TAG.findall(text)), per_node, len(rows), image_sizes


checks = []
for snapshot in snapshots:
    commit = snapshot_info.loc[snapshot, "commit"]
    text = (DATA / "awesome-list" / f"README.{commit[:7]}.md").read_text(encoding="utf-8")
    entries, per_node_regex, dataset_rows, image_sizes = independent_counts(text)
    parsed = papers[papers["snapshot"] == snapshot]
    parsed_table = resource_table[resource_table["snapshot"] == snapshot]
    checks.append({"snapshot": snapshot, "check": "entries", "regex": entries, "parsed": len(parsed)})
    for node in NODE_ORDER:
        checks.append({"snapshot": snapshot, "check": f"node: {node}", "regex": per_node_regex.get(node, 0),
                       "parsed": int((parsed["node"] == node).sum())})
    checks.append({"snapshot": snapshot, "check": "dataset rows", "regex": dataset_rows, "parsed": len(parsed_table)})
    checks.append({"snapshot": snapshot, "check": "dataset images (sum)", "regex": int(sum(image_sizes)),
                   "parsed": int(parsed_table["images"].sum())})
checks = pd.DataFrame(checks).assign(match=lambda f: f["regex"] == f["parsed"])

spec = importlib.util.spec_from_file_location("derive_medical_survey", DATA / "derive.py")
derive = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = derive  # its dataclasses resolve their annotations through sys.modules
spec.loader.exec_module(derive)
stale = [name for name, content in derive.derive().items() if (DATA / name).read_text(encoding="utf-8") != content]
assert checks["match"].all(), checks[~checks["match"]]
assert not stale, f"data files differ from a re-parse of the vendored READMEs: {stale}"
checks.pivot_table(index="check", columns="snapshot", values="regex", sort=False).reindex(columns=snapshots).astype(int)

# %% [markdown]
# ## A zero-shot demonstration on the medical-style toy domain
#
# The survey's premise — stated without a number — is that CLIP pre-trained on general image–text pairs does not
# transfer well to medical images, which motivates both branches of its taxonomy. The library's medical-style toy
# domain (`clipbook.toyworld.medical`, written for the cxr-fairness notebook and used here unchanged) draws
# radiograph-like chest images whose positive finding is a subtle pneumothorax-like rim. Here the chest-drain
# marker appears at the same rate with and without the finding, so it is no shortcut. The general model (offline:
# the tiny CLIP pre-trained on the toy world's objects, which has never seen a radiograph or its vocabulary) is
# measured three ways, by the AUROC of the finding on one test cohort:
#
# - **zero-shot CLIP** with the domain's prompt pair (`medical.binary_prompts`: "Chest Pneumothorax" against
#   "Chest No findings"); the score is the softmax probability of the first, as in the cxr-fairness paper's code;
# - **zero-shot, prompt ensemble**: three prompts per class, averaged as CLIP's prompt ensembling
#   (`zeroshot.prompt_set_classifier`);
# - **linear probe**: logistic regression on $k$ labelled images per class drawn from a training pool (seeds 1–3
#   draw the $k$-shot sets), its inverse regularisation $C$ chosen on a separate val cohort
#   (`clipbook.baselines.linear_probe`, CoOp's probe).
#
# Precondition: the image encoder must carry the finding at all — a logistic regression on the val cohort's
# features, 5-fold cross-validated (fewer folds only if a class has fewer than 5 val images), must reach an AUROC of at least 55 % — otherwise the comparison says nothing
# about adaptation and the claim is *not tested*.

# %%
MARKER_RATE = 0.1  # P(drain | finding) = P(drain | no finding): the marker carries no label information here
COHORT_SEEDS = {"train": 11, "val": 12, "test": 13}  # fixed cohorts; `seeds` draw the k-shot sets from the pool
ENSEMBLE = {  # per class, in medical.CLASSNAMES order (label 0: no finding, label 1: finding)
    medical.NO_FINDING: [f"Chest {medical.NO_FINDING}", "a normal chest x-ray.", "a chest radiograph with no findings."],
    medical.FINDING: [f"Chest {medical.FINDING}", f"a chest x-ray showing a {medical.FINDING.lower()}.",
                      f"a chest radiograph with a {medical.FINDING.lower()}."],
}
cohorts = {split: medical.cohort_dataset(split, n=n, seed=COHORT_SEEDS[split], prevalence=prevalence,
                                         marker_given_finding=MARKER_RATE, marker_given_no_finding=MARKER_RATE)
           for split, n in (("train", train_images), ("val", val_images), ("test", test_images))}
labels = {split: data.labels for split, data in cohorts.items()}
smallest_class = int(min(np.bincount(labels["train"], minlength=2)))
if max(shots) > smallest_class:
    raise ValueError(f"shots {max(shots)} per class exceed the training pool's smallest class ({smallest_class} of "
                     f"train_images = {train_images}); lower shots or raise train_images")
for split, data in cohorts.items():
    if min(np.bincount(labels[split], minlength=2)) < 2:
        raise ValueError(f"the {split} cohort has fewer than 2 images of a class; raise {split}_images or move "
                         f"prevalence ({prevalence}) away from 0 and 1")


def finding_scores(features: torch.Tensor, classifier: torch.Tensor) -> np.ndarray:
    """P(finding | image): the softmax over (no finding, finding) of CLIP's zero-shot logits."""
    return zeroshot.zero_shot_logits(features, classifier).softmax(dim=-1)[:, 1].numpy()


def k_shot_indices(pool_labels: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k images of each class from the pool, drawn with `seed`."""
    generator = np.random.default_rng(seed)
    return np.concatenate([np.sort(generator.choice(np.flatnonzero(pool_labels == label), k, replace=False))
                           for label in (0, 1)])


example = np.concatenate([np.flatnonzero(labels["test"] == label)[:3] for label in (0, 1)])
fig, axes = plt.subplots(1, len(example), figsize=(1.9 * len(example), 2.2))
for ax, index, image in zip(axes, example, cohorts["test"].render(example)):
    ax.imshow(image)
    ax.set_title(medical.CLASSNAMES[labels["test"][index]], fontsize=8)
    ax.axis("off")
plt.show()

# %%
demo_rows, signal, zero_shot_scores = [], {}, {}
for name, tag in models:
    loaded = load_model(name, tag, device=session.device)
    features = {split: image_features(loaded, data) for split, data in cohorts.items()}
    base = {"model": name, "dataset": "toy-cxr", "metric": "AUROC"}
    finding_prompt, no_finding_prompt = medical.binary_prompts()
    classifiers = {
        "zero-shot CLIP": zeroshot.prompt_set_classifier(loaded, [[no_finding_prompt], [finding_prompt]]),
        "zero-shot, prompt ensemble": zeroshot.prompt_set_classifier(loaded, [ENSEMBLE[c] for c in medical.CLASSNAMES]),
    }
    for method, classifier in classifiers.items():
        scores = finding_scores(features["test"], classifier)
        zero_shot_scores[(name, method)] = scores
        low, high = fairness.bootstrap_interval(labels["test"], scores)
        demo_rows.append({**base, "method": method, "value": 100 * fairness.auc(labels["test"], scores),
                          "bootstrap_low": 100 * low, "bootstrap_high": 100 * high})
    for k in shots:
        for seed in seeds:
            chosen = k_shot_indices(labels["train"], k, seed)
            probe = linear_probe(features["train"][chosen], labels["train"][chosen], features["val"], labels["val"])
            scores = probe.decision_function(features["test"].numpy())
            demo_rows.append({**base, "method": "linear probe", "shots": k, "seed": seed,
                              "value": 100 * fairness.auc(labels["test"], scores)})
    folds = StratifiedKFold(n_splits=min(5, int(min(np.bincount(labels["val"])))), shuffle=True, random_state=0)
    signal[name] = 100 * float(cross_val_score(LogisticRegression(max_iter=10_000), features["val"].numpy(),
                                               labels["val"], cv=folds, scoring="roc_auc").mean())
demo_rows = pd.DataFrame(demo_rows)
weakest = min(signal, key=signal.get)
PRECONDITIONS = [claims.at_least(
    "encoder-sees-finding", f"{folds.get_n_splits()}-fold cross-validated AUROC of a logistic regression on the {val_images} val images' "
    f"features (weakest encoder: {weakest})", signal[weakest], 55.0, unit=" %")]
summary = demo_rows.groupby(["model", "method", "shots"], dropna=False, sort=False)["value"].agg(["mean", "std", "count"])
summary.round(2)

# %%
fig, _ = few_shot_figure(demo_rows, shots, ["linear probe", "zero-shot CLIP", "zero-shot, prompt ensemble"],
                         metric="AUROC")
for ax in fig.axes:
    if ax.get_visible():
        ax.axhline(50, color="#999", linestyle=":", linewidth=1)
        ax.set_ylabel("AUROC of the finding (%); dotted: chance")
plt.show()

# %% [markdown]
# Sanity check of the metric: the AUROC equals the Mann–Whitney statistic, the share of (finding, no finding)
# pairs whose scores are in the right order (ties counting half), counted here pair by pair.

# %%
(check_model, check_method), scores = next(iter(zero_shot_scores.items()))
positive, negative = scores[labels["test"] == 1], scores[labels["test"] == 0]
pairwise = float(((positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])).mean())
assert abs(pairwise - fairness.auc(labels["test"], scores)) < 1e-12, (pairwise, fairness.auc(labels["test"], scores))
print(f"{check_model} · {check_method}: pairwise {100 * pairwise:.4f} % = AUROC {100 * fairness.auc(labels['test'], scores):.4f} %")

# %% [markdown]
# ## What the survey reports
#
# The survey states no number about its corpus that could be compared here (papers.md: no numeric headline), so
# there are no reported rows: every count above is the list's, not the survey's. The size columns of the dataset
# table are the list's own cells (the survey's table shows the same datasets; its numbers are not confirmed here).

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# The survey says that the use of CLIP in medical imaging "has recently gained increasing interest" — a
# qualitative statement with no number. The list can test it as a count: every complete year lists more papers
# than the year before (margin 0, in papers, exact counts with no interval). The test uses only the years the
# snapshot covers completely; it needs at least three of them (two year-on-year steps). These rows are the list's
# counts in every profile, so the claim names what it is measured on (`measured_on`): its sentence reads "effect on
# the survey's list", not "effect on the toy world".
#
# The demonstration's claim is the survey's premise, again without a number: adapting a general-domain CLIP to
# medical images (here its cheapest form, a linear probe on the largest shot count) beats using it zero-shot, by
# AUROC, mean over seeds; it requires the encoder-signal precondition above.

# %%
growth_years = complete_years(growth_snapshot)
counts = per_year[per_year["snapshot"] == growth_snapshot].set_index("year")["papers"]
rows = []
for snapshot in snapshots:
    base = {"model": "survey list", "dataset": f"awesome-list {snapshot}", "metric": "papers"}
    part = papers[papers["snapshot"] == snapshot]
    rows.append({**base, "method": "entries", "value": len(part)})
    rows.append({**base, "method": "unique titles", "value": part["title"].str.lower().nunique()})
    rows += [{**base, "method": "per year", "year": int(year), "value": int(n)}
             for year, n in part["year"].value_counts().sort_index().items()]
    rows += [{**base, "method": "per node", "node": node, "value": int(n)}
             for node, n in part["node"].value_counts().reindex(NODE_ORDER, fill_value=0).items()]
    rows += [{**base, "method": "per modality", "modality": name, "value": int(n)}
             for name, n in modality_counts(snapshot).groupby("modality")["papers"].sum().items()]
    rows += [{**base, "method": "per venue", "venue": name, "value": int(n)}
             for name, n in part["venue"].value_counts().items()]
    rows += [{**base, "metric": "items", "method": f"dataset {kind}", "resource": name, "value": float(n)}
             for _, entry in resource_table[resource_table["snapshot"] == snapshot].iterrows()
             for kind, name, n in (("images", entry["dataset"], entry["images"]), ("texts", entry["dataset"], entry["texts"]))]
base = {"model": "survey list", "dataset": f"awesome-list {growth_snapshot}", "metric": "papers"}
for earlier, later in zip(growth_years, growth_years[1:]):
    step = f"{earlier}→{later}"
    rows.append({**base, "method": "later year", "years": step, "value": int(counts.get(later, 0))})
    rows.append({**base, "method": "earlier year", "years": step, "value": int(counts.get(earlier, 0))})
rows = pd.concat([pd.DataFrame(rows), demo_rows], ignore_index=True)
PRECONDITIONS.append(
    claims.at_least("complete-years", f"complete years in the {growth_snapshot} snapshot", len(growth_years), 3))
(rows[rows["method"].isin(["later year", "earlier year"])]
 .pivot_table(index="years", columns="method", values="value", sort=False).astype(int))

# %% tags=["claims"]
from clipbook.claims import Claim

CLAIMS = [
    Claim("interest-grows", "Interest in CLIP for medical imaging is increasing: each complete year lists more papers "
          "than the year before (the survey's qualitative statement, tested on its list)",
          method="later year", baseline="earlier year", metric="papers", per=("years",), margin=0.0, unit="papers",
          where={"dataset": f"awesome-list {growth_snapshot}"}, requires=("complete-years",),
          measured_on="the survey's list"),
    Claim("adaptation-beats-zero-shot", "Adapting a general-domain CLIP to medical images beats using it zero-shot "
          "(the survey's premise, stated without a number): a linear probe on the most shots against zero-shot CLIP, "
          "on the medical-style toy domain", method="linear probe", baseline="zero-shot CLIP", metric="AUROC",
          where={"dataset": "toy-cxr", "shots": max(shots)}, margin=0.0, requires=("encoder-sees-finding",)),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS)
