"""``hipdx mri``: analyse a hip MRI study, segment edema inside a bone mask, write a phantom.

Every bad input raises :class:`~hipdx.errors.ImagingError` or :class:`~hipdx.errors.InputError`
with a message naming the file and the problem; the main command line prints it and exits
with the error's code.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer

from hipdx.cli_support import SERIES_HELP, SUPPORTS, DataFormat, OutputFormat, ReportingCommand, series_kinds
from hipdx.errors import ImagingError, InputError
from hipdx.imaging.volume import Volume
from hipdx.output import check_outputs, write_file, write_folder

mri_app = typer.Typer(help="Hip MRI: femoral heads, bone marrow edema, subchondral bands.", no_args_is_help=True)

FORCE_HELP = "Replace output files that exist (never an input, never through a symbolic link)."
#: Suffixes of the edema mask written by ``mri edema --out``.
MASK_SUFFIXES = (".nii", ".nii.gz")


def _read_image(path: Path, what: str) -> Volume:
    from hipdx.imaging.io import read_nifti, read_study

    if not path.exists():
        raise InputError(f"{what} not found: {path}")
    if path.is_file() and (path.name.lower().endswith(".nii") or path.name.lower().endswith(".nii.gz")):
        return read_nifti(path)
    volumes = list(read_study(path).volumes)
    if len(volumes) != 1:
        raise ImagingError(f"{what} {path} holds {len(volumes)} series; give one image")
    return volumes[0]


#: Largest difference (mm, or direction cosine) between a mask's and its image's affine: the
#: real SIJ masks differ from their images by ~1e-4; another case's mask of the same shape by mm.
GRID_TOLERANCE = 0.01


def _read_mask(path: Path, what: str, like: Volume) -> np.ndarray:
    """A mask on the grid of ``like``: same shape and the same voxel-to-patient mapping, else an error."""
    mask = _read_image(path, what)
    if mask.array.shape != like.array.shape:
        raise ImagingError(f"{what} {path} has shape {mask.array.shape}, the image {like.array.shape}: not the same grid")
    difference = float(np.abs(mask.affine - like.affine).max())
    if difference > GRID_TOLERANCE:
        raise ImagingError(
            f"{what} {path} is not on the image's grid (voxel-to-patient mapping differs by up to {difference:.3g} "
            "mm): is it from another scan? Resample it onto the image first"
        )
    return mask.array > 0.5


def _write_mask(mask: np.ndarray, like: Volume, out: Path, force: bool) -> None:
    """Write a mask as NIfTI on the grid of ``like`` (LPS affine converted to RAS), atomically."""
    import nibabel as nib

    ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ like.affine
    image = nib.Nifti1Image(mask.astype(np.uint8).transpose(2, 1, 0), ras)
    write_file(out, lambda temporary: nib.save(image, str(temporary)), option="--out", force=force)


@mri_app.command("edema", cls=ReportingCommand, epilog=SUPPORTS)
def edema_command(
    stir_image: Path = typer.Argument(..., help="Fluid-sensitive image (NIfTI file or DICOM folder)"),
    bone_mask: Path = typer.Option(..., "--bone-mask", help="Mask of the bone to search (same grid)"),
    reference: Path | None = typer.Option(None, "--reference", help="Mask of normal marrow (same grid)"),
    out: Path | None = typer.Option(None, "--out", help="Write the edema mask here (NIfTI: OUT.nii or OUT.nii.gz)"),
    output_format: DataFormat = typer.Option(DataFormat.text, "--format"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Segment bone marrow edema inside a bone mask (threshold relative to normal marrow)."""
    from hipdx.imaging.edema import segment_edema

    if out is not None and not out.name.lower().endswith(MASK_SUFFIXES):
        raise InputError(f"--out {out}: the edema mask is written as NIfTI; give a name ending in "
                         f"{' or '.join(MASK_SUFFIXES)}")
    check_outputs({"--out": out}, inputs=[stir_image, bone_mask, reference], force=force)
    stir = _read_image(stir_image, "image")
    bone = _read_mask(bone_mask, "bone mask", stir)
    ref = _read_mask(reference, "reference region", stir) if reference is not None else None
    result = segment_edema(stir, bone, ref)
    if out is not None:
        _write_mask(result.mask, stir, out, force)
    payload = {
        "volume_ml": round(result.volume_ml, 3),
        "fraction_of_bone": round(result.fraction, 4),
        "signal_ratio": round(result.signal_ratio, 3) if result.signal_ratio else None,
        "threshold": round(result.threshold, 3),
        "reference": {
            "source": result.reference.source,
            "median": round(result.reference.median, 3),
            "q1": round(result.reference.q1, 3),
            "q3": round(result.reference.q3, 3),
        },
        "iqr_factor": result.iqr_factor,
        "mask": str(out) if out else None,
    }
    if output_format is DataFormat.json:
        typer.echo(json.dumps(payload, indent=2))
    else:
        ratio = f", signal {payload['signal_ratio']} x reference" if payload["signal_ratio"] else ""
        typer.echo(f"Edema {payload['volume_ml']} mL ({100 * result.fraction:.1f}% of the bone mask){ratio}")
        rule = "k by Hepburn's VHI rule" if reference is not None else "fixed k"
        typer.echo(
            f"Threshold {payload['threshold']} (Q3 + {result.iqr_factor} x IQR of the reference marrow, "
            f"{result.reference.source}; {rule})"
        )


