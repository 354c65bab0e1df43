"""The installer, end to end: build the PyInstaller bundle, run it, package it, install it on a clean Debian.

Slow (a few minutes) and needs root, network to a Debian mirror and debootstrap/Xvfb for the last test, so it
runs only with ``LOOKALIKE_PACKAGE_TESTS=1``. Each stage's figures are printed (``-s``) and written to
``build/package-test/`` with the screenshot of the installed app.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "resources" / "demo"
ARTIFACTS = REPO / "build" / "package-test"
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

pytestmark = [
    pytest.mark.package,
    pytest.mark.skipif(
        os.environ.get("LOOKALIKE_PACKAGE_TESTS") != "1",
        reason="builds and installs the bundle; set LOOKALIKE_PACKAGE_TESTS=1",
    ),
]

# What the installed app must not carry: the run-time CPU path is ONNX Runtime.
FORBIDDEN = (
    "torch",
    "torchvision",
    "onnx",
    "onnxscript",
    "matplotlib",
    "sklearn",
    "training",
    "PySide6/Qt/qml",
)


def _clean_env(**extra: str) -> dict[str, str]:
    """No venv, no source tree on the path: the bundle must stand alone."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "QT_"))}
    env["PATH"] = "/usr/bin:/bin"
    env.update(extra)
    return env


def _figure(name: str, value) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / "figures.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data[name] = value
    path.write_text(json.dumps(data, indent=2))
    print(f"[package] {name}: {value}")


def _du_mib(path: Path) -> float:
    total = sum(p.lstat().st_size for p in path.rglob("*") if not p.is_symlink())
    return round(total / 2**20, 1)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    """A fresh build of build.spec into a private dist folder (the developer's dist/ is left alone)."""
    out = tmp_path_factory.mktemp("pkg")
    t0 = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "PyInstaller",
            "--noconfirm",
            "--log-level",
            "WARN",
            "--distpath",
            str(out / "dist"),
            "--workpath",
            str(out / "build"),
            str(REPO / "build.spec"),
        ],
        cwd=REPO,
        check=True,
    )
    _figure("build_seconds", round(time.perf_counter() - t0, 1))
    app = out / "dist" / "Lookalike"
    _figure("bundle_mib", _du_mib(app))
    return out / "dist"


