"""AWS::RDS::DBInstance and DBSubnetGroup as CloudFormation creates them (properties, Ref, GetAtt).

Real CloudFormation passes every DBInstance property to RDS: ManageMasterUserPassword (RDS then
keeps the master password in a Secrets Manager secret `rds!db-<uuid>`, encrypted with
MasterUserSecret.KmsKeyId, readable as GetAtt MasterUserSecret.SecretArn), VPCSecurityGroups,
MonitoringInterval/MonitoringRoleArn, EnableIAMDatabaseAuthentication, DeletionProtection, a
DBSubnetGroupName given as a string; Port defaults to the engine's (5432 for postgres), a read
replica (SourceDBInstanceIdentifier) takes its source's port and has no master secret of its own;
DBSubnetGroup's Ref is its (lower-case) name; DBInstanceArn and DbiResourceId (unique per
instance) are attributes.

Stock moto 5.2.5's DBInstance template handler ignores ManageMasterUserPassword, MasterUserSecret,
the monitoring and IAM-auth settings and DeletionProtection, reads VPCSecurityGroups under a wrong
key, defaults Port to 3306 for every engine (replicas included), needs DBSubnetGroupName to be the
subnet-group *object* (a string fails with "'str' object has no attribute 'name'") because
DBSubnetGroup's Ref is that object's repr, copies the primary's master secret into a replica (so
deleting the replica deleted the primary's secret), gives every instance the same DbiResourceId
has no DBInstanceArn or MasterUserSecret.SecretArn, and (API calls too) writes the secret as user
"admin" with a fixed password. This replaces the DBInstance handler with
one mapping the template's properties onto moto's own RDS backend, and fixes the Ref and attributes.
"""

from __future__ import annotations

import random
import string
from typing import Any

from ..cfn_types import add_attributes, set_ref
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_rds"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::RDS::DBInstance': "all properties mapped (managed master secret, VPCSecurityGroups, monitoring, IAM auth, engine port; replicas keep the source's port); adds DBInstanceArn, DbiResourceId, MasterUserSecret.SecretArn",
    'AWS::RDS::DBSubnetGroup': "Ref: the group's name (was an object repr)",
}


def db_kwargs(props: dict[str, Any], identifier: str) -> dict[str, Any]:
    """moto's create_db_instance arguments from a template's Properties."""
    subnet_group = props.get("DBSubnetGroupName")
    secret = props.get("MasterUserSecret") or {}
    kwargs = {
        "db_instance_identifier": identifier.replace("_", "-").lower(),
        "db_instance_class": props.get("DBInstanceClass"),
        "engine": props.get("Engine"),
        "engine_version": props.get("EngineVersion"),
        "allocated_storage": props.get("AllocatedStorage"),
        "availability_zone": props.get("AvailabilityZone"),
        "backup_retention_period": props.get("BackupRetentionPeriod"),
        "db_name": props.get("DBName"),
        "preferred_backup_window": props.get("PreferredBackupWindow", "13:14-13:44"),
        "preferred_maintenance_window": props.get("PreferredMaintenanceWindow", "wed:06:38-wed:07:08").lower(),
        "db_subnet_group_name": (getattr(subnet_group, "name", subnet_group) or "").lower() or None,
        "db_security_groups": [getattr(g, "name", g) for g in props.get("DBSecurityGroups") or []],
        "vpc_security_group_ids": props.get("VPCSecurityGroups") or props.get("VpcSecurityGroupIds") or [],
        "iops": props.get("Iops"),
        "kms_key_id": props.get("KmsKeyId"),
        "master_username": props.get("MasterUsername"),
        "master_user_password": props.get("MasterUserPassword"),
        "manage_master_user_password": bool(props.get("ManageMasterUserPassword")),
        "master_user_secret_kms_key_id": secret.get("KmsKeyId"),
        "multi_az": bool(props.get("MultiAZ")),
        "db_parameter_group_name": props.get("DBParameterGroupName"),
        "publicly_accessible": props.get("PubliclyAccessible"),
        "copy_tags_to_snapshot": props.get("CopyTagsToSnapshot"),
        "storage_encrypted": props.get("StorageEncrypted"),
        "storage_type": props.get("StorageType"),
        "tags": props.get("Tags"),
        "deletion_protection": bool(props.get("DeletionProtection")),
        "monitoring_interval": int(props.get("MonitoringInterval") or 0),
        "monitoring_role_arn": props.get("MonitoringRoleArn"),
        "enable_iam_database_authentication": bool(props.get("EnableIAMDatabaseAuthentication")),
        "enable_cloudwatch_logs_exports": props.get("EnableCloudwatchLogsExports"),
    }
    if props.get("Port") is not None:
        kwargs["port"] = int(props["Port"])
    return kwargs


