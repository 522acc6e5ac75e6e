"""The ``yield-ensemble`` command."""

from __future__ import annotations

import argparse
import sys

from models.families import families


def _store_has_models() -> bool:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        for family in families():
            bentoml.models.get(f"{family.store_name}:latest")
    except NotFound:
        return False
    return True


def _train(args: argparse.Namespace) -> int:
    from train.data import TrainingDataError, load_table, synthetic
    from train.evaluate import format_table
    from train.fit import TrainConfig, fit, save

    if args.if_missing and _store_has_models():
        print("models already in the store; not training (drop --if-missing to retrain)")
        return 0
    if args.label and not args.data:
        print("error: --label needs --data", file=sys.stderr)
        return 2
    try:
        if args.data:
            if not args.label:
                print("error: --data needs --label COLUMN", file=sys.stderr)
                return 2
            features = args.features.split(",") if args.features else None
            data = load_table(args.data, args.label, features)
        else:
            data = synthetic(args.n_devices, args.seed)
    except TrainingDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = TrainConfig.tiny(args.seed) if args.tiny else TrainConfig(seed=args.seed)
    trained, _ = fit(data, config)
    print()
    print(format_table(trained.metrics))
    print()
    for member, tag in save(trained, data, config).items():
        print(f"saved {member}: {tag}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="yield-ensemble",
        description="Train the model families, render the A/B report, inspect the prediction log.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser(
        "train", help="train every model family's member and save them to the store"
    )
    train.add_argument("--data", help="training table, .csv or .parquet (default: synthetic data)")
    train.add_argument("--label", help="label column of --data: pass/fail, 1/0 or true/false")
    train.add_argument("--features", help="comma-separated feature columns (default: all others)")
    train.add_argument(
        "--n-devices", type=int, default=20_000, help="synthetic dies (default 20000)"
    )
    train.add_argument("--seed", type=int, default=7, help="seed for data split and models")
    train.add_argument("--tiny", action="store_true", help="tiny models in seconds (tests)")
    train.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the store already has every family's model",
    )
    train.set_defaults(func=_train)
    from ledger.cli import add_commands

    add_commands(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
