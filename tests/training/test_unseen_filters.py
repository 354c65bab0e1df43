"""The presets kept out of every training and tuning step (training.unseen_filters)."""

import numpy as np
import pytest
from helpers import DEMO
from PIL import Image

from core import verify as V
from training.augment import COLOUR_FILTERS, EDITS
from training.pairset import KINDS
from training.unseen_filters import UNSEEN_FILTERS, _saved


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    im = Image.open(DEMO / "Camera" / "dune_grass.jpg").convert("RGB")
    im.thumbnail((640, 640))
    return im


def test_the_presets_are_apart_from_what_is_trained_and_tuned_on():
    assert len(UNSEEN_FILTERS) == 8
    assert not set(UNSEEN_FILTERS) & (set(EDITS) | set(COLOUR_FILTERS) | set(KINDS))
    assert all(f not in EDITS.values() and f not in COLOUR_FILTERS.values() for f in UNSEEN_FILTERS.values())


@pytest.mark.parametrize("name", sorted(UNSEEN_FILTERS))
def test_each_preset_changes_the_photo_deterministically_and_keeps_its_size(photo, name):
    a = UNSEEN_FILTERS[name](photo, np.random.default_rng(1))
    b = UNSEEN_FILTERS[name](photo, np.random.default_rng(1))
    assert a.mode == "RGB" and a.size == photo.size
    assert np.array_equal(np.asarray(a), np.asarray(b))
    diff = np.abs(np.asarray(a, np.int16) - np.asarray(photo, np.int16)).mean()
    assert diff > 5, diff  # a strong filter, not a nudge


@pytest.mark.parametrize("name", ["film", "cross_process", "teal_orange", "infrared"])
def test_a_photo_under_an_unseen_preset_is_verified_as_the_same_capture(photo, name):
    copy = _saved(UNSEEN_FILTERS[name](photo, np.random.default_rng(0)))
    verdict = V.verify(V.extract(photo), V.extract(copy))
    assert verdict.same, verdict.reason
