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
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
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
