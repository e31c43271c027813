"""Errors a user can cause. The CLI prints their message in one line and exits non-zero.

Every message says what went wrong *and* what to do about it.
"""


class PostmixError(Exception):
    """Base class for errors caused by input, configuration or environment, not by a bug."""

    exit_code = 2


class InputNotFoundError(PostmixError):
    """A path the user named does not exist."""


class UnsupportedFormatError(PostmixError):
    """A file suffix or record format postmix does not know."""


class BadRowError(PostmixError):
    """A row failed validation while running with --strict."""


class ConfigError(PostmixError):
    """A config or spec file is missing, unparsable or invalid."""


class EndpointError(PostmixError):
    """A model endpoint is unreachable or misconfigured."""
