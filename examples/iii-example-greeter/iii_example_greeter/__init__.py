"""An example third-party iii module distribution (see docs/writing-a-module.md)."""
