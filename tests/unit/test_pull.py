"""`labctl image pull` against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import hashlib
import http.server
import threading
from pathlib import Path

import pytest

from labctl.errors import LabctlError
from labctl.images.cache import ImageCache
from labctl.images.pull import pull_image

BODY = b"QFI\xfb" + b"\0" * 4096  # starts like a qcow2 image


class Url(str):
    """The server's base URL, which also knows the directory it serves."""

    def __new__(cls, url: str, www: Path):
        made = super().__new__(cls, url)
        made.www = www
        return made


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "cloud.qcow2").write_bytes(BODY)
    (tmp_path / "www" / "page.html").write_text("<html>not an image</html>")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(tmp_path / "www"), **kw)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield Url(f"http://127.0.0.1:{httpd.server_address[1]}", tmp_path / "www")
    httpd.shutdown()


def test_pull_verifies_and_caches(server, tmp_path: Path):
    cache = ImageCache(tmp_path / "images")
    events = []
    image = pull_image(f"{server}/cloud.qcow2", hashlib.sha256(BODY).hexdigest(), "cloud",
                       cache, events.append)
    assert image.disk.read_bytes() == BODY
    assert image.manifest["kind"] == "pulled" and image.kernel is None
    assert not image.configures_itself
    assert events and events[-1].stage == "download"


def test_checksum_mismatch_is_refused_and_leaves_nothing(server, tmp_path: Path):
    cache = ImageCache(tmp_path / "images")
    with pytest.raises(LabctlError, match="checksum mismatch"):
        pull_image(f"{server}/cloud.qcow2", "0" * 64, "cloud", cache, lambda e: None)
    assert cache.list() == [] and list((tmp_path / "images").iterdir()) == []


def test_not_an_image_and_unreachable(server, tmp_path: Path):
    cache = ImageCache(tmp_path / "images")
    with pytest.raises(LabctlError, match="is not a qcow2 image"):
        pull_image(f"{server}/page.html", "0" * 64, "page", cache, lambda e: None)
    with pytest.raises(LabctlError, match="cannot download"):
        pull_image(f"{server}/missing.qcow2", "0" * 64, "x", cache, lambda e: None)
    with pytest.raises(LabctlError, match="is not a sha256"):
        pull_image(f"{server}/cloud.qcow2", "abc", "x", cache, lambda e: None)


def test_a_raw_disk_is_kept_as_qcow2_and_sha512_works(server, tmp_path: Path):
    raw = bytearray(1 << 20)
    raw[510:512] = b"\x55\xaa"  # a partition table's signature
    (Path(server.www) / "disk.raw").write_bytes(bytes(raw))
    cache = ImageCache(tmp_path / "images")
    image = pull_image(f"{server}/disk.raw", hashlib.sha512(raw).hexdigest(), "rawdisk", cache,
                       lambda e: None, algorithm="sha512")
    assert image.disk.read_bytes().startswith(b"QFI\xfb") and image.manifest["format"] == "raw"
    assert image.sha256 == hashlib.sha256(raw).hexdigest()  # the cache's key stays sha256


def test_the_catalogue_resolves_from_the_distributions_checksum_file(server):
    from labctl.images.catalogue import resolve

    www = Path(server.www)
    (www / "SHA512SUMS").write_text(f"{'ab' * 64}  debian-12-genericcloud-amd64.qcow2\n"
                                    f"{'cd' * 64}  debian-12-nocloud-amd64.qcow2\n")
    (www / "SHA256SUMS").write_text(f"{'ef' * 32} *ubuntu-24.04-server-cloudimg-amd64.img\n")
    (www / "Fedora-Cloud-41-1.4-x86_64-CHECKSUM").write_text(
        "# Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2: 123 bytes\n"
        f"SHA256 (Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2) = {'12' * 32}\n")
    debian = resolve("debian-12-cloud", mirror=server)
    assert debian.url == f"{server}/debian-12-genericcloud-amd64.qcow2"
    assert (debian.algorithm, debian.checksum) == ("sha512", "ab" * 64)
    ubuntu = resolve("ubuntu-24.04-cloud", mirror=server + "/")
    assert ubuntu.url.endswith("/ubuntu-24.04-server-cloudimg-amd64.img")
    assert (ubuntu.algorithm, ubuntu.checksum) == ("sha256", "ef" * 32)
    fedora = resolve("fedora-41-cloud", mirror=server)
    assert fedora.url.endswith("Fedora-Cloud-Base-Generic-41-1.4.x86_64.qcow2")
    assert fedora.checksum == "12" * 32
    with pytest.raises(LabctlError, match="is not in the image catalogue"):
        resolve("windows-11", mirror=server)
    (www / "SHA512SUMS").write_text("nothing here\n")
    with pytest.raises(LabctlError, match="lists no file like"):
        resolve("debian-12-cloud", mirror=server)


@pytest.mark.parametrize("options", [["-b", "/etc/shadow", "-F", "raw"],
                                     ["-o", "data_file=/etc/shadow,data_file_raw=on"]])
def test_a_qcow2_that_points_at_a_host_path_is_refused(server, tmp_path: Path, options):
    """A backing file or external data file names a path on the instructor's
    machine: qemu would read it into the student's VM (and libvirt chown it)."""
    import subprocess

    made = server.www / "sneaky.qcow2"
    target = tmp_path / "stand-in"
    target.write_bytes(b"\0" * 65536)
    options = [o.replace("/etc/shadow", str(target)) for o in options]
    subprocess.run(["qemu-img", "create", "-f", "qcow2", *options, str(made), "64K"],
                   check=True, capture_output=True)
    data = made.read_bytes()
    cache = ImageCache(tmp_path / "images")
    with pytest.raises(LabctlError, match="is a qcow2 image with an? (backing|external)"):
        pull_image(f"{server}/sneaky.qcow2", hashlib.sha256(data).hexdigest(), "sneaky",
                   cache, lambda e: None)
    assert cache.list() == []
