"""The ``ddsp-demucs`` command. Each subcommand lives in its own module with ``add_parser`` and ``run``.

The CLI only calls the library. Errors meant for the user (:class:`ddsp_demucs.DDSPDemucsError`) print as
one line and exit 2, as do OS errors such as an unwritable output folder; Ctrl-C exits 130; nothing prints a
traceback unless ``--debug`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ddsp_demucs import DDSPDemucsError, __version__

# (subcommand, module under ddsp_demucs.cli, one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("demo", "demo", "the whole pipeline on the embedded synthetic corpus, ending in runs/demo/report.html"),
    ("corpus", "corpus", "write the synthetic multitrack corpus or real remixes in the MUSDB18-HQ layout"),
    ("separate", "separate", "separate vocals from songs (Demucs or the fallback) and cache the stems"),
    ("features", "features", "F0, confidence and loudness of separated vocals; the segment gate"),
    ("build-dataset", "build_dataset", "cut the accepted windows into memory-mappable training shards with a manifest"),
    ("train", "train", "train the residual DDSP model on a dataset directory (resumes from last.ckpt)"),
    (
        "evaluate",
        "evaluate",
        "score a checkpoint against the separator alone: CSV tables, summary.json, plots, report.html",
    ),
    (
        "refine",
        "refine",
        "separate and refine the vocals of whole songs with a checkpoint (any rate, channels, length)",
    ),
    ("analyze", "analyze", "F0-noise and stability analyses of a model (analyze f0-noise | analyze stability)"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ddsp-demucs",
        description="Refine Demucs vocal stems with a residual DDSP model: separation, features, dataset, "
        "training, evaluation and analyses.",
    )
    parser.add_argument("--version", action="version", version=f"ddsp-demucs {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(f"ddsp_demucs.cli.{module_name}")
        p = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_parser(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    from ddsp_demucs.core.utils import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    try:
        code = args._run(args)
    except DDSPDemucsError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # unwritable output folder, full disk...: the file and the problem, one line
        if args.debug:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished outputs are kept and a re-run resumes", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
