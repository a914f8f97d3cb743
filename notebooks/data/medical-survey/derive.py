"""Derive the medical-survey notebook's data files from the survey's public paper list.

The survey "CLIP in Medical Imaging: A Survey" (Zhao et al., arXiv 2312.07353) keeps its paper list and its
dataset table in the README of github.com/zhaozh10/Awesome-CLIP-in-Medical-Imaging (MIT licence, see
awesome-list/LICENSE). Two snapshots of that README are vendored in awesome-list/:

- `f0e51a7` (2023-12-12): the list on the day the survey's arXiv v1 appeared ("First release: December 12, 2023");
- `822a9e9` (2025-03-26): the newest commit; its entries last changed on 2024-07-29 (commit 1d94d8e), the
  2025 commits only edit the header (journal citation).

This script parses them into three tidy files the notebook reads (it never parses markdown itself):

- `papers.csv`: one row per list entry (`[**VENUE YEAR**] Title \\` ...), with the taxonomy node it is listed
  under, the venue and year as the list states them, whether a code link is given, and the imaging modality
  when the title names one (the list has no modality field for papers; see MODALITY_KEYWORDS);
- `datasets.csv`: the "Dataset Resource" table, sizes parsed to numbers ("1.6M" -> 1600000);
- `snapshots.csv`: the snapshots with their commits and dates.

Usage (from the repository root):

    python notebooks/data/medical-survey/derive.py                  # re-parse the vendored READMEs, write the CSVs
    python notebooks/data/medical-survey/derive.py --check          # exit 1 if the CSVs differ from a re-parse
    python notebooks/data/medical-survey/derive.py --git-dir <clone>/.git   # re-vendor README/LICENSE first

Only facts are taken from the list (venue, year, title, links, table cells); no prose of the survey is copied.
Nothing is corrected: a venue or year that looks wrong is kept as the list states it.
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import subprocess
import sys
from dataclasses import asdict, dataclass, fields
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENDORED = HERE / "awesome-list"
SOURCE_REPO = "https://github.com/zhaozh10/Awesome-CLIP-in-Medical-Imaging"

# name -> (commit, commit date, date the entries last changed, what the snapshot is)
SNAPSHOTS = {
    "survey-v1": ("f0e51a7ddfdf6f21605be89527915618a0e3c670", "2023-12-12", "2023-12-12",
                  "the list on the day of the survey's arXiv v1"),
    "latest": ("822a9e97dfa6b6b4397126917069013daa5bc998", "2025-03-26", "2024-07-29",
               "the newest commit of the list"),
}

# The survey's taxonomy (its Fig. 1 and the README's table of contents): two branches, each with its nodes.
# Headings were renamed between snapshots ("Fine-grained Contrast" became "Multi-scale", "Classification Task"
# became "Classification", ...); every heading seen in a snapshot maps onto one canonical node. An unknown
# heading is an error, so a renamed section cannot silently drop out of the counts.
BRANCHES = {"Pre-training": "refined pre-training", "CLIP-driven Application": "CLIP-driven applications"}
NODES = {
    "Multi-scale": "multi-scale", "Fine-grained Contrast": "multi-scale",
    "Data-efficient": "data-efficient",
    "Knowledge-enhanced": "knowledge-enhanced",
    "Others": "other pre-training",
    "Classification": "classification", "Classification Task": "classification",
    "Dense Prediction": "dense prediction", "Dense Prediction Task": "dense prediction",
    "Cross-modal": "cross-modal", "Cross-modal Task": "cross-modal",
}
# Spellings of one venue in the list, merged for the per-venue counts (venue_raw keeps the list's spelling).
VENUE_ALIASES = {"Medical Image Analysis": "MedIA", "TMI": "IEEE TMI", "Nature Communication": "Nature Communications"}
# The imaging modality a title names, first match per modality (a title may name several). Deliberately narrow:
# "pathology" alone also means "disease" in chest X-ray titles, so it counts as histopathology only in the
# phrases below. A title naming none is "not stated".
MODALITY_KEYWORDS = {
    "chest X-ray": r"chest x-?rays?|\bcxrs?\b|radiograph|\bx-?rays?\b",
    "CT": r"\bct\b|computed tomography|\bcta\b|ct-(?:glip|clip)",
    "MRI": r"\bmri\b|magnetic resonance",
    "histopathology": r"histopatholog|computational pathology|pathology image|histolog|nuclei|pathclip|"
                      r"whole[- ]slide|pathology-and-genomics",
    "retina / fundus": r"retin(?:a|al)\b|fundus|diabetic retinopathy|ophthalm",
    "ultrasound / echo": r"ultrasound|echocardiog",
    "mammography": r"mammog",
    "dermatology": r"\bskin\b|dermat",
    "surgical video": r"surgical|surgery",
    "ECG": r"\becg\b",
}
ENTRY = re.compile(r"^\[\*\*(?P<tag>[^*\]]+)\*\*\]\s*(?P<rest>.*)$")
YEAR = re.compile(r"\b(?:19|20)\d{2}\b")
LINK = re.compile(r"\[(?P<kind>paper|code)\]\((?P<url>[^)]*)\)")


@dataclass(frozen=True)
class Paper:
    snapshot: str
    commit: str
    branch: str
    node: str
    heading: str
    venue_raw: str
    venue: str
    year: int
    workshop: bool
    preprint: bool
    title: str
    modality: str
    has_code: bool
    paper_url: str
    line: int


@dataclass(frozen=True)
class Dataset:
    snapshot: str
    commit: str
    dataset: str
    url: str
    domain: str
    images: float
    texts: float
    images_raw: str
    texts_raw: str
    source: str
    language: str
    pretrained_clip: str


def split_venue(tag: str) -> tuple[str, int, bool]:
    """`MICCAI 2023 workshop` -> ("MICCAI workshop", 2023, True): the venue without its year, the year, and
    whether it is a workshop. Raises ValueError when the tag has no year."""
    years = YEAR.findall(tag)
    if len(years) != 1:
        raise ValueError(f"venue tag {tag!r} must name exactly one year")
    workshop = "workshop" in tag.lower()
    venue = " ".join(YEAR.sub(" ", tag).split())
    venue = re.sub(r"\bworkshop\b", "workshop", venue, flags=re.IGNORECASE)
    base = venue.replace(" workshop", "").strip()
    venue = VENUE_ALIASES.get(base, base) + (" workshop" if workshop else "")
    return venue, int(years[0]), workshop


def modalities(title: str) -> str:
    """The modalities a title names ("; "-joined, in MODALITY_KEYWORDS order), or "not stated"."""
    named = [name for name, pattern in MODALITY_KEYWORDS.items() if re.search(pattern, title, re.IGNORECASE)]
    return "; ".join(named) or "not stated"


def size(cell: str) -> float:
    """A table size as a number: "87K" -> 87000, "1.6M" -> 1600000."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KM]?)\s*", cell)
    if not match:
        raise ValueError(f"cannot read the size {cell!r}")
    return float(match.group(1)) * {"": 1, "K": 1e3, "M": 1e6}[match.group(2)]


