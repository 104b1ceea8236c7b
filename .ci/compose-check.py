"""Validates docker-compose.yml against the Compose Specification (no Docker engine here).

compose-spec wraps the Rust compose_spec crate: unknown keys, wrong types and bad
health checks are refused. Also checks what this project relies on: the health check is
the readiness probe, and the proxy is the one trusted proxy.
"""
import sys

import compose_spec

text = open(sys.argv[1]).read()
spec = compose_spec.PyCompose.from_yaml(text).to_spec()
data = compose_spec.PyCompose.from_yaml(text).to_dict()
idp = data["services"]["idp"]
assert idp["healthcheck"]["test"] == ["CMD", "bypass-idp", "probe", "/readyz"], idp["healthcheck"]
environment = idp["environment"]
proxy_ip = data["services"]["proxy"]["networks"]["default"]["ipv4_address"]
assert environment["BYPASS_IDP_TRUSTED_PROXIES"] == proxy_ip, (environment, proxy_ip)
print(f"docker-compose.yml: valid ({', '.join(spec.services)}); idp trusts the proxy at {proxy_ip}")
