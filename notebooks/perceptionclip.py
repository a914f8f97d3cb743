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
# # PerceptionCLIP — Visual Classification by Inferring and Conditioning on Contexts
#
# An, Zhu, Panaitescu-Liess, Mummadi, Huang — ICLR 2024 · [arXiv:2308.01313](https://arxiv.org/abs/2308.01313) ·
# official code [umd-huang-lab/perceptionCLIP](https://github.com/umd-huang-lab/perceptionCLIP) (MIT; read, not
# copied).
#
# **Claim.** Classifying in two steps — first infer a contextual attribute $z$ of the image (its background,
# its gender, …) with CLIP itself, then classify conditioned on it — makes zero-shot CLIP less reliant on
# spurious features: with ViT-L/14 it raises the worst-group accuracy by **16.5 points on Waterbirds** and
# **3.5 on CelebA** over plain zero-shot classification (Table 7/8).
#
# **This notebook** regenerates that comparison: average and worst-group accuracy of one-step zero-shot CLIP
# versus two-step PerceptionCLIP, for every contextual factor, both ways of inferring $z$ and the official
# temperature sweep. The `offline` profile runs it on the toy world with the library's tiny CLIP: groups are
# (class, background) on a split where every class appears on every background, with the background as the
# context $z$ (the Waterbirds analogue), and (class, domain) over the photo, noise and sketch domains, with the
# domain as $z$ (like the paper's ImageNet "condition/quality" factors). The `paper` profile runs OpenAI RN50,
# ViT-B/32, ViT-B/16 and ViT-L/14 on Waterbirds and CelebA and shows the confirmed reported gains beside ours.

# %% tags=["parameters"]
profile = "offline"  # "offline" (toy world, CPU) or "paper" (real checkpoints and datasets, GPU)
models = [["clipbook-tiny-rn", "toyworld"]]  # [open_clip architecture, pretrained tag]; the first is the headline
benchmarks = ["toy-background", "toy-domain"]  # keys of BENCHMARKS below; the first is the headline
eval_split = "test"  # split reported; the official Table 7/8 scripts evaluate the TRAIN split (--eval_trainset True)
selection_split = "val"  # split the temperature and factor set are selected on (by worst-group accuracy)
infer_modes = [0, 1]  # how P(z|x) is inferred: 0 "w/ y" (the paper's main variant), 1 "w/o y" (y-free prompts)
temperatures = [0.5, 0.8, 1, 3, 5, 10]  # official sweep of scripts/srun_waterbirds_ours_twostep_compose.sh
image_transform = "model"  # "model" (the CLIP tag's preprocessing) or "official" (the official dataset transforms)
seeds = [1, 2, 3]  # group-stratified bootstrap resamples of the evaluation split (the method itself is deterministic)
device = "auto"

# %%
import numpy as np
import pandas as pd
import seaborn as sns
import torch
import matplotlib.pyplot as plt
from itertools import product
from torchvision import transforms

import clipbook
from clipbook import features, metrics, zeroshot
from clipbook.data import registry
from clipbook.models.loader import load_model
from clipbook.report.record import record
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld import world

# Contextual factors, value -> descriptions (several descriptions of one value are prompt-ensembled).
# Waterbirds and CelebA: the official src/templates/{waterbirds,celeba}_template.py. Toy world: the world's own
# background phrases, and its caption words for the two shifted domains (the normal domain gets the empty
# description, as the official "normal"/"others" values of the ImageNet factors).
FACTORS = {
    "toy background": {name: [f"on {spec['phrase']}"] for name, spec in world.BACKGROUNDS.items()},
    "toy domain": {"photo": [""], "sketch": ["a sketch"], "noise": ["a noisy photo"]},
    "simple_background": {"land": ["on land"], "water": ["on water"]},
    "background": {"others": [""], "land": ["on land"], "water": ["on water"], "forest": ["in forest"],
                   "sky": ["in sky"], "street": ["on street"], "grass": ["on grass"], "tree": ["on tree"],
                   "flowers": ["with flowers"], "beach": ["on beach"], "human": ["with human"],
                   "branch": ["on a branch"]},
    "gender": {"not_sure": [""], "female": ["female"], "male": ["male"]},
    "age": {"not_sure": [""], "young": ["young"], "old": ["old"]},
    "race": {"others": [""], "white": ["white skin"], "dark": ["dark skin"], "asian": ["asian"]},
}
# One group-robustness benchmark: the registry datasets pooled per split, the attribute that defines the
# groups (class, attribute), the one-step template (the baseline), the main template the context is appended to,
# the word replacing the class in the y-free prompts (--convert_text) and the factor sets (official runs in
# replicate_runs.sh). `true_factor` is the factor whose values are the group attribute's values; `aligned` lists the
# (class, attribute) groups of the spurious correlation: the toy class on its home background (30 % of its
# pretraining images, 14 % for each other background), landbirds on land and waterbirds on water, blond women and
# dark-haired men.
BENCHMARKS = {
    "toy-background": {
        "datasets": ["toy"], "splits": {"val": "background-uniform-val", "test": "background-uniform-test"},
        "group_attribute": "background", "simple_template": "a photo of a {}.", "main_template": "a photo of a {}",
        "convert_text": "shape", "factor_sets": [["toy background"]], "true_factor": "toy background",
        "aligned": [[name, toy_splits.home_background(label)] for label, name in enumerate(world.CLASS_NAMES)]},
    "toy-domain": {
        "datasets": ["toy", "toy-noise", "toy-sketch"], "splits": {"val": "val", "test": "test"},
        "group_attribute": "domain", "simple_template": "a photo of a {}.", "main_template": "a photo of a {}",
        "convert_text": "shape", "factor_sets": [["toy domain"]], "true_factor": "toy domain", "aligned": []},
    "waterbirds": {
        "datasets": ["waterbirds"], "splits": {"train": "train", "val": "val", "test": "test"},
        "group_attribute": "place", "simple_template": "a photo of a {}.", "main_template": "a photo of a {}",
        "convert_text": "bird", "factor_sets": [["simple_background"], ["background"]],
        "true_factor": "simple_background", "aligned": [["landbird", "land"], ["waterbird", "water"]]},
    # The CelebA script passes celeba_simple_template (with its full stop) as --main_template, so the official
    # prompts read "a photo of a celebrity with blond hair., female."; kept as the official code builds them.
    "celeba": {
        "datasets": ["celeba"], "splits": {"train": "train", "val": "val", "test": "test"},
        "group_attribute": "gender", "simple_template": "a photo of a celebrity with {}.",
        "main_template": "a photo of a celebrity with {}.", "convert_text": "hair",
        "factor_sets": [["gender"], ["gender", "age"], ["gender", "age", "race"]], "true_factor": "gender",
        "aligned": [["blond hair", "female"], ["dark hair", "male"]]},
}

