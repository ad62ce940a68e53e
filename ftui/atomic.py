"""Atomic file writes: a reader sees the old file or the new one, never half of either.

The new content goes to a temporary file in the same folder (so `os.replace` is a rename within one file
system), is flushed and fsynced, renamed over the target, and then the folder is fsynced so the rename itself
survives a power cut. The temporary file is created with mode 0666 so that the umask decides the mode, as for
any file a program creates (`tempfile.mkstemp` would make it 0600, unreadable to the user's group).
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


def _fsync_dir(folder: Path) -> None:
    # Some platforms and network file systems cannot open a folder for fsync; the rename is still atomic.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def create_temp(folder: Path, name: str) -> tuple[int, str]:
    """A new, empty temporary file beside `name` in `folder`: (descriptor, path); 0666 minus the umask."""
    for _ in range(100):
        tmp_name = str(folder / f".{name}.{os.urandom(4).hex()}.tmp")
        try:
            return os.open(tmp_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp_name
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: no free temporary file name for {name}")


def free_bytes(folder: Path) -> int | None:
    """Bytes free on the disk holding `folder` (or its nearest existing parent); None when unknown."""
    for candidate in (folder, *folder.parents):
        try:
            return shutil.disk_usage(candidate).free
        except OSError:
            continue
    return None


def no_space_message(folder: Path) -> str:
    free = free_bytes(folder)
    return f"no space left on the disk holding {folder} ({'?' if free is None else f'{free:,}'} bytes free)"


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Write `data` to `path` atomically, creating the parent folders if needed. An OSError names `path`
    (not the temporary file); a full disk says how much is free."""
    target = Path(path)
    try:
        _write(target, data)
    except OSError as e:
        why = no_space_message(target.parent) if e.errno == errno.ENOSPC else e.strerror
        raise OSError(e.errno, f"cannot write {target}: {why}") from e


def _write(target: Path, data: bytes) -> None:
    folder = target.parent
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = create_temp(folder, target.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        # Never leave a stray temp file behind, whatever interrupted us.
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(folder)


def atomic_write_text(path: Path | str, text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically (see `atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode(encoding))


def replace_unsynced(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file renamed over it, without fsync: a reader never sees
    half a file, but it is durable only after `sync_file_system`. For a batch of files written together (a
    sweep's Slurm job scripts: one fsync each took minutes on a busy disk), followed by one sync. Raises
    OSError naming `path`."""
    fd, tmp_name = create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp_name, path)
    except OSError as e:
        try:
            os.unlink(tmp_name)
        except OSError:
            pass
        why = no_space_message(path.parent) if e.errno == errno.ENOSPC else e.strerror
        raise OSError(e.errno, f"cannot write {path}: {why}") from e


def sync_file_system(folder: Path) -> None:
    """Make every write on the file system holding `folder` durable: syncfs(2) on Linux (that file system
    only), os.sync() elsewhere. Raises OSError naming `folder` when syncfs fails."""
    import ctypes  # only here: the CLI's start-up does not pay for it

    try:
        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        os.sync()
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        if syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"cannot sync the file system of {folder}: {os.strerror(err)}")
    finally:
        os.close(fd)
