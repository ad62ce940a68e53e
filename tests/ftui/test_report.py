"""`ftui report`: the folder, its links, missing runs shown as not evaluated, and the page in a real
headless browser (Debian's chromium; the slow test is skipped where it is not installed)."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from ftui.cli import main
from tests.ftui.app_fixtures import BASE_METRICS, build_states, make_study, write_eval
from tests.ftui.lineage_fixtures import make_stale


class Links(HTMLParser):
    """Every src= and href= of the page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href") and value is not None:
                self.links.append(value)
                if tag == "img":
                    self.images.append(value)


@pytest.fixture
def study(tmp_path: Path) -> Path:
    """The mini study in every queue state; base and two single-task runs evaluated, the rest missing."""
    registry = make_study(tmp_path / "study")
    build_states(registry)
    runs = registry.parent / "runs"
    better = {
        task: (metric, a * 0.5 if metric == "abs_error" else 0.9, s)
        for task, (metric, a, s) in BASE_METRICS.items()
    }
    write_eval(runs / "single-1", better, name="single-1")
    write_eval(runs / "single-2", BASE_METRICS | {"angle": ("abs_error", 10.0, 5.0)}, name="single-2")
    return registry


def report(study: Path, out: Path) -> int:
    return main(["--registry", str(study), "report", "--out", str(out)])


def test_the_report_folder_holds_every_heatmap_table_and_link(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "shared" / "report"
    assert report(study, out) == 0
    assert "heatmap figure(s)" in capsys.readouterr().out
    for name in ("single", "pair"):  # every [[heatmap]] of the registry, both evaluation sets
        for sets in ("atlantis", "standard"):
            for kind in ("png", "svg", "csv"):
                assert (out / "heatmaps" / f"{name}-{sets}.{kind}").stat().st_size > 0
    scores = list(csv.DictReader((out / "tables" / "predict-pair-atlantis.csv").open()))
    assert {row["model"] for row in scores} >= {"max", "mean"}
    assert (out / "tables" / "interference-pair-atlantis.csv").is_file()
    runs = list(csv.DictReader((out / "runs.csv").open()))
    assert [r["key"] for r in runs][:3] == ["base", "single-1", "single-2"] and len(runs) == 7
    page = (out / "index.html").read_text()
    parser = Links()
    parser.feed(page)
    assert len(parser.images) == 4
    for link in parser.links:  # relative, inside the folder, and there: opens with no server
        assert "://" not in link and not link.startswith(("/", "..")), link
        assert (out / link).is_file(), link
    assert "<script" not in page and "@import" not in page
    for field in ("registry", "profile", "commit", "date"):
        assert f"<dt>{field}</dt>" in page
    assert "<dd>smoke</dd>" in page
    assert "not evaluated yet" in page  # pair-* have no eval.json: grey cells, no crash
    readme = (out / "README.md").read_text()
    assert "profile: `smoke`" in readme and "commit: `" in readme and "![pair atlantis]" in readme


def test_the_report_names_the_stale_runs_of_a_heatmap(study: Path, tmp_path: Path) -> None:
    """single-1's eval.json was made from the old base: its heatmap cells are hatched and named."""
    make_stale(study.parent / "runs", "base", ["single-1"])
    out = tmp_path / "report"
    assert report(study, out) == 0
    legend = "hatched = stale (single-1): made from weights trained since; ftui launch --stale"
    assert legend in (out / "index.html").read_text() and legend in (out / "README.md").read_text()
    # (the run table shows single-1's running job: a job's state outranks what its folder shows)


def test_a_second_report_replaces_the_first_but_never_another_folder(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    assert report(study, out) == 0
    (out / "heatmaps" / "stale.png").write_bytes(b"old")
    assert report(study, out) == 0
    assert not (out / "heatmaps" / "stale.png").exists()
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.tex").write_text("keep me")
    assert report(study, precious) == 2
    assert (precious / "thesis.tex").read_text() == "keep me" and not (precious / "index.html").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left


def test_a_runs_folder_with_no_results_still_reports(tmp_path: Path) -> None:
    registry = make_study(tmp_path / "empty")
    out = tmp_path / "report"
    assert report(registry, out) == 0
    assert "9 cell(s) not evaluated yet" in (out / "index.html").read_text()


@pytest.mark.slow
def test_the_page_renders_in_headless_chromium(study: Path, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image  # matplotlib's own dependency

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run installs it)")
    out = tmp_path / "report"
    assert report(study, out) == 0
    shot = tmp_path / "page.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1200,1400",
            f"--screenshot={shot}",
            (out / "index.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    image = Image.open(shot).convert("RGB")
    assert image.size == (1200, 1400)
    pixels = np.asarray(image).reshape(-1, 3).astype(int)
    assert len(np.unique(pixels, axis=0)) > 200, "a blank or near-blank page"
    # The heatmap figure drew: its evaluated cells are green (the Greens colour map), which no text, grey
    # not-evaluated cell or table of the page is.
    r, g, b = pixels[:, 0], pixels[:, 1], pixels[:, 2]
    green = int(((g > r + 40) & (g > b + 20)).sum())
    assert green > 2000, green
    if keep := os.environ.get("FTUI_KEEP_SCREENSHOT"):  # to look at it: FTUI_KEEP_SCREENSHOT=page.png
        shutil.copy(shot, keep)
