"""Writing output files safely: inside one directory, atomically, never through a link.

    from ktrace_decode.safe_output import OutputDir, excel_safe

    with OutputDir(args.out, force=args.force) as out:    # creates the directory
        out.check(["events.csv", "nodes.csv"])           # refuse early, before decoding
        ...
        out.write_frame("events.csv", df, excel_safe=args.excel_safe)
        with out.open("notes.txt") as f:                 # any other content, binary
            f.write(b"...")

Guarantees (Linux / any POSIX with ``openat``):

- **Nothing is written outside the directory.**  The directory is opened once
  (``--out`` itself may be a symlink: the user named it) and every file in it
  is addressed relative to that descriptor, by a plain name (no ``/``, no
  ``..``).  A symlink *inside* it is never followed: without ``force`` it is
  an existing file and refused; with ``force`` the link itself is replaced by
  the new file, its target is not touched.
- **No overwrite without force.**  Without ``force`` the final step is a hard
  link, which fails if the name appeared meanwhile (no check-then-write race);
  on file systems without hard links it falls back to a check + rename.
- **Atomic.**  Each file is written to a hidden temporary file in the same
  directory (``.<name>.<random>.tmp``), flushed to disk, then renamed over the
  name.  An exception, Ctrl-C or SIGTERM while writing removes the temporary
  file, so the name holds either the old content or the complete new one,
  never a half file.  (Only SIGKILL or a crash can leave a ``.*.tmp`` file;
  never a half file under the real name.)

Every refusal or failure is an :class:`~ktrace_decode.errors.OutputError`
naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import polars as pl

from . import direct_io
from .errors import OutputError

#: A CSV cell starting with one of these is a formula to Excel / LibreOffice /
#: Google Sheets (tab and carriage return too: OWASP "CSV injection").
EXCEL_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_TRIGGER_RE = "^([=+\\-@\t\r])"

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def excel_safe(columns: pl.Expr | None = None) -> pl.Expr:
    """An expression that neutralises spreadsheet formulas in text cells.

    A cell that begins with ``=``, ``+``, ``-``, ``@``, tab or carriage return
    gets a leading ``'`` (shown by spreadsheets as text, not evaluated); other
    cells and nulls are unchanged.  ``columns`` defaults to every String
    column: ``df.with_columns(excel_safe())``.  Numbers are never touched (a
    negative number in an integer column stays a number).
    """
    cols = pl.col(pl.String) if columns is None else columns
    return cols.str.replace(_TRIGGER_RE, "'$1")


def excel_safe_frame(df: pl.DataFrame) -> pl.DataFrame:
    """``df`` with every String column passed through :func:`excel_safe`."""
    return df.with_columns(excel_safe()) if pl.String in df.schema.dtypes() else df


def _check_name(name: str, where: object) -> None:
    if (not name or name in (".", "..") or "/" in name or "\0" in name
            or name != os.path.basename(name)):
        raise OutputError(f"{name!r} is not a plain file name", where)


class OutputDir:
    """A directory opened for writing files into it (see the module docstring).

    ``path``: the directory, created (with parents) when ``create`` and
    missing.  ``force``: replace existing files.  Use as a context manager or
    call :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], force: bool = False,
                 create: bool = True) -> None:
        self.path = Path(path)
        self.force = force
        self.fd = -1
        created = False
        if create:
            try:
                os.mkdir(self.path)
                created = True
            except FileExistsError:
                pass
            except FileNotFoundError:
                try:
                    self.path.mkdir(parents=True, exist_ok=True)
                    created = True
                except OSError as e:
                    raise OutputError(f"cannot create the directory: {e.strerror or e}",
                                      self.path) from None
            except OSError as e:
                raise OutputError(f"cannot create the directory: {e.strerror or e}",
                                  self.path) from None
        # A directory we just created must still be ours when we open it (no
        # swap for a symlink in between); one that existed was named by the user.
        flags = _DIR_FLAGS | (os.O_NOFOLLOW if created else 0)
        try:
            self.fd = os.open(self.path, flags)
        except FileNotFoundError:
            raise OutputError("no such directory", self.path) from None
        except OSError as e:
            if created and self.path.is_symlink():  # ENOTDIR or ELOOP with O_NOFOLLOW
                raise OutputError("was replaced by a symbolic link: refused", self.path) from None
            if isinstance(e, NotADirectoryError):
                raise OutputError("exists and is not a directory", self.path) from None
            raise OutputError(f"cannot open the directory: {e.strerror or e}",
                              self.path) from None

    # --- context manager ----------------------------------------------------
    def __enter__(self) -> OutputDir:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    @classmethod
    def _of_fd(cls, path: Path, fd: int, force: bool) -> OutputDir:
        out = cls.__new__(cls)
        out.path, out.fd, out.force = path, fd, force
        return out

    def subdir(self, name: str) -> OutputDir:
        """The subdirectory ``name`` (created if missing) as an OutputDir with the
        same ``force``.  A symlink in its place is refused, not followed: it
        could point anywhere."""
        _check_name(name, self.path)
        target = self.path / name
        try:
            os.mkdir(name, dir_fd=self.fd)
        except FileExistsError:
            pass
        except OSError as e:
            raise OutputError(f"cannot create the directory: {e.strerror or e}",
                              target) from None
        try:
            fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=self.fd)
        except OSError as e:
            st = self._lstat(name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise OutputError("is a symbolic link: refused", target) from None
            if isinstance(e, NotADirectoryError):
                raise OutputError("exists and is not a directory", target) from None
            raise OutputError(f"cannot open the directory: {e.strerror or e}",
                              target) from None
        return OutputDir._of_fd(target, fd, self.force)

    # --- queries ------------------------------------------------------------
    def listing(self) -> list[str]:
        """The names in the directory (links included, never followed)."""
        try:
            return sorted(os.listdir(self.fd))
        except OSError as e:
            raise OutputError(f"cannot list the directory: {e.strerror or e}",
                              self.path) from None

    def _lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def existing(self, names: Iterable[str]) -> list[str]:
        """Which of ``names`` exist in the directory (links, even dangling, count)."""
        out = []
        for n in names:
            _check_name(n, self.path)
            if self._lstat(n) is not None:
                out.append(n)
        return out

    def check(self, names: Iterable[str]) -> None:
        """Refuse now (before any long work) what :meth:`open` would refuse later."""
        names = list(names)
        for n in names:
            st = self._lstat(n) if self.force else None
            if st is not None and stat.S_ISDIR(st.st_mode):
                raise OutputError("is a directory: cannot replace it", self.path / n)
        exist = self.existing(names)
        if exist and not self.force:
            raise OutputError(f"would overwrite {', '.join(exist)}; use --force to replace "
                              f"{'it' if len(exist) == 1 else 'them'}", self.path)

    # --- writing ------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, name: str, direct: bool = False) -> Iterator[BinaryIO]:
        """A binary file that becomes ``name`` when the block ends without error.

        ``direct``: write it around the page cache where the file system can
        (:mod:`.direct_io`; big files, written once)."""
        _check_name(name, self.path)
        target = self.path / name
        if not self.force and self._lstat(name) is not None:
            raise OutputError("exists; use --force to replace it", target)
        tmp = f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(tmp, _NEW_FLAGS, 0o666, dir_fd=self.fd)
        except OSError as e:
            raise OutputError(f"cannot write: {e.strerror or e}", target) from None
        try:
            dfile = direct_io.direct_file(fd) if direct else None
            with dfile or os.fdopen(fd, "wb") as f:
                yield f  # type: ignore[misc]
                if dfile is not None:
                    dfile.finish()
                else:
                    f.flush()
                os.fsync(f.fileno())
            self._publish(tmp, name, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self.fd)
            raise
        with contextlib.suppress(OSError):
            os.fsync(self.fd)  # the rename itself reaches the disk

    def _publish(self, tmp: str, name: str, target: Path) -> None:
        try:
            if self.force:
                os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                return
            try:
                # link() fails if the name exists: no race with another writer.
                os.link(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd,
                        follow_symlinks=False)
            except FileExistsError:
                raise OutputError("appeared while writing; use --force to replace it",
                                  target) from None
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK,
                                   errno.EXDEV, errno.ENOSYS):
                    raise
                if self._lstat(name) is not None:  # no hard links here: check, then rename
                    raise OutputError("appeared while writing; use --force to replace it",
                                      target) from None
                os.replace(tmp, name, src_dir_fd=self.fd, dst_dir_fd=self.fd)
                return
            os.unlink(tmp, dir_fd=self.fd)
        except OutputError:
            raise
        except IsADirectoryError:
            raise OutputError("is a directory: cannot replace it", target) from None
        except OSError as e:
            raise OutputError(f"cannot write: {e.strerror or e}", target) from None

    def remove(self, name: str) -> None:
        """Delete the file (or link: never its target) ``name``; gone already is fine."""
        _check_name(name, self.path)
        st = self._lstat(name)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            raise OutputError("is a directory: cannot remove it", self.path / name)
        try:
            os.unlink(name, dir_fd=self.fd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise OutputError(f"cannot remove: {e.strerror or e}", self.path / name) from None

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open(name) as f:
            f.write(data)

    def write_text(self, name: str, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(name, text.encode(encoding))

    def write_frame(self, name: str, df: pl.DataFrame, fmt: str = "csv",
                    excel_safe: bool = False) -> None:
        """Write ``df`` as CSV or Parquet; ``excel_safe`` neutralises formulas (CSV only)."""
        with self.open(name) as f:
            if fmt == "csv":
                (excel_safe_frame(df) if excel_safe else df).write_csv(f)
            elif fmt == "parquet":
                df.write_parquet(f)
            else:
                raise ValueError(f"unknown format {fmt!r}")
