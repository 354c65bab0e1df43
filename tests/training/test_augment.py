import numpy as np
import pytest
from PIL import Image

from tests.training.conftest import make_photo
from training.augment import EDITS, random_edit


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Image.Image:
    return Image.open(make_photo(tmp_path_factory.mktemp("a") / "p.jpg", 3, (200, 120))).convert("RGB")


def test_there_are_21_edit_kinds():
    assert len(EDITS) == 21
    assert {"rotate_90", "screenshot", "letterbox", "crop_50", "text", "logo", "jpeg"} <= set(EDITS)


@pytest.mark.parametrize("name", sorted(EDITS))
def test_each_edit_changes_the_photo_deterministically(photo, name):
    a = EDITS[name](photo, np.random.default_rng(1))
    b = EDITS[name](photo, np.random.default_rng(1))
    assert a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert a.size != photo.size or not np.array_equal(np.asarray(a), np.asarray(photo))


def test_geometry_of_some_edits(photo):
    rng = np.random.default_rng(0)
    assert EDITS["rotate_90"](photo, rng).size == (120, 200)
    w, h = EDITS["crop_50"](photo, rng).size
    assert 0.35 < w * h / (200 * 120) < 0.6
    assert EDITS["screenshot"](photo, rng).size[0] > 200
    big = EDITS["letterbox"](photo, rng)
    assert big.size[0] >= 200 and big.size[1] >= 120 and big.size != photo.size


def test_random_edit_strength_zero_is_identity(photo):
    assert random_edit(photo, np.random.default_rng(0), strength=0) is photo
    out = random_edit(photo, np.random.default_rng(0))
    assert out.mode == "RGB"
