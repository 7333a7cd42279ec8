"""The one place for sitescreen's working folders: ``SITESCREEN_HOME`` and its ``cache/``.

Caches and results must not depend on the directory a command is started from. The home is

1. ``$SITESCREEN_HOME`` when set;
2. else the source checkout, when sitescreen is run from inside it (``make demo`` keeps
   everything in the repository's git-ignored ``cache/``);
3. else a per-user data folder (:func:`platformdirs.user_data_dir`, e.g.
   ``~/.local/share/sitescreen`` on Linux).

It holds ``cache/data`` (datasets fetched by ``sitescreen data fetch`` or ``screen --fetch``,
also the default of ``screen --data``; ``$SITESCREEN_DATA`` points both elsewhere),
``cache/demo-pack``, ``cache/geocode.sqlite`` and ``cache/results`` (the result store). Run
folders (``--out``) stay relative to where the user is.

>>> import os; os.environ["SITESCREEN_HOME"] = "/srv/ss"
>>> str(data_dir()), str(cache_dir())
('/srv/ss/cache/data', '/srv/ss/cache')
>>> del os.environ["SITESCREEN_HOME"]
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["HOME_ENV", "DATA_ENV", "DEFAULT_DATA", "DEMO_PACK", "home", "cache_dir", "data_dir",
           "demo_pack_dir"]

HOME_ENV = "SITESCREEN_HOME"
#: Overrides only the data folder (``screen --data`` and ``data fetch --cache`` default).
DATA_ENV = "SITESCREEN_DATA"
#: The data folder and the demo pack, relative to the home.
DEFAULT_DATA = "cache/data"
DEMO_PACK = "cache/demo-pack"

_CHECKOUT = Path(__file__).resolve().parents[1]


def _in_checkout(cwd: Path) -> bool:
    if not (_CHECKOUT / "pyproject.toml").is_file() or not (_CHECKOUT / ".git").exists():
        return False
    return cwd == _CHECKOUT or _CHECKOUT in cwd.parents


def home() -> Path:
    """``$SITESCREEN_HOME``, else the checkout when run from it, else the per-user folder."""
    value = os.environ.get(HOME_ENV)
    if value:
        return Path(value).expanduser()
    if _in_checkout(Path.cwd().resolve()):
        return _CHECKOUT
    from platformdirs import user_data_dir

    return Path(user_data_dir("sitescreen", appauthor=False))


def cache_dir() -> Path:
    """``<home>/cache``: demo pack, geocode cache, result store, data."""
    return home() / "cache"


def data_dir() -> Path:
    """Where datasets are cached and read from: ``$SITESCREEN_DATA``, else ``<home>/cache/data``."""
    value = os.environ.get(DATA_ENV)
    return Path(value).expanduser() if value else home() / DEFAULT_DATA


def demo_pack_dir() -> Path:
    """``<home>/cache/demo-pack``: the synthetic demo pack."""
    return home() / DEMO_PACK
