"""One OpenStack cloud opened with openstacksdk (the official SDK: clouds.yaml
found where the `openstack` CLI looks, OS_CLOUD honoured), and the one place
its exceptions become labctl's one-line BackendError."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

from labctl.errors import BackendError

API_SECONDS = 60  # one API call; a cloud that does not answer is a failure, not a hang


class CloudFailed(BackendError):
    """An OpenStack call failed: the cloud's own words, on one line."""


def _said(exc: BaseException) -> str:
    details = getattr(exc, "details", None) or ""
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    text = f"{message}: {details}" if details and details not in message else message
    return " ".join(text.split())[:400]


def _root(exc: BaseException, kinds: tuple[type, ...]) -> BaseException | None:
    """The first exception of `kinds` in exc's chain (the SDK wraps keystoneauth's)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, kinds):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _briefly(exc: BaseException) -> str:
    """keystoneauth's connection errors quote urllib3's whole story: its last words."""
    text = _said(exc)
    reason = next((k for k in ("Connection refused", "timed out", "Name or service not known",
                               "No route to host") if k in text), None)
    if reason is None:
        return text
    url = re.search(r"https?://[^/\s:'\"]+(:\d+)?", text)
    return reason.lower() + (f" at {url.group(0)}" if url else "")


def _unreachable(exc: BaseException) -> bool:
    return "Unable to establish connection" in str(exc) or "Connection refused" in str(exc)


@contextlib.contextmanager
def cloud_errors(what: str, cloud: str) -> Iterator[None]:
    """SDK and keystoneauth exceptions leave as CloudFailed: `what` and the
    cloud's answer."""
    from keystoneauth1 import exceptions as ksa
    from openstack import exceptions as sdk

    try:
        try:
            yield
        except sdk.SDKException as exc:  # the SDK wraps keystoneauth's errors: judge those
            cause = _root(exc, (ksa.ConnectFailure, ksa.ConnectTimeout, ksa.DiscoveryFailure,
                                ksa.Unauthorized))
            if cause is None:
                raise
            raise cause from None
    except (ksa.Unauthorized, sdk.ForbiddenException) as exc:
        raise CloudFailed(f"{what}: cloud '{cloud}' refused the credentials ({_said(exc)})",
                          "check the entry in clouds.yaml (OS_CLIENT_CONFIG_FILE, OS_CLOUD)") \
            from None
    except (ksa.ConnectFailure, ksa.ConnectTimeout, ksa.DiscoveryFailure) as exc:
        raise CloudFailed(f"{what}: cloud '{cloud}' does not answer ({_briefly(exc)})",
                          "is its identity service (keystone) up and its auth_url right?") \
            from None
    except sdk.ConfigException as exc:
        raise CloudFailed(f"{what}: {_said(exc)}",
                          "name an entry of clouds.yaml: openstack:CLOUD "
                          "(it is looked for where the openstack CLI looks)") from None
    except (sdk.SDKException, ksa.ClientException) as exc:
        if _unreachable(exc):
            raise CloudFailed(f"{what}: cloud '{cloud}' does not answer ({_briefly(exc)})",
                              "is its identity service (keystone) up and its auth_url right?") \
                from None
        raise CloudFailed(f"{what}: {_said(exc)}") from None


def connect(cloud: str):
    """An authenticated connection (a token is asked at once: wrong
    credentials or a dead keystone fail here, in one line)."""
    import openstack

    logging.getLogger("openstack").setLevel(logging.CRITICAL)  # its warnings are ours to say
    with cloud_errors(f"cannot open cloud '{cloud}'", cloud):
        conn = openstack.connect(cloud=cloud, api_timeout=API_SECONDS)
        conn.authorize()
        return conn
