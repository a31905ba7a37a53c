"""Downloads from a local HTTP server: verification, resume, and safe extraction."""

import dataclasses
import hashlib
import http.server
import io
import re
import tarfile
import threading
import time
import zipfile

import pytest

from srlib.download import ARCHIVES, Archive, DownloadError, dataset_folder, download, extract, fetch, get_data


class _RangeHandler(http.server.BaseHTTPRequestHandler):
    """Serves the bytes in ``files`` by path, honouring ``Range: bytes=N-`` like a real file server; the
    class attributes below make it misbehave as some servers do (the ``server`` fixture resets them)."""

    files: dict = {}
    requests: list = []
    ignore_range = False  # answer a Range request with 200 and the whole file
    serve_from = None  # answer a Range request with 206 from this byte, whatever was asked
    send_length = True  # False: no Content-Length; the body ends when the connection closes (HTTP/1.0)
    cut_after = None  # close the connection after this many bytes of the body
    trickle = 0.0  # seconds to wait before each byte of the body
    endless = False  # after the file, keep sending zeros
    sent = 0  # bytes of the last body that went out

    def do_GET(self):  # noqa: N802 (the http.server naming)
        data = self.files.get(self.path)
        self.requests.append((self.path, self.headers.get("Range")))
        if data is None:
            self.send_error(404)
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if match and not self.ignore_range:
            start = int(match.group(1)) if self.serve_from is None else self.serve_from
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        if self.send_length:
            self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:self.cut_after and start + self.cut_after]
        type(self).sent = 0
        try:
            for block in ([body[i:i + 1] for i in range(len(body))] if self.trickle else [body]):
                time.sleep(self.trickle)
                self.wfile.write(block)
                type(self).sent += len(block)
            while self.endless and self.sent < 64 << 20:
                self.wfile.write(bytes(1 << 16))
                type(self).sent += 1 << 16
        except (BrokenPipeError, ConnectionResetError):  # the client hung up
            pass

    def log_message(self, *args):
        pass


_MISBEHAVIOUR = {name: getattr(_RangeHandler, name)
                 for name in ("ignore_range", "serve_from", "send_length", "cut_after", "trickle", "endless")}


@pytest.fixture
def server():
    _RangeHandler.files, _RangeHandler.requests = {}, []
    for name, value in _MISBEHAVIOUR.items():
        setattr(_RangeHandler, name, value)
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
    handler.files["/y.zip"] = b"y" * 200
    handler.cut_after = 100
    with pytest.raises(DownloadError, match="run again to resume"):
        download(f"{url}/y.zip", tmp_path / "y.zip", size=200, progress=False)
    assert (tmp_path / "y.zip.part").stat().st_size == 100
    handler.cut_after = None
    assert download(f"{url}/y.zip", tmp_path / "y.zip", size=200, progress=False).read_bytes() == b"y" * 200
    assert handler.requests[-1] == ("/y.zip", "bytes=100-")


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


def test_a_download_with_no_length_and_nothing_published_is_refused_not_taken_cut_short(server, tmp_path):
    url, handler = server
    handler.files["/n.tar"] = b"0123456789"
    handler.send_length, handler.cut_after = False, 4  # closes early, and nothing says the body was longer
    with pytest.raises(DownloadError, match=f"{url}/n.tar: the server does not say how long"):
        download(f"{url}/n.tar", tmp_path / "n.tar", progress=False)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DownloadError, match="got 4 bytes, expected 10; the partial file is kept"):
        download(f"{url}/n.tar", tmp_path / "n.tar", size=10, progress=False)
    handler.cut_after = None  # a checksum can tell a whole file without any length
    path = download(f"{url}/n.tar", tmp_path / "n.tar", md5=hashlib.md5(b"0123456789").hexdigest(), progress=False)
    assert path.read_bytes() == b"0123456789"


@pytest.mark.parametrize("answer", ["200 with a length", "200 without a length", "206 from byte 0"])
def test_a_server_ignoring_the_range_restarts_the_part_file_instead_of_appending(server, tmp_path, answer):
    url, handler = server
    payload = bytes(range(200))
    handler.files["/r.zip"] = payload
    handler.ignore_range = answer.startswith("200")
    handler.serve_from = 0 if answer.startswith("206") else None
    handler.send_length = answer != "200 without a length"
    (tmp_path / "r.zip.part").write_bytes(payload[:40])
    size = len(payload) if answer == "200 without a length" else None  # else no size, no checksum: the server's
    assert download(f"{url}/r.zip", tmp_path / "r.zip", size=size, progress=False).read_bytes() == payload
    assert handler.requests == [("/r.zip", "bytes=40-")]


