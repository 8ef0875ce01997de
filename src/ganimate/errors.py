"""User-facing errors: the CLI prints these as one line and exits with code 2."""


class GanimateError(Exception):
    """Bad input or an unusable file; the message is a complete one-line explanation."""


class DataError(GanimateError):
    """A dataset is missing, corrupt, or not what it claims to be."""


def _free_space(path) -> str:
    """Free space on the disk holding `path` (its nearest existing parent), as text, or "" if unknown."""
    import os
    import shutil

    path = os.path.abspath(path or ".")
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    try:
        return f"{shutil.disk_usage(path).free / 2**20:,.1f} MiB free on the disk holding {path}"
    except OSError:
        return ""


def os_error_message(e: OSError) -> str:
    """One line for a file-system error a user can reach: disk full, permissions, read-only disks, a folder
    where a file is expected or a file where a folder is expected."""
    import errno

    where = e.filename if e.filename is not None else "a file"
    if e.errno == errno.ENOSPC:
        free = _free_space(e.filename)
        return f"no space left on the disk while writing {where}" + (f" ({free})" if free else "") + \
            ": free some space or choose another --out"
    if e.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied: {where}: choose a path you may write (or read)"
    if e.errno == errno.EROFS:
        return f"{where} lies on a read-only file system: choose another --out"
    if e.errno == errno.EISDIR:
        return f"{where} is a folder where a file is expected: give a file name"
    if e.errno == errno.ENOTDIR:
        return f"{where}: part of this path is a file, not a folder"
    if e.errno == errno.ENOENT:
        return f"{where} does not exist"
    if e.errno == errno.EDQUOT:
        return f"disk quota exceeded while writing {where}"
    reason = e.strerror or " ".join(str(e).split()) or type(e).__name__
    return f"{reason}: {where}"