@pytest.fixture(scope="module")
def self_test(dist: Path) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(
        [str(dist / "Lookalike" / "Lookalike"), "--self-test"],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    _figure("self_test_seconds_cold", round(time.perf_counter() - t0, 2))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _source_groups() -> list[frozenset[str]]:
    """The same scan in this (unfrozen) process: the bundle must agree with the source tree exactly."""
    from core.engine import Engine

    engine = Engine(use_cache=False, device="cpu")
    result = engine.scan([str(DEMO)]).result(engine.bundle.duplicate_threshold)
    return sorted(
        (frozenset(os.path.relpath(p, DEMO) for p in g.paths) for g in result.groups),
        key=sorted,
    )


def test_bundle_leaves_out_torch_and_training(dist: Path) -> None:
    internal = dist / "Lookalike" / "_internal"
    present = [name for name in FORBIDDEN if (internal / name).exists()]
    assert not present, f"bundle carries {present}"
    assert (internal / "onnxruntime").is_dir()
    for name in ("manifest.json", "model.onnx", "model.int8.onnx", "model.safetensors"):
        assert (internal / "resources" / "model" / name).is_file()
    assert (internal / "resources" / "demo" / "LICENSES.md").is_file()
    assert (internal / "resources" / "icons" / "lookalike.svg").is_file()
    # A torch bundle is ~1 GiB; this one should stay well under half of that.
    assert _du_mib(dist / "Lookalike") < 500


def test_self_test_scans_demo_without_torch_or_qt(self_test: dict) -> None:
    manifest = json.loads((DEMO / "MANIFEST.json").read_text())
    model = json.loads((REPO / "resources" / "model" / "manifest.json").read_text())
    assert self_test["ok"] is True
    assert self_test["frozen"] is True
    assert self_test["torch_loaded"] is False
    # PyInstaller's PySide6 run-time hook imports QtCore at start-up (it registers qt.conf, ~50 ms); the
    # self-test itself must not reach the GUI stack, which needs a display and the X libraries.
    assert not [m for m in self_test["qt_modules"] if m.startswith(("PySide6.QtGui", "PySide6.QtWidgets"))]
    assert (self_test["device"], self_test["backend"]) == ("cpu", "onnx")
    assert self_test["problems"] == []
    assert self_test["files"] == len(manifest["edits"])
    assert self_test["model"]["sha256"] == model["weights"]["sha256"]
    frozen = sorted((frozenset(g) for g in self_test["group_files"]), key=sorted)
    assert frozen == _source_groups()
    _figure("self_test_scan_seconds", self_test["seconds"])


def test_cli_through_a_lookalike_symlink(dist: Path, tmp_path: Path, self_test: dict) -> None:
    """Invoked as ``lookalike`` the app is the command-line tool (argv[0] dispatch, case-exact)."""
    link = tmp_path / "lookalike"
    link.symlink_to(dist / "Lookalike" / "Lookalike")
    proc = subprocess.run(
        [str(link), "scan", "-q", "--no-cache", "--json", "-", str(DEMO)],
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert len(data["groups"]) == self_test["groups"]
    wrong = subprocess.run([str(link), "no-such-command"], env=_clean_env(), capture_output=True, text=True)
    assert wrong.returncode == 2


def test_window_opens_from_the_bundle(dist: Path) -> None:
    """The frozen Qt app starts (offscreen platform, no X needed) and is still running, without a
    traceback."""
    proc = subprocess.Popen(
        [str(dist / "Lookalike" / "Lookalike"), str(DEMO)],
        env=_clean_env(QT_QPA_PLATFORM="offscreen"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(8)
        alive = proc.poll() is None
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert alive, f"the app exited early:\n{out}"
    assert "Traceback" not in out, out


def test_deb_and_tarball(dist: Path) -> None:
    env = dict(os.environ, DIST=str(dist))
    t0 = time.perf_counter()
    subprocess.run(["bash", str(REPO / "packaging" / "build_deb.sh")], cwd=REPO, env=env, check=True)
    _figure("deb_build_seconds", round(time.perf_counter() - t0, 1))
    deb = dist / f"lookalike_{VERSION}_amd64.deb"
    tgz = dist / f"lookalike-{VERSION}-linux-x86_64.tar.gz"
    _figure("deb_mib", round(deb.stat().st_size / 2**20, 1))
    _figure("tar_gz_mib", round(tgz.stat().st_size / 2**20, 1))
    info = subprocess.run(["dpkg-deb", "-f", str(deb)], capture_output=True, text=True, check=True).stdout
    assert "Package: lookalike" in info and f"Version: {VERSION}" in info
    for lib in ("libgl1", "libegl1", "libfontconfig1", "libxcb-cursor0", "libxkbcommon-x11-0", "libdbus-1-3"):
        assert lib in info
    files = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    for path in (
        "./opt/lookalike/Lookalike",
        "./usr/bin/lookalike",
        "./usr/bin/lookalike-gui",
        "./usr/share/applications/lookalike.desktop",
        "./usr/share/icons/hicolor/256x256/apps/lookalike.png",
        "./usr/share/icons/hicolor/scalable/apps/lookalike.svg",
    ):
        assert path in files, path
    listing = subprocess.run(["tar", "-tzf", str(tgz)], capture_output=True, text=True, check=True).stdout
    assert f"lookalike-{VERSION}/Lookalike" in listing.splitlines()


def test_desktop_entry_validates() -> None:
    if not shutil.which("desktop-file-validate"):
        pytest.skip("desktop-file-validate not installed (apt-get install desktop-file-utils)")
    proc = subprocess.run(
        ["desktop-file-validate", str(REPO / "packaging" / "lookalike.desktop")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and not proc.stdout.strip(), proc.stdout
    text = (REPO / "packaging" / "lookalike.desktop").read_text()
    assert "MimeType=inode/directory;" in text and "%F" in text


def test_installs_and_runs_on_clean_debian(dist: Path) -> None:
    """apt-get install the .deb into a debootstrap minbase root; self-test, CLI and the real window there."""
    missing = [t for t in ("debootstrap", "chroot", "Xvfb", "xdotool", "import") if not shutil.which(t)]
    if os.geteuid() != 0 or missing:
        pytest.skip(
            f"needs root and {missing or 'nothing else'} (apt-get install debootstrap xvfb xdotool "
            f"imagemagick)"
        )
    deb = dist / f"lookalike_{VERSION}_amd64.deb"
    if not deb.exists():
        subprocess.run(
            ["bash", str(REPO / "packaging" / "build_deb.sh")],
            cwd=REPO,
            env=dict(os.environ, DIST=str(dist)),
            check=True,
        )
    out = ARTIFACTS / "debootstrap"
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", str(REPO / "packaging" / "test_in_debootstrap.sh"), str(deb), str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    _figure("debootstrap_test_seconds", round(time.perf_counter() - t0, 1))
    if proc.returncode == 75:
        pytest.skip(f"Debian mirror unreachable: {proc.stderr.strip()[-300:]}")
    assert proc.returncode == 0, (
        proc.stdout + proc.stderr + (out / "apt.log").read_text(errors="replace")[-3000:]
    )
    result = json.loads((out / "result.json").read_text())
    for key in ("root_seconds", "install_seconds", "self_test_seconds", "window_seconds"):
        _figure(f"clean_debian_{key}", result[key])
    assert result["packages_after"] > result["packages_before"]
    assert result["self_test_rc"] == 0, (out / "self-test.err").read_text()
    summary = json.loads((out / "self-test.json").read_text())
    assert summary["ok"] and summary["frozen"] and not summary["torch_loaded"]
    assert result["cli_rc"] == 0 and json.loads((out / "cli-scan.json").read_text())["groups"]
    assert result["gui"] == "window", (out / "gui.log").read_text()
    assert result["window_seconds"] < 10, "cold start to a visible window (target < 5 s)"
    assert result["alive_after_scan"] is True, (out / "gui.log").read_text()
    assert "Traceback" not in (out / "gui.log").read_text()
    from PIL import Image

    shot = Image.open(out / "screenshot.png").convert("RGB")
    colours = shot.getcolors(1 << 20)
    assert colours is None or len(colours) > 500, "the screenshot is (nearly) blank"
