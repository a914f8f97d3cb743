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
# # Demystifying CLIP Data (MetaCLIP)
#
# Hu Xu, Saining Xie, Xiaoqing Ellen Tan, Po-Yao Huang, Russell Howes, Vasu Sharma, Shang-Wen Li, Gargi Ghosh,
# Luke Zettlemoyer, Christoph Feichtenhofer — ICLR 2024 · [arXiv:2309.16671](https://arxiv.org/abs/2309.16671) ·
# official code [facebookresearch/MetaCLIP](https://github.com/facebookresearch/MetaCLIP) (CC BY-NC 4.0; read, not
# copied).
#
# **Claim.** CLIP's advantage is its data, and its curation can be written down as two steps (Algorithm 1):
# keep the pairs whose alt-text contains a *metadata entry* (500k WordNet / Wikipedia terms) as a sub-string, then
# *balance*: an entry matched by more than $t$ = 20k pairs keeps each of them with probability $t/\text{count}$,
# so the head is flattened to $t$ while the tail is kept whole. Trained on 400M pairs curated this way from
# CommonCrawl, ViT-B/16 reaches 70.8 % zero-shot ImageNet against 68.3 % for OpenAI's CLIP (abstract; README
# table), at the same training budget (12.8B seen pairs).
#
# **This notebook.** The `offline` profile runs the official curation on the toy world's pretraining pool — its
# alt-text names classes with a long tail of frequencies (`clipbook.toyworld.captions.alt_text`,
# `suite.PRETRAIN_MIX`, `suite.ZIPF`) — with the world's concept list as metadata, then trains two tiny CLIPs from
# scratch at a reduced scale that differ only in their data: the curated subset against the raw pool, at the same
# number of seen pairs (same steps and batch, same initialisation and seed; the image side is a frozen
# self-supervised tower, see *Training*). Both are evaluated zero-shot on the toy suite, on every class and on
# each family's tail classes. The `paper` profile (`notebooks/profiles/paper/metaclip.yaml`)
# evaluates the released `metaclip_400m` open_clip checkpoints against the OpenAI ones on ImageNet zero-shot,
# beside the numbers the README and open_clip's results table report.

# %% tags=["parameters"]
profile = "offline"
models = [["clipbook-tiny-rn", "toyworld"]]
datasets = ["toy", "toy-pets", "toy-aircraft", "toy-flowers", "toy-food", "toy-textures", "toy-satellite",
            "toy-scenes"]
seeds = [1, 2]
pool_size = 12000
steps = 100
batch_size = 128
learning_rate = 3e-3
tail_match_share = 0.0564
device = "auto"

# %% tags=["parameter-spec"]
from clipbook.batch.parameters import Float, Int, declare
from clipbook.toyworld import suite

SPEC = declare(
    "profile", "models", "datasets", "seeds", "learning_rate", "device",
    pool_size=Int(minimum=2, maximum=suite.PRETRAIN_SIZE,
                  help="pairs of the toy pretraining pool that curation and training use (its first ones)"),
    steps=Int(minimum=1, help="training steps of each from-scratch tiny CLIP (offline; both arms alike)"),
    batch_size=Int(minimum=2, help="pairs per step (offline; both arms alike, so both see steps × batch_size pairs)"),
    tail_match_share=Float(minimum=0.0, maximum=1.0, exclusive_minimum=True,
                           help="the t rule: entries matched fewer than t times hold this share of all matches "
                                "(paper §3.4: 0.32B of 5.67B matches at t = 20k)"),
)

# %%
import hashlib

import matplotlib.pyplot as plt
import numpy as np
import open_clip
import pandas as pd
import torch
import torch.nn.functional as F
from scipy import stats

import clipbook
from clipbook import cache, zeroshot
from clipbook.evaluation.classification import ClassificationTask
from clipbook.models.loader import LoadedModel, load_model
from clipbook.models.tiny_clip import (PRETRAIN, TINY_CLIP_CONFIG, TINY_CLIP_NAME, pretrain_captions, quiet_open_clip,
                                       register_tiny_configs)
from clipbook.models.tiny_ssl import IMAGENET_MEAN, IMAGENET_STD, load_ssl_encoder
from clipbook.report.rows import summarise
from clipbook.toyworld import splits as toy_splits
from clipbook.toyworld import suite, world
from clipbook.training.loop import captions_key, trained_clip, train_clip

