"""Where the application credential comes from (OS_* or clouds.yaml), and the options of a run."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from .errors import (
    ConfigError,
)
from .facts import (
    AUTH_URL,
    DEFAULT_HOURS,
    DEFAULT_KEY_FILE,
    DEFAULT_LEASE_NAME,
    HTTP_TIMEOUT,
    REGION,
    SITE_HOST,
    TOOL_MARK,
)


# --- Configuration ------------------------------------------------------------------------------------
@dataclasses.dataclass
class Credential:
    """An application credential. The secret is never printed (repr=False)."""

    source: str
    id: str | None = None
    name: str | None = None
    secret: str = dataclasses.field(default="", repr=False)
    user_id: str | None = None
    username: str | None = None
    user_domain_name: str | None = None


@dataclasses.dataclass
class Options:
    user: str
    lease_name: str = DEFAULT_LEASE_NAME
    lease_id: str | None = None
    hours: float = DEFAULT_HOURS
    key_name: str | None = None
    key_file: str = DEFAULT_KEY_FILE
    public_key_file: str | None = None
    cidr: str | None = None
    inventory: Path = Path("inventory/chameleon.yml")
    delete_groups: bool = False
    poll_interval: float = 10.0
    lease_timeout: float = 900.0
    server_timeout: float = 900.0
    delete_timeout: float = 300.0
    ssh_timeout: float = 600.0
    http_timeout: float = HTTP_TIMEOUT

    @property
    def server_name(self) -> str:
        return f"{DEFAULT_LEASE_NAME}-{self.user}"

    @property
    def fip_description(self) -> str:
        return f"{self.server_name} ({TOOL_MARK})"


def sanitize_user(raw: str) -> str:
    user = re.sub(r"[^a-z0-9-]+", "-", raw.strip().lower()).strip("-")
    if not user:
        raise ConfigError(f"user id {raw!r} has no usable characters; pass --user NETID")
    return user


def _check_site(auth_url: str | None, region: str | None, where: str) -> None:
    if auth_url:
        host = urlparse(auth_url if "://" in auth_url else f"https://{auth_url}").hostname
        if host != SITE_HOST:
            raise ConfigError(
                f"{where} points at {host}, but this tool provisions KVM@TACC only ({AUTH_URL}). "
                "Application credentials are per site: create one on the KVM@TACC dashboard."
            )
    if region and region != REGION:
        raise ConfigError(f"{where} sets region {region!r}; KVM@TACC's region is {REGION!r}.")


def credential_from_env(env: Mapping[str, str]) -> Credential | None:
    cid = env.get("OS_APPLICATION_CREDENTIAL_ID")
    cname = env.get("OS_APPLICATION_CREDENTIAL_NAME")
    secret = env.get("OS_APPLICATION_CREDENTIAL_SECRET")
    if not (cid or cname or secret):
        return None
    _check_site(env.get("OS_AUTH_URL"), env.get("OS_REGION_NAME"), "OS_AUTH_URL/OS_REGION_NAME")
    if not secret or not (cid or cname):
        raise ConfigError(
            "incomplete application credential in the environment: set OS_APPLICATION_CREDENTIAL_ID "
            "and OS_APPLICATION_CREDENTIAL_SECRET (from the KVM@TACC openrc file)"
        )
    return Credential(
        source="environment (OS_*)",
        id=cid,
        name=cname,
        secret=secret,
        user_id=env.get("OS_USER_ID"),
        username=env.get("OS_USERNAME"),
        user_domain_name=env.get("OS_USER_DOMAIN_NAME"),
    )


def credential_from_clouds_yaml(cloud: str, env: Mapping[str, str] = os.environ) -> Credential:
    import openstack.config
    import openstack.exceptions
    from openstack.config import loader

    files = list(loader.CONFIG_FILES)
    if env.get("OS_CLIENT_CONFIG_FILE"):
        files.insert(0, env["OS_CLIENT_CONFIG_FILE"])
    try:
        region = openstack.config.OpenStackConfig(load_envvars=False, config_files=files).get_one(cloud=cloud)
    except openstack.exceptions.ConfigException as exc:
        raise ConfigError(f"clouds.yaml: {exc}") from None
    conf = region.config
    auth = conf.get("auth", {}) or {}
    auth_type = conf.get("auth_type", "")
    if "applicationcredential" not in str(auth_type).replace("_", "") and not auth.get("application_credential_secret"):
        raise ConfigError(
            f"clouds.yaml entry {cloud!r} is not an application credential "
            "(auth_type: v3applicationcredential); create one on the KVM@TACC dashboard"
        )
    _check_site(auth.get("auth_url"), conf.get("region_name"), f"clouds.yaml entry {cloud!r}")
    secret = auth.get("application_credential_secret")
    if not secret or not (auth.get("application_credential_id") or auth.get("application_credential_name")):
        raise ConfigError(f"clouds.yaml entry {cloud!r} lacks application_credential_id/secret")
    return Credential(
        source=f"clouds.yaml entry {cloud!r}",
        id=auth.get("application_credential_id"),
        name=auth.get("application_credential_name"),
        secret=secret,
        user_id=auth.get("user_id"),
        username=auth.get("username"),
        user_domain_name=auth.get("user_domain_name"),
    )


def find_credential(cloud: str | None, env: Mapping[str, str] = os.environ) -> Credential:
    cloud = cloud or env.get("OS_CLOUD")
    if cloud:
        return credential_from_clouds_yaml(cloud, env)
    cred = credential_from_env(env)
    if cred is None:
        raise ConfigError(
            "no credential: source the KVM@TACC application-credential openrc file (OS_APPLICATION_"
            "CREDENTIAL_ID/_SECRET) or pass --os-cloud NAME for a clouds.yaml entry"
        )
    return cred
