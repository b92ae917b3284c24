"""kd: config-driven knowledge distillation with Hydra and Lightning."""

from kd.utils.resolvers import register_resolvers
from kd.utils.torchvision_compat import ensure_torchvision_ops

# Must run before anything imports torchvision (timm, torchmetrics and lightning do).
TORCHVISION_OPS = ensure_torchvision_ops()
register_resolvers()

__version__ = "0.1.0"
