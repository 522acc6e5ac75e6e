"""The ``yield-ensemble`` command."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from typing import Any

from models.families import PluginError, families
from train.decide import CHOICES, FAR_WORSE_POINTS, far_worse


def _store_has_models() -> bool:
    import bentoml
    from bentoml.exceptions import NotFound

    from ensemble.decision import STORE_NAME

    try:
        for name in (*(f.store_name for f in families()), STORE_NAME):
            bentoml.models.get(f"{name}:latest")
    except NotFound:
        return False
    return True


def _store_has_version(version: str) -> bool:
    from models.base import ModelMissing, stored_model
    from models.families import member_names

    for member in member_names():
        try:
            stored_model(member, version)
            return True
        except ModelMissing:
            pass
    return False


def _train(args: argparse.Namespace) -> int:
    from ensemble.combiners import Objective
    from train.data import TrainingDataError, load_table, synthetic
    from train.decide import format_table, table
    from train.fit import TrainConfig, fit, save

    if args.if_missing and _store_has_models():
        print("models already in the store; not training (drop --if-missing to retrain)")
        return 0
    if args.version is not None and _store_has_version(args.version):
        print(f"error: --version {args.version}: the store has that version already; choose "
              "another (a version names one training run)", file=sys.stderr)  # fmt: skip
        return 2
    if args.label and not (args.data or args.stdf):
        print("error: --label needs --data (or --stdf FILE... --label part-flag)", file=sys.stderr)
        return 2
    if args.stdf and args.data:
        print("error: choose --data or --stdf", file=sys.stderr)
        return 2
    if args.compare and not args.spatial:
        print("error: --compare needs --spatial (it compares with and without)", file=sys.stderr)
        return 2
    try:
        if args.stdf:  # with --spatial too
            from train.stdf_cli import dataset

            data = dataset(args)
        elif args.spatial:
            data = _spatial_data(args)
        elif args.data:
            if not args.label:
                print("error: --data needs --label COLUMN", file=sys.stderr)
                return 2
            features = args.features.split(",") if args.features else None
            data = load_table(args.data, args.label, features)
        else:
            data = synthetic(args.n_devices, args.seed)
        objective = Objective(args.escape_cost, args.overkill_cost, args.target_fail_recall)
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:  # costs or recall target out of range
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = TrainConfig.tiny(args.seed) if args.tiny else TrainConfig(seed=args.seed)
    if args.folds is not None:
        config = replace(config, folds=args.folds)
    trained, test_idx = fit(
        data, config, objective=objective, combiner=args.combiner, version=args.version
    )
    comparison = None
    if args.compare:
        from train.spatial import compare, format_comparison

        result = compare(data, trained, test_idx, config, objective, args.combiner)
        comparison = format_comparison(result)
    d = trained.decision
    costs = f"escape {objective.escape_cost:g}, overkill {objective.overkill_cost:g}"
    if objective.target_fail_recall is not None:
        costs += f", target fail recall {objective.target_fail_recall:g}"
    for title, rows in (
        (f"out of fold ({config.folds} folds of the training split)", d.tables["out_of_fold"]),
        ("held out (touched once, now)", trained.held_out),
    ):
        print(f"\n{title}; costs {costs}; * = served; 95% intervals in brackets")
        print(format_table(rows, d.chosen))
    print(f"\n{trained.verdict['sentence']}\n")
    if comparison is not None:
        print(f"spatial features against none, the served combiner of each:\n{comparison}\n")
    alone = table(
        {m: p >= 0.5 for m, p in trained.p_pass_test.items()}, data.labels[test_idx], objective
    )
    best, worse = far_worse(trained.held_out[d.chosen], alone)
    if worse:
        print(f"warning: the served {d.chosen} rule is far worse than {best} alone at "
              f"P(pass) >= 0.5 (by more than {FAR_WORSE_POINTS:g} points): {'; '.join(worse)}",
              file=sys.stderr)  # fmt: skip
        if not args.force:
            print("not saved, so what serves and `latest` stay as they were: choose another "
                  "--combiner or costs, or save it anyway with --force",
                  file=sys.stderr)  # fmt: skip
            return 1
    for member, tag in save(trained, data, config).items():
        print(f"saved {member}: {tag}")
    return 0


def _spatial_data(args: argparse.Namespace) -> Any:
    """The training data with the derived spatial features ``--spatial`` names."""
    from ensemble.schema import DEFAULT_FEATURES
    from train.data import TrainingDataError, read_table
    from train.spatial import parse_features, spatial_dataset
    from train.synthetic import SPATIAL, SPATIAL_FEATURES, generate

    names = parse_features(args.spatial)
    tests = args.spatial_tests.split(",") if args.spatial_tests else None
    if args.data:
        if not args.label:
            raise TrainingDataError("--data needs --label COLUMN")
        frame = read_table(args.data)
        raw = args.features.split(",") if args.features else None
        if raw is None:
            skip = {args.label, "die_x", "die_y", "wafer_id", "lot_id", "device_id"}
            raw = [c for c in frame.columns if c not in skip]
        return spatial_dataset(frame, args.label, raw, names, tests, args.prior_fail, args.data)
    truth = SPATIAL if args.synthetic_spatial else None
    frame = generate(n_devices=args.n_devices, seed=args.seed, truth=truth)
    raw = list(SPATIAL_FEATURES if truth else DEFAULT_FEATURES)
    prior = args.prior_fail or ("sort_fail" if truth and "prior" in names else None)
    source = f"synthetic(n={args.n_devices}, seed={args.seed}{', spatial' if truth else ''})"
    return spatial_dataset(frame, "passed", raw, names, tests, prior, source)


def _version(text: str) -> str:
    from ensemble.serving import check_version

    try:
        return check_version(text, "--version")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[1]) from None


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, not {text}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def _folds(text: str) -> int:
    value = int(text)
    if not 2 <= value <= 20:
        raise argparse.ArgumentTypeError(f"must be 2 to 20, not {text}")
    return value


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("yield-ensemble")
    except PackageNotFoundError:  # a source tree that was never installed
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yield-ensemble",
        description="Train the model families, render the A/B report, inspect the prediction "
        "log, and change which trained version serves (candidate, promote, rollback).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    text = "train every model family's member and the combiners, and save them to the store"
    train = sub.add_parser(
        "train",
        help=text,
        description=text[0].upper() + text[1:] + " as one run (a version); prints the "
        "out-of-fold and held-out tables.",
    )
    train.add_argument("--data", help="training table, .csv or .parquet (default: synthetic data)")
    train.add_argument(
        "--label",
        help="label column of --data: pass/fail, 1/0 or true/false (with --stdf: part-flag)",
    )
    train.add_argument("--features", help="comma-separated feature columns (default: all others)")
    train.add_argument(
        "--n-devices", type=int, default=20_000, help="synthetic dies (default 20000)"
    )
    train.add_argument("--seed", type=int, default=7, help="seed for data split and models")
    train.add_argument("--tiny", action="store_true", help="tiny models in seconds (tests)")
    train.add_argument(
        "--combiner",
        choices=CHOICES,
        default="majority",
        help="combiner to serve; auto picks the lowest out-of-fold cost, ties to the simpler "
        "(default majority; every combiner is fitted and reported either way)",
    )
    train.add_argument(
        "--escape-cost",
        type=_positive,
        default=1.0,
        help="cost of a failing die called pass (shipped), relative to --overkill-cost (default 1)",
    )
    train.add_argument(
        "--overkill-cost",
        type=_positive,
        default=1.0,
        help="cost of a good die called fail (scrapped) (default 1)",
    )
    train.add_argument(
        "--target-fail-recall",
        type=_share,
        help="instead of the costs: the share of failing dies to catch, e.g. 0.95",
    )
    train.add_argument("--folds", type=_folds, help="folds for out-of-fold fitting (default 5)")
    train.add_argument(
        "--version",
        type=_version,
        help="the run's model-store version, e.g. v2.4 (default: a timestamp); it names the "
        "run to `yield-ensemble candidate` and `promote`",
    )
    train.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the store already has every family's model",
    )
    train.add_argument(
        "--force",
        action="store_true",
        help="save the run even if its rule is far worse than its best member alone on the "
        f"held-out rows (accuracy lower, or overkill higher and over twice, by more than "
        f"{FAR_WORSE_POINTS:g} points); it then becomes latest",
    )
    train.add_argument(
        "--spatial",
        help="derived spatial features, comma-separated: radial (distance from the wafer "
        "centre, edge ring), nnr (each test less its neighbours' median), zscore (each "
        "test's robust z within its wafer), prior (the neighbours' fail share at a previous "
        "insertion, --prior-fail; with --stdf the file's own PRR pass/fail, and --outcomes "
        "needed); needs die_x, die_y, wafer_id (--stdf: PRR X/Y, WIR); whole wafers held out",
    )
    train.add_argument("--spatial-tests", help="features nnr and zscore use (default: all)")
    train.add_argument(
        "--prior-fail", help="column: 1 if the die failed a previous insertion (for prior)"
    )
    train.add_argument(
        "--synthetic-spatial",
        action="store_true",
        help="synthetic data with spatial patterns (edge rings, centre spots, gradients)",
    )
    train.add_argument(
        "--compare",
        action="store_true",
        help="with --spatial: fit the same ensemble without the derived features on the same "
        "wafers and print both on the held-out wafers, with 95%% intervals",
    )
    from train import stdf_cli

    stdf_cli.add_train_options(train)
    train.set_defaults(func=_train)
    from ledger.cli import add_commands
    from ops import serving_cli

    add_commands(sub)
    stdf_cli.add_commands(sub)
    serving_cli.add_commands(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
