"""sitescreen: physical climate risk screening of operating sites.

Sites in, hazard values per scenario and year, risk levels 1-5, shares of sites per level out.
The library is usable without Prefect; ``flows/`` orchestrates it.
"""

import logging

from sitescreen.errors import SitescreenError

__version__ = "0.1.0"
__all__ = ["SitescreenError", "__version__"]

# The library logs but never configures logging; the CLI sets the level.
logging.getLogger(__name__).addHandler(logging.NullHandler())
