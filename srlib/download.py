"""Getting the data: named data sets downloaded (resumable, verified, extracted safely) or copied from a mirror.

``download`` writes to ``<file>.part`` and, when that exists from an interrupted attempt, asks the server
for the rest (an HTTP Range request; a server that sends anything but the rest makes it start again). It
reads no more than the expected size, gives up after ``time_limit``, and checks the finished file against
its size (the published one, else the server's) and checksum before it is renamed into place; a file that
does not match is deleted, so a wrong or damaged download never looks like a good one. ``extract``
refuses any archive member that would land outside the target folder (``../`` tricks, absolute paths,
links pointing out), device files and FIFOs, and archives that unpack to more than ``max_bytes``; it
unpacks into a temporary folder that is renamed into place only when everything is out.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import lzma
import os
import re
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .errors import SrlibError
from .files import atomic_path, temp_beside

log = logging.getLogger(__name__)


class DownloadError(SrlibError):
    """A download failed, or what arrived is not the published file."""


@dataclass(frozen=True)
class Archive:
    """A published archive: where it is, its size and checksum, and which of its folders go where under data/."""

    url: str
    size: int | None
    sha256: str | None
    folders: dict  # folder inside the archive -> folder under the data folder
    md5: str | None = None  # for archives whose publishers give only an md5

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Sizes and checksums as published with the data sets: DIV2K and COCO as in TensorFlow Datasets'
# url_checksums; EDSR's benchmark.tar (Set5, Set14, B100, Urban100 HR, mod-cropped) with the md5 that
# torchSR publishes for it, the only checksum published for that file.
ARCHIVES = {
    "benchmark": Archive(
        "https://cv.snu.ac.kr/research/EDSR/benchmark.tar", None, None,
        {"benchmark/Set5/HR": "benchmark/Set5", "benchmark/Set14/HR": "benchmark/Set14",
         "benchmark/B100/HR": "benchmark/BSD100", "benchmark/Urban100/HR": "benchmark/Urban100"},
        md5="4ace41d33c2384b97e6b320cd0afd6ba"),
    "DIV2K_train_HR": Archive(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", 3_530_603_713,
        "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", {"DIV2K_train_HR": "train/DIV2K"}),
    "DIV2K_valid_HR": Archive(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", 448_993_893,
        "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", {"DIV2K_valid_HR": "train/DIV2K_valid"}),
    "COCO_train2014": Archive(
        "http://images.cocodataset.org/zips/train2014.zip", 13_510_573_713,
        "ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775", {"train2014": "train/COCO2014"}),
}
BENCHMARK_ARCHIVE = "benchmark"  # the archive that holds the benchmark sets


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20, algorithm: str = "sha256") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _checksums(sha256: str | None, md5: str | None) -> dict:
    return {name: value.lower() for name, value in (("sha256", sha256), ("md5", md5)) if value}


DOWNLOAD_TIME_LIMIT = 6 * 3600.0  # seconds for one attempt; COCO's 13.5 GB needs 2 h at 2 MB/s, and resumes
MAX_EXTRACTED_BYTES = 64 << 30  # what an archive may unpack to; the largest here (COCO) is 13.5 GB
_BLOCK = 1 << 20


def download(url: str, path: str | os.PathLike, sha256: str | None = None, size: int | None = None,
             progress: bool = True, timeout: float = 60.0, md5: str | None = None,
             time_limit: float = DOWNLOAD_TIME_LIMIT) -> Path:
    """Download ``url`` to ``path``, resuming a ``.part`` file; verify ``size``, ``sha256`` and ``md5`` when given.

    Without a checksum the length is checked, against ``size`` or else the server's; a server that gives
    neither is refused. No more than ``size`` bytes are read. ``timeout`` bounds each wait for data,
    ``time_limit`` (seconds) the whole attempt, checked as data arrives; a stopped download keeps its
    ``.part`` file to resume. An existing ``path`` that matches is kept as it is (nothing is fetched).
    """
    path = Path(path)
    expected = _checksums(sha256, md5)
    if (path.is_file() and (size is None or path.stat().st_size == size)
            and all(sha256_of(path, algorithm=a) == v for a, v in expected.items())):
        log.info("%s is already there", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:  # longer than the published file: not a piece of it
        part.unlink()
        have = 0
    total = _receive(url, part, have, size, bool(expected), timeout, (time.monotonic(), time_limit), progress)
    actual_size = part.stat().st_size
    if total is not None and actual_size != total:
        if actual_size > total:
            part.unlink()
        raise DownloadError(f"{url}: got {actual_size} bytes, expected {total}"
                            + ("; the partial file is kept, run again to resume" if actual_size < total else ""))
    for algorithm, value in expected.items():
        actual = sha256_of(part, algorithm=algorithm)
        if actual != value:
            part.unlink()
            raise DownloadError(f"{url}: {algorithm} {actual} does not match the published {value}; the file was deleted")
    os.replace(part, path)
    return path


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, whole length) from a Content-Range header such as ``bytes 100-999/1000`` or ``bytes */1000``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    return (int(match[1]) if match[1] else None), (int(match[2]) if match[2] != "*" else None)


def _receive(url: str, part: Path, have: int, size: int | None, checksummed: bool, timeout: float,
             limit: tuple[float, float], progress: bool) -> int | None:
    """Fetch ``url`` into ``part``, after its first ``have`` bytes when the server resumes, else from the start;
    ``limit`` is (when the download started, by ``time.monotonic``; its time limit in seconds).

    Returns the whole file's length (``size``, else the server's), None when only a checksum can tell.
    """
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code != 416 or not have:
            raise DownloadError(f"could not download {url}: HTTP {error.code} {error.reason}") from None
        # nothing after byte `have`: the .part is whole, or longer than the file
        total = size if size is not None else _content_range(error.headers.get("Content-Range"))[1]
        if (total is None and not checksummed) or (total is not None and have > total):
            log.info("%s: %s does not fit the file on the server: starting again", url, part.name)
            return _receive(url, part, 0, size, checksummed, timeout, limit, progress)
        return total
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"could not download {url}: {getattr(error, 'reason', error)}") from None
    with response:
        first, total = _content_range(response.headers.get("Content-Range")) if response.status == 206 else (0, None)
        if first != have:
            if first != 0:  # not what was asked for, nor the whole file
                part.unlink()
                sent = response.headers.get("Content-Range") or "no Content-Range"
                raise DownloadError(f"{url}: asked for bytes {have}-, the server answered with {sent}; "
                                    "the partial file was deleted, run again to download it whole")
            log.info("%s does not resume downloads: starting %s again", url, part.name)
            have = 0
        length = response.headers.get("Content-Length")
        if total is None and length is not None and length.isdigit():
            total = have + int(length)
        if size is not None and total is not None and total != size:
            raise DownloadError(f"{url} is {total} bytes on the server, not the published {size}; not downloaded")
        total = size if size is not None else total
        if total is None and not checksummed and not getattr(response, "chunked", False):
            raise DownloadError(f"{url}: the server does not say how long the file is and no size or checksum "
                                "is given, so a download cut short could not be told from a whole one; not downloaded")
        received = have
        try:
            with open(part, "ab" if have else "wb") as file, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-len(".part")],
                disable=None if progress else True,
            ) as bar:
                # read1 returns what has arrived, so the time limit is checked even while data trickles
                while block := response.read1(_BLOCK if total is None else min(_BLOCK, total - received + 1)):
                    received += len(block)
                    if total is not None and received > total:
                        break
                    file.write(block)
                    bar.update(len(block))
                    if time.monotonic() - limit[0] > limit[1]:
                        raise DownloadError(f"downloading {url} ran past its time limit of {limit[1]:g} s; stopped "
                                            f"after {received} bytes, the partial file is kept: run again to resume")
        except (OSError, http.client.HTTPException) as error:  # timeouts, resets, short reads
            raise DownloadError(f"downloading {url} stopped after {part.stat().st_size} bytes ({error}); "
                                "the partial file is kept: run again to resume") from None
        if total is not None and received > total:
            part.unlink()
            raise DownloadError(f"{url}: the server sent more than the expected {total} bytes; stopped, "
                                "the file was deleted")
    return total


def _inside(root: Path, name: str) -> bool:
    """Whether archive member ``name`` stays inside ``root`` once extracted."""
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or (member.parts and member.parts[0].endswith(":")):  # /etc/..., C:/...
        return False
    root = root.resolve()
    resolved = (root / member).resolve()
    return resolved == root or root in resolved.parents


def extract(archive: str | os.PathLike, target: str | os.PathLike, max_bytes: int = MAX_EXTRACTED_BYTES) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into ``target`` (which must not exist yet), safely; returns ``target``.

    Raises ``DownloadError`` naming the archive and the first member that would land outside ``target``
    (``../``, absolute paths, links leading out), that is a device file or FIFO (refused, not skipped), or
    that is damaged; and when the archive would unpack to more than ``max_bytes``: refused from the
    members' listed sizes before anything is written, and counted again as they are written, since a
    zip's listed sizes can lie. Nothing is left behind on an error.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists: remove it to extract {archive.name} again")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = temp_beside(target, folder=True)
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, staging, target, max_bytes)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, staging, target, max_bytes)
        else:
            raise DownloadError(f"{archive} is neither a zip nor a tar archive")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _check_expansion(archive: Path, listed: int, max_bytes: int) -> None:
    if listed > max_bytes:
        raise DownloadError(f"{archive.name} would unpack to {listed} bytes, more than the limit of {max_bytes}; refused")


def _extract_zip(archive: Path, staging: Path, target: Path, max_bytes: int) -> None:
    try:
        zipped = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as error:
        raise DownloadError(f"{archive.name} is not a readable zip archive: {error}") from None
    with zipped:
        members = zipped.infolist()
        for info in members:
            if not _inside(staging, info.filename):
                raise DownloadError(f"{archive.name}: member {info.filename!r} would land outside {target}; refused")
        _check_expansion(archive, sum(info.file_size for info in members), max_bytes)
        written = 0
        for info in members:
            destination = staging / info.filename
            try:
                if info.is_dir():
                    destination.mkdir(parents=True, exist_ok=True)
                    continue
                destination.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(info) as source, open(destination, "wb") as file:
                    while block := source.read(_BLOCK):
                        written += len(block)
                        if written > max_bytes:
                            raise DownloadError(f"{archive.name} unpacks to more than the limit of {max_bytes} "
                                                f"bytes (more than its listed sizes), at member {info.filename!r}; refused")
                        file.write(block)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError) as error:
                raise DownloadError(f"{archive.name}: member {info.filename!r} could not be unpacked: {error}") from None


def _extract_tar(archive: Path, staging: Path, target: Path, max_bytes: int) -> None:
    written = 0

    def checked(member: tarfile.TarInfo, path: str) -> tarfile.TarInfo:
        nonlocal written
        member = tarfile.data_filter(member, path)  # the standard library's own safety net as well
        written += member.size if member.isreg() else 0  # what tarfile writes for it, exactly
        if written > max_bytes:
            raise DownloadError(f"{archive.name} unpacks to more than the limit of {max_bytes} bytes, "
                                f"at member {member.name!r}; refused")
        return member

    try:
        with tarfile.open(archive) as tarred:
            members = tarred.getmembers()
            for member in members:
                link = None
                if member.issym():  # relative to the link's own folder
                    link = str(PurePosixPath(member.name).parent / member.linkname)
                elif member.islnk():  # relative to the archive's root
                    link = member.linkname
                if not _inside(staging, member.name) or (link is not None and not _inside(staging, link)):
                    raise DownloadError(f"{archive.name}: member {member.name!r} would land outside {target}; refused")
                if member.isdev() or member.isfifo():
                    kind = "a FIFO" if member.isfifo() else "a device file"
                    raise DownloadError(f"{archive.name}: member {member.name!r} is {kind}; refused")
            _check_expansion(archive, sum(member.size for member in members if member.isreg()), max_bytes)
            tarred.extractall(staging, members, filter=checked)
    except tarfile.FilterError as error:  # e.g. a link that leads out through another link
        raise DownloadError(f"{archive.name}: member {error.tarinfo.name!r} refused: {error}") from None
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as error:
        raise DownloadError(f"{archive.name} could not be unpacked: {error}") from None


def fetch(name: str, data_dir: str | os.PathLike, progress: bool = True) -> dict[str, Path]:
    """Download (resumably) and extract one of ``ARCHIVES`` into ``data_dir``.

    Returns {folder under data_dir: its path}. Folders already there are kept; an archive that does not
    hold a folder it should is an error naming it.
    """
    if name not in ARCHIVES:
        raise DownloadError(f"unknown data set {name!r}; known: {', '.join(ARCHIVES)}")
    archive = ARCHIVES[name]
    data_dir = Path(data_dir)
    targets = {target: data_dir / target for target in archive.folders.values()}
    if all(path.is_dir() and any(path.iterdir()) for path in targets.values()):
        log.info("%s is already in %s", name, data_dir)
        return targets
    downloads = data_dir / "downloads"
    downloaded = download(archive.url, downloads / archive.filename, archive.sha256, archive.size, progress,
                          md5=archive.md5)
    unpacked = downloads / f"{name}.unpacked"
    if not unpacked.is_dir():  # kept from an earlier run that stopped while moving folders into place
        extract(downloaded, unpacked)
    for inside, target in archive.folders.items():
        destination = targets[target]
        if destination.is_dir() and any(destination.iterdir()):
            continue
        source = unpacked / inside
        if not source.is_dir():
            raise DownloadError(f"{archive.filename} has no folder {inside}; is it the published file?")
        destination.parent.mkdir(parents=True, exist_ok=True)
        if destination.is_dir():
            destination.rmdir()
        os.replace(source, destination)
    shutil.rmtree(unpacked, ignore_errors=True)
    return targets


def copy_from_mirror(source_dir: str | os.PathLike, data_dir: str | os.PathLike, folder: str,
                     destination: str | os.PathLike | None = None) -> Path:
    """Copy ``source_dir/folder`` (e.g. ``benchmark/Set5``) to ``destination`` (default ``data_dir/folder``);
    files already there are kept.

    Each file is copied to a temporary name and renamed, so an interrupted copy never leaves half a file.
    """
    source = Path(source_dir) / folder
    destination = Path(destination) if destination is not None else Path(data_dir) / folder
    if not source.is_dir():
        have = sorted(str(p.relative_to(source_dir)) for p in Path(source_dir).glob("*/*") if p.is_dir())
        raise DownloadError(f"the mirror {source_dir} has no {folder}; it has: {', '.join(have) or 'nothing'}")
    for file in sorted(p for p in source.rglob("*") if p.is_file()):
        target = destination / file.relative_to(source)
        if target.is_file() and target.stat().st_size == file.stat().st_size:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(target) as tmp:
            shutil.copyfile(file, tmp)
    return destination


def dataset_folder(data_dir: str | os.PathLike, name: str) -> Path:
    """Where training set ``name`` lives once ``get_data`` has run: an archive's folder (``train/DIV2K``
    for ``DIV2K_train_HR``), ``data_dir/train/<name>``, or ``name`` itself when that is a folder."""
    data_dir = Path(data_dir)
    if name in ARCHIVES:
        return data_dir / next(iter(ARCHIVES[name].folders.values()))
    if not (data_dir / "train" / name).is_dir() and Path(name).is_dir():
        return Path(name)
    return data_dir / "train" / name


def _filled(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _mirror_listing(source_dir) -> str:
    have = sorted(str(p.relative_to(source_dir)) for p in Path(source_dir).glob("*/*") if p.is_dir())
    return ", ".join(have) or "nothing"


def data_plan(data_dir: str | os.PathLike, benchmark_sets=(), training_sets=(), source_dir=None) -> list[dict]:
    """Where each set will come from, decided before anything is fetched; one row per set:
    {"set", "kind" ("benchmark" or "training"), "folder" (where it will be, absolute), "source", "fix"}.

    ``source`` is "copy from the mirror", "already here", "download <archive>" or "missing"; a missing set's
    ``fix`` says in words what to do (give a mirror, put the images in the folder, or choose a set that can
    be downloaded). Nothing is touched: this looks only at folders, never at the network.
    """
    data_dir = Path(data_dir).resolve()
    mirror = Path(source_dir).resolve() if source_dir is not None else None
    rows = []
    for name in benchmark_sets:
        relative = f"benchmark/{name}"
        row = {"set": name, "kind": "benchmark", "folder": data_dir / relative, "fix": ""}
        if mirror is not None and (mirror / relative).is_dir():
            row["source"] = f"copy from the mirror {mirror / relative}"
        elif _filled(data_dir / relative):
            row["source"] = "already here"
        elif mirror is not None:
            row["source"] = "missing"
            row["fix"] = (f"the mirror {mirror} has no {relative}; it has: {_mirror_listing(mirror)}. Give a mirror "
                          f"that holds it, or put the images in {data_dir / relative}")
        else:
            archive = ARCHIVES[BENCHMARK_ARCHIVE]
            row["source"] = f"download {archive.filename} from {archive.url.split('/')[2]}"
        rows.append(row)
    downloadable = ", ".join(n for n in ARCHIVES if n != BENCHMARK_ARCHIVE)
    for name in training_sets:
        target = dataset_folder(data_dir, name)
        row = {"set": name, "kind": "training", "folder": target.resolve(), "fix": ""}
        candidates = [f"train/{name}"] + ([next(iter(ARCHIVES[name].folders.values()))] if name in ARCHIVES else [])
        in_mirror = [c for c in candidates if mirror is not None and (mirror / c).is_dir()]
        if in_mirror:
            row["source"] = f"copy from the mirror {mirror / in_mirror[0]}"
        elif _filled(target):
            row["source"] = "already here"
        elif name in ARCHIVES:
            archive = ARCHIVES[name]
            size = f", {archive.size / 1e9:.2f} GB" if archive.size else ""
            row["source"] = f"download {archive.filename} from {archive.url.split('/')[2]}{size}"
        else:
            row["source"] = "missing"
            where = f"the mirror {mirror} has no train/{name}, " if mirror is not None else ""
            row["fix"] = (f"no training set {name!r}: {where}{target.resolve()} is not there, and it cannot be "
                          f"downloaded (only {downloadable} can). Either put its images in {target.resolve()}, or "
                          f"give a mirror holding train/{name} (the notebooks' source_dir, or make demo DATA=DIR), or "
                          'train on a set that can be downloaded, e.g. training_sets = ["DIV2K_valid_HR"] (100 '
                          "images, 449 MB)")
        rows.append(row)
    return rows


def data_plan_markdown(rows: list[dict]) -> str:
    """``data_plan`` as a Markdown table."""
    lines = ["| set | kind | folder | comes from |", "|---|---|---|---|"]
    for row in rows:
        source = row["source"] + (f": {row['fix']}" if row["fix"] else "")
        lines.append(f"| {row['set']} | {row['kind']} | `{row['folder']}` | {source} |")
    return "\n".join(lines)


def get_data(data_dir: str | os.PathLike, benchmark_sets=(), training_sets=(), source_dir=None,
             optional=("Urban100",), progress: bool = True) -> dict[str, Path]:
    """Make ``data_dir/benchmark/<set>`` and the training folders ready; returns {name: folder}.

    With ``source_dir``, a mirror laid out as ``benchmark/<set>`` and ``train/<name>``, what it has is
    copied. Otherwise a benchmark set is downloaded with ``ARCHIVES["benchmark"]`` and a training set
    named in ``ARCHIVES`` is downloaded; any other training set must be a folder that exists. Folders
    already in ``data_dir`` are used as they are. Where each set comes from is decided first
    (``data_plan``), so that a set that cannot be had is an error before anything is downloaded; the error
    names every such set and what to do about it. A set in ``optional`` that cannot be had is skipped with
    a warning.
    """
    data_dir = Path(data_dir)
    plan = data_plan(data_dir, benchmark_sets, training_sets, source_dir)
    missing = [row for row in plan if row["source"] == "missing" and row["set"] not in optional]
    if missing:
        raise DownloadError("\n".join(row["fix"] for row in missing))
    found = {}
    for name in benchmark_sets:
        relative = f"benchmark/{name}"
        try:
            if source_dir is not None and (Path(source_dir) / relative).is_dir():
                found[name] = copy_from_mirror(source_dir, data_dir, relative)
            elif _filled(data_dir / relative):
                found[name] = data_dir / relative
            elif source_dir is not None:
                copy_from_mirror(source_dir, data_dir, relative)  # raises, listing what the mirror has
            else:
                found[name] = _download_for(name, relative, BENCHMARK_ARCHIVE, data_dir, progress)
        except DownloadError as error:
            if name not in optional:
                raise
            log.warning("%s is skipped: %s", name, error)
    for name in training_sets:
        target = dataset_folder(data_dir, name)
        candidates = [f"train/{name}"] + ([next(iter(ARCHIVES[name].folders.values()))] if name in ARCHIVES else [])
        in_mirror = [c for c in candidates if source_dir is not None and (Path(source_dir) / c).is_dir()]
        if in_mirror:
            found[name] = copy_from_mirror(source_dir, data_dir, in_mirror[0], destination=target)
        elif _filled(target):
            found[name] = target
        elif name in ARCHIVES:
            found[name] = _download_for(name, next(iter(ARCHIVES[name].folders.values())), name, data_dir, progress)
        else:
            log.warning("training set %s is skipped: %s", name, next(r["fix"] for r in plan if r["set"] == name))
    return found


def _download_for(name: str, target: str, archive: str, data_dir: Path, progress: bool) -> Path:
    try:
        return fetch(archive, data_dir, progress)[target]
    except DownloadError as error:
        raise DownloadError(
            f"{name} is not in {data_dir / target} and could not be downloaded ({error}). Either give a local "
            f"mirror holding benchmark/<set> and train/<set> folders (make demo DATA=DIR, or the notebooks' "
            f"source_dir parameter), or put the images in {data_dir / target} yourself."
        ) from None

