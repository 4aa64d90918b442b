"""The Feast-facing layer: sources, views, the offline and online stores, the compute engine."""
