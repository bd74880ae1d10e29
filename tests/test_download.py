"""`fetch`: real HTTP on 127.0.0.1 (a closed port, a corrupted file, a good file); no network."""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from genlab.data.download import OFFLINE_TEXT, SourceUnavailable, fetch

PAYLOAD = b"First Citizen:\nBefore we proceed any further, hear me speak.\n" * 50
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """A local http.server in a thread, serving `tmp_path/www`; yields (base_url, folder, hits)."""
    www = tmp_path / "www"
    www.mkdir()
    hits: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(www), **kw)

        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            super().do_GET()

        def log_message(self, *a):  # keep test output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www, hits
    finally:
        httpd.shutdown()
        httpd.server_close()


def cached_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if p.is_file()] if cache.exists() else []


def test_closed_port_is_source_unavailable_and_caches_nothing(tmp_path):
    cache = tmp_path / "cache"
    url = f"http://127.0.0.1:{closed_port()}/input.txt"
    with pytest.raises(SourceUnavailable) as err:
        fetch(url, cache / "tinyshakespeare.txt", PAYLOAD_SHA, source="tinyshakespeare",
              offline_alternatives=OFFLINE_TEXT, timeout=5)
    msg = str(err.value)
    assert "'tinyshakespeare'" in msg and "unreachable" in msg and url in msg
    assert "pydoc" in msg and "path:" in msg  # the offline alternatives are named
    assert "\n" not in msg
    assert cached_files(cache) == []


def test_corrupted_file_is_a_checksum_error_and_caches_nothing(tmp_path, server):
    base, www, hits = server
    (www / "input.txt").write_bytes(PAYLOAD[:-1] + b"?")  # one byte off
    cache = tmp_path / "cache"
    with pytest.raises(SourceUnavailable) as err:
        fetch(f"{base}/input.txt", cache / "input.txt", PAYLOAD_SHA, source="tinyshakespeare",
              offline_alternatives=OFFLINE_TEXT)
    msg = str(err.value)
    assert "checksum mismatch" in msg and "'tinyshakespeare'" in msg and PAYLOAD_SHA in msg
    assert "pydoc" in msg
    assert hits == ["/input.txt"]
    assert cached_files(cache) == []


def test_good_file_is_cached_and_not_downloaded_again(tmp_path, server):
    base, www, hits = server
    (www / "input.txt").write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "input.txt"
    got = fetch(f"{base}/input.txt", dest, PAYLOAD_SHA, source="tinyshakespeare", offline_alternatives=OFFLINE_TEXT)
    assert got == dest and dest.read_bytes() == PAYLOAD
    assert cached_files(tmp_path / "cache") == [dest]  # no temp file left beside it
    again = fetch(f"{base}/input.txt", dest, PAYLOAD_SHA, source="tinyshakespeare", offline_alternatives=OFFLINE_TEXT)
    assert again == dest
    assert hits == ["/input.txt"]  # the second call was served from the cache


def test_a_corrupted_cached_file_is_downloaded_again(tmp_path, server):
    base, www, hits = server
    (www / "input.txt").write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "input.txt"
    dest.parent.mkdir()
    dest.write_bytes(b"truncated")
    fetch(f"{base}/input.txt", dest, PAYLOAD_SHA, source="tinyshakespeare", offline_alternatives=OFFLINE_TEXT)
    assert dest.read_bytes() == PAYLOAD and len(hits) == 1


def test_http_error_is_source_unavailable(tmp_path, server):
    base, _, _ = server
    with pytest.raises(SourceUnavailable, match="(?i)'tinyshakespeare' is unreachable.*not found"):
        fetch(f"{base}/missing.txt", tmp_path / "cache" / "x.txt", PAYLOAD_SHA, source="tinyshakespeare",
              offline_alternatives=OFFLINE_TEXT)
    assert cached_files(tmp_path / "cache") == []


FETCH = """
import sys
from genlab.data.download import OFFLINE_TEXT, fetch
fetch(sys.argv[1], sys.argv[2], sys.argv[3], source="tinyshakespeare", offline_alternatives=OFFLINE_TEXT)
"""


def test_full_disk_is_our_write_error_not_an_unreachable_source(tmp_path, server):
    """A full disk (here: a 1,000-byte file size limit) is named as a local write failure, not
    blamed on the source, and caches nothing (issue 17)."""
    import resource
    import subprocess
    import sys

    base, www, _ = server
    (www / "input.txt").write_bytes(PAYLOAD)
    dest = tmp_path / "cache" / "input.txt"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # Python ignores SIGXFSZ: writes fail with EFBIG

    proc = subprocess.run([sys.executable, "-c", FETCH, f"{base}/input.txt", str(dest), PAYLOAD_SHA],
                          capture_output=True, text=True, timeout=60, preexec_fn=limit)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last == f"OSError: cannot write {dest}: File too large; nothing was cached", proc.stderr
    assert not (tmp_path / "cache").exists()
