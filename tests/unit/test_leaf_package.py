"""The archive package stays a lean leaf: no SDK or settings libraries at import time.

Each check runs in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
FORBIDDEN = ("boto3", "botocore", "pydantic", "pydantic_settings", "s3fs")
ARCHIVE_MODULES = sorted(
    f"archiver.archive.{path.stem}" for path in (ROOT / "archiver" / "archive").glob("*.py")
)

# After each import, report which forbidden modules have been loaded so far.
_PROBE = """
import importlib, json, sys
forbidden = {forbidden!r}
report = []
for name in {modules!r}:
    importlib.import_module(name)
    report.append([name, sorted(m for m in forbidden if m in sys.modules)])
print(json.dumps(report))
"""


def imported_after(modules: list[str]) -> list[tuple[str, list[str]]]:
    code = _PROBE.format(forbidden=FORBIDDEN, modules=modules)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [(name, loaded) for name, loaded in json.loads(done.stdout)]


def test_there_are_archive_modules_to_check() -> None:
    assert {
        "archiver.archive.codec",
        "archiver.archive.dynamojson",
        "archiver.archive.store",
    } <= set(ARCHIVE_MODULES)


def test_archive_package_imports_no_sdk_or_settings() -> None:
    report = imported_after(["archiver.archive", *ARCHIVE_MODULES])
    assert [name for name, _ in report] == ["archiver.archive", *ARCHIVE_MODULES]
    offenders = {name: loaded for name, loaded in report if loaded}
    assert offenders == {}, f"first module to load a forbidden one: {next(iter(offenders))}"


@pytest.mark.parametrize("module", ["archiver.lambda_handler"])
def test_lambda_handler_defers_sdk_and_settings_to_first_invocation(module: str) -> None:
    [(name, loaded)] = imported_after([module])
    assert name == module
    assert loaded == [], f"{module} loads {loaded} at import time (Lambda cold start)"


def test_probe_sees_a_forbidden_import() -> None:
    # the check itself can fail: importing boto3 shows up
    [(_, loaded)] = imported_after(["boto3"])
    assert {"boto3", "botocore"} <= set(loaded)


# --- the dependency rule between the archiver, the archive format and the replayer -------------

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def run_lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_contracts_name_every_archiver_module() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    [leaf_rule] = [c for c in config["contracts"] if "archiver.archive" in c["source_modules"]]
    modules = {
        f"archiver.{p.stem}" for p in (ROOT / "archiver").glob("*.py") if p.stem != "__init__"
    }
    modules.discard("archiver.__main__")
    assert set(leaf_rule["forbidden_modules"]) == modules


def test_the_tree_keeps_the_contracts() -> None:
    done = run_lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("module", "bad_import", "named"),
    [
        ("archiver/batch.py", "import replayer.cli", "archiver.batch -> replayer.cli"),
        ("replayer/runner.py", "import archiver.write", "replayer.runner -> archiver.write"),
        ("archiver/archive/codec.py", "import archiver.decode", "codec -> archiver.decode"),
    ],
)
def test_a_bad_import_breaks_a_contract(
    tmp_path: Path, module: str, bad_import: str, named: str
) -> None:
    # Given a copy of the tree with one import against the rule
    for package in ("archiver", "replayer"):
        shutil.copytree(ROOT / package, tmp_path / package)
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    with (tmp_path / module).open("a") as source:
        source.write(f"\n{bad_import}  # noqa\n")
    # When the contracts are checked, Then they fail, naming the import
    done = run_lint_imports(tmp_path)
    assert done.returncode != 0
    assert named in done.stdout
