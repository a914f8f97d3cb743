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
# # Classify by description — Visual Classification via Description from Large Language Models
#
# Menon, Vondrick — ICLR 2023 (oral) · [arXiv:2210.07183](https://arxiv.org/abs/2210.07183) ·
# official code [sachit-menon/classify_by_description_release](https://github.com/sachit-menon/classify_by_description_release)
# (no licence file; read, not copied).
#
# **Claim.** Instead of comparing an image with the class name alone, score every class by the *mean* CLIP
# similarity between the image and a handful of descriptor sentences of that class written by GPT-3
# ("tench, which is a freshwater fish."). Without any training this raises zero-shot top-1 accuracy over the
# class-name baseline across datasets and CLIP backbones (Table 1), and every decision comes with its
# explanation: the descriptors that matched (the explanation figure).
#
# **This notebook** regenerates the comparison of Table 1 (top-1 and top-5, descriptors vs class name) and the
# explanation figure. The `offline` profile runs the library's tiny CLIP on the toy world, whose classes carry
# visual descriptions that the renderer makes true and that the tiny CLIP read in its pretraining captions; it is
# tested in-domain (photos) and under two shifts (sketches, heavy noise), where descriptors of the shape might help
# most. The `paper` profile runs OpenAI ViT-B/32 … ViT-L/14@336 on ImageNet, ImageNetV2, DTD, EuroSAT, Food101 and
# Oxford Pets with the descriptor files released with the code (downloaded once into the cache, never committed).

# %% tags=["parameters"]
profile = "offline"  # "offline" (toy world, CPU) or "paper" (real checkpoints and datasets, GPU)
models = [["clipbook-tiny-rn", "toyworld"]]  # [open_clip architecture, pretrained tag]
datasets = ["toy", "toy-sketch", "toy-noise"]  # test sets to classify; the first is the headline
seeds = [1, 2, 3]  # seeds of the paired bootstrap over test images (the method itself draws nothing at random)
bootstrap_resamples = 1000  # resamples per seed for the interval of the accuracy change
top_k = 5  # the paper's second metric (top-5)
explanation_examples = 4  # test images of the headline dataset whose decisions are explained
device = "auto"

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
import matplotlib.pyplot as plt

import clipbook
from clipbook import descriptors, features, metrics, zeroshot
from clipbook.data import registry
from clipbook.models.loader import load_model
from clipbook.report.record import record

session = clipbook.setup(profile, device=device)

# Per dataset: its descriptor file, how the dataset's labels map onto the file's classes, and the text the
# official code appends to every prompt (load.py sets after_text = label_after_text = "." for ImageNet only).
# "position": the official code labels classes in the file's key order (torchvision's sorted folders); ImageNet
# (sorted wnids) and EuroSAT (sorted folders) use that order here too, while the file's names differ from ours
# (ImageNet: "eft", "maillot", "projectile", "sunglass" vs OpenAI's list; EuroSAT: paraphrases).
# "name": matched by name, ignoring case and underscores (Pets' file lists the cats first).
DESCRIPTORS_OF = {
    "toy": {"source": "toyworld", "match": "name", "suffix": ""},
    "toy-sketch": {"source": "toyworld", "match": "name", "suffix": ""},
    "toy-noise": {"source": "toyworld", "match": "name", "suffix": ""},
    "imagenet": {"source": "cbd-imagenet", "match": "position", "suffix": "."},
    # the official ImageNetV2 branch is unreachable (nested under `dataset == 'imagenet'`): ImageNet's settings
    "imagenet_v2": {"source": "cbd-imagenet", "match": "position", "suffix": "."},
    "dtd": {"source": "cbd-dtd", "match": "name", "suffix": ""},
    "eurosat": {"source": "cbd-eurosat", "match": "position", "suffix": ""},
    "food101": {"source": "cbd-food101", "match": "name", "suffix": ""},
    "oxford_pets": {"source": "cbd-pets", "match": "name", "suffix": ""},
}

if not isinstance(datasets, list) or not datasets:
    raise ValueError(f"datasets must be a non-empty list of dataset names, got {datasets!r}")
