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
# # CLIP-IN: Enhancing Fine-Grained Visual Understanding in CLIP via Instruction Editing Data and Long Captions
#
# Wang, Yang, Qiao, Ma — NeurIPS 2025 · [arXiv:2508.02329](https://arxiv.org/abs/2508.02329) · official code and
# weights **not located** (papers.md §16: an evaluation document of "VITRIX-CLIPIN" exists in a code index, but its
# repository could not be resolved and no checkpoint was found). **This notebook follows the paper's text** (its
# abstract and method summary as papers.md §16 records them); every formula below is our reading of that text, not
# of code, and the loss weights, learning rate and data sizes are the paper's unconfirmed choices, set here as
# stated deviations.
#
# **Claim.** CLIP is weak at fine-grained visual distinctions. CLIP-IN fine-tunes it with (1) instruction-editing
# data as hard negatives — an image and its edited version, each with the caption that describes it — under a
# *symmetric hard-negative contrastive loss* (each image must prefer its own caption over its edited counterpart's,
# each caption its own image), and (2) long descriptive captions (with a RoPE text tower distilled from the
# original, stage 1). It reports large gains on MMVP-VLM (pairs of images CLIP embeds alike that differ in one
# visual detail) and on fine-grained recognition, *without* losing zero-shot classification and retrieval.
#
# **This notebook.** The `offline` profile fine-tunes the library's cached tiny CLIP on toy-world long captions,
# with and without the instruction-editing hard negatives — the toy world renders a scene and the same scene with
# exactly one attribute edited (`clipbook.toyworld.edits`), each with its caption — and evaluates the toy
# MMVP-style pair test (`clipbook.evaluation.pairs`, on edits of *other* scenes than the training edits) and
# zero-shot classification. Stage 1 (RoPE) is not implemented: see "Deviations". The `paper` profile
# (`notebooks/profiles/paper/clip-in.yaml`) has no CLIP-IN checkpoint to load, so it runs a **labelled proxy**:
# the base model CLIP-IN starts from, open_clip `('ViT-L-14-336', 'openai')`, on MMVP-VLM in its released layout.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
pair_test = "toy"
classification_datasets = ["toy-pets", "toy-satellite"]
arms = ["fine-tuned", "edits as pairs", "CLIP-IN"]
seeds = [1, 2, 3]
long_images = 600
edit_pairs = 300
test_pairs = 600
steps = 20
long_batch = 64
edit_batch = 32
learning_rate = 6e-5
weight_decay = 0.2
hard_negative_weight = 1.0
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Dataset, Float, Int, ListOf, Str, declare

SPEC = declare(
    "profile", "models", "seeds", "learning_rate", "device",
    pair_test=Str(help="the pair test: 'toy' (one-attribute edits of toy test scenes) or a registered MMVP-VLM-style "
                       "dataset (paper: mmvp_vlm)"),
    classification_datasets=ListOf(Dataset(), min_length=0,
                                   help="zero-shot classification sets (paper: ImageNet and the CLIP_benchmark suite)"),
    arms=ListOf(Str(("fine-tuned", "edits as pairs", "CLIP-IN")), min_length=0,
                help="the fine-tuned arms (none: evaluate the starting model only, as the paper profile does)"),
    long_images=Int(minimum=2, help="toy train scenes with a long caption each (the long-caption data)"),
    edit_pairs=Int(minimum=1, help="toy train scenes edited once each (the instruction-editing data)"),
    test_pairs=Int(minimum=1, help="pairs in the pair test: edits of toy test scenes, or the first pairs of a real "
                                   "pair test (MMVP-VLM has 150)"),
    steps=Int(minimum=1, help="fine-tuning steps, the same for every arm"),
    long_batch=Int(minimum=2, help="long-caption pairs per step"),
    edit_batch=Int(minimum=1, help="edit pairs per step (two images and two captions each) in the arms with edits"),
    weight_decay=Float(minimum=0, help="AdamW weight decay (open_clip's 0.2; the paper's is unconfirmed)"),
    hard_negative_weight=Float(minimum=0, help="lambda, the weight of the hard-negative term (unconfirmed: 1)"),
)

# %%
import copy

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from threadpoolctl import threadpool_limits

