"""Desktop GUI: menu, toolbar (and later the dock panel); only imported when iface exists."""
