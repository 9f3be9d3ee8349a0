"""The ``maa`` command: one Typer app; every command is listed here, its code in
``maa/cli/<command>.py``.

Command modules parse options and call one stage function in :mod:`maa.stages`; they import
the stages inside the command body so that ``maa --help`` does not load torch and diffusers.
"""

from __future__ import annotations

import warnings

import typer

from maa import __version__
from maa.cli import (
    clap_score,
    continue_,
    corpus,
    distill,
    evaluate,
    generate,
    import_,
    info,
    inpaint,
    manifest,
    reconstruct,
    reprogram,
    super_resolve,
    train_clap,
    train_ldm,
    train_vae,
    train_vocoder,
    vocode,
)
from maa.cli.common import handle_errors, keep_output_on_failure

app = typer.Typer(
    name="maa",
    help="Make-An-Audio toolkit: prompt enhancement, spectrogram VAE, latent diffusion, "
    "vocoder, generation and evaluation — each stage a command over Parquet manifests and "
    "bundles.",
    rich_markup_mode="rich",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# (command name, function), in the order `maa --help` lists them
COMMANDS = [
    ("info", info.info_cmd),
    ("distill", distill.distill_cmd),
    ("distill-merge", distill.distill_merge_cmd),
    ("reprogram", reprogram.reprogram_cmd),
    ("train-clap", train_clap.train_clap_cmd),
    ("clap-score", clap_score.clap_score_cmd),
    ("train-vae", train_vae.train_vae_cmd),
    ("reconstruct", reconstruct.reconstruct_cmd),
    ("train-ldm", train_ldm.train_ldm_cmd),
    ("generate", generate.generate_cmd),
    ("inpaint", inpaint.inpaint_cmd),
    ("continue", continue_.continue_cmd),
    ("super-resolve", super_resolve.super_resolve_cmd),
    ("train-vocoder", train_vocoder.train_vocoder_cmd),
    ("vocode", vocode.vocode_cmd),
    ("evaluate", evaluate.evaluate_cmd),
]
GROUPS = [
    ("corpus", corpus.corpus_app),
    ("manifest", manifest.manifest_app),
    ("import", import_.import_app),  # import_.py: `import` is a Python keyword
]
# the folder each train-* command writes: left as it was when the run fails at its start
TRAIN_OUTPUT = {
    "train-clap": "out",
    "train-vae": "out",
    "train-ldm": "bundle",
    "train-vocoder": "out",
}

for _name, _func in COMMANDS:
    if _name in TRAIN_OUTPUT:
        _func = keep_output_on_failure(_func, TRAIN_OUTPUT[_name])
    app.command(_name)(handle_errors(_func))
for _name, _group in GROUPS:
    app.add_typer(_group, name=_name)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"maa {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Make-An-Audio toolkit."""
    warnings.formatwarning = _one_line_warning


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings reach the user as one line, without the source line that raised them."""
    return f"note: {message}\n"


def main() -> None:
    app()


if __name__ == "__main__":
    main()
