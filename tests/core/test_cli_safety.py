"""The CLI never writes over a file it was not asked to create, fails fast on a bad output path, and prints
any file name. Each case here was a bug found by a fault probe ("Never lose a photo")."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import DATA, copy_demo

EXE = Path(sys.executable).with_name("lookalike")


def run(*args, cwd=None, env=None):
    return subprocess.run(
        [str(EXE), *map(os.fsdecode, args)], capture_output=True, cwd=cwd, timeout=300, env=env
    )


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> Path:
    return copy_demo(tmp_path_factory.mktemp("lib"), ["Camera/forest_path.jpg", "Backup/forest_path.jpg"])


def one_line_error(p) -> str:
    err = p.stderr.decode()
    assert "Traceback" not in err, err
    assert err.startswith("lookalike: ") and err.count("\n") == 1, err
    return err


def test_json_typo_never_overwrites_a_photo(lib, tmp_path):
    """`scan --json IMG_1.jpg IMG_2.jpg` (meant `--json out.json`) replaced the photo with JSON, exit 0."""
    shutil.copy(lib / "Camera/forest_path.jpg", tmp_path / "IMG_1.jpg")
    shutil.copy(lib / "Backup/forest_path.jpg", tmp_path / "IMG_2.jpg")
    before = digest(tmp_path / "IMG_1.jpg")
    p = run("scan", "--json", "IMG_1.jpg", "IMG_2.jpg", "--no-cache", cwd=tmp_path)
    assert p.returncode == 2
    assert "image" in one_line_error(p)
    assert digest(tmp_path / "IMG_1.jpg") == before
    assert sorted(os.listdir(tmp_path)) == ["IMG_1.jpg", "IMG_2.jpg"]  # no temporary file left behind


def test_csv_never_overwrites_a_scanned_file_even_without_an_image_name(lib, tmp_path):
    root = copy_demo(tmp_path / "root", ["Camera/forest_path.jpg"])
    photo = root / "Camera/forest_path.jpg"
    renamed = root / "Camera/forest_path.dat"  # an image the scan finds by its content, not its name
    photo.rename(renamed)
    before = digest(renamed)
    p = run("scan", "--csv", renamed, root, "--no-cache")
    assert p.returncode == 2, p.stderr
    one_line_error(p)
    assert digest(renamed) == before


def test_an_existing_file_that_is_not_our_report_is_kept(lib, tmp_path):
    notes = tmp_path / "notes.json"
    notes.write_text('{"my": "own data"}\n')
    p = run("scan", lib, "--json", notes, "--no-cache")
    assert p.returncode == 2
    one_line_error(p)
    assert notes.read_text() == '{"my": "own data"}\n'


def test_our_own_report_can_be_replaced(lib, tmp_path):
    out = tmp_path / "r.json"
    assert run("scan", lib, "--json", out, "--no-cache").returncode == 0
    first = json.loads(out.read_text())
    p = run("scan", lib, "--json", out, "--csv", tmp_path / "r.csv", "--no-cache")
    assert p.returncode == 0, p.stderr
    assert json.loads(out.read_text())["groups"] == first["groups"]
    assert run("scan", lib, "--csv", tmp_path / "r.csv", "--no-cache").returncode == 0
    # a CSV report written before the "unsure" column is ours too
    old = tmp_path / "old.csv"
    old.write_text(
        "group,exact,keep,path,width,height,bytes,similarity,taken\r\n1,False,True,/a.jpg,1,1,1,1.0,\r\n"
    )
    assert run("scan", lib, "--csv", old, "--no-cache").returncode == 0
    assert old.read_text().splitlines()[0].endswith(",taken,unsure")


@pytest.mark.parametrize("target", ["missing/out.json", "a_folder", "/proc/lookalike.json"])
def test_bad_output_path_fails_before_the_scan(lib, tmp_path, target):
    (tmp_path / "a_folder").mkdir()
    p = run("scan", lib, "--json", target, "--no-cache", "--cache-dir", tmp_path / "never", cwd=tmp_path)
    assert p.returncode == 2
    one_line_error(p)
    assert not (tmp_path / "never").exists()  # failed before the engine even opened its cache


def test_a_failed_write_keeps_the_earlier_report(tmp_path, monkeypatch):
    """A full disk while writing must leave the earlier good report whole (temp file + rename)."""
    from core import report

    out = tmp_path / "r.json"
    report.write_json({"model": {}, "groups": [1]}, out)
    good = out.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(report.os, "fsync", full)
    with pytest.raises(report.OutputError, match="No space left"):
        report.write_json({"model": {}, "groups": [2]}, out)
    assert out.read_bytes() == good
    assert os.listdir(tmp_path) == ["r.json"]


@pytest.mark.parametrize("bad", ["truncated.jpg", "zero.jpg", "bomb.png", "not_an_image.jpg"])
def test_similar_with_a_bad_query_image_says_why_in_one_line(lib, bad):
    p = run("similar", DATA / bad, "--in", lib, "--no-cache")
    assert p.returncode == 1
    assert bad in one_line_error(p)


def test_similar_in_a_missing_folder_names_it(tmp_path):
    p = run("similar", DATA / "ok.jpg", "--in", tmp_path / "nonexistent", "--no-cache")
    assert p.returncode == 2
    assert "nonexistent" in one_line_error(p)


def test_names_that_are_not_utf8_print_in_a_utf8_locale(tmp_path):
    """Problems, `similar` results and `--csv -` failed with 'surrogates not allowed', exit 2."""
    root = tmp_path / "odd"
    root.mkdir()
    odd = os.fsencode(root) + b"/caf\xe9.jpg"  # Latin-1 bytes: not valid UTF-8
    broken = os.fsencode(root) + b"/bro\xffken.jpg"
    shutil.copy(DATA / "ok.jpg", odd)
    shutil.copy(DATA / "ok.jpg", os.fsencode(root) + b"/copy.jpg")
    shutil.copy(DATA / "truncated.jpg", broken)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "PYTHONIOENCODING", "PYTHONUTF8"))}
    env["LANG"] = "C.UTF-8"
    p = run("scan", root, "--csv", "-", "--no-cache", env=env)
    assert p.returncode == 0, p.stderr
    assert b"caf\xe9.jpg" in p.stdout  # the name's own bytes, as `ls` would print them
    assert b"bro\xffken.jpg" in p.stderr  # the problem line
    p = run("similar", odd, "--in", root, "--no-cache", env=env)
    assert p.returncode == 0, p.stderr
    assert b"caf\xe9.jpg" in p.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["--min-size", "infk"],
        ["--min-size", "-5"],
        ["--threshold", "1e-300"],
        ["--threshold", "nan"],
    ],
)
def test_absurd_numbers_are_usage_errors(lib, args):
    p = run("scan", lib, *args, "--no-cache")
    assert p.returncode == 2
    one_line_error(p)