def _clean(text: str) -> str:
    text = text.replace("\\", " ").replace("<br>", "; ")
    return " ".join(text.split())


def parse_readme(text: str, snapshot: str, commit: str) -> tuple[list[Paper], list[Dataset]]:
    """Every paper entry and dataset-table row of one README.

    A line-based walk: `## ` headings set the branch (Pre-training / CLIP-driven Application; other level-2
    sections reset it), `### ` headings the node; an entry starts at a line `[**VENUE YEAR**] title` and runs to
    the next blank line; its title continues over following lines until one ends with a backslash (a few titles
    wrap). Entries outside the taxonomy (none today) raise, as do unknown headings.
    """
    papers: list[Paper] = []
    datasets: list[Dataset] = []
    lines = text.splitlines()
    branch = node = heading = ""
    section = ""
    position = 0
    while position < len(lines):
        line = lines[position]
        if line.startswith("## "):
            section = line[3:].strip()
            branch = BRANCHES.get(section, "")
            node = heading = ""
        elif line.startswith("### ") and branch:
            heading = line[4:].strip()
            if heading not in NODES:
                raise ValueError(f"line {position + 1}: unknown taxonomy heading {heading!r}; known: {', '.join(NODES)}")
            node = NODES[heading]
        elif section == "Dataset Resource" and line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            link = re.fullmatch(r"\[(?P<name>[^\]]+)\]\((?P<url>[^)]*)\)", cells[0])
            if link:  # the header and the alignment row have no link
                domain, images, texts, source, language, model = cells[1:7]
                datasets.append(Dataset(snapshot, commit, link["name"], link["url"], domain, size(images), size(texts),
                                        images, texts, _clean(source), language, model))
        match = ENTRY.match(line)
        if match:
            if not node:
                raise ValueError(f"line {position + 1}: entry outside the taxonomy: {line!r}")
            block = [match["rest"]]
            end = position + 1
            while end < len(lines) and lines[end].strip():
                block.append(lines[end])
                end += 1
            title_lines = [block[0]]
            for continuation in block[1:]:
                if title_lines[-1].rstrip().endswith("\\"):
                    break
                title_lines.append(continuation)
            title = _clean(" ".join(title_lines))
            links = {found["kind"]: found["url"] for found in LINK.finditer("\n".join(block))}
            venue, year, workshop = split_venue(match["tag"])
            papers.append(Paper(snapshot, commit, branch, node, heading, match["tag"].strip(), venue, year, workshop,
                                venue == "arXiv", title, modalities(title), "code" in links,
                                links.get("paper", ""), position + 1))
            position = end
            continue
        position += 1
    return papers, datasets