session = clipbook.start(SPEC, globals())
# offline: tiny CLIPs trained here from scratch (reduced scale, below); paper: the released checkpoints, evaluated
TRAIN_HERE = models == [["clipbook-tiny-rn", "toyworld"]]
if TRAIN_HERE and not all(name.startswith("toy") for name in datasets):
    raise ValueError(f"the from-scratch runs are evaluated on the toy suite (datasets like 'toy-pets'), got {datasets}")

# %% [markdown]
# ## The pool and the metadata
#
# The pool is the first `pool_size` pairs of the toy world's pretraining split, with the captions the library's
# tiny CLIP was pretrained on (`clipbook.models.tiny_clip.pretrain_captions`): 85 % alt-text that names the class
# at its family's rate, else a synonym, a hypernym or nothing, plus attributes and unrelated filler ("stock
# photo", "img 2041"); 15 % visual descriptions without the class name.
#
# MetaCLIP's metadata is 500k entries: WordNet synsets, Wikipedia unigrams and bigrams, and article titles
# (`metaclip/metaclip1/build_metadata.py`). The toy world's counterpart is its concept list: every class name,
# synonym and hypernym, the family words and the colour words. Filler words, domain words ("photo", "sketch")
# and background phrases are left out — the toy world has no Wikipedia to decide which of them would be entries,
# so the choice is stated here rather than tuned.

# %%
def toy_metadata() -> list[str]:
    """The world's concept list, sorted (an entry's id is its position, as in metadata.json)."""
    entries = set(world.COLOURS)
    for classname, spec in world.CLASSES.items():
        entries.add(classname)
        entries.update(spec["synonyms"])
        entries.update([spec["hypernym"]] if "hypernym" in spec else [])
    for family in world.FAMILIES.values():
        entries.update(family["hypernyms"])
    return sorted(entries)


# the first pool_size pairs of the pretraining split (its order is random), captions as the tiny CLIP saw them
POOL_SCENES = toy_splits.scenes(PRETRAIN["split"])[:pool_size]
POOL_CAPTIONS = pretrain_captions(PRETRAIN)[:pool_size]
METADATA = toy_metadata()
{"pairs in the pool": len(POOL_CAPTIONS), "metadata entries": len(METADATA), "example captions": POOL_CAPTIONS[:4]}

# %% [markdown]
# ## Sub-string matching
#
# A caption matches entry $e$ when `" e "` occurs in the caption padded with spaces, after punctuation
# (`, . ; : ? ! \``) is wrapped in spaces and tabs and newlines become spaces (official
# `metaclip/metaclip1/substr_matching.py`: `spacing`, `substr_matching`). The result is the inverted index of
# (entry id, pair id) rows (`metaclip/metaclip1/indexing/substr_indexing.py`: `build_index`) and each entry's
# count $c_e$, the number of pairs that match it (`indexing/entry_count.py`: `entry_count`, `np.unique`).

# %%
PUNCTUATION = [",", ".", ";", ":", "?", "!", "`"]


def spaced(text: str) -> str:
    """substr_matching.py::spacing: pad with spaces, wrap punctuation in spaces, whitespace controls to spaces."""
    text = f" {text} "
    for mark in PUNCTUATION:
        text = text.replace(mark, f" {mark} ")
    for control in ("\t", "\n", "\r"):
        text = text.replace(control, " ")
    return text


def substring_index(texts: list[str], metadata: list[str]) -> np.ndarray:
    """substr_matching.py::substr_matching over every text -> (M, 2) rows [entry_id, text_id] (build_index)."""
    padded_entries = [f" {entry} " for entry in metadata]
    rows = [(entry_id, text_id) for text_id, text in enumerate(texts) for entry_id, entry in
            enumerate(padded_entries) if entry in spaced(text)]
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


def entry_counts(index: np.ndarray, n_entries: int) -> np.ndarray:
    """entry_count.py::entry_count: pairs matched per entry."""
    entry_ids, counts = np.unique(index[:, 0], return_counts=True)
    out = np.zeros(n_entries, dtype=np.int64)
    out[entry_ids] = counts
    return out


INDEX = substring_index(POOL_CAPTIONS, METADATA)
COUNTS = entry_counts(INDEX, len(METADATA))
matched_pairs = np.unique(INDEX[:, 1])
top = np.argsort(-COUNTS, kind="stable")[:8]
{"matches": len(INDEX), "pairs with at least one entry": len(matched_pairs),
 "pairs with none (dropped)": len(POOL_CAPTIONS) - len(matched_pairs),
 "entries never matched": int((COUNTS == 0).sum()), "head of the count list": {METADATA[e]: int(COUNTS[e]) for e in top}}

