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
# # CoOp — Learning to Prompt for Vision-Language Models
#
# Zhou, Yang, Loy, Liu — IJCV 2022 · [arXiv:2109.01134](https://arxiv.org/abs/2109.01134) ·
# official code [KaiyangZhou/CoOp](https://github.com/KaiyangZhou/CoOp) (MIT; read, not copied).
#
# **Claim.** Replacing the hand-written words of CLIP's prompt ("a photo of a") by $M=16$ context vectors learned
# from a few labelled images, with CLIP frozen, beats the hand-crafted prompt by about 15 points on average over 11
# datasets at 16 shots, and beats a linear probe on the same features, most clearly at 1–2 shots (Fig. 3). The
# learned prompts keep their gains under domain shift better than the linear probe (Table 1: ImageNet → V2, Sketch,
# A, R).
#
# **This notebook** regenerates the few-shot curves (accuracy vs shots 1–16, seeds 1–3; CoOp with a unified and a
# class-specific context vs the hand-crafted prompt vs CoOp's linear probe) and the domain-generalisation table. The
# `offline` profile runs them on the toy world with the library's tiny CLIP: on the in-domain photos, where the
# hand-crafted prompt is already strong (~90 %, like Food101 or Caltech101 in the paper), and on the noisy domain,
# where it is weak (~24 %, like EuroSAT, the paper's largest gain); the shifted domains are the sketches and the
# noisy photos. The `paper` profile trains on the 11 CoOp datasets with OpenAI RN50 and ViT-B/32, and also evaluates
# the ImageNet prompts the authors released.

# %% tags=["parameters"]
profile = "offline"  # "offline" (toy world, CPU) or "paper" (real checkpoints and datasets, GPU)
models = [["clipbook-tiny-rn", "toyworld"]]  # [open_clip architecture, pretrained tag]
datasets = ["toy", "toy-noise"]  # few-shot datasets (clipbook.data.registry); the first is the headline and DG source
seeds = [1, 2, 3]
shots = [1, 2, 4, 8, 16]
contexts = ["unified-end", "csc-end"]  # CoOp variants "<unified|csc>-<end|middle|front>"; the first is the headline
n_ctx = 16  # M, context vectors per prompt
ctx_init = ""  # "" draws the context from N(0, 0.02^2) (paper default); "a photo of a" starts from those words
epochs = {1: 50, 2: 100, 4: 100, 8: 200, 16: 200}  # official epochs per shot count (ImageNet: 50 for all)
epochs_scale = 0.25  # offline: a quarter of the official epochs, for the CPU budget (paper profile: 1.0)
check_official_epochs = True  # with epochs_scale < 1, also train the headline at the official epochs (1 seed)
batch_size = 32
learning_rate = 0.002  # SGD, momentum 0.9, weight decay 5e-4 (Dassl defaults), cosine schedule
warmup_lr = 1e-5  # the one warm-up epoch runs at this constant learning rate
augment_passes = 0  # 0: the un-augmented k-shot features; P > 0: cycle through P pre-encoded random-crop passes
augment_scale = [0.08, 1.0]  # area range of those crops (Dassl's default RandomResizedCrop, which CoOp keeps)
ablate_augmentation = True  # also train the headline on crop passes (largest shot count, first seed)
ablation_passes = 10  # crop passes in that ablation
dg_targets = ["toy-sketch", "toy-noise"]  # shifted test domains, trained on datasets[0] with shots[-1]
dg_n_ctx = [16, 4]  # context lengths M of the domain-generalisation table (Table 1 has both)
released_prompts = ""  # paper profile: folder of the unzipped released ImageNet prompts (empty: skip them)
device = "auto"

# %%
import math
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

import clipbook
from clipbook import baselines, features, metrics, prompting, zeroshot
from clipbook.data import fewshot, registry
from clipbook.determinism import SMALL_WORK_THREADS, deterministic_torch
from clipbook.models.loader import load_model
from clipbook.report.figures import few_shot_figure
from clipbook.report.record import record

session = clipbook.setup(profile, device=device)
if session.device == "cpu":
    # The prompt learner, the probes and the evaluation work on small matrices (12 prompts of ~20 tokens, 128-d
    # features): torch and the BLAS under scikit-learn run on the library's small-work thread count. The image
    # encoders of `clipbook.features` keep the library's own setting.
    torch.set_num_threads(SMALL_WORK_THREADS)
    threadpool_limits(SMALL_WORK_THREADS)
