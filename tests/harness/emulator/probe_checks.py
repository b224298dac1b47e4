"""Property checks for `emulator.probe`: which properties a created resource silently lost.

Each check reads the resource back through the service's API and returns the names of the
template properties (from `probe_cases`) that did not take effect.
"""

from __future__ import annotations

from typing import Any, Callable


def _s3_missing(client: Callable[[str], Any], bucket: str, wanted: list[str]) -> list[str]:
    s3 = client("s3")
    probes = {
        "VersioningConfiguration": lambda: s3.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled",
        "PublicAccessBlockConfiguration": lambda: bool(s3.get_public_access_block(Bucket=bucket)),
        "LifecycleConfiguration": lambda: bool(s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]),
        "LoggingConfiguration": lambda: "LoggingEnabled" in s3.get_bucket_logging(Bucket=bucket),
        "OwnershipControls": lambda: bool(s3.get_bucket_ownership_controls(Bucket=bucket)),
        "BucketEncryption": lambda: bool(s3.get_bucket_encryption(Bucket=bucket)),
        "ObjectLockConfiguration": lambda: s3.get_object_lock_configuration(Bucket=bucket)["ObjectLockConfiguration"]
        .get("Rule", {}).get("DefaultRetention", {}).get("Mode") == "COMPLIANCE",
    }
    missing = []
    for name in wanted:
        try:
            ok = probes[name]()
        except Exception:
            ok = False
        if not ok:
            missing.append(name)
    return missing


def lambda_function(client: Callable[[str], Any], name: str) -> list[str]:
    config = client("lambda").get_function(FunctionName=name)["Configuration"]
    concurrency = client("lambda").get_function_concurrency(FunctionName=name).get("ReservedConcurrentExecutions")
    missing = [prop for prop, ok in [
        ("KmsKeyArn", bool(config.get("KMSKeyArn"))),
        ("DeadLetterConfig", bool((config.get("DeadLetterConfig") or {}).get("TargetArn"))),
        ("TracingConfig", (config.get("TracingConfig") or {}).get("Mode") == "Active"),
        ("ReservedConcurrentExecutions", concurrency == 5),
        ("VpcConfig (VpcId)", (config.get("VpcConfig") or {}).get("VpcId", "").startswith("vpc-")
         and config["VpcConfig"]["VpcId"] != "vpc-123abc"),
    ] if not ok]
    return missing


def rds_primary(client: Callable[[str], Any], identifier: str) -> list[str]:
    db = client("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return [prop for prop, ok in [
        ("ManageMasterUserPassword", bool((db.get("MasterUserSecret") or {}).get("SecretArn"))),
        ("MonitoringInterval", db.get("MonitoringInterval") == 60),
        ("EnableIAMDatabaseAuthentication", bool(db.get("IAMDatabaseAuthenticationEnabled"))),
        ("VPCSecurityGroups", any(g["VpcSecurityGroupId"].startswith("sg-") for g in db.get("VpcSecurityGroups") or [])),
    ] if not ok]


def rds_replica(client: Callable[[str], Any], identifier: str) -> list[str]:
    db = client("rds").describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
    return [] if db["Endpoint"]["Port"] == 5432 else [f"Port (the source's 5432; got {db['Endpoint']['Port']})"]


def log_group(client: Callable[[str], Any], name: str) -> list[str]:
    group = client("logs").describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    return [] if group.get("kmsKeyId") else ["KmsKeyId"]


CHECKS: dict[str, Callable[[Callable[[str], Any], str], list[str]]] = {
    "AWS::Lambda::Function": lambda_function,
    "AWS::RDS::DBInstance (ManageMasterUserPassword)": rds_primary,
    "AWS::RDS::DBInstance (read replica)": rds_replica,
    "AWS::Logs::LogGroup": log_group,
    "AWS::S3::Bucket (KMS, versioning, logging, lifecycle)": lambda client, bucket: _s3_missing(client, bucket, [
        "BucketEncryption", "VersioningConfiguration", "PublicAccessBlockConfiguration", "LifecycleConfiguration",
        "LoggingConfiguration", "OwnershipControls"]),
    "AWS::S3::Bucket (ObjectLockEnabled + ObjectLockConfiguration)": lambda client, bucket: _s3_missing(client, bucket, [
        "VersioningConfiguration", "ObjectLockConfiguration"]),
}
