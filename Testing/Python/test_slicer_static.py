"""Static checks of the Slicer module that need no Slicer: the .ui against the code and the parameter node, and the
CMake lists against the files on disk."""

from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "GliomaForecast"
MODULE_PY = MODULE / "GliomaForecast.py"
UI = REPO / "Resources" / "UI" / "GliomaForecast.ui"
CMAKE = MODULE / "CMakeLists.txt"


def _ui_widgets() -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ET.parse(UI).getroot().iter("widget")}


def _parameter_fields() -> dict[str, str]:
    """Annotated fields of the class decorated with @parameterNodeWrapper in GliomaForecast.py."""
    tree = ast.parse(MODULE_PY.read_text())
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)
               and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list)]
    assert len(classes) == 1, "exactly one @parameterNodeWrapper class"
    return {stmt.target.id: ast.unparse(stmt.annotation) for stmt in classes[0].body
            if isinstance(stmt, ast.AnnAssign)}


def test_every_widget_the_code_names_exists_in_the_ui():
    named = set(re.findall(r"self\.ui\.(\w+)", MODULE_PY.read_text()))
    widgets = _ui_widgets()
    assert named, "the widget names no ui widgets"
    assert sorted(named - set(widgets)) == []


def test_every_slicer_parameter_name_is_a_parameter_node_field_and_vice_versa():
    fields = _parameter_fields()
    bound = {}
    for name, widget in _ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.find("string").text] = widget.get("class")
    assert sorted(set(bound) - set(fields)) == []
    assert sorted(set(fields) - set(bound)) == []  # every field is editable in the panel
    # Widget kinds agree with the field types that connectGui binds them to.
    expected = {"vtkMRMLSegmentationNode": "qMRMLCheckableNodeComboBox", "vtkMRMLScalarVolumeNode": "qMRMLNodeComboBox",
                "bool": "QCheckBox", "str": "QLineEdit"}
    for field, annotation in fields.items():
        kind = bound[field]
        if annotation.startswith("list["):
            assert kind == "qMRMLCheckableNodeComboBox", field
        elif "Choice" in annotation:
            assert kind == "QComboBox", field
        elif annotation.startswith("Annotated[int") or annotation == "int":
            assert kind == "QSpinBox", field
        elif annotation.startswith("Annotated[float") or annotation == "float":
            assert kind == "ctkDoubleSpinBox", field
        else:
            assert kind == expected[annotation], field


def _parameter_defaults() -> dict[str, str]:
    """Default value expressions of the @parameterNodeWrapper class's fields, as source text."""
    tree = ast.parse(MODULE_PY.read_text())
    cls, = [node for node in tree.body if isinstance(node, ast.ClassDef)
            and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list)]
    return {stmt.target.id: ast.unparse(stmt.value) for stmt in cls.body
            if isinstance(stmt, ast.AnnAssign) and stmt.value is not None}


def test_plan_combo_box_is_bound_to_the_plan_choices_of_the_core():
    """The Standard plan combo box sits in the Target volume section, is bound to the parameter "plan", and the
    parameter's choices and default come from gliomaforecast.targets.standard_plan (one place for the CLI and the panel)."""
    from gliomaforecast.targets import standard_plan

    target, = [w for w in ET.parse(UI).getroot().iter("widget") if w.get("class") == "ctkCollapsibleButton"
               and w.find("property/string").text == "Target volume"]
    combo = {w.get("name"): w for w in target.iter("widget")}.get("planComboBox")
    assert combo is not None and combo.get("class") == "QComboBox"
    properties = {prop.get("name"): prop.find("string").text for prop in combo.findall("property")}
    assert properties["SlicerParameterName"] == "plan"
    assert all(name in properties["toolTip"] for name in standard_plan.CHOICES)
    assert _parameter_fields()["plan"] == "Annotated[str, Choice(list(standard_plan.CHOICES))]"
    assert _parameter_defaults()["plan"] == "standard_plan.AUTO"
    assert standard_plan.CHOICES == ("auto", "estro-eano", "flair") and standard_plan.AUTO == "auto"
    assert re.search(r"^from gliomaforecast.targets import .*\bstandard_plan\b", MODULE_PY.read_text(), re.M)


def test_the_panel_passes_its_plan_to_targets_and_forecast():
    source = MODULE_PY.read_text()
    for method in ("targetVolumesJob", "forecastJob"):
        call = re.search(rf"self\.logic\.{method}\((.*?)\)\n", source, re.S)
        assert call and "plan=p.plan" in call.group(1), method


def test_ui_has_the_four_sections_in_order():
    titles = [w.find("property/string").text for w in ET.parse(UI).getroot().iter("widget")
              if w.get("class") == "ctkCollapsibleButton"]
    assert titles == ["Inputs", "Growth", "Forecast", "Target volume"]