# Template properties a read replica may set for itself; the rest it copies from its source.
REPLICA_OWN = {"DBInstanceClass": "db_instance_class", "KmsKeyId": "kms_key_id", "StorageEncrypted": "storage_encrypted",
               "PubliclyAccessible": "publicly_accessible", "AvailabilityZone": "availability_zone", "Tags": "tags",
               "VPCSecurityGroups": "vpc_security_group_ids", "MultiAZ": "multi_az", "DeletionProtection": "deletion_protection",
               "MonitoringInterval": "monitoring_interval", "MonitoringRoleArn": "monitoring_role_arn",
               "EnableIAMDatabaseAuthentication": "enable_iam_database_authentication",
               "DBParameterGroupName": "db_parameter_group_name", "Port": "port"}


def apply() -> None:
    import json

    from moto.rds.models import DBInstance, DBParameterGroup, DBSubnetGroup, MasterUserSecret, rds_backends

    def secret_string(self: Any) -> str:  # RDS stores the real master user and a random password
        alphabet = string.ascii_letters + string.digits + "!#$%&()*+,-.:;<=>?[]^_{|}~"
        password = "".join(random.choice(alphabet) for _ in range(28))
        return json.dumps({"username": getattr(self.resource, "master_username", None) or "admin", "password": password})

    MasterUserSecret._generate_secret_string = secret_string

    def create(cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any) -> Any:
        props = cloudformation_json["Properties"]
        backend = rds_backends[account_id][region_name]
        args = db_kwargs(props, props.get("DBInstanceIdentifier") or resource_name)
        source = props.get("SourceDBInstanceIdentifier")
        if source:
            primary = backend.find_db_from_id(source)
            own = {REPLICA_OWN[p] for p in props if p in REPLICA_OWN}
            replica_args = {k: v for k, v in args.items() if k in own}
            replica_args.update(db_instance_identifier=args["db_instance_identifier"], source_db_instance_identifier=source,
                                port=args.get("port", primary.port))
            database = backend.create_db_instance_read_replica(replica_args)
            database.manage_master_user_password = False  # the source's secret is not the replica's
            database.__dict__.pop("master_user_secret", None)
        else:
            args.setdefault("port", DBInstance.default_port(args["engine"] or "mysql"))
            database = backend.create_db_instance(args)
        database.dbi_resource_id = "db-" + "".join(random.choice(string.ascii_uppercase + string.digits) for _ in range(26))
        return database

    DBInstance.create_from_cloudformation_json = classmethod(create)  # type: ignore[assignment]
    set_ref(DBSubnetGroup, lambda group: group.name)
    set_ref(DBParameterGroup, lambda group: group.name)
    add_attributes(DBInstance, {
        "DBInstanceArn": lambda db: db.arn,
        "DbiResourceId": lambda db: db.dbi_resource_id,
        "MasterUserSecret.SecretArn": lambda db: db.master_user_secret.secret_arn,
    })


