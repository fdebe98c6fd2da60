"""Reading the knowledge base's YAML files into their schema models.

One :class:`DataReader` reads every file of one load: it hashes what it read (the
knowledge base's digest) and collects every schema problem instead of stopping at the
first, so a broken base is reported whole.
"""

from __future__ import annotations

import hashlib
import typing
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from hipdx.errors import KnowledgeBaseError, Problem


def default_data_dir() -> Path:
    """The folder of the bundled knowledge base."""
    return Path(str(resources.files("hipdx.knowledge") / "data"))


class DataReader:
    """Reads YAML files of one folder into schema models, collecting problems."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.problems: list[Problem] = []
        self._digest = hashlib.sha256()

    @property
    def digest(self) -> str:
        """A short hash of every file read so far, in order."""
        return self._digest.hexdigest()[:16]

    def read(self, name: str, model: type[BaseModel]) -> typing.Any:
        """The file ``name`` validated as ``model``; None (and problems recorded) if invalid.

        Raises
        ------
        KnowledgeBaseError
            The file cannot be read or is not YAML at all.
        """
        path = self.data_dir / name
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise KnowledgeBaseError(f"cannot read knowledge-base file {path}: {exc.strerror}") from None
        self._digest.update(name.encode() + b"\0" + text)
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise KnowledgeBaseError(f"{name} is not valid YAML: {exc}") from None
        try:
            return model.model_validate(raw)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                self.problems.append(Problem(f"{name}: {_location(raw, err['loc'])}", _message(err)))
            return None


def _message(err: typing.Any) -> str:
    return str(err["msg"]).removeprefix("Value error, ")


def _location(raw: typing.Any, loc: tuple[typing.Any, ...]) -> str:
    """A readable path: list positions replaced by the item's ``id`` where it has one."""
    parts = []
    node = raw
    for part in loc:
        if isinstance(part, str) and ("[" in part or "-" in part and part.startswith("function")):
            continue  # pydantic's internal validator names
        label = str(part)
        if isinstance(node, list) and isinstance(part, int) and part < len(node):
            item = node[part]
            if isinstance(item, dict) and "id" in item:
                label = str(item["id"])
            node = item
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            node = None
        parts.append(label)
    return ".".join(parts)
