"""The plugin object QGIS creates through classFactory()."""

from qgis.core import QgsApplication

from .providers.provider import GeoEmbedProvider


class GeoEmbedPlugin:
    def __init__(self, iface):
        self.iface = iface  # None under qgis_process: never touch it there
        self.provider = None
        self.menu = None

    def initProcessing(self):  # noqa: N802 - QGIS API
        """Register the provider once (qgis_process calls this; desktop QGIS reaches it via initGui)."""
        registry = QgsApplication.processingRegistry()
        if self.provider is not None or registry.providerById("geoembed") is not None:
            return
        provider = GeoEmbedProvider()
        if registry.addProvider(provider):
            self.provider = provider

    def initGui(self):  # noqa: N802
        self.initProcessing()
        if self.iface is None:
            return
        from .ui.menu import GeoEmbedMenu

        self.menu = GeoEmbedMenu(self.iface)
        self.menu.setup()

    def unload(self):
        if self.menu is not None:
            self.menu.teardown()
            self.menu = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
