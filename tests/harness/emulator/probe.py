"""Probe how the emulator handles each resource type the blueprints use (README.md's table).

    PYTHONPATH=tests/harness .venv-moto/bin/python -m emulator.probe > table.md

Runs twice, each time in a fresh process with its own in-process server: `baseline` (moto 5.2.5
with only the patches that make change sets observable: AssumeRole, outputs after
ExecuteChangeSet, rollback with a reason, KMS keys, route tables) and `patched` (every patch). For
each case of `probe_cases`: a JSON stack created by CreateChangeSet(CREATE) + ExecuteChangeSet in
account 222222222222 / eu-west-1 (through a real AssumeRole), its Subject's physical id from
DescribeStackResources, for some types a look through the service's API at the properties the
blueprints set (`probe_checks`), then DeleteStack; then the Subject's Ref and each GetAtt the
blueprints read, as a stack Output (one stack each, so one failure does not hide another). The
account is made an organization's management account first, as the organization blueprint needs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from typing import Any

ACCOUNT, REGION = "222222222222", "eu-west-1"
BASELINE = {"serialize_requests", "assume_role_enforces_roles", "resource_failure_attribution", "execute_change_set",
            "route_table_delete", "delete_stack_failure", "kms_key_policy", "kms_key_tags", "template_format_errors"}


def start(mode: str) -> tuple[Any, str]:
    import logging
    import warnings

    from moto.server import ThreadedMotoServer

    from .certificates import issue
    from .registry import PATCHES
    from .roles import RoleSpec, create_role

    warnings.filterwarnings("ignore")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    for patch in PATCHES:
        if mode == "patched" or patch.NAME in BASELINE:
            patch.apply()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    create_role(RoleSpec(f"arn:aws:iam::{ACCOUNT}:role/stackgate-deploy"))
    return server, issue([(ACCOUNT, REGION)])[f"{ACCOUNT}/{REGION}"]


def describe_error(call: str, exc: Exception) -> str:
    from botocore.exceptions import ClientError

    if isinstance(exc, ClientError):
        err = exc.response["Error"]
        return f"{call} answers HTTP {exc.response['ResponseMetadata']['HTTPStatusCode']} {err.get('Code')}: {err.get('Message')}"
    return f"{call} answers HTTP 500 (an HTML error page)" if "500 Internal Server Error" in str(exc) else f"{call}: {exc!r}"


def attempt(cfn: Any, template: dict[str, Any], params: dict[str, str]) -> tuple[str, str, dict[str, Any]]:
    """Deploy; (stack name, outcome, details). outcome: COMPLETE, or a description of the failure."""
    import uuid

    stack = f"probe-{uuid.uuid4().hex[:10]}"
    body = dict(template)
    given = {name: value for name, value in params.items() if f'"{name}"' in json.dumps(template)}
    body["Parameters"] = {name: {"Type": "String"} for name in given}
    try:
        arn = cfn.create_change_set(StackName=stack, ChangeSetName=f"cs-{uuid.uuid4().hex}", TemplateBody=json.dumps(body),
                                    ChangeSetType="CREATE", Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
                                    Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in given.items()])["Id"]
    except Exception as exc:
        return stack, describe_error("CreateChangeSet", exc), {}
    try:
        cfn.execute_change_set(ChangeSetName=arn)
    except Exception as exc:
        return stack, describe_error("ExecuteChangeSet", exc), {}
    try:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as exc:
        return stack, describe_error("DescribeStacks", exc), {}
    if described["StackStatus"] != "CREATE_COMPLETE":
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
        failed = next((e for e in events if e["ResourceStatus"].endswith("_FAILED")), {})
        return stack, f"{described['StackStatus']}: {failed.get('LogicalResourceId')}: {failed.get('ResourceStatusReason')}", {}
    return stack, "COMPLETE", described


def delete(cfn: Any, stack: str) -> str:
    try:
        stack_id = cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackId"]
        cfn.delete_stack(StackName=stack)
        found = cfn.describe_stacks(StackName=stack_id)["Stacks"]
    except Exception as exc:
        return describe_error("DeleteStack", exc)
    status = found[0]["StackStatus"] if found else "gone"
    if status == "DELETE_COMPLETE":
        return "ok"
    reason = next((e.get("ResourceStatusReason") for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
                   if e["ResourceStatus"].endswith("_FAILED")), "")
    return f"{status}: {reason}"


def empty_buckets(client: Any, cfn: Any, stack: str) -> None:
    s3 = client("s3")
    existing = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    for resource in cfn.describe_stack_resources(StackName=stack)["StackResources"]:
        bucket = resource.get("PhysicalResourceId")
        if resource.get("ResourceType") == "AWS::S3::Bucket" and bucket in existing:
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                s3.delete_object(Bucket=bucket, Key=item["Key"])


def probe_case(client: Any, case: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
    from .probe_checks import CHECKS

    cfn = client("cloudformation")
    template = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": case["resources"]}
    stack, outcome, _ = attempt(cfn, template, params)
    result: dict[str, Any] = {"label": case["label"], "type": case["type"], "blueprint": case["blueprint"], "create": outcome}
    if outcome != "COMPLETE":
        delete(cfn, stack)
        return result
    listed = cfn.describe_stack_resources(StackName=stack)["StackResources"]
    subject = next((r for r in listed if r.get("LogicalResourceId") == "Subject"), None)
    if subject is None:
        result["physical_id"] = f"(not listed: {sum('LogicalResourceId' not in r for r in listed)} entries without a LogicalResourceId)"
    else:
        result["physical_id"] = subject.get("PhysicalResourceId") or ""
    check = CHECKS.get(case["label"])
    if check is not None and result["physical_id"] and not result["physical_id"].startswith("("):
        try:
            result["ignored"] = check(client, result["physical_id"])
        except Exception as exc:
            result["ignored"] = [f"(check failed: {exc!r})"]
    result["delete"] = delete(cfn, stack)
    if "BucketNotEmpty" in result["delete"]:  # the checks' own requests left access logs in a target bucket
        empty_buckets(client, cfn, stack)
        result["delete"] = delete(cfn, stack)
    result["outputs"] = {}
    for name, value in [("Ref", {"Ref": "Subject"})] + [(a, {"Fn::GetAtt": ["Subject", a]}) for a in case["attrs"]]:
        stack, outcome, described = attempt(cfn, {**template, "Outputs": {"Probe": {"Value": value}}}, params)
        if outcome == "COMPLETE":
            got = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}
            outcome = f"= {got['Probe']}" if got.get("Probe") else "no output (value empty)"
        result["outputs"][name] = outcome
        delete(cfn, stack)
    return result


def run(mode: str) -> list[dict[str, Any]]:
    import boto3
    from botocore.config import Config

    from .probe_cases import cases

    server, cert = start(mode)
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="probe", aws_secret_access_key="probe")
    creds = sts.assume_role(RoleArn=f"arn:aws:iam::{ACCOUNT}:role/stackgate-deploy", RoleSessionName="probe")["Credentials"]

    def client(service: str) -> Any:
        return boto3.client(service, endpoint_url=endpoint, region_name=REGION, aws_access_key_id=creds["AccessKeyId"],
                            aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
                            config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    # The organization blueprint runs in an organization's management account: make this one.
    organizations = client("organizations")
    organizations.create_organization(FeatureSet="ALL")
    params = {"CertArn": cert, "RootId": organizations.list_roots()["Roots"][0]["Id"],
              "OtherAccountCertArn": cert.replace(f":{ACCOUNT}:", ":333333333333:")}
    results = [probe_case(client, case, params) for case in cases()]
    server.stop()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(prog="emulator.probe", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=["baseline", "patched"], help="probe one mode and print JSON (internal)")
    parser.add_argument("--json", metavar="FILE", help="also write both modes' raw results here")
    parser.add_argument("--table", metavar="FILE", help="print the table of results an earlier --json wrote, without probing")
    args = parser.parse_args()
    if args.table:
        from .probe_table import table

        with open(args.table) as fh:
            saved = json.load(fh)
        print(table(saved["baseline"], saved["patched"]))
        return 0
    if args.mode:
        json.dump(run(args.mode), sys.stdout, indent=1)
        return 0
    started = time.monotonic()
    both = {mode: json.loads(subprocess.run([sys.executable, "-m", "emulator.probe", "--mode", mode], check=True,
                                            capture_output=True, text=True).stdout) for mode in ("baseline", "patched")}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(both, fh, indent=1)
    from .probe_table import table

    print(table(both["baseline"], both["patched"]))
    print(f"\n(probed in {time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