session = clipbook.setup(profile, device=device)
if not isinstance(benchmarks, list) or not benchmarks or any(b not in BENCHMARKS for b in benchmarks):
    raise ValueError(f"benchmarks must be a non-empty list of {', '.join(BENCHMARKS)}; got {benchmarks!r}")
for name in benchmarks:
    available = BENCHMARKS[name]["splits"]
    for label, split in (("eval_split", eval_split), ("selection_split", selection_split)):
        if split not in available:
            raise ValueError(f"{label} {split!r} is not a split of benchmark {name!r}; "
                             f"accepted: {', '.join(available)}")
if eval_split == selection_split:
    raise ValueError(f"selection_split and eval_split must differ, both are {eval_split!r}")
if not infer_modes or any(mode not in (0, 1) for mode in infer_modes):
    raise ValueError(f"infer_modes must be a non-empty list of 0 (w/ y) and 1 (w/o y); got {infer_modes!r}")
if not temperatures or any(isinstance(t, bool) or not isinstance(t, (int, float)) or t <= 0 for t in temperatures):
    raise ValueError(f"temperatures must be a non-empty list of positive numbers (official: 0.5, 0.8, 1, 3, 5, 10); "
                     f"got {temperatures!r}")
if image_transform not in ("model", "official"):
    raise ValueError(f"image_transform must be 'model' or 'official', got {image_transform!r}")
if image_transform == "official" and any(name.startswith("toy") for name in benchmarks):
    raise ValueError(f"image_transform 'official' exists only for waterbirds and celeba, not {benchmarks!r}; "
                     "use 'model' for the toy benchmarks")
if not seeds or any(isinstance(s, bool) or not isinstance(s, int) for s in seeds):
    raise ValueError(f"seeds must be a non-empty list of integers, e.g. [1, 2, 3]; got {seeds!r}")
for name in benchmarks:  # missing weights or data fail here, before any encoding
    splits_needed = tuple(BENCHMARKS[name]["splits"][s] for s in (selection_split, eval_split))
    clipbook.preflight(models, BENCHMARKS[name]["datasets"], splits=splits_needed)

# %% [markdown]
# ## The method
#
# Let $f(y, z; x)$ be CLIP's logit (cosine similarity times the model's logit scale) between the image $x$ and
# the prompt "a photo of a $\{y\}$, $\{z\}$." for a class $y$ and a value $z$ of a contextual factor (e.g. the
# background "on water"; a value with several descriptions gets their mean text embedding; several factors
# compose into their Cartesian product). PerceptionCLIP first infers the context,
#
# $$P(z\mid x) = \frac{\sum_y \exp\!\big(f(y,z;x)/T\big)}{\sum_{z'}\sum_y \exp\!\big(f(y,z';x)/T\big)}
# \quad\text{(infer\_mode 0, "w/ y")},\qquad
# P(z\mid x) = \operatorname{softmax}_z\, f(z;x)/T \quad\text{(infer\_mode 1, "w/o y")},$$
#
# where $f(z;x)$ uses y-free prompts with a generic word in place of the class ("a photo of a bird, on water."),
# then classifies conditioned on it:
#
# $$P(y\mid x) = \sum_z P(z\mid x)\, \operatorname{softmax}_y f(y,z;x), \qquad \hat y = \arg\max_y P(y\mid x).$$
#
# The baseline is one-step zero-shot CLIP with the dataset's simple template. The functions follow
# `src/zero_shot_inference/perceptionclip_two_step.py` (`main`, `classify`) and
# `src/zero_shot_inference/utils.py` (`generate_composite_factors`, the second `compose_template`, which is
# the one Python keeps, and `template_convert`). The official code exponentiates logits directly; we work in
# log space (`logsumexp`, `softmax`), which is the same function without float32 overflow — the sanity
# checks compare the two. As in the official code the logits carry the model's own logit scale: 100 for OpenAI
# CLIP, about 20 for the tiny CLIP, so offline the same temperatures act on flatter logits.

