"""The plugin and its QGIS tests use only spellings that QGIS 4 (Qt 6, PyQt6) still has, so that none come back.

PyQt6 keeps a Qt enum member only under its enum type (Qt.AlignmentFlag.AlignLeft, not Qt.AlignLeft), has no
exec_(), QRegExp or QDesktopWidget; QGIS 4 drops the enum spellings that moved into Qgis in QGIS 3.30-3.36, which
3.22 does not have yet: the plugin takes those from qgis_compat.py, the one module allowed to name the old ones.

Plain pytest: the sources are parsed, not imported. Whether `X.Y` names an enum type or an enum member is told by
the code's shape (`X.Y.Z` and `X.Y(...)` use Y as a type) and, for Qt classes, by asking PyQt when it is installed.
"""

import ast
import functools
import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_FOLDERS = ("providers", "ui", "loaders", "analysis")
TEST_FOLDERS = ("tests/qgis",)
COMPAT_MODULE = "qgis_compat.py"

QT_MODULES = ("QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtSvg", "QtXml", "QtPrintSupport", "QtTest")
QT5_ONLY = {
    "QRegExp": "QRegularExpression",
    "QRegExpValidator": "QRegularExpressionValidator",
    "QDesktopWidget": "QScreen (QApplication.screens(), QWidget.screen())",
    "QGLWidget": "QOpenGLWidget",
    "QGLFormat": "QSurfaceFormat",
    "QMatrix": "QTransform",
    "QStringRef": "str",
    "QTextCodec": "Python's codecs",
    "QSound": "QSoundEffect",
}
# Classes Qt 6 moved from QtWidgets to QtGui that qgis.PyQt.QtWidgets does not map back (it maps QAction,
# QActionGroup and QShortcut); and the reverse trap: QGIS 3.22's qgis.PyQt.QtGui has no QAction yet.
MOVED_TO_QTGUI = {"QFileSystemModel", "QUndoCommand", "QUndoStack", "QUndoGroup"}
NOT_IN_QTGUI_ON_3_22 = {"QAction", "QActionGroup", "QShortcut"}

# Enum types of the QGIS classes the plugin uses that moved into Qgis (QGIS 3.30-3.36; QGIS 4 keeps only the new).
MOVED_QGIS_ENUM_TYPES = dict(
    line.split()
    for line in """
    QgsColorRampShader.ClassificationMode Qgis.ShaderClassificationMethod
    QgsColorRampShader.Type Qgis.ShaderInterpolationMethod
    QgsCoordinateReferenceSystem.Format Qgis.CrsDefinitionFormat
    QgsCoordinateReferenceSystem.IdentifierType Qgis.CrsIdentifierType
    QgsCoordinateReferenceSystem.WktVariant Qgis.CrsWktVariant
    QgsCoordinateTransform.TransformDirection Qgis.TransformDirection
    QgsFields.FieldOrigin Qgis.FieldOrigin
    QgsGeometry.BufferSide Qgis.BufferSide
    QgsGeometry.EndCapStyle Qgis.EndCapStyle
    QgsGeometry.JoinStyle Qgis.JoinStyle
    QgsGeometry.OperationResult Qgis.GeometryOperationResult
    QgsMapLayer.LayerType Qgis.LayerType
    QgsMapLayerProxyModel.Filter Qgis.LayerFilter
    QgsMapSettings.Flag Qgis.MapSettingsFlag
    QgsProcessing.SourceType Qgis.ProcessingSourceType
    QgsProcessingAlgorithm.Flag Qgis.ProcessingAlgorithmFlag
    QgsProcessingContext.LogLevel Qgis.ProcessingLogLevel
    QgsProcessingParameterDefinition.Flag Qgis.ProcessingParameterFlag
    QgsProcessingParameterField.DataType Qgis.ProcessingFieldParameterDataType
    QgsProcessingParameterFile.Behavior Qgis.ProcessingFileParameterBehavior
    QgsProcessingParameterNumber.Type Qgis.ProcessingNumberParameterType
    QgsProcessingProvider.Flag Qgis.ProcessingProviderFlag
    QgsProject.FileFormat Qgis.ProjectFileFormat
    QgsProject.ReadFlag Qgis.ProjectReadFlag
    QgsRaster.ColorInterpretation Qgis.RasterColorInterpretation
    QgsRaster.DrawingStyle Qgis.RasterDrawingStyle
    QgsRaster.IdentifyFormat Qgis.RasterIdentifyFormat
    QgsRasterBandStats.Stats Qgis.RasterBandStatistic
    QgsRasterLayer.LayerType Qgis.RasterLayerType
    QgsSymbol.SymbolType Qgis.SymbolType
    QgsUnitTypes.AreaUnit Qgis.AreaUnit
    QgsUnitTypes.DistanceUnit Qgis.DistanceUnit
    QgsUnitTypes.RenderUnit Qgis.RenderUnit
    QgsVectorLayer.SelectBehavior Qgis.SelectBehavior
    QgsWkbTypes.GeometryType Qgis.GeometryType
    QgsWkbTypes.Type Qgis.WkbType
    """.strip().splitlines()
)
# Enum members spelled in capitals, which the shape alone cannot tell from constants such as TEMPORARY_OUTPUT.
MOVED_QGIS_CAPITALS = {"QgsCoordinateReferenceSystem": "WKT"}  # WKT_PREFERRED, WKT2_2019, ... -> Qgis.CrsWktVariant


