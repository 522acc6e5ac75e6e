"""``yield-ensemble stdf inspect FILE`` and the ``train --stdf`` options."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from train.data import Dataset, TrainingDataError


def add_train_options(train: argparse.ArgumentParser) -> None:
    """The options ``train`` takes to learn from tester files instead of a table."""
    group = train.add_argument_group("tester files (STDF V4, gzip accepted)")
    group.add_argument("--stdf", nargs="+", metavar="FILE", help="train from these files")
    group.add_argument(
        "--tests",
        help="comma-separated TEST_TXT names or patterns (glob, or re:REGEX) to use as "
        "features (default: every test)",
    )
    group.add_argument(
        "--good-bins",
        help="label: pass = one of these hard bins, e.g. 1,2 (default: PRR PART_FLG, also "
        "--label part-flag)",
    )
    group.add_argument(
        "--outcomes",
        nargs="+",
        metavar="FILE",
        help="label: a later insertion's files (pass/fail per part), joined by PART_ID, "
        "else by lot, wafer and x/y; the honest label with stop-on-fail testing",
    )
    group.add_argument(
        "--only-complete-tests",
        action="store_true",
        help="use only the tests every part ran: the empty-cell pattern cannot give away "
        "a same-insertion label",
    )
    group.add_argument(
        "--empty-indicators",
        action="store_true",
        help="add a 0/1 <feature>_empty column per test beside the median-filled value",
    )


def _spatial(args: argparse.Namespace) -> tuple[str, ...]:
    """``--spatial`` with ``--stdf``: the feature names, refusing ``prior`` without a later
    insertion's label. Raises TrainingDataError."""
    from train.spatial import parse_features

    if not args.spatial:
        return ()
    names = parse_features(args.spatial)
    if args.prior_fail:
        raise TrainingDataError(
            "with --stdf, prior reads the file's own PRR pass/fail (sort_fail); --prior-fail "
            "names a column of --data"
        )
    if "prior" in names and not args.outcomes:
        raise TrainingDataError(
            "--spatial prior with --stdf needs --outcomes FILE... (the label from a later "
            "insertion): prior reads this file's own PRR pass/fail, of the die (sort_fail) "
            "and of its neighbours, and with this insertion's label (part-flag, --good-bins) "
            "that is the label itself and its neighbours' labels, known only once the test "
            "ends"
        )
    return names


def dataset(args: argparse.Namespace) -> Dataset:
    """The training rows from ``--stdf`` files, after printing the leak check and the
    empty-cell comparison; with ``--spatial``, then the derived spatial features.
    Raises TrainingDataError."""
    from dataclasses import replace

    import numpy as np

    from stdf.testmap import TestMap
    from train import stdf

    if args.label not in (None, "part-flag"):
        raise TrainingDataError("with --stdf, --label takes only part-flag")
    if sum(x is not None for x in (args.good_bins, args.outcomes, args.label)) > 1:
        raise TrainingDataError("choose one label: --label part-flag, --good-bins or --outcomes")
    spatial = _spatial(args)
    every = parts = stdf.read(args.stdf)
    good_bins = None
    if args.good_bins:
        try:
            good_bins = [int(b) for b in args.good_bins.split(",")]
        except ValueError:
            raise TrainingDataError(
                f"--good-bins: hard bin numbers, got {args.good_bins}"
            ) from None
    outcomes = stdf.read(args.outcomes) if args.outcomes else None
    y_every = y = stdf.labels(parts, good_bins, outcomes)
    known = ~np.isnan(y)
    if outcomes is not None:
        print(f"outcomes: {int(known.sum())} of {len(parts)} parts found in {args.outcomes}")
    logged = ~np.isnan(parts.values).all(axis=1)
    if (known & ~logged).any():
        print(f"{int((known & ~logged).sum())} parts have no PTR result at all (not datalogged): "
              "no features, not training rows")  # fmt: skip
    rows = np.flatnonzero(known & logged)
    parts, y = stdf.subset(parts, rows), y[rows]
    patterns = args.tests.split(",") if args.tests else None
    try:
        test_map = TestMap.choose(
            parts,
            patterns,
            only_complete=args.only_complete_tests,
            indicators=args.empty_indicators,
        )
    except ValueError as exc:
        raise TrainingDataError(str(exc)) from None
    if 0 < y.mean() < 1 and min(y.sum(), (1 - y).sum()) >= 2:
        _report(parts, y, test_map, patterns, args)
    source = f"stdf({', '.join(args.stdf)}; {len(test_map.tests)} tests)"
    if spatial:
        test_map = replace(test_map, prior_fail="prior" in spatial)
        tests = args.spatial_tests.split(",") if args.spatial_tests else None
        return stdf.spatial_dataset(every, y_every, rows, test_map, spatial, tests, source)
    return stdf.dataset(parts, y, test_map, source=source)


def _report(parts: Any, y: Any, test_map: Any, patterns: Any, args: argparse.Namespace) -> None:
    import numpy as np

    from train import stdf

    column = {t.key: j for j, t in enumerate(parts.tests)}
    empty = np.isnan(parts.values[:, [column[t.key] for t in test_map.tests]])
    leak = stdf.leak(empty, y, args.seed)
    same_insertion = args.outcomes is None
    print(f"empty cells: {float(empty.mean()):.1%} of the chosen {len(test_map.tests)} tests' "
          f"cells are empty (not tested); {leak.describe()}")  # fmt: skip
    if leak.leaky and same_insertion:
        print(
            "WARNING: the label leaks: with stop-on-fail testing, which cells are empty tells "
            "whether a part failed this insertion, so these held-out figures overstate what the "
            "model knows before the test ends. Honest settings: --only-complete-tests (tests "
            "every part ran), or --outcomes FILE... (the label from a later insertion).",
            file=sys.stderr,
        )
    print("empty-cell handling, held-out accuracy of one RandomForest (by-part 80/20 split):")
    for name, accuracy in stdf.empty_cell_options(parts, y, patterns, args.seed).items():
        print(f"  {name:<28} {accuracy:.1%}")


def add_commands(sub: Any) -> None:
    """``stdf inspect FILE``."""
    what = "look at a tester's STDF V4 file"
    stdf = sub.add_parser("stdf", help=what, description=what[0].upper() + what[1:] + ".")
    commands = stdf.add_subparsers(dest="stdf_command", required=True)
    what = "tester, lot, wafers, parts, sites, tests (units, empty share), bins, yield"
    inspect = commands.add_parser("inspect", help=what, description=f"Print a file's {what}.")
    inspect.add_argument("file", help="an STDF V4 file, gzip accepted")
    inspect.set_defaults(func=_inspect)


def _inspect(args: argparse.Namespace) -> int:
    from train import stdf

    try:
        parts = stdf.read([args.file])
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stdf.inspect(parts)
    return 0
