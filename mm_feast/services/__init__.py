"""Use cases over the stores and the Feast plugin: search, lineage, versions, quarantine, gated push."""