without_descriptors = [name for name in datasets if name not in DESCRIPTORS_OF]
if without_descriptors:
    raise ValueError(f"no descriptor file for datasets {without_descriptors}; "
                     f"datasets with descriptors: {', '.join(DESCRIPTORS_OF)}")
if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
    raise ValueError(f"seeds must be a non-empty list of integers, got {seeds!r}")
for name, value, minimum in (("bootstrap_resamples", bootstrap_resamples, 1), ("top_k", top_k, 1),
                             ("explanation_examples", explanation_examples, 0)):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
clipbook.preflight(models, datasets, splits=("test",))  # missing weights or data fail here, before any encoding
test_sets = {name: registry.load_dataset(name, "test") for name in datasets}
too_few_classes = {name: len(data.classnames) for name, data in test_sets.items() if len(data.classnames) < top_k}
if too_few_classes:
    raise ValueError(f"top_k={top_k} exceeds the number of classes of {too_few_classes}")
# a missing descriptor file fails here too, naming its URL and where to put it
released = {source: descriptors.load_descriptors(source)
            for source in sorted({DESCRIPTORS_OF[name]["source"] for name in datasets})}

# %% [markdown]
# ## The method
#
# For class $c$ with descriptor set $D(c)$ (GPT-3's in the paper, the toy world's class descriptions offline), the
# score of image $x$ is the mean similarity to the class's descriptor prompts, and the prediction its argmax:
#
# $$s(c, x) = \frac{1}{|D(c)|}\sum_{d\in D(c)} \phi(d, x),\qquad
#   \phi(d, x) = \cos\big(f_I(x),\, f_T(\text{“}c\text{, which is/has } d\text{”})\big),\qquad
#   \hat y = \arg\max_c\, s(c, x).$$
#
# The baseline is $\cos\big(f_I(x), f_T(\text{“}c\text{”})\big)$: the bare class name, no "a photo of a" template.
# Each $\phi(d, x)$ is a term of the sum, so the descriptors with the largest $\phi$ *are* the explanation.
#
# The prompt is "{c}, " + a sentence built from the descriptor by the official rules, tried in this order:
# "which is {d}" if $d$ starts with "a"/"an"; "which {d}" if it starts with has/often/typically/may/can; "which is
# {d}" if it starts with "used"; otherwise "which has {d}". Kept as in the official code, for exact numbers:
# - `startswith('a')` matches any word that begins with the letter a ("always round" → "which is always round");
# - a class with no descriptors gets the single descriptor "" → "{c}, which has " (five Food101 classes);
# - "." ends both the descriptor prompts and the class-name prompt on ImageNet only; no other suffix anywhere.
#
# Scores are reported ×100 like the official explanations (`100 * image @ weights`).

# %%
def descriptor_sentence(descriptor: str) -> str:
    """The descriptor as a relative clause (official loading_helpers.py `make_descriptor_sentence`)."""
    if descriptor.startswith("a"):  # also "an", and any word starting with the letter a (official quirk)
        return f"which is {descriptor}"
    if descriptor.startswith(("has", "often", "typically", "may", "can")):
        return f"which {descriptor}"
    if descriptor.startswith("used"):
        return f"which is {descriptor}"
    return f"which has {descriptor}"


def descriptor_prompts(classname: str, class_descriptors: list[str], suffix: str = "",
                       with_name: bool = True) -> list[str]:
    """One prompt per descriptor (official loading_helpers.py `load_gpt_descriptions` with its defaults:
    category_name_inclusion 'prepend', before_text '', between_text ', '). `with_name=False` is the official
    option category_name_inclusion=None: the sentence alone, without suffix (an ablation here)."""
    sentences = [descriptor_sentence(d) for d in (class_descriptors or [""])]
    if not with_name:
        return sentences
    name = classname.replace("_", " ")  # official `wordify`
    return [f"{name}, {sentence}{suffix}" for sentence in sentences]


def description_classifier(loaded, prompts_per_class: list[list[str]]) -> torch.Tensor:
    """(D, K) weights with image @ weights = s(c, x): per class the mean of its prompts' unit text embeddings,
    not renormalised (official load.py `compute_description_encodings` + `aggregate_similarity('mean')`)."""
    return zeroshot.prompt_set_classifier(loaded, prompts_per_class, renormalize=False)


