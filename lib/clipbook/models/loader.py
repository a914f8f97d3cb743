"""One loader for every model source a user has.

    load_model("clipbook-tiny-rn")                           # the library's tiny CLIP (built on first use)
    load_model("ViT-B-16-quickgelu", "openai")               # an open_clip architecture + pretrained tag
    load_model("hf-hub:timm/vit_base_patch16_clip_224.openai")
    load_model("local-dir:/models/my-clip")                  # open_clip_config.json + weights in a folder
    load_model("RN50-quickgelu", "/ckpt/rn50.pt", preprocess_from="openai")  # a weights file

Each source keeps its tag's preprocessing: a weights file would otherwise silently fall back to
default mean/std/resize (open_clip issue #1068), so `preprocess_from` names the tag to copy it from.
Offline, nothing is downloaded: a checkpoint that is not already on disk raises
MissingCheckpointError saying which file, where it would come from and how to provide it.

Under the rehearsal profile (`clipbook.session.REHEARSAL_PROFILES`) every checkpoint of an open_clip
architecture is that architecture at random initialisation, seeded by its name and tag, with the tag's
preprocessing kept: the paper path runs on the real model shapes without any weights. Unknown
architectures and tags still fail as they would under the paper profile. Architectures defined by Hub files
(a Hugging Face text tower such as XLM-R; an `hf-hub:` fine-tune of a built-in architecture) are built from
`models.hub_standins` (published configs, a labelled stand-in tokenizer), or named as missing.
"""
from __future__ import annotations

import contextlib
import difflib
import hashlib
import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clipbook.cache import CorruptCacheError
from clipbook.models import hub_standins

TINY_TAG = "toyworld"


class UnknownModelError(ValueError):
    pass


class MissingCheckpointError(FileNotFoundError):
    pass


# How a missing architecture (not weights) is named: the rehearsal test recognises these notebooks by it.
ARCHITECTURE_MISSING = "architecture files not found offline"


@dataclass
class LoadedModel:
    model: Any
    preprocess: Callable
    tokenizer: Callable
    name: str
    pretrained: str | None
    # what identifies the weights for feature-cache keys (a tag, a hub id, or a file's sha256)
    identity: dict = field(default_factory=dict)

    def encode_text_prompts(self, prompts: list[str]):
        import torch

        device = next(self.model.parameters()).device
        with torch.no_grad():
            return self.model.encode_text(self.tokenizer(prompts).to(device))


def offline_mode() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def known_architectures() -> list[str]:
    import open_clip

    from clipbook.models.tiny_clip import register_tiny_configs

    register_tiny_configs()
    return open_clip.list_models()


def _check_architecture(name: str) -> None:
    known = known_architectures()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=5)
        raise UnknownModelError(
            f"unknown model architecture {name!r}. "
            + (f"Did you mean: {', '.join(close)}? " if close else "")
            + "See open_clip.list_models(), or use 'hf-hub:<org>/<repo>' or 'local-dir:<path>'."
        )


