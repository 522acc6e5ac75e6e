"""``yield-ensemble status|candidate|promote|rollback``: the operator's side of ``/admin/serving``.

Each command is one call to a running service (``--url``, default
``$YIELD_ENSEMBLE_URL`` or http://127.0.0.1:3000) with an ``admin`` key (``--key``,
default ``$YIELD_ENSEMBLE_API_KEY``). The change is recorded in the ledger with the
key's id, and every replica follows it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any

DEFAULT_URL = "http://127.0.0.1:3000"


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    url = args.url.rstrip("/") + path
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if args.key:
        request.add_header("Authorization", f"Bearer {args.key}")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        text = exc.read().decode("utf-8", "replace")
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"error": text[:300]}


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def _print_state(state: dict[str, Any]) -> None:
    candidate = "none"
    if state.get("candidate"):
        candidate = f"{state['candidate']} at {100 * state['share']:g}% since " \
                    f"{_when(state.get('candidate_since'))}"  # fmt: skip
    print(f"champion   {state['champion']}")
    print(f"candidate  {candidate}")
    previous = state.get("previous")
    if previous:
        print(f"previous   {previous} (`yield-ensemble rollback` serves it again)")
    else:  # the ledger refuses a rollback then (ServingState.rolled_back)
        print("previous   - (no rollback: no promote since the last rollback)")
    why = f" ({state['reason']})" if state.get("reason") else ""
    print(f"revision   {state['revision']}: {state['action']} by {state['changed_by']} at "
          f"{_when(state['changed_at'])}{why}")  # fmt: skip


def _status(args: argparse.Namespace) -> int:
    status, body = _call(args, "GET", f"/admin/serving?history={args.history}")
    if status != 200:
        return _failed(status, body)
    if body["state"] is None:
        print("no serving state in the ledger yet")
    else:
        _print_state(body["state"])
    here = body["here"]
    roles = (f"{role} {', '.join(tags.values())}" for role, tags in here["versions"].items())
    print(f"this replica serves revision {here['revision']}: " + ", ".join(roles))
    if body["history"]:
        print("history (newest first):")
    for h in body["history"]:
        line = f"  {h['revision']:>4}  {_when(h['changed_at'])}  {h['action']:<9} by " \
               f"{h['changed_by']}: champion {h['champion']}"  # fmt: skip
        if h["candidate"]:
            line += f", candidate {h['candidate']} at {100 * h['share']:g}%"
        print(line + (f"  ({h['reason']})" if h.get("reason") else ""))
    return 0


def _failed(status: int, body: Any) -> int:
    error = body.get("error") if isinstance(body, dict) else body
    print(f"error: HTTP {status}: {error}", file=sys.stderr)
    return 1


def _change(args: argparse.Namespace, action: str, body: dict[str, Any]) -> int:
    if args.reason:
        body["reason"] = args.reason
    status, answer = _call(args, "POST", f"/admin/serving/{action}", body)
    if status != 200:
        return _failed(status, answer)
    _print_state(answer["state"])
    return 0


def _candidate(args: argparse.Namespace) -> int:
    if args.stop:
        return _change(args, "candidate", {"version": None})
    if args.version is None or args.share is None:
        print("error: give VERSION and --share, or --stop", file=sys.stderr)
        return 2
    return _change(args, "candidate", {"version": args.version, "share": args.share})


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            print(f"error: cannot reach {args.url}: {reason}", file=sys.stderr)
            return 2

    return run


def add_commands(sub: Any) -> None:
    """Add ``status``, ``candidate``, ``promote`` and ``rollback`` to argparse subparsers."""

    def parser(name: str, text: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = sub.add_parser(name, help=text, description=text)
        p.add_argument("--url", default=os.environ.get("YIELD_ENSEMBLE_URL", DEFAULT_URL),
                       help="the service (default $YIELD_ENSEMBLE_URL or %(default)s)")  # fmt: skip
        p.add_argument("--key", default=os.environ.get("YIELD_ENSEMBLE_API_KEY"),
                       help="an admin API key (default $YIELD_ENSEMBLE_API_KEY)")  # fmt: skip
        p.add_argument("--timeout", type=float, default=180.0, help="seconds (default 180)")
        return p

    status = parser("status", "what serves: champion, candidate, share, and who changed it when")
    status.add_argument("--history", type=int, default=10, help="changes to list (default 10)")
    status.set_defaults(func=_guarded(_status))
    candidate = parser(
        "candidate", "serve VERSION beside the champion on a sticky share of traffic, or --stop"
    )
    candidate.add_argument("version", nargs="?", help="a trained version, e.g. v2.4")
    candidate.add_argument("--share", type=float, help="its share of traffic, e.g. 0.1")
    candidate.add_argument("--stop", action="store_true", help="stop serving the candidate")
    candidate.add_argument("--reason", help="why, kept in the history")
    candidate.set_defaults(func=_guarded(_candidate))
    for action, text in (
        ("promote", "make the candidate the champion (the champion is kept for a rollback)"),
        ("rollback", "serve the champion before the last promote again, without a candidate"),
    ):
        p = parser(action, text)
        p.add_argument("--reason", help="why, kept in the history")
        p.set_defaults(func=_guarded(lambda args, a=action: _change(args, a, {})))
