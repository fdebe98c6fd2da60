"""Reading the knowledge base's YAML files into their schema models.

One :class:`DataReader` reads every file of one load: it hashes what it read (the
knowledge base's digest) and collects every schema problem instead of stopping at the
first, so a broken base is reported whole. Every file is parsed by :func:`load_yaml`,
which refuses a key given twice in one mapping: plain YAML keeps the last silently, so a
second, shorter entry would replace a fuller one without anyone noticing.
"""

from __future__ import annotations

import hashlib
import typing
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from hipdx.errors import KnowledgeBaseError, Problem


class _UniqueKeys:
    """What a safe YAML loader adds to record every key given twice in one mapping.

    ``duplicates`` collects (key, first line, second line), 1-based.
    """

    duplicates: list[tuple[str, int, int]]

    def __init__(self, stream: bytes) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[typing.Any, typing.Any]:
        first_line: dict[typing.Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<`` merges another mapping on purpose
            key = self.construct_object(key_node, deep=deep)
            line = key_node.start_mark.line + 1
            try:
                earlier = first_line.get(key)
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if earlier is None:
                first_line[key] = line
            else:  # also on the same line, as in a flow mapping ``{a: 1, a: 2}``
                self.duplicates.append((str(key), earlier, line))
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class _UniqueKeyLoader(_UniqueKeys, yaml.SafeLoader):
    """The pure-Python safe loader with the duplicate check; its error messages quote the text."""


#: libyaml's parser when PyYAML was built with it (about five times faster on the knowledge base);
#: the same constructor and resolver, so the same data (pinned by a test on every bundled file)
_FastUniqueKeyLoader: type | None = (
    type("_FastUniqueKeyLoader", (_UniqueKeys, yaml.CSafeLoader), {}) if getattr(yaml, "__with_libyaml__", False) else None
)


def load_yaml(text: bytes, name: str) -> typing.Any:
    """Parse one knowledge-base file, refusing a key given twice in the same mapping.

    Parameters
    ----------
    text
        The file's bytes.
    name
        The file's name relative to the data folder, for the messages.

    Raises
    ------
    KnowledgeBaseError
        The text is not YAML, or a mapping repeats a key; each repeat is listed with the
        key and both line numbers.

    Examples
    --------
    >>> load_yaml(b"a: 1\\nb: 2\\na: 3\\n", "x.yaml")
    Traceback (most recent call last):
    ...
    hipdx.errors.KnowledgeBaseError: x.yaml repeats a key: the later entry would silently replace the earlier one
      - x.yaml: key 'a' is given twice, on line 1 and line 3
    """
    loader = _parse(text, _FastUniqueKeyLoader or _UniqueKeyLoader)
    if isinstance(loader, yaml.YAMLError):
        # the message of the pure-Python parser, which quotes the offending line, whichever parsed first
        loader = _parse(text, _UniqueKeyLoader)
    if isinstance(loader, yaml.YAMLError):
        raise KnowledgeBaseError(f"{name} is not valid YAML: {loader}") from None
    raw = loader.data
    if loader.duplicates:
        raise KnowledgeBaseError(
            f"{name} repeats a key: the later entry would silently replace the earlier one",
            [
                Problem(name, f"key {key!r} is given twice, " + (f"on line {first}" if first == second else f"on line {first} and line {second}"))
                for key, first, second in loader.duplicates
            ],
        )
    return raw


def _parse(text: bytes, kind: type) -> typing.Any:
    """A loader of ``kind`` that has parsed ``text`` (its ``data`` and ``duplicates``), or the YAML error."""
    loader = kind(text)
    try:
        loader.data = loader.get_single_data()
        return loader
    except yaml.YAMLError as exc:
        return exc
    finally:
        loader.dispose()


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
            The file cannot be read, is not YAML at all or repeats a key (:func:`load_yaml`).
        """
        path = self.data_dir / name
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise KnowledgeBaseError(f"cannot read knowledge-base file {path}: {exc.strerror}") from None
        self._digest.update(name.encode() + b"\0" + text)
        raw = load_yaml(text, name)
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
