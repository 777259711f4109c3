"""Command line: ``fastconv info`` and ``fastconv demo`` (also ``python -m fastconv``)."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    """Run ``python -m fastconv {info,demo}``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name; default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        Exit status (0 on success).
    """
    parser = argparse.ArgumentParser(prog="fastconv", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="print the build: version, flags, SIMD, OpenMP, BLAS, GPU")
    demo = sub.add_parser("demo", help="filter a real photograph and compare with SciPy")
    demo.add_argument("--output", default="fastconv_demo.png", help="PNG file to write")
    demo.add_argument("--repeat", type=int, default=5, help="timing repeats (best is kept)")
    args = parser.parse_args(argv)

    if args.command == "info":
        from ._info import build_info, format_info

        print(format_info(build_info()))
        return 0
    from ._demo import run_demo

    return run_demo(output=args.output, repeat=args.repeat)


if __name__ == "__main__":
    sys.exit(main())
