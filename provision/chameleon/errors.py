"""Errors with a message for the user and a documented exit code; library exceptions mapped to them."""

from __future__ import annotations

from .facts import (
    REGION,
)


class ProvisionError(Exception):
    """An expected failure with a message meant for the user and a documented exit code."""

    exit_code = 1
    kind = "failure"


class ConfigError(ProvisionError):
    exit_code = 2
    kind = "config"


class AuthError(ProvisionError):
    """Keystone said no (401), or a service's policy refused the credential's roles."""

    exit_code = 3
    kind = "auth"


class CloudRefused(ProvisionError):
    """No capacity ("Not enough hosts available") or another refusal without a class of its own."""

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


class LeasePolicyRefused(ProvisionError):
    """Blazar's usage enforcement said no: lease longer than allowed, allocation (SUs) used up or expired."""

    exit_code = 9
    kind = "lease-policy"


class QuotaExceeded(ProvisionError):
    """A project quota is used up (Neutron OverQuota 409, Nova 403/413): security groups, rules, IPs, VMs."""

    exit_code = 10
    kind = "quota"


class NoFloatingIp(ProvisionError):
    """The floating-IP pool has no free address (Neutron IpAddressGenerationFailure, 409)."""

    exit_code = 11
    kind = "no-floating-ip"


class ExtendUnsupported(ProvisionError):
    """Blazar cannot update a lease with a flavor:instance reservation (NotImplemented, 409)."""

    exit_code = 12
    kind = "extend-unsupported"


EXIT_NOT_READY = 8
EXIT_INTERRUPTED = 130

EXIT_CODES_HELP = """\
exit codes:
  0    success; for `up`/`down` also when nothing had to change (the output says so)
  1    unexpected failure (network error, timeout of an HTTP call, unexpected API answer); re-run is safe
  2    usage or configuration error (missing credential, wrong site/region, missing image, network,
       flavor or key pair, unreadable public key file)
  3    credential error: Keystone rejected the application credential (expired, deleted, other
       site), or a service's policy refused its roles (restricted credential)
  4    the cloud refused: no capacity for the flavor, or another refusal (the message has the reason)
  5    timed out waiting (lease still PENDING, server still BUILD, SSH not answering); what exists is kept
  6    ambiguous state (several leases/servers with the name, duplicate groups); that step is refused:
       pick one with --lease-id or delete the extras
  7    a resource is in ERROR (lease or server); the message carries Blazar's/Nova's reason
  8    `status` only: not everything is up (or the inventory is stale)
  9    lease policy: Blazar's enforcement refused the lease (longer than allowed, allocation used up
       or expired); the credential is fine
  10   project quota used up (security groups, rules, floating IPs, instances); what was made is kept:
       free some and re-run `up`
  11   no free floating IP in the `public` pool; the server is kept: re-run `up` later
  12   `extend` only: Blazar cannot extend a flavor lease; the server keeps running until the lease's
       original end (do not run `down` for this)
  130  interrupted (Ctrl-C); re-run `up` to complete or `down` to remove
"""

#: Exit code of every error class (docs/chameleon.md lists the same table; a test compares them).
EXIT_CODES: dict[str, int] = {
    cls.kind: cls.exit_code
    for cls in (
        ProvisionError,
        ConfigError,
        AuthError,
        CloudRefused,
        WaitTimeout,
        Ambiguous,
        ResourceFailed,
        LeasePolicyRefused,
        QuotaExceeded,
        NoFloatingIp,
        ExtendUnsupported,
    )
}


def is_quota(status: int, detail: str) -> bool:
    """Neutron's OverQuota is a 409 "Quota exceeded for resources: [...]"; Nova answers 403 or 413."""
    low = detail.lower()
    return status == 413 or (status in (403, 409) and ("quota exceeded" in low or "overquota" in low))


def is_pool_exhausted(status: int, detail: str) -> bool:
    """Neutron's IpAddressGenerationFailure: 409 "No more IP addresses available on network <id>."."""
    low = detail.lower()
    return status == 409 and ("no more ip addresses available" in low or "ipaddressgenerationfailure" in low)


def ks_message(exc: Exception) -> str:
    msg = getattr(exc, "message", None) or str(exc)
    return str(msg).strip().rstrip(".") or type(exc).__name__


def translate_error(exc: BaseException, doing: str) -> ProvisionError | None:
    """Map library exceptions to ProvisionError with a next step, or None when unknown."""
    from keystoneauth1 import exceptions as ks_exc
    from openstack import exceptions as sdk_exc

    if isinstance(exc, ProvisionError):
        return exc
    if isinstance(exc, ks_exc.Unauthorized):
        return AuthError(f"{doing}: authentication failed ({ks_message(exc)}); the credential may have expired")
    if isinstance(exc, ks_exc.EndpointNotFound):
        return ConfigError(f"{doing}: {exc}; check that the credential is for region {REGION}")
    if isinstance(exc, ks_exc.ConnectionError):
        what = "timed out talking to" if isinstance(exc, ks_exc.ConnectTimeout) else "cannot reach"
        return ProvisionError(f"{doing}: {what} KVM@TACC ({exc}); check the network and re-run")
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    if isinstance(exc, sdk_exc.HttpException | ks_exc.HttpError) and status is not None:
        detail = str(getattr(exc, "details", None) or getattr(exc, "message", None) or exc)
        if is_quota(status, detail):
            return QuotaExceeded(
                f"{doing}: project quota used up ({detail}). Free some (delete unused resources of the "
                "project) or ask the course staff for more quota, then re-run `up`."
            )
        if is_pool_exhausted(status, detail):
            return NoFloatingIp(f"{doing}: no free floating IP ({detail}); re-run `up` later")
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
