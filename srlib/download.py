"""Downloading data sets: resumable, verified against a published sha256, and extracted safely.

``download`` writes to ``<file>.part`` and, when that exists from an interrupted attempt, asks the server
for the rest (an HTTP Range request); the finished file is checked against its size and sha256 before it
is renamed into place, and a file that does not match is deleted, so a wrong or damaged download never
looks like a good one. ``extract`` refuses any archive member that would land outside the target folder
(``../`` tricks, absolute paths, links pointing out) and unpacks into a temporary folder that is renamed
into place only when everything is out.
"""

from __future__ import annotations

import hashlib
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

log = logging.getLogger(__name__)


class DownloadError(SrlibError):
    """A download failed, or what arrived is not the published file."""


@dataclass(frozen=True)
class Archive:
    """A published archive: where it is, how big it is and its sha256, and where it goes under data/."""

    url: str
    size: int | None
    sha256: str | None
    target: str  # folder under the data folder


# Sizes and sha256 as published with the data sets (the same as TensorFlow Datasets' url_checksums).
ARCHIVES = {
    "DIV2K_train_HR": Archive(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", 3_530_603_713,
        "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "train/DIV2K"),
    "DIV2K_valid_HR": Archive(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", 448_993_893,
        "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "valid/DIV2K"),
    "COCO_train2014": Archive(
        "http://images.cocodataset.org/zips/train2014.zip", 13_510_573_713,
        "ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775", "train/COCO2014"),
}


def sha256_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, path: str | os.PathLike, sha256: str | None = None, size: int | None = None,
             progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``path``, resuming a ``.part`` file; verify ``size`` and ``sha256`` when given.

    An existing ``path`` that matches is kept as it is (nothing is fetched).
    """
    path = Path(path)
    if path.is_file() and (sha256 is None or sha256_of(path) == sha256):
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
            with open(part, "ab" if resumed else "wb") as file, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=path.name,
                disable=None if progress else True,
            ) as bar:
                while block := response.read(1 << 20):
                    file.write(block)
                    bar.update(len(block))
    actual_size = part.stat().st_size
    if size is not None and actual_size != size:
        if actual_size > size:
            part.unlink()
        raise DownloadError(f"{url}: got {actual_size} bytes, expected {size}"
                            + ("; the partial file is kept, run again to resume" if actual_size < size else ""))
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            raise DownloadError(f"{url}: sha256 {actual} does not match the published {sha256}; the file was deleted")
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


def fetch(name: str, data_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Download (resumably) and extract one of ``ARCHIVES`` into ``data_dir``; returns its folder."""
    if name not in ARCHIVES:
        raise DownloadError(f"unknown data set {name!r}; known: {', '.join(ARCHIVES)}")
    archive = ARCHIVES[name]
    data_dir = Path(data_dir)
    target = data_dir / archive.target
    if target.is_dir() and any(target.iterdir()):
        log.info("%s is already in %s", name, target)
        return target
    filename = archive.url.rsplit("/", 1)[-1]
    downloaded = download(archive.url, data_dir / "downloads" / filename, archive.sha256, archive.size, progress)
    return extract(downloaded, target)
