"""Every role documents every default in meta/argument_specs.yml, with the same value; options
without a default must be required; nothing that looks like a password has a default."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in (ROOT / "roles").glob("*/defaults/main.yml"))
SECRET_WORDS = ("password", "secret", "token")


def _load(p: Path):
    return yaml.safe_load(p.read_text()) or {}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_defaults_match_argument_specs(role: Path):
    defaults = _load(role / "defaults/main.yml")
    spec_file = role / "meta/argument_specs.yml"
    assert spec_file.exists(), f"{role.name}: meta/argument_specs.yml missing"
    options = _load(spec_file)["argument_specs"]["main"]["options"]
    missing = sorted(set(defaults) - set(options))
    assert not missing, f"{role.name}: defaults not documented in argument_specs: {missing}"
    for name, opt in options.items():
        assert name.startswith(role.name + "_"), f"{role.name}: public var {name} lacks the role prefix"
        assert opt.get("description"), f"{role.name}: {name} has no description"
        if name in defaults:
            assert "default" in opt, f"{role.name}: {name} has a default but the spec shows none"
            assert opt["default"] == defaults[name], f"{role.name}: {name} default differs from spec"
        else:
            assert opt.get("required") is True, f"{role.name}: {name} has no default and is not required"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_no_default_secrets(role: Path):
    defaults = _load(role / "defaults/main.yml")
    for name, value in defaults.items():
        if any(w in name for w in SECRET_WORDS) and not name.endswith(("_file", "_dir", "_path")):
            assert value in (None, ""), f"{role.name}: {name} must not have a default value"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_layout(role: Path):
    for rel in ("meta/main.yml", "tasks/main.yml"):
        assert (role / rel).exists(), f"{role.name}: {rel} missing"
    private = {}
    for rel in ("vars/main.yml", "vars/Debian.yml", "vars/Ubuntu.yml"):
        if (role / rel).exists():
            private.update(_load(role / rel))
    for name in private:
        assert name.startswith(f"__{role.name}_"), f"{role.name}: private var {name} must be __{role.name}_*"


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_os_vars_only_where_the_oses_differ(role: Path):
    """vars/<distribution>.yml exist as a pair that differs, and are loaded exactly then."""
    debian, ubuntu = role / "vars/Debian.yml", role / "vars/Ubuntu.yml"
    loads = "include_vars" in (role / "tasks/main.yml").read_text()
    assert debian.exists() == ubuntu.exists() == loads, f"{role.name}: OS vars need both files and the include task"
    if loads:
        assert _load(debian) != _load(ubuntu), f"{role.name}: identical OS vars belong in vars/main.yml"
