"""Cloud logic for ``provision/lease.py``: one KVM@TACC host for the GourmetGram data platform.

Built on openstacksdk (Nova, Neutron, Glance) and a keystoneauth ``Adapter`` for Blazar, on one
keystoneauth session authenticated with an application credential. python-chi is deliberately not
used: its lease lookup swallows duplicate-name errors, its waits return on ERROR, it may take a
teammate's floating IP and it leaks floating IPs on delete (see
shared/reference/chameleon-provisioning-facts.md §2.7). The few calls it would wrap are done here.

Every step of ``up`` first looks for what a previous (possibly interrupted) run left behind, so a
re-run completes a half-done state and creates nothing twice.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import re
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import yaml

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
#: Floating IPs are recycled between VMs, so a known_hosts entry would go stale and block Ansible.
SSH_COMMON_ARGS = "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
DEFAULT_KEY_FILE = "~/.ssh/id_rsa_chameleon"

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


# --- Errors and exit codes --------------------------------------------------------------------------
class ProvisionError(Exception):
    """An expected failure with a message meant for the user and a documented exit code."""

    exit_code = 1
    kind = "failure"


class ConfigError(ProvisionError):
    exit_code = 2
    kind = "config"


class AuthError(ProvisionError):
    exit_code = 3
    kind = "auth"


class CloudRefused(ProvisionError):
    exit_code = 4
    kind = "refused"


class WaitTimeout(ProvisionError):
    exit_code = 5
    kind = "timeout"


class Ambiguous(ProvisionError):
    exit_code = 6
    kind = "ambiguous"


class ResourceFailed(ProvisionError):
    exit_code = 7
    kind = "resource-error"


EXIT_NOT_READY = 8
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success; for `up`/`down` also when nothing had to change (the output says so)
  1    unexpected failure (network error, unexpected API answer); re-run is safe
  2    usage or configuration error (missing credential, wrong site/region, missing image, network,
       flavor or key pair, unreadable public key file)
  3    authentication/authorisation error (expired, deleted or restricted application credential)
  4    the cloud refused the request (no capacity, quota, lease policy, extend not supported)
  5    timed out waiting (lease still PENDING, server still BUILD, SSH closed); what exists is kept
  6    ambiguous state (several leases/servers with the name, duplicate groups); that step is refused:
       pick one with --lease-id or delete the extras
  7    a resource is in ERROR (lease or server); the message carries Blazar's/Nova's reason
  8    `status` only: not everything is up (or the inventory is stale)
  130  interrupted (Ctrl-C); re-run `up` to complete or `down` to remove
"""


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
    wait_ssh: bool = False
    delete_groups: bool = False
    poll_interval: float = 10.0
    lease_timeout: float = 900.0
    server_timeout: float = 900.0
    delete_timeout: float = 300.0
    ssh_timeout: float = 600.0

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


# --- Output -----------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_dt(value: str | None) -> str:
    return value.replace("T", " ")[:16] + " UTC" if value else "?"


def _parse_blazar_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(value, fmt).replace(tzinfo=dt.UTC)
        except ValueError:
            continue
    return None


def _human_delta(seconds: float) -> str:
    seconds = int(seconds)
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    return f"{sign}{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


