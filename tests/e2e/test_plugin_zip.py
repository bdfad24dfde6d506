"""The plugin ZIP of tools/package.py, installed as QGIS's "Install from ZIP" does and run through qgis_process.

The installed copy is the only geoembed QGIS can find: the environment has no QGIS_PLUGINPATH and no PYTHONPATH entry
holding a `geoembed` package (build/plugins is dropped, the venv's site-packages kept for pyarrow), and qgis_process runs
outside the repository. Before the ZIP is unzipped, QGIS must not know the plugin; after, the modules it compiled must
sit in the profile's copy.
"""

import configparser
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import numpy as np
import pytest
from osgeo import gdal

from tests.e2e.conftest import QGIS_PROCESS, TIMEOUT_S
from tests.e2e.helpers import json_of, load_args, output_of, pixel_at
from tests.fixtures.aef import expected_values, patch_centre

REPO = Path(__file__).resolve().parents[2]
PACKAGE_SCRIPT = REPO / "tools" / "package.py"
PLUGIN = "geoembed"
# The plugin's top level as the task defines it; nothing else may ship.
REQUIRED_TOP = {
    *("metadata.txt", "__init__.py", "__about__.py", "plugin.py", "qgis_compat.py"),
    *("providers", "loaders", "analysis", "ui", "resources"),
}
ALLOWED_TOP = REQUIRED_TOP | {"LICENSE"}
# Repository content that is not the plugin.
NOT_PLUGIN = {"tests", "bench", "build", "tools", "docs", "requirements", "dev.sh", "pyproject.toml", "README.md", ".ci"}
EXTENT = "5.975,6.02,44.99,45.02 [EPSG:4326]"  # dev.sh demo's extent: 31N and 32N tiles mosaicked onto one grid
POINTS = [patch_centre(5.992, 45.015), patch_centre(6.010, 45.005)]  # west (31N tile) and east (32N tile) of 6°E


def package(*args, repo=REPO):
    return subprocess.run(
        [sys.executable, str(repo / "tools" / "package.py"), *map(str, args)],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def built_zip(output_dir, repo=REPO):
    completed = package("--allow-dirty", "--output", output_dir, repo=repo)
    assert completed.returncode == 0, output_of(completed)
    version = repo_metadata(repo)["version"]
    path = Path(output_dir) / f"{PLUGIN}-{version}.zip"
    assert path.is_file(), f"{path} missing; package.py said:\n{output_of(completed)}"
    assert str(path) in completed.stdout and f"{path.stat().st_size:,} bytes" in completed.stdout, completed.stdout
    return path


def repo_metadata(repo=REPO):
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(Path(repo) / "metadata.txt", encoding="utf-8")
    return dict(parser.items("general"))


def git_files(*args, repo=REPO):
    listed = subprocess.run(["git", "-C", str(repo), "ls-files", "-z", *args], capture_output=True, check=True).stdout
    return [name for name in listed.decode("utf-8").split("\0") if name]


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory):
    return built_zip(tmp_path_factory.mktemp("zip-a"))


# ------------------------------------------------------------------------------------------------ the ZIP's content


