"""``ETCD_*`` environment variables: they fill flags the command line left unset.

Giving both a flag and its variable is refused (etcd exits on "conflicting environment
variable"); an ``ETCD_*`` variable that names no flag only earns a warning. The environment is
passed in as a mapping, never read from ``os.environ`` here.
"""

from __future__ import annotations

from collections.abc import Mapping

from kvorum.config._errors import ConfigError
from kvorum.config._flags import BY_NAME, ENV_PREFIX, FLAGS, Parsed, parse_flag_text, set_value
from kvorum.config._goflag import GoValueError


def apply_environment(parsed: Parsed, environ: Mapping[str, str]) -> None:
    """Fill flags not on the command line from ``ETCD_*``, refusing flag/variable conflicts."""
    on_command_line = {BY_NAME[name].env_key for name in parsed.set_names}
    for key in sorted(environ):
        if key in on_command_line:
            # etcd treats even an empty variable as a conflict here.
            raise ConfigError(
                f'conflicting environment variable "{key}" is shadowed by the command-line '
                "flag (unset the variable or drop the flag)"
            )
    used: set[str] = set()
    for spec in FLAGS:
        text = environ.get(spec.env_key, "")
        if spec.name in parsed.set_names or text == "":
            continue
        used.add(spec.env_key)
        try:
            value = parse_flag_text(spec, text)
        except GoValueError as err:
            raise ConfigError(f'invalid value "{text}" for {spec.env_key}: {err}') from None
        set_value(parsed, spec, value)
    for key in sorted(environ):
        if key.startswith(ENV_PREFIX) and key not in used and key not in on_command_line:
            parsed.warnings.append(f"unrecognized environment variable {key}={environ[key]}")
