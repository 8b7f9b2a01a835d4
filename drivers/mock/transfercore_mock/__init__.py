"""An in-memory transfercore driver with crash simulation and fault injection."""

from .driver import MockDriver
from .stores import reset_stores

__all__ = ["MockDriver", "reset_stores"]
