"""The training input pipeline: in-graph MATLAB bicubic, determinism, augmentation, bad files."""

import logging

import numpy as np
import pytest
from PIL import Image

from srlib.data import PatchSource, training_dataset
from srlib.degradation import imresize
from srlib.errors import DataError


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "train"
    (folder / "sub").mkdir(parents=True)
    for i, (h, w) in enumerate([(40, 50), (64, 33), (48, 48)]):
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / ("sub" if i else "") / f"{i}.png")
    return folder


def test_lr_made_in_the_graph_equals_numpy_imresize(image_folder):
    source = PatchSource([image_folder], patch_size=32, seed=1)
    lr, hr = next(iter(training_dataset(source, scale=4, batch_size=4)))
    assert tuple(lr.shape) == (4, 8, 8, 3) and tuple(hr.shape) == (4, 32, 32, 3)
    hr_uint8 = np.round(hr.numpy() * 255).astype(np.uint8)
    expected = np.stack([imresize(patch, 0.25) for patch in hr_uint8]).astype(np.float64)
    np.testing.assert_allclose(lr.numpy() * 255.0, expected, atol=1e-5 * 255)


def test_batches_are_a_function_of_seed_and_step(image_folder):
    source = PatchSource([image_folder], patch_size=16, seed=3)
    from_start = [b[1].numpy() for b in training_dataset(source, 2, batch_size=3).take(5)]
    resumed = [b[1].numpy() for b in training_dataset(source, 2, batch_size=3, start_step=3).take(2)]
    np.testing.assert_array_equal(resumed[0], from_start[3])
    np.testing.assert_array_equal(resumed[1], from_start[4])
    other_seed = PatchSource([image_folder], patch_size=16, seed=4)
    assert not np.array_equal(next(iter(training_dataset(other_seed, 2, batch_size=3)))[1].numpy(), from_start[0])


@pytest.mark.parametrize("degradation", ["bicubic", "mixed"])
def test_training_data_have_a_fixed_order_and_no_autotuning_thread(image_folder, degradation):
    # srlib.data.without_autotuning says why
    options = training_dataset(PatchSource([image_folder], patch_size=16), 2, batch_size=3,
                               degradation=degradation).options()
    assert options.deterministic is True and options.autotune.enabled is False


def test_patches_are_random_flips_and_rotations(tmp_path):
    # One image exactly the patch size: every patch must be one of its 8 flips / rotations.
    image = np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(image).save(tmp_path / "only.png")
    source = PatchSource([tmp_path], patch_size=16)
    variants = [np.rot90(v, k) for v in (image, image[:, ::-1]) for k in range(4)]
    seen = set()
    for k in range(120):
        patch = source.patch(k)
        matches = [i for i, v in enumerate(variants) if np.array_equal(patch, v)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))


def test_files_decoded_on_the_fly_skip_bad_and_small_ones(image_folder, caplog):
    (image_folder / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image_folder / "tiny.png")
    source = PatchSource([image_folder], patch_size=32, cache=False)
    assert not source.cached and len(source) == 5
    with caplog.at_level(logging.WARNING, logger="srlib.data"):
        patches = [source.patch(k) for k in range(60)]
    assert all(p.shape == (32, 32, 3) for p in patches)
    assert "broken.jpg" in caplog.text and "tiny.png" in caplog.text
    assert caplog.text.count("broken.jpg") == 1  # each bad file is reported once


def test_small_sets_are_cached_and_unusable_folders_fail_clearly(image_folder, tmp_path):
    assert PatchSource([image_folder], patch_size=32).cached
    with pytest.raises(DataError, match="no usable images"):
        PatchSource([image_folder], patch_size=100)  # every image is smaller than the patch
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.png").write_bytes(b"junk")
    with pytest.raises(DataError, match="no usable training images"):
        PatchSource([tmp_path / "junk"], patch_size=8, cache=False).patch(0)
    with pytest.raises(DataError, match="does not exist"):
        PatchSource([tmp_path / "missing"])
    with pytest.raises(DataError, match="not a multiple of the scale"):
        training_dataset(PatchSource([image_folder], patch_size=30), scale=4)


def test_survey_counts_sizes_and_names_skipped_files(tmp_path):
    from srlib.data import survey, survey_markdown

    folder = tmp_path / "set"
    folder.mkdir()
    Image.fromarray(np.zeros((30, 40, 3), np.uint8)).save(folder / "a.png")
    Image.fromarray(np.zeros((50, 20, 3), np.uint8)).save(folder / "b.png")
    Image.fromarray(np.zeros((5, 5, 3), np.uint8)).save(folder / "tiny.png")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (row,) = survey({"mine": folder}, min_size=10)
    assert (row["images"], row["skipped"]) == (2, 2)
    assert row["width"] == (20, 40) and row["height"] == (30, 50) and row["megapixels"] == 0.0
    assert any(s.startswith("broken.png") for s in row["skipped_files"])
    assert any(s.startswith("tiny.png") and "smaller than 10" in s for s in row["skipped_files"])
    assert "| mine | 2 | 20–40 | 30–50 | 0.0 | 2 (" in survey_markdown([row])


def test_summary_names_the_folders_holding_the_images(image_folder):
    summary = PatchSource([image_folder], patch_size=32).summary()
    assert summary == {"name": "train+sub", "images": 3, "folders": [str(image_folder)]}


def test_validation_images_too_small_to_score_are_skipped_by_name(tmp_path, caplog):
    from srlib.data import validation_images

    Image.fromarray(np.full((12, 12, 3), 90, np.uint8)).save(tmp_path / "tiny.png")
    Image.fromarray(np.full((40, 48, 3), 90, np.uint8)).save(tmp_path / "fine.png")
    assert [name for name, _ in validation_images(tmp_path, scale=4)] == ["fine"]
    assert "tiny.png" in caplog.text
