"""AWS::ElastiCache::SubnetGroup and ReplicationGroup, created in moto's ElastiCache backend.

Real CloudFormation creates the subnet group (Ref: its lower-case name) and the replication group
(Ref: its id; GetAtt PrimaryEndPoint.Address/Port, ReaderEndPoint.Address/Port, or
ConfigurationEndPoint.Address/Port in cluster mode), refusing an AuthToken without
TransitEncryptionEnabled or outside 16-128 characters and a subnet group that does not exist, and
deletes both with the stack. Stock moto 5.2.5 has the service but no template model for either:
the stack completes with nothing created, a Ref resolves to nothing and GetAtt PrimaryEndPoint.*
fails, in an output with HTTP 500. This creates and deletes both through moto's backend (the
AuthToken arrives resolved by cfn_secrets), so DescribeReplicationGroups shows them.
"""

from __future__ import annotations

from typing import Any

from ..cfn_types import Created, Request, TypeSpec, call, define_type
from ..proof import ProofContext, delete_ok, deploy_ok, require

NAME = "cfn_elasticache"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::ElastiCache::SubnetGroup': "created in moto's ElastiCache backend",
    'AWS::ElastiCache::ReplicationGroup': "created in moto's ElastiCache backend (endpoints as attributes; AuthToken checks)",
}


def _backend(account_id: str, region: str) -> Any:
    from moto.elasticache.models import elasticache_backends

    return elasticache_backends[account_id][region]


def _invalid(message: str, combination: bool = False) -> Exception:
    from moto.elasticache.exceptions import InvalidParameterCombinationException, InvalidParameterValueException

    return (InvalidParameterCombinationException if combination else InvalidParameterValueException)(message)


def create_subnet_group(req: Request) -> Created:
    name = req.short(255).lower()
    _backend(req.account_id, req.region).create_cache_subnet_group(name, req.props["Description"], req.props["SubnetIds"],
                                                                   req.props.get("Tags"))
    return Created(name)


def delete_subnet_group(resource: Any) -> None:
    _backend(resource.account_id, resource.region_name).cache_subnet_groups.pop(resource.physical_resource_id, None)


def create_replication_group(req: Request) -> Created:
    p = req.props
    backend = _backend(req.account_id, req.region)
    token = p.get("AuthToken")
    if token is not None and str(p.get("TransitEncryptionEnabled")).lower() != "true":
        raise _invalid("The AUTH token is only supported when encryption-in-transit is enabled", combination=True)
    if token is not None and not 16 <= len(token) <= 128:
        raise _invalid("Invalid AuthToken provided.")
    if p.get("CacheSubnetGroupName") and p["CacheSubnetGroupName"].lower() not in backend.cache_subnet_groups:
        from moto.elasticache.exceptions import CacheSubnetGroupNotFound

        raise CacheSubnetGroupNotFound(p["CacheSubnetGroupName"])
    group_id = req.short(40).lower()
    flag = lambda key: str(p[key]).lower() == "true" if key in p else None  # noqa: E731
    group = call(backend.create_replication_group, replication_group_id=group_id,
                 replication_group_description=p["ReplicationGroupDescription"], automatic_failover_enabled=flag("AutomaticFailoverEnabled"),
                 multi_az_enabled=flag("MultiAZEnabled"), num_cache_clusters=int(p["NumCacheClusters"]) if p.get("NumCacheClusters") else None,
                 preferred_cache_cluster_azs=p.get("PreferredCacheClusterAZs"), num_node_groups=p.get("NumNodeGroups"),
                 replicas_per_node_group=p.get("ReplicasPerNodeGroup"), node_group_configuration=p.get("NodeGroupConfiguration"),
                 cache_node_type=p.get("CacheNodeType"), engine=p.get("Engine"), engine_version=p.get("EngineVersion"),
                 cache_parameter_group_name=p.get("CacheParameterGroupName"), cache_subnet_group_name=p.get("CacheSubnetGroupName"),
                 security_group_ids=p.get("SecurityGroupIds"), tags=p.get("Tags") or [], port=int(p["Port"]) if p.get("Port") else None,
                 snapshot_retention_limit=p.get("SnapshotRetentionLimit"), snapshot_window=p.get("SnapshotWindow"), auth_token=token,
                 transit_encryption_enabled=flag("TransitEncryptionEnabled"), at_rest_encryption_enabled=flag("AtRestEncryptionEnabled"),
                 kms_key_id=p.get("KmsKeyId"), user_group_ids=p.get("UserGroupIds"), log_delivery_configurations=p.get("LogDeliveryConfigurations"),
                 cluster_mode=p.get("ClusterMode"), preferred_maintenance_window=p.get("PreferredMaintenanceWindow"))
    node = group.node_groups[0] if group.node_groups else {}
    attributes: dict[str, Any] = {}
    if getattr(group, "configuration_endpoint", None):
        attributes = {"ConfigurationEndPoint.Address": group.configuration_endpoint["address"],
                      "ConfigurationEndPoint.Port": str(group.configuration_endpoint["port"])}
    if node.get("primary_endpoint_address"):
        attributes.update({"PrimaryEndPoint.Address": node["primary_endpoint_address"], "PrimaryEndPoint.Port": str(node["port"]),
                           "ReaderEndPoint.Address": node["reader_endpoint_address"], "ReaderEndPoint.Port": str(node["port"])})
    return Created(group_id, attributes)


