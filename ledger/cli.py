"""The ledger's commands: ``yield-ensemble report`` and ``yield-ensemble log``.

Also ``python -m ledger.cli`` on a machine with only the ledger (no training stack).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ensemble.settings import SettingsError, get_settings
    from ensemble.validation import InvalidInput, parse_time
    from ledger.html_report import render
    from ledger.predlog import PredictionLog
    from ledger.settings import get_ledger_settings

    try:
        settings = get_settings()
        url = args.database_url or get_ledger_settings().log_url
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    except (SettingsError, InvalidInput) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        print(f"error: no prediction log at {url} (set --database-url or "
              "YIELD_ENSEMBLE_DATA_DIR)", file=sys.stderr)  # fmt: skip
        return 2
    from ensemble.arms import with_candidate
    from ensemble.serving import CANDIDATE, comparison
    from ledger import wafer_maps
    from ledger.serving import ServingStore
    from models.base import model_tag, saved_decision, saved_reference
    from models.families import member_names

    log = PredictionLog(url)
    try:
        # The champion's decision in the model store (as the entry serves it) gives costs,
        # thresholds and the shadow combiners; without one the report uses unfitted rules.
        state = ServingStore(log.engine).read()
        decision = saved_decision(state.champion if state else None)
        served = decision.combiner(settings.combiner).key if decision else None
        arms, candidate = settings.arm_list(), None
        if state is not None and state.candidate is not None:
            arms = with_candidate(arms, CANDIDATE, state.candidate, state.share)
            tags = {v: {m: model_tag(m, v) for m in member_names()} for v in state.versions}
            candidate = comparison(
                state, tags[state.champion], tags[state.candidate], settings.promotion_alpha
            )
        reference = saved_reference(state.champion if state else None)
        report = log.report(
            arms, since, until, args.arm, decision, served, candidate, reference=reference
        )
        # The window's wafers with the most labelled dies, as maps of decisions and truth.
        maps = wafer_maps.choose(log.engine, since, until)
    finally:
        log.close()
    page = render(report, wafer_maps=maps.dies, wafer_yields=maps.wafers,
                  wafers_total=maps.total, wafers_rule=maps.rule)  # fmt: skip
    Path(args.out).write_text(page, encoding="utf-8")
    print(report["conclusion"])
    print(f"wrote {Path(args.out).resolve()}")
    return 0


def _log(args: argparse.Namespace) -> int:
    """Spill and dead letter of the prediction log: what waits, what was refused, replay."""
    from ensemble.settings import SettingsError
    from ledger.predlog import Durability, PredictionLog
    from ledger.settings import get_ledger_settings

    try:
        settings = get_ledger_settings()
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


def add_commands(sub: Any) -> None:
    """Add ``report`` and ``log status|replay`` to an argparse subparsers object."""
    text = "render the A/B accuracy report, with its plots and wafer maps, as one HTML page"
    report = sub.add_parser("report", help=text, description=text[0].upper() + text[1:] + ".")
    report.add_argument(
        "--out",
        default="report.html",
        help="the HTML file to write, relative to the current directory (default %(default)s)",
    )
    report.add_argument("--database-url", help="prediction log (default: the service's setting)")
    report.add_argument("--since", help="window start: unix seconds or ISO 8601")
    report.add_argument("--until", help="window end: unix seconds or ISO 8601")
    report.add_argument("--arm", help="one arm only (with the ensemble), e.g. challenger")
    report.set_defaults(func=_report)
    text = "the prediction log's spill and dead letter: status, or replay refused rows"
    log = sub.add_parser("log", help=text, description=text[0].upper() + text[1:] + ".")
    actions = log.add_subparsers(dest="action", required=True, metavar="{status,replay}")
    for action, what in (
        ("status", "count the rows waiting in the spill and refused in the dead letter, and "
         "print the first dead-letter rows"),
        ("replay", "write the dead letter's rows to the log again, then print the status"),
    ):  # fmt: skip
        p = actions.add_parser(action, help=what, description=what[0].upper() + what[1:] + ".")
        p.add_argument("--database-url", help="prediction log (default: the service's setting)")
        p.add_argument("--show", type=int, default=5, help="dead-letter rows to print (status)")
        p.set_defaults(func=_log)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger.cli",
        description="The ledger's commands: render the A/B report, inspect the prediction log.",
    )
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