# %%
def compose_factors(factor_names: list[str]) -> dict[str, list[str]]:
    """Composite context values of several factors: their product, descriptions joined by ', ' with empty ones
    dropped (official utils.py: generate_composite_factors)."""
    composite = {"": [""]}
    for factor in factor_names:
        composite = {"_".join(k for k in (key, value) if k): [", ".join(d for d in (old, new) if d)
                                                             for old in descriptions for new in new_descriptions]
                     for key, descriptions in composite.items() for value, new_descriptions in FACTORS[factor].items()}
    return composite


def conditioned_prompts(main_template: str, subject: str, descriptions: list[str]) -> list[str]:
    """The prompts of one (subject, context value): main template + ', ' + description + '.' (official utils.py:
    compose_template, the later definition)."""
    return [main_template.format(subject) + (f", {d}." if d else ".") for d in descriptions]


class ContextClassifier:
    """The text side of f(y, z; x) — one prompt-ensembled text embedding per (class, context value), times the
    model's logit scale (official get_zeroshot_classifier_flat_advance) — and of f(z; x) from the y-free prompts
    (official template_convert + get_zeroshot_classifier_puretext_advance)."""

    def __init__(self, loaded, classnames, context, main_template, convert_text):
        names = [c.replace("_", " ") for c in classnames]
        self.shape = (len(names), len(context))
        self.scale = loaded.model.logit_scale.exp().item()
        self.weights = zeroshot.prompt_set_classifier(
            loaded, [conditioned_prompts(main_template, name, context[value]) for name in names for value in context])
        self.y_free_weights = zeroshot.prompt_set_classifier(
            loaded, [conditioned_prompts(main_template, convert_text, context[value]) for value in context])

    def logits(self, image_features):
        """f(y, z; x) as an (N, |Y|, |Z|) tensor."""
        return (self.scale * image_features @ self.weights).view(len(image_features), *self.shape)

    def y_free_logits(self, image_features):
        """f(z; x) as an (N, |Z|) tensor."""
        return self.scale * image_features @ self.y_free_weights


def perceptionclip(logits, temperature: float, factor_logits=None):
    """Two-step inference: returns P(y|x) (N, |Y|) and P(z|x) (N, |Z|) (official perceptionclip_two_step.py:
    classify). `factor_logits` given means infer_mode 1 (w/o y), otherwise infer_mode 0 (w/ y)."""
    if factor_logits is None:
        context_probs = torch.softmax(torch.logsumexp(logits / temperature, dim=1), dim=1)
    else:
        context_probs = torch.softmax(factor_logits / temperature, dim=1)
    conditional = torch.softmax(logits, dim=1)  # P(y|x,z): softmax over classes at temperature 1
    return (conditional * context_probs[:, None, :]).sum(dim=2), context_probs


# %% [markdown]
# ## Data and features
#
# Every split is encoded once per model and cached by the library. A benchmark's split may pool several
# registry datasets (the three toy domains); each image's group is (class, attribute). The `official` image
# transform reproduces what the official Waterbirds and CelebA loaders do: they ignore CLIP's preprocessing and
# apply their own (`src/datasets/waterbirds.py` normalises with ImageNet's mean used as the std as well).

# %%
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
OFFICIAL_TRANSFORMS = {
    "waterbirds": transforms.Compose([transforms.Resize((256, 256)), transforms.CenterCrop(224), transforms.ToTensor(),
                                      transforms.Normalize(IMAGENET_MEAN, IMAGENET_MEAN)]),  # sic: std = mean
    "celeba": transforms.Compose([transforms.CenterCrop(178), transforms.Resize((224, 224)), transforms.ToTensor(),
                                  transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]),
}


class GroupSplit:
    """Features, labels and group names of one benchmark split, pooled over its datasets."""

    def __init__(self, loaded, benchmark_name, split):
        bench = BENCHMARKS[benchmark_name]
        transform = OFFICIAL_TRANSFORMS[benchmark_name] if image_transform == "official" else None
        parts = [registry.load_dataset(name, bench["splits"][split]) for name in bench["datasets"]]
        self.classnames = parts[0].classnames
        self.features = torch.cat([features.image_features(loaded, part, transform=transform) for part in parts])
        self.labels = torch.as_tensor(np.concatenate([part.labels for part in parts]))
        self.attribute = np.concatenate([part.attribute(bench["group_attribute"]) for part in parts])
        self.groups = np.array([f"{self.classnames[y]} / {a}" for y, a in zip(self.labels.tolist(), self.attribute)])


def group_summary(predictions, split) -> dict:
    """Average accuracy (over all images, as the official code) and worst-group accuracy (%)."""
    return {"average": metrics.accuracy(predictions, split.labels),
            "worst group": metrics.worst_group_accuracy(predictions, split.labels, split.groups)}


# %% [markdown]
# ## The experiment
#
# For every model and benchmark: the zero-shot baseline, then PerceptionCLIP for every factor set, inference mode
# and temperature, on the selection split and the evaluation split. The official scripts sweep the temperature
# and (presumably) report the best value on the evaluated split; we select the (factor set, mode, temperature)
# with the best worst-group accuracy on the **selection split** (ties: better average, then sweep order) and
# report it on the evaluation split. The best configuration on the evaluation split itself is shown as
# "oracle", labelled as such.