def delete_replication_group(resource: Any) -> None:
    backend = _backend(resource.account_id, resource.region_name)
    if resource.physical_resource_id in backend.replication_groups:
        backend.delete_replication_group(resource.physical_resource_id, None)
        backend.replication_groups.pop(resource.physical_resource_id, None)  # moto keeps it "deleting" forever


ATTRIBUTES = ("PrimaryEndPoint.Address", "PrimaryEndPoint.Port", "ReaderEndPoint.Address", "ReaderEndPoint.Port",
              "ConfigurationEndPoint.Address", "ConfigurationEndPoint.Port")


def apply() -> None:
    define_type(TypeSpec("AWS::ElastiCache::SubnetGroup", create_subnet_group, delete_subnet_group, (), "CacheSubnetGroupName"))
    define_type(TypeSpec("AWS::ElastiCache::ReplicationGroup", create_replication_group, delete_replication_group, ATTRIBUTES,
                         "ReplicationGroupId"))


def prove(ctx: ProofContext) -> None:
    account = "999999999999"
    cfn, cache = ctx.client("cloudformation", account), ctx.client("elasticache", account)
    ref = lambda r: {"Ref": r}  # noqa: E731
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.29.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.29.1.0/24", "AvailabilityZone": "us-east-1a"}},
            "Subnets": {"Type": "AWS::ElastiCache::SubnetGroup", "Properties": {"Description": "cache", "SubnetIds": [ref("Subnet")]}},
            "Cache": {"Type": "AWS::ElastiCache::ReplicationGroup", "Properties": {
                "ReplicationGroupDescription": "proof", "Engine": "redis", "CacheNodeType": "cache.t3.micro", "NumCacheClusters": 2,
                "AutomaticFailoverEnabled": True, "TransitEncryptionEnabled": True, "AtRestEncryptionEnabled": True,
                "AuthToken": "proof-token-0123456789", "CacheSubnetGroupName": ref("Subnets")}},
        },
        "Outputs": {"Subnets": {"Value": ref("Subnets")}, "Cache": {"Value": ref("Cache")},
                    "Primary": {"Value": {"Fn::GetAtt": ["Cache", "PrimaryEndPoint.Address"]}},
                    "Port": {"Value": {"Fn::GetAtt": ["Cache", "PrimaryEndPoint.Port"]}}},
    }
    stack, out = deploy_ok(cfn, template, "a Redis replication group in a subnet group")
    groups = cache.describe_replication_groups(ReplicationGroupId=out["Cache"])["ReplicationGroups"]
    endpoint = groups[0]["NodeGroups"][0]["PrimaryEndpoint"]
    require(endpoint["Address"] == out["Primary"] and str(endpoint["Port"]) == out["Port"] == "6379" and groups[0]["AuthTokenEnabled"],
            f"replication group {groups[0]} vs {out}")
    require([g["CacheSubnetGroupName"] for g in cache.describe_cache_subnet_groups()["CacheSubnetGroups"]] == [out["Subnets"]],
            "the subnet group is not the one Ref names")
    delete_ok(cfn, stack, "the cache stack")
    require(not cache.describe_replication_groups()["ReplicationGroups"], "the replication group outlived its stack")
