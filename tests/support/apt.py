"""Debian packages a test needs, installed by the test's own set-up where missing (CI is fresh)."""

from __future__ import annotations

import os
import shutil
import subprocess


def apt_install(*packages: str) -> bool:
    """``apt-get update && apt-get install -y PACKAGES`` if this process is root on a system
    with apt-get; False (nothing done) otherwise. Raises CalledProcessError if apt-get fails."""
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return False
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-q"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env, capture_output=True)
    return True