# %%
def run_benchmark(loaded, model_label, benchmark_name):
    bench = BENCHMARKS[benchmark_name]
    data = {split: GroupSplit(loaded, benchmark_name, split) for split in (selection_split, eval_split)}
    classnames = data[eval_split].classnames
    zero_shot_weights = zeroshot.zero_shot_classifier(loaded, classnames, [bench["simple_template"]])
    rows, predictions = [], {}
    base = {"model": model_label, "benchmark": benchmark_name}
    for split, part in data.items():
        predictions[("zero-shot", split)] = zeroshot.zero_shot_logits(part.features, zero_shot_weights).argmax(1)
        rows.append({**base, "split": split, "method": "zero-shot CLIP", "factors": "", "infer_mode": np.nan,
                     "temperature": np.nan, **group_summary(predictions[("zero-shot", split)], part)})
    classifiers = {}
    for factor_names in bench["factor_sets"]:
        factor_label = ",".join(factor_names)
        classifiers[factor_label] = ContextClassifier(loaded, classnames, compose_factors(factor_names),
                                                      bench["main_template"], bench["convert_text"])
        for split, part in data.items():
            logits = classifiers[factor_label].logits(part.features)
            y_free = classifiers[factor_label].y_free_logits(part.features)
            for mode, temperature in product(infer_modes, temperatures):
                probs, _ = perceptionclip(logits, temperature, y_free if mode == 1 else None)
                key = (factor_label, mode, temperature, split)
                predictions[key] = probs.argmax(1)
                rows.append({**base, "split": split, "method": "PerceptionCLIP", "factors": factor_label,
                             "infer_mode": mode, "temperature": temperature,
                             **group_summary(predictions[key], part)})
    return pd.DataFrame(rows), predictions, data, classifiers


def classifier_for(run, factor_label):
    """The run's context classifier of a factor set ('a,b'), built on first use."""
    if factor_label not in run["classifiers"]:
        bench = BENCHMARKS[run["benchmark"]]
        run["classifiers"][factor_label] = ContextClassifier(
            run["loaded"], run["data"][eval_split].classnames, compose_factors(factor_label.split(",")),
            bench["main_template"], bench["convert_text"])
    return run["classifiers"][factor_label]


def select(frame, split):
    """The PerceptionCLIP row with the best worst-group accuracy on `split` (ties: average, then order)."""
    candidates = frame[(frame.method == "PerceptionCLIP") & (frame.split == split)]
    best = candidates.sort_values(["worst group", "average"], ascending=False, kind="stable").iloc[0]
    return best.factors, int(best.infer_mode), float(best.temperature)


def evaluated_row(frame, config):
    factors, mode, temperature = config
    return frame[(frame.split == eval_split) & (frame.method == "PerceptionCLIP") & (frame.factors == factors)
                 & (frame.infer_mode == mode) & (frame.temperature == temperature)].iloc[0]


results, runs = [], {}
for model_name, tag in models:
    loaded = load_model(model_name, tag, device=session.device)
    for benchmark_name in benchmarks:
        frame, predictions, data, classifiers = run_benchmark(loaded, model_name, benchmark_name)
        runs[(model_name, benchmark_name)] = {"loaded": loaded, "benchmark": benchmark_name, "frame": frame,
                                              "predictions": predictions, "data": data, "classifiers": classifiers,
                                              "selected": select(frame, selection_split),
                                              "oracle": select(frame, eval_split)}
        results.append(frame)
results = pd.concat(results, ignore_index=True)


def mode_name(mode):
    return {0: "w/ y", 1: "w/o y"}[int(mode)]


summary_rows = []
for (model_name, benchmark_name), run in runs.items():
    frame = run["frame"]
    zero_shot = frame[(frame.split == eval_split) & (frame.method == "zero-shot CLIP")].iloc[0]
    summary_rows.append({"model": model_name, "benchmark": benchmark_name, "method": "zero-shot CLIP",
                         "average": zero_shot["average"], "worst group": zero_shot["worst group"]})
    for label in ("selected", "oracle"):
        factors, mode, temperature = run[label]
        row = evaluated_row(frame, run[label])
        method = ("PerceptionCLIP" if label == "selected" else "PerceptionCLIP (oracle: chosen on eval split)")
        summary_rows.append({"model": model_name, "benchmark": benchmark_name, "method": method,
                             "factors": factors, "z inferred": mode_name(mode), "T": temperature,
                             "average": row["average"], "worst group": row["worst group"]})
summary = pd.DataFrame(summary_rows).set_index(["model", "benchmark", "method"])
summary.round(2).astype(object).fillna("")

# %% [markdown]
# Every configuration on the evaluation split (the temperature sweep of the official scripts):

# %%
sweep = (results[(results.split == eval_split) & (results.method == "PerceptionCLIP")]
         .assign(z=lambda f: f.infer_mode.map(mode_name))
         .pivot_table(index=["model", "benchmark", "factors", "z"], columns="temperature",
                      values=["average", "worst group"])
         .round(2))
sweep

