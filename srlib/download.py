"""Getting the data: named data sets downloaded (resumable, verified, extracted safely) or copied from a mirror.

``download`` writes to ``<file>.part`` and, when that exists from an interrupted attempt, asks the server
for the rest (an HTTP Range request); the finished file is checked against its size and sha256 before it
is renamed into place, and a file that does not match is deleted, so a wrong or damaged download never
looks like a good one. ``extract`` refuses any archive member that would land outside the target folder
(``../`` tricks, absolute paths, links pointing out) and unpacks into a temporary folder that is renamed
into place only when everything is out.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from .errors import SrlibError
from .files import atomic_path

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


def download(url: str, path: str | os.PathLike, sha256: str | None = None, size: int | None = None,
             progress: bool = True, timeout: float = 60.0, md5: str | None = None) -> Path:
    """Download ``url`` to ``path``, resuming a ``.part`` file; verify ``size``, ``sha256`` and ``md5`` when given.

    An existing ``path`` that matches is kept as it is (nothing is fetched).
    """
    path = Path(path)
    expected = _checksums(sha256, md5)
    if path.is_file() and all(sha256_of(path, algorithm=a) == v for a, v in expected.items()):
        log.info("%s is already there", path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # the .part is already complete
            response = None
        else:
            raise DownloadError(f"could not download {url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError) as error:
        raise DownloadError(f"could not download {url}: {getattr(error, 'reason', error)}") from None
    if response is not None:
        with response:
            resumed = have and response.status == 206
            if have and not resumed:
                log.info("%s does not resume downloads: starting %s again", url, path.name)
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else size
            size = size if size is not None else total  # the server's length, when nothing is published
            try:
                with open(part, "ab" if resumed else "wb") as file, tqdm(
                    total=total, initial=have, unit="B", unit_scale=True, desc=path.name,
                    disable=None if progress else True,
                ) as bar:
                    while block := response.read(1 << 20):
                        file.write(block)
                        bar.update(len(block))
            except (OSError, http.client.HTTPException) as error:  # timeouts, resets, short reads
                raise DownloadError(f"downloading {url} stopped after {part.stat().st_size} bytes ({error}); "
                                    "the partial file is kept: run again to resume") from None
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        if actual_size > size:
            part.unlink()
        raise DownloadError(f"{url}: got {actual_size} bytes, expected {size}"
                            + ("; the partial file is kept, run again to resume" if actual_size < size else ""))
    for algorithm, value in expected.items():
        actual = sha256_of(part, algorithm=algorithm)
        if actual != value:
            part.unlink()
            raise DownloadError(f"{url}: {algorithm} {actual} does not match the published {value}; the file was deleted")
    os.replace(part, path)
    return path


def _inside(root: Path, name: str) -> bool:
    """Whether archive member ``name`` stays inside ``root`` once extracted."""
    member = PurePosixPath(name.replace("\\", "/"))
    if member.is_absolute() or (member.parts and member.parts[0].endswith(":")):  # /etc/..., C:/...
        return False
    root = root.resolve()
    resolved = (root / member).resolve()
    return resolved == root or root in resolved.parents


def extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a .zip or .tar(.gz/.bz2/.xz) into ``target`` (which must not exist yet), safely.

    Raises ``DownloadError`` naming the first member that would land outside ``target``.
    """
    archive, target = Path(archive), Path(target)
    if target.exists():
        raise DownloadError(f"{target} already exists: remove it to extract {archive.name} again")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                for name in zipped.namelist():
                    if not _inside(staging, name):
                        raise DownloadError(f"{archive.name}: member {name!r} would land outside {target}; refused")
                zipped.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                for member in tarred.getmembers():
                    link = None
                    if member.issym():  # relative to the link's own folder
                        link = str(PurePosixPath(member.name).parent / member.linkname)
                    elif member.islnk():  # relative to the archive's root
                        link = member.linkname
                    if not _inside(staging, member.name) or (link is not None and not _inside(staging, link)):
                        raise DownloadError(f"{archive.name}: member {member.name!r} would land outside {target}; refused")
                tarred.extractall(staging, filter="data")  # the standard library's own safety net as well
        else:
            raise DownloadError(f"{archive} is neither a zip nor a tar archive")
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


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


def get_data(data_dir: str | os.PathLike, benchmark_sets=(), training_sets=(), source_dir=None,
             optional=("Urban100",), progress: bool = True) -> dict[str, Path]:
    """Make ``data_dir/benchmark/<set>`` and the training folders ready; returns {name: folder}.

    With ``source_dir``, a mirror laid out as ``benchmark/<set>`` and ``train/<name>``, what it has is
    copied. Otherwise a benchmark set is downloaded with ``ARCHIVES["benchmark"]`` and a training set
    named in ``ARCHIVES`` is downloaded; any other training set must be a folder that exists. Folders
    already in ``data_dir`` are used as they are. A set in ``optional`` that cannot be had is skipped with
    a warning; any other is an error saying what is missing and how to supply it.
    """
    data_dir = Path(data_dir)
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
            where = f"the mirror {source_dir} has no train/{name}, " if source_dir else ""
            raise DownloadError(f"no training set {name!r}: {where}{target} is not there, and it is not a "
                                f"folder; downloadable sets: {', '.join(n for n in ARCHIVES if n != BENCHMARK_ARCHIVE)}")
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

