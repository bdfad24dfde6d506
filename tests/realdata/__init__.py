"""Real-data tier: small real product files (../shared/realdata) read through the plugin as a user would."""
