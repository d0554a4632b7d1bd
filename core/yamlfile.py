"""Reading the project's YAML files (rule packs, routing, contacts, officers) with one kind of error message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: Path, error: Callable[[str], Exception]) -> Any:
    """The parsed document; an unreadable file or bad YAML raises ``error(message)`` naming the file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not YAML: {exc}") from None
