"""generate_phantoms: determinism, output directory rules and argument checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from chestclip.phantom import PhantomSummary, generate_phantoms


def files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by relative path, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_identical_files(tmp_path: Path) -> None:
    first = generate_phantoms(tmp_path / "a", studies=20, image_size=64, seed=7)
    second = generate_phantoms(tmp_path / "b", studies=20, image_size=64, seed=7)
    assert first.n_images == second.n_images
    a, b = files(first.out), files(second.out)
    assert len(a) > 20 and a == b


def test_other_seed_gives_other_studies(tmp_path: Path) -> None:
    a = files(generate_phantoms(tmp_path / "a", studies=20, image_size=64, seed=7).out)
    b = files(generate_phantoms(tmp_path / "b", studies=20, image_size=64, seed=8).out)
    assert a["phantom_studies.csv"] != b["phantom_studies.csv"]
    assert a["ecgen-radiology/1.xml"] != b["ecgen-radiology/1.xml"]


def test_a_study_does_not_depend_on_how_many_are_made(tmp_path: Path) -> None:
    few = files(generate_phantoms(tmp_path / "few", studies=5, image_size=64, seed=2).out)
    many = files(generate_phantoms(tmp_path / "many", studies=12, image_size=64, seed=2).out)
    pngs = [name for name in few if name.startswith("NLMCXR_png/")]
    assert pngs and all(few[name] == many[name] for name in pngs)


def test_summary_counts_what_was_written(openi: PhantomSummary) -> None:
    assert openi.layout == "openi"
    assert openi.n_normal + openi.n_abnormal == openi.n_studies == 40
    assert len(list((openi.out / "NLMCXR_png").glob("*.png"))) == openi.n_images
    assert openi.n_studies < openi.n_images <= 2 * openi.n_studies


def test_refuses_a_non_empty_output(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not an empty directory"):
        generate_phantoms(tmp_path / "out", studies=2, image_size=64)
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"


def test_fills_an_existing_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    summary = generate_phantoms(tmp_path / "out", studies=2, image_size=64, layout="kaggle")
    assert (summary.out / "indiana_reports.csv").is_file()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"layout": "padchest"}, "layout must be one of"),
        ({"studies": 0}, "studies must be at least 1"),
        ({"image_size": 16}, "image_size must be at least"),
        ({"visibility": -0.5}, "visibility must be >= 0"),
        ({"visibility": float("nan")}, "visibility must be >= 0"),
        ({"visibility": float("inf")}, "visibility must be >= 0 and finite"),
        ({"seed": -1}, "seed must be non-negative"),
    ],
)
def test_rejects_bad_arguments(tmp_path: Path, arguments: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_phantoms(tmp_path / "out", **{"studies": 2, "image_size": 64, **arguments})
    assert not (tmp_path / "out").exists()
