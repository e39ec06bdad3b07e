"""The report: every file it links exists, it opens offline, each claim has its outcome, terms are defined."""
import csv
import json
import os
from html.parser import HTMLParser

import pytest

import cli
from simulator.present import drawing, glossary
from simulator.present import page as pg
from simulator.present import report as rep
from simulator.runs.sweep import sweep
from simulator.runs.verify import verify

REPORT_ARGS = ("report", "--quick", "--samples", "2000", "--no-progress")


class Page(HTMLParser):
    """What the tests look at: links, images, ids, badges, sections, glossary entries, table rows."""

    def __init__(self):
        super().__init__()
        self.refs, self.ids, self.badges, self.sections, self.glossary = [], set(), [], [], {}
        self.rows, self.scripts_src, self.text = [], [], []
        self._section, self._dt, self._in_glossary, self._skip = None, None, False, 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("src", "href"):
            if a.get(name) is not None:
                self.refs.append(a[name])
        if tag in ("script", "link") and (a.get("src") or a.get("href")):
            self.scripts_src.append(a.get("src") or a.get("href"))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "h2":
            self._in_glossary = a.get("id") == "glossary"
            self._section = a.get("id")
            if self._section:
                self.sections.append({"id": self._section, "badges": []})
        if tag == "span" and "badge" in (a.get("class") or ""):
            self.badges.append(a.get("data-outcome"))
            if self.sections:
                self.sections[-1]["badges"].append(a.get("data-outcome"))
        if tag == "dt" and self._in_glossary:
            self._dt = a.get("id")
            self.glossary[self._dt] = ""
        if tag == "tr" and "data-verdict" in a:
            self.rows.append(a)
        if tag in ("style", "script"):
            self._skip += 1

    def handle_endtag(self, tag):
        if tag == "dt":
            self._dt = None
        if tag in ("style", "script"):
            self._skip -= 1

    def handle_data(self, data):
        if self._dt:
            self.glossary[self._dt] += data
        elif not self._in_glossary and not self._skip:
            self.text.append(data)


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory):
    target = tmp_path_factory.mktemp("report") / "rep"
    try:
        cli.main([*REPORT_ARGS, "--out", str(target)])
    except SystemExit as e:
        assert e.code == 0
    return target


@pytest.fixture(scope="module")
def page(report_dir):
    p = Page()
    p.feed((report_dir / "index.html").read_text(encoding="utf-8"))
    return p


def test_every_link_and_image_resolves_in_the_folder(report_dir, page):
    names = set(os.listdir(report_dir))
    assert {"index.html", "results.json", "manifest.json", "checks.csv"} <= names
    assert page.refs
    for ref in page.refs:
        if ref.startswith("#"):
            assert ref[1:] in page.ids, ref
        else:
            assert ref in names, ref
    pngs = [n for n in names if n.endswith(".png")]
    assert pngs and all((report_dir / n).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for n in pngs)
    assert all(n[:-4] + ".svg" in names for n in pngs)
    assert {n[:-4] for n in pngs} <= {r[:-4] for r in page.refs if r.endswith(".png")}  # every figure shown


def test_the_page_opens_offline(report_dir, page):
    html_text = (report_dir / "index.html").read_text(encoding="utf-8")
    assert not page.scripts_src  # inline script and style only
    for ref in page.refs:
        assert "://" not in ref and not ref.startswith("//"), ref
    assert "http://" not in html_text and "https://" not in html_text


def test_every_claim_section_has_an_outcome_badge(report_dir, page):
    data = json.loads((report_dir / "results.json").read_text(encoding="utf-8"))
    claims = [c.get("id", c["claim"]) for c in data["claims"]]
    assert claims
    by_id = {s["id"]: s for s in page.sections}
    for cid in claims:
        assert cid in by_id, cid
        assert len(by_id[cid]["badges"]) == 1 and by_id[cid]["badges"][0], cid
    assert set(page.badges) <= set(pg.OUTCOME_COLOURS)


def test_the_glossary_defines_every_term_the_page_uses(page):
    body = " ".join(page.text)
    defined = set(page.glossary)
    for prefix, values in (("kind", {r["data-kind"] for r in page.rows}),
                           ("verdict", {r["data-verdict"] for r in page.rows}),
                           ("outcome", set(page.badges))):
        for v in values:
            assert f"g-{prefix}-{glossary.slug(v)}" in defined, (prefix, v)
    for word, anchor in glossary.TERMS.items():
        if word in body:
            assert f"g-{anchor}" in defined, word
    for word in ("p", "MCSE", "z*", "resolution", "family-wise α", "Δ", "running_var", "ratio/none", "Li max",
                 "uout", "before-bn", "after-bn", "recalibrated", "hidden", "head", "recalibrated-dropout-on"):
        assert any(word == t.strip() or word in t.split(" / ") for t in page.glossary.values()), word


