"""Product id -> loader module. Each module provides recognise_source(source) and plan(request, log, client)."""

from . import aef, clay, copernicus, earth_index, esd, generic, major_tom, presto, tessera

# Order matters for PRODUCT=auto: the first module that recognises SOURCE wins; generic (any multi-band raster) last.
MODULES = {
    "aef": aef,
    "tessera": tessera,
    "earth-index": earth_index,
    "major-tom": major_tom,
    "clay": clay,
    "copernicus-embed": copernicus,
    "presto": presto,
    "esd": esd,
    "generic": generic,
}
