"""Reading a claims file (a mistake is one line naming the claim and key), and finding
the one a study registered by its content hash."""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import ValidationError

from analysis.claims.schema import RULE_TESTS, ClaimsFile
from trainable.config import CONFIG_DIR
from trainable.errors import UserError, validation_line


DEFAULT_CLAIMS = CONFIG_DIR / "claims.yaml"


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_claims_path(value, base: Path = CONFIG_DIR) -> Path | None:
    """study.yaml's `claims`: relative to the configs dir, absolute, or null."""
    if value in (None, "", False):
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else base / path


def load_registered(path: str | Path, sha256: str) -> ClaimsFile:
    """The claims file a study registered. When the recorded path is gone (the study was
    copied or is read on another machine), the file of the same name in this checkout's
    configs/ is used if its content hash is the registered one."""
    path = Path(path)
    if not path.is_file():
        local = CONFIG_DIR / path.name
        if local.is_file() and content_hash(local.read_text()) == sha256:
            return load_claims(local)
    return load_claims(path)


def load_claims(path: str | Path) -> ClaimsFile:
    """Read and check a claims file; a mistake raises UserError naming claim and key."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: claims file not found; fix the preset's 'claims' or pass "
                        "--claims")
    text = path.read_text()
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError:
        raise UserError(f"{path}: not valid YAML; fix the syntax") from None
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a mapping with a 'claims' list")
    try:
        claims = ClaimsFile.model_validate(tree)
    except ValidationError as err:
        raise UserError(validation_line(err, str(path), _name_claim(tree))) from None
    return claims.model_copy(update={"path": str(path), "sha256": content_hash(text)})


def _name_claim(tree: dict):
    """Error locations say claim 'id' instead of claims.3.rule."""
    def rename(loc: tuple) -> tuple:
        if len(loc) >= 2 and loc[0] == "claims" and isinstance(loc[1], int):
            items = tree.get("claims") or []
            claim = items[loc[1]] if loc[1] < len(items) else None
            name = (f"claim {claim['id']!r}" if isinstance(claim, dict) and "id" in claim
                    else f"claims[{loc[1]}]")
            rest = tuple(p for p in loc[2:] if p != "rule")
            # A discriminated union adds the test's name to the location.
            rest = tuple(p for p in rest if p not in RULE_TESTS)
            return (name, *rest)
        return loc
    return rename
