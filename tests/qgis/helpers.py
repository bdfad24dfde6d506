"""Running geoembed:load the ways QGIS does, and predicting what QGIS must read back from the output.

Expectations come from the fixture generator (tests.fixtures.aef) and pyproj, never from geoembed itself.
"""

import math
import time

import numpy as np
from pyproj import Transformer
from qgis.core import (
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsCoordinateTransform,
    QgsPointXY,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProject,
)
from qgis.PyQt.QtCore import QCoreApplication, QEvent

from geoembed.qgis_compat import IDENTIFY_VALUE
from tests.fixtures.aef import PATCH_DEG, expected_values, patch_centre

ALGORITHM_ID = "geoembed:load"
NODATA = -9999.0
TOLERANCE = 1e-6
EXTENT_BOX = (5.976, 44.99, 6.03, 45.02)  # lon/lat; centred east of 6°E, so the default CRS is UTM 32N
EXTENT = "{0},{2},{1},{3} [EPSG:4326]".format(*EXTENT_BOX)


# --- runners ---------------------------------------------------------------------------------


def run_processing(parameters, context=None, feedback=None):
    """processing.run(): the Python API of the console, scripts and processing.runAndLoadResults."""
    import processing

    return processing.run(ALGORITHM_ID, parameters, feedback=feedback, context=context)


def run_cpp(parameters, context=None, feedback=None):
    """What qgis_process does: checkParameterValues, then the C++ QgsProcessingAlgorithm::run()."""
    algorithm = QgsApplication.processingRegistry().createAlgorithmById(ALGORITHM_ID)
    assert algorithm is not None, f"{ALGORITHM_ID} is not registered"
    context = context if context is not None else QgsProcessingContext()
    feedback = feedback if feedback is not None else QgsProcessingFeedback()
    ok, message = algorithm.checkParameterValues(parameters, context)
    if not ok:
        raise QgsProcessingException(message)
    # The base-class method explicitly: the C++ entry point, whatever Python subclasses define.
    results, ok = QgsProcessingAlgorithm.run(algorithm, parameters, context, feedback, {}, False)
    assert ok
    return results


RUNNERS = {"processing.run": run_processing, "cpp-run": run_cpp}


def error_message(exc):
    """The plugin's own part of a QgsProcessingException raised through either runner."""
    message = str(exc.args[0]) if exc.args else str(exc)
    # processing.run() prefixes checkParameterValues() failures with its own line.
    prefix = "Unable to execute algorithm\n"
    return message[len(prefix) :] if message.startswith(prefix) else message


# --- between tests ----------------------------------------------------------------------------


def settle(timeout=60.0):
    """Let every background task end and Qt delete what was scheduled for deletion, so that nothing of one test
    (a task winding down, a layer or task deleted later) is left for the next one's event loop."""
    deadline = time.monotonic() + timeout
    while QgsApplication.taskManager().countActiveTasks() and time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)
    for _ in range(3):
        QCoreApplication.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def wait_for(job, timeout=120.0):
    """Let Qt run a panel's run (or background call) and deliver its signals until it is over (job.done)."""
    assert job is not None, "the panel did not start a run (or background call)"
    name = job.algorithm.id() if hasattr(job, "algorithm") else "the background call"
    deadline = time.monotonic() + timeout
    while not job.done:
        QCoreApplication.processEvents()
        time.sleep(0.005)
        assert time.monotonic() < deadline, f"{name} did not finish in {timeout} s"
    QCoreApplication.processEvents()
    return job


# --- expectations ----------------------------------------------------------------------------

_TO_UTM = {}


def to_utm(epsg, lon, lat):
    if epsg not in _TO_UTM:
        _TO_UTM[epsg] = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    return _TO_UTM[epsg].transform(lon, lat)


def spec_state(spec, lon, lat, margin=25.0):
    """'valid', 'nodata', 'outside' or 'edge' (too close to a tile or nodata-box edge to predict)."""
    x, y = to_utm(spec.epsg, lon, lat)
    west, south, east, north = spec.bounds
    if x < west - margin or x > east + margin or y < south - margin or y > north + margin:
        return "outside"
    if not (west + margin < x < east - margin and south + margin < y < north - margin):
        return "edge"
    col, row = (x - west) / 10.0, (north - y) / 10.0
    pad = margin / 10.0
    for row0, row1, col0, col1 in spec.nodata_boxes:
        if row0 + pad < row < row1 - pad and col0 + pad < col < col1 - pad:
            return "nodata"
        if row0 - pad <= row <= row1 + pad and col0 - pad <= col <= col1 + pad:
            return "edge"
    return "valid"


def expected_state(specs, lon, lat):
    """What the mosaic of `specs` must hold at lon/lat: 'valid', 'nodata' or 'edge' (unpredictable)."""
    states = [spec_state(spec, lon, lat) for spec in specs]
    if "valid" in states:
        return "valid"
    if "edge" in states:
        return "edge"
    return "nodata"  # inside nodata boxes only, or outside every tile


def patch_centres(west, south, east, north):
    """Centres of every value patch of the fixture inside a lon/lat box."""
    lons = [patch_centre(west + PATCH_DEG * (i + 0.5), south)[0] for i in range(int((east - west) / PATCH_DEG))]
    lats = [patch_centre(west, south + PATCH_DEG * (j + 0.5))[1] for j in range(int((north - south) / PATCH_DEG))]
    return [(lon, lat) for lat in sorted(set(lats)) for lon in sorted(set(lons)) if west < lon < east and south < lat < north]


