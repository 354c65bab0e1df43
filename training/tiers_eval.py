"""The two tiers end to end on real other shots: scan ``shots/`` with the app's engine and count, per kind of
shot and per split, the other-shot pairs that land in duplicates (must be none) and in similar shots.

    python -m training.tiers_eval [--shots ../shared/datasets/shots] [--out training/reports/tiers.json]

The split is ``training.pairset.shot_split`` (a third of the groups held out of every tuning decision).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from core.engine import Engine
from core.results import Group
from core.selection import RULES, choose
from training.pairset import DATASETS, shot_split


def _pairs(groups: Sequence[Group]) -> set[frozenset[str]]:
    out = set()
    for g in groups:
        out |= {frozenset(p) for p in itertools.combinations(g.paths, 2)}
    return out


def evaluate(shots: Path, cache_dir: Path | None = None) -> dict:
    groups = json.loads((shots / "groups.json").read_text())["groups"]
    engine = Engine(cache_dir=cache_dir, use_cache=cache_dir is not None)
    t0 = time.perf_counter()
    lib = engine.scan([shots / "images"])
    seconds = time.perf_counter() - t0
    result = lib.result(engine.default_threshold(), lib.floor)
    dup, similar = _pairs(result.groups), _pairs(result.similar_groups)
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # pairs, in dup, in similar
    subject = {}  # path -> its group of shots/
    same_subject: set[frozenset[str]] = set()
    for name, g in groups.items():
        paths = [str(shots / "images" / name / f) for f in g["files"]]
        subject |= dict.fromkeys(paths, name)
        for pair in itertools.combinations(paths, 2):
            same_subject.add(frozenset(pair))
            for key in (
                (shot_split(name), g["kind"]),
                (shot_split(name), "all"),
                ("all", g["kind"]),
                ("all", "all"),
            ):
                c = counts[key]
                c[0] += 1
                c[1] += frozenset(pair) in dup
                c[2] += frozenset(pair) in similar
    rows = {
        f"{split}/{kind}": {
            "pairs": n,
            "duplicate": d,
            "similar": s,
            "duplicate_rate": round(d / n, 4),
            "similar_rate": round(s / n, 4),
        }
        for (split, kind), (n, d, s) in sorted(counts.items())
    }
    # what else the tiers hold: pairs of photos of two different subjects (shots/ has many subjects of one
    # kind: rooms, facades, beaches), and groups that mix subjects
    mixed = {
        tier: sum(len({subject.get(m.file.path) for m in g.members}) > 1 for g in found)
        for tier, found in (("duplicate", result.groups), ("similar", result.similar_groups))
    }
    # what auto-select would mark (every rule; here every marked photo is another capture, lost if removed),
    # and what it would mark if the check's unsure members (Member.unsure) were marked too
    doubtless = replace(
        result,
        groups=tuple(
            replace(g, members=tuple(replace(m, unsure_with=()) for m in g.members)) for g in result.groups
        ),
    )

    def by_split(paths: set[str]) -> dict[str, int]:
        splits = [shot_split(subject[p]) if p in subject else "other" for p in paths]
        return {k: splits.count(k) for k in sorted(set(splits) | {"tune", "heldout"})}

    rules = [rule for rule in RULES if rule not in ("reference", "raw")]
    marked = {rule: by_split(choose(result, rule)) for rule in rules}
    marked_all = {rule: by_split(choose(doubtless, rule)) for rule in rules}
    unsure_pairs = sum(
        1
        for g in result.groups
        for a, b in itertools.combinations(g.members, 2)
        if a.unsure and b.unsure and subject.get(a.file.path) is not None
    )
    return {
        "photos": len(lib.files),
        "auto_select": {"marked": marked, "marked_if_unsure_were": marked_all},
        "duplicate_pairs_unsure": unsure_pairs,
        "scan_seconds": round(seconds, 1),
        "threshold": result.threshold,
        "similar_threshold": lib.floor,
        "verification": lib.stats.get("verification"),
        "rows": rows,
        "other_subjects": {
            "duplicate_pairs": len(dup - same_subject),
            "similar_pairs": len(similar - same_subject),
            "similar_pairs_all": len(similar),
            "duplicate_groups_mixed": mixed["duplicate"],
            "similar_groups_mixed": mixed["similar"],
            "similar_groups": len(result.similar_groups),
        },
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shots", type=Path, default=DATASETS / "shots")
    p.add_argument("--out", type=Path)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate(a.shots, Path(tmp))
    print(
        f"{report['photos']} photos scanned in {report['scan_seconds']} s; duplicates from "
        f"{report['threshold']}, similar shots from {report['similar_threshold']}"
    )
    print(f"{'split/kind':24} {'pairs':>6} {'in duplicates':>14} {'in similar shots':>17}")
    for key, r in report["rows"].items():
        print(
            f"{key:24} {r['pairs']:6d} {r['duplicate']:6d} ({r['duplicate_rate']:5.1%}) "
            f"{r['similar']:6d} ({r['similar_rate']:5.1%})"
        )
    o = report["other_subjects"]
    print(
        f"pairs of two different subjects: {o['duplicate_pairs']} in duplicates, {o['similar_pairs']} of the "
        f"{o['similar_pairs_all']} pairs in similar shots; {o['similar_groups_mixed']} of "
        f"{o['similar_groups']} similar-shot groups mix subjects "
        f"({o['duplicate_groups_mixed']} duplicate groups)"
    )
    m = report["auto_select"]
    print(
        f"other-shot pairs in duplicates between two members shown as unsure: "
        f"{report['duplicate_pairs_unsure']}; photos auto-select marks, by rule: {m['marked']} "
        f"(marking unsure members too: {m['marked_if_unsure_were']})"
    )
    if a.out:
        a.out.write_text(json.dumps(report, indent=1) + "\n")
        print(f"wrote {os.fspath(a.out)}")


if __name__ == "__main__":
    main()