import clipbook
from clipbook import cache, determinism
from clipbook.data.registry import load_dataset
from clipbook.determinism import deterministic_torch
from clipbook.evaluation import pairs, retrieval
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models.loader import LoadedModel, load_model, rehearsing
from clipbook.models.tiny_clip import images_to_tensor
from clipbook.report.rows import ModelRows, arm_means, summarise
from clipbook.toyworld import caption_sets
from clipbook.toyworld import edits as toy_edits
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld import world
from clipbook.training.loop import captions_key, clip_loss, code_fingerprint, encode_pair, trained_clip, train_clip, \
    weights_key

session = clipbook.start(SPEC, globals())
TOY = pair_test == "toy"
if arms and not TOY:
    raise ValueError(f"arms {arms} fine-tune on the toy world's long captions and edits; with the real pair test "
                     f"{pair_test!r} pass arms: [] (no CLIP-IN training data or checkpoint is available)")
# the evaluation sets exist (or their loaders' one-line errors say where to get them) before any work
clipbook.preflight([], classification_datasets, splits=("test",))
if not TOY:
    clipbook.preflight([], [pair_test], splits=("test",))

# %% [markdown]
# ## The symmetric hard-negative contrastive loss
#
# An instruction-editing sample is a source image $I$ with its caption $T$ and the edited image $\tilde I$ with
# its caption $\tilde T$ (the two captions differ only in the edited words). With unit-normalised features and the
# model's temperature $s$, each image must prefer its own caption over the counterpart's, and each caption its own
# image (papers.md §16, method summary; no code exists to cite):
#
# $$\mathcal L_\text{HN} = \tfrac14\Big[\ell(I; T, \tilde T) + \ell(\tilde I; \tilde T, T) + \ell(T; I, \tilde I)
#   + \ell(\tilde T; \tilde I, I)\Big],\qquad
#   \ell(a; p, n) = -\log\frac{e^{s\langle a,p\rangle}}{e^{s\langle a,p\rangle} + e^{s\langle a,n\rangle}},$$
#
# averaged over the edit pairs of the batch. It is the standard symmetric InfoNCE restricted to the two pairs of one
# edit — the sanity check below tests exactly that against open_clip's `ClipLoss`. The training objective is
#
# $$\mathcal L = \mathcal L_\text{CLIP}(\text{long-caption batch}) + \lambda\,\mathcal L_\text{HN}(\text{edit pairs}),$$
#
# with $\lambda$ = `hard_negative_weight` (the paper's weighting is unconfirmed; 1 here).

# %%
def pair_term(anchor: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, scale) -> torch.Tensor:
    """l(a; p, n) row by row: the cross-entropy of a two-way softmax over (positive, negative)."""
    logits = scale * torch.stack([(anchor * positive).sum(-1), (anchor * negative).sum(-1)], dim=-1)
    return F.cross_entropy(logits, torch.zeros(len(anchor), dtype=torch.long, device=anchor.device))


def hard_negative_loss(image: torch.Tensor, text: torch.Tensor, edited_image: torch.Tensor,
                       edited_text: torch.Tensor, scale) -> torch.Tensor:
    """The symmetric hard-negative contrastive loss over P edit pairs (all inputs (P, D), unit-normalised)."""
    return (pair_term(image, text, edited_text, scale) + pair_term(edited_image, edited_text, text, scale)
            + pair_term(text, image, edited_image, scale) + pair_term(edited_text, edited_image, image, scale)) / 4


# %% [markdown]
# ## The fine-tuning data
#
# - **Long captions** (the paper: ShareGPT4V-style dense descriptions): the first `long_images` scenes of the toy
#   `train` split (single objects with colour, size, position, background; disjoint from the tiny CLIP's pretraining
#   pool), each with one `caption_sets.captions(style="detailed")` caption — several sentences naming the object,
#   its size, colour, place, two visual descriptions and the background, a style the tiny CLIP was not pretrained
#   on. They fill its 32-token context.
# - **Instruction-editing data** (the paper: InstructPix2Pix-style source/edited image pairs): the next `edit_pairs`
#   train scenes, each edited once (`toyworld.edits.sample_edits`: colour, size, position, background or class,
#   everything else kept), each image with its own caption (the world's medium caption; the two differ only in the
#   edited words).
# - **The pair test** (MMVP-VLM's role): one edit of each of the first `test_pairs` scenes of the toy `test` split,
#   with another edit seed; scenes and edits are disjoint from the training ones (asserted below).

