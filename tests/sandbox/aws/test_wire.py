"""Telling the action of a raw request, whatever protocol boto3 chose (the layer's faults and the
recorder's action list both depend on it)."""

from __future__ import annotations

import pytest

from sandbox.aws import wire

SIGNED = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261129/eu-west-1/{service}/aws4_request, x"


def _signed(service: str, **headers: str) -> dict[str, str]:
    return {"authorization": SIGNED.format(service=service), **headers}


@pytest.mark.parametrize(
    ("method", "path", "query", "headers", "action"),
    [
        ("GET", "/clusterweb-data", "list-type=2", {}, "ListObjectsV2"),
        ("GET", "/clusterweb-data", "", {}, "ListObjects"),
        ("GET", "/clusterweb-data/notebooks/a.ipynb", "", {}, "GetObject"),
        ("PUT", "/clusterweb-data/notebooks/a.ipynb", "", {}, "PutObject"),
        (
            "PUT",
            "/clusterweb-data/b",
            "",
            {"x-amz-copy-source": "/clusterweb-data/a"},
            "CopyObject",
        ),
        ("PUT", "/clusterweb-data/b", "partNumber=1&uploadId=u1", {}, "UploadPart"),
        ("GET", "/clusterweb-data", "tagging", {}, "GetBucketTagging"),
        ("GET", "/", "", {}, "ListBuckets"),
    ],
)
def test_s3_actions_are_told_by_method_path_query_and_headers(method, path, query, headers, action):
    request = wire.parse(method, path, query, _signed("s3", **headers))

    assert (request.service, request.protocol, request.action) == ("s3", "rest-xml", action)


def test_efs_actions_are_told_by_their_uri_template():
    request = wire.parse(
        "GET", "/2015-02-01/file-systems", "FileSystemId=fs-1", _signed("elasticfilesystem")
    )

    assert (request.action, request.iam_service) == ("DescribeFileSystems", "elasticfilesystem")


def test_query_and_json_parameters_are_flattened_alike():
    ec2 = wire.parse(
        "POST",
        "/",
        "",
        _signed("ec2", **{"content-type": "application/x-www-form-urlencoded"}),
        b"Action=RequestSpotInstances&Version=2016-11-15&LaunchSpecification.InstanceType=g5.xlarge",
    )
    ce = wire.parse(
        "POST",
        "/",
        "",
        _signed("ce", **{"x-amz-target": "AWSInsightsIndexService.GetCostAndUsage"}),
        b'{"TimePeriod": {"Start": "2026-11-01"}, "Metrics": ["UnblendedCost"]}',
    )

    assert (ec2.protocol, ec2.action) == ("ec2", "RequestSpotInstances")
    assert ec2.matches({"InstanceType": "g5.xlarge"})
    assert not ec2.matches({"InstanceType": "g4dn.xlarge"})
    assert (ce.protocol, ce.action) == ("json", "GetCostAndUsage")
    assert ce.params == {"TimePeriod.Start": "2026-11-01", "Metrics.1": "UnblendedCost"}
    assert ce.matches({"Metrics": "UnblendedCost", "TimePeriod.Start": "2026-11-01"})


def test_an_unsigned_request_has_no_action_and_goes_to_moto_untouched():
    assert wire.parse("GET", "/latest/meta-data/", "", {}).action == ""
