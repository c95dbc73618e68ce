"""The sandbox runs exactly the shipped hub configuration plus a small overlay: loading both, the
overlay may change no trait outside its allow-list (OVERLAY_TRAITS: ports, paths, the dummy
authenticator, the namespace, timings)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

from sandbox.jupyterhub import SHIPPED
from sandbox.jupyterhub.harness import CONFIG as OVERLAY
from sandbox.jupyterhub.harness import OVERLAY_TRAITS


def load(path: Path) -> Config:
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


def flat(c: Config) -> dict[str, Any]:
    """``{"Class.trait": value}``; a hook compares by where it is defined (two loads of a file
    make two function objects)."""
    out = {}
    for section, traits in c.items():
        for trait, value in traits.items():
            if callable(value):
                value = (value.__code__.co_filename, value.__qualname__)
            out[f"{section}.{trait}"] = value
    return out


def changed_by(overlay: Path) -> set[str]:
    shipped, merged = flat(load(SHIPPED)), flat(load(overlay))
    return {key for key, value in merged.items() if shipped.get(key, object()) != value}


def settings_file(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "settings.json"
    path.write_text(
        json.dumps(
            {
                "state_dir": str(tmp_path),
                "public_port": 8002,
                "hub_port": 40001,
                "proxy_api_port": 40002,
                "namespace": "jupyter",
                "slow_spawn_timeout": 1,
                "start_timeout": 10,
                "http_timeout": 5,
                "poll_interval": 1,
            }
        )
    )
    monkeypatch.setenv("CLUSTERWEB_HUB_SETTINGS", str(path))


def test_the_overlay_changes_only_allowed_traits(tmp_path, monkeypatch):
    settings_file(tmp_path, monkeypatch)

    changed = changed_by(OVERLAY)

    assert changed <= OVERLAY_TRAITS, f"outside the allow-list: {changed - OVERLAY_TRAITS}"
    # It does set what it is for (the check is not vacuous): ports, the authenticator.
    assert {"JupyterHub.bind_url", "JupyterHub.authenticator_class"} <= changed
    # tornado_settings is one trait holding many settings (xsrf_cookies, headers...): the
    # overlay may set the spawn timing in it and nothing else.
    assert set(load(OVERLAY).JupyterHub.tornado_settings) == {"slow_spawn_timeout"}


def test_an_overlay_that_overrides_the_shipped_profiles_or_roles_is_caught(tmp_path, monkeypatch):
    settings_file(tmp_path, monkeypatch)
    text = OVERLAY.read_text().replace(
        'Path(__file__).resolve().parents[2] / "deploy" / "jupyterhub" / "jupyterhub_config.py"',
        repr(str(SHIPPED)),
    )
    assert repr(str(SHIPPED)) in text
    sneaky = tmp_path / "overlay.py"
    sneaky.write_text(
        text
        + "\nc.KubeSpawner.profile_list = []\n"
        + "c.JupyterHub.load_roles = [{'name': 'user', 'scopes': ['self']}]\n"
    )

    assert changed_by(sneaky) - OVERLAY_TRAITS == {
        "KubeSpawner.profile_list",
        "JupyterHub.load_roles",
    }


def test_the_overlay_keeps_the_shipped_spawner_hooks_and_roles(tmp_path, monkeypatch):
    settings_file(tmp_path, monkeypatch)
    shipped, merged = flat(load(SHIPPED)), flat(load(OVERLAY))

    for key in ("JupyterHub.spawner_class", "KubeSpawner.profile_list", "JupyterHub.load_roles"):
        assert merged[key] == shipped[key]
    assert merged["KubeSpawner.apply_user_options"][0] == str(SHIPPED)
