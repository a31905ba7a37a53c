"""Atomic file writes (an interrupted run never leaves a half-written output behind) and JSON lines.

A write goes to a temporary file beside the target, named ``.<name>.tmp-<pid>-<12 hex digits><suffix>``
(``TEMP_NAME``; the writer's process id), which is renamed over the target once complete, or, when the
target must not be replaced, linked to its name only if that name is free; ``remove_stale_temp_files``
deletes the ones a killed run left behind, never one whose writer still runs.

A full disk is one error however the writer reports it (``disk_full``): an ``OSError`` (ENOSPC) naming the
file it was writing, whose temporary file is gone and whose earlier version is intact.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import os
import re
import secrets
import shutil
import time
from collections.abc import Collection
from pathlib import Path

log = logging.getLogger(__name__)

TEMP_NAME = re.compile(r"\.(?P<name>.+)\.tmp-(?:(?P<pid>[0-9]+)-)?[0-9a-f]{12}(?P<suffix>.*)")  # no pid: older srlib
_STARTED = time.time()  # every temporary file this process makes is newer than this
_in_progress: set[str] = set()  # the temporary files this process is writing now


def _suffix(path: Path) -> str:
    return "".join(path.suffixes[-2:])  # keep ".weights.h5", which Keras insists on


def temp_beside(path: str | os.PathLike, folder: bool = False) -> Path:
    """Create an empty temporary file (or, with ``folder``, folder) beside ``path``, named by ``TEMP_NAME``.

    Unlike ``tempfile.mkstemp`` (always 0600), it gets the mode any new file gets (0644 under umask 022).
    Errors name ``path``, not the temporary name.
    """
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(6)}{'' if folder else _suffix(path)}")
        try:
            if folder:
                os.mkdir(tmp)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return tmp
        except FileExistsError:
            continue
        except OSError as error:
            raise _naming(error, tmp, path) from None
    raise FileExistsError(f"could not make a temporary name beside {path}")


_FULL = (errno.ENOSPC, errno.EDQUOT)


def disk_full(error: BaseException) -> bool:
    """Whether ``error`` says that the disk (or the user's quota) is full: an ``OSError`` with ENOSPC or EDQUOT,
    or a library's error that says so only in its text (TensorFlow's ``ResourceExhaustedError``, h5py's
    ``RuntimeError``)."""
    if isinstance(error, OSError) and error.errno in _FULL:
        return True
    text = str(error).lower()
    return "no space left on device" in text or "disk quota exceeded" in text


def _naming(error: BaseException, tmp: Path | None, path: Path) -> BaseException:
    """``error`` as it would read for ``path`` when it names the temporary ``tmp`` instead, or no file (a
    failed ``write`` names none); a full disk, however a library words it, becomes ``OSError(ENOSPC)``."""
    if disk_full(error):
        code = error.errno if isinstance(error, OSError) and error.errno in _FULL else errno.ENOSPC
        return OSError(code, os.strerror(code), str(path))
    if not isinstance(error, OSError):
        return error
    if error.errno is not None and (error.filename is None or str(tmp) in (str(error.filename), str(error.filename2))):
        return OSError(error.errno, error.strerror, str(path))  # OSError() picks the subclass from errno
    if tmp is not None and str(tmp) in str(error):  # e.g. h5py's messages, which carry the name in the text
        return OSError(str(error).replace(str(tmp), str(path)))
    return error


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, replace: bool = True):
    """Yield a temporary path beside ``path``; on success it replaces ``path`` in one step, or, with ``replace``
    false, takes the name only if it is free: ``FileExistsError`` when another process made ``path`` meanwhile
    (never a check first and a replace later, which two processes can both pass). The temporary file of
    ``path`` that a killed earlier write left is deleted first (``remove_stale_temp_files``).

    Any failure deletes the temporary file. An ``OSError`` that names the temporary file or none (an unwritable
    folder, a full disk) is raised naming ``path``, and a full disk is ``OSError(ENOSPC)`` whatever raised it.
    """
    path = Path(path)
    make_folder(path.parent)
    remove_stale_temp_files(path.parent, names=[path.name])
    tmp = temp_beside(path)
    _in_progress.add(os.path.abspath(tmp))
    try:
        yield tmp
        _place(tmp, path, replace)
    except Exception as error:
        tmp.unlink(missing_ok=True)
        raised = _naming(error, tmp, path)
        if raised is error:
            raise
        raise raised from None if disk_full(error) else error  # a library's wall of text says no more
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _in_progress.discard(os.path.abspath(tmp))


# errors of os.link on file systems without hard links (FAT, exFAT, some network and FUSE file systems)
_NO_HARD_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EMLINK, errno.EXDEV)


def _place(tmp: Path, path: Path, replace: bool) -> None:
    """Move the finished ``tmp`` to ``path``: over it, or, without ``replace``, only where no file is."""
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # unlike a rename, fails with FileExistsError when the name is taken
    except OSError as error:
        if error.errno not in _NO_HARD_LINKS:
            raise
        # no hard links here: take the name with an empty file first (O_EXCL: fails when taken), then fill it;
        # a reader may see it empty for a moment, but no other writer that refuses to replace gets it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        os.replace(tmp, path)
        return
    tmp.unlink()


def is_temp_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like the temporary files (and folders) of ``temp_beside``."""
    match = TEMP_NAME.fullmatch(Path(path).name)
    return bool(match) and match["suffix"] in ("", _suffix(Path(match["name"])))


