"""Downloads from a local HTTP server: verification, resume, and safe extraction."""

import dataclasses
import hashlib
import http.server
import io
import re
import tarfile
import threading
import zipfile

import pytest

from srlib.download import ARCHIVES, Archive, DownloadError, dataset_folder, download, extract, fetch, get_data


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the bytes in ``files`` by path, honouring ``Range: bytes=N-`` like a real file server."""

    files: dict = {}
    requests: list = []

    def do_GET(self):  # noqa: N802 (the http.server naming)
        data = self.files.get(self.path)
        self.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            if start >= len(data):
                self.send_error(416)
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _RangeHandler.files, _RangeHandler.requests = {}, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RangeHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", _RangeHandler
    httpd.shutdown()
    httpd.server_close()


def _zip_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_download_verifies_and_extracts(server, tmp_path):
    url, handler = server
    payload = _zip_bytes({"Set5/baby.png": b"png bytes", "Set5/bird.png": b"more"})
    handler.files["/sets.zip"] = payload
    sha = hashlib.sha256(payload).hexdigest()
    path = download(f"{url}/sets.zip", tmp_path / "dl" / "sets.zip", sha256=sha, size=len(payload), progress=False)
    assert path.read_bytes() == payload and not (tmp_path / "dl" / "sets.zip.part").exists()
    folder = extract(path, tmp_path / "data" / "benchmark")
    assert (folder / "Set5" / "baby.png").read_bytes() == b"png bytes"
    assert download(f"{url}/sets.zip", path, sha256=sha, progress=False) == path
    assert len(handler.requests) == 1  # a verified file is not fetched again


def test_wrong_checksum_fails_and_leaves_no_partial_data(server, tmp_path):
    url, handler = server
    handler.files["/x.zip"] = b"x" * 1000
    with pytest.raises(DownloadError, match="does not match the published"):
        download(f"{url}/x.zip", tmp_path / "x.zip", sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    url, handler = server
    payload = bytes(range(256)) * 400
    handler.files["/big.zip"] = payload
    (tmp_path / "big.zip.part").write_bytes(payload[:40000])  # what an interrupted run left
    path = download(f"{url}/big.zip", tmp_path / "big.zip", sha256=hashlib.sha256(payload).hexdigest(), progress=False)
    assert path.read_bytes() == payload
    assert handler.requests == [("/big.zip", "bytes=40000-")]


def test_short_download_keeps_the_part_file_to_resume(server, tmp_path):
    url, handler = server
    handler.files["/y.zip"] = b"y" * 100
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{url}/y.zip", tmp_path / "y.zip", size=200, progress=False)
    assert (tmp_path / "y.zip.part").stat().st_size == 100


def test_missing_file_and_unreachable_server_are_clear_errors(server, tmp_path):
    url, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(f"{url}/nope.zip", tmp_path / "nope.zip", progress=False)
    with pytest.raises(DownloadError, match="could not download"):
        download("http://127.0.0.1:9/none.zip", tmp_path / "none.zip", progress=False, timeout=5)


@pytest.mark.parametrize("name", ["../evil.png", "/abs/evil.png", "ok/../../evil.png"])
def test_zip_member_outside_the_target_is_refused(tmp_path, name):
    archive = tmp_path / "bad.zip"
    archive.write_bytes(_zip_bytes({"good.png": b"g", name: b"evil"}))
    with pytest.raises(DownloadError, match="would land outside"):
        extract(archive, tmp_path / "data" / "set")
    assert not (tmp_path / "data" / "set").exists() and not (tmp_path / "evil.png").exists()
    assert [p.name for p in (tmp_path / "data").iterdir()] == []  # no staging folder left


def test_tar_traversal_and_escaping_links_are_refused(tmp_path):
    for kind in ("dotdot", "symlink"):
        archive = tmp_path / f"{kind}.tar.gz"
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo("../evil.txt" if kind == "dotdot" else "link")
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, "../../etc/passwd"
                tar.addfile(info)
            else:
                info.size = 4
                tar.addfile(info, io.BytesIO(b"evil"))
        with pytest.raises(DownloadError, match="would land outside"):
            extract(archive, tmp_path / kind)
        assert not (tmp_path / kind).exists()


def test_good_tar_extracts(tmp_path):
    archive = tmp_path / "ok.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("T91/t1.png")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"abc"))
    assert (extract(archive, tmp_path / "train") / "T91" / "t1.png").read_bytes() == b"abc"
    with pytest.raises(DownloadError, match="already exists"):
        extract(archive, tmp_path / "train")
    (tmp_path / "junk.bin").write_bytes(b"neither")
    with pytest.raises(DownloadError, match="neither a zip nor a tar"):
        extract(tmp_path / "junk.bin", tmp_path / "junk")


def _tar_bytes(members: dict) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture
def benchmark_archive(server, monkeypatch):
    """ARCHIVES["benchmark"] pointed at a small tar laid out like EDSR's benchmark.tar, on the local server."""
    url, handler = server
    payload = _tar_bytes({"benchmark/Set5/HR/baby.png": b"png-bytes", "benchmark/B100/HR/8023.png": b"more",
                          "benchmark/Set5/LR_bicubic/X4/babyx4.png": b"lr"})
    handler.files["/benchmark.tar"] = payload
    archive = Archive(f"{url}/benchmark.tar", len(payload), None,
                      {"benchmark/Set5/HR": "benchmark/Set5", "benchmark/B100/HR": "benchmark/BSD100"},
                      md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setitem(ARCHIVES, "benchmark", archive)
    return archive, handler


def test_fetch_puts_each_archive_folder_in_its_place(benchmark_archive, tmp_path):
    archive, handler = benchmark_archive
    folders = fetch("benchmark", tmp_path / "data", progress=False)
    assert (folders["benchmark/Set5"] / "baby.png").read_bytes() == b"png-bytes"
    assert (folders["benchmark/BSD100"] / "8023.png").read_bytes() == b"more"
    assert not (folders["benchmark/Set5"] / "LR_bicubic").exists()  # only the HR folders are taken
    assert not (tmp_path / "data" / "downloads" / "benchmark.unpacked").exists()
    requests = len(handler.requests)
    fetch("benchmark", tmp_path / "data", progress=False)  # everything there: nothing is fetched
    assert len(handler.requests) == requests


def test_fetch_with_a_wrong_md5_fails_and_leaves_nothing(benchmark_archive, tmp_path, monkeypatch):
    archive, _ = benchmark_archive
    monkeypatch.setitem(ARCHIVES, "benchmark", dataclasses.replace(archive, md5="0" * 32))
    with pytest.raises(DownloadError, match="md5 .* does not match"):
        fetch("benchmark", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "benchmark").exists()
    assert list((tmp_path / "data" / "downloads").iterdir()) == []


def test_get_data_says_what_is_missing_and_how_to_supply_it(server, tmp_path, monkeypatch):
    url, _ = server  # the server has no benchmark.tar: the download fails with 404
    monkeypatch.setitem(ARCHIVES, "benchmark", dataclasses.replace(ARCHIVES["benchmark"], url=f"{url}/benchmark.tar"))
    with pytest.raises(DownloadError, match=r"Set5 is not in .*benchmark/Set5 and could not be downloaded .*404.*mirror"):
        get_data(tmp_path / "data", ["Set5"], progress=False)
    with pytest.raises(DownloadError, match="no training set 'mine'"):
        get_data(tmp_path / "data", training_sets=["mine"], progress=False)


def test_get_data_copies_from_a_mirror_and_keeps_what_is_there(tmp_path):
    mirror = tmp_path / "mirror"
    (mirror / "benchmark" / "Set5").mkdir(parents=True)
    (mirror / "train" / "T91").mkdir(parents=True)
    (mirror / "benchmark" / "Set5" / "a.png").write_bytes(b"aaa")
    (mirror / "train" / "T91" / "t1.png").write_bytes(b"ttt")
    folders = get_data(tmp_path / "data", ["Set5"], ["T91"], source_dir=mirror)
    assert (folders["Set5"] / "a.png").read_bytes() == b"aaa" and (folders["T91"] / "t1.png").read_bytes() == b"ttt"
    assert dataset_folder(tmp_path / "data", "T91") == folders["T91"]
    (folders["Set5"] / "a.png").write_bytes(b"bbb")  # same size: kept, not copied again
    get_data(tmp_path / "data", ["Set5"], source_dir=mirror)
    assert (folders["Set5"] / "a.png").read_bytes() == b"bbb"
    with pytest.raises(DownloadError, match="has no benchmark/Set14; it has: benchmark/Set5, train/T91"):
        get_data(tmp_path / "data", ["Set14"], source_dir=mirror)


def test_optional_sets_are_skipped_and_archive_sets_land_in_the_archive_folder(tmp_path, caplog):
    mirror = tmp_path / "mirror"
    (mirror / "benchmark" / "Set5").mkdir(parents=True)
    (mirror / "benchmark" / "Set5" / "a.png").write_bytes(b"aaa")
    (mirror / "train" / "DIV2K_train_HR").mkdir(parents=True)
    (mirror / "train" / "DIV2K_train_HR" / "0001.png").write_bytes(b"div")
    folders = get_data(tmp_path / "data", ["Set5", "Urban100"], ["DIV2K_train_HR"], source_dir=mirror)
    assert "Urban100" not in folders and "Urban100 is skipped" in caplog.text
    assert folders["DIV2K_train_HR"] == tmp_path / "data" / "train" / "DIV2K"
    assert dataset_folder(tmp_path / "data", "DIV2K_train_HR") == folders["DIV2K_train_HR"]
    assert (folders["DIV2K_train_HR"] / "0001.png").read_bytes() == b"div"


def test_a_download_cut_short_keeps_the_part_file_when_no_size_is_published(server, tmp_path):
    url, handler = server
    handler.files["/x.tar"] = b"0123456789"
    real = _RangeHandler.do_GET

    def short(self):  # announces 10 bytes, sends 4, closes
        self.send_response(200)
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"0123")

    _RangeHandler.do_GET = short
    try:
        with pytest.raises(DownloadError, match="(stopped after|got) 4 bytes.*(kept|resume)"):
            download(f"{url}/x.tar", tmp_path / "x.tar", md5=hashlib.md5(b"0123456789").hexdigest(), progress=False)
    finally:
        _RangeHandler.do_GET = real
    assert (tmp_path / "x.tar.part").read_bytes() == b"0123"
    path = download(f"{url}/x.tar", tmp_path / "x.tar", md5=hashlib.md5(b"0123456789").hexdigest(), progress=False)
    assert path.read_bytes() == b"0123456789"
