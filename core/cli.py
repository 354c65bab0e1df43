"""The ``lookalike`` command: the engine for scripts and headless use.

Exit status: 0 on success (problems with single files included), 2 on bad usage, 1 on failure.
"""

from __future__ import annotations

import argparse
import codecs
import logging
import math
import multiprocessing
import os
import sys
from pathlib import Path

from core.errors import Cancelled, LookalikeError, OutputError
from core.index import MIN_THRESHOLD
from core.report import Output, count, csv_text, human_bytes, json_text, scan_json

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
    if not MIN_THRESHOLD <= v <= 1.0:  # NaN fails this too
        raise argparse.ArgumentTypeError(
            f"must be between {MIN_THRESHOLD} and 1 (a cosine similarity), got {text}"
        )
    return v


def _size(text: str) -> int:
    mult = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    t = text.strip().lower().rstrip("b")
    try:
        v = float(t[:-1]) * mult[t[-1]] if t and t[-1] in mult else float(t)
        if not math.isfinite(v) or v < 0 or v > 1 << 60:
            raise ValueError(text)
        return int(v)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"not a size in bytes (e.g. 500k, 2m): {text!r}") from None


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
    s.add_argument(
        "--threshold", type=_threshold, help="duplicate threshold (cosine; default from the model)"
    )
    s.add_argument(
        "--similar-threshold",
        type=_threshold,
        help="cosine from which close photos that are not copies are listed as similar shots",
    )
    s.add_argument("--json", type=Path, metavar="FILE", help="write results as JSON ('-' for stdout)")
    s.add_argument("--csv", type=Path, metavar="FILE", help="write one row per grouped file")
    s.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="embed on a Ray cluster (its address; none: a local one); needs lookalike[cluster] and --shards",
    )
    s.add_argument("--shards", type=Path, metavar="DIR", help="the Ray scan's Parquet shards (resumed from)")
    s.add_argument("--shard-files", type=int, default=256, metavar="N", help="files per shard (default 256)")

    q = sub.add_parser("similar", parents=[common], help="find the images most like given ones")
    q.add_argument("images", nargs="+", metavar="IMAGE")
    q.add_argument("--in", dest="inside", nargs="+", required=True, metavar="PATH")
    q.add_argument("--top", type=int, default=10)
    q.add_argument("--json", type=Path, metavar="FILE")

    v = sub.add_parser("serve", parents=[common], help="answer queries over HTTP (needs lookalike[serve])")
    v.add_argument("paths", nargs="+", metavar="PATH", help="folders to serve (read-only)")
    v.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (not loopback: --token-file needed)"
    )
    v.add_argument("--port", type=int, default=8765)
    v.add_argument(
        "--token-file", type=Path, metavar="FILE", help="clients must send 'Authorization: Bearer' it"
    )
    v.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="let web pages from ORIGIN call the API (default: none)",
    )

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

    return ScanOptions(
        include=tuple(a.include),
        exclude=tuple(a.exclude),
        min_size=a.min_size,
        include_hidden=a.hidden,
        follow_symlinks=a.follow_symlinks,
    )


def _outputs(a) -> list[tuple[str, Output]]:
    """The report files asked for, checked and reserved before any work (a bad path fails in a second)."""
    outs = []
    try:
        for kind in ("json", "csv"):
            path = getattr(a, kind, None)
            if path is not None:
                outs.append((kind, Output(path, kind.upper())))
    except OutputError:
        for _, o in outs:
            o.discard()
        raise
    return outs


def _require_paths(paths: list[str], what: str) -> None:
    missing = [p for p in paths if not os.path.lexists(p)]
    if missing and len(missing) == len(paths):
        raise UsageError(f"no such file or folder{' to ' + what if what else ''}: {missing[0]}")


def _ray_scan(a, engine, threshold: float, similar: float, progress):
    """The scan with its embedding on a Ray cluster (``core.cluster``, the ``cluster`` extra)."""
    import importlib

    if a.shards is None:
        raise UsageError("--ray needs --shards DIR: where the embeddings are kept (and resumed from)")
    if a.shard_files < 1:
        raise UsageError(f"--shard-files must be at least 1, got {a.shard_files}")
    try:  # by name: the desktop installer (PyInstaller) must not pull in Ray
        ray_scan = importlib.import_module("core.cluster.ray_scan").ray_scan
    except ImportError as e:
        raise LookalikeError(
            f"--ray needs the cluster extra: pip install 'lookalike[cluster]' ({e})"
        ) from None
    return ray_scan(
        engine,
        a.paths,
        _options(a),
        shards=a.shards,
        address=None if a.ray == "local" else a.ray,
        shard_files=a.shard_files,
        threshold=threshold,
        similar_threshold=similar,
        progress=progress,
    )