def remove_stale_temp_files(folder: str | os.PathLike, before: float | None = None,
                            names: Collection[str] | None = None) -> list[Path]:
    """Delete the temporary files and folders of killed atomic writes in ``folder`` and its subfolders; with
    ``names``, only the temporary files of those file names directly in ``folder`` (a user's output folder
    is not ours to sweep). Returns what it deleted.

    Only those last changed before ``before`` (default: when this process loaded srlib.files, so never one
    it is writing), not being written by this process and whose writer (the process id in the name) no
    longer runs are deleted: another process may be writing into the same folder. (A folder's time is when
    an entry was last added to it or removed, not when its files last changed.)
    """
    before = _STARTED if before is None else before
    removed = []
    walk = os.walk(folder) if names is None else [next(os.walk(folder), (folder, [], []))]
    for parent, folders, files in walk:
        for name in files + (folders if names is None else []):
            path = Path(parent) / name
            if not is_temp_file(path) or os.path.abspath(path) in _in_progress or _writer_runs(path):
                continue
            if names is not None and TEMP_NAME.fullmatch(name)["name"] not in names:
                continue
            try:
                if path.lstat().st_mtime >= before:
                    continue
                if name in folders and not path.is_symlink():
                    shutil.rmtree(path)
                    folders.remove(name)  # os.walk need not look inside
                else:
                    path.unlink()
            except FileNotFoundError:  # removed meanwhile
                continue
            removed.append(path)
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted run in %s", len(removed), folder)
    return removed


def _writer_runs(path: Path) -> bool:
    """Whether the process named in a temporary file's name runs (another than this one)."""
    pid = TEMP_NAME.fullmatch(path.name)["pid"]
    if pid is None or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)  # signal 0: only asks whether the process exists
    except PermissionError:  # it does, as another user's
        return True
    except (ProcessLookupError, OverflowError):  # gone; or no process id at all
        return False
    return True


def write_json(path: str | os.PathLike, data) -> None:
    """Write ``data`` as indented JSON, atomically; infinite or NaN floats (e.g. the PSNR of two
    identical images) become null, since JSON has no such numbers."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(_finite(data), indent=2, allow_nan=False) + "\n")


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_bytes(path: str | os.PathLike, data, replace: bool = True) -> Path:
    """Write ``data`` (bytes, or any buffer) to ``path`` atomically (see ``atomic_path``, as ``replace``), making
    its folder if needed; returns ``path``."""
    path = Path(path)
    with atomic_path(path, replace=replace) as tmp:
        tmp.write_bytes(data)
    return path


def append_whole(file, data: bytes, path: str | os.PathLike) -> None:
    """Append ``data`` to ``file`` (a binary file opened for appending without buffering, ``open(path, "ab",
    buffering=0)``) whole or not at all: when a write fails (a full disk), the file is cut back to where it
    ended, so that no torn line stays between good ones, and the error names ``path``."""
    end = os.fstat(file.fileno()).st_size
    try:
        view = memoryview(data)
        while view:
            view = view[file.write(view):]
    except OSError as error:
        with contextlib.suppress(OSError):
            os.ftruncate(file.fileno(), end)
        raise _naming(error, None, Path(path)) from None


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, making its folder if needed."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return path


def read_jsonl(path: str | os.PathLike) -> list:
    """The JSON lines of ``path`` ([] when it is missing); a line torn by an interrupted writer is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def why_missing(path: str | os.PathLike) -> str:
    """Why ``path`` cannot be opened, as the end of a sentence that starts with its name: "does not exist", "is a
    symbolic link loop", "is a symbolic link to X, which does not exist", "is a file, not a folder"...
    (``Path.exists`` says False for all of these, and ``resolve`` raises RuntimeError on a loop.)"""
    path = Path(path)
    try:
        os.stat(path)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return "is a symbolic link loop"
        if error.errno == errno.ENOTDIR:
            return f"does not exist ({_file_on_the_way(path)} is a file, not a folder)"
        if error.errno == errno.EACCES:
            return "cannot be reached: permission denied"
        if path.is_symlink():
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return "does not exist"
    return "is a file, not a folder" if not path.is_dir() else "is a folder"


def _file_on_the_way(path: Path) -> Path:
    """The first component of ``path`` that is a file where a folder should be (``path`` when none is)."""
    for parent in reversed(path.parents):
        if parent.is_file():
            return parent
    return path


def make_folder(path: str | os.PathLike, what: str = "folder") -> Path:
    """``mkdir -p path``; when a file stands where a folder must be, a ``SrlibError`` that says which
    ("cannot make the output folder out/x: out is a file, not a folder") instead of "File exists"."""
    from .errors import SrlibError

    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocking = path if path.is_file() else _file_on_the_way(path)
        raise SrlibError(f"cannot make the {what} {path}: {blocking} is a file, not a folder") from None
    return path
