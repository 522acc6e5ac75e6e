"""The ``yield-ensemble`` command."""

from __future__ import annotations

import argparse
import sys

from ensemble.settings import MEMBERS, MODEL_NAMES


def _store_has_models() -> bool:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        for member in MEMBERS:
            bentoml.models.get(f"{MODEL_NAMES[member]}:latest")
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


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ensemble.html_report import render
    from ensemble.predlog import PredictionLog
    from ensemble.settings import SettingsError, get_settings
    from ensemble.validation import InvalidInput, parse_time

    try:
        settings = get_settings()
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    except (SettingsError, InvalidInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = args.database_url or settings.log_url
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        print(f"error: no prediction log at {url} (set --database-url or "
              "YIELD_ENSEMBLE_DATA_DIR)", file=sys.stderr)  # fmt: skip
        return 2
    log = PredictionLog(url)
    try:
        report = log.report(
            settings.challenger, settings.challenger_fraction, since, until, args.arm
        )
    finally:
        log.close()
    Path(args.out).write_text(render(report), encoding="utf-8")
    print(report["conclusion"])
    print(f"wrote {args.out}")
    return 0


def _log(args: argparse.Namespace) -> int:
    """Spill and dead letter of the prediction log: what waits, what was refused, replay."""
    from ensemble.predlog import Durability, PredictionLog
    from ensemble.settings import SettingsError, get_settings

    try:
        settings = get_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    log = PredictionLog(
        args.database_url or settings.log_url, durability=Durability(spill_dir=settings.spill_dir)
    )
    try:
        if args.action == "replay":
            written, refused = log.replay_dead_letter()
            print(f"dead letter: {written} rows written, {refused} still refused")
        assert log.spill is not None and log.dead_letter is not None
        spill_rows, spill_bytes = log.spill.size()
        print(f"spill {log.spill.directory}: {spill_rows} rows ({spill_bytes} bytes) waiting")
        print(f"dead letter {log.dead_letter.directory}: {log.dead_letter.size()[0]} rows")
        if args.action == "status":
            for path in sorted(log.dead_letter.directory.glob("*.jsonl"))[: args.show]:
                for line in path.read_text(encoding="utf-8").splitlines()[: args.show]:
                    print("  ", line[:300])
    finally:
        log.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="yield-ensemble", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the three members and save them to the store")
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
        help="do nothing when the store already has all three models",
    )
    train.set_defaults(func=_train)
    report = sub.add_parser("report", help="render the A/B accuracy report as one HTML page")
    report.add_argument("--out", default="report.html", help="HTML file to write")
    report.add_argument("--database-url", help="prediction log (default: the service's setting)")
    report.add_argument("--since", help="window start: unix seconds or ISO 8601")
    report.add_argument("--until", help="window end: unix seconds or ISO 8601")
    report.add_argument("--arm", choices=["ensemble", "challenger"], help="one arm only")
    report.set_defaults(func=_report)
    log = sub.add_parser(
        "log", help="prediction log's spill and dead letter: status, or replay refused rows"
    )
    log.add_argument("action", choices=["status", "replay"])
    log.add_argument("--database-url", help="prediction log (default: the service's setting)")
    log.add_argument("--show", type=int, default=5, help="dead-letter rows to print (status)")
    log.set_defaults(func=_log)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
