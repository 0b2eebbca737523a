"""WARDEN_KEY_MODE is checked when the key store is built: a mistyped mode stops the signer (and
the admin CLI) at start with the modes there are, instead of failing at the first vault."""

import dataclasses
from pathlib import Path

import pytest

from runtime.config import Settings
from signer.custody.errors import CustodyError
from signer.custody.modes import MODES, mode_named
from signer.custody_wiring import keystore_from_settings


def test_every_mode_reads_as_itself() -> None:
    assert [mode_named(name) for name in MODES] == list(MODES)


def test_a_mistyped_key_mode_is_refused_naming_the_modes_before_anything_is_built(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings(home=tmp_path), key_mode="2of3-multi-hsm")
    with pytest.raises(CustodyError, match=r"unknown custody mode '2of3-multi-hsm'; choose one of standard, "):
        keystore_from_settings(settings)
    assert not (tmp_path / "vault").exists()


def test_the_default_mode_builds_a_key_store(tmp_path: Path) -> None:
    assert keystore_from_settings(Settings(home=tmp_path, allow_dev_root=True)).mode == "standard"
