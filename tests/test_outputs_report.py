import base64
import hashlib
import re
import shutil
import subprocess

import pytest
from report_fixtures import SITES, build_run, sites_frame

from sitescreen.data.sources import DataOrigin
from sitescreen.outputs.charts import render_charts
from sitescreen.outputs.report import render_report
from sitescreen.outputs.summary import (
    HEADLINE_HAZARDS,
    approximate_pathways,
    disclosure_sentences,
    format_shares_table,
    hazard_sentences,
    headline_table,
)

EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def run():
    rows = [dict(r) for r in SITES]
    rows[0]["name"] = EVIL
    rows[2]["address"] = '"><img src=x onerror=alert(2)>'
    return build_run(sites=sites_frame(rows), hazards=("water_stress", "typhoon"))


@pytest.fixture(scope="module")
def charts(run):
    sites, table, shares, manifest = run
    part = shares[shares["hazard"].isin(HEADLINE_HAZARDS)]
    return render_charts(part, sites, table, manifest=manifest, formats=("png",),
                         maps=[("floods_typhoons", "pessimistic", 2050)], dpi=60)


@pytest.fixture(scope="module")
def report(run, charts):
    sites, table, shares, manifest = run
    out = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                        charts=charts)
    return out["report.html"].decode("utf-8"), out["report.md"].decode("utf-8")


def test_disclosure_sentence_numbers_come_from_the_levels(run):
    _, _, shares, _ = run
    # water stress, pessimistic 2030 (fixture): levels [5, 5, 2, 3, 4] at the 5 located sites
    # -> 4 of 5 at medium or above.
    sentences = disclosure_sentences(shares, hazards=("water_scarcity_drought",))
    assert ("In 2030 under the Pessimistic scenario, 4 of 5 sites (80 %) face medium or higher "
            "water scarcity and drought risk.") in sentences
    # typhoon optimistic 2030: levels [2, 1, 3, 3, 1], high ends one up -> 2 (40 %), 3 (60 %)
    ft = disclosure_sentences(shares, hazards=("floods_typhoons",))
    assert ft[0] == ("In 2030 under the Optimistic scenario, 2 of 5 sites (40 %) face medium or "
                     "higher floods and typhoons (without coastal_flood, river_flood) risk; between 40 "
                     "and 60 % across the model range.")
    # ordered by year, then scenario
    years = [int(re.match(r"In (\d{4})", s).group(1)) for s in ft]
    assert years == sorted(years)


def test_shares_table_text_keeps_working(run):
    _, _, shares, _ = run
    text = format_shares_table(shares, hazards=["typhoon"], data_origin="synthetic-demo")
    assert text.startswith("!! SYNTHETIC DEMO DATA")
    assert "Typhoon: % of screened sites at each risk level" in text


def test_html_has_sentences_tables_and_inlined_images(run, charts, report):
    html, _ = report
    _, _, shares, _ = run
    for sentence in disclosure_sentences(shares):
        assert sentence in html
    assert html.count('<img src="data:image/png;base64,') == len(charts)
    first = re.search(r'<img src="data:image/png;base64,([^"]+)"', html).group(1)
    assert base64.b64decode(first)[:8] == b"\x89PNG\r\n\x1a\n"
    # a shares table per hazard and composite, and the per-site table
    for hazard in ("water_scarcity_drought", "floods_typhoons", "water_stress", "typhoon"):
        assert f'id="shares-{hazard}"' in html
    assert "<th>Medium+ %</th>" in html
    assert 'id="sites"' in html and 'id="methods"' in html and 'id="provenance"' in html