# %%
def first_scenes(split: str, start: int, count: int) -> list:
    scenes = toy_splits.scenes(split)[start:start + count]
    if len(scenes) < count:
        raise ValueError(f"split {split!r} has {len(toy_splits.scenes(split))} scenes, fewer than {start + count}")
    return list(scenes)


def render(scenes) -> torch.Tensor:
    """Normalised pixels of scenes, drawn in chunks (`world.render_batch`)."""
    return torch.cat([images_to_tensor(world.render_batch(scenes[i:i + 512])[0]) for i in range(0, len(scenes), 512)])


if TOY:
    long_scenes = first_scenes("train", 0, long_images)
    train_edits = toy_edits.sample_edits(first_scenes("train", long_images, edit_pairs), seed=0)
    test_edits = toy_edits.sample_edits(first_scenes("test", 0, test_pairs), seed=1)
    long_captions, _ = caption_sets.captions(long_scenes, "detailed", per_image=1, seed=0)
    train_scenes = set(long_scenes) | {s for e in train_edits for s in (e.source, e.target)}
    overlap = train_scenes & {s for e in test_edits for s in (e.source, e.target)}
    assert not overlap, f"{len(overlap)} test-pair scenes are also training scenes"
    # one pool for train_clip: long-caption pairs, then the edits' sources, then their targets
    pool_scenes = long_scenes + [e.source for e in train_edits] + [e.target for e in train_edits]
    pool_captions = long_captions + [e.source_text for e in train_edits] + [e.target_text for e in train_edits]
    pool_images = render(pool_scenes)
    DATA_KEY = {"scenes": cache.content_key([s.to_dict() for s in pool_scenes]), "captions": captions_key(pool_captions),
                "long": long_images, "edits": edit_pairs, "edits_version": toy_edits.EDITS_VERSION}
else:
    overlap = set()
pd.DataFrame([{"attribute": e.attribute, "source caption": e.source_text, "edited caption": e.target_text,
               "long caption of another scene": c} for e, c in zip(train_edits[:4], long_captions)]) if TOY else None

# %% [markdown]
# ## The arms
#
# Every arm starts from the cached tiny CLIP and runs `clipbook.training.loop.train_clip` for the same `steps`, with
# the same long-caption batches (drawn from (seed, step) alone, so they are the same images in every arm), seed,
# recipe and start point:
#
# | arm | each step's data | loss |
# |---|---|---|
# | fine-tuned (the paper's baseline) | `long_batch` long-caption pairs | $\mathcal L_\text{CLIP}$ |
# | edits as pairs (ablation) | the same + `edit_batch` edit pairs as ordinary pairs | $\mathcal L_\text{CLIP}$ over all of them |
# | CLIP-IN | the same + the same edit pairs | $\mathcal L_\text{CLIP}$(long) $+ \lambda\,\mathcal L_\text{HN}$(edits) |
#
# The baseline is the same fine-tuning on the same long captions without hard negatives, as the issue sketches it;
# CLIP-IN adds the editing *data* and the hard-negative *loss* together, so the middle arm, which sees the same edit
# images and captions under plain InfoNCE (an edit's two halves then sit in one batch as ordinary in-batch
# negatives of each other), separates the two. The model runs in eval mode during fine-tuning (BatchNorm keeps its
# pretrained statistics, its weights still train), so the arms' different batch sizes do not change normalisation.
# Recipe (chosen before any run; the paper's is unconfirmed): AdamW, lr 6e-5 (m2-mix's rule: the fine-tuning lr
# 1/50 of the tiny CLIP's pretraining peak), weight decay 0.2, betas (0.9, 0.98), cosine schedule with 10 % warm-up,
# the temperature trained as open_clip fine-tuning does.

