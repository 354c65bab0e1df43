"""The ``lookalike`` command: the engine for scripts and headless use.

Exit status: 0 on success (problems with single files included), 2 on bad usage, 1 on failure.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import multiprocessing
import os
import sys
from pathlib import Path

from core.errors import Cancelled, LookalikeError

log = logging.getLogger("lookalike")


class UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        raise UsageError(message)


def _threshold(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {v}")
    return v


def _size(text: str) -> int:
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("b")
    try:
        return int(float(t[:-1]) * mult[t[-1]]) if t and t[-1] in mult else int(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="lookalike", description="Find duplicate and near-duplicate photos.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    common = _Parser(add_help=False)
    common.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    common.add_argument("--cache-dir", type=Path, help="where embeddings are cached (default: user cache)")
    common.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    common.add_argument("--model", type=Path, help="model folder (default: the bundled model)")
    common.add_argument("--exclude", action="append", default=[], metavar="GLOB")
    common.add_argument("--include", action="append", default=[], metavar="GLOB")
    common.add_argument("--min-size", type=_size, default=1, metavar="BYTES")
    common.add_argument("--hidden", action="store_true", help="include hidden files and folders")
    common.add_argument("--follow-symlinks", action="store_true")
    common.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    s = sub.add_parser("scan", parents=[common], help="group duplicates in folders")
    s.add_argument("paths", nargs="+", metavar="PATH")
    s.add_argument("--threshold", type=_threshold, help="duplicate threshold (cosine; default from the model)")
    s.add_argument("--similar-threshold", type=_threshold,
                   help="also count groups of similar photos at this looser threshold (summary only)")
    s.add_argument("--json", type=Path, metavar="FILE", help="write results as JSON ('-' for stdout)")
    s.add_argument("--csv", type=Path, metavar="FILE", help="write one row per grouped file")

    q = sub.add_parser("similar", parents=[common], help="find the images most like given ones")
    q.add_argument("images", nargs="+", metavar="IMAGE")
    q.add_argument("--in", dest="inside", nargs="+", required=True, metavar="PATH")
    q.add_argument("--top", type=int, default=10)
    q.add_argument("--json", type=Path, metavar="FILE")

    b = sub.add_parser("bench", help="measure speed on a generated corpus (prints figures)")
    b.add_argument("--workdir", type=Path, help="where to build the corpus (default: a temp folder)")
    b.add_argument("--quick", action="store_true", help="small corpus, for a smoke run")
    b.add_argument("--skip-1m", action="store_true", help="skip the 1M-embedding grouping figure")
    return p


def _progress_bar(quiet: bool):
    if quiet or not sys.stderr.isatty() and os.environ.get("LOOKALIKE_PROGRESS") != "1":
        return lambda d, t, m: None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=0, file=sys.stderr, unit="img", dynamic_ncols=True, leave=False)
    state = {"msg": None}

    def update(done: int, total: int, message: str) -> None:
        stage = message.split(" ")[0]
        if stage != state["msg"]:
            state["msg"] = stage
            bar.reset(total=total or None)
        if total:
            bar.total = total
        bar.n = done
        bar.set_description(stage, refresh=False)
        bar.refresh()

    return update, bar.close


def _engine(a):
    from core.engine import Engine

    return Engine(model_dir=a.model, device=a.device, cache_dir=a.cache_dir, use_cache=not a.no_cache)


def _options(a):
    from core.scan import ScanOptions

    return ScanOptions(include=tuple(a.include), exclude=tuple(a.exclude), min_size=a.min_size,
                       include_hidden=a.hidden, follow_symlinks=a.follow_symlinks)


def scan_json(result) -> dict:
    files = result.files
    return {
        "threshold": result.threshold,
        "model": {"name": result.model.name, "sha256": result.model.sha256},
        "files": len(files),
        "groups": [
            {"exact": g.exact,
             "files": [{"path": files[m.index].path, "width": files[m.index].width,
                        "height": files[m.index].height, "bytes": files[m.index].size,
                        "similarity": m.similarity} for m in g.members]}
            for g in result.groups
        ],
        "pairs": [{"a": files[p.a].path, "b": files[p.b].path, "similarity": p.similarity} for p in result.pairs],
        "problems": [{"path": p.path, "reason": p.reason} for p in result.problems],
    }


def write_csv(result, path) -> None:
    fh = sys.stdout if str(path) == "-" else open(path, "w", newline="", encoding="utf-8", errors="surrogateescape")
    try:
        w = csv.writer(fh)
        w.writerow(["group", "exact", "keep", "path", "width", "height", "bytes", "similarity", "taken"])
        for n, g in enumerate(result.groups, 1):
            for k, m in enumerate(g.members):
                f = result.files[m.index]
                w.writerow([n, g.exact, k == 0, f.path, f.width, f.height, f.size, m.similarity, f.taken or ""])
    finally:
        if fh is not sys.stdout:
            fh.close()


def _write_json(data: dict, path) -> None:
    # ASCII escapes keep names that are not valid UTF-8 (surrogate-escaped) faithful and the file valid JSON.
    text = json.dumps(data, indent=2)
    if str(path) == "-":
        print(text)
    else:
        Path(path).write_text(text + "\n", encoding="utf-8")


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def cmd_scan(a) -> int:
    engine = _engine(a)
    threshold = a.threshold or engine.bundle.duplicate_threshold
    # The report holds pairs at the threshold: keep no looser pairs unless a similar threshold is asked for.
    floor = min(threshold, a.similar_threshold) if a.similar_threshold else threshold
    update, close = _progress_bar(a.quiet)
    try:
        lib = engine.scan(a.paths, _options(a), floor=floor, progress=update)
    finally:
        close()
    result = lib.result(threshold)
    if a.json:
        _write_json(scan_json(result), a.json)
    if a.csv:
        write_csv(result, a.csv)
    out = sys.stderr if str(a.json) == "-" or str(a.csv) == "-" else sys.stdout
    print(f"{len(result.files)} images, {len(result.groups)} groups, {result.duplicates} duplicates, "
          f"{human_bytes(result.reclaimable)} reclaimable, {len(result.problems)} problems "
          f"(threshold {threshold:.3f}, model {result.model.name})", file=out)
    if a.similar_threshold and a.similar_threshold < threshold:
        loose = lib.result(a.similar_threshold)
        print(f"at the similar threshold {a.similar_threshold:.3f}: {len(loose.groups)} groups, "
              f"{loose.duplicates} similar photos", file=out)
    for w in lib.stats.get("warnings", []):
        print(f"  warning: {w}", file=out)
    for p in result.problems[:20]:
        print(f"  problem: {p.path}: {p.reason}", file=out)
    if len(result.problems) > 20:
        print(f"  ... and {len(result.problems) - 20} more problems", file=out)
    return 0


def cmd_similar(a) -> int:
    if a.top < 1:
        raise UsageError("--top must be at least 1")
    engine = _engine(a)
    update, close = _progress_bar(a.quiet)
    try:
        lib = engine.scan(a.inside, _options(a), progress=update)
    finally:
        close()
    queries = []
    for img in a.images:
        path = os.path.abspath(img)
        if not os.path.isfile(path):
            print(f"lookalike: {img}: not a file", file=sys.stderr)
            return 1
        hits = engine.find_similar(lib, path, a.top)
        queries.append({"query": path, "results": [{"path": p, "similarity": round(s, 6)} for p, s in hits]})
    if a.json:
        _write_json({"queries": queries}, a.json)
    if str(a.json) != "-":
        for q in queries:
            print(q["query"])
            for r in q["results"]:
                print(f"  {r['similarity']:.3f}  {r['path']}")
    return 0


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    try:
        a = build_parser().parse_args(argv)
    except UsageError as e:
        print(f"lookalike: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        if a.command == "scan":
            missing = [p for p in a.paths if not os.path.exists(p)]
            if missing and len(missing) == len(a.paths):
                raise UsageError(f"no such file or folder: {missing[0]}")
            return cmd_scan(a)
        if a.command == "similar":
            return cmd_similar(a)
        if a.command == "bench":
            from core.bench import run_bench

            return run_bench(workdir=a.workdir, quick=a.quick, skip_1m=a.skip_1m)
    except UsageError as e:
        print(f"lookalike: {e}", file=sys.stderr)
        return 2
    except (ValueError, LookalikeError) as e:
        print(f"lookalike: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1
    except Cancelled:
        print("lookalike: cancelled", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lookalike: interrupted", file=sys.stderr)
        return 1
    return 1




if __name__ == "__main__":
    sys.exit(main())
