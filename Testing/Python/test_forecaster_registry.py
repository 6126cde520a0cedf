"""Every list of forecaster names follows the one registry (gliomaforecast.forecasters.registry): the CLI choices,
the evaluate defaults, the Slicer parameter node, the panel's tooltip, the README and the docs; and the registry
creates working forecasters."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gliomaforecast import defaults
from gliomaforecast.cli import main
from gliomaforecast.errors import InputError
from gliomaforecast.forecasters import DEFAULT_FORECASTER, FORECASTER_NAMES, REGISTRY, entry, get_forecaster, tooltip

REPO = Path(__file__).resolve().parents[2]


def test_registry_names_are_unique_and_the_default_is_registered() -> None:
    assert len(FORECASTER_NAMES) == len(set(FORECASTER_NAMES)) >= 3
    assert DEFAULT_FORECASTER in FORECASTER_NAMES
    for item in REGISTRY:
        forecaster = item.create()
        assert forecaster.name == item.name and callable(forecaster.predict)
        assert item.min_scans >= 1


def test_unknown_forecaster_names_the_field() -> None:
    with pytest.raises(InputError, match="^forecaster: unknown forecaster 'oracle'; choose from evolution-field"):
        get_forecaster("oracle")
    assert all(entry(item.name) is item for item in REGISTRY)  # each name finds its own entry, not the first


def _choices(command: str) -> list[str]:
    from gliomaforecast.cli import build_parser
    from gliomaforecast.commands import COMMANDS
    parser = build_parser("gliomaforecast", "", "gliomaforecast", COMMANDS)
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    action = next(a for a in sub._actions if a.dest == "forecaster")
    return action, sub


def test_cli_choices_and_help_follow_the_registry() -> None:
    for command in ("forecast", "demo", "evaluate"):
        action, _ = _choices(command)
        listed = re.search(r"of ([\w, -]+?)(?:\)|;| \()", action.help).group(1).split(", ")
        assert listed == list(FORECASTER_NAMES), command
        assert action.default == (None if command == "evaluate" else DEFAULT_FORECASTER)


def test_cli_flag_is_named_for_a_core_field_error(tmp_path: Path, capsys) -> None:
    case = REPO / "Resources" / "SampleData" / "sample_patient" / "case.json"
    code = main(["forecast", str(case), "--day", "10", "--out", str(tmp_path / "o"), "--forecaster", "persistence"])
    err = capsys.readouterr().err
    assert code == 2 and "error: --day: target day 10 is not after the last scan" in err
    assert not (tmp_path / "o").exists()


def test_slicer_parameter_node_and_ui_tooltip_follow_the_registry() -> None:
    source = (REPO / "GliomaForecast" / "GliomaForecast.py").read_text()
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GliomaForecastParameterNode")
    field = next(s for s in cls.body if isinstance(s, ast.AnnAssign) and s.target.id == "forecaster")
    assert ast.unparse(field.annotation) == "Annotated[str, Choice(list(FORECASTER_NAMES))]"
    assert ast.unparse(field.value) == "DEFAULT_FORECASTER"
    ui = ET.parse(REPO / "Resources" / "UI" / "GliomaForecast.ui").getroot()
    combo = next(w for w in ui.iter("widget") if w.get("name") == "forecasterComboBox")
    tip = next(p for p in combo.findall("property") if p.get("name") == "toolTip").find("string").text
    assert tip == tooltip()


def test_parameter_node_defaults_come_from_the_defaults_module() -> None:
    tree = ast.parse((REPO / "GliomaForecast" / "GliomaForecast.py").read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "GliomaForecastParameterNode")
    values = {s.target.id: ast.unparse(s.value) for s in cls.body if isinstance(s, ast.AnnAssign) and s.value}
    for name, constant in (("samples", "SAMPLES"), ("seed", "SEED"), ("beta", "BETA_PER_MM"), ("mu", "MU_MM"),
                           ("marginMm", "MARGIN_MM"), ("nBootstrap", "N_BOOTSTRAP")):
        assert values[name] == f"defaults.{constant}", name
        assert hasattr(defaults, constant)


def test_readme_and_docs_list_the_registered_forecasters() -> None:
    readme = (REPO / "README.md").read_text()
    listed = re.search(r"--forecaster ([\w|-]+)\]", readme).group(1).split("|")
    assert listed == list(FORECASTER_NAMES)
    docs = (REPO / "docs" / "forecasters.md").read_text()
    table = re.findall(r"^\| `([\w-]+)` \| .* \| (\d+) \|$", docs, flags=re.M)
    assert table == [(e.name, str(e.min_scans)) for e in REGISTRY]
    evaluation = (REPO / "docs" / "evaluation.md").read_text()
    default_line = next(line for line in evaluation.splitlines() if line.startswith("- `--forecaster`"))
    assert re.findall(r"`([\w-]+)`", default_line.split("default every registered forecaster")[1]) == list(FORECASTER_NAMES)


# --- forecaster settings: declared once in the registry ---------------------------------------------------------

def test_settings_are_declared_once_with_a_default_among_their_choices() -> None:
    from gliomaforecast.forecasters.registry import OUTCOME, distinct_settings, setting_help, takers

    settings = distinct_settings()
    assert len({s.name for s in settings}) == len(settings)  # one declaration per name
    for setting in settings:
        assert setting.default in setting.choices and len(set(setting.choices)) == len(setting.choices)
        assert setting.name.isidentifier() and setting.help and "\n" not in setting_help(setting)
    assert entry("latent-diffusion").settings == (OUTCOME,) and takers("outcome") == ("latent-diffusion",)
    assert setting_help(OUTCOME).startswith("latent-diffusion only: ") and "(default unknown)" in setting_help(OUTCOME)


def test_a_forecaster_without_settings_gets_none() -> None:
    bare = [e for e in REGISTRY if not e.settings]
    assert entry("persistence") in bare and all(e.setting_names == () for e in bare)
    with pytest.raises(InputError, match="^outcome: the persistence forecaster has no 'outcome' setting; it applies "
                                         "to latent-diffusion$"):
        entry("persistence").create(outcome="responder")


def test_latent_diffusion_reads_its_outcome_choices_from_the_registry() -> None:
    from gliomaforecast.forecasters.latent import inputs as li
    from gliomaforecast.forecasters.registry import OUTCOME

    assert set(OUTCOME.choices) == {*li.OUTCOMES, "both"}  # the network's classes, and both of them beside
    assert entry("latent-diffusion").create().outcome == OUTCOME.default
    for choice in OUTCOME.choices:
        assert entry("latent-diffusion").create(outcome=choice).outcome == choice
    with pytest.raises(InputError, match=f"^outcome: must be one of {', '.join(OUTCOME.choices)}, got 'cured'$"):
        entry("latent-diffusion").create(outcome="cured")


# --- docs/forecasters.md: the contract and the registry table -----------------------------------------------------

def _doc_contract() -> dict[str, list[str]]:
    """Class name -> the fields listed in its table under a ``### `Name`...`` heading of docs/forecasters.md."""
    doc = (REPO / "docs" / "forecasters.md").read_text()
    tables = {}
    for section in re.split(r"^### ", doc, flags=re.M)[1:]:
        body = section.split("\n#", 1)[0]
        name = re.match(r"`(\w+)`", section)
        if name:
            tables[name.group(1)] = re.findall(r"^\| `(\w+)` \|", body, flags=re.M)
    return tables


def test_docs_contract_lists_every_field_of_the_contract_dataclasses() -> None:
    import dataclasses

    from gliomaforecast.forecasters.base import ForecasterOutput, ForecastRequest, Scenario
    from gliomaforecast.forecasters.registry import ForecasterEntry, Setting

    documented = _doc_contract()
    for cls in (ForecastRequest, ForecasterOutput, Scenario, ForecasterEntry, Setting):
        assert documented.get(cls.__name__) == [f.name for f in dataclasses.fields(cls)], cls.__name__


def test_docs_registry_table_gives_the_validated_days_and_settings_of_the_registry() -> None:
    docs = (REPO / "docs" / "forecasters.md").read_text()
    rows = re.findall(r"^\| `([\w-]+)` \| .* \| (\S+) \| \d+ \|$", docs, flags=re.M)
    assert rows == [(e.name, "—" if e.validated_days is None else f"{e.validated_days:g}") for e in REGISTRY]
    settings = re.findall(r"^\| `([\w-]+)` \| `(\w+)` \| (.*) \| `(\w+)` \|$", docs, flags=re.M)
    assert settings == [(e.name, s.name, ", ".join(f"`{c}`" for c in s.choices), s.default)
                        for e in REGISTRY for s in e.settings]
