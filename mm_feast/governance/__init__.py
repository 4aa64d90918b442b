"""Governance: content filters per input modality (before any model sees the input), then bias in
the joint space and explanations across modalities."""
