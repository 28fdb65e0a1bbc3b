"""Storage options of a store URI: what deltalake and fsspec need to reach it (credentials, endpoint).

Credentials come from environment variables, never from files we write: the standard ones
(`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`,
`AWS_ENDPOINT_URL` for S3-compatible stores; `GOOGLE_APPLICATION_CREDENTIALS`; `AZURE_STORAGE_*`),
or others a recipe's `storage_options` section names (`{AWS_ACCESS_KEY_ID: MY_KEY_VAR}`: the
standard name, then the variable that holds its value). Left unset, each library's own provider
chain applies (profiles, instance roles). One resolution feeds both deltalake (object_store keys)
and s3fs/gcsfs/adlfs, with bounded timeouts and retries so an unreachable store fails in seconds.
Values never leave this module in text: `StorageOptions` prints option names only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from synthfactory.errors import RecipeError

# the standard variables each kind of store reads (the recipe's `storage_options` keys)
AWS_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_PROFILE")
GCS_VARIABLES = ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT")
AZURE_VARIABLES = ("AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_SAS_TOKEN",
                   "AZURE_STORAGE_CONNECTION_STRING")
VARIABLES = AWS_VARIABLES + GCS_VARIABLES + AZURE_VARIABLES
PROTOCOLS = {"s3": AWS_VARIABLES, "s3a": AWS_VARIABLES, "gs": GCS_VARIABLES, "gcs": GCS_VARIABLES,
             "az": AZURE_VARIABLES, "abfs": AZURE_VARIABLES, "abfss": AZURE_VARIABLES}

# Bounds: a wrong endpoint or key fails in seconds, not after minutes of retries. A connection
# gets CONNECT_TIMEOUT_S, a request REQUEST_TIMEOUT_S; a failed request is retried RETRIES times
# (transient errors: throttling, 5xx, dropped connections) within RETRY_WINDOW_S.
CONNECT_TIMEOUT_S = 5
REQUEST_TIMEOUT_S = 30
RETRIES = 2
RETRY_WINDOW_S = 15

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# values a user may paste by mistake: AWS key ids (AKIA.../ASIA...), long tokens, anything with / + = :
SECRET_LOOKING = re.compile(r"^(AKIA|ASIA|AIDA|AROA|AGPA)[A-Z0-9]{12,}$|^[A-Za-z0-9]{32,}$")


@dataclass(frozen=True)
class StorageOptions:
    """`delta`: deltalake's `storage_options` (object_store keys); `fsspec`: the file system's kwargs.
    Both may hold secrets: the repr names the options, never their values."""

    delta: dict[str, str] = field(default_factory=dict)
    fsspec: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:  # values may be secrets: names only
        return f"StorageOptions(delta={sorted(self.delta)}, fsspec={sorted(self.fsspec)})"

    __str__ = __repr__


def check_variable_names(section: Mapping[str, str] | None, where: str = "storage_options") -> None:
    """A recipe's `storage_options`: standard variable name -> the NAME of the environment variable
    holding its value. A value pasted in place of a name is refused, without repeating it."""
    for option, variable in (section or {}).items():
        if option not in VARIABLES:
            raise RecipeError(f"{where}.{option}: not an option synthfactory passes to a store; use one of "
                              f"{', '.join(VARIABLES)}")
        if not isinstance(variable, str) or not ENV_NAME.match(variable) or SECRET_LOOKING.match(variable):
            raise RecipeError(f"{where}.{option}: give the NAME of an environment variable that holds the value "
                              "(e.g. MY_S3_KEY), never the value itself (not repeated here)")


def _protocol(uri: str) -> str | None:
    text = str(uri)
    if "://" not in text or text.startswith("file://"):
        return None
    return text.split("://", 1)[0].lower()


def _read(names: tuple[str, ...], from_env: Mapping[str, str] | None, env: Mapping[str, str]) -> dict[str, str]:
    """Each standard name's value: from the variable the recipe names for it, else from the
    standard variable itself. A named variable that is unset is an error (a typo would otherwise
    fall back to other credentials silently)."""
    values = {}
    for name in names:
        variable = (from_env or {}).get(name)
        if variable is not None:
            if variable not in env:
                raise RecipeError(f"storage_options.{name}: the environment variable {variable} is not set")
            values[name] = env[variable]
        elif env.get(name):
            values[name] = env[name]
    return values


def storage_options(uri: str, from_env: Mapping[str, str] | None = None,
                    env: Mapping[str, str] | None = None) -> StorageOptions:
    """The options for `uri`, read from the environment (`from_env`: standard option name -> env
    var NAME, a recipe's `storage_options`; `env`: the environment, `os.environ` by default).
    Cheap (no I/O): called wherever a store is opened. Local paths need none."""
    protocol = _protocol(uri)
    if protocol is None:
        return StorageOptions()
    check_variable_names(from_env)
    env = os.environ if env is None else env
    values = _read(PROTOCOLS.get(protocol, ()), from_env, env)
    if protocol in ("s3", "s3a"):
        return _s3(values)
    if protocol in ("gs", "gcs"):
        return _gcs(values)
    if protocol in ("az", "abfs", "abfss"):
        return _azure(values)
    return StorageOptions()


def _s3(values: dict[str, str]) -> StorageOptions:
    """s3fs kwargs and object_store's AWS keys from one set of values. Concurrent Delta commits are
    made safe by S3's conditional put (`If-None-Match: *` on the commit file, `conditional_put=etag`),
    as delta-rs 1.x does by default; never AWS_S3_ALLOW_UNSAFE_RENAME."""
    region = values.get("AWS_REGION") or values.get("AWS_DEFAULT_REGION")
    endpoint = values.get("AWS_ENDPOINT_URL")
    delta = {
        "conditional_put": "etag",
        "connect_timeout": f"{CONNECT_TIMEOUT_S}s", "timeout": f"{REQUEST_TIMEOUT_S}s",
        "max_retries": str(RETRIES), "retry_timeout": f"{RETRY_WINDOW_S}s",
    }
    client_kwargs: dict[str, Any] = {}
    fsspec: dict[str, Any] = {
        # botocore: bounded connect/read, RETRIES retries ("standard": throttling, 5xx, connection errors)
        "config_kwargs": {"connect_timeout": CONNECT_TIMEOUT_S, "read_timeout": REQUEST_TIMEOUT_S,
                          "retries": {"max_attempts": RETRIES + 1, "mode": "standard"}},
    }
    for standard, delta_key, fsspec_key in (("AWS_ACCESS_KEY_ID", "aws_access_key_id", "key"),
                                            ("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key", "secret"),
                                            ("AWS_SESSION_TOKEN", "aws_session_token", "token")):
        if values.get(standard):
            delta[delta_key] = values[standard]
            fsspec[fsspec_key] = values[standard]
    if region:
        delta["aws_region"] = region
        client_kwargs["region_name"] = region
    if endpoint:
        delta["aws_endpoint"] = endpoint
        client_kwargs["endpoint_url"] = endpoint
        if endpoint.startswith("http://"):
            delta["aws_allow_http"] = "true"
    if values.get("AWS_PROFILE"):
        delta["aws_profile"] = values["AWS_PROFILE"]
        fsspec["profile"] = values["AWS_PROFILE"]
    if client_kwargs:
        fsspec["client_kwargs"] = client_kwargs
    return StorageOptions(delta=delta, fsspec=fsspec)


def _gcs(values: dict[str, str]) -> StorageOptions:
    delta = {"timeout": f"{REQUEST_TIMEOUT_S}s", "connect_timeout": f"{CONNECT_TIMEOUT_S}s",
             "max_retries": str(RETRIES), "retry_timeout": f"{RETRY_WINDOW_S}s"}
    fsspec: dict[str, Any] = {}
    if values.get("GOOGLE_APPLICATION_CREDENTIALS"):
        delta["google_application_credentials"] = values["GOOGLE_APPLICATION_CREDENTIALS"]
        fsspec["token"] = values["GOOGLE_APPLICATION_CREDENTIALS"]
    if values.get("GOOGLE_CLOUD_PROJECT"):
        fsspec["project"] = values["GOOGLE_CLOUD_PROJECT"]
    return StorageOptions(delta=delta, fsspec=fsspec)


def _azure(values: dict[str, str]) -> StorageOptions:
    delta = {"timeout": f"{REQUEST_TIMEOUT_S}s", "connect_timeout": f"{CONNECT_TIMEOUT_S}s",
             "max_retries": str(RETRIES), "retry_timeout": f"{RETRY_WINDOW_S}s"}
    fsspec: dict[str, Any] = {}
    for standard, delta_key, fsspec_key in (
            ("AZURE_STORAGE_ACCOUNT_NAME", "azure_storage_account_name", "account_name"),
            ("AZURE_STORAGE_ACCOUNT_KEY", "azure_storage_account_key", "account_key"),
            ("AZURE_STORAGE_SAS_TOKEN", "azure_storage_sas_token", "sas_token"),
            ("AZURE_STORAGE_CONNECTION_STRING", None, "connection_string")):
        if values.get(standard):
            if delta_key:
                delta[delta_key] = values[standard]
            fsspec[fsspec_key] = values[standard]
    return StorageOptions(delta=delta, fsspec=fsspec)