# %% [markdown]
# ## Sanity checks against independent formulations
#
# 1. With a single (empty) context value, $|Z| = 1$, PerceptionCLIP is exactly zero-shot CLIP with that prompt
#    (built by the library's classifier): same predictions at every temperature, in both modes. The composed
#    prompt is the baseline's own prompt on the toy world and Waterbirds (not on CelebA: the official
#    double full stop).
# 2. $P(y\mid x)$ sums to 1 for every image and configuration.
# 3. As $T\to\infty$, $P(z\mid x)$ becomes uniform and $P(y\mid x)$ the mean of the conditionals
#    $\frac1{|Z|}\sum_z \operatorname{softmax}_y f(y,z;x)$ (computed separately in float64 NumPy).
# 4. Our log-space implementation equals a literal float64 transcription of the official `classify`
#    (exponentiate, reshape to $|Y|\times|Z|$, sum over $y$, normalise; weight the conditionals and sum over $z$).
# 5. The library's group accuracies equal the official naive loop over (attribute, class) cells, and the
#    average accuracy is its total correct over total count.

# %%
def official_classify(logits, temperature, factor_logits=None):
    """A literal float64 transcription of the official classify(); logits (N, |Y|*|Z|) flattened y-major."""
    flat = logits.reshape(len(logits), -1).double().numpy()
    n_values = logits.shape[2]
    if factor_logits is None:
        context = np.exp(flat / temperature).reshape(len(flat), -1, n_values).sum(axis=1)
        context = context / context.sum(axis=1, keepdims=True)
    else:
        context = np.exp(factor_logits.double().numpy() / temperature)
        context = context / context.sum(axis=1, keepdims=True)
    probs = np.exp(flat).reshape(len(flat), -1, n_values)
    probs = probs / probs.sum(axis=1, keepdims=True)
    return (probs * context[:, None, :]).sum(axis=2)


