"""Safe writing: temporaries named for their writer, removal of those of dead writers, a lock per output
folder, an atomic swap of two folders, and failed writes (full disk, file too large, read-only folder) turned
into one-line :class:`InputError` s.

A temporary is ``.<name>.tmp-<pid>-<random>`` (a file keeps the destination's suffixes) beside its destination;
the old folder set aside by a replace is ``.<name>.old-<pid>-<random>``. A writer that is killed (SIGKILL, power
cut) leaves them behind; :func:`remove_stale_temporaries` removes those whose pid is no longer running and puts
back an old folder whose replacement never happened. The lock is ``.<name>.lock`` beside an output folder, held
with ``flock`` (released by the kernel when its holder dies, so a killed run never blocks the next one).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import InputError

try:
    import fcntl
except ImportError:  # Windows: a lock file created exclusively (removed by hand after a crash)
    fcntl = None  # type: ignore[assignment]

# errno values of a write that failed for a reason the user can fix (space, size limit, permissions, path)
WRITE_ERRNOS = frozenset(
    getattr(errno, n)
    for n in (
        "ENOSPC",
        "EFBIG",
        "EROFS",
        "EDQUOT",
        "EACCES",
        "EPERM",
        "EISDIR",
        "ENOTDIR",
        "ENOTEMPTY",
        "EEXIST",
        "EIO",
        "ENAMETOOLONG",
    )
    if hasattr(errno, n)
)
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[^/]*$")
_HELD: dict[str, tuple[int, int]] = {}  # lock path -> (thread ident, depth): re-entrant within one thread
_HELD_LOCK = threading.Lock()
READ_PATHS: set[str] = set()  # real paths of the files and folders this process reads (see remember_inputs)


def write_error(exc: OSError, destination: str | Path) -> InputError:
    """The one-line error for a failed write to ``destination``."""
    reason = exc.strerror or str(exc)
    hint = " (is the disk full?)" if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", -1), errno.EFBIG) else ""
    return InputError(destination, "output", f"cannot write: {reason}{hint}; nothing was replaced")


def is_write_error(exc: BaseException) -> bool:
    """True for an OSError that a failed write raises (see ``WRITE_ERRNOS``)."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's), or cannot tell: keep its files
    return True


def temporary_file(destination: Path) -> Path:
    """Create (exclusively) and return an empty temporary file beside ``destination`` with the same suffixes, so
    that format-by-extension writers work."""
    name = destination.name
    suffix = (
        "".join(destination.suffixes[-2:]) if name.lower().endswith((".nii.gz", ".seg.nrrd")) else destination.suffix
    )
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.tmp-{os.getpid()}-", suffix=suffix, dir=destination.parent)
    os.close(fd)
    return Path(tmp)


def temporary_dir(destination: Path, kind: str = "tmp") -> Path:
    """Create and return an empty temporary folder beside ``destination`` (``kind`` tmp: the new folder being
    built; old: where a replaced folder is set aside)."""
    return Path(tempfile.mkdtemp(prefix=f".{destination.name}.{kind}-{os.getpid()}-", dir=destination.parent))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporaries in ``folder`` left by writers that are no longer running; an old folder set aside
    by a replace that was killed before the new folder took its place is put back. Returns what was removed."""
    folder = Path(folder)
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP.match(entry.name)
        if not match or _alive(int(match["pid"])):
            continue
        path = Path(entry.path)
        target = folder / match["name"]
        if match["kind"] == "old" and (path / match["name"]).is_dir() and not os.path.lexists(target):
            with contextlib.suppress(OSError):
                os.replace(path / match["name"], target)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path)
            else:
                os.unlink(path)
            removed.append(path)
    return removed


def _renameat2_exchange():
    libc_name = ctypes.util.find_library("c")
    if not libc_name or not hasattr(os, "O_DIRECTORY"):
        return None
    func = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)
    if func is not None:
        func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return func


_RENAMEAT2 = _renameat2_exchange()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux renameat2 RENAME_EXCHANGE); False where the system or the file
    system does not support it (then nothing happened)."""
    if _RENAMEAT2 is None:
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, getattr(errno, "ENOTSUP", -1), getattr(errno, "EOPNOTSUPP", -1)):
        return False
    raise OSError(err, os.strerror(err), str(b))


def remember_inputs(paths: Iterable[str | Path]) -> None:
    """Mark files and folders as read by this process: no output folder that holds one of them, or lies inside
    one, is replaced, and no output file is written onto one (the case's listed files, DICOM folders, models)."""
    READ_PATHS.update(os.path.realpath(p) for p in paths)


def _within(path: str, folder: str) -> bool:
    """True when ``path`` is ``folder`` or lies inside it (both real, absolute paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_replaceable(out_dir: Path, protected: Iterable[str] = ()) -> None:
    """Refuse to replace (``--overwrite``) the folder ``out_dir``: a filesystem root or mount point, the current
    folder or the home folder (or a folder holding either), or a folder that holds or lies inside any of the
    ``protected`` real paths (the files and folders the command reads). An InputError naming what it would remove."""
    real = os.path.realpath(out_dir)
    if real == os.path.dirname(real) or os.path.ismount(real):
        raise InputError(out_dir, "output", "is a filesystem root; refusing to replace it")
    home = os.path.expanduser("~")
    places = [("the current folder", os.getcwd())] + ([("the home folder", home)] if os.path.isabs(home) else [])
    for what, place in places:
        if _within(os.path.realpath(place), real):
            raise InputError(out_dir, "output", f"is or holds {what}; refusing to replace it, choose another --out")
    for path in sorted(protected):
        if _within(path, real):
            raise InputError(out_dir, "output", f"holds an input ({path}); refusing to replace it")
        if _within(real, path):
            raise InputError(out_dir, "output", f"lies inside an input folder ({path}); refusing to replace it")


def lock_path(out_dir: Path) -> Path:
    """The lock file of an output folder: ``.<name>.lock`` beside it."""
    return out_dir.parent / f".{out_dir.name}.lock"


def _try_lock(path: Path) -> int | None:
    """An fd holding the lock on ``path`` (created if needed), or None when another process holds it."""
    while True:
        if fcntl is None:
            try:
                return os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                return None
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)  # the holder removed the file between our open and our lock: take the new one


@contextlib.contextmanager
def output_lock(out_dir: str | Path) -> Iterator[None]:
    """Hold the lock of ``out_dir`` (its parent folder must exist): a second writer to the same folder, in another
    process or another thread, is refused with one line. Re-entrant within one thread."""
    out_dir = Path(os.path.abspath(out_dir))
    path = lock_path(out_dir)
    key, me = str(path), threading.get_ident()
    with _HELD_LOCK:
        holder = _HELD.get(key)
        if holder is not None and holder[0] == me:
            _HELD[key] = (me, holder[1] + 1)
            fd = None
        elif holder is not None:
            raise InputError(out_dir, "output", "another task of this program is writing this folder")
        else:
            try:
                fd = _try_lock(path)
            except OSError as exc:
                raise write_error(exc, out_dir) from None
            if fd is None:
                raise InputError(
                    out_dir,
                    "output",
                    "another gliomaforecast run is writing this folder (lock "
                    f"{path}); wait for it, or choose another --out",
                )
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            _HELD[key] = (me, 1)
    try:
        yield
    finally:
        with _HELD_LOCK:
            depth = _HELD[key][1] - 1
            if depth:
                _HELD[key] = (me, depth)
            else:
                del _HELD[key]
                with contextlib.suppress(OSError):
                    os.unlink(path)  # unlink while holding: a waiter re-checks the inode (see _try_lock)
                if fd is not None:
                    os.close(fd)