def test_a_range_answer_from_the_wrong_byte_deletes_the_part_file(server, tmp_path):
    url, handler = server
    handler.files["/w.zip"] = bytes(range(200))
    handler.serve_from = 7
    (tmp_path / "w.zip.part").write_bytes(bytes(range(40)))
    with pytest.raises(DownloadError, match=r"/w.zip: asked for bytes 40-, the server answered with bytes 7-199/200"):
        download(f"{url}/w.zip", tmp_path / "w.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_part_file_longer_than_the_servers_file_is_started_again(server, tmp_path):
    url, handler = server
    handler.files["/l.zip"] = b"whole file"
    (tmp_path / "l.zip.part").write_bytes(b"whole file and then junk")  # the server answers 416 to bytes=24-
    assert download(f"{url}/l.zip", tmp_path / "l.zip", progress=False).read_bytes() == b"whole file"
    assert handler.requests == [("/l.zip", "bytes=24-"), ("/l.zip", None)]


def test_a_server_sending_more_than_the_published_size_is_cut_off(server, tmp_path):
    url, handler = server
    handler.files["/e.zip"] = bytes(1000)
    handler.send_length, handler.endless = False, True
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"/e.zip: the server sent more than the expected 1000 bytes"):
        download(f"{url}/e.zip", tmp_path / "e.zip", size=1000, progress=False)
    assert time.monotonic() - started < 10 and list(tmp_path.iterdir()) == []
    time.sleep(0.2)  # the server notices the hang-up
    assert handler.sent < 32 << 20  # it would send 64 MB to a client reading to the end
    handler.send_length, handler.endless = True, False  # a length that is not the published one: nothing read
    with pytest.raises(DownloadError, match=r"/e.zip is 1000 bytes on the server, not the published 900"):
        download(f"{url}/e.zip", tmp_path / "e.zip", size=900, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_a_trickling_server_is_given_up_at_the_time_limit(server, tmp_path):
    url, handler = server
    handler.files["/t.zip"] = bytes(2000)
    handler.trickle = 0.01  # 20 s for the whole file
    started = time.monotonic()
    with pytest.raises(DownloadError, match=r"/t.zip ran past its time limit of 0.3 s; stopped after .*partial file is kept"):
        download(f"{url}/t.zip", tmp_path / "t.zip", progress=False, time_limit=0.3)
    assert time.monotonic() - started < 3
    assert 0 < (tmp_path / "t.zip.part").stat().st_size < 2000


def test_an_archive_that_would_unpack_past_the_limit_is_refused_before_unpacking(tmp_path):
    for archive, data in (("bomb.zip", _zip_bytes({"zeros.bin": bytes(1 << 20)})),
                          ("bomb.tar", _tar_bytes({"zeros.bin": bytes(1 << 20)}))):
        (tmp_path / archive).write_bytes(data)
        with pytest.raises(DownloadError, match=f"{archive} would unpack to 1048576 bytes, more than the limit of 100000"):
            extract(tmp_path / archive, tmp_path / "out" / "set", max_bytes=100_000)
        assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_the_unpacking_limit_holds_while_unpacking_when_listed_sizes_are_not_checked(tmp_path, monkeypatch, kind):
    import srlib.download

    monkeypatch.setattr(srlib.download, "_check_expansion", lambda *args: None)  # as if every size listed were 0
    archive = tmp_path / f"bomb.{kind}"
    members = {f"z{i}.bin": bytes(60_000) for i in range(3)}
    archive.write_bytes(_zip_bytes(members) if kind == "zip" else _tar_bytes(members))
    with pytest.raises(DownloadError, match=f"bomb.{kind} unpacks to more than the limit of 100000 bytes.*'z1.bin'"):
        extract(archive, tmp_path / "out" / "set", max_bytes=100_000)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_zip_whose_listed_size_lies_does_not_unpack_past_it(tmp_path):
    data = io.BytesIO()
    with zipfile.ZipFile(data, "w", zipfile.ZIP_DEFLATED) as zipped:
        zipped.writestr("big.bin", bytes(1 << 20))
    data = bytearray(data.getvalue())
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # local and central headers: size 10
        at = data.index(signature) + offset
        data[at:at + 4] = (10).to_bytes(4, "little")
    (tmp_path / "liar.zip").write_bytes(data)
    with pytest.raises(DownloadError, match="liar.zip: member 'big.bin' could not be unpacked: Bad CRC-32"):
        extract(tmp_path / "liar.zip", tmp_path / "out" / "set", max_bytes=100_000)
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE], ids=["char", "block", "fifo"])
def test_device_files_and_fifos_in_a_tar_are_refused_naming_the_member(tmp_path, kind):
    archive = tmp_path / "special.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("set/ok.png")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"ok"))
        info = tarfile.TarInfo("set/thing")
        info.type, info.devmajor, info.devminor = kind, 1, 3
        tar.addfile(info)
    with pytest.raises(DownloadError, match=r"^special.tar: member 'set/thing' is a (FIFO|device file); refused$"):
        extract(archive, tmp_path / "out" / "set")
    assert list((tmp_path / "out").iterdir()) == []


def test_a_link_leading_out_through_another_link_is_refused_naming_the_member(tmp_path):
    archive = tmp_path / "chain.tar"
    with tarfile.open(archive, "w") as tar:
        for name, target in (("sub/up", ".."), ("sub/up/out", "../..")):  # sub/up/out is <target>/out -> ../..
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    with pytest.raises(DownloadError, match=r"^chain.tar: member 'sub/up/out' refused: .*outside the destination"):
        extract(archive, tmp_path / "out" / "set")
    assert list((tmp_path / "out").iterdir()) == []
