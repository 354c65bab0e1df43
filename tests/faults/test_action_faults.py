"""Kill -9 a real trash (or move) action at seeded random points, undo it in a fresh process: nothing is lost.

Each run has its own XDG_DATA_HOME (so its own freedesktop trash), real PNG files, an unrelated earlier action
in the journal, unrelated files in the trash (some with the same names as the targets) and beside the targets.
Also: a read-only journal (file or folder) makes the action refuse before any file moves.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from helpers import as_other_user

REPO = Path(__file__).resolve().parents[2]
HELPER = Path(__file__).resolve().parent / "action_faults_helper.py"
N_FILES = 160
STEPS = {"trash": 3, "move": 2}  # file-system steps per file the helper counts (info, link, unlink)


def _run(mode: str, cfg: dict, home: Path, *, user: list[str] | None = None, kill_after: float | None = None):
    """Run the helper; return (its JSON answer or None if it died, its return code)."""
    cfg_path = home / f"{mode}.json"
    cfg_path.write_text(json.dumps(cfg))
    env = {**os.environ, "XDG_DATA_HOME": str(home / "data"), "PYTHONPATH": str(REPO), "HOME": str(home)}
    cmd = [*(user or []), sys.executable, str(HELPER), mode, str(cfg_path)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO))
    head = b""
    if kill_after is not None:  # from the moment the action starts
        head = proc.stdout.readline()
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    out = head + out
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    answer = json.loads(lines[-1]) if lines and proc.returncode == 0 else None
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"helper {mode} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return answer, proc.returncode


def _digest(path) -> str:
    return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()


def _snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (relative path → hash)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): _digest(p) for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def pngs(tmp_path_factory) -> Path:
    """Small real, distinct PNG images."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("pngs")
    for k in range(N_FILES + 40):
        Image.new("RGB", (8, 8), (k % 256, (k * 7) % 256, (k * 13) % 256)).save(folder / f"img{k:04d}.png")
    return folder


def _prepare(home: Path, pngs: Path) -> tuple[list[str], str, list[str]]:
    """A library to act on, unrelated files beside it and in the trash; returns (targets, keeper, earlier)."""
    names = sorted(os.listdir(pngs))
    lib, other, earlier = home / "lib", home / "other", home / "earlier"
    for d in (lib, other, earlier, home / "data" / "Trash" / "files", home / "data" / "Trash" / "info"):
        d.mkdir(parents=True)
    targets = []
    for name in names[:N_FILES]:
        shutil.copy(pngs / name, lib / name)
        targets.append(str(lib / name))
    keeper = str(lib / "keep.png")
    shutil.copy(pngs / names[N_FILES], keeper)
    for name in names[N_FILES + 1 : N_FILES + 20]:
        shutil.copy(pngs / name, other / name)
    trash = home / "data" / "Trash"
    for name in names[:30:3]:  # other programs' trash entries, under the targets' names
        shutil.copy(pngs / names[-1], trash / "files" / name)
        (trash / "info" / f"{name}.trashinfo").write_text(
            f"[Trash Info]\nPath={other}/{name}\nDeletionDate=2024-01-01T00:00:00\n"
        )
    shutil.copy(pngs / names[-2], earlier / "e0.png")
    shutil.copy(pngs / names[-3], earlier / "e1.png")
    return targets, keeper, [str(earlier / "e0.png"), str(earlier / "e1.png")]


