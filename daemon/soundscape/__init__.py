"""Soundscape daemon: plays a Daydream Scope server like an instrument."""

__version__ = "0.1.0"
