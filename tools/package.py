"""Build the plugin ZIP that QGIS's "Install from ZIP" and the official plugin repository accept.

    python tools/package.py [--output DIR] [--allow-dirty]

writes DIR/geoembed-<version>.zip (DIR defaults to build/, the version comes from metadata.txt): one top folder
`geoembed/` holding only what the plugin runs on. The file list is `git ls-files`, so untracked files never ship;
uncommitted changes to plugin files are refused unless --allow-dirty (then the working tree is packaged as it is).
Two builds of one commit are byte-identical: sorted entries, the commit's date on every entry, normal file modes.
The finished ZIP is checked against what plugins.qgis.org validates before it is kept.
"""

import argparse
import configparser
import datetime
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

PLUGIN = "geoembed"  # the folder name is the plugin's id in QGIS (`plugins enable geoembed`)
REPO = Path(__file__).resolve().parents[1]

# What QGIS needs to run the plugin. Everything else in the repository (tests, bench, docs, tools, the dev script,
# requirements, pyproject, README) stays out: the repository's homepage documents the plugin.
PLUGIN_FILES = ("metadata.txt", "LICENSE", ":(glob)*.py")  # the top level's own modules (__init__, plugin, qgis_compat, ...)
PLUGIN_FOLDERS = ("providers", "loaders", "analysis", "ui", "resources")

# plugins.qgis.org refuses a package without these (its validator's required fields) ...
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository", "tracker")
URL_METADATA = ("repository", "tracker", "homepage")
# ... bigger than 25 MB, with .pyc files or __pycache__/.git/__MACOSX folders, or binaries.
MAX_BYTES = 25_000_000
COMPILED_OR_ARCHIVES = {".pyc", ".pyo", ".pyd", ".so", ".dll", ".dylib", ".exe", ".bin", ".zip", ".whl", ".egg", ".jar"}
FORBIDDEN_FOLDERS = {"__pycache__", "__MACOSX", ".git"}

FILE_MODE = 0o100644  # regular file, rw-r--r--
FOLDER_MODE = 0o040755  # directory, rwxr-xr-x
MSDOS_DIRECTORY = 0x10
UNIX = 3  # ZipInfo.create_system: the modes above are Unix modes, whatever system builds the ZIP
ZIP_EPOCH = datetime.datetime(1980, 1, 1, tzinfo=datetime.timezone.utc)  # the earliest date a ZIP entry can hold


class PackageError(Exception):
    """A one-line reason the ZIP cannot be built; the script prints it and exits 1."""


