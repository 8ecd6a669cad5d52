"""Site and lab facts for KVM@TACC (no discovery round trip) and the stages of ``up``."""

from __future__ import annotations

# --- Site and lab facts (KVM@TACC; no discovery round trip) ---------------------------------------
AUTH_URL = "https://kvm.tacc.chameleoncloud.org:5000/v3"
SITE_HOST = "kvm.tacc.chameleoncloud.org"
REGION = "KVM@TACC"
DASHBOARD = "https://kvm.tacc.chameleoncloud.org/project/"

DEFAULT_LEASE_NAME = "lab-4-data-platform"
DEFAULT_HOURS = 4
FLAVOR = "m1.xlarge"
IMAGE = "CC-Ubuntu24.04"
NETWORK = "sharednet1"
PUBLIC_NETWORK = "public"
SSH_USER = "cc"
#: Extra spec Blazar's flavor plugin puts on the reserved flavor (value: the reservation id).
RESERVATION_EXTRA_SPEC = "aggregate_instance_extra_specs:reservation"
#: Floating IPs are recycled between VMs, so a known_hosts entry would go stale and block Ansible.
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
DEFAULT_KEY_FILE = "~/.ssh/id_rsa_chameleon"
#: Seconds any single HTTP call to KVM@TACC may take (connect and each read) before it fails.
HTTP_TIMEOUT = 60.0
#: Seconds one SSH probe may take to connect and read the server's banner.
SSH_PROBE_TIMEOUT = 5.0

#: Security group name -> TCP port. KVM@TACC blocks all inbound traffic, SSH included, by default.
SECURITY_GROUPS: dict[str, int] = {
    "allow-ssh": 22,
    "allow-8000": 8000,  # FastAPI
    "allow-8080": 8080,  # Airflow
    "allow-5050": 5050,  # Adminer
    "allow-8090": 8090,  # Redpanda Console
    "allow-8081": 8081,  # Redis Insight
    "allow-9001": 9001,  # MinIO Console
    "allow-3000": 3000,  # Nimtable
    "allow-8888": 8888,  # Jupyter
}

#: Inventory groups used by site.yml; all children of ``gourmetgram``.
INVENTORY_PARENT = "gourmetgram"
INVENTORY_GROUPS = ("postgres", "redis", "broker", "minio", "airflow", "app", "ui")

#: Marker written into descriptions of what this tool creates (floating IPs, security groups).
TOOL_MARK = "provision/lease.py"

#: Blazar lease statuses that no longer hold resources; such leases are ignored when looking up by name.
GONE_LEASE_STATUSES = frozenset({"TERMINATED", "TERMINATING", "DELETING", "DELETED"})
#: Nova statuses of a server on its way out.
GONE_SERVER_STATUSES = frozenset({"DELETED", "SOFT_DELETED"})

#: Stages of ``up``, in order. A stage hook is called after each one (tests inject crashes there).
UP_STAGES = (
    "auth",
    "resolve",
    "lease",
    "lease-active",
    "reserved-flavor",
    "security-groups",
    "server",
    "server-active",
    "attach-groups",
    "floating-ip",
    "ssh",
    "inventory",
)
