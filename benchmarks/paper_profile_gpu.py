"""The paper profile's real architectures on a GPU, with random weights on data shaped like the real one.

    python benchmarks/paper_profile_gpu.py --out results_dir

No checkpoint or dataset can be downloaded where this runs, so it (1) writes a EuroSAT-shaped dataset
in the CoOp layout (10 classes of 64x64 RGB images, split_zhou_EuroSAT.json) whose classes differ in
colour and texture, (2) times feature extraction of RN50 and ViT-B/16 (open_clip, random init) on the
GPU: a bare `encode_image` loop on pre-loaded tensors vs the library cold and warm, and (3) runs the
GDA notebook's code under the paper profile on that data, through the same loaders, preflight, cache
and record as a real run. Accuracies are meaningless (random weights); timings and the code path are
the point.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
           "PermanentCrop", "Residential", "River", "SeaLake"]
ARCHITECTURES = ["RN50-quickgelu", "ViT-B-16-quickgelu"]


def write_fake_eurosat(root: Path, per_class: dict[str, int]) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    image_dir = root / "eurosat" / "2750"
    split = {name: [] for name in per_class}
    for label, cls in enumerate(CLASSES):
        (image_dir / cls).mkdir(parents=True, exist_ok=True)
        base = rng.uniform(40, 215, size=3)
        index = 0
        for split_name, count in per_class.items():
            for _ in range(count):
                index += 1
                stripes = np.sin(np.arange(64) / (2 + label))[None, :, None] * 25
                pixels = np.clip(base + stripes + rng.normal(0, 20, size=(64, 64, 3)), 0, 255).astype(np.uint8)
                relative = f"{cls}/{cls}_{index}.jpg"
                Image.fromarray(pixels).save(image_dir / relative, quality=95)
                split[split_name].append([relative, label, cls])
    (root / "eurosat" / "split_zhou_EuroSAT.json").write_text(json.dumps(split))


def time_features(device: str) -> dict:
    import torch

    from bench_features import time_library_cold_warm
    from clipbook.data import registry
    from clipbook.models.loader import load_model

    dataset = registry.load_dataset("eurosat", "test")
    out = {}
    for name in ARCHITECTURES:
        loaded = load_model(name, None, device=device)
        pixels = torch.stack([loaded.preprocess(dataset[i][0]) for i in range(len(dataset))]).to(device)
        with torch.no_grad():
            loaded.model.encode_image(pixels[:64])  # warm-up: cuDNN autotune, allocator
            torch.cuda.synchronize()
            start = time.perf_counter()
            for i in range(0, len(pixels), 256):
                loaded.model.encode_image(pixels[i:i + 256])
            torch.cuda.synchronize()
            bare = time.perf_counter() - start
        cold, warm = time_library_cold_warm(loaded, dataset)
        out[name] = {"images": len(dataset), "bare_per_s": len(dataset) / bare, "library_cold_per_s": len(dataset) / cold,
                     "library_warm_per_s": len(dataset) / warm}
    return out


def run_notebook_script(parameters: dict) -> dict:
    """Execute notebooks/gda.py (the paired script) with papermill-style injected parameters."""
    import matplotlib

    matplotlib.use("Agg")
    source = (ROOT / "notebooks" / "gda.py").read_text()
    injected = "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    # papermill inserts the overrides right after the cell tagged `parameters`
    source = re.sub(r'(# %% tags=\["parameters"\]\n(?:.+\n)+?)\n', lambda m: m.group(1) + injected + "\n\n", source,
                    count=1)
    records = []
    import clipbook.report.record as record_module

    original = record_module.record
    record_module.record = lambda **kw: records.append(original(**kw)) or records[-1]
    start = time.perf_counter()
    exec(compile(source, "gda.py", "exec"), {"__name__": "__main__"})
    return {"runtime_s": time.perf_counter() - start, "record": records[-1] if records else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "gpu")
    args = parser.parse_args()
    import torch

    if not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible: this benchmark is for a GPU machine")
    torch.manual_seed(0)  # the random-init weights, so reruns measure the same models
    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data"
    write_fake_eurosat(data, {"train": 40, "val": 10, "test": 200})
    os.environ.update({"CLIPBOOK_DATA": str(data), "CLIPBOOK_CACHE": str(args.out / "cache"),
                       "CLIPBOOK_PROGRESS": "0", "HF_HUB_OFFLINE": "1"})
    results = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
               "features": time_features("cuda")}
    results["gda_paper_profile"] = run_notebook_script({
        "profile": "paper", "models": [[name, None] for name in ARCHITECTURES], "datasets": ["eurosat"],
        "ablate_augmentation": False})
    print(json.dumps(results, indent=2))
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
