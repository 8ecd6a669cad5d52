"""Errors with a message for the user and a documented exit code; library exceptions mapped to them."""

from __future__ import annotations

from .facts import (
    REGION,
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