def _one_fault(home: Path, pngs: Path, mode: str, kill_at: int | None, when: str, kill_after: float | None):
    """One killed action and its undo; returns (files moved when killed, files lost, unrelated files
    touched)."""
    targets, keeper, earlier = _prepare(home, pngs)
    before = {p: _digest(p) for p in targets}
    beside = _snapshot(home / "other")
    trash_before = _snapshot(home / "data" / "Trash")
    cfg = {
        "journal": str(home / "journal.sqlite3"),
        "targets": targets,
        "keep": keeper,
        "earlier": earlier,
        "mode": mode,
        "dest": str(home / "moved"),
        "kill_at": kill_at,
        "when": when,
    }
    answer, rc = _run("act", cfg, home, kill_after=kill_after)
    moved = [p for p in targets if not os.path.exists(p)]
    assert rc == -signal.SIGKILL or answer is not None
    if not moved and not (home / "journal.sqlite3").exists():
        return 0, 0, 0  # killed before it began: nothing to check
    back, _ = _run("undo", cfg, home)
    assert back is not None
    if back.get("nothing"):  # killed before its first action began
        assert not moved and not back["actions"]
        return 0, 0, 0
    newest = max(a["id"] for a in back["actions"])
    if moved:  # the interrupted action is in the journal, and it is the one undone
        assert back["last"] == newest and back["actions"][0]["kind"] == mode
        assert back["after"] is not None and back["after"] < newest, "the earlier action stays undoable"
    assert not back["problems"], back["problems"]
    lost = sum(1 for p in targets if not os.path.exists(p) or _digest(p) != before[p])
    touched = int(_snapshot(home / "other") != beside)
    trash_now = _snapshot(home / "data" / "Trash")
    # the trash holds what it held before, plus the earlier action's file (if that action got to run)
    extra = {k for k in trash_now if k not in trash_before}
    touched += int(any(trash_now.get(k) != v for k, v in trash_before.items()))
    touched += int(not extra <= {"files/e1.png", "info/e1.png.trashinfo"})
    if (home / "moved").exists():  # a move undone leaves nothing behind in the destination
        touched += len(os.listdir(home / "moved"))
    return len(moved), lost, touched


def test_kill_9_at_random_points_loses_nothing(pngs, tmp_path):
    rng = random.Random(20261201)
    plans = []
    for mode in ("trash",) * 5 + ("move",) * 2:  # a kill before or after a random step of the action
        plans.append((mode, rng.randint(1, N_FILES * STEPS[mode]), rng.choice(["before", "after"]), None))
    for _ in range(3):  # and from outside, wherever the process happens to be (journal writes included)
        plans.append(("trash", None, "", rng.uniform(0.0, 0.3)))
    tried = lost = touched = 0
    moved_at_kill = []
    for k, (mode, kill_at, when, after) in enumerate(plans):
        home = tmp_path / f"run{k}"
        home.mkdir()
        n_moved, n_lost, n_touched = _one_fault(home, pngs, mode, kill_at, when, after)
        moved_at_kill.append(n_moved)
        tried, lost, touched = tried + 1, lost + n_lost, touched + n_touched
    print(
        f"faults tried: {tried}, files lost: {lost}, unrelated files touched: {touched}, "
        f"files moved when killed: {moved_at_kill} of {N_FILES}"
    )
    assert tried == len(plans) and lost == 0 and touched == 0


# -- a journal that cannot be written: refuse before moving anything
# -------------------------------------------------
@pytest.fixture
def user_home(pngs):
    prefix = as_other_user()
    if prefix is None:
        pytest.skip("running as root and cannot switch to an unprivileged user (setpriv/runuser)")
    home = Path(tempfile.mkdtemp(prefix="lookalike-ro-"))  # not under pytest's 0700 root-only folder
    targets, keeper, _ = _prepare(home, pngs)
    if os.geteuid() == 0:
        for p in [home, *home.rglob("*")]:
            os.chown(p, 65534, 65534)
    yield home, prefix, targets[:20], keeper
    for p in [home, *home.rglob("*")]:
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(home)


@pytest.mark.parametrize("read_only", ["file", "folder"])
def test_a_read_only_journal_refuses_before_moving(user_home, read_only):
    home, prefix, targets, keeper = user_home
    jdir = home / "journal"
    jdir.mkdir()
    if os.geteuid() == 0:
        os.chown(jdir, 65534, 65534)
    journal = jdir / "journal.sqlite3"
    first = {"journal": str(journal), "targets": targets[:2], "keep": keeper}
    answer, _ = _run("act", first, home, user=prefix)  # a journal in use, as the app leaves it
    assert answer["done"] == 2, answer
    if read_only == "file":
        journal.chmod(0o444)
    else:
        jdir.chmod(0o555)
    rest = targets[2:]
    trash = _snapshot(home / "data" / "Trash")
    answer, _ = _run("act", {**first, "targets": rest}, home, user=prefix)
    assert "undo journal" in answer.get("refused", ""), answer
    assert answer["last"] is not None  # still readable: the first action can be undone once it is writable
    assert all(os.path.exists(p) for p in rest)
    assert _snapshot(home / "data" / "Trash") == trash
