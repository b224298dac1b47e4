"""AWS::S3::Bucket applies all the properties the blueprints set; AWS::S3::BucketPolicy is real.

Real CloudFormation creates a bucket with every property in place: VersioningConfiguration,
ObjectLockEnabled + ObjectLockConfiguration (default retention), PublicAccessBlockConfiguration,
LifecycleConfiguration, LoggingConfiguration, OwnershipControls, AccessControl; and a BucketPolicy
(Ref: the bucket name) puts the policy on the bucket and removes it on delete. Stock moto 5.2.5
applies only BucketEncryption and Tags (the rest is silently dropped: a log-archive bucket gets no
Object Lock, so nothing is retained) and has no BucketPolicy model (the stack completes, the policy
is never set, the resource is listed without a logical id); and it "deletes" a bucket that still
holds objects by leaving it in place while the stack reads DELETE_COMPLETE (S3 refuses with
BucketNotEmpty, so the stack is DELETE_FAILED).

This applies those properties through moto's own S3 backend once stock moto has made the bucket
(and again on an in-place update), translating CloudFormation's lifecycle spelling into the API's,
defines BucketPolicy on put_bucket_policy / delete_bucket_policy, and fails the delete of a
non-empty bucket with BucketNotEmpty. moto's own checks then hold as in S3: Object Lock needs
versioning, logging needs a target bucket that grants log delivery. (moto writes access-log
objects at once, where S3 takes minutes to hours: a logging target bucket fills sooner.)
"""

from __future__ import annotations

import json
from typing import Any

from ..cfn_types import Created, Request, TypeSpec, define_type
from ..proof import ProofContext, delete_ok, deploy_ok, describe, failure_reason, require

NAME = "cfn_s3"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::S3::Bucket': "applies Versioning, ObjectLock, PublicAccessBlock, Lifecycle, Logging, OwnershipControls, AccessControl; a non-empty bucket's delete fails",
    'AWS::S3::BucketPolicy': "created in moto's S3 backend (put/delete bucket policy)",
}


def _backend(account_id: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account_id]["aws"]


def lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """One CloudFormation lifecycle rule in the S3 API's shape."""
    api: dict[str, Any] = {"ID": rule.get("Id"), "Status": rule.get("Status", "Enabled"), "Filter": {"Prefix": rule.get("Prefix", "")}}
    expiration = {k: rule[c] for k, c in (("Days", "ExpirationInDays"), ("Date", "ExpirationDate"),
                                          ("ExpiredObjectDeleteMarker", "ExpiredObjectDeleteMarker")) if c in rule}
    if expiration:
        api["Expiration"] = expiration
    transitions = list(rule.get("Transitions") or []) + ([rule["Transition"]] if rule.get("Transition") else [])
    if transitions:
        api["Transition"] = [{"Days": t.get("TransitionInDays"), "Date": t.get("TransitionDate"), "StorageClass": t["StorageClass"]}
                             for t in transitions]
    noncurrent = (rule.get("NoncurrentVersionExpiration") or {}).get("NoncurrentDays", rule.get("NoncurrentVersionExpirationInDays"))
    if noncurrent is not None:
        api["NoncurrentVersionExpiration"] = {"NoncurrentDays": noncurrent}
    nv_transitions = list(rule.get("NoncurrentVersionTransitions") or [])
    if nv_transitions:
        api["NoncurrentVersionTransition"] = [{"NoncurrentDays": t.get("TransitionInDays"), "StorageClass": t["StorageClass"]}
                                              for t in nv_transitions]
    if rule.get("AbortIncompleteMultipartUpload"):
        api["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return api


def apply_properties(account_id: str, name: str, props: dict[str, Any]) -> None:
    from moto.s3.models import get_canned_acl

    s3 = _backend(account_id)
    if props.get("AccessControl"):
        canned = "".join("-" + c.lower() if c.isupper() else c for c in props["AccessControl"]).lstrip("-")
        s3.put_bucket_acl(name, get_canned_acl(canned))
    if props.get("OwnershipControls"):
        s3.put_bucket_ownership_controls(name, ownership=props["OwnershipControls"]["Rules"][0]["ObjectOwnership"])
    if str(props.get("ObjectLockEnabled")).lower() == "true":
        s3.get_bucket(name).object_lock_enabled = True  # only possible at creation, and it turns versioning on
        s3.put_bucket_versioning(name, "Enabled")
    if props.get("VersioningConfiguration"):
        s3.put_bucket_versioning(name, props["VersioningConfiguration"]["Status"])
    lock = props.get("ObjectLockConfiguration")
    if lock:
        retention = (lock.get("Rule") or {}).get("DefaultRetention") or {}
        s3.put_object_lock_configuration(name, lock_enabled=lock.get("ObjectLockEnabled") == "Enabled",
                                         mode=retention.get("Mode"), days=retention.get("Days"), years=retention.get("Years"))
    if props.get("PublicAccessBlockConfiguration"):
        s3.put_public_access_block(name, props["PublicAccessBlockConfiguration"])
    if props.get("LifecycleConfiguration"):
        s3.put_bucket_lifecycle(name, [lifecycle_rule(r) for r in props["LifecycleConfiguration"].get("Rules", [])])
    logging = props.get("LoggingConfiguration")
    if logging:
        config = {"TargetBucket": logging.get("DestinationBucketName") or name}
        if logging.get("LogFilePrefix"):
            config["TargetPrefix"] = logging["LogFilePrefix"]
        s3.put_bucket_logging(name, config)


def create_policy(req: Request) -> Created:
    bucket = req.props["Bucket"]
    document = req.props["PolicyDocument"]
    _backend(req.account_id).put_bucket_policy(bucket, (document if isinstance(document, str) else json.dumps(document)).encode())
    return Created(bucket)


def delete_policy(resource: Any) -> None:
    try:
        _backend(resource.account_id).delete_bucket_policy(resource.physical_resource_id)
    except Exception:  # the bucket went first: its policy with it
        pass


def apply() -> None:
    from moto.s3.exceptions import BucketNotEmpty
    from moto.s3.models import FakeBucket

    original_create = FakeBucket.create_from_cloudformation_json.__func__
    original_update = FakeBucket.update_from_cloudformation_json.__func__

    def create(cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        bucket = original_create(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs)
        apply_properties(account_id, bucket.name, cloudformation_json.get("Properties") or {})
        return bucket

    def update(cls: type, original_resource: Any, new_resource_name: str, cloudformation_json: Any, account_id: str,
               region_name: str) -> Any:
        bucket = original_update(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name)
        if bucket is original_resource:  # replaced buckets went through create
            apply_properties(account_id, bucket.name, cloudformation_json.get("Properties") or {})
        return bucket

    def delete(cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str) -> None:
        s3 = _backend(account_id)
        if s3.get_bucket(resource_name).keys:  # S3 refuses; stock moto's delete_bucket just returns None
            raise BucketNotEmpty(resource_name)
        s3.delete_bucket(resource_name)

    FakeBucket.create_from_cloudformation_json = classmethod(create)
    FakeBucket.update_from_cloudformation_json = classmethod(update)
    FakeBucket.delete_from_cloudformation_json = classmethod(delete)
    define_type(TypeSpec("AWS::S3::BucketPolicy", create_policy, delete_policy))


def prove(ctx: ProofContext) -> None:
    cfn, s3 = ctx.client("cloudformation", "999999999999"), ctx.client("s3", "999999999999")
    ref, att = (lambda r: {"Ref": r}), (lambda r, a: {"Fn::GetAtt": [r, a]})
    template = {
        "Resources": {
            "Logs": {"Type": "AWS::S3::Bucket", "Properties": {"OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}}},
            "LogsPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": ref("Logs"), "PolicyDocument": {
                "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
                                                        "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${Logs.Arn}/*"}}]}}},
            "Data": {"Type": "AWS::S3::Bucket", "DependsOn": "LogsPolicy", "Properties": {
                "VersioningConfiguration": {"Status": "Enabled"},
                "PublicAccessBlockConfiguration": {"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
                                                   "RestrictPublicBuckets": True},
                "LifecycleConfiguration": {"Rules": [{"Id": "expire", "Status": "Enabled", "ExpirationInDays": 365,
                                                      "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]},
                "LoggingConfiguration": {"DestinationBucketName": ref("Logs"), "LogFilePrefix": "data/"}}},
            "Locked": {"Type": "AWS::S3::Bucket", "Properties": {"ObjectLockEnabled": True, "ObjectLockConfiguration": {
                "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}}}},
        },
        "Outputs": {"Logs": {"Value": ref("Logs")}, "Data": {"Value": ref("Data")}, "Locked": {"Value": ref("Locked")},
                    "Policy": {"Value": ref("LogsPolicy")}, "LockedArn": {"Value": att("Locked", "Arn")}},
    }
    stack, out = deploy_ok(cfn, template, "buckets with versioning, lifecycle, logging, Object Lock and a policy")
    require(out["Policy"] == out["Logs"], f"BucketPolicy Ref {out['Policy']}, not the bucket name")
    require("logging.s3.amazonaws.com" in s3.get_bucket_policy(Bucket=out["Logs"])["Policy"], "the bucket policy was not set")
    require(s3.get_bucket_ownership_controls(Bucket=out["Logs"])["OwnershipControls"]["Rules"][0]["ObjectOwnership"] == "BucketOwnerEnforced",
            "OwnershipControls not applied")
    require(s3.get_bucket_versioning(Bucket=out["Data"]).get("Status") == "Enabled", "versioning not applied")
    require(s3.get_public_access_block(Bucket=out["Data"])["PublicAccessBlockConfiguration"]["BlockPublicPolicy"], "no public access block")
    rules = s3.get_bucket_lifecycle_configuration(Bucket=out["Data"])["Rules"]
    require(rules[0]["Expiration"]["Days"] == 365 and rules[0]["NoncurrentVersionExpiration"]["NoncurrentDays"] == 30, f"lifecycle {rules}")
    logging = s3.get_bucket_logging(Bucket=out["Data"]).get("LoggingEnabled", {})
    require(logging.get("TargetBucket") == out["Logs"] and logging.get("TargetPrefix") == "data/", f"logging {logging}")
    lock = s3.get_object_lock_configuration(Bucket=out["Locked"])["ObjectLockConfiguration"]
    require(lock["ObjectLockEnabled"] == "Enabled" and lock["Rule"]["DefaultRetention"] == {"Mode": "COMPLIANCE", "Days": 1}, f"lock {lock}")
    # The calls above wrote access logs into Logs (moto delivers them): deleting fails, as in S3.
    cfn.delete_stack(StackName=stack)
    status = describe(cfn, stack)["StackStatus"]
    require(status == "DELETE_FAILED" and "BucketNotEmpty" in failure_reason(cfn, stack),
            f"deleting a stack whose bucket holds objects ends {status} ({failure_reason(cfn, stack)})")
    for item in s3.list_objects_v2(Bucket=out["Logs"]).get("Contents", []):
        s3.delete_object(Bucket=out["Logs"], Key=item["Key"])
    delete_ok(cfn, stack, "the buckets stack, emptied")
    names = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    require(not names & {out["Logs"], out["Data"], out["Locked"]}, f"buckets outlived their stack: {names}")