# %%
RECIPE = {"steps": steps, "batch_size": long_batch, "lr": learning_rate, "weight_decay": weight_decay,
          "betas": (0.9, 0.98), "warmup_steps": max(1, steps // 10)}


def step_sampler(seed: int, with_edits: bool, n_long: int, n_edits: int):
    """The step's pool indices, drawn from (seed, step) alone: long-caption pairs first, then the edit pairs'
    sources, then their targets (the edits are drawn in every arm, so the long-caption draws never differ)."""
    def sampler(step, rng):
        draw = np.random.default_rng([seed, step])
        chosen_long = draw.choice(n_long, size=long_batch, replace=False)
        chosen_edits = draw.choice(n_edits, size=min(edit_batch, n_edits), replace=False)
        if not with_edits:
            return chosen_long
        return np.concatenate([chosen_long, n_long + chosen_edits, n_long + n_edits + chosen_edits])

    return sampler


def clip_in_loss(n_long: int, weight: float):
    """L_CLIP on the batch's long-caption pairs + weight * L_HN on its edit pairs (sources, then targets)."""
    def loss(out: dict, batch: dict) -> torch.Tensor:
        image, text, scale = out["image_features"], out["text_features"], out["logit_scale"]
        n_pairs = (len(image) - n_long) // 2
        source, target = slice(n_long, n_long + n_pairs), slice(n_long + n_pairs, None)
        long_part = clip_loss({**out, "image_features": image[:n_long], "text_features": text[:n_long]}, batch)
        return long_part + weight * hard_negative_loss(image[source], text[source], image[target], text[target], scale)

    return loss


def encode_in_eval_mode(model, images, tokens) -> dict:
    """The library's encode_pair with the model in eval mode (BatchNorm statistics fixed)."""
    model.eval()
    device = model.logit_scale.device
    return encode_pair(model, images.to(device), tokens.to(device))


METHOD_KEY = {f.__name__: code_fingerprint(f) for f in (pair_term, hard_negative_loss)}


def fine_tune(arm: str, seed: int) -> tuple[LoadedModel, dict]:
    """Fine-tune a copy of the starting model as `arm`; cached by data, recipe, seed and the code of every part."""
    n_long, n_edits = len(long_captions), len(train_edits)
    recipe = {**RECIPE, "seed": seed}
    loss = clip_in_loss(long_batch, hard_negative_weight) if arm == "CLIP-IN" else clip_loss
    plugins = {"loss": loss, "forward": encode_in_eval_mode,
               "sampler": step_sampler(seed, arm != "fine-tuned", n_long, n_edits)}

    def build():
        return copy.deepcopy(base.model).to(session.device)

    def train(model):
        return train_clip(model, pool_images, pool_captions, base.tokenizer, recipe, desc=f"{arm} seed {seed}",
                          **plugins)

    if rehearsing():
        model = build()
        log = train(model)
    else:
        key = {**DATA_KEY, "method": METHOD_KEY if arm == "CLIP-IN" else None}
        model, log = trained_clip(f"clip-in-{arm.replace(' ', '-')}", build, key, train, recipe=recipe,
                                  plugins=plugins, start=base.identity)
    model.eval()
    loaded = LoadedModel(model, base.preprocess, base.tokenizer, base.name, base.pretrained,
                         identity={**base.identity, "fine-tuned": arm, "weights": weights_key(model)})
    return loaded, log


base = load_model(*models[0], device=session.device)
runs = {(arm, seed): fine_tune(arm, seed) for arm in arms for seed in seeds}

# %% [markdown]
# ## The experiment
#
# For the starting model ("pre-trained CLIP", no seed) and every fine-tuned one:
# - **pair accuracy** on the pair test (`clipbook.evaluation.pairs.pair_accuracy`, MMVP-VLM's scoring: each
#   statement's softmax over its pair's two images must pick its own image, and a pair counts only when both do;
#   chance 25 %), overall and per edited attribute (MMVP-VLM reports its nine visual patterns the same way);
# - **zero-shot accuracy** on the toy suite sets (each set's prompt template; paper: ImageNet and CLIP_benchmark);
# - **long-caption retrieval** R@1 both ways on the pair test's source scenes with a detailed caption each (another
#   caption seed than training), to see that long-caption retrieval is kept.

# %%
PIXELS: dict = {}
PAIR_NAME = "toy edit pairs" if TOY else pair_test


def encode_images(loaded: LoadedModel, key, pixels_fn) -> torch.Tensor:
    if key not in PIXELS:
        PIXELS[key] = pixels_fn()
    pixels = PIXELS[key]
    with torch.no_grad():
        raw = torch.cat([loaded.model.encode_image(pixels[i:i + 256].to(session.device)).float().cpu()
                         for i in range(0, len(pixels), 256)])
    return F.normalize(raw, dim=-1)


def class_features(loaded: LoadedModel, dataset) -> torch.Tensor:
    if not hasattr(dataset, "render"):
        from clipbook.features import image_features
        return image_features(loaded, dataset, normalize=True)
    return encode_images(loaded, (dataset.name, dataset.split),
                         lambda: images_to_tensor(dataset.render(range(len(dataset)))))


if TOY:
    PAIR_TEXTS = ([e.source_text for e in test_edits], [e.target_text for e in test_edits])
    PAIR_ATTRIBUTES = [e.attribute for e in test_edits]
    RETRIEVAL_TEXTS, _ = caption_sets.captions([e.source for e in test_edits], "detailed", per_image=1, seed=1)
    PAIR_SPEC = {"test": cache.content_key([[e.source.to_dict(), e.target.to_dict()] for e in test_edits]),
                 "texts": captions_key(PAIR_TEXTS[0] + PAIR_TEXTS[1] + RETRIEVAL_TEXTS)}
else:
    PAIR_SET = load_dataset(pair_test, "test")
    N_PAIRS = min(test_pairs, len(PAIR_SET) // 2)  # the first pairs (all of MMVP-VLM's 150 under the paper profile)
    PAIR_TEXTS = tuple(texts[:N_PAIRS] for texts in PAIR_SET.statement_pairs())
    PAIR_ATTRIBUTES, RETRIEVAL_TEXTS = PAIR_SET.pair_categories()[:N_PAIRS], None
    PAIR_SPEC = {**PAIR_SET.fingerprint(), "pairs": N_PAIRS}


PAIR_FEATURES: dict = {}


def pair_features(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Each pair's first and second image's normalised features (kept per model: the sanity check reuses them)."""
    key = cache.content_key(loaded.identity)
    if key not in PAIR_FEATURES:
        PAIR_FEATURES[key] = encode_pairs(loaded)
    return PAIR_FEATURES[key]


def encode_pairs(loaded: LoadedModel) -> tuple[torch.Tensor, torch.Tensor]:
    if TOY:
        first = encode_images(loaded, "pair sources", lambda: render([e.source for e in test_edits]))
        second = encode_images(loaded, "pair targets", lambda: render([e.target for e in test_edits]))
        return first, second
    from clipbook.features import image_features
    features = image_features(loaded, PAIR_SET, indices=list(range(2 * N_PAIRS)), normalize=True).cpu()
    return features[0::2], features[1::2]


def score(method: str, loaded: LoadedModel, seed=None) -> list[dict]:
    out = ModelRows(models[0][0], method, seed)
    image_a, image_b = pair_features(loaded)
    text_a, text_b = (retrieval.text_features(loaded, texts) for texts in PAIR_TEXTS)
    choices = pairs.pair_choices(image_a, image_b, text_a, text_b)
    out.add(PAIR_NAME, "pair accuracy", 100.0 * choices["pair"].mean())
    for attribute in sorted(set(PAIR_ATTRIBUTES)):
        mask = np.asarray(PAIR_ATTRIBUTES) == attribute
        out.add(PAIR_NAME, f"pair accuracy: {attribute}", 100.0 * choices["pair"][mask].mean())
    if RETRIEVAL_TEXTS is not None:
        out.add_all("toy (long captions)", retrieval.recall_metrics(
            image_a, retrieval.text_features(loaded, RETRIEVAL_TEXTS), np.arange(len(image_a)), ks=(1,)))
    for name in classification_datasets:
        task = ClassificationTask(loaded, name)
        out.add(name, "accuracy", task.zero_shot_accuracy_of(class_features(loaded, task.split("test"))))
    return out.rows


def evaluate(method: str, loaded: LoadedModel, seed=None) -> list[dict]:
    """The rows of one model, cached by its weights and the evaluation sets (a warm run only reads them)."""
    spec = {"version": 1, "model": loaded.identity, "method": method, "seed": seed, "pairs": PAIR_SPEC,
            "classification": classification_datasets, "evaluate": code_fingerprint(score)}
    if rehearsing():
        return score(method, loaded, seed)
    return cache.cached("clip-in-eval", spec, lambda: score(method, loaded, seed), name=f"{method}-{seed}")


# one thread for the toy models' small matrix work (faster on the shared 2-core machine); a real model gets them all
THREADS = determinism.SMALL_WORK_THREADS if TOY else torch.get_num_threads()
with threadpool_limits(THREADS), deterministic_torch(THREADS):
    rows = evaluate("pre-trained CLIP", base)
    for (arm, seed), (loaded, _) in runs.items():
        rows += evaluate(arm, loaded, seed)
rows = pd.DataFrame(rows)
summarise(rows).round(2)

# %% [markdown]
# Means over seeds per arm, the starting model first (zero-shot: the mean over the classification sets).

# %%
arm_means(rows, order=["pre-trained CLIP", *arms]).round(2).T

# %% [markdown]
# ## Sanity checks
#
# 1. **Against open_clip's `ClipLoss` (an independent formulation).** For one edit, the symmetric hard-negative
#    loss is the standard symmetric InfoNCE on the batch of its two pairs $\{(I,T), (\tilde I,\tilde T)\}$: there
#    the counterpart *is* the one in-batch negative. So `hard_negative_loss` over $P$ pairs must equal the mean of
#    open_clip `ClipLoss` over $P$ two-pair batches — on real features of the training edits, and with the hard
#    negative replaced by a random *other* training pair (the published reduction: with the hard negative equal to
#    an in-batch negative, the loss is the standard two-way InfoNCE).
# 2. **An analytic case.** An edit that changes nothing ($\tilde I = I$, $\tilde T = T$) gives exactly $\log 2$.
# 3. **The check can fail.** Dropping the text side (image → text terms only) changes the value against
#    `ClipLoss` by a visible amount (shown).

# %%
from open_clip import ClipLoss

with torch.no_grad():
    if TOY:
        k = min(64, len(train_edits))
        feats = encode_pair(base.model, pool_images[[len(long_captions) + i for i in range(k)]
                                                    + [len(long_captions) + len(train_edits) + i for i in range(k)]],
                            base.tokenizer([e.source_text for e in train_edits[:k]]
                                           + [e.target_text for e in train_edits[:k]]))
        ia, ta, ib, tb = (feats["image_features"][:k].double(), feats["text_features"][:k].double(),
                          feats["image_features"][k:].double(), feats["text_features"][k:].double())
    else:  # the pair test's first pairs
        image_a, image_b = pair_features(base)
        k = min(64, len(image_a))
        ia, ib = image_a[:k].double(), image_b[:k].double()
        ta, tb = (retrieval.text_features(base, texts[:k]).double() for texts in PAIR_TEXTS)
    scale = torch.tensor(float(base.model.logit_scale.exp()), dtype=torch.float64)
    ours = float(hard_negative_loss(ia, ta, ib, tb, scale))
    reference = float(np.mean([float(ClipLoss()(torch.stack([ia[i], ib[i]]), torch.stack([ta[i], tb[i]]), scale))
                               for i in range(k)]))
    other = torch.roll(torch.arange(k), 1)  # pair i's negative: pair i-1's source, a different scene
    ours_random = float(hard_negative_loss(ia, ta, ia[other], ta[other], scale))
    reference_random = float(np.mean([float(ClipLoss()(torch.stack([ia[i], ia[other[i]]]),
                                                       torch.stack([ta[i], ta[other[i]]]), scale))
                                      for i in range(k)]))
    no_edit = float(hard_negative_loss(ia, ta, ia, ta, scale))
    image_side_only = float((pair_term(ia, ta, tb, scale) + pair_term(ib, tb, ta, scale)) / 2)
assert abs(ours - reference) < 1e-9 and abs(ours_random - reference_random) < 1e-9, (ours, reference, ours_random)
assert abs(no_edit - np.log(2)) < 1e-12, no_edit
one_sided_gap = abs(image_side_only - reference)
if not rehearsing():  # random weights can make the two sides agree
    assert one_sided_gap > 1e-4, one_sided_gap
{"edit pairs checked": k, "L_HN, ours": round(ours, 6), "L_HN − ClipLoss on two-pair batches": f"{ours - reference:.1e}",
 "random in-batch negative: ours − ClipLoss": f"{ours_random - reference_random:.1e}",
 "random in-batch negative: L_HN": round(ours_random, 4),
 "no-op edit: L_HN − log 2": f"{no_edit - np.log(2):.1e}",
 "image side only − ClipLoss (must differ)": round(image_side_only - reference, 4)}

# %% [markdown]
# "L_HN, ours" (the edit pairs) beside "random in-batch negative: L_HN" (random pairs of training scenes) shows how
# hard the edits are as negatives for the starting model: the larger the first against the second, the harder.
#
# ## Training curves
#
# Mean loss of the first and last three steps of each run (each arm's own objective).

# %%
curves = pd.DataFrame([{"method": arm, "seed": seed, "first 3 steps": np.mean(log["loss"][:3]),
                        "last 3 steps": np.mean(log["loss"][-3:])} for (arm, seed), (_, log) in runs.items()])
curves.round(4) if len(curves) else "no fine-tuned arm under this profile"

# %% [markdown]
# ## What the paper reports
#
# No number is transcribed: the MMVP-VLM and fine-grained tables could not be read from a primary source here
# (papers.md §16: **unconfirmed**; a third-party table in the index looks machine-generated and is not used).

# %% tags=["reported"]
REPORTED = []

# %% [markdown]
# ## Claims
#
# From the abstract: CLIP-IN (editing hard negatives with the symmetric loss, plus long captions) improves MMVP
# against the same model fine-tuned without the hard negatives, and keeps zero-shot classification and retrieval
# ("without compromising"). Margins, fixed before any run: 0 for "improves"; −2 points for "keeps" (a
# non-inferiority margin). The symmetric loss is the paper's named mechanism, so a second MMVP claim compares CLIP-IN
# with the same edit data under plain InfoNCE. Preconditions: the pair test is not solved by the starting model
# (pair accuracy ≤ 90 %, room to improve), the test pairs share no scene with the training data, and every arm's
# loss fell in every seed. Not tested: the RoPE stage (not implemented; the tiny CLIP's text tower keeps its 32
# learned positions) and the MLLM hallucination claim (no MLLM in the toy world).

# %% tags=["claims"]
from clipbook.claims import Claim

METHOD, BASELINE, ABLATION = "CLIP-IN", "fine-tuned", "edits as pairs"
NEEDS = ("clip-in-trained", "pair-test-not-solved", "test-pairs-disjoint", f"loss-fell | {BASELINE}", f"loss-fell | {METHOD}")
CLAIMS = [
    Claim("mmvp", "CLIP-IN fine-tuning beats fine-tuning on the same long captions without the editing hard "
          "negatives on the MMVP-style pair test", method=METHOD, baseline=BASELINE, metric="pair accuracy",
          requires=NEEDS),
    Claim("mmvp-loss", "The symmetric hard-negative loss beats the same editing data as ordinary contrastive pairs "
          "on the MMVP-style pair test", method=METHOD, baseline=ABLATION, metric="pair accuracy",
          requires=NEEDS + (f"loss-fell | {ABLATION}",)),
    Claim("zero-shot-kept", "CLIP-IN keeps zero-shot classification (no more than 2 points below the baseline)",
          method=METHOD, baseline=BASELINE, metric="accuracy", margin=-2.0, requires=NEEDS),
    Claim("retrieval-kept", "CLIP-IN keeps long-caption retrieval (text→image R@1 no more than 2 points below the "
          "baseline)", method=METHOD, baseline=BASELINE, metric="R@1 text→image", margin=-2.0, requires=NEEDS),
    Claim("rope-long-captions", "Stage 1 (RoPE text tower distilled from the original) lets CLIP use captions "
          "longer than its context", method=METHOD, baseline=BASELINE, metric="R@1 text→image",
          requires=("rope-stage-implemented",)),
    Claim("mllm-hallucination", "CLIP-IN's image features reduce hallucination when plugged into a multimodal LLM",
          method=METHOD, baseline=BASELINE, metric="pair accuracy", requires=("mllm-available",)),
]

# %%
from clipbook.claims import at_least, fact

base_pairs = float(rows[(rows["method"] == "pre-trained CLIP") & (rows["metric"] == "pair accuracy")]["value"].mean())
PRECONDITIONS = [
    fact("clip-in-trained", "CLIP-IN and its baseline were fine-tuned here", bool(arms) and TOY,
         "CLIP-IN and its baseline fine-tuned on the toy world" if arms and TOY else
         "no CLIP-IN checkpoint exists (papers.md §16: repository and weights not located) and its training data are "
         "not assembled: this profile measures the base model CLIP-IN starts from, a labelled proxy"),
    at_least("pair-test-not-solved", "pre-trained CLIP: 100 minus its pair accuracy (room to improve)",
             100.0 - base_pairs, 10.0, " points"),
    fact("test-pairs-disjoint", "the test pairs share no scene with the training data", TOY and not overlap,
         f"{len(overlap)} shared scenes" if TOY else "the real pair test has no toy training data"),
    *[at_least(f"loss-fell | {arm}", f"{arm}: smallest drop of its loss over seeds (first 3 minus last 3 steps)",
               float(min(np.mean(runs[arm, s][1]["loss"][:3]) - np.mean(runs[arm, s][1]["loss"][-3:])
                         for s in seeds)), 1e-6) for arm in arms],
    fact("rope-stage-implemented", "the RoPE text tower of stage 1 is implemented", False,
         "stage 1 is not implemented: the tiny CLIP's text tower keeps its 32 learned positions, and the toy long "
         "captions are trained within that context"),
    fact("mllm-available", "a multimodal LLM to plug the image features into", False,
         "the toy world has no multimodal LLM"),
]

# %%
clipbook.record(session, rows=rows, claims=CLAIMS, reported=REPORTED, preconditions=PRECONDITIONS)

# %% [markdown]
# ## Deviations (from the paper's text; there is no code to compare with)
#
# 1. **No stage 1.** The paper replaces the text tower's absolute positions with RoPE and distils the original text
#    encoder into it to read long captions; the tiny CLIP keeps its 32 learned positions, and the toy "long"
#    captions are the detailed style that fills that context (the world's longer captions would be truncated).
# 2. **Loss weights unconfirmed.** $\lambda = 1$ between the long-caption InfoNCE and the hard-negative term; the
#    hard-negative term is the two-way form read from the paper's description (each image against its counterpart's
#    caption, each caption against its counterpart's image) without further in-batch negatives.
# 3. **Data.** Toy renders stand in for the instruction-editing sets (exact one-attribute edits, where the real
#    sets' edited images can also change other details) and for ShareGPT4V-style long captions; the edit captions
#    are the world's medium captions, as the MMVP-style test's statements are, so train and test statements share a
#    template (on disjoint scenes and edits).
# 4. **Scale and recipe.** `steps` steps from the cached tiny CLIP (lr 6e-5, wd 0.2) instead of ViT-L/14-336
#    training at the paper's unconfirmed settings; BatchNorm in eval mode during fine-tuning (the tiny CLIP is a
#    ResNet; ViT-L has no BatchNorm).
# 5. **Evaluation.** Zero-shot on two toy sets (pets, satellite) and long-caption retrieval on the test sources,
#    for the CPU budget; MMVP-VLM is the toy pair test.
# 6. **Steps, changed after a first run for the cold budget** (not toward a result): the first complete run used
#    30 steps and took 164 s of CPU cold, over the 2-minute budget; 20 steps is the default now. At 30 steps the MMVP
#    claim against the baseline held (+0.89 points, 95 % CI [+0.26, +1.52]) and the one against the edits as
#    ordinary pairs did not (−0.56 [−1.03, −0.08]); both verdicts at 20 steps are the sentences above.
#
# ## Closing note
#
# **Verdicts** are the claims' sentences above, generated from the rows (offline: the cached tiny CLIP fine-tuned
# for 20 steps, three seeds per arm, 95 % Student-t intervals over seeds). The per-attribute table shows where the
# pair test is decided: background and colour edits are near ceiling for every model, position and size edits near
# zero (the tiny CLIP's statements do not separate them), so the overall score moves through the class edits.
#
# **Paper profile** (`notebooks/profiles/paper/clip-in.yaml`, a GPU): a **labelled proxy**. No CLIP-IN checkpoint or
# repository was located and its training data are not assembled, so it fine-tunes nothing and measures the model
# CLIP-IN starts from, open_clip `('ViT-L-14-336', 'openai')`, on MMVP-VLM (`mmvp_vlm`, the release's
# `Questions.csv` + `MLLM_VLM Images/<Type>/<id>.jpg`, read by `clipbook.data.mmvp` as tsb0601/MMVP's
# `evaluate_vlm.py` reads it: "a photo of " + statement, pair accuracy overall and per visual pattern) and ImageNet
# zero-shot; every CLIP-IN claim is then *not tested* with that reason. The paper's numbers are unconfirmed.
#
# **Proxies.** Instruction-editing sets → exact one-attribute toy edits; ShareGPT4V-style long captions → the toy
# world's detailed captions within the 32-token context; MMVP-VLM → the toy pair test on disjoint edits; ImageNet
# and CLIP_benchmark → zero-shot on toy pets and satellite plus long-caption retrieval; ViT-L/14-336 → the tiny CLIP.
#
# **Cost** (CPU time user+sys through `invoke refresh`, the 2-core machine shared with five other sessions, load
# average 7–8): cold (nine fine-tunings and every evaluation; the tiny CLIP cached) 119 s, 406 s wall; warm
# (everything cached) 20 s, 58 s wall.
