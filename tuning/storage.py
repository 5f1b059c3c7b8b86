"""Where a study lives: a local or shared directory, or a URI that pyarrow opens (s3://, gs://,
abfs://, hdfs://, file://), the same locations Ray Tune accepts as `storage_path`.

On a multi-node cluster every node writes checkpoints there and a restarted trial reads them from
whichever node it lands on, so the location must be shared (NFS/EFS/a PVC) or an object store.
The driver's own files (study.json, tracking/mlflow_runs.json, summary.json) go through the same filesystem.
"""
from __future__ import annotations

import json
import os
import posixpath
import urllib.parse
import uuid

import pyarrow.fs as pafs

from smart.config import ConfigError


class Storage:
    """A directory on a pyarrow filesystem; picklable (reopened from its location)."""

    def __init__(self, location: str, key: str = "storage"):
        if "://" not in location:
            location = os.path.abspath(location)
        self.location = location.rstrip("/")
        try:
            self._fs, self._root = pafs.FileSystem.from_uri(self.location) if "://" in self.location \
                else (pafs.LocalFileSystem(), self.location)
        except Exception as exc:  # pyarrow raises ArrowInvalid / OSError / ValueError
            raise ConfigError(key, f"cannot open {location!r}: {str(exc).splitlines()[0]}") from None

    def __getstate__(self):
        return {"location": self.location}

    def __setstate__(self, state):
        self.__init__(state["location"])

    def __repr__(self) -> str:
        return self.location

    def sub(self, *parts: str) -> "Storage":
        if "://" not in self.location:
            return Storage(os.path.join(self.location, *parts))
        url = urllib.parse.urlsplit(self.location)  # options such as ?endpoint_override=... stay at the end
        return Storage(url._replace(path=posixpath.join(url.path, *parts)).geturl())

    @property
    def local_path(self) -> str | None:
        """The directory as a local path, or None on a remote filesystem."""
        return self._root if isinstance(self._fs, pafs.LocalFileSystem) else None

    def _path(self, name: str) -> str:
        return posixpath.join(self._root, name) if name else self._root

    def exists(self, name: str = "") -> bool:
        return self._fs.get_file_info(self._path(name)).type != pafs.FileType.NotFound

    def read_json(self, name: str):
        with self._fs.open_input_stream(self._path(name)) as fh:
            return json.loads(fh.read().decode("utf-8"))

    def write_json(self, name: str, obj) -> None:
        """Atomic: a temp file renamed over the target (an object store's single PUT is atomic)."""
        self._fs.create_dir(self._root, recursive=True)
        data = json.dumps(obj, indent=2).encode("utf-8")
        target = self._path(name)
        if not isinstance(self._fs, pafs.LocalFileSystem):
            with self._fs.open_output_stream(target) as fh:
                fh.write(data)
            return
        tmp = f"{target}.tmp{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
