"""One OpenStack cloud opened with openstacksdk (the official SDK: clouds.yaml
found where the `openstack` CLI looks, OS_CLOUD honoured), and the one place
its exceptions become labctl's one-line BackendError."""

from __future__ import annotations

import contextlib
import logging
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


@contextlib.contextmanager
def cloud_errors(what: str, cloud: str) -> Iterator[None]:
    """SDK and keystoneauth exceptions leave as CloudFailed: `what` and the
    cloud's answer."""
    from keystoneauth1 import exceptions as ksa
    from openstack import exceptions as sdk

    try:
        yield
    except (ksa.Unauthorized, sdk.ForbiddenException) as exc:
        raise CloudFailed(f"{what}: cloud '{cloud}' refused the credentials ({_said(exc)})",
                          "check the entry in clouds.yaml (OS_CLIENT_CONFIG_FILE, OS_CLOUD)") \
            from None
    except (ksa.ConnectFailure, ksa.ConnectTimeout, ksa.DiscoveryFailure) as exc:
        raise CloudFailed(f"{what}: cloud '{cloud}' does not answer ({_said(exc)})",
                          "is its identity service (keystone) up and its auth_url right?") \
            from None
    except sdk.ConfigException as exc:
        raise CloudFailed(f"{what}: {_said(exc)}",
                          "name an entry of clouds.yaml: openstack:CLOUD "
                          "(it is looked for where the openstack CLI looks)") from None
    except (sdk.SDKException, ksa.ClientException) as exc:
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
