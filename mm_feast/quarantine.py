"""Old import path, kept for user code: see ``mm_feast.stores.quarantine`` (the tables) and
``mm_feast.services.quarantine`` (release)."""

from mm_feast.services.quarantine import release  # noqa: F401
from mm_feast.stores.quarantine import *  # noqa: F401,F403
