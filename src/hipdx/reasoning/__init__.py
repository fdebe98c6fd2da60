"""The pure reasoning core: case in, assessment out. No I/O, no clock, no global configuration."""

from hipdx.reasoning.assess import assess
from hipdx.reasoning.assessment import Assessment

__all__ = ["Assessment", "assess"]