def cmd_scan(a) -> int:
    _require_paths(a.paths, "")
    if a.shards is not None and not a.ray:
        raise UsageError("--shards goes with --ray")
    outputs = _outputs(a)
    try:
        engine = _engine(a)
        threshold = a.threshold or engine.default_threshold()
        similar = a.similar_threshold or engine.bundle.similar_shot_threshold
        floor = min(threshold, similar)
        update, close = _progress_bar(a.quiet)
        try:
            if a.ray:
                result = _ray_scan(a, engine, threshold, similar, update)
            else:
                lib = engine.scan(
                    a.paths,
                    _options(a),
                    floor=floor,
                    verify_from=engine.checked_from(threshold),
                    progress=update,
                )
                result = lib.result(threshold, similar)
        finally:
            close()
        for kind, out in outputs:
            out.write(json_text(scan_json(result)) if kind == "json" else csv_text(result))
    finally:
        for _, out in outputs:
            out.discard()
    out = sys.stderr if any(o.stdout for _, o in outputs) else sys.stdout
    print(
        f"{count(len(result.files), 'image')}, {count(len(result.groups), 'group')}, "
        f"{count(result.duplicates, 'duplicate')}, {human_bytes(result.reclaimable)} reclaimable, "
        f"{count(len(result.problems), 'problem')}, {len(result.blank)} blank "
        f"(threshold {threshold:.3f}, model {result.model.name})",
        file=out,
    )
    unsure = [g for g in result.groups if g.unsure]
    if unsure:
        files = sum(m.unsure for g in unsure for m in g.members)
        print(
            f"maybe not copies: {count(files, 'file')} in {count(len(unsure), 'group')} (what differs looks "
            f'like another exposure or a burst frame; "unsure" in the JSON, never auto-selected in the app)',
            file=out,
        )
    shots = sum(len(g.members) for g in result.similar_groups)
    print(
        f"similar shots (other captures of one subject, never selected for removal): "
        f"{count(len(result.similar_groups), 'group')}, {count(shots, 'photo')} (threshold {similar:.3f})",
        file=out,
    )
    check = result.stats.get("verification")
    if check:
        keys = ("candidates", "verified", "verdicts_cached", "features_extracted", "from_previews", "seconds")
        c = {k: check.get(k, 0) for k in keys}
        print(
            f"same-capture check: {c['candidates']} candidate pairs, {c['verified']} compared, "
            f"{c['verdicts_cached']} from the cache; {c['features_extracted']} images read "
            f"({c['from_previews']} from the scan's previews) in {c['seconds']:.1f} s",
            file=out,
        )
    for w in result.stats.get("warnings", []):
        print(f"  warning: {w}", file=out)
    for p in result.problems[:20]:
        print(f"  problem: {p.path}: {p.reason}", file=out)
    if len(result.problems) > 20:
        print(f"  ... and {len(result.problems) - 20} more problems", file=out)
    return 0


def cmd_similar(a) -> int:
    from core.errors import DecodeError

    if a.top < 1:
        raise UsageError("--top must be at least 1")
    _require_paths(a.inside, "search in")
    for img in a.images:
        if not os.path.isfile(img):
            raise UsageError(f"{img}: not a file")
    outputs = _outputs(a)
    try:
        engine = _engine(a)
        update, close = _progress_bar(a.quiet)
        try:
            lib = engine.scan(a.inside, _options(a), progress=update)
        finally:
            close()
        if not lib.files:
            raise LookalikeError(f"no images were found in {', '.join(map(str, a.inside))}")
        queries, failed = [], 0
        for img in a.images:
            path = os.path.abspath(img)
            try:
                hits = engine.find_similar(lib, path, a.top)
            except DecodeError as e:
                print(f"lookalike: {img}: {e}", file=sys.stderr)
                failed += 1
                continue
            queries.append(
                {"query": path, "results": [{"path": p, "similarity": round(s, 6)} for p, s in hits]}
            )
        for _, out in outputs:
            out.write(
                json_text({"model": {"name": lib.model.name, "sha256": lib.model.sha256}, "queries": queries})
            )
    finally:
        for _, out in outputs:
            out.discard()
    if not any(o.stdout for _, o in outputs):
        for q in queries:
            print(q["query"])
            for r in q["results"]:
                print(f"  {r['similarity']:.3f}  {r['path']}")
    return 1 if failed else 0


def cmd_serve(a) -> int:
    import importlib

    if a.follow_symlinks:
        raise UsageError("serve never follows symbolic links: a link could lead out of the served folders")
    if not 1 <= a.port <= 65535:
        raise UsageError(f"--port must be between 1 and 65535, got {a.port}")
    for p in a.paths:
        if not os.path.isdir(p):
            raise UsageError(f"not a folder to serve: {p}")
    update, close = _progress_bar(a.quiet)
    # imported by name: the desktop installer (PyInstaller) must not pull in the web stack
    return importlib.import_module("core.serve.server").run(a, progress=update, done=close)


def _safe_streams() -> None:
    """Print any file name: names that are not valid UTF-8 (surrogate-escaped by Python) go out as their own
    bytes, and characters the terminal's encoding lacks as backslash escapes, never a crash."""
    try:
        codecs.lookup_error("lookalike")
    except LookupError:

        def handler(err: UnicodeError):
            if isinstance(err, UnicodeEncodeError):
                bad = err.object[err.start : err.end]
                if all(0xDC80 <= ord(c) <= 0xDCFF for c in bad):
                    return bytes(ord(c) - 0xDC00 for c in bad), err.end
            return codecs.backslashreplace_errors(err)

        codecs.register_error("lookalike", handler)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="lookalike")
            except (ValueError, OSError):
                pass


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    _safe_streams()
    try:
        a = build_parser().parse_args(argv)
    except UsageError as e:
        print(f"lookalike: {e}", file=sys.stderr)
        return 2
    except SystemExit as e:  # --help
        return int(e.code or 0)
    logging.basicConfig(
        level=logging.INFO if a.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if a.command == "scan":
            return cmd_scan(a)
        if a.command == "similar":
            return cmd_similar(a)
        if a.command == "serve":
            return cmd_serve(a)
        if a.command == "bench":
            try:
                from benchmarks.speed import run_bench
            except ImportError:
                raise LookalikeError(
                    "the benchmarks come with the source tree: run `make bench` in a checkout"
                ) from None

            return run_bench(workdir=a.workdir, quick=a.quick, skip_1m=a.skip_1m)
    except (UsageError, OutputError) as e:
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
