"""Feature-extraction throughput of the library vs a bare encode_image loop, and batch wall time.

    python benchmarks/bench_features.py                 # features only
    python benchmarks/bench_features.py --batch         # plus the offline batch, cold and warm, per notebook
    python benchmarks/bench_features.py --pretrain      # plus the cold start (the tiny models from scratch)
    python benchmarks/bench_features.py --pretrain --models tiny_clip,tiny_ssl   # issue 10's cold start only
    python benchmarks/bench_features.py --batch --papers long-clip,rs-m-clip   # the batch timing for some papers

Same model (the tiny CLIP), same data (the toy world's test split), same thread count. "bare" is the
floor: `model.encode_image` over tensors already decoded, transformed and stacked in memory; the
library's cold path also renders, transforms, batches and writes the cache; its warm path only
reads the cache. Results are printed as a table and written to benchmarks/results.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]


def time_library_cold_warm(loaded, dataset) -> tuple[float, float]:
    """Seconds for the library's first (encode and store) and second (load) request of the same features."""
    from clipbook import features

    timings = []
    for _ in range(2):
        start = time.perf_counter()
        features.image_features(loaded, dataset)
        timings.append(time.perf_counter() - start)
    return timings[0], timings[1]


def bench_features(split: str = "test") -> dict:
    import torch

    from clipbook.data import registry
    from clipbook.determinism import deterministic_torch
    from clipbook.models.loader import load_model

    loaded = load_model("clipbook-tiny-rn")
    dataset = registry.load_dataset("toy", split)
    n = len(dataset)

    pixels = torch.stack([loaded.preprocess(dataset[i][0]) for i in range(n)])
    with deterministic_torch(), torch.no_grad():
        start = time.perf_counter()
        for i in range(0, n, 256):
            loaded.model.encode_image(pixels[i:i + 256])
        bare = time.perf_counter() - start

    # an empty feature cache, so the first request really encodes; patch.dict restores the user's cache
    # (and its tiny CLIP) for the batch benchmark that follows
    with tempfile.TemporaryDirectory() as cache, mock.patch.dict(os.environ, {"CLIPBOOK_CACHE": cache}):
        cold, warm = time_library_cold_warm(loaded, dataset)
    return {"images": n, "bare_encode_image_per_s": n / bare, "library_cold_per_s": n / cold,
            "library_warm_per_s": n / warm, "cold_over_bare": bare / cold}


PRETRAINED_MODELS = {  # label -> (module, the function that builds its checkpoint on first use)
    "tiny_clip": ("clipbook.models.tiny_clip", "tiny_clip_checkpoint"),
    "tiny_ssl": ("clipbook.models.tiny_ssl", "tiny_ssl_checkpoint"),
    "tiny_supervised": ("clipbook.models.tiny_supervised", "tiny_supervised_checkpoint"),
    "tiny_clip_vit": ("clipbook.models.tiny_clip", "tiny_clip_vit_checkpoint"),
}


def bench_pretraining(models: list[str] | None = None) -> dict:
    """Cold start: the tiny CLIP, the tiny self-supervised ViT, the tiny supervised classifier and the ViT-tower tiny
    CLIP (or only `models`) trained from scratch in an empty cache, each in a fresh process (as a first
    `invoke batch` does)."""
    models = models or list(PRETRAINED_MODELS)
    unknown = sorted(set(models) - set(PRETRAINED_MODELS))
    if unknown:
        raise SystemExit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(PRETRAINED_MODELS)}")
    timings = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "CLIPBOOK_CACHE": cache}
        for label in models:
            module, build = PRETRAINED_MODELS[label]
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", f"import {module} as m; m.{build}(show_progress=False)"],
                           cwd=ROOT, env=env, check=True)
            timings[f"pretrain_{label}_s"] = time.perf_counter() - start
    # the issue-10 cold start is the tiny CLIP and SSL ViT; the supervised and ViT CLIPs serve some notebooks only
    if {"tiny_clip", "tiny_ssl"} <= set(models):
        timings["cold_start_s"] = timings["pretrain_tiny_clip_s"] + timings["pretrain_tiny_ssl_s"]
    timings["cold_start_all_s"] = sum(value for name, value in timings.items() if name.startswith("pretrain_"))
    return timings


WARM_NOTEBOOK_BUDGET_S = 45  # the developers' guide: a notebook takes at most 45 s with a warm cache on 2 cores


def bench_batch(papers: str | None = None) -> dict:
    """Wall time of `invoke batch --force` with an empty cache but the library's pretrained tiny models (so cold
    includes every model a notebook trains itself, `trained-*`), then warm; and each notebook's warm runtime (its
    record's `runtime_s`) against the 45 s budget."""
    env = {**os.environ}
    timings = {}
    with tempfile.TemporaryDirectory() as features_only:
        cache_root = Path(env.get("CLIPBOOK_CACHE", Path.home() / ".cache" / "clipbook"))
        # the library's pretraining (README's first use): the tiny CLIP, SSL ViT and supervised classifier, and the
        # tiny LM, which keeps its checkpoints in a folder of its own
        for folder, pattern in (("checkpoints", "clipbook-tiny-*.pt"), ("tiny-lm", "*.pt")):
            kept = Path(features_only) / folder
            kept.mkdir()
            for pretrained in (cache_root / folder).glob(pattern):
                os.symlink(pretrained, kept / pretrained.name)
        env["CLIPBOOK_CACHE"] = features_only
        command = [sys.executable, "-m", "invoke", "batch", "--force"] + (["--papers", papers] if papers else [])
        for label in ("cold", "warm"):
            start = time.perf_counter()
            subprocess.run(command, cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
            timings[f"batch_{label}_s"] = time.perf_counter() - start
            records = json.loads((ROOT / "reports" / "offline" / "results.json").read_text())["papers"]
            timings.update({f"notebook_{label}_{slug}_s": record["runtime_s"] for slug, record in records.items()
                            if not papers or slug in papers.split(",")})
    timings["warm_notebooks_over_budget"] = sum(
        value > WARM_NOTEBOOK_BUDGET_S for name, value in timings.items() if name.startswith("notebook_warm_"))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", action="store_true", help="also time the offline batch (minutes)")
    parser.add_argument("--pretrain", action="store_true",
                        help="also time the cold start: the tiny models trained from scratch (minutes)")
    parser.add_argument("--papers", help="with --batch: only these notebooks (comma-separated slugs)")
    parser.add_argument("--models",
                        help=f"with --pretrain: only these (comma-separated: {', '.join(PRETRAINED_MODELS)})")
    parser.add_argument("--output", default=str(ROOT / "benchmarks" / "results.json"), help="where to write the JSON")
    args = parser.parse_args()
    os.environ.setdefault("CLIPBOOK_PROGRESS", "0")
    results = bench_features()
    if args.batch:
        results.update(bench_batch(args.papers))
    if args.pretrain:
        results.update(bench_pretraining(args.models.split(",") if args.models else None))
    for name, value in results.items():
        print(f"{name:<28} {value:12.1f}")
    Path(args.output).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
