import io

import matplotlib
import matplotlib.image as mpimg
import numpy as np
import pytest
from report_fixtures import build_run

from sitescreen.data.sources import DataOrigin
from sitescreen.outputs.charts import figure_bytes, map_figure, render_charts, shares_figure
from sitescreen.outputs.styling import LEVEL_COLOURS, NO_DATA_COLOUR, map_layers

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DPI = 80  # small images keep the tests fast; the layout is in inches


@pytest.fixture(scope="module")
def run():
    return build_run(hazards=("water_stress", "typhoon"))


@pytest.fixture(scope="module")
def charts(run):
    sites, table, shares, manifest = run
    part = shares[shares["hazard"] == "typhoon"]
    return render_charts(part, sites, table, manifest=manifest,
                         maps=[("floods_typhoons", "pessimistic", 2050)], dpi=DPI)


def test_render_charts_names_shares_charts_in_png_and_svg_and_maps(charts):
    assert set(charts) == {
        "charts/typhoon_shares.png", "charts/typhoon_shares.svg",
        "charts/map_floods_typhoons_pessimistic_2050.png",
    }


def test_png_charts_are_real_images(charts):
    for name, data in charts.items():
        if not name.endswith(".png"):
            continue
        assert data[:8] == PNG_MAGIC
        img = mpimg.imread(io.BytesIO(data), format="png")
        h, w = img.shape[:2]
        # 9 x 4+ inch shares charts, 8.6 x 4+ inch maps
        assert w >= 8.5 * DPI and h >= 4 * DPI, (name, img.shape)
        # not blank: many distinct colours
        rgb = np.round(img[..., :3] * 255).astype(np.int64)
        packed = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        assert len(np.unique(packed)) > 50


def test_svg_charts_are_svg_with_the_synthetic_title(charts):
    svg = charts["charts/typhoon_shares.svg"].decode("utf-8")
    assert "<svg" in svg and svg.rstrip().endswith("</svg>")
    # titles are drawn as paths; the Dublin Core title carries the text
    assert "SYNTHETIC DEMO DATA: Typhoon: share of sites by risk level" in svg
    assert "<dc:date>" not in svg  # no date: reruns are byte-identical


def test_rerender_is_byte_identical(run, charts):
    sites, table, shares, manifest = run
    part = shares[shares["hazard"] == "typhoon"]
    again = render_charts(part, sites, table, manifest=manifest,
                          maps=[("floods_typhoons", "pessimistic", 2050)], dpi=DPI)
    assert again == charts


def test_segment_widths_are_the_level_shares(run):
    sites, table, shares, manifest = run
    part = shares[shares["hazard"] == "typhoon"]
    fig = shares_figure(part, manifest=manifest)
    ax = fig.axes[0]
    # typhoon levels (fixture): optimistic 2030 = [2, 1, 3, 3, 1] over the 5 located sites
    # -> level 1: 40 %, level 2: 20 %, level 3: 40 %; the first bar is optimistic 2030.
    widths = {}
    for patch in ax.patches:
        colour = matplotlib.colors.to_hex(patch.get_facecolor())
        if abs(patch.get_y() + patch.get_height() / 2) < 1e-9 and patch.get_width() > 0:
            widths[colour] = widths.get(colour, 0) + patch.get_width()
    assert widths == pytest.approx({LEVEL_COLOURS[1]: 40.0, LEVEL_COLOURS[2]: 20.0,
                                    LEVEL_COLOURS[3]: 40.0})
    assert "SYNTHETIC DEMO DATA" in fig.get_label()


def test_medium_plus_range_is_drawn_beside_the_bars(run):
    sites, table, shares, manifest = run
    part = shares[shares["hazard"] == "typhoon"]
    fig = shares_figure(part, manifest=manifest)
    bars, mp_ax = fig.axes[0], fig.axes[1]
    assert mp_ax.get_title(loc="left") == "medium+ % (range)"
    # medium+ share with its model range: high ends one level up -> 3 of 5 sites at >= 3
    assert "40 % (40-60)" in [t.get_text() for t in mp_ax.texts]
    # The first row (optimistic 2030, y = 0): a bar of 40 % and a whisker from 40 to 60 on
    # the medium+ panel's own 0-100 scale; no whisker on the stacked bars any more.
    first = [p for p in mp_ax.patches if abs(p.get_y() + p.get_height() / 2) < 1e-9]
    assert [p.get_width() for p in first] == pytest.approx([40.0])
    segments = [seg for coll in mp_ax.collections for seg in coll.get_segments()
                if len(seg) == 2 and abs(seg[0][1]) < 1e-9 and abs(seg[1][1]) < 1e-9]
    assert sorted(x for seg in segments for x, _ in seg) == pytest.approx([40.0, 60.0])
    assert not bars.collections


def test_maps_label_few_sites_and_not_many(run, monkeypatch):
    from sitescreen.outputs import charts as charts_module

    sites, table, shares, manifest = run
    fig = map_figure("typhoon", "optimistic", 2030, sites=sites, table=table, manifest=manifest)
    labels = {t.get_text() for t in fig.axes[0].texts}
    located = sites[sites["location_source"] != "unresolved"]
    # every located site is labelled (they do not crowd) by its name; the unresolved one not
    assert set(located["name"]) <= labels
    assert "Lost site" not in labels
    monkeypatch.setattr(charts_module, "MAX_MAP_LABELS", 3)
    fig = map_figure("typhoon", "optimistic", 2030, sites=sites, table=table, manifest=manifest)
    assert not set(located["name"]) & {t.get_text() for t in fig.axes[0].texts}


