"""A hazard plug-in of the tests whose files depend on the sites: sites west of 110 E are
read from one Aqueduct Floods file of the demo pack, sites east of it from another (as a
tiled dataset would be read), and ``details["files_read"]`` lists the files read."""

from __future__ import annotations

import numpy as np

from sitescreen.hazards import HazardResult
from sitescreen.raster import sample_points
from sitescreen.scenarios import pathway_for

WEST = "inunriver_historical_000000000WATCH_1980_rp00100.tif"
EAST = "inunriver_historical_000000000WATCH_1980_rp00250.tif"

#: A user catalog entry for it (``--catalog``).
CATALOG = '''
[hazards.tile_depth]
label = "Tile depth"
plugin = "tile_hazard:TileDepth"
datasets = ["aqueduct_floods"]
threshold_set = "flood-return-period-50cm-v1"
scenarios = ["pessimistic"]
years = [2050]
'''


class TileDepth:
    name = "tile_depth"

    def assess(self, lon, lat, *, scenario, year, context):
        entry = context.datasets["aqueduct_floods"]
        lon, lat = np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)
        values = np.full(len(lon), np.nan)
        read = []
        for where, relpath in ((lon < 110, WEST), (lon >= 110, EAST)):
            if where.any():
                values[where] = sample_points(context.data.require(entry, relpath),
                                              lon[where], lat[where])
                read.append(relpath)
        levels = np.where(values > 0, 3, 1).astype("int8")
        return HazardResult(
            hazard=self.name, scenario=scenario, year=int(year),
            pathway=pathway_for(entry.family, scenario, year), units="m",
            threshold_set=context.thresholds.name, datasets=(entry.id,), method="tiles",
            values=values, levels=levels, level_low=levels, level_high=levels,
            flags=np.full(len(lon), "", dtype=object),
            details={"files_read": read, "data_origin": context.data.origin.value})
