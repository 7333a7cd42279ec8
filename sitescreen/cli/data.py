"""``sitescreen data``: list, fetch, verify and describe the catalog's hazard datasets.

Each command parses its options, calls one function of :mod:`sitescreen.data.datasets` and maps
:class:`~sitescreen.errors.SitescreenError` to exit code 2 with a one-line message. ``verify``
exits 1 when a cached file fails its checksum.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sitescreen.catalog import Catalog, load_catalog
from sitescreen.cli.options import EXIT_MISMATCH, CatalogOpt, exit_on_error

__all__ = ["data_app"]


data_app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="List, fetch, verify and describe the hazard datasets of the catalog. Files are "
         "cached as <cache>/<dataset folder>/<upstream file name>, each with a .sha256.json "
         "record of where it came from.")

CacheOpt = Annotated[Path | None, typer.Option(
    "--cache", help="Data cache folder [default: $SITESCREEN_DATA, else "
                    "$SITESCREEN_HOME/cache/data; the same folder 'screen' reads].")]
SitesOpt = Annotated[Path | None, typer.Option(
    "--sites", help="Sites file: fetch only the windows around these sites (windowed "
                    "datasets), and size the windowed fetch in 'list'/'info'.")]
DatasetsArg = Annotated[list[str], typer.Argument(help="Dataset ids (see 'sitescreen data list').")]


def _errors():
    """The shared error mapper; Ctrl-C keeps .part files, so the same command resumes."""
    return exit_on_error(interrupted="interrupted; run the same command again to resume")


def _catalog(path: Path | None) -> Catalog:
    return load_catalog(path)


def _cache(cache: Path | None) -> Path:
    from sitescreen.home import data_dir

    return cache if cache is not None else data_dir()


def _human(n: int | None) -> str:
    from sitescreen.data.prepare import human_bytes

    return human_bytes(n)


def _site_plan(cat: Catalog, cache: Path, sites: Path, *, hazards: list[str] | None = None,
               scenarios: list[str] | None = None, years: list[int] | None = None,
               datasets: list[str] | None = None):
    """The data plan for a sites file: every hazard reading ``datasets`` (default all), every
    narrative and every year the hazards offer unless narrowed."""
    from sitescreen import pipeline
    from sitescreen.data.prepare import plan_data

    names = hazards or [n for n, spec in cat.hazards.items()
                        if datasets is None or set(spec.datasets) & set(datasets)]
    all_years = sorted({y for n in names for y in cat.hazard(n).years})
    request = pipeline.make_request(sites=str(sites), data=str(cache), hazards=names,
                                    scenarios=scenarios or None, years=years or all_years)
    layers = pipeline.plan_layers(cat, request)
    located = pipeline.locate_sites(pipeline.load_sites(request), request)
    lon, lat = pipeline.coordinates(located)
    return plan_data(cat, layers, cache, lon, lat)


@data_app.command("list")
def list_datasets(cache: CacheOpt = None, catalog: CatalogOpt = None,
                  sites: SitesOpt = None) -> None:
    """Datasets with version, licence, full size, what the cache holds, and (with --sites)
    what a windowed fetch for those sites would transfer."""
    from sitescreen.data.datasets import dataset_status
    from sitescreen.data.prepare import whole_size
    from sitescreen.data.windows import window_status

    with _errors():
        cat = _catalog(catalog)
        cache = _cache(cache)
        plan = _site_plan(cat, cache, sites) if sites else None
        rows = [("DATASET", "VERSION", "LICENSE", "FULL SIZE", "CACHE")]
        for entry in cat.datasets.values():
            st = dataset_status(entry, cache)
            win = window_status(entry, cache)
            state = {"cached": f"cached ({_human(st.bytes)}, {'/'.join(st.origins)})",
                     "partial": f"partial {st.present}/{st.expected}",
                     "missing": "not cached"}[st.state]
            if win["files"]:
                state = (f"windows of {win['files']}/{st.expected} files "
                         f"({_human(win['bytes'])}, {'/'.join(win['origins'])})")
            if st.extracted is False and st.present:
                state += ", not extracted"
            if plan is not None:
                state += "; for these sites: " + _plan_cell(plan, entry.id)
            size = whole_size(entry)
            approx = "" if entry.size else "~"
            rows.append((entry.id, entry.version, entry.license,
                         approx + _human(size) if size else "unknown", state))
        widths = [min(max(len(r[i]) for r in rows), 40) for i in range(4)]
        for r in rows:
            typer.echo("  ".join(c[:40].ljust(w) for c, w in zip(r[:4], widths, strict=True))
                       + "  " + r[4])
        typer.echo(f"\ncache: {Path(cache).resolve()}  (~: planning estimate)")


def _plan_cell(plan, dataset: str) -> str:
    for p in plan.windowed:
        if p.dataset == dataset:
            if p.complete:
                return f"all {len(p.files)} files' windows cached"
            return (f"windows {p.missing_cells} missing in {len(p.missing_files)} files, "
                    f"~{_human(p.estimate_bytes)} by range requests")
    for w in plan.whole:
        if w.dataset == dataset:
            return "cached" if w.complete else f"needs a full fetch ({_human(w.size)})"
    return "not used"


class _Bars:
    """Rich progress bars, one per file, on stderr (final state only when not a terminal)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                                 TransferSpeedColumn(), TimeRemainingColumn(),
                                 console=Console(stderr=True), transient=False)
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, name: str, done: int, total: int | None) -> None:
        if name not in self.tasks:
            label = name if len(name) <= 48 else "..." + name[-45:]
            self.tasks[name] = self.progress.add_task(label, total=total)
        self.progress.update(self.tasks[name], completed=done, total=total)


