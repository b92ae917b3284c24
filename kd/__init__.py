"""kd: config-driven knowledge distillation with Hydra and Lightning."""

import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from types import ModuleType

from kd.utils.resolvers import register_resolvers


class TorchvisionOpsFirst:
    """A ``sys.meta_path`` finder that runs kd's torchvision compatibility step
    (``kd.utils.torchvision_compat``) just before torchvision is first imported, whoever imports it
    (timm, torchmetrics, Lightning), and then steps aside. ``import kd`` itself stays light: torch is
    imported when a job needs it, not before its config is checked."""

    def find_spec(self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if name == "torchvision" and self in sys.meta_path:
            sys.meta_path.remove(self)
            from kd.utils.torchvision_compat import ensure_torchvision_ops

            ensure_torchvision_ops()
        return None  # the regular finders find it


if "torchvision" not in sys.modules and not any(isinstance(f, TorchvisionOpsFirst) for f in sys.meta_path):
    sys.meta_path.insert(0, TorchvisionOpsFirst())
register_resolvers()

__version__ = "0.1.0"
