"""Product id -> loader module. Each module provides recognise_source(source) and plan(request, log, client)."""

from . import aef, copernicus, esd, presto, tessera

# Order matters for PRODUCT=auto: the first module that recognises SOURCE wins.
MODULES = {"aef": aef, "tessera": tessera, "copernicus-embed": copernicus, "presto": presto, "esd": esd}