def main(argv=None):
    parser = argparse.ArgumentParser(description="Build the GeoEmbed plugin ZIP (geoembed-<version>.zip).")
    parser.add_argument("--output", type=Path, default=REPO / "build", help="folder to write the ZIP to (default: build/)")
    parser.add_argument(
        "--allow-dirty", action="store_true", help="package the working tree even if plugin files have uncommitted changes"
    )
    args = parser.parse_args(argv)
    try:
        path = build(args.output, allow_dirty=args.allow_dirty)
    except PackageError as exc:
        print(f"package.py: error: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(path) as archive:
        files = sum(1 for info in archive.infolist() if not info.is_dir())
    print(f"{path} ({path.stat().st_size:,} bytes, {files} files)")
    return 0


def build(output_dir, allow_dirty=False, repo=REPO):
    """Write output_dir/geoembed-<version>.zip from the files git tracks; returns its path."""
    repo = Path(repo)
    tracked = tracked_plugin_files(repo)
    refuse_unshippable(tracked)
    if not allow_dirty:
        refuse_uncommitted_changes(repo)
    present = [name for name in tracked if (repo / name).is_file()]  # a tracked file deleted in the working tree (--allow-dirty)
    if "metadata.txt" not in present or "__init__.py" not in present:
        raise PackageError("metadata.txt and __init__.py must be tracked by git at the repository root: QGIS needs both")
    metadata = check_metadata((repo / "metadata.txt").read_text(encoding="utf-8"), present)
    if "LICENSE" not in present:
        print(
            "package.py: warning: the repository has no LICENSE file; plugins.qgis.org refuses packages without one "
            "(Install from ZIP does not need it)",
            file=sys.stderr,
        )

    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / f"{PLUGIN}-{metadata['version']}.zip"
    write_zip(target, repo, present, commit_time(repo))
    check_zip(target)
    return target


# ------------------------------------------------------------------------------------------------ what ships


def git(repo, *args):
    try:
        completed = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise PackageError("git not found: the file list comes from `git ls-files`; install git") from None
    if completed.returncode != 0:
        message = completed.stderr.decode("utf-8", "replace").strip().splitlines()
        raise PackageError(f"git {args[0]} failed in {repo}: {message[0] if message else completed.returncode}")
    return completed.stdout.decode("utf-8")


def tracked_plugin_files(repo):
    """Paths (relative, '/'-separated, sorted) of the plugin's files that git tracks."""
    listed = git(repo, "ls-files", "-z", "--", *PLUGIN_FILES, *(f"{folder}/" for folder in PLUGIN_FOLDERS))
    names = sorted(name for name in listed.split("\0") if name)
    if not names:
        raise PackageError(f"git tracks none of the plugin's files in {repo}")
    return names


def refuse_unshippable(names):
    """Hidden files, caches, compiled code and archives would make plugins.qgis.org refuse the ZIP: name them."""
    bad = [
        name
        for name in names
        if any(part.startswith(".") or part in FORBIDDEN_FOLDERS for part in PurePosixPath(name).parts)
        or PurePosixPath(name).suffix.lower() in COMPILED_OR_ARCHIVES
    ]
    if bad:
        shown = ", ".join(bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise PackageError(f"git tracks files a plugin package must not contain: {shown}; git rm --cached them")


def refuse_uncommitted_changes(repo):
    pathspecs = [*PLUGIN_FILES, *(f"{folder}/" for folder in PLUGIN_FOLDERS)]
    status = git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=no", "--", *pathspecs).split("\0")
    changed, index = set(), 0
    while index < len(status):
        entry = status[index]
        if len(entry) > 3:
            changed.add(entry[3:])
            index += 1 if "R" not in entry[:2] and "C" not in entry[:2] else 2  # a rename is followed by its old name
        else:
            index += 1
    changed = sorted(changed)
    if changed:
        shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
        raise PackageError(
            f"uncommitted changes to plugin files ({shown}): commit them, or pass --allow-dirty to package the working tree"
        )


def commit_time(repo):
    """The HEAD commit's date (UTC): the same commit gives the same timestamps, hence the same bytes."""
    seconds = int(git(repo, "log", "-1", "--format=%ct").strip() or 0)
    when = max(datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc), ZIP_EPOCH)
    return when.timetuple()[:6]


# ------------------------------------------------------------------------------------------------ metadata


def parse_metadata(text):
    """The [general] section of a metadata.txt, keys kept in their case (qgisMinimumVersion, not qgisminimumversion)."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise PackageError(f"metadata.txt cannot be read: {' '.join(str(exc).split())}") from None
    if not parser.has_section("general"):
        raise PackageError("metadata.txt has no [general] section")
    return {key: value.strip() for key, value in parser.items("general")}


def check_metadata(text, names):
    """What QGIS's plugin manager and plugins.qgis.org need from metadata.txt; returns the fields."""
    metadata = parse_metadata(text)
    missing = [key for key in REQUIRED_METADATA if not metadata.get(key)]
    if missing:
        raise PackageError(f"metadata.txt lacks {', '.join(missing)} (required by the QGIS plugin repository); add them")
    if not metadata.get("homepage"):
        print("package.py: warning: metadata.txt has no homepage (recommended by the QGIS plugin repository)", file=sys.stderr)
    if not re.fullmatch(r"[0-9A-Za-z][0-9A-Za-z.+_-]*", metadata["version"]):
        raise PackageError(f"metadata.txt version {metadata['version']!r} cannot name a file; use e.g. 1.2.3")
    for key in ("qgisMinimumVersion", "qgisMaximumVersion"):
        if key in metadata and not re.fullmatch(r"\d+\.\d+(\.\d+)?", metadata[key]):
            raise PackageError(f"metadata.txt {key}={metadata[key]} is not a QGIS version such as 3.22")
    for key in URL_METADATA:
        url = urlparse(metadata.get(key, ""))
        if metadata.get(key) and not (url.scheme in ("http", "https") and url.netloc):
            raise PackageError(f"metadata.txt {key}={metadata[key]} is not an http(s) address")
    if "/" in metadata["author"]:
        raise PackageError("metadata.txt author must not contain '/' (the QGIS plugin repository refuses it)")
    icon = metadata.get("icon", "").removeprefix("./")
    if icon and icon not in names:
        raise PackageError(f"metadata.txt icon={icon} is not a file git tracks in the plugin")
    return metadata


# ------------------------------------------------------------------------------------------------ the ZIP


def write_zip(target, repo, names, date_time):
    """All-or-nothing: written beside target, renamed into place once complete."""
    folders = sorted({str(parent) for name in names for parent in PurePosixPath(name).parents if str(parent) != "."})
    entries = [(f"{PLUGIN}/", None)] + [(f"{PLUGIN}/{folder}/", None) for folder in folders]
    entries = sorted(entries + [(f"{PLUGIN}/{name}", repo / name) for name in names])  # a folder sorts before its files
    handle, partial = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as stream, zipfile.ZipFile(stream, "w") as archive:
            for arcname, source in entries:
                info = zipfile.ZipInfo(arcname, date_time=date_time)
                info.create_system = UNIX
                if source is None:
                    info.external_attr = (FOLDER_MODE << 16) | MSDOS_DIRECTORY
                    archive.writestr(info, b"", compress_type=zipfile.ZIP_STORED)
                else:
                    info.external_attr = FILE_MODE << 16
                    archive.writestr(info, source.read_bytes(), compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    except BaseException:
        Path(partial).unlink(missing_ok=True)
        raise


def check_zip(path):
    """The written ZIP as QGIS and plugins.qgis.org read it; a failing check removes it."""
    try:
        if path.stat().st_size > MAX_BYTES:
            raise PackageError(f"{path.name} is {path.stat().st_size:,} bytes; the QGIS plugin repository takes at most 25 MB")
        with zipfile.ZipFile(path) as archive:
            corrupt = archive.testzip()
            if corrupt is not None:
                raise PackageError(f"{path.name} is corrupt (CRC error on {corrupt})")
            names = archive.namelist()
            outside = [name for name in names if not name.startswith(f"{PLUGIN}/") or ".." in PurePosixPath(name).parts]
            if outside:
                raise PackageError(f"{path.name} has entries outside {PLUGIN}/: {', '.join(outside[:5])}")
            # Install from ZIP names the plugin after the folder of the first metadata.txt in sorted order.
            metadata_files = sorted(name for name in names if name.endswith("metadata.txt"))
            if not metadata_files or metadata_files[0] != f"{PLUGIN}/metadata.txt":
                raise PackageError(f"{path.name} must hold {PLUGIN}/metadata.txt as its first metadata.txt")
            inside = [name[len(PLUGIN) + 1 :] for name in names if not name.endswith("/")]
            check_metadata(archive.read(f"{PLUGIN}/metadata.txt").decode("utf-8"), inside)
            if f"{PLUGIN}/__init__.py" not in names:
                raise PackageError(f"{path.name} lacks {PLUGIN}/__init__.py")
    except BaseException:
        path.unlink(missing_ok=True)
        raise


if __name__ == "__main__":
    sys.exit(main())
