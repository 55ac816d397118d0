"""A study folder: `name` under a storage root (analysis/storage.py), with its local folder
(the folder itself, or the mirror of a remote one). Everything a study writes goes
through it: study.yaml, the Tune experiments inside, a ladder's records.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from analysis.record import STUDY_FILE, StudyRecord
from analysis.storage import Storage, split_study_uri
from study.storage import tune_filesystem


@dataclass
class Place:
    storage: Storage
    name: str

    @classmethod
    def open(cls, experiment: str, endpoint: str | None = None) -> Place:
        """An existing study folder given as a path or URI, checked to answer and pulled."""
        storage, name = split_study_uri(experiment, endpoint)
        storage.check()
        place = cls(storage, name)
        place.pull()
        return place

    @property
    def local(self) -> Path:
        return self.storage.local_root / self.name

    @property
    def uri(self) -> str:
        return self.storage.uri(self.name)

    def save(self, record: StudyRecord) -> None:
        record.write(self.local)
        self.storage.push(self.name, STUDY_FILE)

    def pull(self) -> Path:
        return self.storage.pull(self.name)

    def tune_location(self, rel: str = "") -> tuple[str, str, object | None]:
        """(storage_path, name, filesystem) of the Tune experiment at `rel`."""
        parts = [self.name, *([rel] if rel else [])]
        if not self.storage.remote:
            folder = self.local / rel if rel else self.local
            return str(folder.parent), folder.name, None
        return (self.storage.path(*parts[:-1]), parts[-1], tune_filesystem(self.storage))
