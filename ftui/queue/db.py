"""The one SQLite connection of a Store, and what the file system may do to it.

Opened on first use: read-write when the runs folder is writable, else read-only (reading a finished runs
folder on a read-only mount never needs write access). Before each use, one stat checks that the path still
names the file that was opened: after `rm -rf runs` or a runs folder replaced by another, a Store that follows
(the app, the CLI) reconnects, so its next launch goes where a new worker will look; one that must not (a
worker: the ids of its jobs belong to the old file) raises StoreReplaced. A full disk is named, with the
bytes free.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
from pathlib import Path

from ftui.atomic import free_bytes, no_space_message
from ftui.queue.model import MIGRATIONS, REVISIONS, SCHEMA, SCHEMA_VERSION, StoreError, StoreReplaced


class QueueDatabase:
    def __init__(
        self, runs_dir: Path, db_path: Path, busy_timeout_s: float, follow_replacement: bool
    ) -> None:
        self.runs_dir = runs_dir
        self.db_path = db_path
        self.busy_timeout_s = busy_timeout_s
        self.follow_replacement = follow_replacement
        self._conn: sqlite3.Connection | None = None
        self._read_only = False  # the connection was opened read-only (the folder is not writable here)
        self._identity: tuple[int, int] | None = None  # (device, inode) of the database file we opened
        self._replaced: str | None = None  # why a database that must not be followed can no longer be used

    def connect(self, create: bool) -> sqlite3.Connection | None:
        self._check_identity()
        if self._conn is not None and not (create and self._read_only):
            return self._conn
        if not create and not self.db_path.exists():
            return None  # reading a runs folder nobody launched in: no jobs, and create nothing
        why_not = self._why_not_writable()
        if why_not is not None:
            if create:
                raise StoreError(
                    f"{self.runs_dir}: the runs folder is read-only here ({why_not}): nothing can be queued, "
                    "cancelled or retried; reading works"
                )
            if self._conn is None:
                self._conn, self._read_only = self._open_read_only(), True
                self._remember_identity()
            return self._conn
        if self._conn is not None:  # a read-only connection, and the folder has become writable
            self._conn.close()
            self._conn = None
        self._conn, self._read_only = self._open_read_write(), False
        self._remember_identity()
        return self._conn

    def _why_not_writable(self) -> str | None:
        """Why this process cannot write the queue (None when it can). access(2) says EROFS on a read-only
        mount even to root, and honours permissions for everyone else."""
        folder = self.runs_dir if self.runs_dir.exists() else self.runs_dir.parent
        if self.db_path.exists() and not os.access(self.db_path, os.W_OK):
            target = self.db_path
        elif folder.exists() and not os.access(folder, os.W_OK):
            target = folder
        else:
            return None
        try:
            readonly_mount = bool(os.statvfs(target).f_flag & os.ST_RDONLY)
        except OSError:
            readonly_mount = False
        return "a read-only mount" if readonly_mount else f"no write permission on {target}"

    def _open_read_write(self) -> sqlite3.Connection:
        """Open (and make or upgrade) the database. Two processes making a new one at once: SQLite can answer
        SQLITE_BUSY at once, without its busy handler (switching to WAL, a lock upgrade it refuses to wait
        for), so the whole opening is tried again until the busy timeout has passed."""
        deadline = time.monotonic() + self.busy_timeout_s
        while True:
            try:
                return self._open_read_write_once()
            except StoreError as e:
                cause = e.__cause__
                busy = isinstance(cause, sqlite3.OperationalError) and "locked" in str(cause)
                if not busy or time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _open_read_write_once(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = None
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.db_path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL keeps the database consistent on a crash
            conn.execute("PRAGMA foreign_keys = ON")
            version = self._check_version(conn)
            if version < SCHEMA_VERSION:
                conn.execute("BEGIN IMMEDIATE")
                # Another process may have upgraded it while we waited for the write lock: read it again.
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    for statement in SCHEMA.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    for statement in REVISIONS:
                        conn.execute(statement)
                else:
                    for target in range(version + 1, SCHEMA_VERSION + 1):
                        for statement in MIGRATIONS.get(target, ()):
                            conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as e:
            if conn is not None:
                conn.close()  # (an open transaction is rolled back)
            raise self.error(e, "cannot open the queue database: ") from e
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """`mode=ro` reads the WAL too, but needs the -shm file to exist or be creatable; a folder closed
        cleanly has none, and on a read-only mount none can be created: then `immutable=1` reads the database
        file alone (no locks, no WAL; nothing can change it there anyway)."""
        problem: Exception | None = None
        for options in ("mode=ro", "mode=ro&immutable=1"):
            uri = f"{self.db_path.as_uri()}?{options}"
            try:
                conn = sqlite3.connect(
                    uri, uri=True, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
                )
                conn.row_factory = sqlite3.Row
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
                version = self._check_version(conn)
                conn.execute("SELECT COUNT(*) FROM jobs").fetchone()
            except sqlite3.Error as e:
                problem = e
                continue
            if version < SCHEMA_VERSION:
                conn.close()
                raise StoreError(
                    f"{self.db_path}: written by an older ftui (schema {version}); open it once where the "
                    "runs folder is writable to upgrade it"
                )
            return conn
        assert problem is not None
        raise self.error(problem, "cannot read the queue database: ")

    def _check_version(self, conn: sqlite3.Connection) -> int:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.db_path}: written by a newer ftui (schema {version}; this one knows {SCHEMA_VERSION})"
            )
        return version

    def identity(self) -> tuple[int, int] | None:
        """(device, inode) of the database file the connection has open; None before one is opened."""
        return self._identity

    def _remember_identity(self) -> None:
        try:
            st = os.stat(self.db_path)
        except OSError:
            self._identity = None
            return
        self._identity = (st.st_dev, st.st_ino)

    def _check_identity(self) -> None:
        """One stat: is the database at our path still the file our connection has open?"""
        if self._replaced is not None:
            raise StoreReplaced(self._replaced)
        if self._conn is None or self._identity is None:
            return
        try:
            st = os.stat(self.db_path)
            now: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            now = None
        except OSError:
            return  # cannot tell (e.g. a permission problem): keep what we have
        if now == self._identity:
            return
        self._conn.close()
        self._conn, self._identity = None, None
        what = "removed" if now is None else "replaced by another file"
        if not self.follow_replacement:
            self._replaced = (
                f"{self.db_path}: the queue database was {what} (removed or replaced) after this process "
                "opened it; its jobs are not in the new one"
            )
            raise StoreReplaced(self._replaced)

    def error(self, e: Exception, what: str = "") -> StoreError:
        """A StoreError naming the file, in the user's words."""
        return StoreError(f"{self.db_path}: {what}{explain(e, self.runs_dir, self.busy_timeout_s)}")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


SQLITE_IOERR, SQLITE_FULL = 10, 13
LOW_SPACE_BYTES = 1 << 20  # an I/O error with less free than this is taken for a full disk


def explain(e: Exception, runs_dir: Path, busy_timeout_s: float) -> str:
    """The user's words for a database error."""
    text = str(e)
    if "locked" in text or "busy" in text:
        return f"the database is locked by another process (waited {busy_timeout_s:g} s); try again"
    # A full disk reaches us as SQLITE_FULL, or as SQLITE_IOERR when SQLite cannot grow its -shm or -wal
    # file (it writes to each new page so a full disk shows as an error rather than a SIGBUS).
    code = getattr(e, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    full = primary == SQLITE_FULL or (isinstance(e, OSError) and e.errno == errno.ENOSPC)
    if full or primary == SQLITE_IOERR:
        message = no_space_message(runs_dir)
        free = free_bytes(runs_dir)
        if full or (free is not None and free < LOW_SPACE_BYTES):
            return message
    return text
