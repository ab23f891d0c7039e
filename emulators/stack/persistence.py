"""Keeping the emulators' data across restarts (`make dev KEEP_DATA=dir`).

Firestore: the emulator jar (1.19.9) accepts `--export-on-exit` but was seen to write
nothing on SIGTERM or on its own `/shutdown`; its REST export
(`POST /emulator/v1/projects/P:export`, what `firebase emulators:export` calls) does
work, and `--import-data <export>.overall_export_metadata` loads one at start. So the
launcher exports the local project before it stops the stack, and the next start
imports the newest complete export. Each save is a new folder; older ones are removed
only after the new one is complete, so a failed save keeps the previous one.

Storage: the storage emulator keeps its objects on disk (STORAGE_BASE) instead of in
memory, so release files stay next to the Firestore documents that describe them. It
runs on a working copy of the saved folder, which replaces the saved one only after the
Firestore export succeeded: the two saves always belong to the same moment (a release's
document and its files), also after a crash.

Not kept: the Stripe double, the Cloud Tasks queue and maildev start empty. Data is
saved when the stack stops normally (Ctrl-C, `make stop`), not when the launcher is
killed with SIGKILL or the machine stops.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from emulators.stack.ports import HOST

_METADATA = ".overall_export_metadata"
_PREFIX = "export-"


@dataclass(frozen=True)
class KeptData:
    directory: Path

    @property
    def firestore_dir(self) -> Path:
        return self.directory / "firestore"

    @property
    def storage_dir(self) -> Path:
        """Where the running storage emulator keeps its files (a working copy)."""
        return self.directory / "storage-running"

    @property
    def saved_storage_dir(self) -> Path:
        return self.directory / "storage"

    def prepare_storage(self) -> None:
        """Start the working copy from the last save (or empty)."""
        shutil.rmtree(self.storage_dir, ignore_errors=True)
        if self.saved_storage_dir.is_dir():
            shutil.copytree(self.saved_storage_dir, self.storage_dir, symlinks=True)
        else:
            self.storage_dir.mkdir(parents=True)

    def save_storage(self) -> None:
        """Make the (stopped) emulator's working copy the saved one."""
        if not self.storage_dir.is_dir():
            return
        previous = self.directory / "storage-previous"
        shutil.rmtree(previous, ignore_errors=True)
        if self.saved_storage_dir.exists():
            self.saved_storage_dir.rename(previous)
        self.storage_dir.rename(self.saved_storage_dir)
        shutil.rmtree(previous, ignore_errors=True)

    def exports(self) -> list[Path]:
        """Complete Firestore exports (their metadata files), oldest first."""
        if not self.firestore_dir.is_dir():
            return []
        found = [
            folder / f"{folder.name}{_METADATA}"
            for folder in self.firestore_dir.iterdir()
            if folder.name.startswith(_PREFIX)
        ]
        return sorted((path for path in found if path.is_file()), key=lambda p: p.parent.name)

    def firestore_import(self) -> Path | None:
        """The newest complete export, to start Firestore from (None: start empty)."""
        exports = self.exports()
        return exports[-1] if exports else None

    def export_firestore(self, port: int, project: str, *, timeout: float = 60.0) -> Path:
        """Export `project`'s documents from the running emulator; returns the export's
        folder. Raises OSError (urllib's errors are OSErrors) when it fails."""
        self.firestore_dir.mkdir(parents=True, exist_ok=True)
        name = f"{_PREFIX}{time.strftime('%Y%m%dT%H%M%S')}-{time.time_ns() % 10**9:09d}"
        body = {
            "database": f"projects/{project}/databases/(default)",
            "export_directory": str(self.firestore_dir.resolve()),
            "export_name": name,
        }
        request = urllib.request.Request(
            f"http://{HOST}:{port}/emulator/v1/projects/{project}:export",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
        folder = self.firestore_dir / name
        if not (folder / f"{name}{_METADATA}").is_file():
            raise OSError(f"the emulator answered but wrote no export into {folder}")
        for older in self.exports()[:-1]:
            shutil.rmtree(older.parent, ignore_errors=True)
        return folder