# %% [markdown]
# ## The threshold $t$
#
# $t$ = 20k is CLIP's own cap ("up to 20,000 pairs per query") and the paper explains it by the distribution it
# produces (§3.4): on the 1.6B-pair pool, the 16k entries matched at least 20k times hold 5.35B of the 5.67B
# matches, so the tail (entries below $t$) holds $0.32/5.67 = 5.64\,\%$ of all matches (the figures are the
# paper's; issue [#24](https://github.com/facebookresearch/MetaCLIP/issues/24) reconciles them with
# `entry_counts_400m.json`). The 400M size itself is "a result of running curation, not the goal" (the authors in
# #24). So $t$ is scaled to the toy pool by that share: the smallest count $t$ at which the entries matched fewer
# than $t$ times hold at least `tail_match_share` of the pool's matches.

# %%
def threshold_for_tail_share(counts: np.ndarray, share: float) -> int:
    """The smallest t with sum(c_e for c_e < t) >= share * sum(c_e) (t = 20k on the paper's pool)."""
    total = counts.sum()
    for t in np.unique(counts[counts > 0]):  # the tail share only changes at observed counts
        if counts[counts < t].sum() >= share * total:
            return int(t)
    return int(counts.max()) + 1


T = threshold_for_tail_share(COUNTS, tail_match_share)
head = COUNTS >= T
{"t": T, "head entries (count ≥ t)": int(head.sum()), "of entries matched": int((COUNTS > 0).sum()),
 "tail share of matches": round(float(COUNTS[~head].sum() / COUNTS.sum()), 4),
 "paper: head entries / entries": round(16_000 / 500_000, 3), "toy: head entries / entries": round(head.mean(), 3)}

# %% [markdown]
# ## Balancing
#
# Every (entry, pair) row of the inverted index draws its own uniform number and is selected when it is below
# $p_e = t / \max(c_e, t)$; a pair is kept when any of its rows is selected
# (`metaclip/metaclip1/indexing/balance_sampling.py`: `balance_sampling`, the numpy version "close to the impl. in
# the paper"; `metaclip/metaclip1/balancing.py`: `balance_sampling` is the same rule pair by pair, returning at
# the first selected entry). So a pair with entries $E_j$ is kept with probability
#
# $$q_j = 1 - \prod_{e \in E_j} (1 - p_e),$$
#
# tail-only pairs ($c_e < t$ for all $e$) are always kept, and pairs with no entry never. The official code draws
# from numpy's global state; here a seeded generator, one draw per seed.

