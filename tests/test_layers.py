"""The layering of the four apps (README "What is where" › Layers, contracts in pyproject.toml) is checked.

`lint-imports` runs in .ci/test.sh; these tests prove that the contracts bite (an upward import in a copy of the
code breaks the build), that no module of the apps escapes them (every one sits in exactly one layer), and that
no function-local import crosses apps without a one-line reason.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
APPS = ("console", "devices", "policies", "reports")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contracts() -> list[dict]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]


def _layers() -> list[list[str]]:
    (contract,) = [c for c in _contracts() if c["type"] == "layers"]
    return [[name.strip() for name in layer.replace("|", ":").split(":")] for layer in contract["layers"]]


def _source_files():
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# ------------------------------------------------------------------------------------------- the contracts bite


@pytest.fixture(scope="module")
def code_copy(tmp_path_factory) -> Path:
    """The four apps and the contract file, copied so that a test can add a forbidden import to them."""
    copy = tmp_path_factory.mktemp("layers")
    for app in APPS:
        shutil.copytree(ROOT / app, copy / app, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _lint(copy: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "pyproject.toml", "--no-cache"],
        cwd=copy,
        env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_it_keeps_every_contract_on_the_code_as_it_is(code_copy):
    result = _lint(code_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # inventory reaching up into the check-in pipeline (the cycle issue 11 removed)
        (
            "devices/services.py",
            "from devices import tasks",
            "devices.services is not allowed to import devices.tasks",
        ),
        # status reaching up into the pipeline
        (
            "reports/queries.py",
            "from devices.checkins import panel_context",
            "reports.queries is not allowed to import devices.checkins",
        ),  # fmt: skip
        # the policy layer reaching up into status
        (
            "policies/services.py",
            "import reports.models",
            "policies.services is not allowed to import reports.models",
        ),
        # the console at the bottom reaching up into an app
        (
            "console/audit.py",
            "from devices import models",
            "console.audit is not allowed to import devices.models",
        ),
        # pages of one app reaching into the pages of another
        (
            "reports/views.py",
            "from policies import views",
            "reports.views is not allowed to import policies.views",
        ),
        # the API reaching into the pages of its own app instead of the services they share
        (
            "devices/api/views.py",
            "from devices import views",
            "devices.api is not allowed to import devices.views",
        ),
        # the pure engine reaching for Django
        ("policies/engine.py", "import django.db", "policies.engine is not allowed to import django"),
    ],
)
def test_it_fails_the_build_on_an_import_that_breaks_a_contract(code_copy, module, line, broken):
    path = code_copy / module
    original = path.read_text()
    path.write_text(f"{original}\n{line}  # added by the test\n")
    try:
        result = _lint(code_copy)
    finally:
        path.write_text(original)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout


def test_it_puts_every_module_of_the_apps_in_exactly_one_layer():
    """A module no layer names would escape the layers contract: a new module must be placed in one."""
    layers = _layers()
    named = [name for layer in layers for name in layer]
    assert len(named) == len(set(named)), "a module is named twice"
    homeless = []
    for path in _source_files():
        module = _module(path)
        if path.name == "__init__.py":
            continue
        owners = [name for name in named if module == name or module.startswith(f"{name}.")]
        if len(owners) != 1:
            homeless.append(f"{module}: {owners or 'in no layer'}")
    assert homeless == [], "place each module in one layer of pyproject.toml [tool.importlinter]"
    assert set(named) <= {_module(p) for p in _source_files()}, "a layer names a module that does not exist"


def _readme_layers() -> list[set[str]]:
    """The backticked names of each row of the README's layers table, top to bottom."""
    section = (ROOT / "README.md").read_text().split("### Layers", 1)[1].split("\n#", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| layer")]
    return [set(re.findall(r"`([\w.]+)/?`", row.split("|")[2])) for row in rows]


def test_it_documents_in_the_readme_the_layers_the_contract_states():
    readme, layers = _readme_layers(), _layers()
    assert len(readme) == len(layers), "one README row per layer of the contract"
    for names, layer in zip(
        readme[1:], layers[1:], strict=True
    ):  # the top row names kinds of module, not each
        missing = [m for m in layer if m not in names and m.rsplit(".", 1)[-1] not in names]
        assert missing == [], f"README 'What is where' › Layers does not list {missing} in its row"


# ---------------------------------------------------------------------------- function-local imports across apps


def local_imports_across_apps(source: str, app: str) -> list[int]:
    """Line numbers of imports inside a function that reach another app with no `# reason:` on the line.

    Allowed: imports of the module's own app, imports under `if TYPE_CHECKING:`, and a line saying why.
    """
    lines = source.splitlines()
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if in_function and isinstance(child, ast.Import | ast.ImportFrom):
                targets = (
                    [child.module or ""]
                    if isinstance(child, ast.ImportFrom)
                    else [a.name for a in child.names]
                )
                if isinstance(child, ast.ImportFrom) and child.level:
                    targets = []
                other_app = any(t.split(".")[0] in APPS and t.split(".")[0] != app for t in targets)
                said_why = any("# reason:" in lines[n - 1] for n in range(child.lineno, child.end_lineno + 1))
                if other_app and not said_why:
                    found.append(child.lineno)
            visit(child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef))

    visit(ast.parse(source), False)
    return found


def test_it_allows_no_function_local_import_across_apps_without_a_reason():
    offenders = []
    for path in _source_files():
        app = path.relative_to(ROOT).parts[0]
        for line in local_imports_across_apps(path.read_text(), app):
            offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == [], (
        "import at the top of the file (the layers say where it may come from), or add '# reason: …' on the line"
    )


def test_the_checker_flags_a_hidden_import_and_lets_a_reasoned_one_through():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from reports.models import Status\n"  # top of the file: fine
        "if TYPE_CHECKING:\n"
        "    from policies.models import Policy\n"  # typing only: fine
        "def hidden():\n"
        "    from reports.ingest import ingest\n"  # line 6: flagged
        "    from devices.models import Device\n"  # own app: fine
        "    from . import rules\n"  # relative, own app: fine
        "def reasoned():\n"
        "    from console import audit  # reason: stays importable without Django\n"
        "    def inner():\n"
        "        import policies.engine\n"  # line 12: flagged, nested too
        "    if TYPE_CHECKING:\n"
        "        from reports.models import Status\n"  # typing only: fine
    )
    assert local_imports_across_apps(source, "devices") == [6, 12]
