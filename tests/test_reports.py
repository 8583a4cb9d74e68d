"""The HTML reports (msxai_bids.reports, msxai_bids.stages.report) on a planted cohort.

Six subjects (sub-01 with two sessions) with heatmaps of two models, a registration flagged as
implausible for sub-03 and a crash file of sub-04; ``msxai … participant --reports-only``
writes the participants' reports, then ``msxai … group`` the analyses and ``group.html``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from bids.layout import parse_file_entities
from group_cohort import plant_heatmaps, write_group_cohort

from msxai_bids import bids, derivatives
from msxai_bids.cli.run import main
from msxai_bids.grid import CNN_GRID
from msxai_bids.reports import figures
from msxai_bids.reports.html import number
from msxai_bids.reports.participant import (
    ReportContext,
    heatmap_scale,
    heatmap_scales,
    write_participant_report,
)
from msxai_bids.stages.report import ReportPlan, run_participant_reports

pytestmark = pytest.mark.usefixtures("restore_logging")

FLAGGED, CRASHED = "03", "04"
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.IGNORECASE)


class Links(HTMLParser):
    """Every ``src`` and ``href`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href") and value]


def links(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text())
    return parser.links


def plant_participant_files(out: Path) -> None:
    """Registration QC of every image (sub-03's implausible), predictions, a crash of sub-04."""
    for preproc in sorted(out.glob("sub-*/**/*_desc-preproc_FLAIR.nii.gz")):
        source = {**parse_file_entities(str(preproc)), "suffix": "FLAIR"}
        for model in ("first", "second"):
            heatmap = derivatives.find(out, "heatmap", source, model=model, method="lrpepsilon")
            meta = json.loads(bids.sidecar_path(heatmap).read_text())
            row = {
                "participant_id": f"sub-{source['subject']}", "model_id": meta["ModelID"],
                "model_sha256": "0" * 64, "logit": 2.1972, "probability": meta["Probability"],
                "predicted_label": meta["PredictedLabel"],
            }  # fmt: skip
            path = derivatives.path(out, "predictions", source, model=model)
            bids.write_tsv(path, pd.DataFrame([row]))
        plausible = source["subject"] != FLAGGED
        qc = {
            "nmi": 1.2, "dice": 0.97 if plausible else 0.3, "white_grey_ratio": 0.8731,
            "plausible": plausible, "reason": "",
        }  # fmt: skip
        derivatives.path(out, "qc", source).write_text(json.dumps(qc))
    crash = out / derivatives.LOGS_DIR / f"crash-20261203-000000-user-n4-{CRASHED}.txt"
    crash.parent.mkdir(parents=True, exist_ok=True)
    node = f"msxai_participant_wf.sub_{CRASHED}_wf.preproc_wf.n4"
    crash.write_text(f"Node: {node}\n\nValueError: planted failure\n")


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    """The cohort, its participant reports, then its group analyses and group report."""
    root = tmp_path_factory.mktemp("reports")
    bids_dir, out = write_group_cohort(root, 6)
    plant_heatmaps(out, bids_dir, "first", 1.0)
    plant_heatmaps(out, bids_dir, "second", 2.0)
    plant_participant_files(out)
    common = [str(bids_dir), str(out), "--skip-bids-validation"]
    participant = main([*common[:2], "participant", "--reports-only", *common[2:]])
    group = main([*common[:2], "group", *common[2:]])
    return group, participant, bids_dir, out


def reports(out: Path) -> list[Path]:
    return sorted(out.glob("*.html"))


def test_both_levels_write_their_reports(reported):
    group, participant, _, out = reported
    assert (group, participant) == (0, 0)
    names = [p.name for p in reports(out)]
    assert names == ["group.html", *(f"sub-{i:02d}.html" for i in range(1, 7))]


def test_every_file_a_report_references_exists_and_none_is_remote(reported):
    out = reported[-1]
    pages = reports(out) + sorted(out.glob("sub-*/figures/*.html"))
    for page in pages:
        text = page.read_text()
        assert not REMOTE.search(text), page
        for link in links(page):
            if link.startswith(("#", "data:")):  # within the page, or inline
                continue
            assert "://" not in link and not link.startswith("//"), (page, link)
            assert (page.parent / link).is_file(), (page, link)
    sub01 = links(out / "sub-01.html")
    assert sum(link.endswith("_statmap.png") for link in sub01) == 4  # 2 sessions × 2 models
    assert sum(link.endswith("_statmap.html") for link in sub01) == 4


def test_the_slice_viewers_draw_on_canvases_made_for_frequent_reads(reported):
    viewers = sorted(reported[-1].glob("sub-*/figures/*_statmap.html"))
    assert viewers
    for viewer in viewers:
        text = viewer.read_text()
        assert "getContext(" in text, viewer  # nilearn's viewer script is inlined
        assert 'getContext("2d")' not in text, viewer
        assert text.count("willReadFrequently:true") >= 3, viewer


def test_participant_numbers_equal_the_files_they_come_from(reported):
    out = reported[-1]
    page = (out / "sub-02.html").read_text()
    source = {"subject": "02", "suffix": "FLAIR"}
    prediction = bids.read_tsv(derivatives.find(out, "predictions", source, model="second"))
    assert f'<td class="num">{number(prediction["probability"].iloc[0])}</td>' in page
    assert f'<td class="num">{number(prediction["logit"].iloc[0])}</td>' in page
    qc = json.loads(derivatives.find(out, "qc", source).read_text())
    assert f'<td class="num">{number(qc["dice"])}</td>' in page
    assert f'<td class="num">{number(qc["white_grey_ratio"])}</td>' in page
    meta = json.loads(
        bids.sidecar_path(
            derivatives.find(out, "heatmap", source, model="first", method="lrpepsilon")
        ).read_text()
    )
    assert f"<b>{number(meta['LesionRelevanceShare'])}</b>" in page


def test_group_numbers_equal_the_group_tables(reported):
    out = reported[-1]
    page = (out / "group.html").read_text()
    for model in ("first", "second"):
        table = bids.read_tsv(derivatives.path(out, "classification", model=model))
        for value in table[["balanced_accuracy", "sensitivity", "auc"]].to_numpy().ravel():
            assert f'<td class="num">{number(value)}</td>' in page
        lesions = bids.read_tsv(
            derivatives.path(out, "lesion_analysis", model=model, method="lrpepsilon")
        )
        for value in lesions["r_lesion_load_relevance_sum"].dropna():
            assert f'<td class="num">{number(value)}</td>' in page


def test_the_group_report_lists_the_flagged_registration_with_its_report(reported):
    page = (reported[-1] / "group.html").read_text()
    assert "1 with an implausible registration" in page
    flagged = re.search(r'<td class="flag">([^<]+)</td>.*?<a href="([^"]+)">', page, re.S)
    assert flagged.groups() == (
        f"sub-{FLAGGED}/anat/sub-{FLAGGED}_FLAIR.nii.gz",
        f"sub-{FLAGGED}.html",
    )


def test_a_crash_file_is_shown_in_its_participants_report_only(reported):
    out = reported[-1]
    assert "ValueError: planted failure" in (out / f"sub-{CRASHED}.html").read_text()
    assert "No errors reported" in (out / "sub-05.html").read_text()
    assert "planted failure" not in (out / "sub-05.html").read_text()


def test_the_methods_text_is_written_with_its_references(reported):
    out = reported[-1]
    text = derivatives.path(out, "citation").read_text()
    bib = derivatives.path(out, "citation_bib").read_text()
    assert "(Eitel et al., 2019)" in text and "(Bach et al., 2015; Eitel et al., 2019)" in text
    cited = len(text.split("## References", 1)[1].strip().split("\n\n"))
    assert cited == bib.count("\n@") + 1 and "@article{eitel2019," in bib
    assert "[@" not in (out / "sub-01.html").read_text()
    assert "Eitel et al., 2019" in (out / "group.html").read_text()


def test_reports_only_changes_nothing_but_reports(reported):
    _, _, bids_dir, out = reported
    outputs = [p for p in out.rglob("*") if p.is_file()]
    kept = {
        p: p.stat().st_mtime_ns for p in outputs if "figures" not in p.parts and p.suffix != ".html"
        and p.parts[len(out.parts)] != derivatives.LOGS_DIR
    }  # fmt: skip
    assert main([str(bids_dir), str(out), "group", "--reports-only", "--skip-bids-validation"]) == 0
    assert {p: p.stat().st_mtime_ns for p in kept} == kept


def test_a_rerun_draws_again_only_the_reports_whose_contents_changed(reported, caplog):
    _, _, bids_dir, out = reported
    flairs = bids.collect_images(bids.load_layout(bids_dir, out))
    pages = [page for page in reports(out) if page.name != "group.html"]
    drawn = {page: page.stat().st_mtime_ns for page in pages}
    caplog.set_level(logging.INFO, logger="msxai.reports")
    assert run_participant_reports(flairs, flairs, ReportPlan(out)) == 0
    assert {page: page.stat().st_mtime_ns for page in pages} == drawn
    assert f"{len(pages)} report(s) kept: nothing they show changed" in caplog.text
    # a figure lost since: its subject's report is drawn again, the others are kept
    figure = next((out / "sub-05" / "figures").glob("*_desc-mosaic_FLAIR.png"))
    figure.unlink()
    assert run_participant_reports(flairs, flairs, ReportPlan(out)) == 0
    assert figure.is_file()
    redrawn = {page for page in pages if page.stat().st_mtime_ns != drawn[page]}
    assert redrawn == {out / "sub-05.html"}
    assert run_participant_reports(flairs, flairs, ReportPlan(out, redraw=True)) == 0
    assert all(page.stat().st_mtime_ns != drawn[page] for page in pages)


def test_a_figure_that_fails_is_shown_missing_and_the_report_is_written(reported, monkeypatch):
    out = reported[-1]
    flair = next(
        iter(
            bids.load_layout(reported[2], out).get(
                subject="05", suffix="FLAIR", extension=".nii.gz"
            )
        )
    )

    def broken(*args, **kwargs):
        raise RuntimeError("no renderer")

    monkeypatch.setattr(figures, "relevance_views", broken)
    context = ReportContext(out, "msxai test", "run", {})
    page = write_participant_report(context, "05", [flair]).read_text()
    assert page.count("Figure missing: Relevance over the registered image") == 2
    assert "RuntimeError: no renderer" in page


def test_the_validator_accepts_the_reports_and_their_figures(reported):
    """The planted cohort lacks the preprocessing's sidecars; only the reports' files count."""
    out = reported[-1]
    result = subprocess.run(
        [bids.validator_executable(), str(out), "--datasetTypes", "derivative", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    issues = json.loads(result.stdout)["issues"]["issues"]
    about_reports = [
        i for i in issues
        if i.get("code") == "NOT_INCLUDED"
        or (i.get("severity") == "error" and re.search(r"\.html$|/figures/", i.get("location", "")))
    ]  # fmt: skip
    assert not about_reports, about_reports[:3]


def screenshot(page: Path, png: Path) -> str:
    """Render ``page`` in headless Chromium; return its log (console messages included)."""
    result = subprocess.run(
        [
            shutil.which("chromium"), "--headless", "--no-sandbox", "--disable-gpu",
            "--enable-logging=stderr", "--v=0", "--window-size=1280,3000",
            f"--screenshot={png}", page.as_uri(),
        ],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed")
def test_the_reports_open_in_a_browser_without_errors_and_are_not_blank(reported, tmp_path):
    import matplotlib.image

    out = reported[-1]
    for page in (out / "group.html", out / "sub-01.html"):
        png = tmp_path / f"{page.stem}.png"
        log = screenshot(page, png)
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        assert not console, console
        pixels = matplotlib.image.imread(png)[..., :3]
        assert pixels.std() > 0.05  # text, tables and figures, not an empty page
        assert (pixels.reshape(-1, 3) < 0.5).all(axis=1).mean() > 0.01  # dark ink somewhere


def test_a_heatmap_deleted_after_its_listing_is_left_out(tiny_bids, tmp_path, monkeypatch):
    """Array tasks share OUT: sub-02's task may delete its heatmaps (to recompute them) while
    sub-01's reads everyone's for the colour scales; sub-01's reports go on without them."""
    out = tmp_path / "out"
    flairs = bids.collect_images(bids.load_layout(tiny_bids, out))
    for scale, flair in enumerate(flairs, start=1):
        heatmap = np.full(CNN_GRID.shape, float(scale), np.float32)
        path = derivatives.path(out, "heatmap", flair.entities, model="m", method="lrpepsilon")
        bids.write_nifti(path, nb.Nifti1Image(heatmap, CNN_GRID.affine), {
            "ModelName": "m", "Method": "lrp-epsilon",
        })  # fmt: skip
    listing = derivatives.Kind.glob

    def listed_then_deleted(kind, output_dir, source=None, **values):
        found = listing(kind, output_dir, source, **values)
        for path in found:
            if source and source["subject"] == "02":
                path.unlink()
                bids.sidecar_path(path).unlink()
        return found

    monkeypatch.setattr(derivatives.Kind, "glob", listed_then_deleted)
    explained = bids.explained_heatmaps(out, flairs)
    assert [meta["ModelName"] for _, meta in explained] == ["m"]
    assert heatmap_scales(out, flairs) == {("m", "lrp-epsilon"): 1.0}
    gone = derivatives.path(out, "heatmap", flairs[1].entities, model="m", method="lrpepsilon")
    assert heatmap_scale([gone, explained[0][0]]) == 1.0
