"""Data-quality gates on Great Expectations 1.x: media before decoding, embeddings before any write.

Suites live in the Feast repo (``<repo>/quality/*.yaml``, see :mod:`mm_feast.quality.suites`);
ingest runs them through :class:`mm_feast.quality.gate.IngestGate`, Feast's direct write path
through :func:`mm_feast.services.push.gated_write_to_online_store`, and ``mm-feast validate`` on
demand. Failing rows go to quarantine (:mod:`mm_feast.quarantine`). GE itself is imported only
when a batch is validated.
"""
