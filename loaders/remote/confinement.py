"""Tile paths read from an index stay inside the index's own location (its "mirror").

An index is data, and a hostile one must not make GeoEmbed fetch other addresses (a service on the user's
network, a local file). So a tile path listed in an index is resolved against the folder or base URL the index
was read from, and is refused, before any request leaves the machine, unless the result stays under it:

* a relative path is joined under the index's folder (local) or base URL (http/https);
* an http(s) URL must have the mirror's scheme, host and port, no user name (``http://mirror@evil/``), and a
  path under the mirror's path;
* ``s3://`` and ``gs://`` URIs (what the published AlphaEarth indexes list) are placed in the mirror by the
  part after the layout marker (``v1/annual/``), which is then checked like a relative path;
* refused: absolute local paths, ``file://`` and any other scheme, GDAL virtual paths (``/vsicurl/``,
  ``/vsizip/``, ...), and paths whose ``..`` leaves the mirror. Checks run after normalising backslashes to
  slashes, percent-encoded characters (``%2e%2e``, ``%2f``, also double-encoded), ``.`` and ``..`` segments and
  doubled slashes; a local path must also stay inside after its symbolic links are resolved (os.path.realpath).

Each refusal is one line naming the path, the mirror and how to allow it: ALLOW_PATHS_OUTSIDE_MIRROR on
geoembed:load, or the setting "Let mirror indexes point outside the mirror" (both off by default).

What is enforced where:
* here: the paths (aef.py checks every row that meets the request before it opens any tile);
* http_client.HttpClient(same_host_only=True): GeoEmbed's own requests for a mirror (index download, the Range
  probe of each tile, whole downloads of small tiles) do not follow redirects automatically; a redirect to the
  same scheme, host and port is followed, one to another host is refused in one line;
* GDAL (/vsicurl/) follows redirects inside libcurl and has no option to stop it (GDAL 3.6 to 3.13 offer only
  CPL_VSIL_CURL_USE_S3_REDIRECT and CPL_VSIL_CURL_AUTHORIZATION_HEADER_ALLOWED_IF_REDIRECT). GDAL opens a tile
  URL only after the Range probe above answered from the mirror's own host, so a mirror that redirects tiles
  elsewhere is refused before GDAL sees the URL. Not covered: a mirror server that answers the probe itself
  and redirects GDAL's later block reads elsewhere (that server is the user's chosen SOURCE, not the index).
"""

import os
import re
from urllib.parse import quote, unquote, urlsplit

from ..errors import GeoEmbedError
from .locations import basename, is_url, join, parent

HOW_TO_ALLOW = (
    "if you trust this index, set ALLOW_PATHS_OUTSIDE_MIRROR=true on geoembed:load or tick "
    "'Let mirror indexes point outside the mirror' in the GeoEmbed settings"
)
RE_ROOTED_SCHEMES = ("s3", "gs")  # object-store URIs of the published copies, placed in the mirror
DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST = re.compile(r"^[A-Za-z0-9.-]+$|^[0-9A-Fa-f:.]+$")  # a name, an IPv4 or an IPv6 address (urlsplit drops [])


class OutsideMirrorError(GeoEmbedError):
    """A tile path (or a redirect) that leads outside the mirror an index was read from."""


def refusal(path, mirror, reason, index_name=None):
    """The one-line error for a path that leaves the mirror."""
    where = f" in {index_name}" if index_name else ""
    return OutsideMirrorError(
        f"The tile path {shown(path)}{where} leads outside the mirror {shown(mirror)} ({reason}); it was not read: "
        f"{HOW_TO_ALLOW}."
    )