def test_the_check_table_is_folded_filterable_and_in_checks_csv(report_dir, page):
    html_text = (report_dir / "index.html").read_text(encoding="utf-8")
    assert '<details id="all-checks">' in html_text
    assert {"f-claim", "f-verdict", "f-kind"} <= page.ids
    with open(report_dir / "checks.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(page.rows) > 0
    assert {"claim", "subclaim", "kind", "verdict", "params"} <= set(rows[0])


def test_values_are_escaped():
    row = {"experiment": "e<x>", "check": "<script>alert(1)</script>", "claim": "C1", "subclaim": "C1",
           "kind": "exact", "params": {"p": 0.5, "note": "a&b<c>"}, "formula": "", "closed_form": 1.0,
           "estimate": 1.0, "mcse": 0.1, "z": 0.0, "resolution": 0.5, "verdict": "confirmed"}
    text = pg.checks_table([row])
    assert "<script>" not in text and "&lt;script&gt;" in text and "a&amp;b&lt;c&gt;" in text


def test_manifest_and_no_leftovers(report_dir):
    manifest = json.loads((report_dir / "manifest.json").read_text())
    for k in ("command", "seed", "samples", "versions", "platform", "threads", "git_commit", "timings"):
        assert k in manifest
    assert sorted(os.listdir(report_dir.parent)) == ["rep"]  # no temporary or checkpoint left


def test_report_resumes_byte_identical(report_dir, tmp_path):
    # An interrupted report leaves its checkpoints: here, half of the verify grid and one figure.
    target = tmp_path / "rep"
    checkpoints = rep.checkpoint_folder(str(target))  # as the interrupted report made it: with its mark
    verify(quick=True, samples=2000, experiments=["inverted-dropout"],
           checkpoint=os.path.join(checkpoints, "verify.jsonl"))
    from simulator.present.figures import FIGURES
    f = FIGURES[0]
    sweep(f.experiment, f.grid, samples=2000, settings=f.settings,
          checkpoint=os.path.join(checkpoints, f.name + ".jsonl"))
    try:
        cli.main([*REPORT_ARGS, "--out", str(target)])
    except SystemExit as e:
        assert e.code == 0
    for name in os.listdir(report_dir):
        if name != "manifest.json":  # the manifest records timings
            assert (target / name).read_bytes() == (report_dir / name).read_bytes(), name


def test_figures_of_an_absent_experiment_are_skipped(monkeypatch):
    from simulator.present.figures import FIGURES, Figure
    assert all(f.experiment == "training" for f in FIGURES if f.optional)
    ghost = Figure("C1", "ghost", "t", "x", "y", "no-such-experiment", {"p": "0.5"}, keep=bool, x=len, series=str)
    monkeypatch.setattr(rep, "FIGURES", (*FIGURES[:1], Figure(**{**ghost.__dict__, "optional": True})))
    assert [f.name for f in rep.figures()] == [FIGURES[0].name]
    monkeypatch.setattr(rep, "FIGURES", (ghost,))
    with pytest.raises(KeyError):
        rep.figures()


def test_the_drawing_process_hands_back_its_figures_and_its_errors(tmp_path):
    # The figures are drawn in a separate (spawned) process while verify runs: what it draws, and an
    # error it meets, come back to the caller as if it had drawn them itself.
    rows = {"c4-batch-variance": [{"check": "batch-var", "facts": {"quantity": "batch-var"},
                                   "params": {"m": m, "p": 0.5}, "closed_form": 3.0, "estimate": 3.0, "mcse": 0.01,
                                   "verdict": "confirmed", "kind": "exact"}
                                  for m in (2, 4)]}
    done = drawing.start(str(tmp_path), rows)[0]()
    assert [name for _, name, _, _ in done] == ["c4-batch-variance"]
    assert (tmp_path / "c4-batch-variance.png").stat().st_size > 0 and (tmp_path / "c4-batch-variance.svg").exists()
    bad = {"c4-batch-variance": [{"check": "batch-var", "facts": {"quantity": "batch-var"}}]}  # no params: fails
    with pytest.raises(KeyError):
        drawing.start(str(tmp_path), bad)[0]()
