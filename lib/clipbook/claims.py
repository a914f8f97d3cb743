"""A paper's claims as data, and the verdicts the library computes from tidy result rows.

A notebook states each claim as a `Claim`: which method beats which baseline, on which metric and rows,
by what margin, with the paper's own effect size beside it. `evaluate` turns it into one of four verdicts:

- **holds**: the effect's interval lies above the margin;
- **does not hold**: it lies at or below the margin;
- **inconclusive**: the interval straddles the margin;
- **not tested**: a precondition the claim requires failed (or was never measured), or there are no rows.

Aggregation follows the papers (CoOp, GDA, CLIP-SVD report means over seeds 1-3, then over datasets): for
every seed, method minus baseline is averaged over the claim's models and datasets; the effect is the mean
of those per-seed effects and its interval a Student-t interval over seeds. A baseline without seeds (zero-
shot CLIP) is the same for every seed; rows without seeds (a paper's reported means) give an exact effect
with no interval. `per=("shots",)` requires the claim in every group (every shot count): it holds if all
groups hold, does not hold if any does not. The sentence the reader sees is written from these numbers.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from clipbook.report.rows import as_frame

VERDICTS = ("holds", "does not hold", "inconclusive", "not tested")


@dataclass(frozen=True)
class Claim:
    """One claim of a paper (see module docstring).

    Args:
        id: short stable name, e.g. "beats-zero-shot-16".
        statement: the paper's claim in words (what is tested, not whether it holds).
        method, baseline: values of the rows' `method` column.
        metric: the rows' `metric`.
        where: row filters, {column: value or list of values}; a row with no value in that column (e.g.
            zero-shot CLIP has no `shots`) applies to every value.
        per: columns in each of whose groups the claim must hold (e.g. ("shots",)).
        margin: the effect must exceed this (in the metric's unit; negative for "no worse than").
        higher_is_better: False for errors and gaps: the effect is then baseline minus method.
        paper_effect: the paper's own effect size for this comparison, and where it is stated.
        requires: ids of preconditions (`Precondition`) that must pass for the test to mean anything.
        measured_on: what the rows measure when it is neither a model on the toy world nor the paper's data
            (e.g. "the survey's list" for counts read from a literature list); names the effect in the sentence.
    """
    id: str
    statement: str
    method: str
    baseline: str
    metric: str = "accuracy"
    where: dict = field(default_factory=dict)
    per: tuple[str, ...] = ()
    margin: float = 0.0
    higher_is_better: bool = True
    paper_effect: float | None = None
    paper_effect_source: str = ""
    requires: tuple[str, ...] = ()
    confidence: float = 0.95
    unit: str = "points"
    measured_on: str = ""


@dataclass(frozen=True)
class Precondition:
    """A check that must pass for a claim's test to mean anything, measured by the notebook.
    Built with `at_least` (a measured value against a threshold) or `fact` (a stated configuration)."""
    id: str
    statement: str
    passed: bool
    detail: str


def at_least(id: str, statement: str, value: float, minimum: float, unit: str = "") -> Precondition:
    """Precondition: `value` ≥ `minimum` (e.g. an encoder's k-NN accuracy ≥ chance + 10 points)."""
    passed = bool(value >= minimum)
    detail = f"{statement}: {value:.4g}{unit} {'≥' if passed else '<'} {minimum:.4g}{unit}"
    return Precondition(id=id, statement=statement, passed=passed, detail=detail)


def fact(id: str, statement: str, passed: bool, detail: str) -> Precondition:
    """Precondition stated by the notebook's configuration (e.g. the official schedule was run)."""
    return Precondition(id=id, statement=statement, passed=bool(passed), detail=detail)


# Preconditions the library itself adds under a profile, required by every claim. Under the rehearsal profile
# the weights are random, so the numbers exercise the code path and test no claim.
PROFILE_PRECONDITIONS: dict[str, Precondition] = {
    "rehearsal": fact("weights-are-trained", "the models carry their checkpoints' trained weights", False,
                      "weights are random (rehearsal): the paper's code ran on its real architectures at random "
                      "initialisation and on generated data in the real layouts, so no claim is tested"),
}


def with_profile_preconditions(claims: list[Claim], preconditions: list[Precondition],
                               profile: str) -> tuple[list[Claim], list[Precondition]]:
    """The claims and preconditions with the profile's own preconditions (`PROFILE_PRECONDITIONS`) added and
    required by every claim; unchanged for a profile without any."""
    added = PROFILE_PRECONDITIONS.get(profile)
    if added is None:
        return list(claims), list(preconditions)
    return ([replace(claim, requires=(*claim.requires, added.id)) for claim in claims],
            [*preconditions, added])


def _select(frame: pd.DataFrame, claim: Claim, method: str) -> pd.DataFrame:
    part = frame[(frame["method"] == method) & (frame["metric"] == claim.metric)]
    for column, wanted in claim.where.items():
        if column not in part.columns:
            raise KeyError(f"claim {claim.id!r} filters on {column!r}, which no row has")
        values = wanted if isinstance(wanted, (list, tuple, set)) else [wanted]
        part = part[part[column].isna() | part[column].isin(values)]
    return part


def _per_seed_effects(method_rows: pd.DataFrame, baseline_rows: pd.DataFrame, units: list[str],
                      higher_is_better: bool) -> tuple[pd.Series, int]:
    """Effect per seed, averaged over units, and the number of units compared. A side without seeds for
    a unit (a deterministic baseline, a reported mean) is paired with every seed of the other side; with
    no seeds anywhere the result has one entry under the seed NaN."""
    def means(rows):
        seeded = rows.assign(seed=rows["seed"] if "seed" in rows else np.nan)
        return seeded.groupby(units + ["seed"], dropna=False)["value"].mean().reset_index()

    method_values, baseline_values = means(method_rows), means(baseline_rows)
    pairs = []
    for m_seeded in (True, False):
        for b_seeded in (True, False):
            left = method_values[method_values["seed"].notna() == m_seeded]
            right = baseline_values[baseline_values["seed"].notna() == b_seeded]
            if m_seeded and b_seeded:
                merged = left.merge(right, on=units + ["seed"], suffixes=("_method", "_baseline"))
            elif b_seeded:  # a seedless method value serves every seed of the baseline
                merged = left.drop(columns="seed").merge(right, on=units, suffixes=("_method", "_baseline"))
            else:  # a seedless baseline serves every seed of the method (or both seedless)
                merged = left.merge(right.drop(columns="seed"), on=units, suffixes=("_method", "_baseline"))
            if len(merged):
                pairs.append(merged[units + ["seed", "value_method", "value_baseline"]])
    pairs = pd.concat(pairs, ignore_index=True) if pairs else pd.DataFrame()
    if pairs.empty:
        return pd.Series(dtype=float), 0
    sign = 1.0 if higher_is_better else -1.0
    pairs["difference"] = sign * (pairs["value_method"].astype(float) - pairs["value_baseline"].astype(float))
    seedless, seeded = pairs[pairs["seed"].isna()], pairs[pairs["seed"].notna()]
    n_units = len(pairs[units].drop_duplicates())
    if seeded.empty:
        return pd.Series({np.nan: float(seedless.groupby(units)["difference"].mean().mean())}), n_units
    effects = {}
    for seed, part in seeded.groupby("seed"):
        per_unit = pd.concat([part, seedless]).groupby(units)["difference"].mean()
        effects[seed] = float(per_unit.mean())
    return pd.Series(effects, dtype=float), n_units


def _interval(per_seed: pd.Series, confidence: float) -> tuple[float, float] | None:
    if len(per_seed) < 2 or per_seed.index.isna().all():
        return None
    mean, sem = per_seed.mean(), per_seed.std(ddof=1) / math.sqrt(len(per_seed))
    half = stats.t.ppf(0.5 + confidence / 2, df=len(per_seed) - 1) * sem
    return float(mean - half), float(mean + half)


def _decide(effect: float, interval, margin: float) -> str:
    low, high = interval if interval is not None else (effect, effect)
    if low > margin:
        return "holds"
    if high <= margin:
        return "does not hold"
    return "inconclusive"


def _group_result(claim: Claim, method_rows, baseline_rows, label: str) -> dict:
    units = [c for c in ("model", "dataset") if c in method_rows.columns]
    per_seed, n_units = _per_seed_effects(method_rows, baseline_rows, units, claim.higher_is_better)
    if per_seed.empty:
        return {"group": label, "verdict": "not tested", "effect": None, "interval": None, "seeds": 0, "units": 0,
                "reason": f"no rows compare {claim.method!r} with {claim.baseline!r} on {claim.metric!r}"
                          + (f" at {label}" if label else "")}
    effect = float(per_seed.mean())
    interval = _interval(per_seed, claim.confidence)
    seeds = 0 if per_seed.index.isna().all() else len(per_seed)
    return {"group": label, "verdict": _decide(effect, interval, claim.margin), "effect": effect,
            "interval": list(interval) if interval else None, "seeds": seeds, "units": n_units, "reason": ""}


def _fmt(value: float, unit: str) -> str:
    return f"{value:+.2f}" + (f" {unit}" if unit else "")


def _sentence(claim: Claim, result: dict, datasets: list[str], toy: bool) -> str:
    if result["verdict"] == "not tested":
        text = f"Not tested: {result['reason']}."
        if result.get("reported_effect") is not None:
            text += (f" On the paper's reported rows the rule gives {_fmt(result['reported_effect'], claim.unit)}"
                     f" ({result['reported_verdict']}).")
        return text
    worst = result["worst"]
    direction = f"{claim.method} − {claim.baseline}" if claim.higher_is_better else f"{claim.baseline} − {claim.method}"
    where = "".join(f", {k} = {v}" for k, v in claim.where.items())
    scope = f"{', '.join(datasets)}" if datasets else "the rows"
    averaging = (f"mean over {worst['seeds']} seeds, then over {worst['units']} model–dataset pair"
                 f"{'s' if worst['units'] != 1 else ''}") if worst["seeds"] else (
        f"mean over {worst['units']} model–dataset pair{'s' if worst['units'] != 1 else ''}")
    interval = (f" [{int(claim.confidence * 100)} % CI {worst['interval'][0]:+.2f}, {worst['interval'][1]:+.2f}]"
                if worst["interval"] else "")
    group = f" (weakest of {len(result['groups'])} groups: {worst['group']})" if claim.per else ""
    text = (f"{direction} in {claim.metric}{where} on {scope} ({averaging}){group}: "
            f"{_fmt(worst['effect'], claim.unit)}{interval} against a margin of {_fmt(claim.margin, claim.unit)}")
    label = f"effect on {claim.measured_on}" if claim.measured_on else ("effect on the toy world" if toy else "verdict")
    text += f" — {label}: {result['verdict']}."
    if claim.paper_effect is not None:
        text += f" The paper reports {_fmt(claim.paper_effect, claim.unit)}" + (
            f" ({claim.paper_effect_source})" if claim.paper_effect_source else "") + "."
    if result.get("reported_effect") is not None:
        text += f" The same rule on the paper's reported rows gives {_fmt(result['reported_effect'], claim.unit)}."
    return text


def _combine(groups: list[dict]) -> str:
    verdicts = [g["verdict"] for g in groups]
    if all(v == "holds" for v in verdicts):
        return "holds"
    if "does not hold" in verdicts:
        return "does not hold"
    if "inconclusive" in verdicts:
        return "inconclusive"
    return "not tested"


def evaluate_claim(claim: Claim, rows, *, preconditions: list[Precondition] | None = None,
                   reported=None, toy: bool = False) -> dict:
    """One claim's verdict from tidy rows (see module docstring).

    Args:
        claim: the specification.
        rows: tidy result rows (list of dicts or DataFrame with model, dataset, method, metric, value and
            optionally shots, seed).
        preconditions: what the notebook measured; None skips them (used for the paper's reported rows,
            which the paper obtained under its own official conditions).
        reported: the paper's reported rows, to state the effect the same rule gives on them.
        toy: label the verdict as an effect on the toy world (offline profile).

    Returns:
        {id, statement, verdict, effect, interval, margin, reason, sentence, groups, ...}.
    """
    frame = as_frame(rows)
    result = {"id": claim.id, "statement": claim.statement, "method": claim.method, "baseline": claim.baseline,
              "metric": claim.metric, "margin": claim.margin, "paper_effect": claim.paper_effect,
              "paper_effect_source": claim.paper_effect_source, "effect": None, "interval": None, "reason": "",
              "groups": [], "reported_effect": None, "preconditions": []}
    # The rule on the paper's own numbers comes first: a claim the toy world cannot test (a failed precondition,
    # no offline rows) still shows whether its rule holds where the paper reported it.
    if reported is not None and len(as_frame(reported)):
        try:
            on_reported = evaluate_claim(claim, reported)
        except KeyError:  # the reported rows lack a column the claim filters on: nothing to compare
            on_reported = {"effect": None, "verdict": "not tested"}
        result["reported_effect"] = on_reported["effect"]
        result["reported_verdict"] = on_reported["verdict"]
    if preconditions is not None:
        known = {p.id: p for p in preconditions}
        failed = []
        for requirement in claim.requires:
            if requirement not in known:
                failed.append(f"precondition {requirement!r} was not measured")
            elif not known[requirement].passed:
                failed.append(known[requirement].detail)
            result["preconditions"].append(asdict(known[requirement]) if requirement in known else
                                           {"id": requirement, "passed": False, "detail": "not measured"})
        if failed:
            result.update(verdict="not tested", reason="; ".join(failed))
            result["sentence"] = _sentence(claim, result, [], toy)
            return result
    method_rows = _select(frame, claim, claim.method) if len(frame) else frame
    baseline_rows = _select(frame, claim, claim.baseline) if len(frame) else frame
    if method_rows.empty or baseline_rows.empty:
        missing = claim.method if method_rows.empty else claim.baseline
        result.update(verdict="not tested", reason=f"no {claim.metric!r} rows for {missing!r}")
        result["sentence"] = _sentence(claim, result, [], toy)
        return result
    if claim.per:
        groups = []
        for key, part in method_rows.groupby(list(claim.per), dropna=False):
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{c} = {_plain(v)}" for c, v in zip(claim.per, key))
            mask = np.ones(len(baseline_rows), dtype=bool)
            for column, value in zip(claim.per, key):
                if column in baseline_rows:
                    mask &= (baseline_rows[column].isna() | (baseline_rows[column] == value)).to_numpy()
            groups.append(_group_result(claim, part, baseline_rows[mask], label))
    else:
        groups = [_group_result(claim, method_rows, baseline_rows, "")]
    result["groups"] = groups
    result["verdict"] = _combine(groups)
    tested = [g for g in groups if g["effect"] is not None]
    if not tested:
        result["reason"] = groups[0]["reason"]
        result["sentence"] = _sentence(claim, result, [], toy)
        return result
    worst = min(tested, key=lambda g: g["effect"])
    result.update(effect=worst["effect"], interval=worst["interval"], worst=worst)
    datasets = sorted(method_rows["dataset"].dropna().unique().tolist()) if "dataset" in method_rows else []
    result["sentence"] = _sentence(claim, result, datasets, toy)
    result.pop("worst")
    return result


def _plain(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def evaluate(claims: list[Claim], rows, *, preconditions: list[Precondition] | None = None, reported=None,
             toy: bool = False) -> list[dict]:
    """Every claim's verdict (see `evaluate_claim`)."""
    ids = [c.id for c in claims]
    if len(set(ids)) != len(ids):
        raise ValueError(f"claim ids must be unique, got {ids}")
    if preconditions is not None:
        ids = [p.id for p in preconditions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"precondition ids must be unique, got {ids}")
    return [evaluate_claim(c, rows, preconditions=preconditions, reported=reported, toy=toy) for c in claims]
