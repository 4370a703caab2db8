"""What the process keeps between clients (reconciler/aws.py's model loader, reconciler/tls.py's
TLS context) equals what a client built from scratch would read."""

from __future__ import annotations

import ssl

import boto3
import httpx
import pytest

from reconciler import aws, tls


@pytest.mark.parametrize("service", ["s3", "cloudfront"])
def test_a_client_on_the_shared_loader_is_the_client_a_fresh_session_makes(service: str) -> None:
    for _ in range(3):  # the second and later read the models the first one parsed
        shared = aws.session().client(service, region_name="us-east-1")
    fresh = boto3.session.Session().client(service, region_name="us-east-1")
    assert shared.meta.service_model.api_version == fresh.meta.service_model.api_version
    assert (shared.meta.service_model.operation_names
            == fresh.meta.service_model.operation_names)
    assert shared.meta.endpoint_url == fresh.meta.endpoint_url
    assert shared.meta.region_name == fresh.meta.region_name


def test_each_session_reads_the_environment_afresh(tmp_path, monkeypatch) -> None:
    """Only the models are shared: a profile, region or endpoint set later is seen."""
    config = tmp_path / "aws-config"
    config.write_text("[profile seoul]\nregion = ap-northeast-2\n")
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    assert aws.session().region_name is None
    monkeypatch.setenv("AWS_PROFILE", "seoul")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    after = aws.session()
    assert after.region_name == "ap-northeast-2"
    assert after.client("s3").meta.endpoint_url == "http://127.0.0.1:9"


def test_the_shared_loader_does_not_grow_with_each_session() -> None:
    aws.session()
    paths = list(aws.session()._loader.search_paths)
    for _ in range(5):
        aws.session()
    assert aws.session()._loader.search_paths == paths
    assert len(set(paths)) == len(paths)


def test_the_shared_tls_context_verifies_as_a_fresh_one_does() -> None:
    shared, fresh = tls.context(), httpx.create_ssl_context()
    assert tls.context() is shared
    assert shared.verify_mode == fresh.verify_mode == ssl.CERT_REQUIRED
    assert shared.check_hostname and fresh.check_hostname
    assert shared.get_ca_certs() == fresh.get_ca_certs() != []
    assert shared.minimum_version == fresh.minimum_version
