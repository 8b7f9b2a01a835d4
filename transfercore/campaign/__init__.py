"""Tree campaigns: a directory tree copied as one resumable, verified campaign.

See ``docs/trees.md``.  :class:`TreeCopy` runs one; :class:`CampaignStore`
holds every campaign's per-entry state; tasks run behind an
:class:`~.executor.Executor` (a local thread pool by default).
"""

from .executor import Executor, LocalPool
from .model import Entry, FileState, Kind, Record
from .runner import TreeCopy, TreeOptions, TreeResult
from .store import CampaignStore, Counts
from .walk import manifest_entries, walk

__all__ = [
    "CampaignStore",
    "Counts",
    "Entry",
    "Executor",
    "FileState",
    "Kind",
    "LocalPool",
    "Record",
    "TreeCopy",
    "TreeOptions",
    "TreeResult",
    "manifest_entries",
    "walk",
]
