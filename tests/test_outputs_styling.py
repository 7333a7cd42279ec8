"""Level styling is plain data: a run without the report never imports matplotlib."""

from __future__ import annotations

import json
import subprocess
import sys

from small_pack import site, sites_doc, small_pack

from sitescreen.classify import RiskLevel
from sitescreen.outputs.styling import LEVEL_COLOURS, NO_DATA_COLOUR


def test_every_level_has_its_own_colour_and_no_data_is_none_of_them():
    levels = [int(v) for v in RiskLevel if v > 0]
    assert sorted(LEVEL_COLOURS) == levels
    assert len(set(LEVEL_COLOURS.values())) == len(levels)
    assert NO_DATA_COLOUR not in LEVEL_COLOURS.values()


def test_a_run_without_report_never_loads_matplotlib(tmp_path, tmp_path_factory):
    sites = tmp_path / "s.geojson"
    sites.write_text(json.dumps(sites_doc(site("a", "A", lon=121.47, lat=31.23))), "utf-8")
    code = (
        "import sys\n"
        "from sitescreen import pipeline\n"
        f"r = pipeline.make_request(sites={str(sites)!r}, data={str(small_pack(tmp_path_factory))!r},"
        f" out={str(tmp_path / 'out')!r}, cache_dir={str(tmp_path / 'c')!r}, report=False,"
        " hazards=['river_flood'], scenarios=['pessimistic'], years=[2030])\n"
        "run = pipeline.screen(r)\n"
        "assert (run.run_dir / 'sites.gpkg').is_file()\n"
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