@mri_app.command("analyze", cls=ReportingCommand, epilog=SUPPORTS)
def analyze_command(
    directory: Path = typer.Argument(..., help="Folder of DICOM files or NIfTI files of one hip MRI study"),
    output_format: OutputFormat = typer.Option(OutputFormat.text, "--format"),
    overlays: Path | None = typer.Option(None, "--overlays", help="Write PNG overlays of representative slices here"),
    seg: Path | None = typer.Option(
        None, "--seg", help="Write the femoral heads, edema, acetabular edema and effusion as a DICOM SEG file (OUT.dcm)"
    ),
    sr: Path | None = typer.Option(
        None, "--sr", help="Write the measurements as a DICOM SR (TID 1500) file; it references the --seg segments"
    ),
    series: list[str] | None = typer.Option(None, "--series", metavar="SERIES=KIND", help=SERIES_HELP),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Find both femoral heads, measure edema and subchondral bands.

    Among several T1 or fluid-sensitive series the analysis chooses (coronal, no fat
    suppression, before contrast, both hips in view; STIR before fat-saturated T2/PD) and says
    which and why; --series changes what a series counts as.
    """
    from hipdx.imaging.analyze import analyze_read_study
    from hipdx.imaging.io import read_study

    if not directory.exists():
        raise InputError(f"study not found: {directory}")
    for option, path in (("--seg", seg), ("--sr", sr)):
        if path is not None and path.is_dir():
            raise InputError(f"{option} {path} is a folder; give a file name such as {path / 'out.dcm'}")
    if overlays is not None and overlays.exists() and not overlays.is_dir():
        raise InputError(f"--overlays {overlays} is a file; give a folder")
    check_outputs({"--seg": seg, "--sr": sr, "--overlays": overlays}, inputs=[directory], force=force)
    kinds = series_kinds(series, "--series")
    study = read_study(directory, kinds=kinds)
    analysis = analyze_read_study(study)
    written: list[Path] = []
    if overlays is not None or seg is not None or sr is not None:
        from hipdx.imaging.export import build_dicom_outputs, record_files_written, write_dicom

        # SEG and SR are built before anything is written: a refusal leaves no partial output.
        outputs = build_dicom_outputs(study, analysis, seg=seg is not None, sr=sr is not None)
        if outputs.not_built:
            typer.echo(f"not written: {outputs.not_built}", err=True)
        if overlays is not None:
            from hipdx.report.overlay import write_overlays

            with write_folder(overlays, option="--overlays", force=force, inputs=[directory]) as staging:
                drawn = write_overlays(analysis, staging)
            written += [overlays / p.relative_to(staging) for p in drawn]
        for dataset, path, option in ((outputs.segmentation, seg, "--seg"), (outputs.report, sr, "--sr")):
            if dataset is not None and path is not None:
                written.append(write_file(path, lambda temporary, d=dataset: write_dicom(d, temporary),
                                          option=option, force=force))
        record_files_written(analysis, written)
    if output_format is OutputFormat.json:
        typer.echo(analysis.model_dump_json(indent=2))
        return
    from hipdx.report.mri import format_mri_analysis

    typer.echo(format_mri_analysis(analysis, markdown=output_format is OutputFormat.markdown))
    for path in written:
        typer.echo(f"wrote {path}", err=True)


@mri_app.command("phantom", cls=ReportingCommand, epilog=SUPPORTS)
def phantom_command(
    outdir: Path = typer.Argument(..., help="Folder to write the synthetic study into"),
    seed: int = typer.Option(0, "--seed"),
    side: str = typer.Option("left", "--side", help="left or right"),
    edema_ml: float = typer.Option(0.0, "--edema-ml"),
    band_mm: float = typer.Option(0.0, "--band-mm"),
    noise: float = typer.Option(20.0, "--noise", help="Signal-to-noise ratio of marrow"),
    force: bool = typer.Option(False, "--force", help=FORCE_HELP),
) -> None:
    """Write a synthetic hip study (coronal T1 and STIR DICOM) and truth.json.

    Into an empty or new folder; files of the same names there are replaced only with --force.
    """
    if side not in ("left", "right"):
        raise InputError(f"--side must be left or right, not {side!r}")
    try:
        from hipdx.imaging.phantom import PhantomSpec, write_phantom
    except ImportError:
        raise ImagingError("the phantom generator is not available in this version") from None
    check_outputs({"OUTDIR": outdir}, force=force)
    label = f"the phantom to {outdir}"
    try:
        with write_folder(outdir, option="OUTDIR", force=force, label=label) as staging:
            truth = write_phantom(staging, PhantomSpec(seed=seed, side=side, edema_ml=edema_ml, band_mm=band_mm,
                                                         snr=noise))
    except OSError as exc:
        raise InputError(f"cannot write {label}: {exc.strerror or exc}") from None
    typer.echo(f"wrote a synthetic study to {outdir}")
    if truth is not None and hasattr(truth, "model_dump_json"):
        typer.echo(truth.model_dump_json(indent=2))
