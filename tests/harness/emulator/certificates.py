"""Issued ACM certificates for the tests' HTTPS listeners (`--certificates FILE --certificate-accounts ...`).

An ELBv2 HTTPS listener needs a certificate that exists, issued, in the listener's own account and
region, as in real AWS (moto refuses others with CertificateNotFound). A real account gets one by
requesting it and validating the domain by DNS; the emulator cannot validate, so the fixture is
put straight into each account's ACM backend as what validation yields: Type AMAZON_ISSUED,
Status ISSUED, DNS validation SUCCESS, for `*.stackgate.example` and `stackgate.example`. One key
and certificate body serve every account (each gets its own ARN), which keeps start-up quick.
The map `{"<account>/<region>": "<certificate ARN>"}` is written to --certificates; lib.sh exports
its path as STACKGATE_TEST_CERTIFICATES.
"""

from __future__ import annotations

import argparse
import json
import re
from typing import Any

DOMAIN = "*.stackgate.example"
SANS = ["stackgate.example"]


def parse_accounts(value: str) -> list[tuple[str, str]]:
    """`ACCOUNT:REGION,ACCOUNT:REGION,...` (duplicates dropped, order kept)."""
    pairs: list[tuple[str, str]] = []
    for item in filter(None, (v.strip() for v in value.split(","))):
        match = re.fullmatch(r"(\d{12}):([a-z]{2}(?:-[a-z]+)+-\d)", item)
        if match is None:
            raise argparse.ArgumentTypeError(f"not ACCOUNT:REGION (12 digits, a region name): {item!r}")
        if (match[1], match[2]) not in pairs:
            pairs.append((match[1], match[2]))
    return pairs


def issue(pairs: list[tuple[str, str]]) -> dict[str, str]:
    """Put an issued certificate into each account/region's ACM backend; `{"acct/region": arn}`."""
    from moto.acm.models import CertBundle, acm_backends

    if not pairs:
        return {}
    body = CertBundle.generate_cert(DOMAIN, account_id=pairs[0][0], region=pairs[0][1], sans=SANS)
    issued = {}
    for account, region in pairs:
        bundle = CertBundle(account_id=account, certificate=body.cert, private_key=body.key, region=region,
                            cert_type="AMAZON_ISSUED", cert_status="ISSUED")
        backend = acm_backends[account][region]
        backend._certificates[bundle.arn] = bundle
        described = backend.describe_certificate(bundle.arn).describe()["Certificate"]
        if described["Status"] != "ISSUED" or described["Type"] != "AMAZON_ISSUED":
            raise RuntimeError(f"the certificate fixture in {account}/{region} reads {described}")
        issued[f"{account}/{region}"] = bundle.arn
    return issued


def create_certificates(pairs: list[tuple[str, str]]) -> str:
    """The --certificates file's text for `pairs`."""
    return json.dumps(issue(pairs), indent=2, sort_keys=True) + "\n"


def prove(ctx: Any) -> None:
    """The fixture holds: an issued certificate that an HTTPS listener in its account accepts."""
    from .proof import delete_ok, deploy_ok, require

    account, region = "999999999999", "us-east-1"
    arn = issue([(account, region)])[f"{account}/{region}"]
    described = ctx.client("acm", account, region).describe_certificate(CertificateArn=arn)["Certificate"]
    require(described["Status"] == "ISSUED" and described["Type"] == "AMAZON_ISSUED" and described["DomainName"] == DOMAIN,
            f"the certificate fixture reads {described}")
    ref = lambda r: {"Ref": r}  # noqa: E731
    template = {"Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.31.0.0/16"}},
        "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.31.1.0/24", "AvailabilityZone": "us-east-1a"}},
        "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.31.2.0/24", "AvailabilityZone": "us-east-1b"}},
        "Alb": {"Type": "AWS::ElasticLoadBalancingV2::LoadBalancer", "Properties": {"Subnets": [ref("SubnetA"), ref("SubnetB")]}},
        "Tg": {"Type": "AWS::ElasticLoadBalancingV2::TargetGroup", "Properties": {"Port": 80, "Protocol": "HTTP", "VpcId": ref("Vpc")}},
        "Https": {"Type": "AWS::ElasticLoadBalancingV2::Listener", "Properties": {"LoadBalancerArn": ref("Alb"), "Port": 443,
                  "Protocol": "HTTPS", "Certificates": [{"CertificateArn": arn}], "DefaultActions": [{"Type": "forward", "TargetGroupArn": ref("Tg")}]}},
    }, "Outputs": {"Listener": {"Value": ref("Https")}}}
    cfn = ctx.client("cloudformation", account, region)
    stack, out = deploy_ok(cfn, template, "an HTTPS listener with the certificate fixture")
    listener = ctx.client("elbv2", account, region).describe_listeners(ListenerArns=[out["Listener"]])["Listeners"][0]
    require(listener["Certificates"][0]["CertificateArn"] == arn, f"the listener's certificate is {listener['Certificates']}")
    delete_ok(cfn, stack, "the HTTPS listener stack")
