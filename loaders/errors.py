"""Errors a user sees: one line that says what is wrong and what to do."""


class GeoEmbedError(Exception):
    """A problem with the user's input or environment, worded for the user."""


class Cancelled(GeoEmbedError):  # noqa: N818 - reads better at call sites
    """The user cancelled the work; nothing was written."""

    def __init__(self, message="Cancelled by the user; no output was written."):
        super().__init__(message)


class RemoteError(GeoEmbedError):
    """A remote location could not be reached or read (network, server), as opposed to bad content."""


class YearNotFound(GeoEmbedError):  # noqa: N818
    """The source has no data for the requested year; `available` lists the years it has, when known."""

    def __init__(self, message, available=()):
        super().__init__(message)
        self.available = tuple(available)
