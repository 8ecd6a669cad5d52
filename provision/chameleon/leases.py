"""Blazar: find, create, wait for and extend the flavor lease.

Upstream Blazar facts this module relies on (openstack/blazar@acc44dc, ChameleonCloud/blazar@bbd20e8):

- ``PUT /leases/<id>`` on a lease holding a ``flavor:instance`` reservation raises ``NotImplemented``
  (HTTP 409). That exception is not in ``update_lease``'s non-fatal list, so the status decorator
  leaves the lease in ``ERROR``; the reservation stays ``active``, the ``end_lease`` event stays
  ``UNDONE`` and the server keeps running until the original end (ERROR -> TERMINATING is a valid
  transition). Such a lease is *usable*: nothing must advise ``down``, which would delete the server.
- Usage enforcement (``MaxLeaseDurationFilter``, ``ExternalServiceFilter`` for allocations/SUs)
  raises subclasses of ``NotAuthorized`` whose HTTP code is set to 400; Chameleon's external service
  itself answers Blazar with 403. Either status with an enforcement message is a lease-policy refusal,
  not a credential problem; only a 401, or a 403 "Policy doesn't allow ..." (oslo.policy), is one.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from .errors import (
    Ambiguous,
    AuthError,
    CloudRefused,
    ConfigError,
    ExtendUnsupported,
    LeasePolicyRefused,
    ProvisionError,
    ResourceFailed,
)
from .facts import (
    FLAVOR,
    GONE_LEASE_STATUSES,
)
from .output import fmt_dt, log, parse_blazar_date
from .session import BlazarError
from .steps import Steps

#: Lease statuses in which the flavor reservation can still be in use (UPDATING: during an update).
USABLE_WHEN_RESERVED = frozenset({"ACTIVE", "ERROR", "UPDATING"})


def flavor_reservations(lease: dict[str, Any]) -> list[dict[str, Any]]:
    return [r for r in lease.get("reservations", []) if r.get("resource_type") == "flavor:instance"]


def lease_usable(lease: dict[str, Any]) -> bool:
    """ACTIVE, or ERROR/UPDATING while every flavor reservation is still active (a refused update)."""
    if lease.get("status") == "ACTIVE":
        return True
    res = flavor_reservations(lease)
    ended = any(e.get("event_type") == "end_lease" and e.get("status") == "DONE" for e in lease.get("events", []))
    return (
        lease.get("status") in USABLE_WHEN_RESERVED
        and bool(res)
        and all(r.get("status") == "active" for r in res)
        and not ended
    )


def usable_note(lease: dict[str, Any]) -> str:
    """What a usable lease that is not ACTIVE means, for `up` and `status`."""
    return (
        f"lease {lease.get('name')} is {lease.get('status')} but its reservation is active: Blazar marks a "
        "flavor lease ERROR when an update (extend) is refused. Nothing is broken; the server keeps running "
        f"until the lease's end, {fmt_dt(lease.get('end_date'))}, when Blazar deletes it. Do not run `down` "
        "for this: it would delete the running server now."
    )


#: Words of Blazar's usage-enforcement refusals (max lease duration, update window, allocation / SUs).
_ENFORCEMENT = re.compile(
    r"lease duration|can only be extended|allocation|service units?|\bSUs?\b|enforcement|external service",
    re.IGNORECASE,
)


def is_policy_refusal(exc: BlazarError) -> bool:
    """Blazar enforcement (400 upstream; 403 from the allocation service behind it), not a credential issue."""
    if exc.status == 403:
        return not is_role_refusal(exc)
    return exc.status == 400 and bool(_ENFORCEMENT.search(exc.message))


def is_role_refusal(exc: BlazarError) -> bool:
    """oslo.policy said no (PolicyNotAuthorized, 403): the credential lacks a role or is restricted."""
    low = exc.message.lower().strip().rstrip(".")
    return exc.status == 403 and (
        "policy doesn't allow" in low or "policy does not allow" in low or low == "not authorized"
    )


class LeaseSteps(Steps):
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
                f"    {le['id']}  {le.get('status')}  {fmt_dt(le.get('start_date'))} -> {fmt_dt(le.get('end_date'))}"
                for le in sorted(mine, key=lambda le: le.get("created_at") or "")
            )
            raise Ambiguous(
                f"{len(mine)} live leases are named {self.opts.lease_name!r}:\n{listing}\n"
                "  Pick one with --lease-id ID, or delete the extra ones "
                "(`openstack reservation lease delete ID`)."
            )
        return mine

    def _ensure_lease(self, flavor_id: str, found: list[dict[str, Any]]) -> dict[str, Any]:
        """The lease ``find_leases`` found, or a new one."""
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
        def poll() -> tuple[dict[str, Any], str]:
            le = self._get_lease(lease["id"])
            status = le.get("status", "?")
            return le, (f"{status}, reservation active" if status != "ACTIVE" and lease_usable(le) else status)

        if not lease_usable(lease):
            lease, _ = self._wait(
                f"lease {lease['name']}",
                poll,
                ok={"ACTIVE", *(f"{s}, reservation active" for s in USABLE_WHEN_RESERVED)},
                failed={"ERROR", *GONE_LEASE_STATUSES},
                timeout=self.opts.lease_timeout,
                on_timeout="The lease is kept: re-run `up` to keep waiting, or `down` to give it up.",
            )
        self.state.lease = lease
        status = lease.get("status")
        if lease_usable(lease):
            if status != "ACTIVE":
                self._note(usable_note(lease))
            if lease.get("degraded"):
                self._note(f"lease {lease['name']} is degraded (some reserved resources are missing)")
            return lease
        reasons = "; ".join(
            f"{r.get('resource_type')} reservation {r.get('status')}"
            + (" (missing resources)" if r.get("missing_resources") else "")
            for r in lease.get("reservations", [])
        )
        events = "; ".join(
            f"{e.get('event_type')} {e.get('status')}" for e in lease.get("events", []) if e.get("status") == "ERROR"
        )
        detail = "; ".join(x for x in (reasons, events) if x)
        raise ResourceFailed(
            f"lease {lease['name']} ({lease['id']}) is {status}"
            + (f": {detail}" if detail else "")
            + ". "
            + self.failed_lease_advice(lease)
        )

    def failed_lease_advice(self, lease: dict[str, Any]) -> str:
        """Next step for a lease that cannot be used. Never `down` while the server runs: that deletes it."""
        running = [s for s in self.find_servers() if s.status == "ACTIVE"]
        if running:
            return (
                f"Server {running[0].name} is still ACTIVE: keep using it and save your work; Blazar deletes it "
                f"at the lease's end, {fmt_dt(lease.get('end_date'))}. Ask the Chameleon help desk about the "
                "lease if it should not be in this state."
            )
        return "Run `lease.py down` to delete it, then `up` again (maybe with fewer --hours or later)."

    def extend(self, hours: float) -> dict[str, Any]:
        leases = self.find_leases()
        if not leases:
            raise ConfigError(f"no live lease named {self.opts.lease_name!r} to extend; run `up` first")
        lease = leases[0]
        end = parse_blazar_date(lease.get("end_date"))
        if end is None:
            raise ProvisionError(f"lease {lease['id']} has an unreadable end date {lease.get('end_date')!r}")
        new_end = (end + dt.timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M")
        try:
            updated = self.cloud.blazar_call("PUT", f"/leases/{lease['id']}", json={"end_date": new_end})
        except BlazarError as exc:
            raise self._extend_refusal(lease, new_end, exc) from None
        new = (updated or {}).get("lease") or self._get_lease(lease["id"])
        self._change(f"extended lease {lease['name']} to {fmt_dt(new.get('end_date'))}")
        self.state.lease = new
        return new

    def _extend_refusal(self, lease: dict[str, Any], new_end: str, exc: BlazarError) -> ProvisionError:
        name, old_end = lease["name"], fmt_dt(lease.get("end_date"))
        keeps = f"The lease still ends at {old_end}: the server keeps running until then, when Blazar deletes it."
        if exc.status == 401 or is_role_refusal(exc):
            return AuthError(f"KVM@TACC refused the credential while extending lease {name}: {exc.message}. {keeps}")
        if is_policy_refusal(exc):
            return LeasePolicyRefused(
                f"Blazar's lease policy refused to extend lease {name} to {new_end} UTC: {exc.message}\n"
                f"  Your credential is fine. {keeps} Ask for fewer --hours, or later."
            )
        if exc.status == 409 and "flavor:instance" in exc.message:
            after = self._get_lease(lease["id"])  # upstream has just put it in ERROR
            res = ", ".join(r.get("status", "?") for r in flavor_reservations(after)) or "?"
            self.state.lease = after
            return ExtendUnsupported(
                f"KVM@TACC cannot extend lease {name}: Blazar answered HTTP 409: {exc.message}\n"
                f"  Blazar has now marked the lease {after.get('status')} (upstream does this after a refused "
                f"update); its reservation is {res}. "
                + (
                    f"Nothing is lost: the server keeps running until the original end, {old_end}, when "
                    "Blazar deletes it. Do NOT run `down` for this (it would delete the running server now). "
                    "Save your work before that end; afterwards `up` makes a new lease and server."
                    if lease_usable(after)
                    else self.failed_lease_advice(after)
                )
            )
        return CloudRefused(f"KVM@TACC refused to extend lease {name} to {new_end} UTC: {exc.message}\n  {keeps}")


def _lease_refusal(exc: BlazarError, hours: float) -> ProvisionError:
    msg = exc.message
    low = msg.lower()
    if exc.status == 401 or is_role_refusal(exc):
        return AuthError(
            f"Blazar refused the credential (HTTP {exc.status}: {msg}). Use an 'Unrestricted' KVM@TACC "
            "application credential of this project."
        )
    if is_policy_refusal(exc):
        return LeasePolicyRefused(
            f"Blazar's lease policy refused a {hours:g}h lease (HTTP {exc.status}): {msg}\n"
            "  Your credential is fine; do not recreate it. If the lease is too long, ask for fewer --hours. "
            "If the message is about the allocation (service units, expired or used up), the project's "
            "allocation must be renewed or extended on the Chameleon portal: ask the course staff."
        )
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
