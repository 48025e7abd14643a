"""The README documents every setting and every archive column the code defines."""

from __future__ import annotations

from pathlib import Path

from archiver.archive.schema import COLUMNS, PARTITION_COLUMNS
from archiver.settings import ArchiverSettings
from replayer.settings import ReplayerSettings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    for prefix, model in (("ARCHIVER_", ArchiverSettings), ("REPLAYER_", ReplayerSettings)):
        for name in model.model_fields:
            variable = f"{prefix}{name.upper()}"
            assert f"| `{variable}` |" in README, f"{variable} missing from README"


def test_every_column_is_in_the_schema_table() -> None:
    for name, *_ in COLUMNS:
        assert f"| `{name}` |" in README, f"column {name} missing from README"
    for name in PARTITION_COLUMNS:
        assert f"`{name}`" in README


def test_readme_shows_the_two_commands() -> None:
    assert "make demo" in README
    assert "make test" in README