# %%
def balance_sampling(index: np.ndarray, counts: np.ndarray, t: int, rng: np.random.Generator
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(kept pair ids, sorted; per-row selection mask) of indexing/balance_sampling.py::balance_sampling."""
    entry_probability = t / np.maximum(counts[index[:, 0]], t)
    selected = rng.random(len(index)) < entry_probability
    return np.unique(index[selected, 1]), selected


curated = {seed: balance_sampling(INDEX, COUNTS, T, np.random.default_rng(seed)) for seed in seeds}
KEPT = {seed: kept for seed, (kept, _) in curated.items()}
pd.DataFrame([{"seed": seed, "pairs kept": len(kept), "of the pool (%)": 100 * len(kept) / len(POOL_CAPTIONS)}
              for seed, kept in KEPT.items()])

# %% [markdown]
# What the curation changes, per family: the share of the pool and of the curated set, and how often the caption
# names the class.

# %%
def composition(indices: np.ndarray) -> pd.Series:
    families = pd.Series([POOL_SCENES[i].family for i in indices])
    return 100 * families.value_counts(normalize=True)


names_class = np.array([f" {scene.classname} " in spaced(text) for scene, text in zip(POOL_SCENES, POOL_CAPTIONS)])
first = seeds[0]
pd.DataFrame({"pool (%)": composition(np.arange(len(POOL_CAPTIONS))), "curated (%)": composition(KEPT[first]),
              "pool: caption names the class (%)": pd.Series(names_class).groupby(
                  [s.family for s in POOL_SCENES]).mean() * 100,
              "curated: caption names the class (%)": pd.Series(names_class[KEPT[first]]).groupby(
                  [POOL_SCENES[i].family for i in KEPT[first]]).mean() * 100}).round(1)

# %% [markdown]
# ## Sanity checks
#
# 1. **Matching, independently.** The sub-string rule against a word n-gram lookup written separately: the
#    spaced caption split on single spaces, every run of consecutive words joined back, and an entry matches when
#    it is one of those runs. The two index sets must be identical on the whole pool.
# 2. **The histogram is flat at $t$.** Each entry's own selected rows are Binomial$(c_e, p_e)$ with mean
#    $\min(c_e, t)$ and variance $c_e p_e (1 - p_e)$: the realised counts must lie within $z^\star$ standard
#    deviations, $z^\star$ the two-sided 0.1 % normal quantile with a Bonferroni correction over the entries
#    (entries with $c_e > t$: the others keep every row). Second, the pairs kept that match $e$ (kept through any of
#    their entries) have the exact Poisson-binomial mean $\sum_{j \ni e} q_j \ge \min(c_e, t)$ and variance
#    $\sum_{j\ni e} q_j(1-q_j)$, the same tolerance. Measured while writing this notebook (seed 1, this pool),
#    wrong balancers fail it: one draw per pair at $\max_e p_e$ gives max $|z|$ 6.4, at $\min_e p_e$ 27.6, counts
#    doubled 23.8, $t$ 20 % too low 10.6, against $z^\star$ = 4.5.
# 3. The invariants: every tail-only pair kept, no pair without an entry kept.

# %%
def ngram_index(texts: list[str], metadata: list[str]) -> np.ndarray:
    """An independent matcher: entries as word sequences looked up among the caption's word n-grams."""
    entry_id = {entry: i for i, entry in enumerate(metadata)}
    longest = max(len(entry.split(" ")) for entry in metadata)
    rows = set()
    for text_id, text in enumerate(texts):
        words = spaced(text).split(" ")
        for n in range(1, longest + 1):
            for start in range(len(words) - n + 1):
                found = entry_id.get(" ".join(words[start:start + n]))
                if found is not None:
                    rows.add((found, text_id))
    return np.array(sorted(rows), dtype=np.int64).reshape(-1, 2)


independent = ngram_index(POOL_CAPTIONS, METADATA)
official_rows = {tuple(row) for row in INDEX.tolist()}
assert official_rows == {tuple(row) for row in independent.tolist()}, \
    f"{len(official_rows ^ {tuple(r) for r in independent.tolist()})} (entry, pair) rows differ"

z_star = stats.norm.ppf(1 - 0.001 / (2 * len(METADATA)))
p_entry = T / np.maximum(COUNTS, T)
row_probability = p_entry[INDEX[:, 0]]
log_miss = np.zeros(len(POOL_CAPTIONS))
np.add.at(log_miss, INDEX[:, 1], np.log1p(-np.minimum(row_probability, 1 - 1e-12)))
q_pair = np.where(np.isin(np.arange(len(POOL_CAPTIONS)), matched_pairs), 1 - np.exp(log_miss), 0.0)
q_pair[np.isclose(q_pair, 1.0)] = 1.0
expected_kept = np.bincount(INDEX[:, 0], weights=q_pair[INDEX[:, 1]], minlength=len(METADATA))
variance_kept = np.bincount(INDEX[:, 0], weights=(q_pair * (1 - q_pair))[INDEX[:, 1]], minlength=len(METADATA))
tail_only = np.setdiff1d(matched_pairs, np.unique(INDEX[COUNTS[INDEX[:, 0]] >= T, 1]))

checks = []
for seed, (kept, selected) in curated.items():
    own = np.bincount(INDEX[selected, 0], minlength=len(METADATA))
    sampled = COUNTS > T  # entries whose rows are drawn with probability below 1
    own_z = (own - np.minimum(COUNTS, T))[sampled] / np.sqrt(COUNTS * p_entry * (1 - p_entry))[sampled]
    kept_mask = np.zeros(len(POOL_CAPTIONS), dtype=bool)
    kept_mask[kept] = True
    realised_kept = np.bincount(INDEX[:, 0], weights=kept_mask[INDEX[:, 1]], minlength=len(METADATA))
    matched = COUNTS > 0
    spread = np.sqrt(np.maximum(variance_kept, 1e-12))
    kept_z = ((realised_kept - expected_kept) / spread)[matched & (variance_kept > 0)]
    exact = matched & (variance_kept == 0)  # every pair of the entry is certain: the count is exact
    assert np.abs(own_z).max() < z_star, (seed, float(np.abs(own_z).max()))
    assert np.abs(kept_z).max() < z_star and np.array_equal(realised_kept[exact], expected_kept[exact]), seed
    assert kept_mask[tail_only].all() and not kept_mask[np.setdiff1d(np.arange(len(POOL_CAPTIONS)), matched_pairs)].any()
    checks.append({"seed": seed, "max |z| own rows vs min(c, t)": np.abs(own_z).max(),
                   "max |z| kept pairs vs Σ q": np.abs(kept_z).max(), "z* (Bonferroni, 0.1 %)": z_star,
                   "head entries: mean own count / t": (own[head] / T).mean(),
                   "head entries: mean kept pairs / t": (realised_kept[head] / T).mean()})
{"(entry, pair) rows, both matchers": len(official_rows), **pd.DataFrame(checks).round(3).to_dict("list")}

# %% [markdown]
# The entry-count histogram before and after balancing: the pairs each head entry's own draw selects are cut to
# about $t$; the pairs kept that match it sit above $t$, by the pairs kept through another of their entries (most
# toy captions match a colour as well as a class word); the tail is unchanged.

# %%
order = np.argsort(-COUNTS, kind="stable")[: int((COUNTS > 0).sum())]
kept_mask = np.zeros(len(POOL_CAPTIONS), dtype=bool)
kept_mask[KEPT[first]] = True
after = np.bincount(INDEX[:, 0], weights=kept_mask[INDEX[:, 1]], minlength=len(METADATA))
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.plot(COUNTS[order], label="pool: pairs per entry")
ax.plot(after[order], label=f"curated (seed {first}): pairs per entry")
own_first = np.bincount(INDEX[curated[first][1], 0], minlength=len(METADATA))
ax.plot(own_first[order], linewidth=1, label=f"curated (seed {first}): pairs selected by the entry's own draw")
ax.plot(np.minimum(COUNTS, T)[order], linestyle="--", color="grey", label="min(count, t)")
ax.set(yscale="log", xlabel="metadata entries, by pool count", ylabel="pairs", title=f"Balancing at t = {T}")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Training: curated against raw, at equal seen pairs
#
# Two tiny CLIPs per seed, from the same random initialisation, with the same recipe (the library's loop with
# open_clip's `ClipLoss`; steps, batch, learning rate and warm-up alike), differing only in the pairs they may
# draw: the curated subset of that seed's balancing draw, or the whole raw pool. Both see `steps × batch_size`
# pairs, as the paper compares data at a fixed 12.8B seen pairs.
#
# **Reduced scale (a deviation, the same for both arms).** Training two image towers from pixels per seed does
# not fit the CPU budget: 120 steps of 64 pairs left the raw-pool model under 2 points above chance on the suite.
# So the image side is *locked* (LiT, Zhai et al. 2022): the library's tiny self-supervised ViT
# (`clipbook.models.tiny_ssl`, DINO on the toy world's images, never shown a caption), frozen, with a linear
# projection trained from scratch; the text tower (the tiny CLIP's transformer) is trained from scratch. The data
# effect MetaCLIP claims — which concepts the captions teach, how often — acts on the text side and the alignment,
# which both train here. The pool is the first `pool_size` pairs of the pretraining split (its order is random),
# the learning rate the tiny CLIP's own pretraining rate (`tiny_clip.PRETRAIN`), warm-up a tenth of the steps.

# %%
register_tiny_configs()  # the tiny architecture (and its 32-token tokenizer) known to open_clip
# the frozen tower trains nothing outside the offline runs (a cold cache would pretrain it for a rehearsal)
SSL = load_ssl_encoder(device="cpu", show_progress=False) if TRAIN_HERE else None


def pool_features() -> torch.Tensor:
    """The frozen tower's unit CLS features of the pool's images, as its eval transform sees them; cached."""
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def encode() -> torch.Tensor:
        chunks = []
        with torch.no_grad():
            for start in range(0, len(POOL_SCENES), 500):
                images = world.render_batch(POOL_SCENES[start:start + 500], world.IMAGE_SIZE)[0]
                pixels = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255 - mean) / std
                chunks.append(SSL.model.encode_image(pixels))
        return torch.cat(chunks)

    spec = {"model": SSL.identity, "pool": toy_splits.fingerprint(PRETRAIN["split"]), "pairs": len(POOL_SCENES)}
    return F.normalize(cache.cached("features", spec, encode, name="metaclip-pool"), dim=-1)