def test_node_selectors_list_node_types_and_get_the_scene():
    root = ET.parse(UI).getroot()
    selectors = [w.get("name") for w in root.iter("widget") if w.get("class", "").startswith("qMRML")
                 and w.get("class") != "qMRMLWidget"]
    receivers = {c.find("receiver").text for c in root.iter("connection")
                 if c.find("slot").text == "setMRMLScene(vtkMRMLScene*)"}
    assert selectors and sorted(set(selectors) - receivers) == []
    for widget in root.iter("widget"):
        if widget.get("name") in selectors:
            types = [s.text for s in widget.iter("string") if s.text and s.text.startswith("vtkMRML")]
            assert types, widget.get("name")


def _cmake_list(variable: str) -> list[str]:
    text = CMAKE.read_text()
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, variable
    items = [line.split("#")[0].strip() for line in match.group(1).splitlines()]
    return [item.replace("${MODULE_NAME}", "GliomaForecast") for item in items if item]


def test_cmake_lists_every_python_file_of_the_module():
    listed = _cmake_list("MODULE_PYTHON_SCRIPTS")
    on_disk = sorted(str(p.relative_to(MODULE)) for p in MODULE.rglob("*.py") if "__pycache__" not in p.parts)
    assert sorted(set(on_disk) - set(listed)) == [], "python files missing from MODULE_PYTHON_SCRIPTS"
    assert sorted(set(listed) - set(on_disk)) == [], "MODULE_PYTHON_SCRIPTS lists files that do not exist"
    assert len(listed) == len(set(listed)), "duplicates in MODULE_PYTHON_SCRIPTS"


def _cmake_globbed_resources() -> set[Path]:
    """Files matched by the file(GLOB_RECURSE MODULE_DATA_RESOURCES ...) patterns appended to the resources."""
    text = CMAKE.read_text()
    assert re.search(r"list\(APPEND MODULE_PYTHON_RESOURCES \$\{MODULE_DATA_RESOURCES\}\)", text)
    match = re.search(r"file\(GLOB_RECURSE MODULE_DATA_RESOURCES RELATIVE \$\{CMAKE_CURRENT_SOURCE_DIR\}(.*?)\)",
                      text, re.S)
    assert match
    found: set[Path] = set()
    for pattern in match.group(1).split():
        folder = (MODULE / pattern.replace("${CMAKE_CURRENT_SOURCE_DIR}/", "")).parent.resolve()
        assert pattern.endswith("/*") and folder.is_dir(), pattern
        found |= {p.resolve() for p in folder.rglob("*") if p.is_file()}
    return found


def test_cmake_lists_every_resource():
    listed = _cmake_list("MODULE_PYTHON_RESOURCES")
    assert sorted(item for item in listed if not (MODULE / item).exists()) == []
    covered = {(MODULE / item).resolve() for item in listed} | _cmake_globbed_resources()
    on_disk = [p for p in (REPO / "Resources").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    assert sorted(str(p.relative_to(REPO)) for p in on_disk if p.resolve() not in covered) == []


def _choice_and_default(field: str) -> tuple[str, str]:
    """The source text of a parameter node field's Choice argument and of its default."""
    annotation = _parameter_fields()[field]
    match = re.fullmatch(r"Annotated\[str, Choice\((.*)\)\]", annotation)
    assert match, annotation
    return match.group(1), _parameter_defaults()[field]


def test_each_forecaster_setting_is_a_parameter_choice_and_combo_box_from_the_registry():
    """One parameter node field and one combo box per distinct forecaster setting, their choices and default read from
    the registry's declaration (evaluated here in the registry's namespace) and the tooltip set from it at setup."""
    from gliomaforecast.forecasters import registry
    from GliomaForecastLib.panel import settingComboBox

    widgets = _ui_widgets()
    assert registry.distinct_settings()
    for setting in registry.distinct_settings():
        choices, default = _choice_and_default(setting.name)
        assert eval(choices, vars(registry)) == list(setting.choices), setting.name
        assert eval(default, vars(registry)) == setting.default, setting.name
        combo = widgets[settingComboBox(setting.name)]
        properties = {prop.get("name"): prop.find("string").text for prop in combo.findall("property")}
        assert combo.get("class") == "QComboBox" and properties["SlicerParameterName"] == setting.name
        assert "toolTip" not in properties  # the widget sets it from the declaration (registry.setting_help)


def test_outcome_parameter_reads_the_registry_declaration():
    assert _choice_and_default("outcome") == ("list(OUTCOME.choices)", "OUTCOME.default")
    source = MODULE_PY.read_text()
    assert re.search(r"^from gliomaforecast.forecasters.registry import \(?[^)]*\bOUTCOME\b", source, re.M)
    assert '"outcome"' not in source and "'outcome'" not in source  # no second spelling of the setting in the module
