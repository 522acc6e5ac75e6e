"""The layout of docs/layout.md, checked: which layer imports which, and no module over 350 lines.

Every ``import`` of every module is read with ``ast`` (imports inside functions and
under ``TYPE_CHECKING`` included), so a lazy import cannot slip past. A new top-level
package has to be given its layer here before the tests pass.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Ours but not the product: nothing the product runs may import them.
NOT_PRODUCT = ("tests", "bench")

#: What each layer may import of ours (a module, or a package and everything in it).
#: docs/layout.md: service.py uses models/, ledger/, ops/ and ensemble/; those three use
#: ensemble/ and not each other, but for ops/gc_tuning.py and ops/logs.py (called by the
#: member processes and the log writer); ensemble/ uses only models/families.py; train/
#: uses models/, ensemble/, ledger/ (its stats and commands) and ops/serving_cli.py.
#: ``entry/`` is the entry worker's wiring, beside service.py; ``stdf/`` reads tester files.
_MEMBER_SIDE_OPS = ("ops.gc_tuning", "ops.logs", "ops.settings")
ALLOWED: dict[str, tuple[str, ...]] = {
    "ensemble": ("ensemble", "models.families"),
    "ledger": ("ledger", "ensemble", "models.families", *_MEMBER_SIDE_OPS),
    "ops": ("ops", "ensemble"),
    "models": ("models", "ensemble", *_MEMBER_SIDE_OPS),
    "stdf": ("stdf", "ensemble"),
    "train": (
        "train",
        "ensemble",
        "models",
        "stdf",
        "ledger.stats",
        "ledger.cli",
        "ops.serving_cli",
    ),
    "entry": ("entry", "ensemble", "ledger", "ops", "models", "stdf"),
    "service": ("entry", "ensemble", "ledger", "ops", "models", "stdf"),
}
#: The request core is plain Python and numpy: no storage, no HTTP, no BentoML, and
#: none of training's libraries (the serving image has neither scipy nor scikit-learn).
ENSEMBLE_FORBIDDEN = (
    "sqlalchemy", "alembic", "psycopg", "psycopg2",
    "starlette", "fastapi", "uvicorn", "httpx", "bentoml", "_bentoml_sdk",
    "scipy", "sklearn",
)  # fmt: skip
#: The serving image has neither scipy nor scikit-learn (bentofile.yaml): nothing it runs
#: may import them, at module level or inside a function. Training and bench may.
SERVING_LAYERS = ("ensemble", "ledger", "ops", "entry", "stdf", "models", "service")
TRAINING_LIBRARIES = ("scipy", "sklearn")
#: Known exceptions, each a case that fails today and passes once fixed (strict xfail).
KNOWN_IMPORTS = {
    ("ledger/cli.py", "models.base"): "the report command reads the champion's decision "
    "from the model store; move that command to train/ or hand it the decision",
}

#: The hard limit of STYLE.md, outside tests, bench and migrations.
MAX_LINES = 350
KNOWN_LONG: dict[str, str] = {}


def _product_modules() -> list[Path]:
    out = [ROOT / "service.py"]
    for package in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        if package.name not in NOT_PRODUCT:
            out += sorted(package.rglob("*.py"))
    return out


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _layer(path: Path) -> str:
    return _rel(path).split("/")[0].removesuffix(".py")


def _resolve(module: str, name: str) -> str:
    """``from module import name``: the module imported (``name`` when it is one)."""
    dotted = f"{module}.{name}"
    as_path = ROOT.joinpath(*dotted.split("."))
    return dotted if as_path.with_suffix(".py").exists() or as_path.is_dir() else module


def imports(path: Path) -> Iterator[str]:
    """Every module ``path`` imports (absolute imports; relative ones name our own)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = _rel(path).removesuffix(".py").split("/")[: -node.level]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            for alias in node.names:
                yield _resolve(module, alias.name)


def _ours(module: str) -> bool:
    top = module.split(".")[0]
    return top == "service" or (ROOT / top / "__init__.py").exists()


def _within(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def _cases(check: str) -> list[object]:
    cases: list[object] = []
    for path in _product_modules():
        if check == "lines" and _rel(path).startswith("ledger/migrations/"):
            continue
        marks = []
        if check == "imports":
            known = [why for (f, _), why in KNOWN_IMPORTS.items() if f == _rel(path)]
            marks = [pytest.mark.xfail(strict=True, reason=why) for why in known]
        elif _rel(path) in KNOWN_LONG:
            marks = [pytest.mark.xfail(strict=True, reason=KNOWN_LONG[_rel(path)])]
        cases.append(pytest.param(path, id=_rel(path), marks=marks))
    return cases


@pytest.mark.parametrize("path", _cases("imports"))
def test_imports_go_the_way_the_readme_says(path: Path) -> None:
    layer = _layer(path)
    assert layer in ALLOWED, f"{_rel(path)}: package {layer!r} has no layer in ALLOWED"
    wrong = sorted(
        {
            module
            for module in imports(path)
            if _ours(module)
            and module.split(".")[0] != layer
            and not _within(module, ALLOWED[layer])
        }
    )
    assert not wrong, f"{_rel(path)} ({layer}/) imports {wrong}; it may import {ALLOWED[layer]}"


@pytest.mark.parametrize(
    "path", [p for p in _product_modules() if _layer(p) == "ensemble"], ids=_rel
)
def test_the_request_core_imports_no_storage_http_bentoml_or_training_library(
    path: Path,
) -> None:
    wrong = sorted({m for m in imports(path) if m.split(".")[0] in ENSEMBLE_FORBIDDEN})
    assert not wrong, f"{_rel(path)} imports {wrong}"


@pytest.mark.parametrize(
    "path", [p for p in _product_modules() if _layer(p) in SERVING_LAYERS], ids=_rel
)
def test_nothing_served_imports_scipy_or_scikit_learn(path: Path) -> None:
    wrong = sorted({m for m in imports(path) if m.split(".")[0] in TRAINING_LIBRARIES})
    assert not wrong, f"{_rel(path)} imports {wrong}, which the serving image does not have"


@pytest.mark.parametrize("path", _cases("lines"))
def test_no_module_is_over_the_line_limit(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{_rel(path)}: {lines} lines (limit {MAX_LINES})"


def test_the_checks_see_what_they_must() -> None:
    """The walkers find lazy and relative imports, and every layer's modules."""
    source = ROOT / "ledger" / "writer.py"
    assert "ops.gc_tuning" in set(imports(source))  # a module imported by name
    assert "ledger.migrate" in set(imports(source))  # imported inside __init__
    assert _resolve("ops", "logs") == "ops.logs" and _resolve("ensemble", "Coalescer") == "ensemble"
    layers = {_layer(p) for p in _product_modules()}
    assert {"ensemble", "ledger", "ops", "models", "train", "service"} <= layers
    assert not layers & set(NOT_PRODUCT)
    measured = {c.values[0] for c in _cases("lines")}  # type: ignore[attr-defined]
    assert ROOT / "ensemble" / "combiners.py" in measured
    assert not any("migrations" in p.parts for p in measured)
