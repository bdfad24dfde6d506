"""The plugin as qgis_process sees it: enabled, and geoembed:load with its documented parameters."""

import re

from tests.e2e.helpers import output_of

PARAMETERS = ("PRODUCT", "SOURCE", "EXTENT", "YEAR", "CRS", "OUTPUT")


def test_plugins_lists_geoembed_as_enabled(qgis_process):
    completed = qgis_process("plugins")
    assert completed.returncode == 0, output_of(completed)
    assert re.search(r"^\* geoembed\s*$", completed.stdout, re.MULTILINE), completed.stdout


def test_help_shows_load_and_its_parameters(qgis_process):
    completed = qgis_process("help", "geoembed:load")
    assert completed.returncode == 0, output_of(completed)
    text = completed.stdout
    assert "(geoembed:load)" in text, text
    arguments = text.split("Arguments", 1)[-1]
    declared = re.findall(r"^([A-Z_]+): ", arguments, re.MULTILINE)
    for name in PARAMETERS:
        assert name in declared, f"{name} missing from `help geoembed:load` arguments {declared}"
    assert re.search(r"^OUTPUT: .*\n\tArgument type:\trasterDestination", arguments, re.MULTILINE), arguments
    assert "Traceback" not in output_of(completed)
