"""Blazar: find, create, wait for and extend the flavor lease."""

from __future__ import annotations

import datetime as dt
from typing import Any

from .errors import (
    Ambiguous,
    AuthError,
    CloudRefused,
    ConfigError,
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
            if exc.status in (401, 403):
                raise AuthError(f"KVM@TACC refused to extend lease {lease['name']}: {exc.message}") from None
            raise CloudRefused(
                f"KVM@TACC refused to extend lease {lease['name']} to {new_end} UTC: {exc.message}\n"
                f"  The lease still ends at {fmt_dt(lease.get('end_date'))}; the server is deleted then. "
                "Save your work before that, then `down` and `up` for a new lease."
            ) from None
        new = (updated or {}).get("lease") or self._get_lease(lease["id"])
        self._change(f"extended lease {lease['name']} to {fmt_dt(new.get('end_date'))}")
        self.state.lease = new
        return new

    # -- down


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