def class_name_classifier(loaded, classnames: list[str], suffix: str = "") -> torch.Tensor:
    """The baseline: one unit embedding of '{c}{suffix}' per class (official load.py `compute_label_encodings`)."""
    return zeroshot.zero_shot_classifier(loaded, classnames, ["{}" + suffix])


# %% [markdown]
# ## Descriptors and prompts
#
# Each dataset's labels are mapped onto the classes of its descriptor file; the prompts then use the file's class
# names, as the official code does (`label_to_classname` are the file's keys). The first prompts of each dataset:

# %%
def normalised(classname: str) -> str:
    return classname.replace("_", " ").strip().lower()


def aligned_descriptors(dataset_name: str) -> tuple[list[str], list[list[str]]]:
    """Per label of the dataset: the class name the prompts use and the class's descriptors."""
    config = DESCRIPTORS_OF[dataset_name]
    released_classes = released[config["source"]]
    classnames = test_sets[dataset_name].classnames
    if config["match"] == "position":
        if len(released_classes) != len(classnames):
            raise ValueError(f"{dataset_name} has {len(classnames)} classes but {config['source']} describes "
                             f"{len(released_classes)}; the file's class order cannot be its label order")
        names = list(released_classes)
    else:
        by_name = {normalised(name): name for name in released_classes}
        names = [by_name.get(normalised(c), c) for c in classnames]
    return names, descriptors.descriptors_for(names, released_classes)  # an unmatched class fails, named


class Task:
    """One dataset: its prompt class names, descriptors, labels and the prompt suffix."""

    def __init__(self, dataset_name: str):
        self.dataset_name, self.data = dataset_name, test_sets[dataset_name]
        self.suffix = DESCRIPTORS_OF[dataset_name]["suffix"]
        self.classnames, self.descriptors = aligned_descriptors(dataset_name)
        self.prompts = [descriptor_prompts(c, d, self.suffix) for c, d in zip(self.classnames, self.descriptors)]
        self.labels = torch.as_tensor(self.data.labels)


tasks = [Task(name) for name in datasets]
pd.DataFrame([{"dataset": task.dataset_name, "label": label, "dataset class": task.data.classnames[label],
               "prompt": task.prompts[label][0], "descriptors": len(task.descriptors[label])}
              for task in tasks for label in range(min(3, len(task.classnames)))])

# %% [markdown]
# ## The experiment
#
# For every model and dataset: the test images' features (cached by the library), then four classifiers on the
# same features:
# - **class name** — the paper's baseline, "{c}";
# - **descriptors** — the method, $s(c, x)$;
# - **dataset template** — the dataset's standard prompt ("a photo of a {c}." on the toy world, CoOp's templates on
#   real data), a stronger baseline than the bare name;
# - **descriptors without name** — the official option `category_name_inclusion=None`, an ablation: do the
#   descriptors alone carry the class?
#
# The method draws nothing at random; the seeds drive a paired bootstrap over the test images (same resample for
# both methods) that gives a 95 % interval for the change in top-1.

# %%
CLASS_NAME, DESCRIPTORS, TEMPLATE, WITHOUT_NAME = ("class name", "descriptors", "dataset template",
                                                   "descriptors without name")
METHODS = [CLASS_NAME, DESCRIPTORS, TEMPLATE, WITHOUT_NAME]


def classifiers(loaded, task: Task) -> dict[str, torch.Tensor]:
    return {
        CLASS_NAME: class_name_classifier(loaded, task.classnames, task.suffix),
        DESCRIPTORS: description_classifier(loaded, task.prompts),
        TEMPLATE: zeroshot.zero_shot_classifier(loaded, task.classnames, task.data.templates),
        WITHOUT_NAME: description_classifier(loaded, [descriptor_prompts(c, d, task.suffix, with_name=False)
                                                      for c, d in zip(task.classnames, task.descriptors)]),
    }


def bootstrap_interval(correct: np.ndarray, correct_baseline: np.ndarray, seed: int,
                       resamples: int = bootstrap_resamples, chunk: int = 100) -> tuple[float, float]:
    """95 % paired-bootstrap interval of the accuracy change (percentage points)."""
    rng = np.random.default_rng(seed)
    difference = correct.astype(np.float64) - correct_baseline.astype(np.float64)
    changes = []
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, len(difference), size=(min(chunk, resamples - start), len(difference)))
        changes.append(difference[rows].mean(axis=1) * 100)
    low, high = np.percentile(np.concatenate(changes), [2.5, 97.5])
    return float(low), float(high)