def test_real_data_charts_carry_no_synthetic_warning():
    sites, table, shares, manifest = build_run(hazards=("typhoon",), origin=DataOrigin.MIRROR,
                                               years=(2030,))
    fig = shares_figure(shares[shares["hazard"] == "typhoon"], manifest=manifest)
    all_text = " ".join(t.get_text() for t in fig.texts) + fig.get_label()
    assert "SYNTHETIC" not in all_text
    assert b"SYNTHETIC" not in figure_bytes(fig, "svg")


def test_map_colours_sites_by_level_and_skips_unresolved(run):
    sites, table, shares, manifest = run
    fig = map_figure("typhoon", "optimistic", 2030, sites=sites, table=table, manifest=manifest)
    ax = fig.axes[0]
    drawn = {}
    for coll in ax.collections:
        offsets = coll.get_offsets()
        face = coll.get_facecolors()
        colour = matplotlib.colors.to_hex(face[0]) if len(face) else "none"
        drawn[colour] = drawn.get(colour, 0) + len(offsets)
    # levels [2, 1, 3, 3, 1] at the five located sites; the unresolved site is not drawn
    assert drawn == {LEVEL_COLOURS[1]: 2, LEVEL_COLOURS[2]: 1, LEVEL_COLOURS[3]: 2}
    assert sum(drawn.values()) == 5
    assert NO_DATA_COLOUR not in drawn
    assert any("1 unresolved site not shown" in t.get_text() for t in fig.texts)


def test_default_maps_are_headline_composites_in_the_worst_scenario(run):
    _, table, _, _ = run
    assert map_layers(table) == [
        ("water_scarcity_drought", "pessimistic", 2030),
        ("water_scarcity_drought", "pessimistic", 2050),
        ("floods_typhoons", "pessimistic", 2030),
        ("floods_typhoons", "pessimistic", 2050),
    ]


def test_unknown_format_is_refused(run):
    sites, table, shares, manifest = run
    fig = shares_figure(shares[shares["hazard"] == "typhoon"], manifest=manifest)
    with pytest.raises(ValueError, match="unknown chart format 'pdf'"):
        figure_bytes(fig, "pdf")


def test_maps_from_the_columns_equal_those_from_the_long_table(run):
    from sitescreen.aggregate import SiteResults

    sites, table, _, manifest = run
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    a = figure_bytes(map_figure("typhoon", "optimistic", 2030, sites=sites, table=table,
                                manifest=manifest, dpi=50), "png")
    b = figure_bytes(map_figure("typhoon", "optimistic", 2030, sites=sites, table=results,
                                manifest=manifest, dpi=50), "png")
    assert a == b


def test_crowded_maps_draw_one_marker_per_cell_and_count_every_site(monkeypatch):
    """Above MAX_MAP_POINTS located sites, sites sharing a small cell are drawn once, by
    their highest level, and the subtitle says so; the legend still counts every site."""
    from report_fixtures import sites_frame

    from sitescreen.aggregate import SiteResults
    from sitescreen.outputs import charts as charts_module

    rows = [dict(site_id=f"c{i}", name=f"Crowd {i}", city="", country="CN",
                 lon=121.0 + 1e-4 * i, lat=31.0, location_source="given",
                 geocode_precision="coordinates") for i in range(30)]
    rows.append(dict(site_id="far", name="Far", city="", country="CN", lon=110.0, lat=25.0,
                     location_source="given", geocode_precision="coordinates"))
    sites, table, _, manifest = build_run(sites=sites_frame(rows), hazards=("typhoon",),
                                          years=(2030,))
    results = SiteResults.from_long_table(table, site_ids=sites["site_id"].to_numpy())
    monkeypatch.setattr(charts_module, "MAX_MAP_POINTS", 5)
    fig = map_figure("typhoon", "optimistic", 2030, sites=sites, table=results,
                     manifest=manifest)
    markers = sum(len(c.get_offsets()) for c in fig.axes[0].collections)
    assert markers == 2  # the crowd in one cell, the far site in another
    texts = " ".join(t.get_text() for t in fig.texts)
    assert "31 sites shown (2 markers: where sites crowd, the highest level)" in texts
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert sum(int(t.rsplit("(", 1)[1].rstrip(")")) for t in legend) == 31


def test_text_caches_draw_what_a_plain_canvas_draws(run):
    """The chart canvas keeps text layouts and glyph bitmaps across figures and writes
    opaque PNGs as RGB: its PNG has the pixels, and its SVG the bytes, of matplotlib's
    own canvases (a second figure draws from the filled caches)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from sitescreen.outputs import charts as charts_module

    sites, table, shares, manifest = run
    figures = [shares_figure(shares[shares["hazard"] == "typhoon"], manifest=manifest, dpi=DPI),
               map_figure("typhoon", "optimistic", 2030, sites=sites, table=table,
                          manifest=manifest, dpi=DPI)]
    for fig in figures:
        ours = {fmt: figure_bytes(fig, fmt) for fmt in ("png", "svg")}
        FigureCanvasAgg(fig)  # matplotlib's own Agg canvas, and its SVG canvas for svg
        with matplotlib.rc_context(charts_module._RC):
            plain = {}
            for fmt, meta in (("png", {"Software": "sitescreen (matplotlib)"}),
                              ("svg", {"Date": None, "Creator": "sitescreen (matplotlib)"})):
                buf = io.BytesIO()
                fig.savefig(buf, format=fmt, metadata={**meta, "Title": fig.get_label()})
                plain[fmt] = buf.getvalue()
        assert ours["svg"] == plain["svg"]
        a = mpimg.imread(io.BytesIO(ours["png"]), format="png")
        b = mpimg.imread(io.BytesIO(plain["png"]), format="png")
        assert a.shape[2] == 3 and b.shape[2] == 4 and (b[..., 3] == 1).all()
        assert np.array_equal(a, b[..., :3])
