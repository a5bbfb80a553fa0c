"""AWS's partitions and their region codes: which regions exist, and where their services answer.

Region codes come from text anyone can write (an alarm's ARN, an SNS message's
certificate URL): only a code in this table is taken for a region.
"""

from __future__ import annotations

# The region codes of the partitions whose consoles opsbot links to (botocore 1.44's list;
# tests/alarms/test_console_link.py checks that it still covers botocore's).
REGIONS = {
    "aws": (
        "af-south-1",
        "ap-east-1",
        "ap-east-2",
        "ap-northeast-1",
        "ap-northeast-2",
        "ap-northeast-3",
        "ap-south-1",
        "ap-south-2",
        "ap-southeast-1",
        "ap-southeast-2",
        "ap-southeast-3",
        "ap-southeast-4",
        "ap-southeast-5",
        "ap-southeast-6",
        "ap-southeast-7",
        "ca-central-1",
        "ca-west-1",
        "eu-central-1",
        "eu-central-2",
        "eu-north-1",
        "eu-south-1",
        "eu-south-2",
        "eu-west-1",
        "eu-west-2",
        "eu-west-3",
        "il-central-1",
        "me-central-1",
        "me-south-1",
        "mx-central-1",
        "sa-east-1",
        "us-east-1",
        "us-east-2",
        "us-west-1",
        "us-west-2",
    ),
    "aws-cn": ("cn-north-1", "cn-northwest-1"),
    "aws-us-gov": ("us-gov-east-1", "us-gov-west-1"),
}
PARTITION_OF = {region: partition for partition, codes in REGIONS.items() for region in codes}
# The isolated partitions' regions (the same botocore's; tests/sns/test_cert_regions.py
# checks it): regions all the same, with no console opsbot links to.
ISOLATED_REGIONS = {
    "aws-iso": ("us-iso-east-1", "us-iso-west-1"),
    "aws-iso-b": ("us-isob-east-1", "us-isob-west-1"),
    "aws-iso-e": ("eu-isoe-west-1",),
    "aws-iso-f": ("us-isof-east-1", "us-isof-south-1"),
}
ANY_PARTITION_OF = PARTITION_OF | {
    region: partition for partition, codes in ISOLATED_REGIONS.items() for region in codes
}
# The DNS domain of the partitions' service endpoints (`sns.<region>.<domain>`) that end in
# amazonaws.com or amazonaws.com.cn.
DOMAINS = {"aws": "amazonaws.com", "aws-cn": "amazonaws.com.cn", "aws-us-gov": "amazonaws.com"}
