"""The archive package stays a lean leaf: no SDK or settings libraries at import time.

Each check runs in a fresh interpreter, so what other tests imported does not count.
"""

from __future__ import annotations

import json
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