def naive_group_accuracy(predictions, labels, attribute):
    """The official group_accuracy(): correct and count per (attribute value, class) cell."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    values = sorted(set(attribute))
    correct = np.zeros((len(values), labels.max() + 1))
    count = np.zeros_like(correct)
    for i, value in enumerate(values):
        for y in range(labels.max() + 1):
            cell = (attribute == value) & (labels == y)
            correct[i, y], count[i, y] = (predictions[cell] == y).sum(), cell.sum()
    present = count > 0
    return 100 * correct.sum() / count.sum(), 100 * (correct[present] / count[present]).min(), int(present.sum())


def sanity_checks(model_name, benchmark_name):
    run = runs[(model_name, benchmark_name)]
    loaded, bench, part = run["loaded"], BENCHMARKS[benchmark_name], run["data"][eval_split]
    # |Z| = 1: the single empty context value, against zero-shot CLIP with that prompt built by the library
    single_prompt = bench["main_template"] + "."
    single = ContextClassifier(loaded, part.classnames, {"none": [""]}, bench["main_template"],
                               bench["convert_text"]).logits(part.features)
    zero_shot_weights = zeroshot.zero_shot_classifier(loaded, part.classnames, [single_prompt])
    zero_shot_predictions = zeroshot.zero_shot_logits(part.features, zero_shot_weights).argmax(1)
    agree_single = min(
        float((perceptionclip(single, t, single[:, 0, :] if mode else None)[0].argmax(1)
               == zero_shot_predictions).float().mean() * 100)
        for t, mode in product(temperatures, (0, 1)))

    factors, mode, temperature = run["selected"]
    context = compose_factors(factors.split(","))
    classifier = classifier_for(run, factors)
    logits, y_free = classifier.logits(part.features), classifier.y_free_logits(part.features)
    sum_error = max(float((perceptionclip(logits, t, y_free if m else None)[0].sum(1) - 1).abs().max())
                    for t, m in product(temperatures, infer_modes))
    hot, hot_context = perceptionclip(logits, 1e6)
    mean_conditional = logits.double().numpy()
    mean_conditional = np.exp(mean_conditional - mean_conditional.max(axis=1, keepdims=True))
    mean_conditional = (mean_conditional / mean_conditional.sum(axis=1, keepdims=True)).mean(axis=2)
    official_error = max(float(np.abs(perceptionclip(logits, t, y_free if m else None)[0].double().numpy()
                                      - official_classify(logits, t, y_free if m else None)).max())
                         for t, m in product(temperatures, infer_modes))
    predictions = run["predictions"][(factors, mode, temperature, eval_split)]
    naive_average, naive_worst, cells = naive_group_accuracy(predictions.numpy(), part.labels.numpy(), part.attribute)
    library = group_summary(predictions, part)
    return pd.Series({
        "|Z|=1: agreement with zero-shot predictions (%, min over T and modes)": agree_single,
        "|Z|=1: the composed prompt is the baseline's prompt": float(single_prompt == bench["simple_template"]),
        "max |sum_y P(y|x) - 1|": sum_error,
        "T=1e6: max |P(z|x) - 1/|Z||": float((hot_context - 1 / len(context)).abs().max()),
        "T=1e6: max |P(y|x) - mean_z softmax_y f|": float(np.abs(hot.double().numpy() - mean_conditional).max()),
        "max |ours - official classify (float64)|": official_error,
        "|average - naive loop|": abs(library["average"] - naive_average),
        "|worst group - naive loop|": abs(library["worst group"] - naive_worst),
        "groups (non-empty cells)": float(cells),
        "groups (library)": float(len(metrics.group_accuracies(predictions, part.labels, part.groups))),
    })


sanity = sanity_checks(models[0][0], benchmarks[0])
assert sanity["|Z|=1: agreement with zero-shot predictions (%, min over T and modes)"] == 100.0, sanity
assert sanity["max |sum_y P(y|x) - 1|"] < 1e-5, sanity
assert sanity["T=1e6: max |P(z|x) - 1/|Z||"] < 1e-4, sanity
assert sanity["T=1e6: max |P(y|x) - mean_z softmax_y f|"] < 1e-4, sanity
assert sanity["max |ours - official classify (float64)|"] < 1e-5, sanity
assert sanity["|average - naive loop|"] < 1e-9 and sanity["|worst group - naive loop|"] < 1e-9, sanity
assert sanity["groups (non-empty cells)"] == sanity["groups (library)"], sanity
sanity.to_frame("value")

# %% [markdown]
# ## Average and worst-group accuracy across the temperature sweep
#
# Dashed: zero-shot CLIP. The ringed point is the configuration selected on the selection split.

# %%
def plot_sweep(frame):
    panels = list(runs)
    fig, axes = plt.subplots(len(panels), 2, figsize=(11, 3.4 * len(panels)), squeeze=False)
    evaluated = frame[frame.split == eval_split].assign(
        configuration=lambda f: f.factors + " · " + f.infer_mode.map(lambda m: "" if np.isnan(m) else mode_name(m)))
    for row, (model_name, benchmark_name) in enumerate(panels):
        part = evaluated[(evaluated.model == model_name) & (evaluated.benchmark == benchmark_name)]
        sweep_part = part[part.method == "PerceptionCLIP"]
        zero_shot = part[part.method == "zero-shot CLIP"].iloc[0]
        selected = evaluated_row(runs[(model_name, benchmark_name)]["frame"],
                                 runs[(model_name, benchmark_name)]["selected"])
        for column, metric in enumerate(("average", "worst group")):
            ax = axes[row, column]
            sns.lineplot(data=sweep_part, x="temperature", y=metric, hue="configuration", marker="o", ax=ax)
            ax.axhline(zero_shot[metric], color="black", linestyle="--", label="zero-shot CLIP")
            ax.plot([selected.temperature], [selected[metric]], "o", markersize=13, markerfacecolor="none",
                    markeredgecolor="crimson", label="selected on " + selection_split)
            shown = [*part[metric], selected[metric]]
            ax.set_ylim(max(0.0, min(shown) - 3), min(100.0, max(shown) + 3))
            ax.set_xscale("log")
            ax.set_xticks(temperatures, [f"{t:g}" for t in temperatures])
            ax.set_xlabel("temperature T of P(z|x)")
            ax.set_ylabel(f"{metric} accuracy (%)")
            ax.set_title(f"{benchmark_name} · {model_name} · {metric}", fontsize=10)
            ax.legend(fontsize=7) if column == 1 else ax.get_legend().remove()
    fig.tight_layout()
    return fig


plot_sweep(results)
plt.show()

# %% [markdown]
# ## Why: does the context help when it is known, and can CLIP infer it?
#
# The diagnostics behind the two steps (the paper's Tables 2 and 3), on the factor whose values are the group
# attribute: classifying conditioned on the **true** value $z^\star$ (no inference), on a **wrong** one (the next
# value of the factor), and on a **uniform** $P(z\mid x)$ (all contexts, no inference: $T\to\infty$); how often
# $\arg\max_z P(z\mid x)$ is the true value (at the selected temperature); and the mean accuracy of the
# *aligned* groups (each class with the attribute it co-occurs with) against the other groups — the spurious gap
# the method is meant to close. Then the worst groups themselves.

# %%
def aligned_gap(predictions, part, benchmark_name) -> dict:
    """Mean group accuracy of the aligned groups and of the others (NaN where the benchmark has none)."""
    aligned = {f"{c} / {a}" for c, a in BENCHMARKS[benchmark_name]["aligned"]}
    accuracies = metrics.group_accuracies(predictions, part.labels, part.groups)
    inside = [v for g, v in accuracies.items() if g in aligned]
    outside = [v for g, v in accuracies.items() if g not in aligned]
    if not inside:
        return {"aligned groups": np.nan, "other groups": np.nan}
    return {"aligned groups": float(np.mean(inside)), "other groups": float(np.mean(outside))}


def diagnostics(model_name, benchmark_name):
    run = runs[(model_name, benchmark_name)]
    bench, part = BENCHMARKS[benchmark_name], run["data"][eval_split]
    factor = bench["true_factor"]
    values = list(compose_factors([factor]))
    everyone = torch.arange(len(part.labels))
    true_index = torch.as_tensor([values.index(a) for a in part.attribute])
    classifier = classifier_for(run, factor)
    logits, y_free = classifier.logits(part.features), classifier.y_free_logits(part.features)
    _, _, temperature = run["selected"]
    predictions = {"zero-shot CLIP": (run["predictions"][("zero-shot", eval_split)], None),
                   "conditioned on the true z": (logits[everyone, :, true_index].argmax(1), None),
                   "conditioned on a wrong z": (logits[everyone, :, (true_index + 1) % len(values)].argmax(1), None),
                   "uniform P(z|x), no inference": (torch.softmax(logits, dim=1).mean(dim=2).argmax(1), None)}
    for mode in infer_modes:
        probs, context_probs = perceptionclip(logits, temperature, y_free if mode else None)
        predictions[f"PerceptionCLIP {mode_name(mode)}, T={temperature:g}"] = (
            probs.argmax(1), float((context_probs.argmax(1) == true_index).float().mean() * 100))
    return [{"model": model_name, "benchmark": benchmark_name, "factor": factor, "prediction": label,
             **group_summary(prediction, part), "z accuracy": z_accuracy,
             **aligned_gap(prediction, part, benchmark_name)}
            for label, (prediction, z_accuracy) in predictions.items()]


def worst_groups(model_name, benchmark_name, count=5):
    run = runs[(model_name, benchmark_name)]
    part = run["data"][eval_split]
    zero_shot = metrics.group_accuracies(run["predictions"][("zero-shot", eval_split)], part.labels, part.groups)
    ours = metrics.group_accuracies(run["predictions"][(*run["selected"], eval_split)], part.labels, part.groups)
    table = pd.DataFrame({"zero-shot CLIP": zero_shot, "PerceptionCLIP (selected)": ours})
    table = table.assign(images=pd.Series(part.groups).value_counts())
    order = sorted(set(table["zero-shot CLIP"].nsmallest(count).index) | set(
        table["PerceptionCLIP (selected)"].nsmallest(count).index))
    return table.loc[order].sort_values("zero-shot CLIP").assign(model=model_name, benchmark=benchmark_name)


diagnosis = {key: diagnostics(*key) for key in runs}
pd.DataFrame([row for rows in diagnosis.values() for row in rows]).set_index(
    ["model", "benchmark", "prediction"]).round(2)

# %%
pd.concat([worst_groups(*key) for key in runs]).set_index(["model", "benchmark"], append=True).round(1)

# %% [markdown]
# ## Seeds: how stable is the worst-group comparison?
#
# The method has no randomness, so the seeds draw group-stratified bootstrap resamples of the evaluation split
# (each group resampled with replacement to its own size); zero-shot CLIP and the selected PerceptionCLIP
# configuration are scored on the same resample.

# %%
def bootstrap(model_name, benchmark_name, seed):
    run = runs[(model_name, benchmark_name)]
    part = run["data"][eval_split]
    rng = np.random.default_rng(seed)
    positions = np.concatenate([rng.choice(np.flatnonzero(part.groups == g), size=(part.groups == g).sum())
                                for g in np.unique(part.groups)])
    labels, groups = part.labels[positions], part.groups[positions]
    worst = {name: metrics.worst_group_accuracy(run["predictions"][key][positions], labels, groups)
             for name, key in (("zero-shot CLIP", ("zero-shot", eval_split)),
                               ("PerceptionCLIP", (*run["selected"], eval_split)))}
    return {"model": model_name, "benchmark": benchmark_name, "seed": seed, **worst,
            "worst-group gain": worst["PerceptionCLIP"] - worst["zero-shot CLIP"]}


seed_results = pd.DataFrame([bootstrap(*key, seed) for key in runs for seed in seeds])
seed_summary = seed_results.groupby(["model", "benchmark"])[["zero-shot CLIP", "PerceptionCLIP",
                                                             "worst-group gain"]].agg(["mean", "std"])
seed_results.set_index(["model", "benchmark", "seed"]).round(2)

# %%
seed_summary.round(2)

# %% [markdown]
# ## Verdict
#
# The claim holds on a benchmark if the PerceptionCLIP configuration selected on the selection split has a higher
# worst-group accuracy than zero-shot CLIP on the evaluation split **and** on every bootstrap resample. In the
# paper profile the reproduced gain of ViT-L/14 stands beside the reported one (README/abstract; the paper's
# absolute table cells are unconfirmed and left out; its gains were presumably picked on the evaluated split,
# so compare them with our oracle gain as well).

# %%
REPORTED_WORST_GROUP_GAIN = {("waterbirds", "ViT-L-14"): 16.5, ("celeba", "ViT-L-14"): 3.5}


def paper_model(model_name, tag):
    """The paper's name of an OpenAI checkpoint ('ViT-L-14-quickgelu', 'openai' -> 'ViT-L-14'), else None."""
    return model_name.removesuffix("-quickgelu") if tag == "openai" else None


