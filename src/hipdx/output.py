"""Files the command line writes: never over an input, never over an existing file unless asked, never
through a symbolic link, and never half-written.

Every writer of the command line (``course --plot``, ``mri analyze --seg/--sr/--overlays``,
``mri edema --out``, ``mri phantom``) goes through this module:

1. :func:`check_outputs` before any work: each output is refused (an :class:`InputError` naming
   the option and the path) when it is a symbolic link, is or lies inside an input, is also
   another output of the same command, or already exists and ``force`` is not given.
2. :func:`write_file` / :func:`write_folder` write into a temporary file (or folder) beside the
   destination, then move it into place with one rename: a reader never sees a partial file, and a
   failure leaves the destination as it was. Without ``force`` the move is a hard link, which
   fails when the name was taken meanwhile, so even a race does not overwrite.

Example
-------
>>> check_outputs({"--seg": Path("out/seg.dcm")}, inputs=[Path("study")], force=False)  # doctest: +SKIP
>>> write_file(Path("out/seg.dcm"), lambda tmp: dataset.save_as(tmp), option="--seg")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

from hipdx.errors import InputError

__all__ = ["check_outputs", "write_file", "write_folder"]


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_outputs(
    outputs: Mapping[str, Path | None], *, inputs: Sequence[Path | None] = (), force: bool = False
) -> None:
    """Refuse outputs that would overwrite an input, each other, an existing file (without
    ``force``) or go through a symbolic link.

    Parameters
    ----------
    outputs
        ``{option: path}``, e.g. ``{"--seg": Path("a.dcm"), "--sr": None}``; ``None`` is not asked for.
        A path may be a file or (``--overlays``, a phantom) a folder: a folder that exists is
        refused only when a file written into it exists (:func:`write_folder`).
    inputs
        The files and folders the command reads.
    force
        Replace existing files (never inputs, never through a link). An output folder may hold
        an input (``--overlays .`` beside the study): its files are new names, and one that
        exists is refused without ``force``.

    Raises
    ------
    InputError
        Naming the option, the path and why.
    """
    read = [Path(os.path.realpath(p)) for p in inputs if p is not None]
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if path is None:
            continue
        if path.is_symlink():
            raise InputError(f"{option} {path} is a symbolic link: hipdx does not write through links; give another name")
        real = Path(os.path.realpath(path))
        for source in read:  # an output folder may hold inputs: its files are new names (checked when written)
            if _inside(real, source):
                raise InputError(f"{option} {path} would overwrite the input {source}: give another name")
        if real in seen:
            raise InputError(f"{option} {path} is also the output of {seen[real]}: give each output its own name")
        seen[real] = option
        if path.exists() and not path.is_dir() and not force:
            raise InputError(f"{option} {path} exists: give --force to replace it, or another name")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _suffix(path: Path) -> str:
    return ".nii.gz" if path.name.lower().endswith(".nii.gz") else path.suffix


def _publish(temporary: Path, path: Path, *, option: str, force: bool) -> None:
    """Move a finished temporary file to ``path`` in one step (a link when not replacing)."""
    if path.is_symlink():
        raise InputError(f"{option} {path} is a symbolic link: hipdx does not write through links; give another name")
    if force:
        os.replace(temporary, path)
        return
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise InputError(f"{option} {path} exists: give --force to replace it, or another name") from None
    except OSError:  # a file system without hard links: check, then rename
        if path.exists():
            raise InputError(f"{option} {path} exists: give --force to replace it, or another name") from None
        os.replace(temporary, path)
        return
    temporary.unlink()


def write_file(path: Path, write: Callable[[Path], object], *, option: str, force: bool = False) -> Path:
    """Write one file atomically: ``write(temporary)`` beside ``path``, then one rename.

    The temporary file has the destination's suffix (``.nii.gz`` counts as one), for writers
    that choose the format by it.

    Raises
    ------
    InputError
        ``path`` exists (without ``force``), is a link or a folder, or cannot be written.
    """
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file name such as {path / ('out' + _suffix(path))}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{_suffix(path)}", dir=path.parent)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600 -> what a plain open() would give
        _publish(temporary, path, option=option, force=force)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


@contextlib.contextmanager
def write_folder(folder: Path, *, option: str, force: bool = False, label: str | None = None,
                 inputs: Sequence[Path | None] = ()) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write into; on success each file in it is moved
    to the same place under ``folder`` (created if needed), each in one step.

    Nothing is moved unless every file can be: a file that exists under ``folder`` (without
    ``force``) or a link on the way is refused first.

    ``label`` names the folder in "cannot write LABEL: reason" (default: its path); no file is
    moved onto or into one of ``inputs``, ``force`` or not.

    Raises
    ------
    InputError
        ``folder`` is a file or a link, a file to write exists, or the folder cannot be written.
    """
    label = label or str(folder)
    read = [Path(os.path.realpath(p)) for p in inputs if p is not None]
    if folder.is_symlink():
        raise InputError(f"{option} {folder} is a symbolic link: hipdx does not write through links; give another name")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{option} {folder} is a file; give a folder")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    except OSError as exc:
        raise InputError(f"cannot write {label}: {exc.strerror or exc}") from None
    try:
        yield staging
        files = sorted(p for p in staging.rglob("*") if p.is_file())
        for file in files:
            target = folder / file.relative_to(staging)
            for step in [*reversed(target.relative_to(folder).parents), Path(target.relative_to(folder))]:
                if (folder / step).is_symlink():
                    raise InputError(f"{option} {folder / step} is a symbolic link: hipdx does not write through links")
            if target.exists() and not force:
                raise InputError(f"{option} {target} exists: give --force to replace it, or another folder")
            real = Path(os.path.realpath(target))
            for source in read:
                if _inside(real, source):
                    raise InputError(f"{option} {target} would overwrite the input {source}: give another folder")
        try:
            for file in files:
                target = folder / file.relative_to(staging)
                target.parent.mkdir(parents=True, exist_ok=True)
                _publish(file, target, option=option, force=force)
        except OSError as exc:
            raise InputError(f"cannot write {label}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