def test_html_loads_nothing_from_outside(report):
    html, _ = report
    assert not re.search(r"""\bsrc\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert not re.search(r"<link|@import", html, re.I)
    styles = "".join(re.findall(r"<style>(.*?)</style>", html, re.S))
    assert "url(" not in styles
    # Scripts are inline (no src), and the policy lets exactly those run, by their hash.
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    code = [body for attrs, body in scripts if "application/json" not in attrs]
    assert code and all("src" not in attrs for attrs, _ in scripts)
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp and "connect-src 'none'" in csp
    script_src = re.search(r"script-src ([^;]+);", csp).group(1).split()
    assert "'unsafe-inline'" not in script_src
    hashes = {"'sha256-" + base64.b64encode(hashlib.sha256(b.encode()).digest()).decode() + "'"
              for b in code}
    assert set(script_src) == hashes
    # dataset homepages are plain links, which is allowed
    assert '<a href="https://www.wri.org/data/aqueduct-global-maps-40-data"' in html


def test_user_text_is_escaped(report):
    html, md = report
    assert EVIL not in html and EVIL not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script>alert(1)&lt;/script>" in md  # no tag can open without '<'
    assert "<img src=x" not in html and "<img src=x" not in md


def test_synthetic_warning_is_prominent(report):
    html, md = report
    body = html[html.index("<body>"):]
    assert body.index('class="banner"') < body.index("<h1")
    assert "SYNTHETIC DEMO DATA" in body[: body.index("<h1")]
    # On the first screen the banner says it once, not again under the title.
    assert body[: body.index("<h2")].count("SYNTHETIC DEMO DATA") == 1
    assert md.startswith("> **SYNTHETIC DEMO DATA")


def test_real_data_report_has_no_synthetic_banner():
    sites, table, shares, manifest = build_run(hazards=("typhoon",), origin=DataOrigin.MIRROR,
                                               years=(2030,))
    out = render_report(shares=shares, sites=sites, table=table, manifest=manifest, charts={})
    assert b"SYNTHETIC" not in out["report.html"] and b"SYNTHETIC" not in out["report.md"]


def test_methods_provenance_and_geocoding_sections(report):
    html, md = report
    # approximate pathway flagged with its note (Aqueduct Floods has no RCP6.0 layer)
    assert "typhoon-china-grade-rp50-v1" in html
    assert "edges 17.2, 24.5, 32.7, 41.5" in html
    assert "2041-2060" in html
    # provenance: licences and versions
    assert "CC BY 4.0" in html and "Y2023M07D05" in html and "v04r01" in html
    # the unresolved site with its reason, and the coarse (district- and city-level) sites
    assert "no match for &#x27;Nowhere Road&#x27;" in html
    assert "Coarse locations (2)" in html
    assert "## Methods" in md and "## Data provenance and licences" in md
    # Screened with typhoon alone, the composite's label says what it lacks.
    assert ("![Floods and typhoons (without coastal\\_flood, river\\_flood): Pessimistic 2050]"
            "(charts/map_floods_typhoons_pessimistic_2050.png)") in md


def test_site_table_shows_levels_per_headline_hazard(run, report):
    html, md = report
    sites, table, _, _ = run
    # Beijing: water stress pessimistic 2050 is min(5, 5 + 1 + 1) = 5
    row = next(line for line in md.splitlines() if line.startswith("| bj |"))
    header = next(line for line in md.splitlines() if line.startswith("| Site | Name"))
    cols = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[cols.index("WSD Pes 2050")] == "5"
    # the unresolved site has no level anywhere and says why
    xx = next(line for line in md.splitlines() if line.startswith("| xx |"))
    assert "unresolved location" in xx
    assert all(c.strip() == "-" for c in xx.strip("|").split("|")[4:-1])


def test_changes_section(run, charts):
    sites, table, shares, manifest = run
    changes = {"previous_run": "20240101T000000Z-ffffff", "previous_created_at": "2024-01-01",
               "counts": {"sites_added": 1, "level_changes": 1, "unexplained": 1},
               "input_changes": [], "sites_added": [{"site_id": "gz", "name": EVIL}],
               "sites_moved": [{"site_id": "bj", "name": "Beijing", "distance_m": 853.2,
                                "cause": "site moved"}],
               "level_changes": [{"site_id": "sh", "hazard": "typhoon", "hazard_label": "Typhoon",
                                  "scenario": "optimistic", "year": 2030, "previous_level": 2,
                                  "level": 3, "cause": "unexplained",
                                  "cause_group": "unexplained"}]}
    out = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                        charts={}, changes=changes)
    html = out["report.html"].decode()
    assert 'id="changes"' in html and "20240101T000000Z-ffffff" in html
    assert "853" in html and "1 level changes have no recorded cause" in html
    assert EVIL not in html


def test_report_is_deterministic(run, charts, report):
    sites, table, shares, manifest = run
    again = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                          charts=charts)
    assert again["report.html"].decode() == report[0]


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None,
                    reason="chromium is not installed (Debian package 'chromium'); the "
                           "headless rendering check of report.html is skipped")
def test_report_renders_in_headless_chromium(report, tmp_path):
    import matplotlib.image as mpimg

    html, _ = report
    page = tmp_path / "report.html"
    page.write_text(html, encoding="utf-8")
    shot = tmp_path / "shot.png"
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
           "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    img = mpimg.imread(shot)
    assert img.shape[0] >= 1000 and img.shape[1] >= 1000
    rgb = img[..., :3]
    # the red synthetic-data banner is at the top, and the page is not blank
    top = rgb[: 80].reshape(-1, 3)
    assert ((top[:, 0] > 0.6) & (top[:, 1] < 0.2) & (top[:, 2] < 0.25)).mean() > 0.2
    assert rgb.std() > 0.1


def test_empty_shares_are_handled():
    sites, table, shares, manifest = build_run(hazards=("typhoon",), years=(2030,))
    empty = shares.iloc[0:0]
    out = render_report(shares=empty, sites=sites, table=table, manifest=manifest, charts={})
    assert b"## Headline: sites at medium or higher risk" in out["report.md"]
    assert b"Share of sites per risk level" in out["report.md"]


# ----------------------------------------------------------------------------- first screen

def test_title_is_the_portfolio_name(run):
    from sitescreen.catalog import load_catalog
    from sitescreen.data.sources import DataSource
    from sitescreen.manifest import build_manifest
    from sitescreen.pipeline import ScreeningRequest

    sites, table, shares, manifest = run
    # the fixture's sites frame has no GeoJSON name: the file name
    assert manifest["title"] == "sites.geojson"
    named = sites.copy()
    named.attrs["source_meta"] = {"name": "Example portfolio"}
    data = DataSource(root="/demo", origin=DataOrigin.SYNTHETIC_DEMO, description="test")

    def title(request, frame):
        return build_manifest(request=request.to_dict(), run_id="20250101T000000Z-aaaaaa",
                              catalog=load_catalog(), data=data, sites=frame, results=[],
                              timings={})["title"]

    assert title(ScreeningRequest(sites="x/sites.geojson", data="d"), named) == "Example portfolio"
    assert title(ScreeningRequest(sites="x/sites.geojson", data="d", title="Group sites 2025"),
                 named) == "Group sites 2025"
    out = render_report(shares=shares, sites=sites, table=table,
                        manifest={**manifest, "title": "Group <sites>"}, charts={})
    html = out["report.html"].decode()
    assert "<h1>Group &lt;sites&gt;</h1>" in html
    assert "<title>Group &lt;sites&gt;: climate risk screening</title>" in html
    assert out["report.md"].decode().splitlines()[2] == "# Group &lt;sites>"


def test_first_screen_is_the_headline_table_then_one_sentence_per_hazard(run, report):
    html, md = report
    _, _, shares, _ = run
    body = html[html.index("<body>"):]
    # Title, headline table and sentences come before the contents and everything else.
    headline = body.index('<table class="headline">')
    assert body.index("<h1") < headline < body.index("<nav>") < body.index('id="shares"')
    table = body[headline: body.index("</table>", headline)]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    cells = [re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r) for r in rows]
    assert cells[0] == ["Hazard", "Scenario", "2030 medium+", "2050 medium+", "Sites screened"]
    # water stress pessimistic 2030: levels [5, 5, 2, 3, 4] -> 80 %, 5 of the 6 sites
    # screened (one unresolved); one row per headline hazard x scenario.
    pes = next(c for c in cells[1:] if c[1] == "Pessimistic")
    got = shares.set_index(["hazard", "scenario", "year"]).loc[
        ("water_scarcity_drought", "pessimistic", 2030)]
    assert pes[2] == f"{got['medium_plus_pct']:.0f} %" == "80 %"
    assert pes[4] == "5 of 6 (1 unresolved)"
    assert len(cells) == 1 + 2 * 3
    # one sentence per headline hazard (not one per scenario and year), stating the range
    first_screen = body[headline: body.index("<nav>")]
    items = re.findall(r"<li>(.*?)</li>", first_screen)
    assert len(items) == 2
    assert items[0].startswith("Water scarcity and drought: from ")
    assert "face medium or higher risk across 3 scenarios and the years 2030 and 2050" in items[0]
    # the per scenario and year sentences are still there, folded
    assert "One sentence per hazard, scenario and year (12)" in body


def test_weighted_headline_shows_the_weighted_share():
    from sitescreen.aggregate import shares as compute_shares

    sites, table, _, _ = build_run(hazards=("water_stress",), years=(2030,))
    sites = sites.assign(asset_value=[10.0, 0.0, 0.0, 0.0, 0.0, 5.0])
    weighted = compute_shares(table, sites, weight="asset_value")
    header, rows = headline_table(weighted)
    # only Shanghai (level 4 optimistic 2030) has a value: 100 % by asset value, of a base
    # of 10; the unresolved site carries 5, which the denominators say
    opt = next(r for r in rows if r[1] == "Optimistic")
    assert opt[2].endswith("; 100 % of 10 asset_value")
    assert opt[-1] == "5 of 6 (1 unresolved); 5 asset_value not screened"
    assert ("100 % of the 10 asset_value at screened sites (5 at sites not located or without "
            "data)") in hazard_sentences(weighted)[0]
    assert all("% of the 10 asset_value at screened sites (5 at sites not located" in s
               for s in disclosure_sentences(weighted, hazards=("water_scarcity_drought",)))


def test_approximate_pathways_are_attributed_to_their_component():
    sites, table, shares, manifest = build_run()
    row = shares[(shares["hazard"] == "floods_typhoons")
                 & (shares["scenario"] == "current_trend")].iloc[0]
    # Aqueduct Floods has no SSP2-4.5 layer (approximate), the typhoon table has ssp245.
    assert row["pathway"] == ("river_flood:rcp4p5 (approximate); "
                              "coastal_flood:rcp4p5 (approximate); typhoon:ssp245")
    assert approximate_pathways(row) == ["river_flood:rcp4p5", "coastal_flood:rcp4p5"]
    sentence = next(s for s in disclosure_sentences(shares, hazards=("floods_typhoons",))
                    if "Current Trend" in s)
    assert sentence.endswith("(dataset pathways river_flood:rcp4p5 and coastal_flood:rcp4p5 "
                             "approximate this scenario).")
    assert "typhoon:ssp245 approximates" not in " ".join(disclosure_sentences(shares))
    (ft,) = hazard_sentences(shares, hazards=("floods_typhoons",))
    assert ft.endswith("; dataset pathways river_flood:rcp4p5 and coastal_flood:rcp4p5 only "
                       "approximate Current Trend.")
    html = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                         charts={})["report.html"].decode()
    assert "typhoon:ssp245 (approximate)" not in html
    assert "river_flood:rcp4p5 (approximate); coastal_flood:rcp4p5 (approximate); " \
        "typhoon:ssp245" in html


def test_methods_are_stated_once_per_hazard(report):
    html, md = report
    methods = md[md.index("## Methods"): md.index("## Data provenance")]
    for hazard in ("water\\_stress", "typhoon"):
        part = methods[methods.index(f"({hazard})"):]
        part = part[: part.find("\n### ")] if "\n### " in part else part
        assert part.count("- Method: ") == 1


def test_long_tables_are_folded_and_open_for_print(run, monkeypatch):
    from sitescreen.outputs import report as report_module

    sites, table, shares, manifest = run
    monkeypatch.setattr(report_module, "_FOLD_ROWS", 3)
    html = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                         charts={})["report.html"].decode()
    assert '<details class="fold"><summary>Level per site: 6 sites</summary>' in html
    assert "@media print" in html and "beforeprint" in html


def test_headline_markdown_for_the_prefect_artifact(run):
    from sitescreen.outputs.report import headline_markdown

    _, _, shares, manifest = run
    md = headline_markdown(shares, manifest, run_dir="/srv/results/x",
                           report_uri="file:///srv/results/x/report.html")
    assert md.startswith("# sites.geojson\n")
    assert "**Warning:** SYNTHETIC DEMO DATA" in md
    assert "| Hazard | Scenario | 2030 medium+ | 2050 medium+ | Sites screened |" in md
    assert md.count("\n- ") == 2  # one sentence per headline hazard
    assert md.rstrip().endswith("[HTML report](file:///srv/results/x/report.html) (opens on "
                                "the machine that wrote it)")


def test_share_records_put_the_headline_first(run):
    from sitescreen.outputs.summary import SHARE_HEADLINE_COLUMNS, share_records

    _, _, shares, _ = run
    records = share_records(shares)
    assert len(records) == len(shares)
    cols = list(records[0])
    assert cols[:4] == ["hazard", "scenario", "year", "medium_plus_pct"]
    assert [c for c in cols if c in SHARE_HEADLINE_COLUMNS] == cols[:len(
        [c for c in SHARE_HEADLINE_COLUMNS if c in shares.columns])]
    assert [r["hazard"] for r in records[:12]] == ["water_scarcity_drought"] * 6 + \
        ["floods_typhoons"] * 6


def test_the_report_answers_the_cooling_question_for_data_centers():
    from report_fixtures import cooling_run

    sites, table, shares, manifest = cooling_run()
    md = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                       charts={})["report.md"].decode()

    section = md[md.index("## Data-center cooling energy"):]
    section = section[:section.index("\n## ", 5)]
    # By hand: 2000 kW x 8760 h x (1.4 - 1) x 0.7 = 4,905.6 MWh of cooling today; +25 % =
    # 1,226.4 MWh (10 %: 490.6, 50 %: 2,452.8); per MW 613.2 MWh, 398,580 CNY at 0.65/kWh.
    assert ("By 2050 under the Pessimistic scenario (ssp585, 2040-2059), cooling electricity "
            "of the 1 data center with data changes by 25 % (p10-p90 range 10 to 50 %); "
            "613 MWh/year per MW of IT load (398,580 CNY/year per MW); in total 1,226 "
            "MWh/year (range 491 to 2,453) for the 1 data center with an IT load, 797,160 "
            "CNY/year.") in section.replace("\n", " ")
    assert "pue=1.4 (site)" in section and "cooling\\_share=0.7 (default)" in section
    assert "PUE 1.5" in section and "0.65 CNY/kWh" in section
    assert manifest["data_center_cooling"][0]["per_site"]["cd"].startswith("it_load_kw=2000")


@pytest.mark.parametrize("cap", [2000, 3])
def test_report_from_the_columns_equals_the_report_from_the_long_table(run, charts, cap,
                                                                       monkeypatch):
    from sitescreen.aggregate import SiteResults
    from sitescreen.outputs import report as report_module

    monkeypatch.setattr(report_module, "_MAX_SITE_ROWS", cap)
    sites, table, shares, manifest = run
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    a = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                      charts=charts)
    b = render_report(shares=shares, sites=sites, table=results, manifest=manifest,
                      charts=charts)
    assert a == b
    if cap == 3:
        assert "Listed: the 3 of 6 sites with the highest levels" in b["report.md"].decode()


def test_long_geocoding_tables_are_capped_with_a_note(monkeypatch):
    from sitescreen.outputs import report as report_module

    rows = [dict(r) for r in SITES]
    for r in rows[:3]:
        r.update(geocode_precision="city", location_source="geocoded")
    sites, table, shares, manifest = build_run(sites=sites_frame(rows), hazards=("typhoon",),
                                               years=(2030,))
    monkeypatch.setattr(report_module, "_MAX_SITE_ROWS", 2)
    md = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                       charts={})["report.md"].decode()
    section = md.split("Coarse locations (4)")[1].split("##")[0]
    assert "The first 2 of 4 are listed; every one is in the geocode\\_precision field" in section
    assert section.count("\n| ") == 3  # header and two sites


def test_provenance_never_shows_a_pinned_checksum_beside_synthetic_data():
    """The catalog pins the upstream file's SHA-256; beside synthetic data that pin would
    read as "this file was verified", so it is shown only for real data."""
    for origin, shown in ((DataOrigin.SYNTHETIC_DEMO, False), (DataOrigin.MIRROR, True)):
        sites, table, shares, manifest = build_run(hazards=("water_stress",), origin=origin,
                                                   years=(2030,))
        listed = [d["sha256"][:12] for d in manifest["datasets"] if d.get("sha256")]
        assert listed, manifest["datasets"]
        html = render_report(shares=shares, sites=sites, table=table, manifest=manifest,
                             charts={})["report.html"].decode()
        assert "Upstream SHA-256 (catalog pin)" in html
        assert all((pin in html) is shown for pin in listed), (origin, listed)
        assert ("synthetic data, not the upstream file" in html) is not shown
