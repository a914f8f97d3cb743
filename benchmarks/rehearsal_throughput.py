"""The rehearsal on whatever device is here, with each notebook's real-architecture throughput (issue 11, item 5).

    python benchmarks/rehearsal_throughput.py                          # every rehearsed notebook
    python benchmarks/rehearsal_throughput.py --papers gda,coop        # a few
    python benchmarks/rehearsal_throughput.py --papers gda --no-batch  # architectures only, no notebook run

Per notebook, with the rehearsal profile's parameters (paper YAML + rehearsal caps, `clipbook.batch.profiles.plan`):

1. its rehearsal, as `invoke batch --profile rehearsal --papers <slug>` runs it (cold cache by default, a fresh
   `$CLIPBOOK_CACHE` per run), on the device the session picks (CUDA when visible): status and wall seconds;
2. for every architecture the notebook loads (its `models`, plus NoLA's `ssl_encoder`), at the rehearsal's random
   init and the tag's input size: feature extraction in images/s (`encode_image` under no_grad, on a batch of
   random input tensors, so decoding is not counted), and training steps/s of the two kinds of step the notebooks
   take — backpropagation through the image tower (clip-svd's singular values, the adapters' fine-tuning) and
   through the text tower over one batch of prompts (CoOp's and NoLA's prompt learning).

Results go to `benchmarks/results/rehearsal-<device>-torch<version>.json` (the device and versions in the name
and the content, timm's convention); a rerun on the same device replaces the notebooks it measured and keeps the
others. Weights are random, so only timings and status mean anything.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"


def device_and_name() -> tuple[str, str]:
    import torch

    from clipbook.report.provenance import device_name

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return device, device_name(device)


def architectures(parameters: dict) -> list[tuple[str, str | None]]:
    """(architecture, tag) pairs a notebook's rehearsal loads; the SSL encoder as (name, None)."""
    pairs = [tuple(entry) if isinstance(entry, list) else (entry, None) for entry in parameters.get("models", [])]
    if parameters.get("ssl_encoder"):
        pairs.append((parameters["ssl_encoder"], None))
    return pairs


def _rate(step, count_per_step: int, seconds: float, min_steps: int = 2) -> dict:
    """Run `step` once as warm-up, then for `seconds` (at least `min_steps` times): per-second rate."""
    import torch

    step()
    synchronize = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    synchronize()
    start, steps = time.perf_counter(), 0
    while steps < min_steps or time.perf_counter() - start < seconds:
        step()
        steps += 1
    synchronize()
    elapsed = time.perf_counter() - start
    return {"per_s": count_per_step * steps / elapsed, "steps": steps, "seconds": round(elapsed, 3)}


def measure_clip(name: str, tag: str | None, device: str, batch: int, prompts: int, seconds: float) -> dict:
    import torch

    from clipbook.models.loader import load_model

    start = time.perf_counter()
    loaded = load_model(name, tag, device=device)
    built = time.perf_counter() - start
    model = loaded.model
    size = model.visual.image_size
    size = size if isinstance(size, int) else size[0]
    images = torch.randn(batch, 3, size, size, device=device)
    tokens = loaded.tokenizer([f"a photo of a class-{i} name." for i in range(prompts)]).to(device)

    def extract():
        with torch.no_grad():
            model.encode_image(images)

    def image_step():
        model.zero_grad(set_to_none=True)
        model.encode_image(images).float().pow(2).mean().backward()

    def text_step():
        model.zero_grad(set_to_none=True)
        model.encode_text(tokens).float().pow(2).mean().backward()

    model.eval()
    out = {"architecture": name, "tag": tag, "input_px": size, "build_s": round(built, 2), "batch": batch,
           "prompts": prompts,
           "feature_extraction_images_per_s": _rate(extract, batch, seconds)["per_s"]}
    model.train()
    out["image_tower_train_steps_per_s"] = _rate(image_step, 1, seconds)["per_s"]
    out["text_tower_train_steps_per_s"] = _rate(text_step, 1, seconds)["per_s"]
    model.zero_grad(set_to_none=True)
    return out


