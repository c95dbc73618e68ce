"""The AWS layer answers the Price List Query API, which moto lacks, in AWS's format: GetProducts
from its own table, PriceList entries as JSON strings, FormatVersion aws_v1, NextToken pages,
TERM_MATCH filters, and only at the API's own endpoints (sandbox/aws/pricing.py)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError

LINUX = [
    {"Type": "TERM_MATCH", "Field": "operatingSystem", "Value": "Linux"},
    {"Type": "TERM_MATCH", "Field": "tenancy", "Value": "Shared"},
    {"Type": "TERM_MATCH", "Field": "capacitystatus", "Value": "Used"},
]


def pricing(region: str = "us-east-1"):
    return boto3.client("pricing", region_name=region)


def type_filter(name: str, region: str = "eu-west-1") -> list[dict]:
    return [
        {"Type": "TERM_MATCH", "Field": "instanceType", "Value": name},
        {"Type": "TERM_MATCH", "Field": "regionCode", "Value": region},
    ]


def test_get_products_answers_in_aws_format_from_the_layer_s_table(aws):
    aws.price_list_set("eu-west-1", "g9.huge", "3.3")

    answer = pricing().get_products(
        ServiceCode="AmazonEC2", FormatVersion="aws_v1", Filters=type_filter("g9.huge") + LINUX
    )

    assert answer["FormatVersion"] == "aws_v1" and "NextToken" not in answer
    [entry] = answer["PriceList"]
    assert isinstance(entry, str)
    product = json.loads(entry)
    assert product["product"]["attributes"]["instanceType"] == "g9.huge"
    [term] = product["terms"]["OnDemand"].values()
    [dimension] = term["priceDimensions"].values()
    assert dimension["unit"] == "Hrs" and dimension["pricePerUnit"]["USD"] == "3.3000000000"


def test_without_the_linux_filters_the_other_variants_come_too(aws):
    aws.price_list_set("eu-west-1", "g9.huge", "3.3")

    answer = pricing().get_products(ServiceCode="AmazonEC2", Filters=type_filter("g9.huge"))

    systems = {
        json.loads(e)["product"]["attributes"]["operatingSystem"] for e in answer["PriceList"]
    }
    assert systems == {"Linux", "Windows"} and len(answer["PriceList"]) == 4


def test_pages_follow_next_token_and_a_forged_token_is_refused(aws):
    aws.price_list_set("eu-west-1", "g9.huge", "3.3")
    first = pricing().get_products(
        ServiceCode="AmazonEC2", Filters=type_filter("g9.huge"), MaxResults=3
    )
    rest = pricing().get_products(
        ServiceCode="AmazonEC2",
        Filters=type_filter("g9.huge"),
        MaxResults=3,
        NextToken=first["NextToken"],
    )

    assert len(first["PriceList"]) == 3 and len(rest["PriceList"]) == 1
    assert "NextToken" not in rest
    with pytest.raises(ClientError) as refused:
        pricing().get_products(ServiceCode="AmazonEC2", NextToken="not-a-token")
    assert refused.value.response["Error"]["Code"] == "InvalidNextTokenException"


def test_a_type_aws_does_not_list_gives_an_empty_price_list(aws):
    answer = pricing().get_products(ServiceCode="AmazonEC2", Filters=type_filter("zz9.huge"))

    assert answer["PriceList"] == []


def test_the_api_has_no_endpoint_in_the_cluster_s_region(aws):
    with pytest.raises(ClientError) as refused:
        pricing("eu-west-1").get_products(ServiceCode="AmazonEC2")

    assert "no endpoint in eu-west-1" in str(refused.value)
