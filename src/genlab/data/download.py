"""Checksum-verified downloads that never leave a partial or wrong file in the cache."""

from __future__ import annotations

import hashlib
import os
import urllib.error
import urllib.request
from pathlib import Path

from genlab.errors import GenlabError
from genlab.runtime import atomic_path, progress, sha256_file


class SourceUnavailable(GenlabError, RuntimeError):
    """A data source could not be fetched; the message names the source, the cause and the
    offline alternatives."""


OFFLINE_IMAGES = "synthetic-digits (embedded), synthetic-rgb (embedded), idx:<dir> (e.g. idx:/usr/share/datasets/fashion-mnist), folder:<dir>"
OFFLINE_TEXT = "pydoc (embedded), path:<file> (e.g. path:../shared/data/tinyshakespeare.txt)"


class _WriteFailed(Exception):
    """A write to the local cache failed (a full disk): not the source's fault."""

    def __init__(self, cause: OSError):
        super().__init__(str(cause))
        self.cause = cause


def fetch(url: str, dest: str | Path, sha256: str | None, *, source: str, offline_alternatives: str,
          timeout: float = 30.0) -> Path:
    """Download `url` to `dest` unless a file with the right sha256 is already there.

    The bytes go to a temp file beside `dest` and are renamed onto it only when the checksum
    matches, so a failed or corrupted download leaves nothing in the cache.
    """
    dest = Path(dest).expanduser()
    if dest.exists() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    h = hashlib.sha256()
    try:
        with atomic_path(dest) as tmp:
            try:
                # unbuffered: a full disk fails a write here, not the close, where it would look like the network
                with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb", buffering=0) as out:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with progress(desc=f"download {source}", total=total, unit="B", unit_scale=True) as bar:
                        while block := resp.read(1 << 16):
                            try:
                                view = memoryview(block)
                                while view:  # a raw write may write part of the block
                                    view = view[out.write(view):]
                            except OSError as exc:  # our disk, not the source: say so
                                raise _WriteFailed(exc) from exc
                            h.update(block)
                            bar.update(len(block))
            except _WriteFailed as failed:
                from genlab.runtime import describe_write_error

                raise OSError(f"cannot write {dest}: {describe_write_error(failed.cause, dest.parent)}; "
                              f"nothing was cached") from None
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                raise SourceUnavailable(
                    f"data source '{source}' is unreachable: could not download {url} ({reason}). "
                    f"Offline alternatives: {offline_alternatives}"
                ) from None
            if sha256 is not None and h.hexdigest() != sha256:
                raise SourceUnavailable(
                    f"data source '{source}': checksum mismatch for {url} "
                    f"(expected sha256 {sha256}, got {h.hexdigest()}); nothing was cached. "
                    f"Offline alternatives: {offline_alternatives}"
                )
    finally:
        # atomic_path already removed the temp file on failure; keep the cache folder tidy
        if dest.parent.exists() and not any(dest.parent.iterdir()):
            os.rmdir(dest.parent)
    return dest
