"""Imports every command module so each adds its group to the app. One line per module."""
from canaryflow.cli import sim_cmds  # noqa: F401
