"""geoembed:load with YEARS: one north-up GeoTIFF per year, every year on one shared grid.

The grid is decided once, by the first year the source has (or by EXTENT/CRS/RESOLUTION as for one year), and the
other years are planned on exactly that grid (LoadRequest.grid), so that per-year files compare pixel for pixel.
A year the source lacks is skipped with one warning; if the run fails or is cancelled, every file it wrote is removed.
"""

import os
import re
from dataclasses import replace

from .errors import Cancelled, GeoEmbedError, YearNotFound
from .load import LoadResult, PrintLog, check_output_type, output_storage, plan, write_order
from .raster.mosaic import onto_grid
from .raster.planning import year_span
from .raster.writer import check_destination, write_geotiff

FIRST_YEAR, LAST_YEAR = 2000, 2100
MAX_YEARS = 30  # more is a mistake more often than a wish (and 30 full-size files fill a disk)
EXAMPLE = "e.g. 2019,2021,2024 or 2018-2024"
_ITEM = re.compile(r"^(\d{4})(?:\s*-\s*(\d{4}))?$")


def parse_years(text):
    """Sorted distinct years of '2019,2021,2024', '2018-2024' or '2018-2020,2024'; GeoEmbedError (one line) if not."""
    items = [item.strip() for item in str(text).split(",")]
    if not any(items):
        raise GeoEmbedError(f"YEARS is empty; give a list or range of years, {EXAMPLE}.")
    years = set()
    for item in items:
        match = _ITEM.match(item)
        if not match:
            raise GeoEmbedError(f"YEARS: '{item}' is not a year or a range of years; write {EXAMPLE}.")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise GeoEmbedError(f"YEARS: the range {first}-{last} runs backwards; write {last}-{first}.")
        for year in (first, last):
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise GeoEmbedError(f"YEARS: {year} is outside {FIRST_YEAR}-{LAST_YEAR}; embedding products start after 2000.")
        years.update(range(first, last + 1))
        if len(years) > MAX_YEARS:
            raise GeoEmbedError(f"YEARS asks for more than {MAX_YEARS} years; load at most {MAX_YEARS} at once.")
    return sorted(years)


def year_path(output, year):
    """<OUTPUT stem>_<year><ext>, beside OUTPUT."""
    stem, extension = os.path.splitext(str(output))
    return f"{stem}_{year}{extension}"


class BufferedLog:
    """Holds a year's planning messages until the year is known to exist (a missing year gets one warning only)."""

    def __init__(self, log):
        self.log, self.lines = log, []

    def info(self, message):
        self.lines.append((self.log.info, message))

    def warning(self, message):
        self.lines.append((self.log.warning, message))

    def debug(self, message):
        debug = getattr(self.log, "debug", None)
        if debug is not None:
            debug(message)

    def replay(self):
        for method, message in self.lines:
            method(message)


def run_years(request, years, log=None, progress=None, is_cancelled=None, client=None, write=None):
    """Load every year of `years` (oldest first) onto one grid; returns their LoadResults, oldest first.

    write(year request, raster, grid, progress, is_cancelled): writes a year's raster (planned from the request, not
    yet on grid) to the request's output instead of write_geotiff here (e.g. on a Dask cluster, whose workers plan
    the year again from the request)."""
    log = log or PrintLog()
    check_destination(request.output)
    check_output_type(request.output_type, request.product or "auto")  # refused before anything is read
    years = sorted(years)
    paths = [year_path(request.output, year) for year in years]
    for path in paths:
        check_destination(path)
    written, results, missing, sources = [], [], [], {}
    grid = request.grid
    try:
        for index, (year, path) in enumerate(zip(years, paths)):
            if is_cancelled and is_cancelled():
                raise Cancelled()
            year_request = replace(request, year=year, output=path, grid=grid)
            product_id, raster, absent = _plan_year(year_request, year, log, client)
            if absent is not None:
                missing.append(absent)
                log.warning(f"No data for {year} in SOURCE, so {year} is skipped: {absent}")
                continue
            try:
                _check_new_sources(raster, year, sources)
                if grid is None:  # the first year that exists decides the grid of all
                    grid = raster.grid
                    request = replace(request, product=product_id)  # detected once
                year_progress = _slot(progress, index, len(years))
                if write is not None:
                    write(replace(year_request, product=product_id), raster, grid, year_progress, is_cancelled)
                else:
                    raster = onto_grid(raster, grid)  # for products that choose their own grid whatever they are asked
                    storage = output_storage(year_request, product_id, raster)  # OUTPUT_TYPE=int16: AEF's terms
                    write_geotiff(raster, path, year_progress, is_cancelled, storage=storage, order=write_order(raster))
            finally:
                raster.close()
            written.append(path)
            results.append(LoadResult(path, product_id, grid, raster.provenance, getattr(raster, "patches", None)))
    except BaseException:
        for path in written:  # a half-finished set of years is worse than none
            if os.path.exists(path):
                os.remove(path)
        raise
    if not results:
        raise _none_found(years, missing)
    log.info(
        f"Wrote {len(results)} year(s), {', '.join(str(r.provenance.year) for r in results)}, on one {grid.width} x "
        f"{grid.height} grid in {grid.crs}."
    )
    if progress:
        progress(1.0)
    return results


def _plan_year(request, year, log, client):
    """(product id, raster, None) of one year, or (None, None, YearNotFound) when the source has no data for it."""
    buffered = BufferedLog(log)
    try:
        product_id, raster = plan(request, buffered, client)
    except YearNotFound as exc:
        return None, None, exc
    found = raster.provenance.year
    if found != year:  # a product that cannot choose a year (one file, a dated patch table) gives what it has
        raster.close()
        what = f"its data is from {found}" if found is not None else "it does not say which year its data is from"
        return None, None, YearNotFound(f"{what}.", [found] if found is not None else [])
    buffered.replay()
    return product_id, raster, None


def _check_new_sources(raster, year, sources):
    """Refuse a source that gives the same files for two years (rasters without a year): their labels would lie."""
    key = tuple(raster.provenance.sources)
    if key and key in sources:
        raise GeoEmbedError(
            f"SOURCE gives the same files for {sources[key]} and {year}: it does not tell years apart; "
            "load it once without YEARS."
        )
    sources[key] = year


def _none_found(years, missing):
    available = sorted({y for exc in missing for y in exc.available})
    asked = year_span(years)
    if available:
        return GeoEmbedError(f"SOURCE has none of YEARS {asked}; years available: {year_span(available)}.")
    reason = f": {missing[0]}" if missing else "."
    return GeoEmbedError(f"SOURCE has none of YEARS {asked}{reason}")


def _slot(progress, index, count):
    """progress(fraction of one year) as a fraction of the whole run."""
    if progress is None:
        return None
    return lambda fraction: progress((index + fraction) / count)
