"""Atomic writes: the mode of what they write, errors that name the user's path, leftover temporary files."""

import json
import os
import shutil
import tempfile
import time

import pytest

from srlib.files import atomic_path, is_temp_file, remove_stale_temp_files, temp_beside, write_json, write_text


def _writes(folder):
    write_json(folder / "a.json", {"x": 1})
    write_text(folder / "b.txt", "text")
    with atomic_path(folder / "c.weights.h5") as tmp:
        tmp.write_bytes(b"weights")
    return [folder / "a.json", folder / "b.txt", folder / "c.weights.h5"]


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_get_the_mode_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        paths = _writes(tmp_path)
    finally:
        os.umask(old)
    assert {oct(path.stat().st_mode & 0o777) for path in paths} == {oct(mode)}
    assert json.loads(paths[0].read_text()) == {"x": 1} and sorted(p.name for p in tmp_path.iterdir()) == [
        "a.json", "b.txt", "c.weights.h5"]


def test_an_output_that_is_a_folder_is_an_error_naming_it(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(IsADirectoryError) as raised:
        write_json(tmp_path / "out.json", {})
    assert str(raised.value) == f"[Errno 21] Is a directory: '{tmp_path / 'out.json'}'"
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # no temporary file left


def _unprivileged(function) -> str:
    """``function()`` (which returns text), run as user nobody in a forked child when this is root, whom
    file permissions do not stop."""
    if os.geteuid() != 0:
        return function()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setuid(65534)
            os.write(write, function().encode())
        finally:
            os._exit(0)  # never back into pytest
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        return pipe.read().decode()


def test_an_unwritable_folder_is_an_error_naming_the_output_not_a_temporary_file():
    folder = tempfile.mkdtemp()  # under /tmp, so that nobody can reach it
    os.chmod(folder, 0o555)

    def attempt():
        try:
            write_text(os.path.join(folder, "out.txt"), "text")
            return "written"
        except OSError as error:
            return str(error)

    try:
        message = _unprivileged(attempt)
    finally:
        shutil.rmtree(folder)
    assert message == f"[Errno 13] Permission denied: '{folder}/out.txt'"


def test_temporary_files_have_a_fixed_pattern_and_only_stale_ones_are_removed(tmp_path):
    (tmp_path / "run" / "stage").mkdir(parents=True)
    stale = [temp_beside(tmp_path / "run" / "history.json"), temp_beside(tmp_path / "run" / "stage" / "g.weights.h5"),
             temp_beside(tmp_path / "run" / "set", folder=True)]
    (stale[2] / "inside.png").write_bytes(b"x")
    recent = temp_beside(tmp_path / "run" / "other.json")  # another process's write: newer than this one
    kept = [tmp_path / "run" / name for name in (".hidden", "notes.tmp-0123456789ab", ".a.json.tmp-nothex12345.json",
                                                 ".a.json.tmp-0123456789ab.png")] + [recent]
    for path in kept[:-1]:
        path.write_text("mine")
    long_ago = time.time() - 3600
    for path in stale + kept:
        os.utime(path, (long_ago, long_ago) if path is not recent else None)
    assert stale[1].name.startswith(".g.weights.h5.tmp-") and stale[1].name.endswith(".weights.h5")
    assert all(is_temp_file(p) for p in stale + [recent]) and not any(is_temp_file(p) for p in kept[:-1])
    with atomic_path(tmp_path / "run" / "writing.json") as writing:
        os.utime(writing, (long_ago, long_ago))  # as a copy keeping the source's time would
        removed = remove_stale_temp_files(tmp_path / "run", before=time.time() - 60)
        assert writing.exists()
    assert sorted(removed) == sorted(stale) and not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and (tmp_path / "run" / "writing.json").exists()
    assert remove_stale_temp_files(tmp_path / "run") == []  # by default, only what is older than this process


def test_a_temporary_file_whose_writer_still_runs_is_never_removed(tmp_path):
    import subprocess
    import sys

    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    try:
        # another upscale writing a large PNG into the same folder, between two bands: an old time, a live writer
        busy = tmp_path / f".a.png.tmp-{running.pid}-0123456789ab.png"
        killed = tmp_path / f".b.png.tmp-{gone.pid}-abcdef012345.png"
        older = tmp_path / ".c.png.tmp-00aa11bb22cc.png"  # named before srlib put the writer in the name
        for path in (busy, killed, older):
            path.write_bytes(b"half")
            os.utime(path, (time.time() - 3600, time.time() - 3600))
        assert all(is_temp_file(p) for p in (busy, killed, older))
        assert sorted(remove_stale_temp_files(tmp_path)) == sorted([killed, older])
        assert busy.exists()
    finally:
        running.kill()
        running.wait()
    assert remove_stale_temp_files(tmp_path) == [busy]  # once its writer is gone


def test_a_write_deletes_the_half_written_file_a_killed_write_of_the_same_output_left(tmp_path):
    killed = tmp_path / ".table.md.tmp-0123456789ab.md"  # e.g. benchmark --table, killed while writing
    other = tmp_path / ".other.md.tmp-abcdef012345.md"  # another output's: left for the write of that one
    for path in (killed, other):
        path.write_text("half")
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    write_text(tmp_path / "table.md", "| a |\n")
    assert (tmp_path / "table.md").read_text() == "| a |\n"
    assert not killed.exists() and other.exists()