def _hub_weights_on_disk(repo_id: str, filename: str | None, cache_dir: str | None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
    if filename and filename.endswith(".bin"):
        names.insert(0, filename[:-4] + ".safetensors")
    for candidate in names:
        found = try_to_load_from_cache(repo_id, candidate, cache_dir=cache_dir)
        if isinstance(found, str):
            return found
    return None


def _check_hub_text_tower(name: str, cache_dir: str | None) -> None:
    """Architectures whose text tower is a Hugging Face model (open_clip's `text_cfg.hf_model_name`, e.g. XLM-R) read
    that model's config and tokenizer from the Hub whenever they are built, even at random initialisation: offline
    (and so in the rehearsal) they cannot be built unless those files are in the Hugging Face cache. Raise that now,
    before open_clip retries the Hub for half a minute."""
    import open_clip

    repo = (open_clip.get_model_config(name) or {}).get("text_cfg", {}).get("hf_model_name")
    if repo is None or not (offline_mode() or rehearsing()):
        return
    if rehearsing() and repo in hub_standins.HUB_TEXT_TOWERS:  # built from its published config (hub_standins)
        return
    from huggingface_hub import try_to_load_from_cache

    if not isinstance(try_to_load_from_cache(repo, "config.json", cache_dir=cache_dir), str):
        raise _missing(f"{name}'s text tower, the Hugging Face model {repo!r} (its config.json and tokenizer)",
                       f"https://huggingface.co/{repo}",
                       f"on a machine with network run `huggingface-cli download {repo}` and copy the Hugging Face "
                       "cache here (the architecture cannot be built without it, not even at random initialisation "
                       "for a rehearsal)", problem=ARCHITECTURE_MISSING)


def _missing(what: str, source: str, how: str, problem: str = "checkpoint not found offline") -> MissingCheckpointError:
    return MissingCheckpointError(f"{problem}: {what}.\n  It would come from: {source}\n  To provide it: {how}")


def _hub_instructions(repo_id: str, create_call: str, cache_dir: str | None) -> str:
    return (f"on a machine with network run `python -c \"import open_clip; {create_call}\"`, then copy its HF cache "
            f"folder models--{repo_id.replace('/', '--')} into {cache_dir or '$HF_HOME/hub'} here")


@dataclass
class _WeightsSource:
    description: str  # where the weights would come from
    how: str  # how to provide them by hand
    hub_file: str | None = None  # "org/repo/filename" for hub-hosted tags
    local_file: Path | None = None  # where a URL-hosted tag is expected on disk


def _hub_source(name: str, cache_dir: str | None) -> _WeightsSource:
    """Where an `hf-hub:` model's weights come from and how to provide them by hand."""
    repo_id = name[len("hf-hub:"):]
    how = _hub_instructions(repo_id, f"open_clip.create_model_and_transforms('{name}')", cache_dir) + "."
    return _WeightsSource(f"Hugging Face Hub repo {repo_id!r}", how)


def _tag_source(name: str, tag: str, cache_dir: str | None) -> _WeightsSource:
    """Where a pretrained tag's weights come from and how to provide them by hand."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    hub = cfg.get("hf_hub", "")
    if hub:
        repo_id = os.path.split(hub)[0]
        how = _hub_instructions(repo_id, f"open_clip.create_model('{name}', pretrained='{tag}')", cache_dir)
        return _WeightsSource(f"Hugging Face Hub repo {repo_id!r} (open_clip pretrained tag)",
                              how + "; or pass the weights file path as `pretrained`.", hub_file=hub)
    url = cfg.get("url", "")
    target = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(url)
    return _WeightsSource(url, f"download it to {target}, or pass its path as `pretrained`.", local_file=target)


def _check_tag_available(name: str, tag: str, cache_dir: str | None) -> None:
    """Offline, fail before building anything if the tag's weights are not on disk."""
    _check_tag_known(name, tag)
    source = _tag_source(name, tag, cache_dir)
    if source.hub_file:
        repo_id, filename = os.path.split(source.hub_file)
        if _hub_weights_on_disk(repo_id, filename or None, cache_dir):
            return
    elif source.local_file is not None and source.local_file.exists():
        return
    raise _missing(f"{name} / {tag}", source.description, source.how)


def rehearsing() -> bool:
    """Whether this process's session replaces checkpoints by random weights (the rehearsal profile)."""
    from clipbook.session import REHEARSAL_PROFILES, active_profile

    return active_profile() in REHEARSAL_PROFILES


def _check_tag_known(name: str, tag: str) -> None:
    import open_clip

    if not open_clip.get_pretrained_cfg(name, tag):
        tags = [t for n, t in open_clip.list_pretrained() if n == name]
        raise UnknownModelError(
            f"unknown pretrained tag {tag!r} for {name!r}; known tags: {', '.join(tags) or 'none'} "
            "(or pass a path to a weights file)"
        )


def _preprocess_kwargs(name: str, tag: str) -> dict[str, Any]:
    """The tag's preprocessing as create_model_and_transforms arguments (open_clip issue #1068)."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(name, tag)
    return {"image_mean": cfg.get("mean"), "image_std": cfg.get("std"),
            "image_interpolation": cfg.get("interpolation"), "image_resize_mode": cfg.get("resize_mode")}


def random_init_seed(name: str, pretrained: str | None) -> int:
    """The rehearsal's seed for a checkpoint: fixed by its architecture and tag, so every notebook and run that
    loads the same checkpoint gets the same random weights (and shares cached features)."""
    return int(hashlib.sha256(f"{name}/{pretrained}".encode()).hexdigest()[:8], 16)


def _load_random_init(name: str, pretrained: str | None, *, device: str,
                      preprocess_from: str | None) -> tuple[Any, Callable, dict, Callable | None]:
    """The rehearsal's stand-in for a checkpoint: the same architecture, seeded random weights, the tag's
    preprocessing (`preprocess_from` for a weights file)."""
    import open_clip
    import torch

    from clipbook.models.tiny_clip import quiet_open_clip

    architecture, tag = name, preprocess_from if pretrained is not None and _is_path(pretrained) else pretrained
    if name in hub_standins.HUB_ARCHITECTURES:  # an hf-hub: fine-tune of a built-in architecture
        architecture, tag = (hub_standins.HUB_ARCHITECTURES[name][k] for k in ("architecture", "preprocess_from"))
    elif name.startswith(("hf-hub:", "local-dir:")):
        raise UnknownModelError(f"the rehearsal profile cannot stand in for {name!r}: its architecture is defined by "
                                "files that are not on disk; name an open_clip architecture and tag instead")
    _check_architecture(architecture)
    kwargs = _preprocess_kwargs(architecture, tag) if tag else {}
    tokenizer = None
    text_cfg = (open_clip.get_model_config(architecture) or {}).get("text_cfg", {})
    if text_cfg.get("hf_model_name") in hub_standins.HUB_TEXT_TOWERS:  # the real tower, its stand-in tokenizer
        standin = str(hub_standins.text_tower_standin(text_cfg["hf_model_name"]))
        kwargs["text_cfg"] = {**text_cfg, "hf_model_name": standin, "hf_tokenizer_name": standin,
                              "hf_model_pretrained": False}
        tokenizer = open_clip.tokenizer.HFTokenizer(standin, context_length=text_cfg.get("context_length", 77))
    seed = random_init_seed(name, pretrained)
    with torch.random.fork_rng(devices=[]):  # the notebook's own random stream is left as it was
        torch.manual_seed(seed)
        # open_clip logs "initialized partially" for a Hugging Face tower built without its weights: the point here
        with quiet_open_clip():
            model, _, preprocess = open_clip.create_model_and_transforms(architecture, pretrained=None, device=device,
                                                                         **kwargs)
    identity = {"name": name, "weights": f"random-init(seed {seed}, for {pretrained}):{_state_dict_sha256(model)}"}
    if tokenizer is not None:
        identity["tokenizer"] = hub_standins.STANDIN_LABEL
    return model, preprocess, identity, tokenizer


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()[:20]


def _state_dict_sha256(model) -> str:
    import torch

    digest = hashlib.sha256()
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode())  # raw bytes, so any dtype (bf16 included) hashes exactly
        # the array's own buffer, not a bytes copy of it (ViT-L/14's 1.7 GB would be copied once more)
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()[:20]


def load_model(name: str, pretrained: str | None = None, *, device: str = "cpu", cache_dir: str | None = None,
               preprocess_from: str | None = None) -> LoadedModel:
    """Load a CLIP model with its eval preprocessing and tokenizer (see the module docstring)."""
    import open_clip
    import torch

    from clipbook.models import tiny_clip

    if not isinstance(name, str) or not name:
        raise UnknownModelError(f"model name must be a non-empty string, got {name!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but no CUDA GPU is visible; use device='cpu' "
                           "or run the paper profile on a GPU machine")
    tiny_clip.register_tiny_configs()
    check_available(name, pretrained, cache_dir=cache_dir)  # fails before anything is built
    is_tiny = name in tiny_clip.TINY_CLIP_CONFIGS and pretrained in (None, TINY_TAG)
    # open_clip cannot build a stem from its config: the library builds those models, open_clip gives the transforms
    builds_own_tiny = is_tiny and tiny_clip.TINY_CLIP_STEMS[name] is not None
    if rehearsing() and not is_tiny:
        model, preprocess, identity, tokenizer = _load_random_init(name, pretrained, device=device,
                                                                   preprocess_from=preprocess_from)
        return _loaded(model, preprocess, name, pretrained, identity, tokenizer)
    kwargs: dict[str, Any] = {"device": device, "cache_dir": cache_dir}
    identity: dict[str, Any] = {"name": name}
    download_from: _WeightsSource | None = None  # set for the sources open_clip downloads

    if is_tiny:
        checkpoint = tiny_clip.tiny_clip_checkpoint(name=name)
        identity["weights"] = f"{TINY_TAG}:{Path(checkpoint).stem}"
        pretrained_arg: str | None = None if builds_own_tiny else checkpoint
        pretrained = TINY_TAG
    elif name.startswith("hf-hub:"):
        identity["weights"] = name
        pretrained_arg = None
        download_from = _hub_source(name, cache_dir)
    elif name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:"):]).expanduser()
        weights = [p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin")]
        identity["weights"] = _file_sha256(weights[0]) if weights else "none"
        pretrained_arg = None
    else:
        if pretrained is None:
            pretrained_arg = None  # random init: identified by its weights' hash once built
        elif _is_path(pretrained):
            path = Path(pretrained).expanduser()
            identity["weights"] = _file_sha256(path)
            pretrained_arg = str(path)
            if preprocess_from:  # keep the tag's preprocessing, not open_clip's defaults
                kwargs.update(_preprocess_kwargs(name, preprocess_from))
        else:
            identity["weights"] = pretrained
            pretrained_arg = pretrained
            download_from = _tag_source(name, pretrained, cache_dir)

    try:
        with tiny_clip.quiet_open_clip() if builds_own_tiny else contextlib.nullcontext():
            model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained_arg, **kwargs)
        if builds_own_tiny:
            model = tiny_clip.load_tiny_clip(checkpoint, name).to(device)
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, pickle.UnpicklingError) as err:
        if isinstance(err, FileNotFoundError):
            raise _missing(f"{name} / {pretrained}", "open_clip", str(err)) from err
        if download_from and "download" in str(err).lower():  # online mode, but the hub or URL is unreachable
            raise _missing(f"{name} / {pretrained}", download_from.description, download_from.how,
                           problem=f"checkpoint could not be downloaded ({str(err).splitlines()[0][:200]})") from err
        if pretrained_arg and Path(pretrained_arg).exists():
            raise CorruptCacheError(
                f"cannot load weights file {pretrained_arg} into {name!r}: {type(err).__name__}: "
                f"{str(err).splitlines()[0] if str(err) else ''}. The file is corrupt, truncated or for another "
                "architecture; delete it to rebuild (library checkpoints) or download it again."
            ) from err
        raise
    if name.startswith("hf-hub:"):  # the snapshot revision pins the weights' content
        found = _hub_weights_on_disk(name[len("hf-hub:"):], None, cache_dir)
        identity["weights"] = f"{name}@{Path(found).parent.name}" if found else name
    elif "weights" not in identity:
        identity["weights"] = "random-init:" + _state_dict_sha256(model)
    return _loaded(model, preprocess, name, pretrained, identity)


def _loaded(model, preprocess: Callable, name: str, pretrained: str | None, identity: dict,
            tokenizer: Callable | None = None) -> LoadedModel:
    import open_clip

    from clipbook.report import provenance

    model.eval()
    provenance.note_model(identity)
    return LoadedModel(model=model, preprocess=preprocess, tokenizer=tokenizer or open_clip.get_tokenizer(name), name=name,
                       pretrained=pretrained, identity=identity)


def check_available(name: str, pretrained: str | None = None, *, cache_dir: str | None = None) -> None:
    """Raise now, cheaply, what `load_model` would raise later: unknown model, or (offline) weights
    that are not on disk. Builds nothing; the tiny CLIP counts as available (it is built on use)."""
    from clipbook.models import tiny_clip

    if name in tiny_clip.TINY_CLIP_CONFIGS and pretrained in (None, TINY_TAG):
        return
    if name.startswith("hf-hub:"):
        repo_id = name[len("hf-hub:"):]
        if rehearsing() and name in hub_standins.HUB_ARCHITECTURES:  # built as the architecture it fine-tunes
            _check_architecture(hub_standins.HUB_ARCHITECTURES[name]["architecture"])
            _check_hub_text_tower(hub_standins.HUB_ARCHITECTURES[name]["architecture"], cache_dir)
            return
        if rehearsing():  # the architecture itself lives in the repo: there is nothing to build at random init
            raise _missing(name, f"https://huggingface.co/{repo_id} (its open_clip_config.json)",
                           "the rehearsal cannot stand in for a Hub-defined model; rehearse with the open_clip "
                           "architecture it is built on, or download the repo and pass 'local-dir:<path>'",
                           problem=ARCHITECTURE_MISSING)
        if offline_mode() and not _hub_weights_on_disk(repo_id, None, cache_dir):
            source = _hub_source(name, cache_dir)
            raise _missing(name, source.description, source.how)
        return
    if name.startswith("local-dir:"):
        folder = Path(name[len("local-dir:"):]).expanduser()
        if not (folder / "open_clip_config.json").exists():
            raise _missing(name, f"a local folder {folder}",
                           "put open_clip_config.json and open_clip_model.safetensors (or "
                           "open_clip_pytorch_model.bin) in it, as saved by open_clip's push_to_hf_hub tools.")
        return
    _check_architecture(name)
    _check_hub_text_tower(name, cache_dir)
    if pretrained is None:
        return
    if rehearsing():  # nothing is read from disk; a misspelt tag still fails as it would for real
        if not _is_path(pretrained):
            _check_tag_known(name, pretrained)
        return
    if _is_path(pretrained):
        if not Path(pretrained).expanduser().exists():
            raise _missing(pretrained, "a local weights file", "check the path, or pass an open_clip pretrained tag "
                           f"instead (see open_clip.list_pretrained() for {name!r}).")
    elif offline_mode():
        _check_tag_available(name, pretrained, cache_dir)


def _is_path(pretrained: str) -> bool:
    return (Path(pretrained).expanduser().exists() or os.sep in pretrained
            or pretrained.endswith((".pt", ".bin", ".safetensors")))