def inside_points(layer, margin=30.0):
    """Patch centres (lon, lat) lying at least `margin` layer units inside the layer's extent."""
    extent = layer.extent()
    to_wgs84 = QgsCoordinateTransform(layer.crs(), QgsCoordinateReferenceSystem("EPSG:4326"), QgsProject.instance())
    to_layer = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance())
    box = to_wgs84.transformBoundingBox(extent)
    inner = extent.buffered(-margin)
    points = []
    for lon, lat in patch_centres(box.xMinimum(), box.yMinimum(), box.xMaximum(), box.yMaximum()):
        if inner.contains(to_layer.transform(QgsPointXY(lon, lat))):
            points.append((lon, lat))
    return points


def read_points(layer, lonlats, bands):
    """{(lon, lat): (identify values of all bands, {band: sample()})} through QGIS's raster provider."""
    provider = layer.dataProvider()
    transform = QgsCoordinateTransform(QgsCoordinateReferenceSystem("EPSG:4326"), layer.crs(), QgsProject.instance())
    extent = layer.extent()
    readings = {}
    for lon, lat in lonlats:
        point = transform.transform(QgsPointXY(lon, lat))
        assert extent.contains(point), f"{lon:.4f},{lat:.4f} falls outside the layer"
        identified = provider.identify(point, IDENTIFY_VALUE)
        assert identified.isValid(), identified.error().message()
        samples = {band: provider.sample(point, band) for band in bands}
        readings[(lon, lat)] = (identified.results(), samples)
    return readings


def provider_values(layer, band=1):
    """Every value of a band as QGIS's raster provider reads it (rows from the north), NaN where it says nodata."""
    block = layer.dataProvider().block(band, layer.extent(), layer.width(), layer.height())
    out = np.full((layer.height(), layer.width()), np.nan)
    for row in range(layer.height()):
        for col in range(layer.width()):
            if not block.isNoData(row, col):
                out[row, col] = block.value(row, col)
    return out


def check_values(layer, specs, year, bands=(1, 2, 10, 17, 33, 64)):
    """Compare QGIS's reading of every predictable patch centre with the fixture; returns (valid, nodata) points."""
    points = inside_points(layer)
    states = {point: expected_state(specs, *point) for point in points}
    wanted = [point for point, state in states.items() if state != "edge"]
    readings = read_points(layer, wanted, bands)
    problems = []
    valid, nodata = [], []
    for (lon, lat), (identified, samples) in readings.items():
        where = f"({lon:.4f}, {lat:.4f})"
        if states[(lon, lat)] == "valid":
            valid.append((lon, lat))
            expected = expected_values(lon, lat, year)
            got = np.array([np.nan if identified[b] is None else identified[b] for b in range(1, 65)], dtype=np.float64)
            if not np.allclose(got, expected, rtol=0, atol=TOLERANCE):
                worst = int(np.nanargmax(np.abs(got - expected))) if not np.isnan(got).all() else 0
                problems.append(f"{where} identify A{worst:02d}={got[worst]} expected {expected[worst]}")
            for band, (value, ok) in samples.items():
                if not ok or not math.isclose(value, float(expected[band - 1]), abs_tol=TOLERANCE):
                    problems.append(f"{where} sample band {band}=({value}, {ok}) expected {expected[band - 1]}")
        else:
            nodata.append((lon, lat))
            if any(identified[b] is not None for b in range(1, 65)):
                problems.append(f"{where} should be nodata, identify gave {identified[1]}, ...")
            for band, (value, ok) in samples.items():
                if ok and not math.isnan(value):
                    problems.append(f"{where} should be nodata, sample band {band} gave {value}")
    assert not problems, f"{len(problems)} mismatches, first ones:\n" + "\n".join(problems[:15])
    return valid, nodata


# --- the load cases ---------------------------------------------------------------------------


def footprint_lonlat(spec):
    west, south, east, north = spec.bounds
    lon, lat = Transformer.from_crs(f"EPSG:{spec.epsg}", "EPSG:4326", always_xy=True).transform(
        [west, east, east, west], [south, south, north, north]
    )
    return min(lon), min(lat), max(lon), max(lat)


def overlaps(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def case_setup(case, aef_mirror, aef_specs, tile_2024_31n):
    """(parameters, specs the output is made of, expected CRS, expected extent or None for an EXTENT-driven grid)."""
    annual = aef_mirror / "v1" / "annual"
    tile_spec, tile_path = tile_2024_31n
    if case == "tile":
        return {"SOURCE": str(tile_path)}, [tile_spec], "EPSG:32631", tile_spec.bounds
    if case == "zone-folder":  # a folder of tiles without an index
        specs = [s for s in aef_specs if s.year == 2024 and s.zone == "31N"]
        union = tuple(f(s.bounds[i] for s in specs) for i, f in enumerate((min, min, max, max)))
        return {"SOURCE": str(annual / "2024" / "31N")}, specs, "EPSG:32631", union
    specs = [s for s in aef_specs if s.year == 2024 and overlaps(footprint_lonlat(s), EXTENT_BOX)]
    source = annual / "aef_index.parquet" if case == "index" else aef_mirror
    return {"SOURCE": str(source), "EXTENT": EXTENT, "YEAR": 2024}, specs, "EPSG:32632", None
