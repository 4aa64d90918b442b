"""The bottom layer: errors, the row schema, records and small pure helpers. Imports nothing of mm_feast."""
