"""Imports every command module so each adds its group to the app. One line per module."""
import canaryflow.cli.demo_cmds
import canaryflow.cli.gateway_cmds  # noqa: F401
from canaryflow.cli import sim_cmds  # noqa: F401
from canaryflow.cli import eval_cmds  # noqa: F401
from canaryflow.cli import config_cmds  # noqa: F401
from canaryflow.cli import rollout_cmds  # noqa: F401
from canaryflow.cli import keys_cmds  # noqa: F401
from canaryflow.cli import codec_cmds  # noqa: F401