def plugin_sources():
    files = sorted(ROOT.glob("*.py"))
    for folder in PLUGIN_FOLDERS + TEST_FOLDERS:
        files += sorted(p for p in (ROOT / folder).rglob("*.py") if "__pycache__" not in p.parts)
    return files


def is_qt_class(name):
    return name == "Qt" or re.fullmatch(r"Q[A-Z]\w*", name) is not None


def is_qgis_class(name):
    return name == "Qgis" or re.fullmatch(r"Qgs[A-Z]\w*", name) is not None


@functools.cache
def qt_class(name):
    """The class `name` of the installed PyQt (5 or 6), or None when no PyQt here has it."""
    for binding in ("PyQt5", "PyQt6"):
        for module in QT_MODULES:
            try:
                found = getattr(importlib.import_module(f"{binding}.{module}"), name, None)
            except ImportError:
                continue
            if found is not None:
                return found
    return None


def names_a_qt_type(owner, attribute):
    """True when owner.attribute is a class (an enum type or nested class) in the installed PyQt, not a member."""
    cls = qt_class(owner)
    return cls is not None and isinstance(getattr(cls, attribute, None), type)


def capitalised(name):
    return name[:1].isupper()


def all_capitals(name):
    return re.fullmatch(r"[A-Z][A-Z0-9_]*", name) is not None


class SpellingChecker(ast.NodeVisitor):
    """Collects (line, problem) for the Qt 5-only and moved-QGIS spellings in one module's code."""

    def __init__(self, is_compat_module=False):
        self.is_compat_module = is_compat_module
        self.problems = []
        self.parents = {}

    def check(self, source):
        tree = ast.parse(source)
        for parent in ast.walk(tree):
            for child in ast.iter_child_nodes(parent):
                self.parents[child] = parent
        self.visit(tree)
        return sorted(self.problems)

    def report(self, node, problem):
        self.problems.append((node.lineno, problem))

    def used_as_type(self, node):
        """node (X.Y) is followed by .Z (a member of the type Y) or called (Y(...) builds a Y)."""
        parent = self.parents.get(node)
        if isinstance(parent, ast.Attribute) and parent.value is node and capitalised(parent.attr):
            return True
        return isinstance(parent, ast.Call) and parent.func is node

    def visit_Attribute(self, node):  # noqa: N802 - ast API
        if node.attr == "exec_":
            self.report(node, "exec_(): use exec()")
        if node.attr in QT5_ONLY:
            self.report(node, f"{node.attr} is not in Qt 6: use {QT5_ONLY[node.attr]}")
        if isinstance(node.value, (ast.Name, ast.Attribute)) and capitalised(node.attr):
            owner = node.value.id if isinstance(node.value, ast.Name) else node.value.attr
            if is_qt_class(owner):
                self.check_qt(node, owner)
            elif is_qgis_class(owner):
                self.check_qgis(node, owner)
        self.generic_visit(node)

    def check_qt(self, node, owner):
        if self.used_as_type(node) or names_a_qt_type(owner, node.attr):
            return
        if owner == "QVariant":
            self.report(node, f"QVariant.{node.attr}: field types are QMetaType.Type since QGIS 3.38: use qgis_compat's FIELD_*")
            return
        self.report(node, f"{owner}.{node.attr}: spell the member through its enum type (e.g. Qt.AlignmentFlag.AlignLeft)")

    def check_qgis(self, node, owner):
        spelling = f"{owner}.{node.attr}"
        if spelling in MOVED_QGIS_ENUM_TYPES:
            if not self.is_compat_module:
                new = MOVED_QGIS_ENUM_TYPES[spelling]
                self.report(node, f"{spelling} is {new} since QGIS 3.30-3.36 (QGIS 3.22 has only the old): use qgis_compat")
            return
        prefix = MOVED_QGIS_CAPITALS.get(owner)
        if prefix and node.attr.startswith(prefix):
            self.report(node, f"{spelling} moved into Qgis (QGIS 3.36): take it from qgis_compat")
            return
        if all_capitals(node.attr) or self.used_as_type(node):
            return
        self.report(node, f"{spelling}: spell the member through its enum type (Qgis.* for those that moved, via qgis_compat)")

    def visit_Name(self, node):  # noqa: N802 - ast API
        if node.id in QT5_ONLY:
            self.report(node, f"{node.id} is not in Qt 6: use {QT5_ONLY[node.id]}")
        if node.id == "exec_":
            self.report(node, "exec_(): use exec()")

    def visit_Import(self, node):  # noqa: N802 - ast API
        for alias in node.names:
            if alias.name.split(".")[0] in ("PyQt5", "PyQt6", "sip"):
                self.report(node, f"import {alias.name}: import Qt through qgis.PyQt")

    def visit_ImportFrom(self, node):  # noqa: N802 - ast API
        module = node.module or ""
        names = {alias.name for alias in node.names}
        if module.split(".")[0] in ("PyQt5", "PyQt6", "sip"):
            self.report(node, f"from {module} import ...: import Qt through qgis.PyQt")
        if module == "qgis.PyQt.QtWidgets":
            for name in sorted(names & MOVED_TO_QTGUI):
                self.report(node, f"{name} is in QtGui in Qt 6 and qgis.PyQt.QtWidgets does not map it")
        if module == "qgis.PyQt.QtGui":
            for name in sorted(names & NOT_IN_QTGUI_ON_3_22):
                self.report(node, f"{name}: import it from qgis.PyQt.QtWidgets (QGIS 3.22's qgis.PyQt.QtGui has none)")
        for name in sorted(names & set(QT5_ONLY)):
            self.report(node, f"{name} is not in Qt 6: use {QT5_ONLY[name]}")