class Run:
    """One model on one dataset: features, the four classifiers and their scores."""

    def __init__(self, model_name: str, loaded, task: Task):
        self.model_name, self.loaded, self.task = model_name, loaded, task
        self.features = features.image_features(loaded, task.data)
        self.weights = classifiers(loaded, task)
        self.scores = {method: zeroshot.zero_shot_logits(self.features, w) for method, w in self.weights.items()}

    def rows(self) -> list[dict]:
        base = {"model": self.model_name, "dataset": self.task.dataset_name}
        return [{**base, "method": method, "top-1": metrics.accuracy(scores, self.task.labels),
                 f"top-{top_k}": metrics.top_k_accuracy(scores, self.task.labels, top_k)}
                for method, scores in self.scores.items()]

    def intervals(self) -> dict:
        correct = {m: (self.scores[m].argmax(dim=1) == self.task.labels).numpy() for m in (DESCRIPTORS, CLASS_NAME)}
        return {seed: bootstrap_interval(correct[DESCRIPTORS], correct[CLASS_NAME], seed) for seed in seeds}


runs = []
for model_name, tag in models:
    loaded = load_model(model_name, tag, device=session.device)
    runs += [Run(model_name, loaded, task) for task in tasks]
results = pd.DataFrame([row for run in runs for row in run.rows()])
(results.set_index(["model", "dataset", "method"]).unstack("method")
 .reindex(columns=METHODS, level="method").round(2))

# %%
def change_table() -> pd.DataFrame:
    rows = []
    for run in runs:
        accuracy = results[(results.model == run.model_name) & (results.dataset == run.task.dataset_name)]
        accuracy = accuracy.set_index("method")
        row = {"model": run.model_name, "dataset": run.task.dataset_name,
               "class name top-1": accuracy.loc[CLASS_NAME, "top-1"],
               "descriptors top-1": accuracy.loc[DESCRIPTORS, "top-1"],
               "change top-1": accuracy.loc[DESCRIPTORS, "top-1"] - accuracy.loc[CLASS_NAME, "top-1"],
               f"change top-{top_k}": accuracy.loc[DESCRIPTORS, f"top-{top_k}"] - accuracy.loc[CLASS_NAME, f"top-{top_k}"]}
        for seed, (low, high) in run.intervals().items():
            row[f"95% interval (seed {seed})"] = f"[{low:+.2f}, {high:+.2f}]"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "dataset"])


changes = change_table()
changes.round(2)

# %% [markdown]
# ## Sanity checks against independent formulations
#
# On the headline model and dataset:
# 1. the score equals the mean of the per-descriptor cosines computed one prompt at a time in a plain loop;
# 2. with $D(c)$ replaced by the class-name prompt alone ("{c}"), the method is the baseline exactly: the same
#    scores and predictions (the official builder would turn an empty descriptor into "{c}, which has ", so this
#    is the equivalent of $D(c) = \{\text{“”}\}$);
# 3. shuffling each class's descriptors changes nothing (a mean is order-free);
# 4. the prompt builder reproduces the official prompts, e.g. "tench, which is a freshwater fish." for the first
#    ImageNet descriptor, and each sentence rule.

