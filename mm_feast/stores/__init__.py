"""mm-feast's own tables and files: lineage and served versions in the registry database, quarantine, offline parquet."""
