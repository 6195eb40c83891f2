"""A PyYAML loader that reads plain scalars the way go-yaml v2 (under etcd's loader) does.

The two YAML 1.1 readers disagree on untagged scalars: Go reads ``1e3`` as a number and
``y``/``n`` as booleans, while PyYAML reads ``1e3`` as a string and ``1:30`` as the sexagesimal
90. Matching Go keeps "etcd accepts this file" and "kvorum accepts this file" the same
statement. Also here: how a decoded value's type is named in error messages.
"""

from __future__ import annotations

import math
import re
from typing import Final

import yaml

from kvorum.config._goflag import GoValueError, parse_go_int, parse_go_uint


def yaml_type_name(value: object) -> str:
    """How error messages name a decoded value's type ("a string", "a list", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_YAML_BOOL_TAG: Final = "tag:yaml.org,2002:bool"
_GO_NUMBER_TAG: Final = "tag:kvorum.invalid,2026:go-yaml-number"
_GO_YAML_TRUE: Final = frozenset(
    {"y", "Y", "yes", "Yes", "YES", "on", "On", "ON", "true", "True", "TRUE"}
)
_GO_YAML_FALSE: Final = frozenset(
    {"n", "N", "no", "No", "NO", "off", "Off", "OFF", "false", "False", "FALSE"}
)
_GO_YAML_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_GO_YAML_SPECIAL_FLOATS: Final = {
    **{
        sign + word: float(sign + "inf")
        for sign in ("", "+", "-")
        for word in (".inf", ".Inf", ".INF")
    },
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
}


class GoYamlLoader(yaml.SafeLoader):
    """PyYAML reading plain scalars the way go-yaml v2 — under etcd's config loader — does.

    The two YAML 1.1 readers disagree on untagged scalars: Go reads ``1e3`` as a number and
    ``y``/``n`` as booleans, while PyYAML reads ``1e3`` as a string and ``1:30`` as the
    sexagesimal 90. Matching Go keeps "etcd accepts this file" and "kvorum accepts this
    file" the same statement.
    """


def _construct_go_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    text = str(loader.construct_scalar(node))
    if text not in _GO_YAML_TRUE | _GO_YAML_FALSE:
        raise yaml.constructor.ConstructorError(None, None, f"invalid boolean {text!r}")
    return text in _GO_YAML_TRUE


def _construct_go_number(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> object:
    """go-yaml v2's order: int64, then uint64, then a YAML-style float; else a string."""
    text = str(loader.construct_scalar(node))
    plain = text.replace("_", "")
    for parse in (parse_go_int, parse_go_uint):
        try:
            return parse(plain)
        except GoValueError:
            pass
    if _GO_YAML_FLOAT.fullmatch(plain):
        return float(plain)
    if text in _GO_YAML_SPECIAL_FLOATS:
        return _GO_YAML_SPECIAL_FLOATS[text]
    return text


GoYamlLoader.yaml_implicit_resolvers = {
    first: [
        (tag, pattern)
        for tag, pattern in resolvers
        if tag.rsplit(":", 1)[-1] not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
GoYamlLoader.add_implicit_resolver(
    _YAML_BOOL_TAG,
    re.compile("^(?:" + "|".join(sorted(_GO_YAML_TRUE | _GO_YAML_FALSE)) + ")$"),
    list("yYnNoOtTfF"),
)
GoYamlLoader.add_implicit_resolver(
    _GO_NUMBER_TAG, re.compile(r"^[-+.0-9][-+._0-9a-zA-Z]*$"), list("-+.0123456789")
)
GoYamlLoader.add_constructor(_YAML_BOOL_TAG, _construct_go_bool)
GoYamlLoader.add_constructor(_GO_NUMBER_TAG, _construct_go_number)
