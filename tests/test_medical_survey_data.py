"""The medical-survey notebook's data: the parser of the survey's list (notebooks/data/medical-survey/derive.py)
and the committed CSV files it writes."""
import importlib.util
import sys
from pathlib import Path

import pytest

DERIVE = Path(__file__).resolve().parents[1] / "notebooks" / "data" / "medical-survey" / "derive.py"


@pytest.fixture(scope="module")
def derive():
    spec = importlib.util.spec_from_file_location("derive_medical_survey_test", DERIVE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


README = """# list

## Dataset Resource

| dataset | domain | image | text | source | language | pre-trained CLIP |
| :-: | :-: | :-: | :-: | :-: | :-: | :-: |
| [ROCO](https://example.org/roco) | multiple | 87K | 87K | research papers | En | PubMedCLIP |
| [Quilt-1M](https://example.org/quilt) | histology | 1M | 1.6M | research papers<br>social media | En | QuiltNet |

## Pre-training

### Fine-grained Contrast

[**MICCAI 2023 workshop**] A Wrapped Title About Chest
X-Rays \\
Some Author, Other Author \\
[[paper](https://example.org/a)] \\[[code](https://github.com/x/y)]

[**arXiv 2024**] Zero-Shot X-ray Pathology Classification \\
_A. Author_ \\
[[paper](https://arxiv.org/abs/1)]

## CLIP-driven Application

### Dense Prediction Task

[**Medical Image Analysis 2024**] Organ Segmentation in Computed Tomography \\
_B. Author_ \\
[[paper](https://example.org/b)]
"""


def test_the_parser_reads_entries_nodes_venues_links_and_the_dataset_table(derive):
    papers, datasets = derive.parse_readme(README, "test", "abc")
    assert [(p.branch, p.node, p.heading) for p in papers] == [
        ("refined pre-training", "multi-scale", "Fine-grained Contrast"),
        ("refined pre-training", "multi-scale", "Fine-grained Contrast"),
        ("CLIP-driven applications", "dense prediction", "Dense Prediction Task")]
    wrapped = papers[0]
    assert wrapped.title == "A Wrapped Title About Chest X-Rays"  # the title's second line, not the authors
    assert (wrapped.venue, wrapped.year, wrapped.workshop, wrapped.preprint) == ("MICCAI workshop", 2023, True, False)
    assert wrapped.has_code and wrapped.paper_url == "https://example.org/a" and wrapped.line == 14
    assert not papers[1].has_code and papers[1].preprint
    # "pathology" of a chest X-ray title is a disease, not histopathology
    assert papers[1].modality == "chest X-ray"
    assert (papers[2].venue, papers[2].modality) == ("MedIA", "CT")
    assert [(d.dataset, d.images, d.texts, d.source) for d in datasets] == [
        ("ROCO", 87_000, 87_000, "research papers"), ("Quilt-1M", 1_000_000, 1_600_000, "research papers; social media")]


@pytest.mark.parametrize("text, message", [
    ("## Pre-training\n\n### Fine-tuning\n", "unknown taxonomy heading 'Fine-tuning'"),
    ("## Updates\n\n[**MICCAI 2023**] A title \\\n", "entry outside the taxonomy"),
    ("## Pre-training\n\n### Others\n\n[**MICCAI**] A title \\\n", "must name exactly one year"),
])
def test_the_parser_refuses_what_it_cannot_place(derive, text, message):
    with pytest.raises(ValueError, match=message):
        derive.parse_readme(text, "test", "abc")


def test_the_committed_csv_files_are_what_the_parser_writes_from_the_vendored_readmes(derive):
    assert derive.main(["--check"]) == 0
    papers, _ = derive.parse_readme(derive.vendored_readme("latest").read_text(encoding="utf-8"), "latest", "x")
    assert len(papers) == 165  # the newest snapshot's `[**VENUE YEAR**]` entries (grep -c '^\[\*\*' README.md)
