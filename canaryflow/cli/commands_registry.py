"""Imports every command module so each adds its commands to the app."""

from canaryflow.cli import (  # noqa: F401
    codec_cmds,
    config_cmds,
    demo_cmds,
    doctor_cmds,
    eval_cmds,
    gateway_cmds,
    keys_cmds,
    rollout_cmds,
    sim_cmds,
)
