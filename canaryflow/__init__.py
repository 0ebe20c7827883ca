"""canaryflow: durable, metric-gated rollouts of AI configurations on Temporal."""

from canaryflow.domain.config import ConfigSpec
from canaryflow.domain.resolution import Resolution
from canaryflow.domain.segments import Segment
from canaryflow.errors import CanaryflowError

__version__ = "0.1.0"

__all__ = ["CanaryflowError", "ConfigSpec", "Resolution", "Segment", "__version__"]
