"""Inference engines, registered by the config's ``local_engine`` name."""
