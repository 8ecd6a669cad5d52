import io
from pathlib import Path

from PIL import Image

from gourmetgram.api.imaging import JPEG, detect_image_type
from gourmetgram.common import names
from gourmetgram.generator import images
from gourmetgram.generator.main import run


def test_sample_set_is_real_deterministic_jpegs_for_every_class() -> None:
    refs = images.sample_set()
    assert len(refs) == len(names.FOOD11_CLASSES) * images.SAMPLE_PER_CLASS
    assert {r.category for r in refs} == set(names.FOOD11_CLASSES)
    for ref in refs[:5]:
        data = ref.read()
        assert detect_image_type(data) == JPEG
        with Image.open(io.BytesIO(data)) as img:
            assert img.size == (images.SAMPLE_SIZE, images.SAMPLE_SIZE)
    assert images.sample_image(4, 1) == images.sample_image(4, 1)
    assert images.sample_image(4, 1) != images.sample_image(5, 1)


def test_make_sample_writes_the_food11_layout_and_index_reads_it(tmp_path: Path) -> None:
    run(["--make-sample", str(tmp_path), "--per-class", "2"])
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jpg"))
    assert len(files) == 22
    assert "training/class_00/0_0.jpg" in files and "training/class_10/10_1.jpg" in files
    refs, source = images.load_images(tmp_path)
    assert source == "food11" and len(refs) == 22
    by_file = {r.path.relative_to(tmp_path).as_posix(): r.category for r in refs if r.path}
    assert by_file["training/class_06/6_0.jpg"] == "Noodles/Pasta"
    assert by_file["training/class_10/10_1.jpg"] == "Vegetable/Fruit"


def test_index_ignores_other_files_and_unknown_dirs(tmp_path: Path) -> None:
    (tmp_path / "validation" / "class_03").mkdir(parents=True)
    (tmp_path / "validation" / "class_03" / "3_1.JPG").write_bytes(images.sample_image(3, 1))
    (tmp_path / "validation" / "class_03" / "notes.txt").write_text("x")
    (tmp_path / "validation" / "other").mkdir()
    (tmp_path / "validation" / "other" / "x.jpg").write_bytes(b"x")
    refs = images.index_dataset(tmp_path)
    assert [(r.category, r.filename) for r in refs] == [("Egg", "3_1.JPG")]


def test_missing_dataset_falls_back_to_the_sample_set(tmp_path: Path) -> None:
    refs, source = images.load_images(tmp_path / "nope")
    assert source == "sample" and refs
