"""The interactive map of report.html: its data, the vendored Leaflet, and the page itself in
headless Chromium (offline: no request leaves the page)."""

import hashlib
import json
import os
import re
import shutil
from importlib import resources

import pytest
from headless import Page, chromium
from report_fixtures import SITES, build_run, sites_frame

from sitescreen.outputs.charts import LEVEL_COLOURS, render_charts
from sitescreen.outputs.report import render_report
from sitescreen.outputs.webmap import LEAFLET_VERSION, web_map

EVIL = "</script><script>window.pwned=1</script>"


@pytest.fixture(scope="module")
def run():
    rows = [dict(r) for r in SITES]
    rows[1]["name"] = "Beijing office " + EVIL
    return build_run(sites=sites_frame(rows))


def _labels(table):
    return dict(zip(table["hazard"], table["hazard_label"], strict=True))


def _map_json(html: str) -> dict:
    text = re.search(r'<script type="application/json" id="sitescreen-map-data">(.*?)</script>',
                     html, re.S).group(1)
    return json.loads(text)


def test_map_data_has_every_located_site_with_its_levels(run):
    sites, table, _, _ = run
    imap = web_map(sites, table, labels=_labels(table), synthetic=True)
    data = _map_json(imap.html)
    assert imap.n_sites == len(data["sites"]) == 5 and imap.n_unplaced == 1
    assert "xx" not in {s["id"] for s in data["sites"]}  # unresolved: not drawn
    # The level string is hazard-major over the (scenario, year) combinations.
    hazards = [h["id"] for h in data["hazards"]]
    combos = [(c["scenario"], c["year"]) for c in data["combos"]]
    assert hazards[:2] == ["water_scarcity_drought", "floods_typhoons"]
    bj = next(s for s in data["sites"] if s["id"] == "bj")
    for r in table[table["site_id"] == "bj"].itertuples():
        k = hazards.index(r.hazard) * len(combos) + combos.index((r.scenario, int(r.year)))
        assert bj["lv"][k] == str(int(r.level))
    # typhoon has a model spread: high ends one level up
    t = hazards.index("typhoon") * len(combos)
    assert bj["hi"][t] == str(min(5, int(bj["lv"][t]) + 1))
    # user text cannot close the data block
    assert EVIL not in imap.html and "\\u003c/script>" in imap.html
    assert "SYNTHETIC DEMO DATA" in imap.html


def test_no_located_site_no_map(run):
    sites, table, _, _ = run
    unplaced = sites.assign(lon=float("nan"), lat=float("nan"))
    assert web_map(unplaced, table, labels=_labels(table)) is None


def test_vendored_leaflet_is_the_recorded_release():
    folder = resources.files("sitescreen").joinpath("outputs/vendor/leaflet")
    readme = resources.files("sitescreen").joinpath("outputs/README.md").read_text("utf-8")
    assert f"leaflet@{LEAFLET_VERSION}" in readme
    for name in ("leaflet.js", "leaflet.css"):
        digest = hashlib.sha256(folder.joinpath(name).read_bytes()).hexdigest()
        assert f"`{name}` `{digest}`" in readme
    assert f't.version="{LEAFLET_VERSION}"' in folder.joinpath("leaflet.js").read_text("utf-8")
    assert folder.joinpath("LICENSE").read_text("utf-8").startswith("BSD 2-Clause License")


# ----------------------------------------------------------------------------- in Chromium

@pytest.fixture(scope="module")
def page_file(run, tmp_path_factory):
    sites, table, shares, manifest = run
    charts = render_charts(shares, sites, table, manifest=manifest, formats=("png",),
                           maps=[("floods_typhoons", "pessimistic", 2050)], dpi=60)
    out = render_report(shares=shares, sites=sites, table=table,
                        manifest={**manifest, "title": "Test portfolio"}, charts=charts)
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_bytes(out["report.html"])
    return path


_CELLS = """(() => Array.from(document.querySelectorAll('.leaflet-popup-content tr'))
    .map(tr => Array.from(tr.children).map(td => td.textContent)))()"""


