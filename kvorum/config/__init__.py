"""The member's configuration: etcd 3.4's flags, ``ETCD_*`` variables and config file → one
frozen :class:`ServerConfig`, built in this one place.

Sources and precedence follow etcd 3.4 exactly (each rule was checked against the real binary):

* Command-line flags use Go's ``flag`` rules: ``--flag``, ``-flag``, ``--flag=v``, ``-flag=v`` and
  ``--flag v``; booleans take ``--flag`` or ``--flag=true|false`` but never a separate word;
  parsing stops at ``--`` or the first non-flag word; a flag given twice keeps the last value.
* ``ETCD_<FLAG_NAME>`` variables fill flags not given on the command line. Giving both the
  flag and its variable is refused (etcd exits on "conflicting environment variable"), and an
  ``ETCD_*`` variable that names no flag only earns a warning.
* ``--config-file`` (or ``ETCD_CONFIG_FILE``) switches to YAML keyed by flag name. etcd then
  IGNORES every other flag and every ``ETCD_*`` variable — they are still syntax-checked, but
  their values are dropped — and so does kvorum. YAML values must have the types etcd's JSON
  decoder wants; unknown keys are ignored with a warning.

Errors carry the exit status etcd uses: 2 when Go's flag parser refuses a value (unknown flag,
malformed number, bad choice), 1 when the parsed values fail etcd's later checks ("error
verifying flags"), e.g. an election timeout under five heartbeats.

``verify_bootstrap`` holds the checks etcd makes only when a member starts without a WAL (the
name must be in ``--initial-cluster``, advertised peer URLs must match it, no URL twice); the
member runs them when it creates a fresh data directory.

The package is pure apart from reading the config file: the environment is passed in, and
warnings are returned in the config for the caller to log. Its modules, one concern each:

=====================  =========================================================================
``_errors``            :class:`ConfigError` and etcd's exit statuses
``_goflag``            Go's boolean, integer and duration syntax (``strconv``, ``time``)
``_urls``              URL and ``--initial-cluster`` validation, canonical forms
``_flags``             the flag table and how one flag's text becomes a value
``_cmdline``           the command line, by Go's ``flag`` rules
``_env``               ``ETCD_*`` variables
``_goyaml``            a YAML loader that reads scalars as go-yaml v2 does
``_file``              ``--config-file``: key types and etcd's staged application
``_checks``            etcd's checks in etcd's order; the bootstrap checks
``_server_config``     the frozen :class:`ServerConfig` and its derived values
``_load``              the entry points that run the sources, checks and freezing in order
``_text``              ``--help`` and ``--version`` output
=====================  =========================================================================
"""

from kvorum.config._checks import verify_bootstrap
from kvorum.config._errors import EXIT_INVALID, EXIT_USAGE, ConfigError
from kvorum.config._flags import FLAGS, FlagSpec, Kind
from kvorum.config._goflag import (
    GoValueError,
    parse_go_bool,
    parse_go_duration_ns,
    parse_go_int,
    parse_go_uint,
)
from kvorum.config._load import Invocation, load_config, parse_invocation
from kvorum.config._server_config import DEFAULT_QUOTA_BACKEND_BYTES, ServerConfig
from kvorum.config._text import ETCD_API_VERSION, help_text, version_text
from kvorum.config._urls import parse_initial_cluster, parse_url, parse_url_list

__all__ = [
    "DEFAULT_QUOTA_BACKEND_BYTES",
    "ETCD_API_VERSION",
    "EXIT_INVALID",
    "EXIT_USAGE",
    "FLAGS",
    "ConfigError",
    "FlagSpec",
    "GoValueError",
    "Invocation",
    "Kind",
    "ServerConfig",
    "help_text",
    "load_config",
    "parse_go_bool",
    "parse_go_duration_ns",
    "parse_go_int",
    "parse_go_uint",
    "parse_initial_cluster",
    "parse_invocation",
    "parse_url",
    "parse_url_list",
    "verify_bootstrap",
    "version_text",
]