def scratch_model(seed: int):
    """The tiny CLIP from random init, its image tower replaced by a linear projection of the frozen features."""
    torch.manual_seed(seed)
    with quiet_open_clip():  # open_clip warns that the model has no pretrained weights: that is the point
        model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None)
    model.visual = torch.nn.Linear(SSL_DIM, TINY_CLIP_CONFIG["embed_dim"])
    return model


def train_arm(arm: str, seed: int):
    """arm "MetaCLIP curated" draws from the balanced subset, "raw pool" from every pair; all else equal."""
    indices = KEPT[seed] if arm == "MetaCLIP curated" else None
    recipe = {"steps": steps, "batch_size": batch_size, "lr": learning_rate, "warmup_steps": max(1, steps // 10),
              "seed": seed}
    data_key = {"pool": toy_splits.fingerprint(PRETRAIN["split"]), "pairs": len(POOL_SCENES),
                "image_features": SSL.identity, "captions": captions_key(POOL_CAPTIONS),
                "indices": None if indices is None else hashlib.sha256(np.asarray(indices).tobytes()).hexdigest()[:16]}
    tokenizer = open_clip.get_tokenizer(TINY_CLIP_NAME)
    return trained_clip("metaclip-lit", lambda: scratch_model(seed), data_key,
                        lambda model: train_clip(model, POOL_FEATURES, POOL_CAPTIONS, tokenizer, recipe,
                                                 indices=indices, desc=f"{arm}, seed {seed}"),
                        recipe=recipe, plugins={}, start={"scratch": TINY_CLIP_NAME, "init_seed": seed,
                                                          "image_tower": "linear on frozen tiny SSL"})


ARMS = ["raw pool", "MetaCLIP curated"]
if TRAIN_HERE:
    POOL_FEATURES = pool_features()
    SSL_DIM = POOL_FEATURES.shape[1]
runs = {(arm, seed): train_arm(arm, seed) for arm in ARMS for seed in seeds} if TRAIN_HERE else {}
losses = pd.DataFrame([{"data": arm, "seed": seed, "seen pairs": log["seen_pairs"],
                        "loss, first 10 steps": np.mean(log["loss"][:10]), "loss, last 10 steps": np.mean(log["loss"][-10:])}
                       for (arm, seed), (_, log) in runs.items()])
losses.round(3)

# %% [markdown]
# ## The experiment
#
# Zero-shot classification with each dataset's prompt template, on all classes (`accuracy`) and on the images of
# each family's *tail* classes (`tail-class accuracy`, still classified among all classes): the classes drawn
# less often than the family's median class in the pool, where balancing should help most. Offline, a test image's
# embedding is the trained projection of its frozen features. Paper profile: the released checkpoints on the real
# datasets (ImageNet), all classes.

# %%
family_counts = pd.Series([scene.classname for scene in POOL_SCENES]).value_counts()


def tail_classes(classnames: list[str]) -> list[int]:
    counts = np.array([family_counts.get(name, 0) for name in classnames])
    return [k for k, count in enumerate(counts) if count < np.median(counts)]


def trained_rows(model, method: str, seed: int) -> list[dict]:
    text_side = LoadedModel(model, SSL.preprocess, open_clip.get_tokenizer(TINY_CLIP_NAME), MODEL_LABEL, None)
    out = []
    for name in datasets:
        task = ClassificationTask(SSL, name)  # the frozen tower's cached test features
        x, labels = task.features("test")
        with torch.no_grad():
            logits = zeroshot.zero_shot_logits(model.encode_image(x),
                                               zeroshot.zero_shot_classifier(text_side, task.classnames, task.templates))
        tail = torch.isin(labels, torch.tensor(tail_classes(task.classnames)))
        base = {"model": MODEL_LABEL, "dataset": name, "method": method, "seed": seed}
        out += [{**base, "metric": "accuracy", "value": task.accuracy(logits, labels)},
                {**base, "metric": "tail-class accuracy", "value": task.accuracy(logits[tail], labels[tail])},
                {**base, "metric": "chance", "value": 100.0 / task.num_classes}]
    return out


def released_rows(name: str, tag: str) -> list[dict]:
    method = "MetaCLIP 400M" if tag.startswith("metaclip") else "OpenAI CLIP" if tag == "openai" else tag
    loaded = load_model(name, tag, device=session.device)
    return [{"model": name, "dataset": dataset, "method": method, "metric": "accuracy",
             "value": ClassificationTask(loaded, dataset).zero_shot_accuracy()} for dataset in datasets]


MODEL_LABEL = f"{TINY_CLIP_NAME} text tower + frozen tiny SSL (from scratch)"
if TRAIN_HERE:
    rows = [row for (arm, seed), (model, _) in runs.items() for row in trained_rows(model, arm, seed)]
else:
    rows = [row for name, tag in models for row in released_rows(name, tag)]
rows = pd.DataFrame(rows)
summarise(rows[rows["metric"] != "chance"]).round(2)

# %% [markdown]
# Curated minus raw, per dataset (mean over seeds).

# %%
if TRAIN_HERE:
    paired = rows.pivot_table(index=["dataset", "metric", "seed"], columns="method", values="value")
    difference = (paired["MetaCLIP curated"] - paired["raw pool"]).groupby(["dataset", "metric"]).mean()
    display_frame = difference.unstack("metric").drop(columns="chance")
    chance = rows[rows["metric"] == "chance"].groupby("dataset")["value"].first()
    raw_accuracy = rows[(rows["method"] == "raw pool") & (rows["metric"] == "accuracy")].groupby("dataset")["value"].mean()
    display_frame = display_frame.assign(**{"raw pool accuracy": raw_accuracy, "chance": chance})
else:
    display_frame = pd.DataFrame()
display_frame.round(2)

# %% [markdown]
# ## What the paper reports
#
# Zero-shot ImageNet-1k top-1 (%), from open_clip's results table (`docs/openclip_results.csv`, one harness for
# both), which matches the MetaCLIP README's 65.5 / 70.8 / 76.2 for the `metaclip_400m` checkpoints. The
# abstract's 68.3 for CLIP ViT-B/16 is open_clip's 68.34.

# %% tags=["reported"]
from clipbook.report.rows import reported_rows

OPENCLIP_RESULTS = "https://github.com/mlfoundations/open_clip/blob/main/docs/openclip_results.csv"
REPORTED = (
    reported_rows([{"model": "ViT-B-32-quickgelu", "value": 65.58}, {"model": "ViT-B-16-quickgelu", "value": 70.80},
                   {"model": "ViT-L-14-quickgelu", "value": 76.20}],
                  source="open_clip docs/openclip_results.csv (metaclip_400m rows, ImageNet 1k)", url=OPENCLIP_RESULTS,
                  method="MetaCLIP 400M", dataset="imagenet", metric="accuracy")
    + reported_rows([{"model": "ViT-B-32-quickgelu", "value": 63.32}, {"model": "ViT-B-16-quickgelu", "value": 68.34},
                     {"model": "ViT-L-14-quickgelu", "value": 75.54}],
                    source="open_clip docs/openclip_results.csv (openai rows, ImageNet 1k)", url=OPENCLIP_RESULTS,
                    method="OpenAI CLIP", dataset="imagenet", metric="accuracy"))

# %% [markdown]
# ## Claims
#
# Offline, the paper's claim that curated data beats the raw data at equal seen pairs, over the toy suite (mean
# over datasets, then a Student-t interval over seeds), and the mechanism the paper gives for it, on the tail
# classes. The paper's Table (raw pool vs curated) is not used as an effect size here: its raw pool differs from
# the toy pool in kind. Paper profile: MetaCLIP 400M beats OpenAI's CLIP on ImageNet for every architecture
# (README: +2.5 points on ViT-B/16). Preconditions: both arms' losses fell in every seed, the raw-pool baseline
# reaches at least twice chance's accuracy on the suite in its worst seed (a model that has barely learned cannot
# show a data effect: differences between two such models are noise around chance), and the two arms saw the same
# number of pairs. (The bar was 2 points above chance when the notebook was first run; the lead's review raised
# it to the 2x-chance bar cloob's notebook uses for the same question, after seeing this baseline at 1.5x chance.
# The change can only turn verdicts into *not tested*.)

# %% tags=["claims"]
from clipbook.claims import Claim, at_least, fact

OFFLINE = ("loss-fell", "baseline-learned", "equal-seen-pairs")
CLAIMS = [
    Claim("curated-beats-raw", "Training on the MetaCLIP-curated subset beats training on the raw pool at the same "
          "number of seen pairs (zero-shot, mean over the suite)",
          method="MetaCLIP curated", baseline="raw pool", metric="accuracy", margin=0.0, requires=OFFLINE),
    Claim("curated-helps-tail", "Balancing helps the tail: curated beats raw on the tail classes' images",
          method="MetaCLIP curated", baseline="raw pool", metric="tail-class accuracy", margin=0.0, requires=OFFLINE),
    Claim("metaclip-beats-openai", "MetaCLIP 400M beats OpenAI CLIP at zero-shot ImageNet, for every architecture",
          method="MetaCLIP 400M", baseline="OpenAI CLIP", metric="accuracy", where={"dataset": "imagenet"},
          per=("model",), margin=0.0, paper_effect=2.5, paper_effect_source="abstract: ViT-B/16 70.8 vs 68.3"),
]

# %%
if TRAIN_HERE:
    drops = [np.mean(log["loss"][:10]) - np.mean(log["loss"][-10:]) for _, log in runs.values()]
    accuracy = rows[rows["metric"] == "accuracy"]
    over_chance = min(accuracy[(accuracy["method"] == "raw pool") & (accuracy["seed"] == seed)]["value"].mean()
                      / chance.mean() for seed in seeds)
    seen = {log["seen_pairs"] for _, log in runs.values()}
    PRECONDITIONS = [
        at_least("loss-fell", "smallest drop of the loss over arms and seeds (first 10 minus last 10 steps)",
                 float(min(drops)), 1e-6),
        at_least("baseline-learned", "raw-pool zero-shot accuracy over chance's, suite mean (worst seed)",
                 float(over_chance), 2.0, "x"),
        fact("equal-seen-pairs", "both arms saw the same number of pairs", len(seen) == 1,
             f"seen pairs per run: {sorted(seen)}"),
    ]
else:
    PRECONDITIONS = [fact(id, "measured only when the tiny CLIPs are trained here (offline)", False,
                          "the paper profile evaluates released checkpoints; the toy training runs offline")
                     for id in OFFLINE]

# %% [markdown]
# The paper-profile claim's rule gives *holds* on the paper's own reported numbers (per architecture, MetaCLIP
# 400M minus OpenAI CLIP, exact effects):

# %%
from clipbook.claims import evaluate_claim

on_reported = evaluate_claim(CLAIMS[2], REPORTED)
assert on_reported["verdict"] == "holds", on_reported
{group["group"]: round(group["effect"], 2) for group in on_reported["groups"]}

# %% [markdown]
# ## Closing note
#
# **Verdicts** are the claims' sentences below, generated from the rows (offline: two seeds, each its own
# balancing draw and its own initialisation, shared by both arms).
#
# **Paper profile** (`notebooks/profiles/paper/metaclip.yaml`, a GPU): zero-shot ImageNet-1k of the released
# `metaclip_400m` ViT-B/32, B/16 and L/14 (quickgelu) against OpenAI's same architectures, beside open_clip's
# results table; ImageNet from `$CLIPBOOK_DATA` in its real layout. The 400M curation itself needs CommonCrawl
# (and the 500k-entry `metadata.json`) and is not rerun; the toy curation and its sanity checks run under every
# profile, and the toy training claims read *not tested* under the paper profile.
#
# **Proxies and reduced scale.** The metadata is the toy world's concept list (155 entries, not 500k), so most
# matched entries are head entries and $t$ is set by the paper's tail share of matches, not by its 20k. The
# training is a reduced, locked-image (LiT) version of CLIP pretraining: a frozen self-supervised tiny ViT, a
# linear projection and the text tower trained from scratch, 100 steps of 128 pairs on a 12,000-pair pool. It
# tests whether the curated data teaches the text side and the alignment better at equal seen pairs, not the
# paper's full-scale pretraining of both towers. How far the frozen tower lets the baseline learn decides whether
# the two training claims can be tested at all: the `baseline-learned` precondition below gives the raw-pool
# model's accuracy as a multiple of chance (a linear probe on the same frozen tower's features reaches little more
# than chance on the toy suite, as cloob's notebook also measured).
#
# **Cost** (2-core machine shared with other sessions; CPU time user+sys): cold (the pool's frozen features and
# the four trainings) about 150 s, warm about 35–45 s; the rehearsal about 30 s through `invoke batch`.

# %%
clipbook.record(session, rows=rows[rows["metric"] != "chance"], claims=CLAIMS, reported=REPORTED,
                preconditions=PRECONDITIONS)
