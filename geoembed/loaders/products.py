"""Product id -> loader module. Each module provides recognise_source(source) and plan(request, log, client)."""

from . import aef

MODULES = {"aef": aef}
