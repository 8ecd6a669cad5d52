"""Cloud logic for ``provision/lease.py``: one KVM@TACC host for the GourmetGram data platform.

Built on openstacksdk (Nova, Neutron, Glance) and a keystoneauth ``Adapter`` for Blazar, on one
keystoneauth session authenticated with an application credential. python-chi is deliberately not
used: its lease lookup swallows duplicate-name errors, its waits return on ERROR, it may take a
teammate's floating IP and it leaks floating IPs on delete (see
shared/reference/chameleon-provisioning-facts.md §2.7). The few calls it would wrap are done here.

Every step of ``up`` first looks for what a previous (possibly interrupted) run left behind, so a
re-run completes a half-done state and creates nothing twice.

Modules, one concern each:

- ``facts``: site and lab facts (KVM@TACC URLs, names, ports, inventory groups, stages of ``up``)
- ``errors``: the error classes, their exit codes, and the mapping of library exceptions
- ``config``: the application credential (OS_* or clouds.yaml) and the options of a run
- ``session``: the keystoneauth session, the openstacksdk connection and the Blazar REST adapter
- ``steps``: the run's state and the helpers every step uses (progress, changes, waits)
- ``leases`` (Blazar), ``compute`` (Nova), ``network`` (Neutron), ``inventory`` (SSH wait, inventory file)
- ``provisioner``: the commands ``up``, ``status``, ``extend`` and ``down`` over those steps
"""

from .config import (
    Credential,
    Options,
    credential_from_clouds_yaml,
    credential_from_env,
    find_credential,
    sanitize_user,
)
from .errors import (
    EXIT_CODES,
    EXIT_CODES_HELP,
    EXIT_INTERRUPTED,
    EXIT_NOT_READY,
    Ambiguous,
    AuthError,
    CloudRefused,
    ConfigError,
    ExtendUnsupported,
    LeasePolicyRefused,
    NoFloatingIp,
    ProvisionError,
    QuotaExceeded,
    ResourceFailed,
    WaitTimeout,
    translate_error,
)
from .facts import (
    AUTH_URL,
    DEFAULT_HOURS,
    DEFAULT_KEY_FILE,
    DEFAULT_LEASE_NAME,
    FLAVOR,
    HTTP_TIMEOUT,
    IMAGE,
    INVENTORY_GROUPS,
    INVENTORY_PARENT,
    NETWORK,
    PUBLIC_NETWORK,
    REGION,
    SECURITY_GROUPS,
    SSH_USER,
    TOOL_MARK,
    UP_STAGES,
)
from .output import fmt_dt, human_delta, log, parse_blazar_date
from .provisioner import Provisioner
from .session import BlazarError, Cloud
from .steps import State

__all__ = [
    "AUTH_URL",
    "DEFAULT_HOURS",
    "DEFAULT_KEY_FILE",
    "DEFAULT_LEASE_NAME",
    "EXIT_CODES",
    "EXIT_CODES_HELP",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_READY",
    "FLAVOR",
    "HTTP_TIMEOUT",
    "IMAGE",
    "INVENTORY_GROUPS",
    "INVENTORY_PARENT",
    "NETWORK",
    "PUBLIC_NETWORK",
    "REGION",
    "SECURITY_GROUPS",
    "SSH_USER",
    "TOOL_MARK",
    "UP_STAGES",
    "Ambiguous",
    "AuthError",
    "BlazarError",
    "Cloud",
    "CloudRefused",
    "ConfigError",
    "Credential",
    "ExtendUnsupported",
    "LeasePolicyRefused",
    "NoFloatingIp",
    "Options",
    "ProvisionError",
    "Provisioner",
    "QuotaExceeded",
    "ResourceFailed",
    "State",
    "WaitTimeout",
    "credential_from_clouds_yaml",
    "credential_from_env",
    "find_credential",
    "fmt_dt",
    "human_delta",
    "log",
    "parse_blazar_date",
    "sanitize_user",
    "translate_error",
]
