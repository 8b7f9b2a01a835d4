"""Credentials and region when the environment alone decides them, as botocore would.

botocore's credential chain asks the environment first
(``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``)
unless a profile is named, and takes the region from ``AWS_DEFAULT_REGION``
before any file.  When those settle everything, the answer is read here
without importing botocore (a fifth of a second of CPU, most of a small
copy's start); in every other case (a profile, expiring credentials, a
region or CA bundle that may come from the config file) the caller asks
botocore, which reads the files and the rest of the chain.
"""

from __future__ import annotations

from collections.abc import Mapping

from .sigv4 import Credentials


def from_environment(
    env: Mapping[str, str], *, profile: str | None, region: str | None, https: bool
) -> tuple[Credentials, str] | None:
    """The credentials and region botocore would resolve, when the
    environment alone decides them; else None."""
    if profile or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE"):
        return None  # a named profile: botocore checks it exists, and may skip the environment
    if env.get("AWS_CREDENTIAL_EXPIRATION"):
        return None  # credentials that expire are refreshed by botocore
    if https and not env.get("AWS_CA_BUNDLE"):
        return None  # the config file may name the CA bundle
    access, secret = env.get("AWS_ACCESS_KEY_ID"), env.get("AWS_SECRET_ACCESS_KEY")
    region = region or env.get("AWS_DEFAULT_REGION")
    if not access or not secret or not region:
        return None
    token = env.get("AWS_SECURITY_TOKEN") or env.get("AWS_SESSION_TOKEN") or None  # botocore's order
    return Credentials(access, secret, token), region
