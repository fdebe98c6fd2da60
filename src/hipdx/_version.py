"""The version of hipdx: one home, imported by every module that records it (provenance)."""

__version__ = "0.1.0"
