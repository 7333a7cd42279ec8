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
from sitescreen.data.sources import DEFAULT_DATA

__all__ = ["data_app"]

DEFAULT_CACHE = Path(DEFAULT_DATA)

data_app = typer.Typer(
    no_args_is_help=True, add_completion=False,
    help="List, fetch, verify and describe the hazard datasets of the catalog. Files are "
         "cached as <cache>/<dataset folder>/<upstream file name>, each with a .sha256.json "
         "record of where it came from.")

CacheOpt = Annotated[Path, typer.Option(
    "--cache", envvar="SITESCREEN_CACHE",
    help="Cache folder (default: $SITESCREEN_CACHE, else ./cache/data).")]
DatasetsArg = Annotated[list[str], typer.Argument(help="Dataset ids (see 'sitescreen data list').")]


def _errors():
    """The shared error mapper; Ctrl-C keeps .part files, so the same command resumes."""
    return exit_on_error(interrupted="interrupted; run the same command again to resume")


def _catalog(path: Path | None) -> Catalog:
    return load_catalog(path)


def _human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


@data_app.command("list")
def list_datasets(cache: CacheOpt = DEFAULT_CACHE, catalog: CatalogOpt = None) -> None:
    """Datasets with version, licence and what the cache holds of them."""
    from sitescreen.data.datasets import dataset_status

    with _errors():
        cat = _catalog(catalog)
        rows = [("DATASET", "VERSION", "LICENSE", "CACHE")]
        for entry in cat.datasets.values():
            st = dataset_status(entry, cache)
            state = {"cached": f"cached ({_human(st.bytes)}, {'/'.join(st.origins)})",
                     "partial": f"partial {st.present}/{st.expected}",
                     "missing": "not cached"}[st.state]
            if st.extracted is False and st.present:
                state += ", not extracted"
            rows.append((entry.id, entry.version, entry.license, state))
        widths = [min(max(len(r[i]) for r in rows), 40) for i in range(3)]
        for r in rows:
            typer.echo("  ".join(c[:40].ljust(w) for c, w in zip(r[:3], widths, strict=True))
                       + "  " + r[3])
        typer.echo(f"\ncache: {Path(cache).resolve()}")


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


@data_app.command()
def fetch(
    datasets: DatasetsArg,
    mirror: Annotated[str | None, typer.Option(
        "--mirror", help="Folder or http(s) URL laid out as <mirror>/<dataset folder>/<file>, "
                         "used instead of upstream (default: $SITESCREEN_MIRROR).")] = None,
    offline: Annotated[bool, typer.Option(
        "--offline", help="Use only the cache; fail listing what is missing.")] = False,
    cache: CacheOpt = DEFAULT_CACHE,
    files: Annotated[list[str] | None, typer.Option(
        "--files", help="Only files matching this glob (repeatable), e.g. "
                        "'inunriver_rcp8p5_*_2050_*'.")] = None,
    hazard: Annotated[list[str] | None, typer.Option(
        "--hazard", help="Only the files this hazard reads (repeatable): river_flood ...")] = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if cached.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
    catalog: CatalogOpt = None,
) -> None:
    """Bring datasets into the cache: resumable, checksum-verified, skipped when present."""
    from sitescreen.data.datasets import fetch_dataset

    with _errors():
        cat = _catalog(catalog)
        entries = [cat.dataset(d) for d in datasets]
        for entry in entries:
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


@data_app.command()
def verify(
    datasets: DatasetsArg,
    cache: CacheOpt = DEFAULT_CACHE,
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
            results = verify_dataset(cat.dataset(d), cache, files=files or None)
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
    cache: CacheOpt = DEFAULT_CACHE,
    catalog: CatalogOpt = None,
) -> None:
    """Citation, licence, URLs and files of one dataset."""
    from sitescreen.data.datasets import dataset_status, expand_files, remote_files, source_url

    with _errors():
        entry = _catalog(catalog).dataset(dataset)
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
        st = dataset_status(entry, cache)
        lines.append(f"  cache:     {st.state} ({st.present}/{st.expected} files"
                     + (f", from {'/'.join(st.origins)}" if st.origins else "")
                     + (f", retrieved {st.retrieved_at}" if st.retrieved_at else "") + ")")
        typer.echo("\n".join(lines))
