"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class GanimateError(Exception):
    """Bad input or an unusable file; the message is a complete one-line explanation."""


class DataError(GanimateError):
    """A dataset is missing, corrupt, or not what it claims to be."""