class _WindowBar:
    """One progress bar in files, with the bytes transferred, on stderr."""

    def __init__(self, label: str, total: int) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[moved]}"),
                                 console=Console(stderr=True), transient=False)
        self.task = self.progress.add_task(label, total=total, moved="")

    def __enter__(self) -> _WindowBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, done: int, total: int, nbytes: int) -> None:
        self.progress.update(self.task, completed=done, total=total,
                             moved=f"{_human(nbytes)} transferred")


@data_app.command()
def fetch(
    datasets: DatasetsArg,
    mirror: Annotated[str | None, typer.Option(
        "--mirror", help="Folder or http(s) URL laid out as <mirror>/<dataset folder>/<file>, "
                         "used instead of upstream (default: $SITESCREEN_MIRROR).")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Use only the cache; fail listing what is missing.")] = False,
    cache: CacheOpt = None,
    files: Annotated[list[str] | None, typer.Option(
        "--files", help="Only files matching this glob (repeatable), e.g. "
                        "'inunriver_rcp8p5_*_2050_*'.")] = None,
    hazard: Annotated[list[str] | None, typer.Option(
        "--hazard", help="Only the files this hazard reads (repeatable): river_flood ...")] = None,
    sites: SitesOpt = None,
    scenario: Annotated[list[str] | None, typer.Option(
        "--scenario", "-s", help="With --sites: only these narratives (repeatable).")] = None,
    year: Annotated[list[int] | None, typer.Option(
        "--year", "-y", help="With --sites: only these years (repeatable; default every year "
                             "of the hazards).")] = None,
    workers: Annotated[int, typer.Option(
        "--workers", min=1, max=32, help="With --sites: parallel connections.")] = 4,
    deadline: Annotated[float, typer.Option(
        "--deadline", help="With --sites: give up after this many seconds overall.")] = 1800.0,
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    catalog: CatalogOpt = None,
) -> None:
    """Bring datasets into the cache: resumable, checksum-verified, skipped when present.

    With --sites, a windowed dataset (Aqueduct Floods) is fetched only in the windows around
    the sites, by HTTP range requests; other datasets are fetched whole.
    """
    from sitescreen.data.datasets import fetch_dataset

    with _errors():
        cat = _catalog(catalog)
        cache = _cache(cache)
        entries = [cat.dataset(d) for d in datasets]
        plan = None
        if sites is not None:
            plan = _site_plan(cat, cache, sites, hazards=hazard, scenarios=scenario,
                              years=year, datasets=[e.id for e in entries])
        for entry in entries:
            wplan = next((p for p in plan.windowed if p.dataset == entry.id), None) \
                if plan else None
            if wplan is not None:
                _fetch_windowed(entry, wplan, mirror=mirror, offline=offline, quiet=quiet,
                                workers=workers, deadline=deadline)
                continue
            if quiet or offline:
                results = fetch_dataset(entry, cache, mirror=mirror, offline=offline,
                                        files=files or None, hazards=hazard or None, force=force)
            else:
                with _Bars() as bars:
                    results = fetch_dataset(entry, cache, mirror=mirror, offline=offline,
                                            files=files or None, hazards=hazard or None,
                                            force=force, progress=bars)
            for r in results:
                how = "cached" if r.from_cache else ("resumed" if r.resumed else "fetched")
                where = f" from {r.origin}" if r.origin and not r.from_cache else ""
                typer.echo(f"{entry.id}: {how}{where} {r.path.name} ({_human(r.bytes)}, "
                           f"sha256 {r.sha256[:16]})")
            if entry.archive:
                typer.echo(f"{entry.id}: extracted {len(entry.files)} items from {entry.archive}")
        typer.echo(f"cache: {Path(cache).resolve()}")


def _fetch_windowed(entry, plan, *, mirror: str | None, offline: bool, quiet: bool,
                    workers: int, deadline: float) -> None:
    from sitescreen.data.datasets import resolve_mirror
    from sitescreen.data.windows import FetchSettings, fetch_windows

    settings = FetchSettings(workers=workers, deadline_s=deadline)
    base = resolve_mirror(mirror)
    todo = plan.missing_files
    typer.echo(f"{entry.id}: {len(plan.files)} files needed; {len(todo)} lack "
               f"{plan.missing_cells} windows (about {_human(plan.estimate_bytes)})", err=True)
    if quiet or offline or not todo:
        report = fetch_windows(entry, plan, mirror=base, settings=settings, offline=offline)
    else:
        with _WindowBar(f"{entry.id} windows", len(todo)) as bar:
            report = fetch_windows(entry, plan, mirror=base, settings=settings, progress=bar)
    typer.echo(f"{entry.id}: {report.cells_fetched} windows of {report.files_fetched} files "
               f"fetched from {'the mirror' if base else 'upstream'} "
               f"({_human(report.bytes)} in {report.requests} requests, "
               f"{report.seconds:.1f} s); {report.files_cached} files already held them"
               + (f"; re-read after an upstream change: {len(report.rebuilt)}"
                  if report.rebuilt else ""))


@data_app.command()
def verify(
    datasets: DatasetsArg,
    cache: CacheOpt = None,
    files: Annotated[list[str] | None, typer.Option(
        "--files", help="Only files matching this glob (repeatable).")] = None,
    catalog: CatalogOpt = None,
) -> None:
    """Re-hash cached files against the catalog checksum or the one recorded at fetch time.

    Exits 1 when a file does not match, or when nothing of a dataset is cached.
    """
    from sitescreen.data.datasets import VerifyStatus, verify_dataset

    failed = False
    with _errors():
        cat = _catalog(catalog)
        for d in datasets:
            results = verify_dataset(cat.dataset(d), _cache(cache), files=files or None)
            missing = [r for r in results if r.status is VerifyStatus.MISSING]
            for r in results:
                if r.status is VerifyStatus.MISSING:
                    continue
                detail = f"sha256 {r.actual_sha256[:16]}" if r.actual_sha256 else ""
                line = f"{d}: {r.status.value:<10} {r.file}"
                if detail:
                    line += f"  ({detail})"
                if r.message and r.status is not VerifyStatus.OK:
                    line += f": {r.message}"
                typer.echo(line)
            counts = {s: sum(r.status is s for r in results) for s in VerifyStatus}
            summary = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
            if missing:
                sample = ", ".join(r.file for r in missing[:3])
                summary += f" (missing: {sample}{', ...' if len(missing) > 3 else ''})"
            typer.echo(f"{d}: {summary}")
            if counts[VerifyStatus.MISMATCH] or counts[VerifyStatus.INVALID] \
                    or len(missing) == len(results):
                failed = True
    if failed:
        raise typer.Exit(EXIT_MISMATCH)


@data_app.command()
def info(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    all_files: Annotated[bool, typer.Option("--all-files", help="List every file name.")] = False,
    cache: CacheOpt = None,
    catalog: CatalogOpt = None,
    sites: SitesOpt = None,
) -> None:
    """Citation, licence, URLs, files and sizes of one dataset (with --sites: what a windowed
    fetch for those sites would transfer)."""
    from sitescreen.data.datasets import dataset_status, expand_files, remote_files, source_url
    from sitescreen.data.prepare import whole_size
    from sitescreen.data.windows import window_status

    with _errors():
        cat = _catalog(catalog)
        cache = _cache(cache)
        entry = cat.dataset(dataset)
        names = remote_files(entry)
        lines = [
            f"{entry.id}: {entry.title}",
            f"  publisher: {entry.publisher}",
            f"  version:   {entry.version}",
            f"  license:   {entry.license}",
            f"  citation:  {entry.citation}",
        ]
        if entry.homepage:
            lines.append(f"  homepage:  {entry.homepage}")
        lines.append(f"  base URL:  {entry.base_url}")
        if entry.archive:
            lines.append(f"  archive:   {source_url(entry, entry.archive)[0]}")
            if entry.size:
                lines.append(f"  size:      {entry.size} bytes")
            if entry.sha256:
                lines.append(f"  sha256:    {entry.sha256}")
            lines.append("  extracted files:")
            lines.extend(f"    {f}" for f in expand_files(entry))
        else:
            if entry.sha256:
                lines.append(f"  sha256:    {entry.sha256}")
            elif len(names) == 1:
                lines.append("  sha256:    none in the catalog (upstream updates the file); "
                             "recorded at fetch time")
            lines.append(f"  files ({len(names)}), cached in <cache>/{entry.local_dir}/:")
            shown = names if all_files else names[:10]
            lines.extend(f"    {f}" for f in shown)
            if len(shown) < len(names):
                lines.append(f"    ... and {len(names) - len(shown)} more (--all-files)")
        size = whole_size(entry)
        lines.append(f"  full size: {_human(size)}" + ("" if entry.size else
                     " (planning estimate; the catalog has no exact size)" if size else ""))
        st = dataset_status(entry, cache)
        lines.append(f"  cache:     {st.state} ({st.present}/{st.expected} full files"
                     + (f", {_human(st.bytes)}" if st.present else "")
                     + (f", from {'/'.join(st.origins)}" if st.origins else "")
                     + (f", retrieved {st.retrieved_at}" if st.retrieved_at else "") + ")")
        win = window_status(entry, cache)
        if win["files"]:
            lines.append(f"  windows:   {win['files']} window files, {win['cells']} windows, "
                         f"{_human(win['bytes'])} on disk, {_human(win['transferred'])} "
                         f"transferred (from {'/'.join(win['origins'])})")
        if sites is not None:
            plan = _site_plan(cat, cache, sites, datasets=[entry.id])
            lines.append(f"  for {sites}: {_plan_cell(plan, entry.id)} "
                         f"(full fetch: {_human(size)})")
        typer.echo("\n".join(lines))


@data_app.command()
def check(
    datasets: Annotated[list[str] | None, typer.Argument(
        help="Dataset ids (default: every dataset with files in the cache).")] = None,
    cache: CacheOpt = None,
    catalog: CatalogOpt = None,
) -> None:
    """Open the cached files and report what the readers assume vs what each file is.

    GeoTIFFs: CRS, data type, nodata, size, block layout, compression; the Aqueduct GDB
    layers and CSV columns; the IBTrACS header. Exits 1 when a file does not match.
    """
    from sitescreen.data.check import check_dataset

    failed = False
    with _errors():
        cat = _catalog(catalog)
        cache = _cache(cache)
        entries = [cat.dataset(d) for d in datasets] if datasets else [
            e for e in cat.datasets.values() if (cache / e.local_dir).is_dir()]
        if not entries:
            typer.echo(f"nothing cached in {cache}; fetch data first ('sitescreen data fetch')")
        for entry in entries:
            results = check_dataset(entry, cache)
            present = [r for r in results if r.present]
            for r in present:
                facts = ", ".join(f"{k} {v}" for k, v in r.facts.items())
                if r.ok:
                    typer.echo(f"{entry.id}: ok        {r.file}  ({facts})")
                else:
                    failed = True
                    typer.echo(f"{entry.id}: MISMATCH  {r.file}  ({facts})")
                    for p in r.problems:
                        typer.echo(f"    - {p}")
            typer.echo(f"{entry.id}: {len(present)} of {len(results)} files cached and "
                       f"checked, {sum(not r.ok for r in present)} mismatch(es)")
    if failed:
        raise typer.Exit(EXIT_MISMATCH)
