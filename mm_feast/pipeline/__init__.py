"""The ingest pipeline: one run per `feast materialize`, over the stages that turn files into rows."""
