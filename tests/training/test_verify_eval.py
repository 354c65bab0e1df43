"""The verifier's evaluation reading its edited copies from files (``training.verify_eval --as-files``)."""

import os

from helpers import DEMO
from PIL import Image

from core import verify as V
from training.pairset import load
from training.verify_eval import saved_copy

PHOTO = DEMO / "Camera" / "dune_grass.jpg"


def test_an_edited_copy_is_written_once_as_the_file_a_user_would_have(tmp_path):
    ref = f"{PHOTO}#colour"
    path = saved_copy(ref, tmp_path)
    first = os.stat(path).st_mtime_ns
    assert saved_copy(ref, tmp_path) == path and os.stat(path).st_mtime_ns == first  # not written again
    assert sorted(p.name for p in tmp_path.iterdir()) == [os.path.basename(path)]  # no partial file left
    with Image.open(path) as im:
        assert im.format == "JPEG" and im.size == load(ref).size
    with Image.open(saved_copy(f"{PHOTO}#screenshot", tmp_path)) as im:
        assert im.format == "PNG"
    # what the evaluation then measures: the copy read back from its file is verified as the photo
    verdict = V.verify(V.extract(str(PHOTO)), V.extract(path))
    assert verdict.same, verdict.reason
