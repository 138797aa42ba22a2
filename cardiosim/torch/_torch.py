"""Import torch once, with an installation hint when the optional extra is missing."""

from __future__ import annotations

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised only without torch
    raise ImportError("cardiosim.torch needs PyTorch, an optional extra: "
                      "pip install 'cardiosim[torch]'") from exc

__all__ = ["torch"]
