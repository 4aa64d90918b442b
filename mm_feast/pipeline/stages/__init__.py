"""One module per ingest stage; ``mm_feast.pipeline.stage_list`` fixes their order."""
