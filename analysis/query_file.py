"""The GeoEmbed query file: a similarity search's examples as vectors, to run the same search on another area or year.

A query file is JSON (data only, nothing in it is ever executed) of this shape:

    {"format": "geoembed-query", "version": 1, "product": "aef", "year": 2024,
     "band_names": ["A00", ...], "dimensions": 64,
     "examples":         {"vectors": [[...64 numbers...], ...], "lonlat": [[lon, lat], ...]},
     "counter_examples": {"vectors": [...], "lonlat": [...]}}

Each vector is one example's embedding (a point's pixel, or a polygon's mean pixel) as it was read; lon/lat (WGS 84)
say where it came from. Numbers are written with Python's shortest round-trip repr, so a saved query gives exactly the
same heatmap as the layers it was saved from.

Reading checks the file before trusting it: its size (below MAX_QUERY_BYTES) before it is read, no pickle or zip,
the format name and version, the declared dimensions against the band names and every vector, finite numbers only
(NaN and Infinity are refused), and counts below MAX_VECTORS.
"""

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..loaders.errors import GeoEmbedError
from ..loaders.remote.locations import atomic_file

FORMAT = "geoembed-query"
VERSION = 1
SUFFIX = ".geoembed-query.json"
FILE_FILTER = f"GeoEmbed query (*{SUFFIX})"
MAX_QUERY_BYTES = 64 * 2**20  # thousands of 768-dimension examples as text; far above what anyone clicks
MAX_VECTORS = 100_000
MAX_BANDS = 65536
PICKLE_PROTOCOL = b"\x80"
ZIP_MAGIC = b"PK\x03\x04"
SAVE_AGAIN = "save the query again with OUTPUT_QUERY of geoembed:similarity"


class QueryDataError(ValueError):
    """What is wrong inside a query file (becomes part of a one-line GeoEmbedError)."""


@dataclass
class Query:
    """Examples and counter-examples as (n, bands) float64 arrays, with where they came from (lon, lat per row)."""

    band_names: tuple
    examples: np.ndarray
    counter_examples: np.ndarray
    example_lonlat: np.ndarray = None
    counter_lonlat: np.ndarray = None
    product: str = None
    year: int = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        bands = len(self.band_names)
        self.band_names = tuple(self.band_names)
        self.examples = _vectors(self.examples, bands)
        self.counter_examples = _vectors(self.counter_examples, bands)
        self.example_lonlat = _lonlat(self.example_lonlat, len(self.examples))
        self.counter_lonlat = _lonlat(self.counter_lonlat, len(self.counter_examples))

    def check_bands(self, band_names, what="QUERY_FILE", raster="INPUT"):
        """One-line refusal when the query was saved from rasters with other bands."""
        if tuple(band_names) != self.band_names:
            raise GeoEmbedError(
                f"{what} was saved from {len(self.band_names)} bands ({_span(self.band_names)}, "
                f"{self.product or 'unknown product'}) "
                f"but {raster} has {len(band_names)} ({_span(band_names)}); run a query on rasters of the same product."
            )

    def union(self, other):
        """This query's examples followed by other's (counter-examples likewise); band names must match."""
        other.check_bands(self.band_names, "The examples", "QUERY_FILE")
        return Query(
            self.band_names,
            np.concatenate([self.examples, other.examples]),
            np.concatenate([self.counter_examples, other.counter_examples]),
            np.concatenate([self.example_lonlat, other.example_lonlat]),
            np.concatenate([self.counter_lonlat, other.counter_lonlat]),
            self.product or other.product,
            self.year if self.year is not None else other.year,
        )


def _vectors(values, bands):
    values = np.zeros((0, bands)) if values is None or len(values) == 0 else values
    return np.asarray(values, dtype=np.float64).reshape(-1, bands)


def _lonlat(values, count):
    if values is None or len(values) == 0:
        return np.full((count, 2), np.nan)
    return np.asarray(values, dtype=np.float64).reshape(count, 2)


def _span(names):
    names = list(names)
    return f"{names[0]}..{names[-1]}" if names else "none"


# --- writing -------------------------------------------------------------------------------------------


def save(path, query):
    """Write query as JSON (atomically: a failure leaves no file); returns path."""
    if not len(query.examples):
        raise GeoEmbedError("A query needs at least one example to be saved; add examples first.")
    for vectors in (query.examples, query.counter_examples):
        if not np.isfinite(vectors).all():
            raise GeoEmbedError("The query's vectors are not all finite numbers; pick examples on valid pixels.")
    document = {
        "format": FORMAT,
        "version": VERSION,
        "product": query.product,
        "year": None if query.year is None else int(query.year),
        "band_names": list(query.band_names),
        "dimensions": len(query.band_names),
        "examples": _part(query.examples, query.example_lonlat),
        "counter_examples": _part(query.counter_examples, query.counter_lonlat),
    }
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as out:
        json.dump(document, out, allow_nan=False, separators=(",", ":"))
    return path


def _part(vectors, lonlat):
    places = [None if not np.isfinite(p).all() else [float(p[0]), float(p[1])] for p in lonlat]
    return {"vectors": [[float(v) for v in vector] for vector in vectors], "lonlat": places}


# --- reading -------------------------------------------------------------------------------------------


def load(path, what="QUERY_FILE"):
    """The Query saved in path by save(); anything else is a one-line GeoEmbedError naming what is wrong."""
    text = _read_text(path, what)
    try:
        return _parse(text)
    except QueryDataError as exc:
        raise GeoEmbedError(f"{what} {path} is not a valid GeoEmbed query: {exc}; {SAVE_AGAIN}.") from None