def problems_in(source, is_compat_module=False):
    return SpellingChecker(is_compat_module).check(source)


# --- the checker tells the spellings apart --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code",
    [
        "Qt.AlignLeft",
        "x = QEvent.MouseButtonRelease",
        "f(QImage.Format_ARGB32)",
        "QtCore.Qt.LeftButton",
        "QDialogButtonBox.Ok | QDialogButtonBox.Cancel",
        "QVariant.String",
        "dialog.exec_()",
        "r = QRegExp('a')",
        "from qgis.PyQt.QtCore import QRegExp",
        "from PyQt5.QtCore import Qt",
        "import PyQt6.QtCore",
        "from qgis.PyQt.QtGui import QAction",
        "from qgis.PyQt.QtWidgets import QUndoStack",
        "QgsWkbTypes.PointGeometry",
        "QgsWkbTypes.GeometryType.PointGeometry",
        "QgsProcessingParameterNumber.Integer",
        "Qgis.Warning",
        "crs.toWkt(QgsCoordinateReferenceSystem.WKT_PREFERRED)",
    ],
)
def test_checker_flags_qt5_and_old_qgis_spellings(code):
    assert problems_in(code), f"{code!r} was not flagged"


@pytest.mark.parametrize(
    "code",
    [
        "Qt.AlignmentFlag.AlignLeft",
        "QtCore.Qt.MouseButton.LeftButton",
        "Qt.AlignmentFlag(0)",
        "QEvent.Type.MouseButtonRelease",
        "QImage.Format.Format_ARGB32",
        "QMetaType.Type.QString",
        "dialog.exec()",
        "s = 'Qt.AlignLeft and exec_()'  # Qt.AlignLeft in a comment",
        "from qgis.PyQt.QtWidgets import QAction",
        "Qgis.GeometryType.Point",
        "Qgis.MessageLevel.Warning",
        "Qgis.QGIS_VERSION_INT",
        "QgsProcessing.TEMPORARY_OUTPUT",
        "QgsPalettedRasterRenderer.Class(1, colour, 'a')",
        "QgsFeatureSink.Flag.FastInsert",
    ],
)
def test_checker_accepts_qt6_and_new_qgis_spellings(code):
    assert problems_in(code) == []


def test_only_the_compat_module_names_the_moved_qgis_enum_types():
    code = "GEOMETRY_POINT = QgsWkbTypes.GeometryType.PointGeometry"
    assert problems_in(code, is_compat_module=True) == []
    assert problems_in(code, is_compat_module=False)


@pytest.mark.skipif(qt_class("Qt") is None, reason="no PyQt installed to tell enum types from members")
def test_checker_asks_pyqt_which_names_are_enum_types():
    assert names_a_qt_type("Qt", "AlignmentFlag") and names_a_qt_type("QSizePolicy", "Policy")
    assert not names_a_qt_type("Qt", "AlignLeft") and not names_a_qt_type("QSizePolicy", "Expanding")
    assert problems_in("policy = QSizePolicy.Policy") == []
    assert problems_in("policy = QSizePolicy.Expanding")


# --- the plugin's sources ---------------------------------------------------------------------------------------------


def test_sources_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in plugin_sources()}
    assert {"plugin.py", "ui/dock.py", "providers/provider.py", "tests/qgis/test_dock.py"} <= names


def test_plugin_and_qgis_tests_use_qt6_and_qgis4_spellings():
    found = []
    for path in plugin_sources():
        relative = path.relative_to(ROOT).as_posix()
        for line, problem in problems_in(path.read_text(encoding="utf-8"), is_compat_module=relative == COMPAT_MODULE):
            found.append(f"{relative}:{line}: {problem}")
    assert not found, f"{len(found)} Qt 5-only or pre-QGIS 4 spellings:\n" + "\n".join(found)
