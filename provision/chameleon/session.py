"""The authenticated keystoneauth session, openstacksdk connection and Blazar REST adapter."""

from __future__ import annotations

from typing import Any

from .config import Credential
from .errors import (
    AuthError,
    ConfigError,
    ks_message,
)
from .facts import (
    AUTH_URL,
    DASHBOARD,
    HTTP_TIMEOUT,
    REGION,
)


# --- The cloud ---------------------------------------------------------------------------------------------
class Cloud:
    """Authenticated clients for KVM@TACC: ``conn`` (openstacksdk) and ``blazar`` (keystoneauth Adapter)."""

    def __init__(self, cred: Credential, timeout: float = HTTP_TIMEOUT) -> None:
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
        # One timeout for every HTTP call: the token request, openstacksdk's proxies and the Blazar adapter
        # all go through this session (a test checks each request the fake sees carries it).
        self.timeout = timeout
        self.session = ks_session.Session(
            auth=v3.ApplicationCredential(**kwargs), user_agent="gourmetgram-lease", timeout=timeout
        )
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
                f"({ks_message(exc)}): it is expired, deleted or belongs to another site. Create a new "
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
            raise BlazarError(resp.status_code, blazar_message(resp))
        if resp.status_code == 204 or not resp.content:
            return None
        return resp.json()


class BlazarError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def blazar_message(resp: Any) -> str:
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
