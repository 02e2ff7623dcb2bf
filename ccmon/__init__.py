"""ccmon: real-time contact-centre monitor.

The subpackages `ccmon.stream`, `ccmon.consumers` and `ccmon.alerts` live in the top-level
folders `stream/`, `consumers/` and `alerts/` (the design card's layout; pyproject.toml maps
them when installing). Run from a checkout (`python -m ccmon` in the repository root, where
this folder shadows the installed package), they are found here, beside it.
"""

from pathlib import Path

_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "pyproject.toml").is_file() and (_checkout / "stream" / "engine.py").is_file():
    __path__.append(str(_checkout))