def _keep(shot, name):
    """Screenshots go to $SITESCREEN_SCREENSHOTS too, when set, for a person to look at."""
    folder = os.environ.get("SITESCREEN_SCREENSHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        shutil.copy(shot, os.path.join(folder, name))


@pytest.mark.skipif(chromium() is None,
                    reason="chromium is not installed (Debian package 'chromium'); the "
                           "interactive map is not exercised")
def test_report_map_works_offline_in_chromium(run, page_file, tmp_path):
    import matplotlib.image as mpimg

    sites, table, _, _ = run
    with Page(width=1280, height=900, offline=True) as page:
        page.open(page_file.as_uri())
        # Nothing but the page itself (and inline data: images) was requested.
        assert [u for u in page.requests if not u.startswith(("data:", "file:"))] == []
        assert page.console_errors == []
        assert page.js("window.pwned === undefined")

        # First screen: the title and the whole headline table are visible at once.
        assert page.js("document.querySelector('h1').textContent") == "Test portfolio"
        bottom = page.js("document.querySelector('table.headline').getBoundingClientRect()"
                         ".bottom")
        assert 0 < bottom <= 900
        first = mpimg.imread(page.screenshot(tmp_path / "first_screen.png"))
        _keep(tmp_path / "first_screen.png", "first_screen.png")
        assert first.shape[:2] == (900, 1280) and first[..., :3].std() > 0.1

        # The map draws one marker per located site.
        n_markers = page.js("document.querySelectorAll('#sitescreen-map path.imap-site')"
                            ".length")
        assert n_markers == int(sites["location_source"].ne("unresolved").sum()) == 5
        assert page.js("document.querySelectorAll('#sitescreen-map path.leaflet-interactive, "
                       "#sitescreen-map path').length") > 100  # the country outlines

        # Switch to typhoon, optimistic, 2030: markers take the levels of that layer.
        page.js("""(() => { const m = document.getElementById('sitescreen-map');
            const set = (n, v) => { const s = m.querySelector('select[name=' + n + ']');
              s.value = v; s.dispatchEvent(new Event('change')); };
            set('hazard', 'typhoon'); set('scenario', 'optimistic'); set('year', '2030');
            })()""")
        shown = page.js("""Object.fromEntries(sitescreenMap.markers.map(m =>
            [m.site.id, m.getElement().getAttribute('data-level')]))""")
        want = table[(table["hazard"] == "typhoon") & (table["scenario"] == "optimistic")
                     & (table["year"] == 2030)].set_index("site_id")["level"]
        assert shown == {sid: str(int(want[sid])) for sid in shown}
        fill = page.js("""sitescreenMap.markers.find(m => m.site.id === 'sz')
            .getElement().getAttribute('fill')""")
        assert fill.lower() == LEVEL_COLOURS[int(want["sz"])].lower()

        # A real click on Beijing opens its levels.
        page.js("document.getElementById('sitescreen-map').scrollIntoView()")
        x, y = page.js("""(() => { const m = sitescreenMap.markers.find(m => m.site.id === 'bj');
            const r = m.getElement().getBoundingClientRect();
            return [r.x + r.width / 2, r.y + r.height / 2]; })()""")
        page.click(x, y)
        page.js("new Promise(r => setTimeout(r, 400))")
        title = page.js("document.querySelector('.leaflet-popup-content h4').textContent")
        assert title == "Beijing office " + EVIL  # as text, not markup
        cells = page.js(_CELLS)
        header, rows = cells[0], {r[0]: r[1:] for r in cells[1:]}
        bj = table[table["site_id"] == "bj"]
        for r in bj.itertuples():
            short = {"optimistic": "Opt", "current_trend": "Cur", "pessimistic": "Pes"}
            col = header.index(f"{short[r.scenario]} {r.year}") - 1
            text = rows[r.hazard_label][col]
            expected = str(int(r.level)) if r.level_low == r.level_high else \
                f"{int(r.level)} ({int(r.level_low)}-{int(r.level_high)})"
            assert text == expected, (r.hazard, r.scenario, r.year)
        shot = page.screenshot(tmp_path / "map_click.png")
        _keep(shot, "map_click.png")
        img = mpimg.imread(shot)[..., :3]
        # the popup's level cells are drawn in the level colours (level 5 red of bj's water
        # stress, pessimistic 2050)
        red = tuple(int(LEVEL_COLOURS[5][i:i + 2], 16) / 255 for i in (1, 3, 5))
        assert (abs(img - red).max(axis=2) < 0.03).sum() > 50

        # Zoom and pan work (the view changes).
        before = page.js("sitescreenMap.map.getZoom()")
        page.js("void sitescreenMap.map.zoomIn(1, {animate: false})")
        assert page.js("sitescreenMap.map.getZoom()") == before + 1
        centre = page.js("sitescreenMap.map.getCenter().lng")
        page.js("void sitescreenMap.map.panBy([200, 0], {animate: false})")
        assert page.js("sitescreenMap.map.getCenter().lng") > centre
        assert [u for u in page.requests if not u.startswith(("data:", "file:"))] == []

        # Printing opens every folded section (and closes them again after).
        folds = page.js("document.querySelectorAll('details').length")
        page.js("window.addEventListener('beforeprint', () => { window.opened = "
                "document.querySelectorAll('details[open]').length; }); 0")
        page.send("Page.printToPDF")
        assert folds > 0 and page.js("window.opened") == folds
        assert page.js("document.querySelectorAll('details[open]').length") == 0
