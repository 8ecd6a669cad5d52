"""A stateful, in-memory fake of KVM@TACC's APIs, served through requests-mock.

Keystone v3 (application-credential tokens with a catalog), Nova, Neutron, Glance and Blazar answer from
dicts kept here, so the real keystoneauth and openstacksdk code paths run against them: the same technique
openstacksdk uses for its own unit tests, with state instead of a fixed script of responses.

Behaviour follows shared/reference/chameleon-provisioning-facts.md: leases are project-wide and keep
TERMINATED entries, lease names are not unique, a flavor reservation creates the hidden flavor
``reservation:<reservation id>`` (id = reservation id) that becomes usable at lease start, deleting a lease
deletes the servers on its flavor, a duplicate security-group rule is a 409, a deleted port leaves its
floating IP unassociated, by-id GETs of names are 404, Blazar errors carry ``error_message``.

Upstream behaviours modelled on top (openstack/blazar@acc44dc, ChameleonCloud/blazar@bbd20e8, neutron-lib):

- ``PUT /leases/<id>`` on a lease with a ``flavor:instance`` reservation answers 409 NotImplemented and
  leaves the lease in ERROR (not a non-fatal exception of ``update_lease``); its reservation stays
  ``active`` and the server keeps running. ``extend_allowed = True`` models a deployment that allows it.
- Usage enforcement: ``max_lease_seconds`` (MaxLeaseDurationFilter) and ``allocation_denial``
  (ExternalServiceFilter, e.g. used-up service units) refuse create and update with HTTP 400 (the code
  upstream gives these NotAuthorized subclasses; ``enforcement_status = 403`` models the 403 that the
  allocation service itself answers). They are non-fatal: the lease keeps its status.
- Neutron quotas (Neutron's defaults per project): ``security_group_quota`` 10, ``security_group_rule_quota``
  100, ``floating_ip_quota`` 50; over them Neutron answers 409 OverQuota "Quota exceeded for resources:
  ['security_group']." (or 'security_group_rule', 'floatingip'); ``floating_ip_pool_size`` limits
  the ``public`` pool, and an empty pool answers 409 IpAddressGenerationFailure "No more IP addresses
  available on network <id>.".
- ``reserved_flavor_id_is_reservation_id = False``: the reserved flavor gets another id, so only its extra
  spec ``aggregate_instance_extra_specs:reservation`` finds it (python-chi's lookup).

Knobs (attributes) let a test script the cloud: lease outcome and speed, server outcome and fault,
capacity refusal, expired credential, extend refusal, quotas, and "lose the response of the Nth write".
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qs, urlparse

import requests
import requests_mock
from keystoneauth1 import fixture as ks_fixture

HOST = "kvm.tacc.chameleoncloud.org"
REGION = "KVM@TACC"
IDENTITY = f"https://{HOST}:5000/v3"
COMPUTE = f"https://{HOST}:8774/v2.1"
NETWORK = f"https://{HOST}:9696"
IMAGE = f"https://{HOST}:9292"
RESERVATION = f"https://{HOST}:1234/v1"

APP_CRED_ID = "appcred-0123"
APP_CRED_SECRET = "s3cr3t-do-not-print"
USER_ID = "u-me"
USER_NAME = "abc123@nyu.edu"
TEAMMATE_ID = "u-teammate"
PROJECT_ID = "p-chi-course"

M1_XLARGE_ID = "5"
PUBLIC_NET_ID = "net-public"
SHARED_NET_ID = "net-sharednet1"
IMAGE_ID = "img-ubuntu2404"
DEFAULT_SG_ID = "sg-default"


def openrc() -> dict[str, str]:
    """What a student's openrc exports for the credential this fake accepts (and the README's GG_NETID)."""
    return {
        "OS_AUTH_TYPE": "v3applicationcredential",
        "OS_AUTH_URL": IDENTITY,
        "OS_REGION_NAME": REGION,
        "OS_APPLICATION_CREDENTIAL_ID": APP_CRED_ID,
        "OS_APPLICATION_CREDENTIAL_SECRET": APP_CRED_SECRET,
        "GG_NETID": "abc123",
    }


class LostResponse(requests.exceptions.ConnectionError):
    """The server did the work, but the answer never arrived."""


class FakeKvmTacc:
    def __init__(self) -> None:
        # knobs
        self.expired_credential = False
        self.lease_create_error: tuple[int, str] | None = None
        self.lease_outcome = "ACTIVE"  # or "ERROR" or "PENDING" (stuck)
        self.lease_start_polls = 2  # GETs of a lease before it leaves PENDING
        self.server_outcome = "ACTIVE"  # or "ERROR"
        self.server_fault = {
            "code": 500,
            "message": "No valid host was found. There are not enough hosts available.",
        }
        self.server_build_polls = 2
        self.extend_allowed = False
        self.server_create_error: tuple[int, str] | None = None  # e.g. (403, "Quota exceeded for instances")
        self.lose_response_of_write: int | None = None  # 1-based index among writes (token POSTs excluded)
        self.catalog_region = REGION
        self.max_lease_seconds: int | None = None  # MaxLeaseDurationFilter; None: no limit
        self.allocation_denial: str | None = None  # ExternalServiceFilter's message, e.g. SUs used up
        self.enforcement_status = 400  # what Blazar renders enforcement refusals as (upstream: 400)
        self.security_group_quota: int | None = 10  # Neutron's default per project
        self.security_group_rule_quota: int | None = 100  # Neutron's default per project
        self.floating_ip_quota: int | None = 50  # Neutron's default per project
        self.floating_ip_pool_size: int | None = None  # addresses in `public`; None: never runs out
        self.reserved_flavor_id_is_reservation_id = True  # upstream flavor plugin: flavor id = reservation id

        self.writes = 0
        self.history: list[tuple[str, str]] = []  # (method, path) of every request
        self.unhandled: list[str] = []
        self._ids = itertools.count(1)
        self._ip_octet = itertools.count(10)
        self.leases: dict[str, dict[str, Any]] = {}
        self.lease_polls: dict[str, int] = {}
        self.flavors: dict[str, dict[str, Any]] = {
            "3": self._flavor("3", "m1.medium", 2, 4096, 40),
            M1_XLARGE_ID: self._flavor(M1_XLARGE_ID, "m1.xlarge", 8, 16384, 40),
        }
        self.keypairs: dict[str, dict[str, Any]] = {
            "mykey": {
                "name": "mykey",
                "public_key": "ssh-ed25519 AAAA mykey",
                "fingerprint": "aa:bb",
                "type": "ssh",
                "user_id": USER_ID,
            }
        }
        self.images: dict[str, dict[str, Any]] = {
            IMAGE_ID: {
                "id": IMAGE_ID,
                "name": "CC-Ubuntu24.04",
                "status": "active",
                "visibility": "public",
                "disk_format": "qcow2",
                "container_format": "bare",
                "min_disk": 0,
                "min_ram": 0,
                "tags": [],
                "protected": False,
                "size": 1,
                "owner": "chameleon",
                "created_at": "2026-01-01T00:00:00Z",
                "updated_at": "2026-01-01T00:00:00Z",
                "self": f"/v2/images/{IMAGE_ID}",
                "file": f"/v2/images/{IMAGE_ID}/file",
                "schema": "/v2/schemas/image",
            },
        }
        self.networks: dict[str, dict[str, Any]] = {
            SHARED_NET_ID: self._network(SHARED_NET_ID, "sharednet1", external=False),
            PUBLIC_NET_ID: self._network(PUBLIC_NET_ID, "public", external=True),
        }
        self.security_groups: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self._add_group(DEFAULT_SG_ID, "default", "Default security group")
        self.servers: dict[str, dict[str, Any]] = {}
        self.server_polls: dict[str, int] = {}
        self.ports: dict[str, dict[str, Any]] = {}
        self.fips: dict[str, dict[str, Any]] = {}

    # ---------------------------------------------------------------- builders
    def _id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids):04d}-{uuid.uuid4().hex[:8]}"

    @staticmethod
    def _flavor(fid: str, name: str, vcpus: int, ram: int, disk: int, public: bool = True) -> dict[str, Any]:
        return {
            "id": fid,
            "name": name,
            "vcpus": vcpus,
            "ram": ram,
            "disk": disk,
            "swap": "",
            "OS-FLV-EXT-DATA:ephemeral": 0,
            "OS-FLV-DISABLED:disabled": False,
            "rxtx_factor": 1.0,
            "os-flavor-access:is_public": public,
            "description": None,
            "extra_specs": {},
            "links": [{"rel": "self", "href": f"{COMPUTE}/flavors/{fid}"}],
        }

    @staticmethod
    def _network(nid: str, name: str, external: bool) -> dict[str, Any]:
        return {
            "id": nid,
            "name": name,
            "status": "ACTIVE",
            "admin_state_up": True,
            "shared": True,
            "router:external": external,
            "subnets": [f"{nid}-subnet"],
            "project_id": "admin",
            "tags": [],
            "description": "",
        }

    def _add_group(self, gid: str, name: str, description: str, project: str = PROJECT_ID) -> dict[str, Any]:
        group = {
            "id": gid,
            "name": name,
            "description": description,
            "project_id": project,
            "tenant_id": project,
            "tags": [],
            "stateful": True,
        }
        self.security_groups[gid] = group
        return group

    def add_security_group(self, name: str, port: int | None = None, description: str = "") -> str:
        """A group someone made on the dashboard (optionally with its tcp rule)."""
        gid = self._id("sg")
        self._add_group(gid, name, description)
        if port is not None:
            self._add_rule(gid, "ingress", "tcp", port, port, "0.0.0.0/0")
        return gid

    def _add_rule(
        self,
        gid: str,
        direction: str,
        protocol: str | None,
        lo: int | None,
        hi: int | None,
        prefix: str | None,
    ) -> dict[str, Any]:
        rid = self._id("rule")
        rule = {
            "id": rid,
            "security_group_id": gid,
            "direction": direction,
            "ethertype": "IPv4",
            "protocol": protocol,
            "port_range_min": lo,
            "port_range_max": hi,
            "remote_ip_prefix": prefix,
            "remote_group_id": None,
            "project_id": PROJECT_ID,
            "description": "",
        }
        self.rules[rid] = rule
        return rule

    def add_floating_ip(self, description: str = "", port_id: str | None = None) -> dict[str, Any]:
        """A floating IP someone else allocated (a teammate's free IP when port_id is None)."""
        return self._new_fip(description, port_id)

    def _new_fip(self, description: str, port_id: str | None) -> dict[str, Any]:
        fid = self._id("fip")
        fip = {
            "id": fid,
            "floating_ip_address": self._fip_address(),
            "floating_network_id": PUBLIC_NET_ID,
            "port_id": None,
            "fixed_ip_address": None,
            "status": "DOWN",
            "description": description,
            "project_id": PROJECT_ID,
            "tenant_id": PROJECT_ID,
            "router_id": None,
            "tags": [],
        }
        self.fips[fid] = fip
        self._bind_fip(fip, port_id)
        return fip

    # Where the twin (tests/chameleon/cloud.py) puts real hosts and addresses behind the same API.
    def _fip_address(self) -> str:
        return f"129.114.27.{next(self._ip_octet)}"

    def _port_address(self, server_id: str) -> str:
        return f"10.56.{len(self.ports)}.7"

    def _fip_deleted(self, fip: dict[str, Any]) -> None:
        pass

    def _bind_fip(self, fip: dict[str, Any], port_id: str | None) -> None:
        fip["port_id"] = port_id
        if port_id:
            fip["fixed_ip_address"] = self.ports[port_id]["fixed_ips"][0]["ip_address"]
            fip["status"] = "ACTIVE"
        else:
            fip["fixed_ip_address"] = None
            fip["status"] = "DOWN"

    def add_lease(self, name: str, status: str = "ACTIVE", user_id: str = USER_ID) -> dict[str, Any]:
        lease = self._make_lease(name, user_id, M1_XLARGE_ID, "2026-01-01 14:00", start="2026-01-01 10:00")
        self._set_lease_status(lease, status)
        return lease

    def vanish_server(self, sid: str) -> None:
        """The server is deleted outside the tool (dashboard, or Blazar at lease end)."""
        self._remove_server(sid)

    def end_lease(self, lease_id: str) -> None:
        """Blazar ends and deletes the lease, deleting the servers on its flavor."""
        self._blazar("DELETE", f"/v1/leases/{lease_id}", {}, None)

    # ---------------------------------------------------------------- queries for tests
    def live_leases(self) -> list[dict[str, Any]]:
        return [le for le in self.leases.values() if le["status"] not in ("TERMINATED", "DELETED")]

    def groups_named(self, name: str) -> list[dict[str, Any]]:
        return [g for g in self.security_groups.values() if g["name"] == name]

    def rules_of(self, gid: str) -> list[dict[str, Any]]:
        return [r for r in self.rules.values() if r["security_group_id"] == gid]

    # ---------------------------------------------------------------- mounting
    def install(self, mocker: requests_mock.Mocker) -> None:
        mocker.add_matcher(self._dispatch)

    def _dispatch(self, request: Any) -> Any:
        url = urlparse(request.url)
        if url.hostname != HOST:
            return None
        method = request.method
        query = {k: v for k, v in parse_qs(url.query).items()}
        body = json.loads(request.body) if request.body else None
        self.history.append((method, url.path))
        is_write = method != "GET" and not url.path.endswith("/auth/tokens")
        routes = {
            5000: self._keystone,
            8774: self._nova,
            9696: self._neutron,
            9292: self._glance,
            1234: self._blazar,
        }
        handler = routes.get(url.port or 443)
        result = handler(method, url.path.rstrip("/") or "/", query, body) if handler else None
        if result is None:
            self.unhandled.append(f"{method} {request.url}")
            result = (404, {"error": "unhandled by fake"}, {})
        status, payload, headers = result if len(result) == 3 else (*result, {})
        if is_write:
            self.writes += 1
            if self.lose_response_of_write == self.writes:
                raise LostResponse(f"fake: connection dropped after {method} {url.path} was applied")
        if payload is None:
            return requests_mock.create_response(request, status_code=status, headers=headers)
        return requests_mock.create_response(
            request, status_code=status, json=payload, headers={"Content-Type": "application/json", **headers}
        )

    # ---------------------------------------------------------------- Keystone
    def _keystone(self, method: str, path: str, query: dict, body: Any) -> tuple | None:
        if method == "POST" and path == "/v3/auth/tokens":
            ident = (body or {}).get("auth", {}).get("identity", {})
            cred = ident.get("application_credential", {})
            if (
                self.expired_credential
                or "application_credential" not in ident.get("methods", [])
                or cred.get("id") != APP_CRED_ID
                or cred.get("secret") != APP_CRED_SECRET
            ):
                return 401, {
                    "error": {
                        "code": 401,
                        "title": "Unauthorized",
                        "message": "The request you have made requires authentication.",
                    }
                }
            token = ks_fixture.V3Token(
                user_id=USER_ID,
                user_name=USER_NAME,
                project_id=PROJECT_ID,
                project_name="CHI-251409",
                methods=["application_credential"],
                application_credential_id=APP_CRED_ID,
            )
            for service, url in (
                ("identity", IDENTITY),
                ("compute", COMPUTE),
                ("network", NETWORK),
                ("image", IMAGE),
                ("reservation", RESERVATION),
            ):
                token.add_service(service).add_endpoint("public", url, region=self.catalog_region)
            return 201, dict(token), {"X-Subject-Token": "fake-token"}
        return None

    # ---------------------------------------------------------------- Nova
    def _nova(self, method: str, path: str, query: dict, body: Any) -> tuple | None:
        if not path.startswith("/v2.1"):
            if path == "/" and method == "GET":
                return 200, {"versions": [self._nova_version()]}
            return None
        p = path[len("/v2.1") :] or "/"
        if p == "/" and method == "GET":
            return 200, {"version": self._nova_version()}
        if p == "/flavors/detail" and method == "GET":
            return 200, {"flavors": [f for f in self.flavors.values() if self._flavor_visible(f)]}
        m = re.fullmatch(r"/flavors/([^/]+)", p)
        if m and method == "GET":
            f = self.flavors.get(m.group(1))
            if f is None or not self._flavor_visible(f):
                return 404, {"itemNotFound": {"code": 404, "message": f"Flavor {m.group(1)} could not be found."}}
            return 200, {"flavor": f}
        m = re.fullmatch(r"/flavors/([^/]+)/os-extra_specs", p)
        if m and method == "GET":
            f = self.flavors.get(m.group(1))
            return (200, {"extra_specs": f["extra_specs"]}) if f else (404, {})
        m = re.fullmatch(r"/os-keypairs/([^/]+)", p)
        if m and method == "GET":
            kp = self.keypairs.get(m.group(1))
            if kp is None:
                return 404, {"itemNotFound": {"code": 404, "message": f"Keypair {m.group(1)} not found"}}
            return 200, {"keypair": kp}
        if p == "/os-keypairs" and method == "POST":
            kp = dict(body["keypair"], fingerprint="cc:dd", type="ssh", user_id=USER_ID)
            self.keypairs[kp["name"]] = kp
            return 200, {"keypair": kp}
        if p == "/servers/detail" and method == "GET":
            servers = list(self.servers.values())
            if "name" in query:
                rx = re.compile(query["name"][0])
                servers = [s for s in servers if rx.search(s["name"])]
            return 200, {"servers": [self._server_view(s) for s in servers]}
        if p == "/servers" and method == "POST":
            return self._create_server(body["server"])
        m = re.fullmatch(r"/servers/([^/]+)", p)
        if m:
            s = self.servers.get(m.group(1))
            if s is None:
                return 404, {"itemNotFound": {"code": 404, "message": "Instance could not be found."}}
            if method == "GET":
                self._advance_server(s)
                view = self._server_view(s)
                if s.get("_deleting"):
                    self._remove_server(s["id"])  # gone on the next GET
                return 200, {"server": view}
            if method == "DELETE":
                s["_deleting"] = True
                s["OS-EXT-STS:task_state"] = "deleting"
                return 204, None
        return None

    @staticmethod
    def _nova_version() -> dict[str, Any]:
        return {
            "id": "v2.1",
            "status": "CURRENT",
            "version": "2.96",
            "min_version": "2.1",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{COMPUTE}/"}],
        }

    def _flavor_visible(self, f: dict[str, Any]) -> bool:
        if f["os-flavor-access:is_public"]:
            return True
        # Blazar grants the project access at lease start and revokes it at lease end (instance_plugin
        # on_start/on_end): it follows the reservation, not the lease status (an ERROR lease keeps it).
        rid = f["extra_specs"].get("aggregate_instance_extra_specs:reservation")
        res = [r for le in self.leases.values() for r in le["reservations"] if r["id"] == rid]
        return bool(res and res[0]["status"] == "active")

    def _create_server(self, req: dict[str, Any]) -> tuple:
        if self.server_create_error:
            code, message = self.server_create_error
            return code, {"forbidden" if code == 403 else "badRequest": {"code": code, "message": message}}
        flavor = self.flavors.get(req.get("flavorRef", ""))
        if flavor is None or not self._flavor_visible(flavor):
            return 400, {"badRequest": {"code": 400, "message": f"Flavor {req.get('flavorRef')} could not be found."}}
        if req.get("imageRef") not in self.images:
            return 400, {"badRequest": {"code": 400, "message": "Invalid imageRef provided."}}
        if req.get("key_name") not in self.keypairs:
            return 400, {"badRequest": {"code": 400, "message": f"Invalid key_name provided: {req.get('key_name')}"}}
        nets = [n.get("uuid") for n in req.get("networks", [])]
        if not nets or any(n not in self.networks for n in nets):
            return 400, {"badRequest": {"code": 400, "message": "Network could not be found."}}
        sid = self._id("srv")
        server = {
            "id": sid,
            "name": req["name"],
            "status": "BUILD",
            "key_name": req.get("key_name"),
            "flavor": {
                "original_name": flavor["name"],
                "vcpus": flavor["vcpus"],
                "ram": flavor["ram"],
                "disk": flavor["disk"],
                "ephemeral": 0,
                "swap": 0,
                "extra_specs": {},
            },
            "_flavor_id": flavor["id"],
            "_reservation_id": flavor["extra_specs"].get("aggregate_instance_extra_specs:reservation"),
            "image": {"id": req["imageRef"]},
            "metadata": req.get("metadata", {}),
            "tenant_id": PROJECT_ID,
            "user_id": USER_ID,
            "created": "2026-01-01T10:05:00Z",
            "updated": "2026-01-01T10:05:00Z",
            "addresses": {},
            "OS-EXT-STS:task_state": "spawning",
            "OS-EXT-STS:vm_state": "building",
            "links": [{"rel": "self", "href": f"{COMPUTE}/servers/{sid}"}],
        }
        self.servers[sid] = server
        self.server_polls[sid] = 0
        for nid in nets:
            pid = self._id("port")
            self.ports[pid] = {
                "id": pid,
                "name": "",
                "network_id": nid,
                "device_id": sid,
                "device_owner": "compute:nova",
                "fixed_ips": [{"subnet_id": f"{nid}-subnet", "ip_address": self._port_address(sid)}],
                "security_groups": [DEFAULT_SG_ID],
                "status": "ACTIVE",
                "admin_state_up": True,
                "mac_address": "fa:16:3e:00:00:01",
                "project_id": PROJECT_ID,
                "tags": [],
                "description": "",
            }
        return 202, {
            "server": {
                "id": sid,
                "links": server["links"],
                "adminPass": "x",
                "OS-DCF:diskConfig": "MANUAL",
                "security_groups": [{"name": "default"}],
            }
        }

    def _advance_server(self, s: dict[str, Any]) -> None:
        if s["status"] != "BUILD":
            return
        self.server_polls[s["id"]] += 1
        if self.server_polls[s["id"]] >= self.server_build_polls:
            s["status"] = self.server_outcome
            s["OS-EXT-STS:task_state"] = None
            s["OS-EXT-STS:vm_state"] = self.server_outcome.lower()
            if self.server_outcome == "ERROR":
                s["fault"] = dict(self.server_fault, created="2026-01-01T10:06:00Z")

    def _server_view(self, s: dict[str, Any]) -> dict[str, Any]:
        view = {k: copy.deepcopy(v) for k, v in s.items() if not k.startswith("_")}
        addresses: dict[str, list[dict[str, Any]]] = {}
        for port in self.ports.values():
            if port["device_id"] != s["id"]:
                continue
            net = self.networks[port["network_id"]]["name"]
            ip = port["fixed_ips"][0]["ip_address"]
            addrs = addresses.setdefault(net, [])
            addrs.append(
                {
                    "addr": ip,
                    "version": 4,
                    "OS-EXT-IPS:type": "fixed",
                    "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                }
            )
            for fip in self.fips.values():
                if fip["port_id"] == port["id"]:
                    addrs.append(
                        {
                            "addr": fip["floating_ip_address"],
                            "version": 4,
                            "OS-EXT-IPS:type": "floating",
                            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"],
                        }
                    )
        view["addresses"] = addresses if s["status"] != "BUILD" else {}
        view["security_groups"] = [
            {"name": self.security_groups[g]["name"]}
            for p in self.ports.values()
            if p["device_id"] == s["id"]
            for g in p["security_groups"]
        ]
        return view

    def _remove_server(self, sid: str) -> None:
        self.servers.pop(sid, None)
        for pid in [pid for pid, p in self.ports.items() if p["device_id"] == sid]:
            for fip in self.fips.values():
                if fip["port_id"] == pid:
                    self._bind_fip(fip, None)  # Neutron keeps the floating IP, unassociated
            del self.ports[pid]

    # ---------------------------------------------------------------- Neutron
    def _neutron(self, method: str, path: str, query: dict, body: Any) -> tuple | None:
        if path == "/" and method == "GET":
            return 200, {
                "versions": [
                    {
                        "id": "v2.0",
                        "status": "CURRENT",
                        "links": [{"rel": "self", "href": f"{NETWORK}/v2.0/"}],
                    }
                ]
            }
        if not path.startswith("/v2.0/"):
            return None
        parts = path[len("/v2.0/") :].split("/")
        collection, rid = parts[0], (parts[1] if len(parts) > 1 else None)
        table, singular = {
            "networks": (self.networks, "network"),
            "security-groups": (self.security_groups, "security_group"),
            "security-group-rules": (self.rules, "security_group_rule"),
            "ports": (self.ports, "port"),
            "floatingips": (self.fips, "floatingip"),
        }.get(collection, (None, None))
        if table is None or singular is None:
            return None
        view = self._group_view if collection == "security-groups" else (lambda x: copy.deepcopy(x))
        if rid is None and method == "GET":
            items = [view(x) for x in table.values()]
            for key, values in query.items():
                if key in ("fields", "limit", "marker", "sort_key", "sort_dir"):
                    continue
                items = [
                    x
                    for x in items
                    if str(x.get(key)) in values or (isinstance(x.get(key), bool) and str(x.get(key)).lower() in values)
                ]
            return 200, {collection.replace("-", "_"): items}
        if rid is None and method == "POST":
            return self._neutron_create(collection, body[singular])
        item = table.get(rid or "")
        if item is None:
            return 404, {
                "NeutronError": {
                    "type": "NotFound",
                    "message": f"{singular} {rid} could not be found.",
                    "detail": "",
                }
            }
        if method == "GET":
            return 200, {singular: view(item)}
        if method == "PUT":
            changes = body[singular]
            if collection == "ports" and "security_groups" in changes:
                item["security_groups"] = list(changes["security_groups"])
            elif collection == "floatingips" and "port_id" in changes:
                self._bind_fip(item, changes["port_id"])
            else:
                item.update(changes)
            return 200, {singular: view(item)}
        if method == "DELETE":
            if collection == "security-groups":
                if any(rid in p["security_groups"] for p in self.ports.values()):
                    return 409, {
                        "NeutronError": {
                            "type": "SecurityGroupInUse",
                            "message": f"Security Group {rid} in use.",
                            "detail": "",
                        }
                    }
                for r in self.rules_of(rid):
                    del self.rules[r["id"]]
            if collection == "floatingips":
                self._fip_deleted(item)
            del table[rid]
            return 204, None
        return None

    def _group_view(self, g: dict[str, Any]) -> dict[str, Any]:
        return dict(copy.deepcopy(g), security_group_rules=copy.deepcopy(self.rules_of(g["id"])))

    @staticmethod
    def _over_quota(resource: str) -> tuple:
        return 409, {
            "NeutronError": {
                "type": "OverQuota",
                "message": f"Quota exceeded for resources: ['{resource}'].",
                "detail": "",
            }
        }

    def _neutron_create(self, collection: str, attrs: dict[str, Any]) -> tuple | None:
        if collection == "security-groups":
            used = sum(1 for g in self.security_groups.values() if g["project_id"] == PROJECT_ID)
            if self.security_group_quota is not None and used >= self.security_group_quota:
                return self._over_quota("security_group")
            g = self._add_group(self._id("sg"), attrs["name"], attrs.get("description", ""))
            # Neutron adds the two egress rules to every new group
            self._add_rule(g["id"], "egress", None, None, None, None)
            return 201, {"security_group": self._group_view(g)}
        if collection == "security-group-rules":
            gid = attrs["security_group_id"]
            if gid not in self.security_groups:
                return 404, {"NeutronError": {"type": "SecurityGroupNotFound", "message": "not found", "detail": ""}}
            if self.security_group_rule_quota is not None and len(self.rules) >= self.security_group_rule_quota:
                return self._over_quota("security_group_rule")
            key = ("direction", "protocol", "port_range_min", "port_range_max", "remote_ip_prefix")
            for r in self.rules_of(gid):
                if all(r.get(k) == attrs.get(k) for k in key) and r["ethertype"] == attrs.get("ethertype", "IPv4"):
                    return 409, {
                        "NeutronError": {
                            "type": "SecurityGroupRuleExists",
                            "message": f"Security group rule already exists. Rule id is {r['id']}.",
                            "detail": "",
                        }
                    }
            rule = self._add_rule(
                gid,
                attrs["direction"],
                attrs.get("protocol"),
                attrs.get("port_range_min"),
                attrs.get("port_range_max"),
                attrs.get("remote_ip_prefix"),
            )
            return 201, {"security_group_rule": copy.deepcopy(rule)}
        if collection == "floatingips":
            if attrs.get("floating_network_id") != PUBLIC_NET_ID:
                return 400, {"NeutronError": {"type": "BadRequest", "message": "not an external network", "detail": ""}}
            port_id = attrs.get("port_id")
            if port_id and port_id not in self.ports:
                return 404, {"NeutronError": {"type": "PortNotFound", "message": "port not found", "detail": ""}}
            if self.floating_ip_quota is not None and len(self.fips) >= self.floating_ip_quota:
                return self._over_quota("floatingip")
            if self.floating_ip_pool_size is not None and len(self.fips) >= self.floating_ip_pool_size:
                return 409, {
                    "NeutronError": {
                        "type": "IpAddressGenerationFailure",
                        "message": f"No more IP addresses available on network {PUBLIC_NET_ID}.",
                        "detail": "",
                    }
                }
            fip = self._new_fip(attrs.get("description", ""), port_id)
            return 201, {"floatingip": copy.deepcopy(fip)}
        return None

    # ---------------------------------------------------------------- Glance
    def _glance(self, method: str, path: str, query: dict, body: Any) -> tuple | None:
        if method != "GET":
            return None
        if path == "/":
            return 300, {
                "versions": [{"id": "v2.16", "status": "CURRENT", "links": [{"rel": "self", "href": f"{IMAGE}/v2/"}]}]
            }
        if path == "/v2/images":
            images = list(self.images.values())
            if "name" in query:
                images = [i for i in images if i["name"] in query["name"]]
            return 200, {"images": images, "schema": "/v2/schemas/images", "first": "/v2/images"}
        m = re.fullmatch(r"/v2/images/([^/]+)", path)
        if m:
            img = self.images.get(m.group(1))
            return (200, img) if img else (404, {"message": "404 Not Found", "code": "404"})
        return None

    # ---------------------------------------------------------------- Blazar
    def _blazar_error(self, status: int, message: str) -> tuple:
        return status, {"error_code": status, "error_message": message, "error_name": status}

    def _make_lease(
        self, name: str, user_id: str, flavor_id: str, end: str, start: str | None = None
    ) -> dict[str, Any]:
        lid, rid = str(uuid.uuid4()), str(uuid.uuid4())
        start = start or dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
        src = self.flavors[flavor_id]
        lease = {
            "id": lid,
            "name": name,
            "status": "PENDING",
            "degraded": False,
            "user_id": user_id,
            "project_id": PROJECT_ID,
            "trust_id": "t",
            "start_date": start.replace(" ", "T") + ":00.000000",
            "end_date": end.replace(" ", "T") + ":00.000000",
            "created_at": "2026-01-01 10:00:00",
            "updated_at": None,
            "reservations": [
                {
                    "id": rid,
                    "lease_id": lid,
                    "status": "pending",
                    "resource_type": "flavor:instance",
                    "resource_id": rid,
                    "missing_resources": False,
                    "resources_changed": False,
                    "amount": 1,
                    "vcpus": src["vcpus"],
                    "memory_mb": src["ram"],
                    "disk_gb": src["disk"],
                    "affinity": None,
                    "flavor_id": flavor_id,
                    "resource_properties": json.dumps({"name": src["name"]}),
                }
            ],
            "events": [
                {"event_type": "start_lease", "status": "UNDONE", "time": start.replace(" ", "T") + ":00.000000"},
                {"event_type": "end_lease", "status": "UNDONE", "time": end},
            ],
        }
        self.leases[lid] = lease
        self.lease_polls[lid] = 0
        fid = rid if self.reserved_flavor_id_is_reservation_id else str(uuid.uuid4())
        reserved = self._flavor(fid, f"reservation:{rid}", src["vcpus"], src["ram"], src["disk"], public=False)
        reserved["extra_specs"] = {
            "aggregate_instance_extra_specs:reservation": rid,
            f"resources:CUSTOM_RESERVATION_{rid.upper().replace('-', '_')}": "1",
        }
        self.flavors[fid] = reserved
        return lease

    def reserved_flavor(self, reservation_id: str) -> dict[str, Any] | None:
        """The flavor Blazar made for a reservation (found by its extra spec, as python-chi does)."""
        return next(
            (
                f
                for f in self.flavors.values()
                if f["extra_specs"].get("aggregate_instance_extra_specs:reservation") == reservation_id
            ),
            None,
        )

    def _enforcement_refusal(self, start: dt.datetime, end: dt.datetime) -> tuple | None:
        """Blazar's usage enforcement on create and update (non-fatal: the lease keeps its status)."""
        seconds = int((end - start).total_seconds())
        if self.max_lease_seconds is not None and seconds > self.max_lease_seconds:
            return self._blazar_error(
                self.enforcement_status,
                f"Lease duration of {seconds} seconds must be less than or equal to the maximum lease "
                f"duration of {self.max_lease_seconds} seconds.",
            )
        if self.allocation_denial:
            return self._blazar_error(self.enforcement_status, self.allocation_denial)
        return None

    def _set_lease_status(self, lease: dict[str, Any], status: str) -> None:
        lease["status"] = status
        res_status = {"ACTIVE": "active", "ERROR": "error", "TERMINATED": "deleted"}.get(status, "pending")
        for r in lease["reservations"]:
            r["status"] = res_status
        if status in ("ACTIVE", "TERMINATED", "ERROR"):
            lease["events"][0]["status"] = "ERROR" if status == "ERROR" else "DONE"

    def _advance_lease(self, lease: dict[str, Any]) -> None:
        if lease["status"] != "PENDING" or self.lease_outcome == "PENDING":
            return
        self.lease_polls[lease["id"]] += 1
        if self.lease_polls[lease["id"]] >= self.lease_start_polls:
            self._set_lease_status(lease, self.lease_outcome)

    def _blazar(self, method: str, path: str, query: dict, body: Any) -> tuple | None:
        if not path.startswith("/v1"):
            return None
        p = path[len("/v1") :]
        if p == "/leases" and method == "GET":
            return 200, {"leases": [copy.deepcopy(le) for le in self.leases.values()]}
        if p == "/leases" and method == "POST":
            if self.lease_create_error:
                return self._blazar_error(*self.lease_create_error)
            for key in ("name", "start_date", "end_date", "reservations"):
                if key not in body:
                    return self._blazar_error(400, f"Missing parameter {key}")
            (res,) = body["reservations"]
            if res.get("resource_type") != "flavor:instance" or "affinity" not in res or res["amount"] < 1:
                return self._blazar_error(400, "Malformed parameter reservations")
            if res["flavor_id"] not in self.flavors:
                return self._blazar_error(404, f"Object with {{'flavor_id': '{res['flavor_id']}'}} not found")
            if not re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", body["end_date"]):
                return self._blazar_error(
                    400, f"{body['end_date']} is an invalid date. Required format: %Y-%m-%d %H:%M"
                )
            now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
            end = dt.datetime.strptime(body["end_date"], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
            refusal = self._enforcement_refusal(now, end)
            if refusal:
                return refusal
            lease = self._make_lease(body["name"], USER_ID, res["flavor_id"], body["end_date"])
            return 201, {"lease": copy.deepcopy(lease)}
        m = re.fullmatch(r"/leases/([^/]+)", p)
        if m:
            lease = self.leases.get(m.group(1))
            if lease is None:
                return self._blazar_error(404, f"Object with {{'lease_id': '{m.group(1)}'}} not found")
            if method == "GET":
                self._advance_lease(lease)
                return 200, {"lease": copy.deepcopy(lease)}
            if method == "PUT":
                if set(body) == {"name"}:  # a name-only update is always allowed
                    lease["name"] = body["name"]
                    return 200, {"lease": copy.deepcopy(lease)}
                flavor = any(r["resource_type"] == "flavor:instance" for r in lease["reservations"])
                if flavor and not self.extend_allowed:
                    # NotImplemented is not among update_lease's non-fatal exceptions: the status decorator
                    # leaves the lease in ERROR; reservations, events and servers are not touched.
                    lease["status"] = "ERROR"
                    return self._blazar_error(
                        409,
                        "Updating leases for 'flavor:instance' type reservations is not yet supported.",
                    )
                start = dt.datetime.strptime(lease["start_date"], "%Y-%m-%dT%H:%M:%S.%f").replace(tzinfo=dt.UTC)
                end = dt.datetime.strptime(body["end_date"], "%Y-%m-%d %H:%M").replace(tzinfo=dt.UTC)
                refusal = self._enforcement_refusal(start, end)
                if refusal:
                    return refusal
                lease["end_date"] = body["end_date"].replace(" ", "T") + ":00.000000"
                lease["events"][1]["time"] = lease["end_date"]
                return 200, {"lease": copy.deepcopy(lease)}
            if method == "DELETE":
                rids = {r["id"] for r in lease["reservations"]}
                for sid in [s["id"] for s in self.servers.values() if s["_reservation_id"] in rids]:
                    self._remove_server(sid)  # Blazar deletes instances on the reserved flavor
                for rid in rids:
                    flavor = self.reserved_flavor(rid)
                    if flavor:
                        del self.flavors[flavor["id"]]
                del self.leases[lease["id"]]
                return 204, None
        return None
