"""Files out of a wheel on PyPI, fetched once with `pip download` into a cache folder."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Callable


def extract_from_wheel(wheel: str, cache: Path, keep: Callable[[str], bool]) -> None:
    """Download `wheel` (name==version, no dependencies) and copy the members `keep` accepts
    into `cache`, flat, by file name."""
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", wheel, "-d", tmp],
                       check=True, capture_output=True)
        (path,) = Path(tmp).glob("*.whl")
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                if keep(member):
                    (cache / Path(member).name).write_bytes(archive.read(member))
