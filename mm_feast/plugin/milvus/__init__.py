"""Milvus (Lite and server) behind Feast's online-store interface."""
