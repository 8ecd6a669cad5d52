"""Molecule scenarios share one base config (.config/molecule/config.yml) and state only what differs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / ".config/molecule/config.yml"
SCENARIOS = sorted(ROOT.glob("roles/*/molecule/default/molecule.yml"))
# What a scenario may say: its host and groups, its own env values, its own test sequence.
ALLOWED = {"platforms", "provisioner", "scenario"}


def test_base_config_has_the_shared_settings() -> None:
    base = yaml.safe_load(BASE.read_text())
    assert base["driver"]["name"] == "default"
    playbooks = base["provisioner"]["playbooks"]
    for name in ("create", "prepare", "destroy"):
        # Relative to each scenario directory (roles/<role>/molecule/default).
        target = ROOT / "roles/x/molecule/default" / playbooks[name]
        assert target.resolve().is_file(), f"{name}: {playbooks[name]} does not resolve from a scenario"
    assert "idempotence" in base["scenario"]["test_sequence"]


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.parts[-4])
def test_scenario_states_only_differences(path: Path) -> None:
    role = path.parts[-4]
    scenario = yaml.safe_load(path.read_text())
    assert set(scenario) <= ALLOWED, f"{role}: {sorted(set(scenario) - ALLOWED)} belong in the base config"
    assert set(scenario.get("provisioner", {})) <= {"env"}, f"{role}: provisioner settings belong in the base config"
    env = scenario.get("provisioner", {}).get("env", {})
    base_env = yaml.safe_load(BASE.read_text())["provisioner"]["env"]
    assert not set(env) & set(base_env), f"{role}: env repeats the base config"
    assert env["GG_SECRETS_DIR"].endswith(f"molecule-{role}"), f"{role}: its own secrets directory"
    assert len(scenario["platforms"]) == 1 and scenario["platforms"][0]["groups"][0] == "gourmetgram"


VERIFIES = sorted(ROOT.glob("roles/*/molecule/default/verify.yml"))


@pytest.mark.parametrize("path", VERIFIES, ids=lambda p: p.parts[-4])
def test_verify_gathers_the_network_facts(path: Path) -> None:
    # gourmetgram_private_address (inventory/group_vars/all/topology.yml) is read from the host's
    # network facts; a verify play without them fails on the first address it renders.
    topology = (ROOT / "inventory/group_vars/all/topology.yml").read_text()
    assert "ansible_facts['default_ipv4']" in topology, "the private address no longer comes from facts"
    for play in yaml.safe_load(path.read_text()):
        assert play.get("gather_facts", True), f"{path.parts[-4]}: {play['name']} gathers no facts"
        subset = play.get("gather_subset", ["all"])
        assert {"all", "network"} & set(subset), f"{path.parts[-4]}: {play['name']} leaves out the network facts"
