"""mm-feast: a multi-modal feature store built as an extension of Feast."""

__version__ = "0.1.0"