# --- The cloud ---------------------------------------------------------------------------------------------
class Cloud:
    """Authenticated clients for KVM@TACC: ``conn`` (openstacksdk) and ``blazar`` (keystoneauth Adapter)."""

    def __init__(self, cred: Credential) -> None:
        from keystoneauth1 import adapter
        from keystoneauth1 import session as ks_session
        from keystoneauth1.identity import v3

        kwargs: dict[str, Any] = {
            "auth_url": AUTH_URL,
            "application_credential_secret": cred.secret,
        }
        if cred.id:
            kwargs["application_credential_id"] = cred.id
        else:
            kwargs["application_credential_name"] = cred.name
            kwargs["user_id"] = cred.user_id
            kwargs["username"] = cred.username
            kwargs["user_domain_name"] = cred.user_domain_name
        self.cred_source = cred.source
        self.session = ks_session.Session(auth=v3.ApplicationCredential(**kwargs), user_agent="gourmetgram-lease")
        self.blazar = adapter.Adapter(self.session, service_type="reservation", interface="public", region_name=REGION)
        self._conn: Any = None
        self.user_id: str | None = None
        self.project_id: str | None = None

    def authenticate(self) -> None:
        """Get a token now, so a bad credential fails first and clearly, and check the site's catalog."""
        from keystoneauth1 import exceptions as ks_exc

        try:
            self.session.get_token()
            self.user_id = self.session.get_user_id()
            self.project_id = self.session.get_project_id()
            access = self.session.auth.get_access(self.session)
        except ks_exc.Unauthorized as exc:
            raise AuthError(
                f"KVM@TACC rejected the application credential from {self.cred_source} "
                f"({_ks_message(exc)}): it is expired, deleted or belongs to another site. Create a new "
                f"one at {DASHBOARD}identity/application_credentials/ (tick 'Unrestricted') and retry."
            ) from None
        missing = []
        for service in ("compute", "network", "image", "reservation"):
            urls = access.service_catalog.get_urls(service_type=service, interface="public", region_name=REGION)
            if not urls:
                missing.append(service)
        if missing:
            regions = sorted(
                {
                    ep.get("region_id") or ep.get("region")
                    for s in access.service_catalog.catalog
                    for ep in s.get("endpoints", [])
                }
                - {None}
            )
            raise ConfigError(
                f"the catalog has no {', '.join(missing)} endpoint in region {REGION!r} "
                f"(regions offered: {', '.join(regions) or 'none'}); is this a KVM@TACC credential?"
            )

    @property
    def conn(self) -> Any:
        if self._conn is None:
            import openstack.connection

            self._conn = openstack.connection.Connection(session=self.session, region_name=REGION, interface="public")
        return self._conn

    # Blazar (raw REST; python-blazarclient/python-chi would hide the server's error text)
    def blazar_call(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.blazar.request(path, method, raise_exc=False, **kwargs)
        if resp.status_code >= 400:
            raise BlazarError(resp.status_code, _blazar_message(resp))
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()


class BlazarError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def _blazar_message(resp: Any) -> str:
    try:
        body = resp.json()
    except ValueError:
        return (resp.text or resp.reason or "").strip()[:300]
    if isinstance(body, dict):
        for key in ("error_message", "message", "faultstring"):
            if body.get(key):
                return str(body[key])
        if isinstance(body.get("error"), dict):
            return str(body["error"].get("message", body["error"]))
    return str(body)[:300]


def _ks_message(exc: Exception) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return str(msg).strip().rstrip(".") or type(exc).__name__


def translate_error(exc: BaseException, doing: str) -> ProvisionError | None:
    """Map library exceptions to ProvisionError with a next step, or None when unknown."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    if isinstance(exc, ProvisionError):
        return exc
    if isinstance(exc, ks_exc.Unauthorized):
        return AuthError(f"{doing}: authentication failed ({_ks_message(exc)}); the credential may have expired")
    if isinstance(exc, ks_exc.EndpointNotFound):
        return ConfigError(f"{doing}: {exc}; check that the credential is for region {REGION}")
    if isinstance(exc, ks_exc.ConnectionError):
        return ProvisionError(f"{doing}: cannot reach KVM@TACC ({exc}); check the network and re-run")
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    if isinstance(exc, sdk_exc.HttpException | ks_exc.HttpError) and status is not None:
        detail = getattr(exc, "details", None) or getattr(exc, "message", None) or str(exc)
        if status == 413 or "quota" in str(detail).lower():
            return CloudRefused(f"{doing}: quota exceeded ({detail}); free resources or ask for more quota")
        if status == 401:
            return AuthError(f"{doing}: authentication failed ({detail}); the credential may have expired")
        if status == 403:
            return AuthError(
                f"{doing}: forbidden ({detail}); the application credential may be restricted or lack "
                "the member/reader role: create an 'Unrestricted' one"
            )
        return ProvisionError(f"{doing}: HTTP {status}: {detail}")
    if isinstance(exc, sdk_exc.DuplicateResource):
        return Ambiguous(f"{doing}: {exc}")
    if isinstance(exc, sdk_exc.SDKException | ks_exc.ClientException):
        return ProvisionError(f"{doing}: {exc}")
    return None


# --- Provisioner -----------------------------------------------------------------------------------------
@dataclasses.dataclass
class State:
    """What was found or made; also the --json payload."""

    lease: dict[str, Any] | None = None
    reservation_id: str | None = None
    server: dict[str, Any] | None = None
    floating_ip: str | None = None
    security_groups: dict[str, str] = dataclasses.field(default_factory=dict)
    inventory: str | None = None
    changes: list[str] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)


class Provisioner:
    def __init__(
        self,
        cloud: Cloud,
        opts: Options,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        stage_hook: Callable[[str], None] | None = None,
        tcp_probe: Callable[[str, int, float], bool] | None = None,
    ) -> None:
        self.cloud = cloud
        self.opts = opts
        self.sleep = sleep
        self.clock = clock
        self.now = now
        self.stage_hook = stage_hook
        self.tcp_probe = tcp_probe or _tcp_open
        self.state = State()
        self.stage = "start"

    # -- helpers
    def _done(self, stage: str) -> None:
        self.stage = stage
        if self.stage_hook is not None:
            self.stage_hook(stage)

    def _change(self, what: str) -> None:
        self.state.changes.append(what)
        log(f"+ {what}")

    def _note(self, what: str) -> None:
        self.state.notes.append(what)
        log(f"! {what}")

    def _wait(
        self,
        what: str,
        poll: Callable[[], tuple[Any, str]],
        ok: Iterable[str],
        failed: Iterable[str],
        timeout: float,
        on_timeout: str,
    ) -> Any:
        ok, failed = set(ok), set(failed)
        start = self.clock()
        while True:
            obj, status = poll()
            elapsed = self.clock() - start
            if status in ok or status in failed:
                log(f"  {what}: {status} after {elapsed:.0f}s")
                return obj, status
            log(f"  waiting for {what}: {status} ({elapsed:.0f}s elapsed, timeout {timeout:.0f}s)")
            if elapsed >= timeout:
                raise WaitTimeout(f"{what} still {status} after {elapsed:.0f}s (timeout {timeout:.0f}s). {on_timeout}")
            self.sleep(min(self.opts.poll_interval, max(timeout - elapsed, 0.0)))

    # -- look-ups (read-only)
    def find_leases(self) -> list[dict[str, Any]]:
        """This user's live leases with the lease name (lists are project-wide and keep TERMINATED ones)."""
        if self.opts.lease_id:
            try:
                lease = self.cloud.blazar_call("GET", f"/leases/{self.opts.lease_id}")["lease"]
            except BlazarError as exc:
                if exc.status == 404:
                    return []
                raise
            return [lease]
        leases = self.cloud.blazar_call("GET", "/leases")["leases"]
        named = [le for le in leases if le.get("name") == self.opts.lease_name]
        live = [le for le in named if le.get("status") not in GONE_LEASE_STATUSES]
        mine = [le for le in live if not self.cloud.user_id or le.get("user_id") in (None, self.cloud.user_id)]
        others = len(live) - len(mine)
        if others:
            self._note(f"ignoring {others} lease(s) named {self.opts.lease_name!r} owned by other users of the project")
        if len(mine) > 1:
            listing = "\n".join(
                f"    {le['id']}  {le.get('status')}  {_fmt_dt(le.get('start_date'))} -> {_fmt_dt(le.get('end_date'))}"
                for le in sorted(mine, key=lambda le: le.get("created_at") or "")
            )
            raise Ambiguous(
                f"{len(mine)} live leases are named {self.opts.lease_name!r}:\n{listing}\n"
                "  Pick one with --lease-id ID, or delete the extra ones "
                "(`openstack reservation lease delete ID`)."
            )
        return mine

    def find_servers(self) -> list[Any]:
        name = self.opts.server_name
        servers = [
            s
            for s in self.cloud.conn.compute.servers(name=f"^{re.escape(name)}$")
            if s.name == name and s.status not in GONE_SERVER_STATUSES
        ]
        if len(servers) > 1:
            listing = ", ".join(f"{s.id} ({s.status})" for s in servers)
            raise Ambiguous(f"{len(servers)} servers are named {name!r}: {listing}. Delete the extra ones.")
        return servers

    def server_port(self, server: Any, network_id: str) -> Any | None:
        ports = list(self.cloud.conn.network.ports(device_id=server.id, network_id=network_id))
        if len(ports) > 1:
            raise Ambiguous(f"server {server.name} has {len(ports)} ports on {NETWORK}; expected one")
        return ports[0] if ports else None

    def own_floating_ips(self) -> list[Any]:
        """Floating IPs this tool created for this server (recognised by their exact description)."""
        desc = self.opts.fip_description
        return [ip for ip in self.cloud.conn.network.ips(description=desc) if ip.description == desc]

    def groups_named(self, name: str) -> list[Any]:
        return [g for g in self.cloud.conn.network.security_groups(name=name) if g.name == name]

    # -- up
    def up(self) -> State:
        st = self.state
        net = self.cloud.conn.network
        compute = self.cloud.conn.compute
        self._done("auth")

        # resolve: fail fast naming the missing resource
        image = self._find("image", IMAGE, lambda: self.cloud.conn.image.find_image(IMAGE, ignore_missing=False))
        network = self._find("network", NETWORK, lambda: net.find_network(NETWORK, ignore_missing=False))
        public = self._find("network", PUBLIC_NETWORK, lambda: net.find_network(PUBLIC_NETWORK, ignore_missing=False))
        flavor = self._find("flavor", FLAVOR, lambda: compute.find_flavor(FLAVOR, ignore_missing=False))
        self._ensure_keypair()
        key_file = Path(self.opts.key_file).expanduser()
        if not key_file.is_file():
            self._note(f"private key {key_file} not found; the inventory will point at it anyway")
        self._done("resolve")

        lease = self._ensure_lease(flavor.id)
        self._done("lease")
        lease = self._wait_lease(lease)
        self._done("lease-active")

        reserved = self._reserved_flavor(lease)
        self._done("reserved-flavor")

        groups = self._ensure_security_groups()
        self._done("security-groups")

        server = self._ensure_server(image.id, network.id, reserved)
        self._done("server")
        server = self._wait_server(server)
        self._done("server-active")

        port = self.server_port(server, network.id)
        if port is None:
            raise ResourceFailed(f"server {server.name} has no port on {NETWORK}; delete it with `down`")
        wanted = [groups[name] for name in SECURITY_GROUPS]
        current = list(port.security_group_ids or [])
        if not set(wanted) <= set(current):
            net.update_port(port, security_group_ids=current + [g for g in wanted if g not in current])
            self._change(f"attached security groups {', '.join(SECURITY_GROUPS)} to {server.name}")
        self._done("attach-groups")

        st.floating_ip = self._ensure_floating_ip(port, public.id)
        self._done("floating-ip")

        if self.opts.wait_ssh:
            self._wait_ssh(st.floating_ip)
        self._done("ssh")

        if self.write_inventory(st.floating_ip):
            self._change(f"wrote inventory {self.opts.inventory}")
        st.inventory = str(self.opts.inventory)
        self._done("inventory")
        return st

    def _find(self, kind: str, name: str, call: Callable[[], Any]) -> Any:
        from openstack import exceptions as sdk_exc

        try:
            return call()
        except sdk_exc.NotFoundException:
            raise ConfigError(f"{kind} {name!r} not found on KVM@TACC") from None
        except sdk_exc.DuplicateResource:
            raise Ambiguous(f"several {kind}s are named {name!r} on KVM@TACC") from None

    def _ensure_keypair(self) -> None:
        from openstack import exceptions as sdk_exc

        name = self.opts.key_name
        if not name:
            raise ConfigError("no key pair: pass --key-name NAME (the KVM@TACC key pair for your SSH key)")
        try:
            self.cloud.conn.compute.get_keypair(name)
            return
        except sdk_exc.NotFoundException:
            pass
        if not self.opts.public_key_file:
            raise ConfigError(
                f"key pair {name!r} not found on KVM@TACC; import it on the dashboard or pass "
                "--public-key FILE to import it"
            )
        pub = Path(self.opts.public_key_file).expanduser()
        try:
            public_key = pub.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read public key {pub}: {exc.strerror}") from None
        self.cloud.conn.compute.create_keypair(name=name, public_key=public_key)
        self._change(f"imported key pair {name} from {pub}")

    def _ensure_lease(self, flavor_id: str) -> dict[str, Any]:
        found = self.find_leases()
        if found:
            lease = found[0]
            log(f"= lease {lease['name']} ({lease['id']}) exists: {lease.get('status')}")
        else:
            if self.opts.lease_id:
                raise ConfigError(f"lease {self.opts.lease_id} not found")
            end = self.now() + dt.timedelta(hours=self.opts.hours)
            body = {
                "name": self.opts.lease_name,
                "start_date": "now",
                "end_date": end.strftime("%Y-%m-%d %H:%M"),
                "reservations": [
                    {
                        "resource_type": "flavor:instance",
                        "flavor_id": flavor_id,
                        "amount": 1,
                        "affinity": None,
                    }
                ],
                "events": [],
                "before_end_date": None,
            }
            try:
                lease = self.cloud.blazar_call("POST", "/leases", json=body)["lease"]
            except BlazarError as exc:
                raise _lease_refusal(exc, self.opts.hours) from None
            self._change(f"created lease {lease['name']} ({lease['id']}) for {self.opts.hours:g}h, {FLAVOR}")
        if not any(r.get("resource_type") == "flavor:instance" for r in lease.get("reservations", [])):
            raise ConfigError(
                f"lease {lease['name']} ({lease['id']}) has no flavor:instance reservation; use another --lease-name"
            )
        self.state.lease = lease
        return lease

    def _get_lease(self, lease_id: str) -> dict[str, Any]:
        return self.cloud.blazar_call("GET", f"/leases/{lease_id}")["lease"]

    def _wait_lease(self, lease: dict[str, Any]) -> dict[str, Any]:
        if lease.get("status") != "ACTIVE":
            lease, _ = self._wait(
                f"lease {lease['name']}",
                lambda: (lambda le: (le, le.get("status", "?")))(self._get_lease(lease["id"])),
                ok={"ACTIVE"},
                failed={"ERROR", *GONE_LEASE_STATUSES},
                timeout=self.opts.lease_timeout,
                on_timeout="The lease is kept: re-run `up` to keep waiting, or `down` to give it up.",
            )
        self.state.lease = lease
        status = lease.get("status")
        if status != "ACTIVE":
            reasons = "; ".join(
                f"{r.get('resource_type')} reservation {r.get('status')}"
                + (" (missing resources)" if r.get("missing_resources") else "")
                for r in lease.get("reservations", [])
            )
            events = "; ".join(
                f"{e.get('event_type')} {e.get('status')}"
                for e in lease.get("events", [])
                if e.get("status") == "ERROR"
            )
            detail = "; ".join(x for x in (reasons, events) if x)
            raise ResourceFailed(
                f"lease {lease['name']} ({lease['id']}) is {status}"
                + (f": {detail}" if detail else "")
                + ". Run `lease.py down` to delete it, then `up` again (maybe with fewer --hours or later)."
            )
        if lease.get("degraded"):
            self._note(f"lease {lease['name']} is degraded (some reserved resources are missing)")
        return lease

    def _reserved_flavor(self, lease: dict[str, Any]) -> Any:
        from openstack import exceptions as sdk_exc

        res = [r for r in lease.get("reservations", []) if r.get("resource_type") == "flavor:instance"]
        rid = res[0]["id"]
        self.state.reservation_id = rid
        try:
            # Blazar names the reserved flavor reservation:<reservation id> and gives it that id.
            return self.cloud.conn.compute.get_flavor(rid)
        except sdk_exc.NotFoundException:
            raise ResourceFailed(
                f"reserved flavor reservation:{rid} of lease {lease['name']} is not visible to the project; "
                "the lease may still be starting — re-run `up` in a minute"
            ) from None

    def _ensure_security_groups(self) -> dict[str, str]:
        from openstack import exceptions as sdk_exc

        net = self.cloud.conn.network
        cidr = self.opts.cidr
        result: dict[str, str] = {}
        for name, port in SECURITY_GROUPS.items():
            groups = self.groups_named(name)
            if not groups:
                group = net.create_security_group(name=name, description=f"GourmetGram: tcp/{port} ({TOOL_MARK})")
                self._change(f"created security group {name}")
            elif len(groups) == 1:
                group = groups[0]
            else:
                good = sorted((g for g in groups if _rule_covering(g, port, cidr)), key=lambda g: g.id)
                if not good:
                    listing = ", ".join(sorted(g.id for g in groups))
                    raise Ambiguous(
                        f"{len(groups)} security groups are named {name!r} ({listing}) and none allows "
                        f"tcp/{port}; delete the extras or fix one on the dashboard"
                    )
                group = good[0]
                self._note(f"{len(groups)} groups are named {name}; using {group.id}, which allows tcp/{port}")
            rule = _rule_covering(group, port, cidr)
            if rule is None:
                try:
                    net.create_security_group_rule(
                        security_group_id=group.id,
                        direction="ingress",
                        ether_type="IPv4",
                        protocol="tcp",
                        port_range_min=port,
                        port_range_max=port,
                        remote_ip_prefix=cidr or "0.0.0.0/0",
                    )
                    self._change(f"added rule tcp/{port} from {cidr or '0.0.0.0/0'} to {name}")
                except sdk_exc.ConflictException:
                    pass  # SecurityGroupRuleExists: another run (or a teammate) added it meanwhile
            elif cidr and rule.get("remote_ip_prefix") in (None, "0.0.0.0/0"):
                self._note(f"{name} already allows tcp/{port} from anywhere; --cidr does not narrow shared groups")
            result[name] = group.id
        self.state.security_groups = result
        return result

    def _ensure_server(self, image_id: str, network_id: str, reserved: Any) -> Any:
        found = self.find_servers()
        if found:
            server = found[0]
            log(f"= server {server.name} ({server.id}) exists: {server.status}")
            flavor_name = getattr(server.flavor, "original_name", None) or getattr(server.flavor, "name", None)
            if flavor_name and flavor_name != reserved.name:
                self._note(
                    f"server {server.name} runs on flavor {flavor_name}, "
                    f"not on this lease's {reserved.name}; "
                    "it dies when its own lease ends"
                )
            return server
        server = self.cloud.conn.compute.create_server(
            name=self.opts.server_name,
            flavor_id=reserved.id,
            image_id=image_id,
            key_name=self.opts.key_name,
            networks=[{"uuid": network_id}],
            metadata={"created_by": TOOL_MARK, "lease_id": (self.state.lease or {}).get("id", "")},
        )
        self._change(f"created server {self.opts.server_name} ({server.id}) on {reserved.name}")
        return server

    def _wait_server(self, server: Any) -> Any:
        compute = self.cloud.conn.compute
        if server.status != "ACTIVE":
            server, _ = self._wait(
                f"server {self.opts.server_name}",
                lambda: (lambda s: (s, s.status))(compute.get_server(server.id)),
                ok={"ACTIVE"},
                failed={"ERROR", *GONE_SERVER_STATUSES},
                timeout=self.opts.server_timeout,
                on_timeout="The server is kept: re-run `up` to keep waiting, or `down` to remove it.",
            )
        self.state.server = {"id": server.id, "name": server.name, "status": server.status}
        if server.status != "ACTIVE":
            fault = server.fault or {}
            reason = fault.get("message") or "no fault recorded"
            raise ResourceFailed(
                f"server {server.name} ({server.id}) is {server.status}: {reason}"
                + (f" (code {fault['code']})" if fault.get("code") else "")
                + ". Run `lease.py down` and then `up` to try again."
            )
        return server

    def _ensure_floating_ip(self, port: Any, public_id: str) -> str:
        """Exactly one floating IP on the server's port. Never takes a free IP unless this tool made it for
        this server (exact description match): a teammate's unassociated IP is not ours to take."""
        net = self.cloud.conn.network
        attached = list(net.ips(port_id=port.id))
        if attached:
            if len(attached) > 1:
                self._note(
                    f"{len(attached)} floating IPs on the server's port; using {attached[0].floating_ip_address}"
                )
            return attached[0].floating_ip_address
        for ip in self.own_floating_ips():
            if not ip.port_id:
                net.update_ip(ip, port_id=port.id)
                self._change(f"re-attached this tool's floating IP {ip.floating_ip_address}")
                return ip.floating_ip_address
        ip = net.create_ip(floating_network_id=public_id, port_id=port.id, description=self.opts.fip_description)
        self._change(f"allocated floating IP {ip.floating_ip_address}")
        return ip.floating_ip_address

    def _wait_ssh(self, address: str) -> None:
        self._wait(
            f"SSH on {address}:22",
            lambda: (None, "open" if self.tcp_probe(address, 22, 3.0) else "closed"),
            ok={"open"},
            failed=set(),
            timeout=self.opts.ssh_timeout,
            on_timeout="The server is up; check security group allow-ssh and re-run `up --wait-ssh`.",
        )

    # -- inventory
    def inventory_text(self, address: str) -> str:
        host = self.opts.server_name
        lease = self.state.lease or {}
        data = {
            "all": {
                "hosts": {
                    host: {
                        "ansible_host": address,
                        "ansible_user": SSH_USER,
                        "ansible_ssh_private_key_file": str(Path(self.opts.key_file).expanduser()),
                        "ansible_python_interpreter": "/usr/bin/python3",
                        "ansible_ssh_common_args": SSH_COMMON_ARGS,
                        "gourmetgram_public_address": address,
                        "chameleon_lease_id": lease.get("id"),
                        "chameleon_lease_end": lease.get("end_date"),
                    }
                },
                "children": {INVENTORY_PARENT: {"children": {g: {"hosts": {host: None}} for g in INVENTORY_GROUPS}}},
            }
        }
        header = (
            "# Generated by `python provision/lease.py up` for KVM@TACC. Do not edit: re-run to refresh,\n"
            "# `lease.py down` removes it. The host is deleted by Blazar when the lease ends.\n"
        )
        return header + yaml.safe_dump(data, sort_keys=False, default_flow_style=False)

    def write_inventory(self, address: str) -> bool:
        """Write atomically; return False when the file already has this content."""
        path = self.opts.inventory
        text = self.inventory_text(address)
        try:
            if path.read_text() == text:
                return False
        except OSError:
            pass
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return True

    # -- status (read-only: only GETs, plus the token request)
    def status(self) -> dict[str, Any]:
        net = self.cloud.conn.network
        report: dict[str, Any] = {"lease": None, "server": None, "floating_ip": None, "security_groups": {}}
        leases = self.find_leases()
        if leases:
            le = leases[0]
            end = _parse_blazar_date(le.get("end_date"))
            left = (end - self.now()).total_seconds() if end else None
            report["lease"] = {
                "id": le["id"],
                "name": le["name"],
                "status": le.get("status"),
                "start": le.get("start_date"),
                "end": le.get("end_date"),
                "seconds_left": int(left) if left is not None else None,
                "degraded": bool(le.get("degraded")),
                "reservations": [
                    {"id": r.get("id"), "type": r.get("resource_type"), "status": r.get("status")}
                    for r in le.get("reservations", [])
                ],
            }
            self.state.lease = le
        servers = self.find_servers()
        address = None
        if servers:
            s = servers[0]
            report["server"] = {
                "id": s.id,
                "name": s.name,
                "status": s.status,
                "fault": (s.fault or {}).get("message"),
            }
            ports = list(net.ports(device_id=s.id))
            ips = [ip for p in ports for ip in net.ips(port_id=p.id)]
            if ips:
                address = ips[0].floating_ip_address
            attached = {g for p in ports for g in (p.security_group_ids or [])}
        else:
            attached = set()
        report["floating_ip"] = address
        orphans = [ip.floating_ip_address for ip in self.own_floating_ips() if not ip.port_id]
        if orphans:
            report["orphan_floating_ips"] = orphans
        for name in SECURITY_GROUPS:
            groups = self.groups_named(name)
            report["security_groups"][name] = {
                "exists": bool(groups),
                "attached": any(g.id in attached for g in groups),
            }
        inv = self.opts.inventory
        if not inv.exists():
            report["inventory"] = {"path": str(inv), "state": "missing"}
        elif address and inv.read_text() == self.inventory_text(address):
            report["inventory"] = {"path": str(inv), "state": "current"}
        else:
            report["inventory"] = {"path": str(inv), "state": "stale"}
        report["ready"] = bool(
            report["lease"]
            and report["lease"]["status"] == "ACTIVE"
            and report["server"]
            and report["server"]["status"] == "ACTIVE"
            and address
            and all(g["attached"] for g in report["security_groups"].values())
            and report["inventory"]["state"] == "current"
        )
        return report

    # -- extend
    def extend(self, hours: float) -> dict[str, Any]:
        leases = self.find_leases()
        if not leases:
            raise ConfigError(f"no live lease named {self.opts.lease_name!r} to extend; run `up` first")
        lease = leases[0]
        end = _parse_blazar_date(lease.get("end_date"))
        if end is None:
            raise ProvisionError(f"lease {lease['id']} has an unreadable end date {lease.get('end_date')!r}")
        new_end = (end + dt.timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")
        try:
            updated = self.cloud.blazar_call("PUT", f"/leases/{lease['id']}", json={"end_date": new_end})
        except BlazarError as exc:
            if exc.status in (401, 403):
                raise AuthError(f"KVM@TACC refused to extend lease {lease['name']}: {exc.message}") from None
            raise CloudRefused(
                f"KVM@TACC refused to extend lease {lease['name']} to {new_end} UTC: {exc.message}\n"
                f"  The lease still ends at {_fmt_dt(lease.get('end_date'))}; the server is deleted then. "
                "Save your work before that, then `down` and `up` for a new lease."
            ) from None
        new = (updated or {}).get("lease") or self._get_lease(lease["id"])
        self._change(f"extended lease {lease['name']} to {_fmt_dt(new.get('end_date'))}")
        self.state.lease = new
        return new

    # -- down
    def down(self) -> State:
        from openstack import exceptions as sdk_exc

        net = self.cloud.conn.network
        compute = self.cloud.conn.compute
        leases = self.find_leases()  # ambiguity is refused before anything is deleted
        servers = self.find_servers()
        fips = list(self.own_floating_ips())
        for s in servers:
            for p in net.ports(device_id=s.id):
                fips.extend(ip for ip in net.ips(port_id=p.id) if ip.id not in {f.id for f in fips})
        for s in servers:
            compute.delete_server(s.id, ignore_missing=True)
            self._change(f"deleting server {s.name} ({s.id})")

            def poll(sid: str = s.id) -> tuple[Any, str]:
                try:
                    return None, compute.get_server(sid).status
                except sdk_exc.NotFoundException:
                    return None, "gone"

            self._wait(
                f"server {s.name} deletion",
                poll,
                ok={"gone"},
                failed=set(),
                timeout=self.opts.delete_timeout,
                on_timeout="Re-run `down` to check again.",
            )
        for ip in fips:
            net.delete_ip(ip.id, ignore_missing=True)
            self._change(f"released floating IP {ip.floating_ip_address}")
        for lease in leases:
            try:
                self.cloud.blazar_call("DELETE", f"/leases/{lease['id']}")
                self._change(f"deleted lease {lease['name']} ({lease['id']})")
            except BlazarError as exc:
                if exc.status != 404:
                    raise CloudRefused(f"KVM@TACC refused to delete lease {lease['id']}: {exc.message}") from None
        if self.opts.delete_groups:
            self._delete_groups()
        inv = self.opts.inventory
        if inv.exists():
            inv.unlink()
            self._change(f"removed inventory {inv}")
        return self.state

    def _delete_groups(self) -> None:
        from openstack import exceptions as sdk_exc

        net = self.cloud.conn.network
        used = {g for p in net.ports() for g in (p.security_group_ids or [])}
        for name in SECURITY_GROUPS:
            for g in self.groups_named(name):
                if TOOL_MARK not in (g.description or ""):
                    self._note(f"kept security group {name} ({g.id}): not created by this tool")
                elif g.id in used:
                    self._note(f"kept security group {name} ({g.id}): still used by a port")
                else:
                    try:
                        net.delete_security_group(g.id, ignore_missing=True)
                        self._change(f"deleted security group {name}")
                    except sdk_exc.ConflictException:
                        self._note(f"kept security group {name} ({g.id}): Neutron says it is in use")


def _rule_covering(group: Any, port: int, cidr: str | None) -> dict[str, Any] | None:
    """The ingress IPv4 rule of ``group`` letting tcp/``port`` in from ``cidr`` (or anywhere), if any."""
    for rule in group.security_group_rules or []:
        if rule.get("direction") != "ingress" or rule.get("ethertype", "IPv4") != "IPv4":
            continue
        if rule.get("protocol") not in (None, "tcp", "6"):
            continue
        lo, hi = rule.get("port_range_min"), rule.get("port_range_max")
        if lo is not None and not (lo <= port <= (hi if hi is not None else lo)):
            continue
        prefix = rule.get("remote_ip_prefix")
        if rule.get("remote_group_id") and not prefix:
            continue
        if prefix in (None, "0.0.0.0/0") or prefix == cidr:
            return rule
    return None


def _lease_refusal(exc: BlazarError, hours: float) -> ProvisionError:
    msg = exc.message
    low = msg.lower()
    if exc.status in (401, 403):
        return AuthError(f"Blazar refused the lease: {msg}. Use an 'Unrestricted' application credential.")
    if "not enough" in low or "no valid host" in low:
        return CloudRefused(
            f"KVM@TACC has no free {FLAVOR} for {hours:g}h from now (Blazar: {msg}). Try later or fewer "
            f"--hours; availability is on the dashboard (Reservations > Leases > Flavor Calendar)."
        )
    if exc.status >= 500 and ("internal server error" in low or not msg):
        return CloudRefused(
            f"Blazar failed to create the lease (HTTP {exc.status}: {msg or 'no message'}). "
            "On Chameleon this "
            "usually means the application credential is not 'Unrestricted' (Blazar needs a trust): "
            "create an unrestricted one and retry."
        )
    return CloudRefused(f"Blazar refused the lease (HTTP {exc.status}): {msg}")


def _tcp_open(host: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
