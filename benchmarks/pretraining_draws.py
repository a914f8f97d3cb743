"""How much the tiny CLIP's baselines move between pretraining draws: the instrument's own noise.

    python benchmarks/pretraining_draws.py --seeds 0,1,2                       # the library's recipe
    python benchmarks/pretraining_draws.py --seeds 0,1,2 --recipe '{"lr": 1e-3, "warmup_steps": 90}'
    python benchmarks/pretraining_draws.py --seeds 1,2 --threads 1 &           # two draws at once on 2 cores
    python benchmarks/pretraining_draws.py --seeds 0 --threads 1 &

A draw is the tiny CLIP pretrained under `tiny_clip.PRETRAIN` (overridden by --recipe) with another recipe seed:
another initialisation, caption sample and data order. Each draw is evaluated on baselines only, the measurements
the toy suite is calibrated on (issue 10): zero-shot and the CoOp linear probe at 1 and 16 shots, 3 probe seeds, on
the 8 suite datasets. No method under test is run, so no method can steer the recipe chosen with it.

Draws are trained in a cache of their own (default a `pretraining-draws` folder beside the library's cache): a
checkpoint trained with another thread count has other bits, and must not land under the key the library's
2-thread build uses. One JSON per draw is written to benchmarks/results/pretraining-draws/<variant>-<seed>.json,
and a summary table (min-max and spread per measure) is printed over every draw of the variant found there.
`pretrain_s` is the time to obtain the checkpoint: near zero where the draw was already in the draws' cache.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "pretraining-draws"
SUITE_DATASETS = ["toy", "toy-pets", "toy-aircraft", "toy-flowers", "toy-food", "toy-textures", "toy-satellite",
                  "toy-scenes"]
SUMMARY_MEASURES = ("final_loss", "zs_mean", "p1_mean", "p16_mean", "zs_toy", "p16_toy")


def mean_by_dataset(rows: list[dict], method: str, shots: int | None = None) -> dict[str, float]:
    import numpy as np

    values: dict[str, list[float]] = {}
    for row in rows:
        if row["method"] == method and (shots is None or row.get("shots") == shots):
            values.setdefault(row["dataset"], []).append(row["value"])
    return {dataset: float(np.mean(v)) for dataset, v in values.items()}


def measure_draw(recipe: dict, seed: int) -> dict:
    """Pretrain one draw (or load it from the draws' cache) and evaluate its baselines."""
    import numpy as np
    import torch

    from clipbook import baselines
    from clipbook.cache import load_torch
    from clipbook.models import tiny_clip
    from clipbook.models.loader import load_model

    tiny_clip.PRETRAIN_RECIPES[tiny_clip.TINY_CLIP_NAME].update({**recipe, "seed": seed})
    start = time.perf_counter()
    checkpoint = tiny_clip.tiny_clip_checkpoint(show_progress=False)
    pretrain_s = time.perf_counter() - start
    loss = load_torch(checkpoint)["loss"]
    rows = baselines.baseline_curves(load_model(tiny_clip.TINY_CLIP_NAME), SUITE_DATASETS, shots=(1, 16),
                                     seeds=(1, 2, 3))
    zero_shot = mean_by_dataset(rows, "zero-shot CLIP")
    probe_1, probe_16 = mean_by_dataset(rows, "linear probe", 1), mean_by_dataset(rows, "linear probe", 16)
    return {"recipe": tiny_clip.full_recipe(), "seed": seed, "threads": torch.get_num_threads(),
            "pretrain_s": pretrain_s, "steps": len(loss), "final_loss": float(np.mean(loss[-50:])),
            "zero_shot": zero_shot, "p1": probe_1, "p16": probe_16,
            "zs_mean": float(np.mean(list(zero_shot.values()))), "p1_mean": float(np.mean(list(probe_1.values()))),
            "p16_mean": float(np.mean(list(probe_16.values()))),
            "zs_toy": zero_shot["toy"], "p16_toy": probe_16["toy"]}


def summary(variant: str) -> str:
    draws = [json.loads(path.read_text()) for path in sorted(RESULTS.glob(f"{variant}-*.json"))]
    lines = [f"{variant}: {len(draws)} draws (seeds {', '.join(str(d['seed']) for d in draws)})"]
    for measure in SUMMARY_MEASURES:
        values = [d[measure] for d in draws if measure in d]
        if values:
            lines.append(f"  {measure:<11} {min(values):7.2f} - {max(values):7.2f}   spread {max(values) - min(values):6.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2", help="pretraining seeds (draws), comma-separated")
    parser.add_argument("--recipe", default="{}", help="JSON overrides of tiny_clip.PRETRAIN")
    parser.add_argument("--variant", default=None,
                        help="name of the recipe variant in the results (default: from its epochs, lr and batch size)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: the library's)")
    parser.add_argument("--cache", default=None, help="the draws' cache (default: beside the library's)")
    args = parser.parse_args()
    os.environ.setdefault("CLIPBOOK_PROGRESS", "0")
    if args.threads is not None:  # read by clipbook.determinism at import
        os.environ["CLIPBOOK_THREADS"] = str(args.threads)
    from clipbook.cache import cache_root

    os.environ["CLIPBOOK_CACHE"] = args.cache or str(cache_root().parent / "pretraining-draws")
    from clipbook.models import tiny_clip

    recipe = json.loads(args.recipe)
    full = tiny_clip.full_recipe(recipe)
    from clipbook.toyworld import world

    # a draw measures the recipe on one version of the world; the world-3 draws predate the prefix
    variant = args.variant or (f"world{world.WORLD_VERSION}-epochs{full['epochs']}-lr{full['lr']:g}"
                               f"-bs{full['batch_size']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    for seed in (int(s) for s in args.seeds.split(",")):
        result = {"variant": variant, "world_version": world.WORLD_VERSION, **measure_draw(recipe, seed)}
        (RESULTS / f"{variant}-{seed}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(summary(variant))


if __name__ == "__main__":
    main()