verdict_rows = []
for (model_name, benchmark_name), run in runs.items():
    frame = run["frame"]
    zero_shot = frame[(frame.split == eval_split) & (frame.method == "zero-shot CLIP")].iloc[0]
    selected, oracle = evaluated_row(frame, run["selected"]), evaluated_row(frame, run["oracle"])
    gains = seed_results[(seed_results.model == model_name) & (seed_results.benchmark == benchmark_name)]
    tag = dict((name, t) for name, t in models)[model_name]
    verdict_rows.append({
        "model": model_name, "benchmark": benchmark_name,
        "zero-shot worst": zero_shot["worst group"], "PerceptionCLIP worst": selected["worst group"],
        "worst-group gain": selected["worst group"] - zero_shot["worst group"],
        "oracle gain": oracle["worst group"] - zero_shot["worst group"],
        "reported gain": REPORTED_WORST_GROUP_GAIN.get((benchmark_name, paper_model(model_name, tag)), np.nan),
        "average change": selected["average"] - zero_shot["average"],
        "gain > 0 on every resample": bool((gains["worst-group gain"] > 0).all()),
    })
verdicts = pd.DataFrame(verdict_rows).set_index(["model", "benchmark"])
verdicts["claim holds"] = (verdicts["worst-group gain"] > 0) & verdicts["gain > 0 on every resample"]
verdicts.round(2)