def test_one_top_folder_named_geoembed_with_metadata(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
        assert archive.testzip() is None
    assert names and all(name.startswith(f"{PLUGIN}/") for name in names), names[:5]
    # Install from ZIP names the plugin after the folder of the first metadata.txt in sorted order.
    metadata_files = sorted(name for name in names if name.endswith("metadata.txt"))
    assert metadata_files == [f"{PLUGIN}/metadata.txt"]
    top = {PurePosixPath(name).parts[1] for name in names if len(PurePosixPath(name).parts) > 1}
    assert REQUIRED_TOP <= top <= ALLOWED_TOP, top


def test_nothing_but_the_plugin(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        names = archive.namelist()
    for name in names:
        parts = PurePosixPath(name).parts[1:]
        assert not any(part.startswith(".") for part in parts), name
        assert "__pycache__" not in parts and not name.endswith((".pyc", ".pyo")), name
        assert not (parts and parts[0] in NOT_PLUGIN), name


def test_every_tracked_python_file_of_the_plugin_ships_as_in_the_working_tree(plugin_zip):
    plugin_py = [name for name in git_files("*.py") if PurePosixPath(name).parts[0] not in NOT_PLUGIN]
    assert "providers/load.py" in plugin_py and "loaders/products/aef.py" in plugin_py  # the listing itself is sane
    with zipfile.ZipFile(plugin_zip) as archive:
        shipped = {name[len(PLUGIN) + 1 :] for name in archive.namelist()}
        for name in plugin_py:
            if (REPO / name).is_file():
                assert name in shipped, f"{name} is missing from {plugin_zip.name}"
                assert archive.read(f"{PLUGIN}/{name}") == (REPO / name).read_bytes(), name
        assert archive.read(f"{PLUGIN}/resources/icons/geoembed.svg") == (REPO / "resources/icons/geoembed.svg").read_bytes()


def test_entries_are_sorted_dated_alike_with_normal_modes(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        infos = archive.infolist()
    assert [info.filename for info in infos] == sorted(info.filename for info in infos)
    assert len({info.date_time for info in infos}) == 1
    for info in infos:
        mode = info.external_attr >> 16
        assert mode == (0o040755 if info.is_dir() else 0o100644), (info.filename, oct(mode))


def test_two_builds_are_byte_identical(plugin_zip, tmp_path):
    assert built_zip(tmp_path).read_bytes() == plugin_zip.read_bytes()


def test_metadata_inside_has_what_the_plugin_repository_requires(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as archive:
        parser = configparser.ConfigParser(interpolation=None)
        parser.optionxform = str
        parser.read_string(archive.read(f"{PLUGIN}/metadata.txt").decode("utf-8"))
    metadata = dict(parser.items("general"))
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository", "tracker"):
        assert metadata.get(key, "").strip(), key
    assert plugin_zip.name == f"{PLUGIN}-{metadata['version']}.zip"
    assert metadata == repo_metadata()


# ------------------------------------------------------------------------------------------------ package.py's refusals


@pytest.fixture()
def clone(tmp_path):
    """A clone of the repository's HEAD with this tools/package.py in it (the repository itself is never changed)."""
    if shutil.which("git") is None:
        pytest.fail("git is needed: tools/package.py takes its file list from `git ls-files`")
    target = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(target)], check=True, timeout=120)
    (target / "tools").mkdir(exist_ok=True)
    shutil.copy2(PACKAGE_SCRIPT, target / "tools" / "package.py")
    return target


def test_uncommitted_plugin_changes_are_refused_unless_allowed(clone, tmp_path):
    assert package("--output", tmp_path / "clean", repo=clone).returncode == 0  # a clean checkout packages
    with open(clone / "providers" / "load.py", "a", encoding="utf-8") as handle:
        handle.write("\n# edited\n")
    refused = package("--output", tmp_path / "dirty", repo=clone)
    assert refused.returncode == 1
    assert "providers/load.py" in refused.stderr and "--allow-dirty" in refused.stderr, output_of(refused)
    assert "Traceback" not in output_of(refused)
    assert not (tmp_path / "dirty").exists() or not any((tmp_path / "dirty").iterdir())
    with zipfile.ZipFile(built_zip(tmp_path / "allowed", repo=clone)) as archive:
        assert archive.read(f"{PLUGIN}/providers/load.py").endswith(b"# edited\n")


def test_untracked_files_never_ship(clone, tmp_path):
    (clone / "providers" / "scratch.py").write_text("x = 1\n", encoding="utf-8")
    (clone / "loaders" / "__pycache__").mkdir(exist_ok=True)
    (clone / "loaders" / "__pycache__" / "load.cpython-311.pyc").write_bytes(b"\0")
    (clone / "ui" / ".notes").write_text("private\n", encoding="utf-8")
    completed = package("--output", tmp_path, repo=clone)  # untracked files leave the tree clean
    assert completed.returncode == 0, output_of(completed)
    with zipfile.ZipFile(next(tmp_path.glob("*.zip"))) as archive:
        names = archive.namelist()
    assert f"{PLUGIN}/providers/load.py" in names
    assert not [name for name in names if "scratch" in name or "__pycache__" in name or ".notes" in name], names


def test_missing_required_metadata_is_refused(clone, tmp_path):
    metadata = clone / "metadata.txt"
    lines = metadata.read_text(encoding="utf-8").splitlines()
    metadata.write_text("\n".join("email=" if line.startswith("email=") else line for line in lines) + "\n", encoding="utf-8")
    refused = package("--allow-dirty", "--output", tmp_path, repo=clone)
    assert refused.returncode == 1
    assert "email" in refused.stderr and "Traceback" not in output_of(refused), output_of(refused)
    assert not list(tmp_path.glob("*.zip"))


# ------------------------------------------------------------------------------------------------ installed and run


def qgis_unzip():
    """QGIS's own extraction (pyplugin_installer/unzip.py) when its Python sources are found, else zipfile's."""
    roots = [Path(entry) for entry in sys.path if entry] + [Path("/usr/share/qgis/python")]
    for root in roots:
        source = root / "pyplugin_installer" / "unzip.py"
        if source.is_file():
            spec = importlib.util.spec_from_file_location("qgis_pyplugin_unzip", source)
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            return module.unzip
    return lambda path, target: zipfile.ZipFile(path).extractall(target)


def isolated_env(base):
    """conftest's qgis_process environment without any way to the repository's copy of the plugin."""
    profile, runtime, cache = base / "config", base / "xdg-runtime", base / "geoembed-cache"
    for folder in (profile, runtime, cache):
        folder.mkdir()
    runtime.chmod(0o700)
    env = {key: value for key, value in os.environ.items() if not key.startswith("QGIS_")}
    # Python must write bytecode beside the modules it imports: that shows where the plugin was imported from.
    for key in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX"):
        env.pop(key, None)
    candidates = [sysconfig.get_paths()["purelib"], *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
    pythonpath = [entry for entry in dict.fromkeys(candidates) if entry and not (Path(entry) / PLUGIN).exists()]
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        XDG_RUNTIME_DIR=str(runtime),
        PYTHONPATH=os.pathsep.join(pythonpath),
        GEOEMBED_CACHE_DIR=str(cache),
    )
    return env, profile / "profiles" / "default" / "python" / "plugins"


def run_qgis(env, cwd, *args):
    return subprocess.run(
        [QGIS_PROCESS, *map(str, args)], env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
    )


@pytest.fixture(scope="module")
def installed(plugin_zip, tmp_path_factory):
    """The ZIP unzipped into a clean profile, enabled, and geoembed:load run from it on the AEF sample."""
    if not os.path.exists(QGIS_PROCESS):
        pytest.fail(f"{QGIS_PROCESS} not found: install the Debian packages qgis and python3-qgis (./dev.sh setup)")
    base = tmp_path_factory.mktemp("zip-install")
    env, plugins_dir = isolated_env(base)
    work = base / "work"  # qgis_process runs here, away from the repository
    work.mkdir()
    before = SimpleNamespace(listed=run_qgis(env, work, "plugins"), enabled=run_qgis(env, work, "plugins", "enable", PLUGIN))
    qgis_unzip()(str(plugin_zip), str(plugins_dir))
    enabled = run_qgis(env, work, "plugins", "enable", PLUGIN)
    listed = run_qgis(env, work, "plugins")
    return SimpleNamespace(env=env, work=work, plugin_dir=plugins_dir / PLUGIN, before=before, enabled=enabled, listed=listed)


@pytest.fixture(scope="module")
def zip_load(installed, aef_mirror):
    output = installed.work / "aef_2024.tif"
    completed = run_qgis(
        installed.env,
        installed.work,
        *load_args(PRODUCT="aef", SOURCE=aef_mirror, YEAR=2024, EXTENT=EXTENT, OUTPUT=output),
    )
    return completed, output


def test_no_other_copy_is_reachable_before_the_zip_is_installed(installed):
    assert not any((Path(entry) / PLUGIN).exists() for entry in installed.env["PYTHONPATH"].split(os.pathsep) if entry)
    assert "QGIS_PLUGINPATH" not in installed.env
    assert installed.before.listed.returncode == 0, output_of(installed.before.listed)
    assert PLUGIN not in installed.before.listed.stdout.split(), output_of(installed.before.listed)
    assert installed.before.enabled.returncode != 0, output_of(installed.before.enabled)


def test_the_unzipped_plugin_is_enabled(installed):
    assert (installed.plugin_dir / "metadata.txt").is_file()
    assert installed.enabled.returncode == 0, output_of(installed.enabled)
    assert f"* {PLUGIN}" in installed.listed.stdout, output_of(installed.listed)


def test_load_from_the_installed_zip_writes_64_bands_with_the_fixture_values(zip_load):
    completed, output = zip_load
    document = json_of(completed)
    assert document["results"]["OUTPUT"] == str(output)
    assert "Traceback" not in output_of(completed)
    dataset = gdal.Open(str(output))
    assert dataset is not None and dataset.RasterCount == 64
    assert [dataset.GetRasterBand(i + 1).GetDescription() for i in range(64)] == [f"A{i:02d}" for i in range(64)]
    dataset = None
    for lon, lat in POINTS:
        values, _ = pixel_at(output, lon, lat)
        np.testing.assert_allclose(values, expected_values(lon, lat, 2024).astype(np.float64), rtol=0, atol=1e-6)


def test_qgis_imported_the_plugin_from_the_profile(zip_load, installed):
    completed, _ = zip_load
    assert completed.returncode == 0, output_of(completed)
    # Python compiles what it imports into __pycache__ beside the source: these exist only if QGIS ran this copy.
    for module in ("providers/load.py", "loaders/load.py", "loaders/products/aef.py"):
        source = installed.plugin_dir / module
        compiled = list((source.parent / "__pycache__").glob(f"{source.stem}.*.pyc"))
        assert compiled, f"no bytecode for {source}: QGIS did not import the installed copy"