def vendored_readme(snapshot: str) -> Path:
    return VENDORED / f"README.{SNAPSHOTS[snapshot][0][:7]}.md"


def derive() -> dict[str, str]:
    """The three CSV files' contents, from the vendored READMEs."""
    papers: list[Paper] = []
    datasets: list[Dataset] = []
    for snapshot, (commit, *_rest) in SNAPSHOTS.items():
        found_papers, found_datasets = parse_readme(vendored_readme(snapshot).read_text(encoding="utf-8"),
                                                    snapshot, commit)
        papers += found_papers
        datasets += found_datasets
    snapshots = [{"snapshot": name, "commit": commit, "commit_date": date, "entries_as_of": entries_as_of,
                  "description": description, "source": f"{SOURCE_REPO}/blob/{commit}/README.md"}
                 for name, (commit, date, entries_as_of, description) in SNAPSHOTS.items()]
    return {"papers.csv": _csv([asdict(p) for p in papers], [f.name for f in fields(Paper)]),
            "datasets.csv": _csv([asdict(d) for d in datasets], [f.name for f in fields(Dataset)]),
            "snapshots.csv": _csv(snapshots, list(snapshots[0]))}


def _csv(rows: list[dict], columns: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def vendor(git_dir: str) -> None:
    """Copy each snapshot's README and the LICENSE out of a clone of the list (its git directory)."""
    def show(commit: str, path: str) -> str:
        return subprocess.run(["git", f"--git-dir={git_dir}", "show", f"{commit}:{path}"], check=True,
                              capture_output=True, text=True).stdout

    VENDORED.mkdir(exist_ok=True)
    for snapshot, (commit, *_rest) in SNAPSHOTS.items():
        vendored_readme(snapshot).write_text(show(commit, "README.md"), encoding="utf-8")
    (VENDORED / "LICENSE").write_text(show(SNAPSHOTS["latest"][0], "LICENSE"), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed CSVs, write nothing")
    parser.add_argument("--git-dir", help="a clone's git directory: vendor README.md and LICENSE from it first")
    arguments = parser.parse_args(argv)
    if arguments.git_dir:
        vendor(arguments.git_dir)
    stale = []
    for name, content in derive().items():
        path = HERE / name
        if arguments.check:
            if not path.exists() or path.read_text(encoding="utf-8") != content:
                stale.append(name)
        else:
            path.write_text(content, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)} differ from a re-parse of the vendored READMEs; run {Path(__file__).name}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
