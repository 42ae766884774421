"""The package version, read from package.xml: the one place it is written."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path


def _version() -> str:
    # A source checkout (editable install or PYTHONPATH) reads package.xml directly, so a
    # version bump shows without reinstalling; an installed package reads its metadata,
    # which setup.py took from the same file.
    package_xml = Path(__file__).resolve().parent.parent / "package.xml"
    if package_xml.is_file():
        match = re.search(r"<version>\s*([^<\s]+)\s*</version>", package_xml.read_text())
        if match:
            return match.group(1)
    try:
        return metadata.version("llm3d")
    except metadata.PackageNotFoundError:
        return "0+unknown"


__version__ = _version()
