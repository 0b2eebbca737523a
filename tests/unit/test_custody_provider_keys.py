"""A wrapped key opens only with the key that wrapped it, not with another key of the same provider."""

from __future__ import annotations

import pytest

from infra.kms_servers import AWS_TEST_CREDENTIALS
from signer.custody import InvalidKey, ProviderUnavailable
from signer.custody.aws_kms import AwsKmsRoot
from signer.custody.gcp_kms import GcpKmsRoot
from tests.custody_support import GCP_KEY, GCP_KEY_2


def test_a_different_key_of_the_same_provider_cannot_unwrap(moto, cloud_kms):
    a = AwsKmsRoot(moto.create_key(), endpoint_url=moto.url, **AWS_TEST_CREDENTIALS)
    b = AwsKmsRoot(moto.create_key(), endpoint_url=moto.url, **AWS_TEST_CREDENTIALS)
    # AWS answers IncorrectKeyException (-> InvalidKey); moto answers AccessDeniedException,
    # which the root reports as an outage (it is also what an IAM denial looks like). Closed either way.
    with pytest.raises((InvalidKey, ProviderUnavailable)):
        b.unwrap(a.wrap(b"k" * 32, b"aad"), b"aad")
    g1 = GcpKmsRoot(GCP_KEY, api_endpoint=cloud_kms.endpoint, insecure=True)
    g2 = GcpKmsRoot(GCP_KEY_2, api_endpoint=cloud_kms.endpoint, insecure=True)
    with pytest.raises(InvalidKey):
        g2.unwrap(g1.wrap(b"k" * 32, b"aad"), b"aad")