# %%
def per_descriptor_cosines(loaded, image_features: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """(N, |D|) cosines, each prompt encoded on its own."""
    columns = []
    for prompt in prompts:
        text = loaded.encode_text_prompts([prompt]).double().cpu()[0]
        columns.append(F.normalize(image_features.double(), dim=-1) @ (text / text.norm()))
    return torch.stack(columns, dim=1)


def check_method(run: Run, images: int = 256, classes: int = 100) -> pd.Series:
    task, loaded = run.task, run.loaded
    x, checked = run.features[:images], range(min(classes, len(task.classnames)))
    scores = run.scores[DESCRIPTORS][:images] / 100
    by_loop = torch.stack([per_descriptor_cosines(loaded, x, task.prompts[c]).mean(dim=1) for c in checked], dim=1)

    name_only = description_classifier(loaded, [[c.replace("_", " ") + task.suffix] for c in task.classnames])
    name_only_scores = zeroshot.zero_shot_logits(run.features, name_only)

    rng = np.random.default_rng(seeds[0])
    shuffled = [descriptor_prompts(c, [d[i] for i in rng.permutation(len(d))], task.suffix)
                for c, d in zip(task.classnames, task.descriptors)]
    shuffled_scores = zeroshot.zero_shot_logits(run.features, description_classifier(loaded, shuffled))
    return pd.Series({
        "max |score - loop mean of cosines|": float((scores[:, list(checked)].double() - by_loop).abs().max()),
        "max |name-only score - baseline score| (x100)":
            float((name_only_scores - run.scores[CLASS_NAME]).abs().max()),
        "name-only predictions equal to baseline (%)":
            float((name_only_scores.argmax(1) == run.scores[CLASS_NAME].argmax(1)).double().mean() * 100),
        "max |shuffled score - score| (x100)": float((shuffled_scores - run.scores[DESCRIPTORS]).abs().max()),
        "shuffled predictions equal (%)":
            float((shuffled_scores.argmax(1) == run.scores[DESCRIPTORS].argmax(1)).double().mean() * 100),
    })


sanity = check_method(runs[0])
assert sanity["max |score - loop mean of cosines|"] < 1e-5, sanity
assert sanity["max |name-only score - baseline score| (x100)"] < 1e-4, sanity
assert sanity["name-only predictions equal to baseline (%)"] == 100, sanity
assert sanity["max |shuffled score - score| (x100)"] < 1e-4, sanity
assert sanity["shuffled predictions equal (%)"] == 100, sanity
sanity.to_frame("value")

# %%
# expected prompts written out by hand from the official rules; "a freshwater fish" is the first ImageNet
# descriptor of tench in the released descriptors_imagenet.json
PROMPT_CASES = [
    ("tench", "a freshwater fish", ".", "tench, which is a freshwater fish."),
    ("Egyptian_Mau", "an elegant cat", "", "Egyptian Mau, which is an elegant cat"),
    ("beagle", "has long, floppy ears", "", "beagle, which has long, floppy ears"),
    ("heron", "often found near water", "", "heron, which often found near water"),
    ("cleaver", "used for chopping", "", "cleaver, which is used for chopping"),
    ("ring", "always round", "", "ring, which is always round"),  # the letter-a quirk
    ("zebra", "black and white stripes", "", "zebra, which has black and white stripes"),
    ("donuts", None, "", "donuts, which has "),  # a class without descriptors
]
prompt_check = pd.DataFrame([
    {"class": c, "descriptor": d, "prompt": descriptor_prompts(c, [] if d is None else [d], suffix)[0],
     "expected": expected} for c, d, suffix, expected in PROMPT_CASES])
if "cbd-imagenet" in released:  # paper profile: the same prompt from the downloaded file itself
    prompt_check.loc[len(prompt_check)] = {
        "class": "tench (released file)", "descriptor": released["cbd-imagenet"]["tench"][0],
        "prompt": descriptor_prompts("tench", released["cbd-imagenet"]["tench"], ".")[0],
        "expected": "tench, which is a freshwater fish."}
prompt_check["same"] = prompt_check["prompt"] == prompt_check["expected"]
assert prompt_check["same"].all(), prompt_check
prompt_check

# %% [markdown]
# ## Accuracy: descriptors vs class name

# %%
def plot_accuracy(frame: pd.DataFrame):
    model_names = list(dict.fromkeys(frame.model))
    fig, axes = plt.subplots(1, len(model_names), figsize=(max(7.5, 2.2 * len(datasets)) * len(model_names), 4.2),
                             squeeze=False)
    for ax, model_name in zip(axes.flat, model_names):
        sns.barplot(data=frame[frame.model == model_name], x="dataset", y="top-1", hue="method", hue_order=METHODS,
                    ax=ax)
        ax.set_title(model_name, fontsize=10)
        ax.set_xlabel("")
        ax.set_ylabel("top-1 accuracy (%)")
        chance = [100 / len(test_sets[name].classnames) for name in datasets]
        ax.hlines(chance, np.arange(len(datasets)) - 0.45, np.arange(len(datasets)) + 0.45, colors="black",
                  linestyles="dashed", linewidth=1, label="chance")
        ax.legend(fontsize=8, title=None)
    fig.tight_layout()
    return fig


plot_accuracy(results)
plt.show()

# %% [markdown]
# ## Explanations
#
# As in the paper's figure: for test images of the headline dataset where the two classifiers disagree, the class
# the descriptors chose ("ours") with its average score and the score of each descriptor, beside the same for the
# class the class-name baseline chose ("CLIP"). Half the examples are images the descriptors got right and the
# baseline wrong, half the reverse; which ones is drawn with the first seed.

# %%
def pick_examples(run: Run, count: int) -> list[int]:
    ours, clip = run.scores[DESCRIPTORS].argmax(1), run.scores[CLASS_NAME].argmax(1)
    labels = run.task.labels
    fixed = torch.where((ours == labels) & (clip != labels))[0].numpy()
    broken = torch.where((ours != labels) & (clip == labels))[0].numpy()
    rng = np.random.default_rng(seeds[0])
    take_fixed = min(len(fixed), count - min(len(broken), count // 2))
    take_broken = min(len(broken), count - take_fixed)
    return ([int(i) for i in sorted(rng.choice(fixed, take_fixed, replace=False))]
            + [int(i) for i in sorted(rng.choice(broken, take_broken, replace=False))])


def explanation(run: Run, index: int, label: int) -> pd.Series:
    """Score ×100 of each descriptor of class `label` for image `index`, best first, under its average."""
    task = run.task
    cosines = per_descriptor_cosines(run.loaded, run.features[index:index + 1], task.prompts[label])[0] * 100
    shown = task.descriptors[label] or [""]  # the descriptors as released, like the official `unmodify_dict`
    terms = pd.Series(cosines.numpy(), index=shown).sort_values(ascending=False)
    return pd.concat([pd.Series({"average": float(run.scores[DESCRIPTORS][index, label])}), terms])


def plot_explanations(run: Run, indices: list[int]):
    task = run.task
    fig, axes = plt.subplots(len(indices), 3, figsize=(11, 1.9 * len(indices)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 2.4, 2.4]})
    for row, index in zip(axes, indices):
        image, label = task.data[index]
        row[0].imshow(image, interpolation="nearest")
        row[0].set_title(f"true: {task.classnames[label]}", fontsize=9)
        row[0].axis("off")
        choices = [("ours", run.scores[DESCRIPTORS][index].argmax().item(), "#3b7dd8"),
                   ("CLIP", run.scores[CLASS_NAME][index].argmax().item(), "#c8312b")]
        bars = [explanation(run, index, chosen) for _, chosen, _ in choices]
        low = min(b.min() for b in bars) - 2
        high = max(b.max() for b in bars) + 1
        for ax, (who, chosen, colour), terms in zip(row[1:], choices, bars):
            colours = [colour] * len(terms)
            colours[0] = "#333333"
            ax.barh(range(len(terms)), terms.values - low, left=low, color=colours)
            ax.set_yticks(range(len(terms)), [t if len(t) <= 38 else t[:37] + "…" for t in terms.index], fontsize=8)
            ax.invert_yaxis()
            ax.set_xlim(low, high)
            for y, value in enumerate(terms.values):
                ax.text(value, y, f" {value:.2f}", va="center", fontsize=7)
            mark = "✓" if chosen == label else "✗"
            ax.set_title(f"{who}: {task.classnames[chosen]} {mark}", fontsize=9, loc="left")
            ax.tick_params(axis="x", labelsize=7)
            ax.grid(False, axis="y")
    fig.tight_layout()
    return fig


example_run = runs[0]
examples = pick_examples(example_run, explanation_examples)
if examples:
    plot_explanations(example_run, examples)
    plt.show()
pd.DataFrame([{"image": i, "true": example_run.task.classnames[int(example_run.task.labels[i])],
               "ours": example_run.task.classnames[example_run.scores[DESCRIPTORS][i].argmax().item()],
               "CLIP": example_run.task.classnames[example_run.scores[CLASS_NAME][i].argmax().item()]}
              for i in examples])

# %% [markdown]
# ## Reading the offline results
#
# - On the toy world the descriptors do not help the tiny CLIP: top-1 falls on the photos and on the sketches, and
#   on the noisy photos the change is within its bootstrap interval. The hope that descriptions help most under
#   shift is not borne out here. Top-5 is saturated on the photos (12 classes).
# - The descriptors themselves are grounded: without the class name they classify about as well as the bare name
#   (the tiny CLIP read them in captions such as "a photo of a red shape with three corners."). What loses is the
#   composed sentence "{c}, which is {d}", a form absent from its captions: a two-layer text tower trained on toy
#   captions does not combine the name and the description the way web-scale CLIP does. The paper profile tests
#   the paper's setting, real CLIP models and GPT-3 descriptors.
# - The explanations still show what the method offers: the descriptor scores say which visual facts drove each
#   decision (a hole in the middle → ring), and where it errs, which descriptor misled it.
#
# ## Verdict
#
# The claim holds where describing the classes raises top-1 over the bare class name; it is tested on every model
# and dataset run here (the paper reports gains on all of its datasets and backbones). Reported numbers: only the
# ImageNet ViT-B/32 class-name baseline, 58.46 % top-1, is confirmed (Table 1, as quoted in the official
# repository's issue #1); the paper's description-based cells are not, so they are left out. In the paper profile
# ImageNet is the official validation set, as in the paper; DTD, EuroSAT and Food101 are CoOp's test splits
# (clipbook's data layout), not the torchvision/VISSL test folders the official code reads, so their numbers are
# comparable to the paper's, not identical.

# %%
REPORTED = {("ViT-B-32", "imagenet"): {"class_name_top1": 58.46}}  # Table 1 via official issue #1


def suffix(model_name: str, dataset_name: str) -> str:
    parts = ([] if dataset_name == datasets[0] else [dataset_name]) + ([] if model_name == models[0][0] else
                                                                       [model_name])
    return "".join(f"_{part}" for part in parts)


accuracy = results.set_index(["model", "dataset", "method"]).sort_index()
metric_values, baseline_values, reported_values = {}, {}, {}
for run in runs:
    key = suffix(run.model_name, run.task.dataset_name)
    row = accuracy.loc[(run.model_name, run.task.dataset_name)]
    metric_values.update({f"descriptor_top1{key}": row.loc[DESCRIPTORS, "top-1"],
                          f"descriptor_top{top_k}{key}": row.loc[DESCRIPTORS, f"top-{top_k}"],
                          f"descriptor_without_name_top1{key}": row.loc[WITHOUT_NAME, "top-1"]})
    baseline_values.update({f"class_name_top1{key}": row.loc[CLASS_NAME, "top-1"],
                            f"class_name_top{top_k}{key}": row.loc[CLASS_NAME, f"top-{top_k}"],
                            f"template_top1{key}": row.loc[TEMPLATE, "top-1"]})
    if session.profile == "paper":
        model_family = run.model_name.removesuffix("-quickgelu")
        reported = REPORTED.get((model_family, run.task.dataset_name), {})
        reported_values.update({f"{name}{key}": value for name, value in reported.items()})

claim_holds = bool((changes["change top-1"] > 0).all())
described = "; ".join(
    f"{dataset}{'' if len(models) == 1 else ' / ' + model}: {row['change top-1']:+.2f} pp "
    f"(95% bootstrap, seed {seeds[0]}: {row[f'95% interval (seed {seeds[0]})']})"
    for (model, dataset), row in changes.iterrows())
verdict = changes[["class name top-1", "descriptors top-1", "change top-1", f"change top-{top_k}"]].copy()
verdict["descriptors win"] = verdict["change top-1"] > 0
if reported_values:
    verdict["class name top-1 reported"] = [
        REPORTED.get((m.removesuffix("-quickgelu"), d), {}).get("class_name_top1", np.nan) for m, d in verdict.index]
verdict.round(2)

# %%
result = record(
    metrics=metric_values, baseline=baseline_values, reported=reported_values,
    key_metric="descriptor_top1", key_baseline="class_name_top1",
    claim="Classifying by the mean similarity to per-class descriptors beats the class-name baseline (top-1) "
          "on every dataset and model",
    claim_holds=claim_holds,
    notes=f"Top-1 change, descriptors minus class name: {described}.",
)