# %%
def suffix(model_name, benchmark_name):
    parts = ([] if benchmark_name == benchmarks[0] else [benchmark_name]) + \
        ([] if model_name == models[0][0] else [model_name])
    return "".join(f"_{p}" for p in parts)


metric_values, baseline_values, reported_values = {}, {}, {}
for (model_name, benchmark_name), run in runs.items():
    frame, end = run["frame"], suffix(model_name, benchmark_name)
    zero_shot = frame[(frame.split == eval_split) & (frame.method == "zero-shot CLIP")].iloc[0]
    selected, oracle = evaluated_row(frame, run["selected"]), evaluated_row(frame, run["oracle"])
    verdict = verdicts.loc[(model_name, benchmark_name)]
    metric_values.update({f"worst_group{end}": selected["worst group"], f"average{end}": selected["average"],
                          f"worst_group_gain{end}": verdict["worst-group gain"],
                          f"worst_group_oracle{end}": oracle["worst group"]})
    baseline_values.update({f"zero_shot_worst_group{end}": zero_shot["worst group"],
                            f"zero_shot_average{end}": zero_shot["average"]})
    if not np.isnan(verdict["reported gain"]):
        reported_values[f"worst_group_gain{end}"] = verdict["reported gain"]

def explain(model_name, benchmark_name) -> str:
    """The verdict of one (model, benchmark) in words, from the measured numbers."""
    verdict, rows = verdicts.loc[(model_name, benchmark_name)], {r["prediction"]: r for r in
                                                                diagnosis[(model_name, benchmark_name)]}
    factors, mode, temperature = runs[(model_name, benchmark_name)]["selected"]
    gains = seed_results[(seed_results.model == model_name) & (seed_results.benchmark == benchmark_name)]
    zero_shot, true_z = rows["zero-shot CLIP"], rows["conditioned on the true z"]
    ours = rows[f"PerceptionCLIP {mode_name(mode)}, T={temperature:g}"]
    text = (f"{benchmark_name} ({model_name}, {eval_split} split): the claim "
            f"{'holds' if verdict['claim holds'] else 'does not hold'}. Worst-group accuracy "
            f"{verdict['zero-shot worst']:.2f} -> {verdict['PerceptionCLIP worst']:.2f} "
            f"({verdict['worst-group gain']:+.2f}; {factors}, {mode_name(mode)}, T={temperature:g} selected on "
            f"{selection_split}; oracle {verdict['oracle gain']:+.2f}; bootstrap gains "
            f"{', '.join(f'{g:+.1f}' for g in gains['worst-group gain'])}), average accuracy "
            f"{verdict['average change']:+.2f}. ")
    if not np.isnan(zero_shot["aligned groups"]):
        text += (f"Aligned vs other groups: zero-shot {zero_shot['aligned groups']:.1f} vs "
                 f"{zero_shot['other groups']:.1f}, PerceptionCLIP {ours['aligned groups']:.1f} vs "
                 f"{ours['other groups']:.1f}, conditioned on the true z {true_z['aligned groups']:.1f} vs "
                 f"{true_z['other groups']:.1f}. ")
    return text + (f"Conditioning on the true z: average {true_z['average']:.2f}, worst group "
                   f"{true_z['worst group']:.2f}; z inferred correctly for {ours['z accuracy']:.1f} % of images.")


explanations = [explain(*key) for key in runs]
print("\n\n".join(explanations))

# %% [markdown]
# **The offline profile in words.** The tiny CLIP does lean on the background: its zero-shot accuracy is higher on
# the groups where a class sits on its home background than on the others, and its worst group is a class away
# from home. Conditioning on the *true* background closes that gap, and the two-step method, which infers the
# background well, raises the worst group on every bootstrap resample — the paper's mechanism, reproduced. The
# price is average accuracy: for this small text encoder every background-conditioned prompt is a worse class
# prompt than the plain one (conditioning on the true background already loses accuracy). With the domain as the
# context nothing changes: the tiny CLIP cannot recognise several classes as sketches or noisy photos at all
# (groups at 0 % with and without context), and it infers the domain poorly (the z accuracy above, against 33 %
# by chance), so the second step has neither a usable context nor class evidence to recover.

# %%
headline = verdicts.loc[(models[0][0], benchmarks[0])]
result = record(
    metrics=metric_values, baseline=baseline_values, reported=reported_values,
    key_metric="worst_group", key_baseline="zero_shot_worst_group",
    claim="Two-step PerceptionCLIP (infer the context, then classify conditioned on it) has a higher worst-group "
          "accuracy than one-step zero-shot CLIP",
    claim_holds=bool(headline["claim holds"]),
    notes=" ".join(explanations),
)
# perceptionclip under the paper profile: `invoke batch --profile paper --papers perceptionclip`, or with plain
# papermill `papermill notebooks/perceptionclip.ipynb out.ipynb -f notebooks/profiles/paper/perceptionclip.yaml`
# (on a GPU machine). Data under $CLIPBOOK_DATA (default ~/data); see clipbook/data/groups.py.
