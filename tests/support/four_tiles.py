"""A region of four AEF tiles (2 x 2, one UTM zone) for the distributed runs: big enough for several output blocks
(512 pixels) in each direction, small enough to write in a second or two."""

from pathlib import Path

from tests.fixtures.aef import TileSpec, _snap, _utm, build_mirror

TILE_WIDTH, TILE_HEIGHT = 520, 272  # the mosaic: 1040 x 544 pixels, 3 x 2 blocks of 512


def four_tile_specs(year=2024):
    x, y = _utm(32631, 5.0, 45.0)
    west, south = _snap(x), _snap(y)
    specs = []
    for row in range(2):
        for col in range(2):
            spec = TileSpec(
                year,
                "31N",
                west + col * 10 * TILE_WIDTH,
                south + row * 10 * TILE_HEIGHT,
                TILE_WIDTH,
                TILE_HEIGHT,
                yoff=row * 8192,
                xoff=col * 8192,
                nodata_boxes=[(10, 60, 20, 90)] if (row, col) == (1, 0) else [],
            )
            specs.append(spec)
    return specs


def build_four_tiles(root, year=2024):
    """The folder holding the four tiles (AEF's layout: root/v1/annual/<year>/31N); geoembed reads it as one mosaic."""
    annual = build_mirror(root, four_tile_specs(year))
    return Path(annual) / str(year) / "31N"


def lonlat_points(count=3):
    """A few lon/lat points inside the region (for similarity queries and training labels)."""
    return [(5.01 + 0.02 * i, 45.01 + 0.01 * i) for i in range(count)]