def prove(ctx: ProofContext) -> None:
    import json

    account, region = "999999999999", "us-east-1"
    cfn, rds = ctx.client("cloudformation", account, region), ctx.client("rds", account, region)
    ref, att = (lambda r: {"Ref": r}), (lambda r, a: {"Fn::GetAtt": [r, a]})
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"},
                                                      "Action": "sts:AssumeRole"}]}
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.24.0.0/16"}},
            "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.24.1.0/24", "AvailabilityZone": "us-east-1a"}},
            "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.24.2.0/24", "AvailabilityZone": "us-east-1b"}},
            "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "db", "VpcId": ref("Vpc")}},
            "Key": {"Type": "AWS::KMS::Key", "Properties": {}},
            "Subnets": {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {"DBSubnetGroupDescription": "db", "SubnetIds": [ref("SubnetA"), ref("SubnetB")]}},
            "Params": {"Type": "AWS::RDS::DBParameterGroup", "Properties": {"Description": "tls", "Family": "postgres16",
                       "Parameters": {"rds.force_ssl": "1"}}},
            "Monitoring": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}},
            "Primary": {"Type": "AWS::RDS::DBInstance", "Properties": {
                "Engine": "postgres", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20", "MasterUsername": "app",
                "ManageMasterUserPassword": True, "MasterUserSecret": {"KmsKeyId": ref("Key")}, "StorageEncrypted": True,
                "KmsKeyId": ref("Key"), "DBSubnetGroupName": ref("Subnets"), "VPCSecurityGroups": [ref("Sg")],
                "DBParameterGroupName": ref("Params"),
                "MonitoringInterval": 60, "MonitoringRoleArn": att("Monitoring", "Arn"), "EnableIAMDatabaseAuthentication": True}},
            "Replica": {"Type": "AWS::RDS::DBInstance", "Properties": {"SourceDBInstanceIdentifier": ref("Primary"),
                        "DBInstanceClass": "db.t3.micro"}},
        },
        "Outputs": {k: {"Value": v} for k, v in {
            "Subnets": ref("Subnets"), "Primary": ref("Primary"), "Replica": ref("Replica"),
            "PrimaryPort": att("Primary", "Endpoint.Port"), "ReplicaPort": att("Replica", "Endpoint.Port"),
            "Secret": att("Primary", "MasterUserSecret.SecretArn"), "PrimaryArn": att("Primary", "DBInstanceArn"),
            "PrimaryDbi": att("Primary", "DbiResourceId"), "ReplicaDbi": att("Replica", "DbiResourceId"),
        }.items()},
    }
    stack, out = deploy_ok(cfn, template, "a postgres primary with a managed secret and a read replica")
    dbs = {d["DBInstanceIdentifier"]: d for d in rds.describe_db_instances()["DBInstances"]}
    primary, replica = dbs[out["Primary"]], dbs[out["Replica"]]
    require(out["Subnets"] == primary["DBSubnetGroup"]["DBSubnetGroupName"], f"DBSubnetGroup Ref {out['Subnets']}")
    groups = [g["DBParameterGroupName"] for g in primary["DBParameterGroups"]]
    require(len(groups) == 1 and groups[0] != "default.postgres16" and groups[0].lower() == groups[0],
            f"DBParameterGroup Ref: the primary's groups are {groups}")
    require(out["PrimaryPort"] == out["ReplicaPort"] == "5432", f"ports {out['PrimaryPort']} / {out['ReplicaPort']}")
    require((primary.get("MasterUserSecret") or {}).get("SecretArn") == out["Secret"] and not replica.get("MasterUserSecret"),
            f"master secrets: {primary.get('MasterUserSecret')} / {replica.get('MasterUserSecret')}")
    value = json.loads(ctx.client("secretsmanager", account, region).get_secret_value(SecretId=out["Secret"])["SecretString"])
    require(value.get("username") == "app" and value.get("password"), "the managed secret lacks the master credentials")
    require(primary["MonitoringInterval"] == 60 and primary["IAMDatabaseAuthenticationEnabled"]
            and [g["VpcSecurityGroupId"] for g in primary["VpcSecurityGroups"]] != [], f"primary settings {primary}")
    require(replica.get("ReadReplicaSourceDBInstanceIdentifier") == out["Primary"], "the replica does not name its source")
    require(out["PrimaryArn"] == primary["DBInstanceArn"] and out["PrimaryDbi"] != out["ReplicaDbi"], "DBInstanceArn / DbiResourceId")
    delete_ok(cfn, stack, "the RDS stack")
    require(not rds.describe_db_instances()["DBInstances"], "DB instances outlived their stack")
    secrets = ctx.client("secretsmanager", account, region).list_secrets()["SecretList"]
    require(out["Secret"] not in [s["ARN"] for s in secrets], "the managed secret outlived its DB instance")
