"""mypy runs in CI (`./infra/dev.sh lint`) with no blanket ignores: every `# type: ignore` names
the error codes it silences (mypy's ignore-without-code enforces that) and says why after them, on
the same line, so a reader knows whose types are wrong."""

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from schemas.auth import load_or_create_ed25519
from tests.layers_support import REPO, sources

EXPLAINED = re.compile(r"# type: ignore\[[-a-z, ]+\] +# \S")


def test_every_type_ignore_names_its_codes_and_says_why() -> None:
    ignores = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "type: ignore" in line
    ]
    unexplained = [ignore for ignore in ignores if not EXPLAINED.search(ignore)]
    assert not unexplained, f"name the codes and say why: {unexplained}"


def test_a_key_file_that_holds_another_kind_of_key_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "identity.pem"
    path.write_bytes(X25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    with pytest.raises(ValueError, match=r"identity.pem holds a .*X25519PrivateKey.*not an Ed25519 key"):
        load_or_create_ed25519(path)
