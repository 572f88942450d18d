"""What produced a result: package versions, seed, git commit, device (saved as env.json)."""

from __future__ import annotations

import datetime
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "chestclip", "torch", "transformers", "tokenizers", "lightning", "numpy", "pandas",
    "scikit-learn", "pillow", "pydicom", "matplotlib", "pydantic",
)  # fmt: skip


def git_commit(path: Path | None = None) -> str | None:
    """The commit of the checkout holding chestclip (None for an installed wheel)."""
    path = path or Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(path), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def device_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def environment(seed: int | None = None) -> dict[str, Any]:
    """Everything needed to say how a result was produced."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "command": sys.argv,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "git_commit": git_commit(),
        "device": device_info(),
    }
