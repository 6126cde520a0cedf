"""Render docs/images/panel.png: the Glioma Forecast panel's layout from Resources/UI/GliomaForecast.ui.

Slicer's own widget classes cannot load outside Slicer, so this script swaps each for its nearest plain Qt
class before loading the .ui offscreen. ctkCollapsibleButton becomes QGroupBox, ctkDoubleSpinBox becomes
QDoubleSpinBox, and qMRML(Checkable)NodeComboBox becomes QComboBox. The combo boxes are filled with the
sample patient's node names. Every widget bound to a parameter shows that parameter's default (read from
GliomaForecastParameterNode in GliomaForecast.py), as connectGui would show it. The picture shows the real
.ui's layout, labels and defaults; it is not a Slicer screenshot.

    pip install PySide6-Essentials   # not a project dependency; only for this picture
    QT_QPA_PLATFORM=offscreen python docs/images/make_panel_image.py
"""

from __future__ import annotations

import ast
import os
import re
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QBuffer, QByteArray, QIODevice  # noqa: E402
from PySide6.QtUiTools import QUiLoader  # noqa: E402
from PySide6.QtWidgets import (QAbstractSpinBox, QApplication, QCheckBox, QComboBox, QGroupBox,  # noqa: E402
                               QLineEdit, QWidget)

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "Resources" / "UI" / "GliomaForecast.ui"
MODULE = REPO / "GliomaForecast" / "GliomaForecast.py"
OUT = Path(__file__).resolve().parent / "panel.png"
PLAIN = {"ctkCollapsibleButton": "QGroupBox", "ctkDoubleSpinBox": "QDoubleSpinBox",
         "qMRMLCheckableNodeComboBox": "QComboBox", "qMRMLNodeComboBox": "QComboBox", "qMRMLWidget": "QWidget"}
SAMPLE_NODES = {"timepointSegmentationsSelector": "GTV day 0, 92, 171, 231 (4 checked)",
                "brainMaskSelector": "brain mask", "barrierSelector": "None", "doseSelector": "RT dose",
                "scoreVolumeSelector": "Forecast probability day 351", "referenceFlairSelector": "None"}


def plain_ui(text: str) -> str:
    """The .ui with Slicer/CTK classes replaced by plain Qt ones and their custom-widget block removed."""
    text = re.sub(r"<customwidgets>.*?</customwidgets>", "", text, flags=re.S)
    for custom, plain in PLAIN.items():
        text = text.replace(f'class="{custom}"', f'class="{plain}"')
    return text


def parameter_defaults() -> dict[str, tuple[object, list[str]]]:
    """{parameter name: (default value, Choice options or [])} of GliomaForecastParameterNode."""
    tree = ast.parse(MODULE.read_text())
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "GliomaForecastParameterNode")
    out = {}
    # Defaults name the core's plain-Python settings (gliomaforecast.defaults, the forecaster registry).
    sys.path.insert(0, str(MODULE.parent))
    from gliomaforecast import defaults
    from gliomaforecast.forecasters import DEFAULT_FORECASTER, FORECASTER_NAMES
    from gliomaforecast.forecasters.registry import OUTCOME
    from gliomaforecast.targets import standard_plan
    from GliomaForecastLib import panel as panel_settings
    names = {"defaults": defaults, "DEFAULT_FORECASTER": DEFAULT_FORECASTER, "FORECASTER_NAMES": FORECASTER_NAMES,
             "OUTCOME": OUTCOME, "standard_plan": standard_plan, "list": list,
             **{k: getattr(panel_settings, k) for k in dir(panel_settings) if k.isupper()}}
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and item.value is not None:
            choice = next((c for c in ast.walk(item.annotation) if isinstance(c, ast.Call)
                           and getattr(c.func, "id", None) == "Choice"), None)
            choices = list(eval(compile(ast.Expression(choice.args[0]), "choices", "eval"), names)) if choice else []
            out[item.target.id] = (eval(compile(ast.Expression(item.value), "default", "eval"), names), choices)
    return out


def show_defaults(panel: QWidget) -> None:
    """Set every widget with a SlicerParameterName to that parameter's default."""
    defaults = parameter_defaults()
    for widget in panel.findChildren(QWidget):
        name = widget.property("SlicerParameterName")
        if name not in defaults:
            continue
        value, choices = defaults[name]
        if isinstance(widget, QAbstractSpinBox):
            widget.setMaximum(max(widget.maximum(), float(value)))
            widget.setValue(value)
        elif isinstance(widget, QCheckBox):
            widget.setChecked(bool(value))
        elif isinstance(widget, QComboBox):
            widget.clear()
            widget.addItems(choices or [str(value)])
            widget.setCurrentText(str(value))
        elif isinstance(widget, QLineEdit):
            widget.setText(str(value))


def main() -> None:
    app = QApplication.instance() or QApplication(sys.argv)
    data = QByteArray(plain_ui(UI.read_text()).encode())
    buffer = QBuffer(data)
    buffer.open(QIODevice.ReadOnly)
    panel = QUiLoader().load(buffer)
    for box in panel.findChildren(QGroupBox):
        box.setTitle(box.property("text") or box.title())
    show_defaults(panel)
    for combo in panel.findChildren(QComboBox):
        if combo.count() == 0:
            combo.addItem(SAMPLE_NODES[combo.objectName()])
    panel.resize(420, panel.sizeHint().height())
    panel.grab().save(str(OUT))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