def _read_text(path, what):
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_QUERY_BYTES:
                raise GeoEmbedError(
                    f"{what} {path} is {size / 2**20:.0f} MiB, more than a GeoEmbed query may be "
                    f"({MAX_QUERY_BYTES // 2**20} MiB); use fewer examples."
                )
            data = handle.read(MAX_QUERY_BYTES + 1)
    except FileNotFoundError:
        raise GeoEmbedError(f"{what} {path} does not exist; give a query file saved by geoembed:similarity.") from None
    except IsADirectoryError:
        raise GeoEmbedError(f"{what} {path} is a folder; give a query file saved by geoembed:similarity.") from None
    except OSError as exc:
        raise GeoEmbedError(f"{what} {path} cannot be read ({exc.strerror or exc}); check the file.") from None
    if not data.strip():
        raise GeoEmbedError(f"{what} {path} is empty, not a GeoEmbed query; {SAVE_AGAIN}.")
    if data.startswith(PICKLE_PROTOCOL):
        raise GeoEmbedError(f"{what} {path} is a Python pickle, which can run code; it is not opened: {SAVE_AGAIN}.")
    if data.startswith(ZIP_MAGIC):
        raise GeoEmbedError(f"{what} {path} is a zip (.npz?), not a GeoEmbed query (JSON, *{SUFFIX}); {SAVE_AGAIN}.")
    if len(data) > MAX_QUERY_BYTES:  # the file grew while being read
        raise GeoEmbedError(f"{what} {path} is too large for a GeoEmbed query; use fewer examples.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise GeoEmbedError(f"{what} {path} is not text, not a GeoEmbed query; {SAVE_AGAIN}.") from None


def _refuse_constant(name):
    raise QueryDataError(f"it holds {name}, not a finite number")


def _parse(text):
    try:
        document = json.loads(text, parse_constant=_refuse_constant)
    except QueryDataError:
        raise
    except (ValueError, RecursionError):
        raise QueryDataError("it is not valid JSON") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise QueryDataError("it does not name the GeoEmbed query format")
    version = document.get("version")
    if type(version) is not int:
        raise QueryDataError("it has no format version number")
    if version != VERSION:
        raise QueryDataError(f"it is format version {version}; this GeoEmbed reads version {VERSION}")
    names = document.get("band_names")
    if not isinstance(names, list) or not 1 <= len(names) <= MAX_BANDS or not all(isinstance(n, str) for n in names):
        raise QueryDataError(f"its band_names is not a list of 1 to {MAX_BANDS} names")
    dimensions = document.get("dimensions")
    if type(dimensions) is not int or dimensions != len(names):
        raise QueryDataError(f"it declares {str(dimensions)[:20]} dimensions for {len(names)} band names")
    product, year = document.get("product"), document.get("year")
    if not isinstance(product, (str, type(None))) or not (year is None or (type(year) is int and 0 < year < 10000)):
        raise QueryDataError("its product or year is not of the right type")
    examples, example_lonlat = _read_part(document, "examples", dimensions)
    counter, counter_lonlat = _read_part(document, "counter_examples", dimensions)
    if not len(examples):
        raise QueryDataError("it has no examples")
    if len(examples) + len(counter) > MAX_VECTORS:
        raise QueryDataError(f"it has more than {MAX_VECTORS} vectors")
    return Query(tuple(names), examples, counter, example_lonlat, counter_lonlat, product, year)


def _read_part(document, key, dimensions):
    part = document.get(key, {"vectors": [], "lonlat": []})
    if not isinstance(part, dict) or not isinstance(part.get("vectors"), list):
        raise QueryDataError(f"its {key} has no list of vectors")
    vectors = part["vectors"]
    if len(vectors) > MAX_VECTORS:
        raise QueryDataError(f"its {key} has more than {MAX_VECTORS} vectors")
    for index, vector in enumerate(vectors):
        if not isinstance(vector, list) or len(vector) != dimensions:
            size = len(vector) if isinstance(vector, list) else "no"
            raise QueryDataError(f"its {key} vector {index + 1} has {size} numbers, not {dimensions}")
        if not all(_finite_number(v) for v in vector):
            raise QueryDataError(f"its {key} vector {index + 1} holds something other than finite numbers")
        if not any(vector):
            raise QueryDataError(f"its {key} vector {index + 1} is all zeros (nodata)")
    places = part.get("lonlat", [None] * len(vectors))
    if not isinstance(places, list) or len(places) != len(vectors):
        raise QueryDataError(f"its {key} lonlat does not give one place per vector")
    lonlat = np.full((len(vectors), 2), np.nan)
    for index, place in enumerate(places):
        if place is None:
            continue
        ok = isinstance(place, list) and len(place) == 2 and all(_finite_number(v) for v in place)
        if not ok or not (-180 <= place[0] <= 180 and -90 <= place[1] <= 90):
            raise QueryDataError(f"its {key} lonlat {index + 1} is not a longitude and latitude")
        lonlat[index] = place
    return np.array(vectors, dtype=np.float64).reshape(-1, dimensions), lonlat


def _finite_number(value):
    """A JSON number that is a finite float (booleans and integers too large for a float are not)."""
    if type(value) is int:
        return abs(value) < 2**1000
    return type(value) is float and math.isfinite(value)