registry.known_datasets()  # registers the real datasets, whose split names `val_split` looks up


def parse_context(name: str) -> tuple[str, bool]:
    """'csc-middle' -> ('middle', True): class-token position and whether the context is class-specific."""
    kind, _, position = name.partition("-")
    if kind not in ("unified", "csc") or position not in prompting.CLASS_TOKEN_POSITIONS:
        raise ValueError(f"unknown context {name!r}; accepted: " + ", ".join(
            f"{k}-{p}" for k in ("unified", "csc") for p in prompting.CLASS_TOKEN_POSITIONS))
    return position, kind == "csc"


def split_names(dataset_name: str) -> tuple:
    return tuple(registry.DATASETS[dataset_name]["splits"]) if dataset_name in registry.DATASETS else ()


def val_split(dataset_name: str) -> str:
    # CoOp's datasets/imagenet.py uses the test set as val; every other dataset has its own val split
    return "val" if "val" in split_names(dataset_name) else "test"


# Released ImageNet prompts: <bundle>/<config>_ep50_16shots/nctx<M>_cscFalse_ctpend/seed<s>/prompt_learner/...
RELEASED_CONFIGS = {"RN50": "rn50", "RN101": "rn101", "ViT-B-16": "vit_b16", "ViT-B-32": "vit_b32"}


def released_prompt_path(model_name: str, n_context: int, seed: int) -> Path:
    backbone = model_name.removesuffix("-quickgelu")
    if backbone not in RELEASED_CONFIGS:
        raise ValueError(f"no released CoOp prompts for {model_name!r}; released for: {', '.join(RELEASED_CONFIGS)}")
    return (Path(released_prompts).expanduser() / f"{RELEASED_CONFIGS[backbone]}_ep50_16shots"
            / f"nctx{n_context}_cscFalse_ctpend" / f"seed{seed}" / "prompt_learner" / "model.pth.tar-50")


if not seeds or not shots or not contexts:
    raise ValueError(f"seeds, shots and contexts must be non-empty lists, got {seeds!r}, {shots!r}, {contexts!r}")
parsed_contexts = {name: parse_context(name) for name in contexts}
for k in shots:
    fewshot.validate_shots(k)
    if k not in epochs:
        raise ValueError(f"no epoch count for {k} shots; epochs has {sorted(epochs)} (official: 1: 50, 2: 100, "
                         "4: 100, 8: 200, 16: 200)")
if not 0 < epochs_scale <= 1:
    raise ValueError(f"epochs_scale must be in (0, 1], got {epochs_scale!r}")
if isinstance(n_ctx, bool) or not isinstance(n_ctx, int) or n_ctx < 1 or any(
        isinstance(m, bool) or not isinstance(m, int) or m < 1 for m in dg_n_ctx):
    raise ValueError(f"n_ctx and dg_n_ctx must be positive integers (CoOp: 16 or 4), got {n_ctx!r}, {dg_n_ctx!r}")
if n_ctx not in dg_n_ctx or (ctx_init and dg_n_ctx != [n_ctx]):
    raise ValueError(f"dg_n_ctx must contain n_ctx={n_ctx} (the headline prompts), and with ctx_init be [n_ctx] "
                     f"(the words fix the context length); got {dg_n_ctx!r}")
if (augment_passes < 0 or ablation_passes < 1 or len(augment_scale) != 2
        or not 0 < augment_scale[0] <= augment_scale[1] <= 1):
    raise ValueError(f"augment_passes must be >= 0, ablation_passes >= 1 and augment_scale [low, high] within (0, 1]; "
                     f"got {augment_passes!r}, {ablation_passes!r}, {augment_scale!r}")
clipbook.preflight(models, datasets, splits=("train", "test"))  # missing weights or data fail here, before any work
clipbook.preflight(models, dg_targets, splits=("test",))
for name in datasets:
    registry.load_dataset(name, val_split(name))
source_classes = registry.load_dataset(datasets[0], "test").classnames
for name in dg_targets:
    if registry.load_dataset(name, "test").classnames != source_classes:
        raise ValueError(f"dg target {name!r} does not share the classes of the source {datasets[0]!r}")
if released_prompts:  # missing files fail now, saying where the released prompts come from
    for model_name, _ in models:
        for m in dg_n_ctx:
            for seed in seeds:
                prompting.load_coop_context(released_prompt_path(model_name, m, seed))

