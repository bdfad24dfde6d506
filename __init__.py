"""GeoEmbed QGIS plugin entry point."""


def classFactory(iface):  # noqa: N802 (QGIS API name)
    """Called by QGIS (desktop: iface is the QgisInterface; qgis_process: iface is None)."""
    from .plugin import GeoEmbedPlugin

    return GeoEmbedPlugin(iface)