def shown(text, limit=200):
    """text fit for a one-line message: control characters escaped, long text cut."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def resolve(index_location, path, layout_marker=None, allow_outside=False):
    """Where a tile listed in the index at index_location lives; OutsideMirrorError when it leaves the index's folder
    (or base URL) and allow_outside is False."""
    if not isinstance(path, str) or not path:
        raise GeoEmbedError(f"The index {basename(index_location)} lists an empty tile path; the index is damaged.")
    mirror = parent(index_location)
    if allow_outside:
        return _unconfined(mirror, path, layout_marker)
    name = basename(index_location)

    def refuse(reason):
        return refusal(path, mirror, reason, name)

    text = _decoded(path.replace("\\", "/"))
    if _CONTROL.search(text):
        raise refuse("control characters in the path")
    if text.lower().startswith("/vsi"):
        raise refuse("a GDAL virtual path")
    scheme = _SCHEME.match(text)
    if scheme and len(scheme.group(1)) > 1:  # one letter is a Windows drive: an absolute path
        kind = scheme.group(1).lower()
        if kind in DEFAULT_PORTS:
            return _same_site(mirror, text, refuse)
        if kind in RE_ROOTED_SCHEMES and layout_marker:
            position = text.find(layout_marker)
            if position < 0:
                raise GeoEmbedError(f"Cannot place index path {shown(path)} inside the mirror: it has no '{layout_marker}' part.")
            return _under(mirror, text[position + len(layout_marker) :], refuse)
        raise refuse(f"the scheme {kind}:// is not the mirror's")
    if scheme or text.startswith("/"):
        raise refuse("an absolute path")
    return _under(mirror, text, refuse)


def same_origin(url, other):
    """True when two http(s) URLs have the same scheme, host and port and the second names no user."""
    first, second = urlsplit(url.replace("\\", "/")), urlsplit(other.replace("\\", "/"))
    return "@" not in second.netloc and _origin(first) == _origin(second)


def origin_of(url):
    parts = urlsplit(url.replace("\\", "/"))
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


# --- helpers -----------------------------------------------------------------------------------


def _decoded(text, rounds=4):
    """Percent-decoding repeated until nothing changes (a double-encoded %252e%252e is '..' to some servers)."""
    for _ in range(rounds):
        decoded = unquote(text)
        if decoded == text:
            return decoded
        text = decoded.replace("\\", "/")
    return text


def _segments(relative):
    """The path's segments with '.', '..' and empty ones resolved; None when '..' climbs above the start."""
    out = []
    for segment in relative.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if not out:
                return None
            out.pop()
            continue
        out.append(segment)
    return out


def _under(mirror, relative, refuse):
    segments = _segments(relative)
    if segments is None:
        raise refuse("'..' leaves the mirror")
    if not segments:
        raise refuse("it names the mirror itself, not a file")
    if is_url(mirror):
        return join(mirror, *(_quoted(segment) for segment in segments))
    base = os.path.abspath(mirror)
    candidate = os.path.join(base, *segments)
    real_base, real = os.path.realpath(base), os.path.realpath(candidate)
    if real != real_base and not real.startswith(real_base.rstrip(os.sep) + os.sep):
        raise refuse("a symbolic link leads out of it")
    return candidate


def _same_site(mirror, url, refuse):
    if not is_url(mirror):
        raise refuse("an http(s) URL, and the mirror is a local folder")
    target, home = urlsplit(url), urlsplit(mirror)
    if "@" in target.netloc:
        raise refuse("a user name in the address")
    if not _safe_port(target) or not _HOST.match(target.hostname or ""):
        raise refuse("a malformed host or port")
    if target.scheme.lower() != home.scheme.lower():
        raise refuse(f"another scheme, {target.scheme.lower()}")
    if _host(target) != _host(home):
        raise refuse(f"another host, {target.hostname}")
    if _port(target) != _port(home):
        raise refuse(f"another port, {_port(target)}")
    path, base = _segments(target.path), _segments(unquote(home.path))
    if path is None or base is None or path[: len(base)] != base:
        raise refuse("a path outside the mirror's")
    return _under(mirror, "/".join(path[len(base) :]), refuse) + (f"?{target.query}" if target.query else "")


def _origin(parts):
    return parts.scheme.lower(), _host(parts), _port(parts)


def _host(parts):
    return (parts.hostname or "").lower().rstrip(".")


def _safe_port(parts):
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        return False
    return True


def _port(parts):
    try:
        return parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None


def _quoted(segment):
    return quote(segment, safe="!$&'()*+,;=:@~")


def _unconfined(mirror, path, layout_marker):
    """The resolution used when the user allowed paths outside the mirror: URLs and absolute paths as listed."""
    if is_url(path) or os.path.isabs(path):
        return path
    if "://" in path and layout_marker:
        position = path.find(layout_marker)
        if position < 0:
            raise GeoEmbedError(f"Cannot place index path {shown(path)} inside the mirror: it has no '{layout_marker}' part.")
        return join(mirror, *path[position + len(layout_marker) :].split("/"))
    return join(mirror, *path.split("/"))