# %% [markdown]
# ## The method
#
# A prompt is $M$ learnable vectors in CLIP's word-embedding space followed by the class name,
# $t_c = [v]_1 \dots [v]_M\,[\text{CLASS}_c]$ ("end"; "middle" puts the name between the two halves of the context,
# "front" before it). The context is shared by all classes ("unified") or learned per class ("CSC"), and is drawn
# from $\mathcal N(0, 0.02^2)$ or initialised from the embeddings of "a photo of a". With the frozen text encoder $g$
# and image encoder $f$,
#
# $$p(y=c\mid x) = \frac{\exp\big(\tau\cos(f(x), g(t_c))\big)}{\sum_{j=1}^{K}\exp\big(\tau\cos(f(x), g(t_j))\big)},
#   \qquad \tau = \exp(\text{logit\_scale}),$$
#
# trained with cross-entropy on the $k$-shot images, only $[v]$ receiving gradients. `clipbook.prompting`'s
# `PromptLearner` builds $t_c$ and runs $g$ from the token embeddings on (the official `PromptLearner` and
# `TextEncoder`); the logits and the training loop below follow `CustomCLIP` and the `CoOp` trainer in
# `trainers/coop.py`, with Dassl's SGD (momentum 0.9, weight decay 5e-4), per-epoch cosine schedule after one
# constant warm-up epoch, batches of 32 drawn without replacement, the last partial batch dropped, and the
# last epoch's prompts evaluated (`TEST.FINAL_MODEL = "last_step"`).
#
# Where this differs from the official runs. CLIP's image encoder is frozen, so the images are encoded once
# (`clipbook.features`) instead of at every step: the official training draws a new random crop of every image at
# every epoch, which with cached features becomes a fixed number of crop passes (`augment_passes`) that the epochs
# cycle through. The model stays in float32 (CoOp's default `TRAINER.COOP.PREC` is fp16). And for the CPU budget the
# `offline` profile trains `epochs_scale` of the official epochs, on un-augmented features (both explained and
# measured below); the `paper` profile keeps the official epochs and crops.

# %%
def coop_logits(learner: prompting.PromptLearner, image_features: torch.Tensor) -> torch.Tensor:
    """exp(logit_scale) * cos(f(x), g(t_c)), CustomCLIP.forward of trainers/coop.py."""
    text_features = F.normalize(learner(), dim=-1)
    return learner.loaded.model.logit_scale.exp() * F.normalize(image_features, dim=-1) @ text_features.T


def epochs_for(dataset_name: str, k: int, scale: float = epochs_scale) -> int:
    official = 50 if dataset_name == "imagenet" else epochs[k]  # COOP.md: ImageNet uses the *_ep50 configs
    return max(1, math.ceil(official * scale))