def measure_ssl(name: str, device: str, batch: int, seconds: float) -> dict:
    import torch

    from clipbook.models import tiny_ssl

    start = time.perf_counter()
    encoder = tiny_ssl.load_ssl_encoder(name, device=device)
    built = time.perf_counter() - start
    module = getattr(encoder, "model", encoder)
    size = getattr(encoder, "image_size", 224)
    images = torch.randn(batch, 3, size, size, device=device)

    def extract():
        with torch.no_grad():
            module(images)

    return {"architecture": name, "tag": None, "input_px": size, "build_s": round(built, 2), "batch": batch,
            "feature_extraction_images_per_s": _rate(extract, batch, seconds)["per_s"]}


def run_rehearsal(slug: str, cache: str | None) -> dict:
    """The notebook's rehearsal through the batch runner, in a workbook of its own; wall seconds and status."""
    from clipbook.batch.runner import run_batch

    with tempfile.TemporaryDirectory(prefix=f"rehearsal-{slug}-") as scratch:
        workbook = Path(scratch) / "workbook"
        workbook.mkdir()
        (workbook / "notebooks").symlink_to(ROOT / "notebooks")
        previous = os.environ.get("CLIPBOOK_CACHE")
        os.environ["CLIPBOOK_CACHE"] = cache or str(Path(scratch) / "cache")  # cold unless --cache is given
        try:
            start = time.perf_counter()
            record = run_batch(workbook, profile="rehearsal", papers=[slug], force=True,
                               log=lambda message: print(f"  {message}", file=sys.stderr))["papers"][slug]
            wall = time.perf_counter() - start
        finally:
            if previous is None:
                os.environ.pop("CLIPBOOK_CACHE", None)
            else:
                os.environ["CLIPBOOK_CACHE"] = previous
    return {"status": record["status"], "error": record.get("error"), "wall_s": round(wall, 1),
            "notebook_runtime_s": record.get("runtime_s"),
            "verdicts": sorted({claim["verdict"] for claim in record.get("claims", [])})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--papers", default="", help="comma-separated slugs (default: every rehearsed notebook)")
    parser.add_argument("--no-batch", action="store_true", help="architectures only, no notebook run")
    parser.add_argument("--cache", default=None, help="a $CLIPBOOK_CACHE to reuse (default: a cold one per notebook)")
    parser.add_argument("--batch-size", type=int, default=None, help="images per step (default: 64 on CUDA, 4 on CPU)")
    parser.add_argument("--prompts", type=int, default=None, help="prompts per text step (default: 256 on CUDA, 16 on CPU)")
    parser.add_argument("--seconds", type=float, default=None, help="time per measurement (default: 5 on CUDA, 2 on CPU)")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT / "lib"))
    import torch

    import open_clip

    from clipbook.batch.profiles import plan
    from clipbook.session import PROFILE_ENV

    device, name = device_and_name()
    on_gpu = device == "cuda"
    batch = args.batch_size or (64 if on_gpu else 4)
    prompts = args.prompts or (256 if on_gpu else 16)
    seconds = args.seconds or (5.0 if on_gpu else 2.0)
    papers = [p for p in args.papers.split(",") if p] or None
    parameters = plan(ROOT, "rehearsal", papers)

    slug_device = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = RESULTS_DIR / f"rehearsal-{slug_device}-torch{torch.__version__.split('+')[0]}.json"
    results = json.loads(out.read_text()) if out.exists() else {"notebooks": {}}
    results.update({"device": name, "torch": torch.__version__, "open_clip": open_clip.__version__,
                    "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
                    "settings": {"batch": batch, "prompts": prompts, "seconds": seconds}})
    for slug, params in parameters.items():
        print(f"[{slug}]", file=sys.stderr)
        entry = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "load_average": list(os.getloadavg())}
        if not args.no_batch:
            entry["rehearsal"] = run_rehearsal(slug, args.cache)
            print(f"  rehearsal {entry['rehearsal']['status']} in {entry['rehearsal']['wall_s']} s", file=sys.stderr)
        os.environ[PROFILE_ENV] = "rehearsal"  # the loader's random init, as in the notebook's session
        entry["architectures"] = []
        for arch, tag in architectures(params):
            if tag is None and not arch.startswith(("RN", "ViT", "convnext", "EVA")):
                entry["architectures"].append(measure_ssl(arch, device, batch, seconds))
            else:
                entry["architectures"].append(measure_clip(arch, tag, device, batch, prompts, seconds))
            print(f"  {json.dumps(entry['architectures'][-1])}", file=sys.stderr)
        entry["load_average_end"] = list(os.getloadavg())
        results["notebooks"][slug] = entry
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")  # after each notebook: partial runs count
    print(out)


if __name__ == "__main__":
    main()
