"""The device roles' argument specs and defaults never drift apart (every public variable documented)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


@pytest.mark.parametrize("role", ["nvr", "switch_ports", "ai_box"])
def test_defaults_and_argument_specs_agree(role: str) -> None:
    defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text(encoding="utf-8"))
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text(encoding="utf-8"))
    options = specs["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, spec in options.items():
        assert name.startswith(f"{role}_"), f"{name}: public variables carry the role prefix"
        assert spec.get("description"), f"{name}: no description"
        assert spec.get("default") == defaults[name], f"{name}: the spec's default differs from defaults/main.yml"
    # remove.yml's entry point documents a subset of the same variables, with the same defaults.
    for name, spec in specs["argument_specs"]["remove"].get("options", {}).items():
        assert spec.get("default") == defaults[name], name


def _walk_descriptions(node: object) -> list[object]:
    """Every description value in a documentation tree (each must be text or a list of text)."""
    found: list[object] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "description":
                found += value if isinstance(value, list) else [value]
            found += _walk_descriptions(value)
    elif isinstance(node, list):
        for item in node:
            found += _walk_descriptions(item)
    return found


@pytest.mark.parametrize("name", ["hazmon_nvr_gb28181", "hazmon_switch_ports", "hazmon_ai_box_analytics"])
def test_module_documentation_matches_its_argument_spec(name: str) -> None:
    path = ROLES.parent / "plugins" / "modules" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    doc = yaml.safe_load(module.DOCUMENTATION)
    yaml.safe_load(module.EXAMPLES)
    returned = yaml.safe_load(module.RETURN)
    assert doc["module"] == name
    for text in _walk_descriptions(doc) + _walk_descriptions(returned):
        assert isinstance(text, str), f"a description that YAML read as {text!r}: quote it"
    documented = dict(doc["options"])
    for fragment in doc.get("extends_documentation_fragment", []):  # the shared options, as ansible-doc merges them
        frag_path = ROLES.parent / "plugins" / "doc_fragments" / f"{fragment}.py"
        frag_spec = importlib.util.spec_from_file_location(fragment, frag_path)
        frag = importlib.util.module_from_spec(frag_spec)
        frag_spec.loader.exec_module(frag)
        documented.update(yaml.safe_load(frag.ModuleDocFragment.DOCUMENTATION)["options"])
    assert set(documented) == set(module.ARGUMENT_SPEC)
    for option, arg in module.ARGUMENT_SPEC.items():
        got = documented[option]
        assert got.get("type", "str") == arg.get("type", "str"), option
        assert got.get("default") == arg.get("default"), option
        assert bool(got.get("required")) == bool(arg.get("required")), option
        assert bool(got.get("no_log")) == bool(arg.get("no_log")), option
        assert got.get("choices") == arg.get("choices"), option
