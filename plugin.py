"""The plugin object QGIS creates through classFactory()."""

from qgis.core import QgsApplication

from .providers.provider import GeoEmbedProvider


class GeoEmbedPlugin:
    def __init__(self, iface):
        self.iface = iface  # None under qgis_process: never touch it there
        self.provider = None
        self.menu = None
        self.dock = None

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
        self.menu.setup(self.show_panel)

    def show_panel(self, visible=True):
        """Show (creating it the first time) or hide the GeoEmbed dock panel."""
        if self.iface is None:
            return None
        if self.dock is None:
            if not visible:
                return None
            from qgis.PyQt.QtCore import Qt

            from .ui.dock import GeoEmbedDock

            self.dock = GeoEmbedDock(self.iface, self.iface.mainWindow())
            self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
            self.dock.openedStateChanged.connect(self._panel_visibility)  # tabbed away still counts as open
        if visible:
            self.dock.setUserVisible(True)  # also raises it when tabbed behind another panel
        else:
            self.dock.hide()
        return self.dock

    def _panel_visibility(self, opened):
        if self.menu is not None and self.menu.panel_action is not None:
            self.menu.panel_action.setChecked(opened)

    def unload(self):
        if self.dock is not None:
            self.dock.unload()
            self.dock.openedStateChanged.disconnect(self._panel_visibility)
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.menu is not None:
            self.menu.teardown()
            self.menu = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