def train_coop(learner: prompting.PromptLearner, passes: list[torch.Tensor], labels: torch.Tensor,
               max_epochs: int, seed: int) -> prompting.PromptLearner:
    """The CoOp trainer (trainers/coop.py `forward_backward`, Dassl `TrainerX.run_epoch`) on cached features.

    `passes` holds the features of the k-shot images, one tensor per augmentation pass; epoch e uses pass e mod P.
    """
    device = learner.ctx.device
    passes, labels = [x.to(device) for x in passes], labels.to(device)
    optimizer = torch.optim.SGD(learner.parameters(), lr=learning_rate, momentum=0.9, weight_decay=5e-4)
    order_generator = torch.Generator().manual_seed(seed)
    n = len(labels)
    # Dassl drops the last, partial batch, unless it is the only one
    batches_per_epoch = n // batch_size if n >= batch_size else 1
    with deterministic_torch(torch.get_num_threads()):
        for epoch in range(max_epochs):
            for group in optimizer.param_groups:  # Dassl steps its scheduler once per epoch
                group["lr"] = prompting.coop_learning_rate(epoch, max_epochs, learning_rate, warmup_lr=warmup_lr)
            images = passes[epoch % len(passes)]
            order = torch.randperm(n, generator=order_generator).to(device)
            for b in range(batches_per_epoch):
                batch = order[b * batch_size:(b + 1) * batch_size]
                loss = F.cross_entropy(coop_logits(learner, images[batch]), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
    return learner


# %% [markdown]
# ## Features and the baselines
#
# Each (model, dataset, split, transform) is encoded once and cached by the library. The baselines are the paper's:
# zero-shot CLIP with the dataset's hand-crafted prompt (CoOp's `CUSTOM_TEMPLATES`; "a photo of a {}." on the toy
# world), and CoOp's linear probe (`lpclip/linear_probe.py`: L-BFGS logistic regression, C chosen on the
# $\min(k, 4)$-shot validation split) on the same $k$-shot images and seeds.
#
# The offline default trains on the un-augmented $k$-shot features (`augment_passes = 0`), the same features the
# linear probe sees. A toy-world class is its whole outline (a triangle and a diamond differ only in a corner), and
# its objects cover 13–32 % of a 64 px frame, many off-centre: most of the official crops (down to 8 % of the area)
# cut part or all of the object away while keeping the label. The ablation below measures what those crops do here;
# the `paper` profile keeps them.

# %%
class Task:
    """One model on one dataset: its class names, zero-shot classifier and cached test features."""

    def __init__(self, loaded, dataset_name: str, *, few_shot: bool = True):
        self.loaded, self.dataset_name = loaded, dataset_name
        self.test = registry.load_dataset(dataset_name, "test")
        self.classnames = self.test.classnames
        if few_shot:
            self.train = registry.load_dataset(dataset_name, "train")
            self.val = registry.load_dataset(dataset_name, val_split(dataset_name))
        templates = getattr(self.test, "templates", None) or zeroshot.TOY_TEMPLATES
        self.text_weights = zeroshot.zero_shot_classifier(loaded, self.classnames, templates)
        self.x_test, self.y_test = features.image_features(loaded, self.test), torch.as_tensor(self.test.labels)

    def accuracy(self, logits: torch.Tensor) -> float:
        """Top-1 accuracy (%); on ImageNet-A/R only their 200 classes compete (CoOp's 200-way evaluation)."""
        subset = getattr(self.test, "class_subset", None)
        if subset is not None and len(subset) < logits.shape[1]:
            predictions = torch.as_tensor(subset)[logits[:, torch.as_tensor(subset)].argmax(dim=1)]
            return metrics.accuracy(predictions, self.y_test)
        return metrics.accuracy(logits, self.y_test)

    def split(self, k: int, seed: int) -> dict:
        return fewshot.coop_few_shot_split(self.train.labels, self.val.labels, k, seed)

    def few_shot_features(self, indices, passes: int = 0, scale=tuple(augment_scale)) -> list[torch.Tensor]:
        if passes == 0:
            return [features.image_features(self.loaded, self.train, indices=indices)]
        crop = features.augment_transform(self.loaded, scale=tuple(scale))
        return [features.image_features(self.loaded, self.train, indices=indices, transform=crop, augment_pass=p)
                for p in range(passes)]

    def zero_shot_accuracy(self) -> float:
        return self.accuracy(zeroshot.zero_shot_logits(self.x_test, self.text_weights))

    def linear_probe(self, split):
        x_probe = features.image_features(self.loaded, self.train, indices=split["train"])
        x_val = features.image_features(self.loaded, self.val, indices=split["val"])
        return baselines.linear_probe(x_probe, self.train.labels[split["train"]], x_val, self.val.labels[split["val"]])

    def probe_accuracy(self, probe) -> float:
        return self.accuracy(torch.as_tensor(probe.predict_proba(self.x_test.numpy())))

    @torch.no_grad()
    def coop_accuracy(self, learner) -> float:
        return self.accuracy(coop_logits(learner, self.x_test.to(learner.ctx.device)).cpu())

    def coop(self, k: int, seed: int, context: str, n_context: int = n_ctx, passes: int = augment_passes,
             scale=tuple(augment_scale), epoch_scale: float = epochs_scale) -> prompting.PromptLearner:
        position, class_specific = parsed_contexts.get(context) or parse_context(context)
        indices = self.split(k, seed)["train"]
        learner = prompting.PromptLearner(
            self.loaded, self.classnames, n_ctx=n_context, ctx_init=ctx_init or None, class_specific=class_specific,
            class_token_position=position, generator=torch.Generator().manual_seed(seed))
        labels = torch.as_tensor(self.train.labels[indices])
        return train_coop(learner, self.few_shot_features(indices, passes, scale), labels,
                          epochs_for(self.dataset_name, k, epoch_scale), seed)


def evaluate(task: Task, model_name: str) -> tuple[list[dict], dict]:
    """Accuracy rows, one per (seed, shots, method), and the trained learners and probes of the largest shot count."""
    base = {"model": model_name, "dataset": task.dataset_name}
    zero_shot = task.zero_shot_accuracy()
    rows, kept = [], {}
    for seed in seeds:
        for k in shots:
            probe = task.linear_probe(task.split(k, seed))
            rows += [{**base, "seed": seed, "shots": k, "method": "zero-shot CLIP", "accuracy": zero_shot},
                     {**base, "seed": seed, "shots": k, "method": "linear probe",
                      "accuracy": task.probe_accuracy(probe)}]
            for context in contexts:
                learner = task.coop(k, seed, context)
                rows.append({**base, "seed": seed, "shots": k, "method": f"CoOp {context}",
                             "accuracy": task.coop_accuracy(learner)})
                if k == shots[-1]:
                    kept[(context, seed)] = learner
            if k == shots[-1]:
                kept[("linear probe", seed)] = probe
    return rows, kept


# %%
loaded_models = {name: load_model(name, tag, device=session.device) for name, tag in models}
tasks = {(name, ds): Task(loaded_models[name], ds) for name, _ in models for ds in datasets}
rows, trained = [], {}
for (model_name, dataset_name), task in tasks.items():
    task_rows, kept = evaluate(task, model_name)
    rows += task_rows
    trained[(model_name, dataset_name)] = kept
results = pd.DataFrame(rows)
METHODS = [f"CoOp {c}" for c in contexts] + ["linear probe", "zero-shot CLIP"]
headline_method = METHODS[0]
summary = (results.groupby(["model", "dataset", "method", "shots"], sort=False)["accuracy"]
           .agg(["mean", "std"]).round(2).unstack("shots"))
summary

# %% [markdown]
# ## Sanity checks against independent formulations
#
# 1. With the context initialised from the token embeddings of "a photo of a", the prompt learner's text features
#    are open_clip's own `encode_text` of the corresponding sentences: "a photo of a {class}." (end),
#    "a photo {class} of a." (middle, the context split 2 + 2) and "{class} a photo of a." (front), unified or
#    class-specific. So its untrained classifier *is* the hand-crafted zero-shot classifier: same accuracy.
# 2. Only the context receives gradients: it is the learner's only parameter, a backward pass through the frozen
#    text tower fills its gradient and leaves every CLIP weight's gradient empty.

# %%
def check_prompt_learner(task: Task) -> pd.DataFrame:
    sentences = {"end": "a photo of a {}.", "middle": "a photo {} of a.", "front": "{} a photo of a."}
    names = [c.replace("_", " ") for c in task.classnames]
    rows = []
    for position, sentence in sentences.items():
        reference = task.loaded.encode_text_prompts([sentence.format(c) for c in names]).float()
        for class_specific in (False, True):
            learner = prompting.PromptLearner(task.loaded, task.classnames, ctx_init="a photo of a",
                                              class_specific=class_specific, class_token_position=position)
            with torch.no_grad():
                ours = learner().float()
            rows.append({"position": position, "context": "CSC" if class_specific else "unified",
                         "max |ours - encode_text|": float((ours - reference).abs().max()),
                         "allclose": bool(torch.allclose(ours, reference, rtol=1e-4, atol=1e-5))})
    return pd.DataFrame(rows)


def check_gradients(task: Task) -> pd.Series:
    learner = prompting.PromptLearner(task.loaded, task.classnames, n_ctx=n_ctx,
                                      generator=torch.Generator().manual_seed(0))
    indices = task.split(shots[0], seeds[0])["train"]
    x = features.image_features(task.loaded, task.train, indices=indices).to(learner.ctx.device)
    y = torch.as_tensor(task.train.labels[indices]).to(learner.ctx.device)
    F.cross_entropy(coop_logits(learner, x), y).backward()
    init_learner = prompting.PromptLearner(task.loaded, task.classnames, ctx_init="a photo of a")
    return pd.Series({
        "learner parameters": ", ".join(name for name, _ in learner.named_parameters()),
        "|grad ctx|": float(learner.ctx.grad.norm()),
        "CLIP weights with a gradient": sum(p.grad is not None for p in task.loaded.model.parameters()),
        "CLIP weights requiring grad": sum(p.requires_grad for p in task.loaded.model.parameters()),
        "'a photo of a' learner acc - zero-shot acc": task.coop_accuracy(init_learner) - task.zero_shot_accuracy(),
    })


headline_task = next(iter(tasks.values()))
sanity_features = check_prompt_learner(headline_task)
sanity_gradients = check_gradients(headline_task)
assert sanity_features["allclose"].all(), sanity_features
assert sanity_gradients["learner parameters"] == "ctx", sanity_gradients
assert sanity_gradients["|grad ctx|"] > 0, sanity_gradients
assert sanity_gradients["CLIP weights with a gradient"] == 0, sanity_gradients
assert sanity_gradients["CLIP weights requiring grad"] == 0, sanity_gradients
assert abs(sanity_gradients["'a photo of a' learner acc - zero-shot acc"]) < 1e-9, sanity_gradients
display(sanity_features.round({"max |ours - encode_text|": 7}))
sanity_gradients

# %% [markdown]
# ## The few-shot figure

# %%
# the zero-shot baseline is a flat grey dashed line, so the learned methods keep the distinct colours
PALETTE = dict(zip(METHODS, sns.color_palette("colorblind", len(METHODS) - 1) + [(0.4, 0.4, 0.4)]))
DASHES = {method: (4, 2) if method == "zero-shot CLIP" else "" for method in METHODS}


def plot_few_shot(frame):
    fig, _ = few_shot_figure(frame, shots, METHODS, palette=PALETTE, style="method", dashes=DASHES)
    fig.tight_layout()
    return fig

plot_few_shot(results)
plt.show()

# %% [markdown]
# ## What the shorter training costs
#
# Offline trains `epochs_scale` of the official epochs. For the first seed, the headline at the largest shot count
# is also trained for the full official schedule, on every dataset.

# %%
def headline_accuracy(dataset_name: str, k: int, seed: int, model_name: str = models[0][0]) -> float:
    """The headline's accuracy in `results` (already trained: no need to train it again)."""
    row = results[(results.model == model_name) & (results.dataset == dataset_name) & (results.shots == k)
                  & (results.seed == seed) & (results.method == headline_method)]
    return float(row["accuracy"].item())


epoch_check = pd.DataFrame()
if check_official_epochs and epochs_scale < 1:
    epoch_check = pd.DataFrame([
        {"dataset": dataset_name, "shots": shots[-1], "seed": seeds[0],
         f"{headline_method} ({epochs_for(dataset_name, shots[-1])} epochs)":
             headline_accuracy(dataset_name, shots[-1], seeds[0], model_name),
         f"{headline_method} (official epochs)": task.coop_accuracy(
             task.coop(shots[-1], seeds[0], contexts[0], epoch_scale=1.0)),
         "zero-shot CLIP": task.zero_shot_accuracy()}
        for (model_name, dataset_name), task in tasks.items() if model_name == models[0][0]
    ]).round(2)
epoch_check

# %% [markdown]
# ## Domain generalisation (Table 1)
#
# Prompts and probes learned on the source (`datasets[0]`, largest shot count), tested unchanged on the shifted
# domains. The paper's rows: zero-shot CLIP, the linear probe, CoOp with $M=16$ and $M=4$ (unified, end). In the
# `paper` profile, the authors' released ImageNet prompts are evaluated beside ours when `released_prompts` is set.

# %%
def domain_generalisation(model_name: str) -> pd.DataFrame:
    source = tasks[(model_name, datasets[0])]
    targets = [source] + [Task(loaded_models[model_name], name, few_shot=False) for name in dg_targets]
    kept, k = trained[(model_name, datasets[0])], shots[-1]
    dg_context = contexts[0]
    rows = []

    def add(method, seed, accuracy_of):
        rows.extend({"model": model_name, "method": method, "seed": seed, "dataset": t.dataset_name,
                     "accuracy": accuracy_of(t)} for t in targets)

    for seed in seeds:
        add("zero-shot CLIP", seed, Task.zero_shot_accuracy)
        probe = kept[("linear probe", seed)]
        add("linear probe", seed, lambda t: t.probe_accuracy(probe))
        for m in dg_n_ctx:
            learner = kept[(dg_context, seed)] if m == n_ctx else source.coop(k, seed, dg_context, n_context=m)
            add(f"CoOp {dg_context} M={learner.n_ctx}", seed, lambda t: t.coop_accuracy(learner))
            if released_prompts:
                released = prompting.PromptLearner(loaded_models[model_name], source.classnames, n_ctx=m,
                                                   generator=torch.Generator().manual_seed(0))  # replaced below
                released.load_context(prompting.load_coop_context(released_prompt_path(model_name, m, seed)))
                add(f"CoOp released M={m}", seed, lambda t: t.coop_accuracy(released))
    return pd.DataFrame(rows)


dg_results = pd.concat([domain_generalisation(name) for name, _ in models], ignore_index=True)
dg_table = (dg_results.groupby(["model", "method", "dataset"], sort=False)["accuracy"].mean()
            .unstack("dataset").round(2))
dg_table["target average"] = dg_table[dg_targets].mean(axis=1).round(2)
dg_table

# %% [markdown]
# ## Ablation: the official crops on the toy world
#
# The headline at the largest shot count (first seed), trained instead on `ablation_passes` pre-encoded
# random-resized-crop passes (flip included): the official range (area 0.08–1, Dassl's default) and the milder
# 0.5–1 of Tip-Adapter/GDA, whose passes the GDA notebook shares through the feature cache.

# %%
ablation = pd.DataFrame()
if ablate_augmentation:
    crops = {"crops 0.5-1 (Tip-Adapter, GDA)": (0.5, 1.0), "crops 0.08-1 (CoOp)": (0.08, 1.0)}
    ablation = pd.DataFrame(
        [{"augmentation": "none" if augment_passes == 0 else f"{augment_passes} passes, crops {augment_scale}",
          "accuracy": headline_accuracy(datasets[0], shots[-1], seeds[0])}]
        + [{"augmentation": f"{ablation_passes} passes, {label}", "accuracy": headline_task.coop_accuracy(
            headline_task.coop(shots[-1], seeds[0], contexts[0], passes=ablation_passes, scale=scale))}
           for label, scale in crops.items()]
    ).assign(dataset=datasets[0], shots=shots[-1], seed=seeds[0]).round(2)
ablation

# %% [markdown]
# ## Verdict
#
# The paper's two few-shot claims, on the mean over seeds averaged over the datasets (the paper's "average over 11
# datasets" panel of Fig. 3): (1) at the largest shot count CoOp beats the hand-crafted prompt (paper: by about 15
# points); (2) at the low shot counts (1 and 2) CoOp beats the linear probe. The headline context (`contexts[0]`) is
# the one tested. The domain-generalisation comparison (Table 1) is reported beside them.

# %%
mean_acc = results.groupby(["model", "dataset", "method", "shots"])["accuracy"].mean()
first_model = models[0][0]
per_dataset = mean_acc.xs(first_model, level="model").unstack("method")
margins = pd.DataFrame({
    headline_method: per_dataset[headline_method],
    "vs zero-shot": per_dataset[headline_method] - per_dataset["zero-shot CLIP"],
    "vs linear probe": per_dataset[headline_method] - per_dataset["linear probe"],
})
average = margins.groupby("shots").mean()  # over datasets
top = shots[-1]
low_shots = [k for k in shots if k <= 2] or shots[:1]
gain_at_top = margins["vs zero-shot"].xs(top, level="shots")
average_gain = float(average.loc[top, "vs zero-shot"])
low_shot_margins = average.loc[low_shots, "vs linear probe"]
claim_holds = bool(average_gain > 0 and (low_shot_margins > 0).all())

dg_first = dg_table.xs(first_model, level="model")
dg_coop = dg_first.loc[f"CoOp {contexts[0]} M={trained[(first_model, datasets[0])][(contexts[0], seeds[0])].n_ctx}"]
dg_vs_probe = float(dg_coop["target average"] - dg_first.loc["linear probe", "target average"])
dg_vs_zero_shot = float(dg_coop["target average"] - dg_first.loc["zero-shot CLIP", "target average"])
pd.DataFrame({
    "comparison (points)": [f"(1) CoOp - zero-shot at {top} shots"]
    + [f"(2) CoOp - linear probe at {k} shot{'s' * (k > 1)}" for k in low_shots]
    + ["DG target average: CoOp - linear probe", "DG target average: CoOp - zero-shot"],
    "average over datasets": [average_gain, *low_shot_margins, dg_vs_probe, dg_vs_zero_shot],
}).round(2)

# %%
pd.concat([margins, pd.concat({"average": average}, names=["dataset"])]).round(2)

# %%
def suffix(dataset_name):
    return "" if dataset_name == datasets[0] else f"_{dataset_name}"


metric_values, baseline_values = {}, {}
for dataset_name in datasets:
    part = per_dataset.loc[dataset_name]
    metric_values.update({f"coop_{k}shot{suffix(dataset_name)}": part[headline_method][k] for k in shots})
    for context in contexts[1:]:
        metric_values[f"coop_{context}_{top}shot{suffix(dataset_name)}"] = part[f"CoOp {context}"][top]
    baseline_values[f"zero_shot{suffix(dataset_name)}"] = part["zero-shot CLIP"][shots[0]]
    baseline_values.update({f"linear_probe_{k}shot{suffix(dataset_name)}": part["linear probe"][k]
                            for k in sorted({shots[0], top})})
if len(datasets) > 1:
    metric_values[f"coop_{top}shot_gain_over_zero_shot_average"] = average_gain
for target in dg_targets:
    metric_values[f"dg_coop_{target}"] = dg_coop[target]
    baseline_values[f"dg_zero_shot_{target}"] = dg_first.loc["zero-shot CLIP", target]
    baseline_values[f"dg_linear_probe_{target}"] = dg_first.loc["linear probe", target]

# Reported (papers.md, confirmed by quotes of the paper in the official issues): ImageNet, 16 shots, M=16, unified,
# end, 50 epochs: RN50 62.95 (issue #88), ViT-B/32 66.85 (issue #45). Every other cell of Fig. 3 and Table 1 is
# unconfirmed here and left out. Expect ours 1.5-2.3 points lower: so do the released prompts and the retrained
# ones in those issues, and the author calls the paper's few-shot numbers "sort of outdated" (issue #11).
REPORTED_IMAGENET_16SHOT = {"RN50": 62.95, "ViT-B-32": 66.85}
reported_values = {}
if (session.profile == "paper" and datasets[0] == "imagenet" and 16 in shots and contexts[0] == "unified-end"
        and n_ctx == 16 and not ctx_init):
    backbone = first_model.removesuffix("-quickgelu")
    if backbone in REPORTED_IMAGENET_16SHOT:
        reported_values["coop_16shot"] = REPORTED_IMAGENET_16SHOT[backbone]
    for model_name, _ in models[1:]:
        other = model_name.removesuffix("-quickgelu")
        if other in REPORTED_IMAGENET_16SHOT:
            imagenet = mean_acc.xs(model_name, level="model").unstack("method").loc["imagenet"]
            metric_values[f"coop_16shot_{model_name}"] = imagenet[headline_method][16]
            reported_values[f"coop_16shot_{model_name}"] = REPORTED_IMAGENET_16SHOT[other]

official_note = ""
if len(epoch_check):
    official_column = f"{headline_method} (official epochs)"
    for _, row in epoch_check.iterrows():
        metric_values[f"coop_{top}shot_official_epochs_seed{seeds[0]}{suffix(row['dataset'])}"] = row[official_column]
    official_note = (f" At the official epochs (seed {seeds[0]}, {top} shots) CoOp - zero-shot is "
                     + ", ".join(f"{row['dataset']} {row[official_column] - row['zero-shot CLIP']:+.2f}"
                                 for _, row in epoch_check.iterrows()) + ".")
notes = (f"Averaged over the datasets: (1) {headline_method} - zero-shot at {top} shots {average_gain:+.2f} points "
         f"({', '.join(f'{ds} {gain_at_top[ds]:+.2f}' for ds in gain_at_top.index)}); (2) {headline_method} - "
         "linear probe " + ", ".join(f"{v:+.2f} at {k} shot{'s' * (k > 1)}" for k, v in low_shot_margins.items())
         + f". Domain generalisation, target average: {dg_vs_probe:+.2f} vs the linear probe, {dg_vs_zero_shot:+.2f} "
         f"vs zero-shot. Trained {epochs_scale:g} x the official epochs"
         + (f", on {augment_passes} cached crop passes ({augment_scale[0]}-{augment_scale[1]})." if augment_passes
            else ", on un-augmented cached features (see the ablation).") + official_note)
result = record(
    metrics=metric_values, baseline=baseline_values, reported=reported_values,
    key_metric=f"coop_{top}shot", key_baseline="zero_shot",
    claim=(f"CoOp ({contexts[0]}, M={n_ctx}) beats the hand-crafted prompt at {top} shots and the linear probe at "
           f"{' and '.join(map(str, low_shots))} shots, averaged over the datasets"),
    claim_holds=claim_holds, notes=notes,
)
