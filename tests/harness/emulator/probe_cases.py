"""The resource types stackgate's blueprints use, each as a minimal stack for `emulator.probe`.

A case deploys `Subject` (plus whatever it needs) into an assumed account; `attrs` are the
`Fn::GetAtt` attributes the blueprints read from it (its `Ref` is always read too).
"""

from __future__ import annotations

from typing import Any

AZ_A, AZ_B = "eu-west-1a", "eu-west-1b"
LAMBDA_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
EC2_TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}]}
KEY = {"Type": "AWS::KMS::Key", "Properties": {"EnableKeyRotation": True}}


def vpc(n: int = 70) -> dict[str, Any]:
    """A VPC with two subnets and a security group (Vpc, SubnetA, SubnetB, Sg)."""
    return {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": f"10.{n}.0.0/16", "EnableDnsSupport": True, "EnableDnsHostnames": True}},
        "SubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": f"10.{n}.1.0/24", "AvailabilityZone": AZ_A}},
        "SubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": f"10.{n}.2.0/24", "AvailabilityZone": AZ_B}},
        "Sg": {"Type": "AWS::EC2::SecurityGroup", "Properties": {"GroupDescription": "app tier", "VpcId": {"Ref": "Vpc"}}},
    }


def bucket(**props: Any) -> dict[str, Any]:
    return {"Type": "AWS::S3::Bucket", "Properties": props}


ALB = {
    "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
    "Properties": {"Type": "application", "Scheme": "internet-facing", "Subnets": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}],
                   "SecurityGroups": [{"Ref": "Sg"}],
                   "LoadBalancerAttributes": [{"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"}]},
}
TARGET_GROUP = {
    "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
    "Properties": {"Port": 8080, "Protocol": "HTTP", "VpcId": {"Ref": "Vpc"}, "TargetType": "instance", "HealthCheckPath": "/healthz"},
}
WEB_ACL = {
    "Type": "AWS::WAFv2::WebACL",
    "Properties": {
        "Name": "probe-acl", "Scope": "REGIONAL", "DefaultAction": {"Allow": {}},
        "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "probe-acl"},
        "Rules": [{"Name": "common", "Priority": 0, "OverrideAction": {"None": {}},
                   "Statement": {"ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": "AWSManagedRulesCommonRuleSet"}},
                   "VisibilityConfig": {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": "common"}}],
    },
}
LAUNCH_TEMPLATE = {
    "Type": "AWS::EC2::LaunchTemplate",
    "Properties": {"LaunchTemplateData": {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro",
                                          "MetadataOptions": {"HttpTokens": "required", "HttpEndpoint": "enabled"},
                                          "SecurityGroupIds": [{"Ref": "Sg"}]}},
}
ASG = {
    "Type": "AWS::AutoScaling::AutoScalingGroup",
    "Properties": {"MinSize": "1", "MaxSize": "2", "VPCZoneIdentifier": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}],
                   "LaunchTemplate": {"LaunchTemplateId": {"Ref": "Lt"}, "Version": {"Fn::GetAtt": ["Lt", "LatestVersionNumber"]}}},
}
ROLE = {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": LAMBDA_TRUST,
        "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"]}}
SECRET = {"Type": "AWS::SecretsManager::Secret", "Properties": {
    "Description": "probe", "KmsKeyId": {"Ref": "Key"},
    "GenerateSecretString": {"SecretStringTemplate": "{\"username\": \"app\"}", "GenerateStringKey": "password",
                             "PasswordLength": 32, "ExcludeCharacters": "\"@/\\"}}}
PRIMARY_DB = {"Type": "AWS::RDS::DBInstance", "Properties": {
    "Engine": "postgres", "EngineVersion": "16.3", "DBInstanceClass": "db.t3.micro", "AllocatedStorage": "20",
    "MasterUsername": "app", "ManageMasterUserPassword": True, "MasterUserSecret": {"KmsKeyId": {"Ref": "Key"}},
    "StorageEncrypted": True, "KmsKeyId": {"Ref": "Key"}, "DBSubnetGroupName": {"Ref": "DbSubnets"},
    "VPCSecurityGroups": [{"Ref": "Sg"}], "MultiAZ": True, "EnableIAMDatabaseAuthentication": True,
    "MonitoringInterval": 60, "MonitoringRoleArn": {"Fn::GetAtt": ["MonitoringRole", "Arn"]},
    "PubliclyAccessible": False, "DeletionProtection": False, "BackupRetentionPeriod": 7, "Port": 5432}}
DB_SUBNETS = {"Type": "AWS::RDS::DBSubnetGroup", "Properties": {"DBSubnetGroupDescription": "db", "SubnetIds": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]}}
MONITORING_ROLE = {"Type": "AWS::IAM::Role", "Properties": {
    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "monitoring.rds.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"]}}
CACHE_SUBNETS = {"Type": "AWS::ElastiCache::SubnetGroup", "Properties": {"Description": "cache", "SubnetIds": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]}}
TRAIL_BUCKET_POLICY = {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Logs"}, "PolicyDocument": {
    "Version": "2012-10-17", "Statement": [
        {"Sid": "AclCheck", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:GetBucketAcl",
         "Resource": {"Fn::GetAtt": ["Logs", "Arn"]}},
        {"Sid": "Write", "Effect": "Allow", "Principal": {"Service": "cloudtrail.amazonaws.com"}, "Action": "s3:PutObject",
         "Resource": {"Fn::Sub": "${Logs.Arn}/AWSLogs/${AWS::AccountId}/*"}}]}}}
CONFIG_ROLE = {"Type": "AWS::IAM::Role", "Properties": {
    "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "config.amazonaws.com"}, "Action": "sts:AssumeRole"}]},
    "ManagedPolicyArns": ["arn:aws:iam::aws:policy/service-role/AWS_ConfigRole"]}}
RECORDER = {"Type": "AWS::Config::ConfigurationRecorder", "Properties": {
    "RoleARN": {"Fn::GetAtt": ["ConfigRole", "Arn"]}, "RecordingGroup": {"AllSupported": True, "IncludeGlobalResourceTypes": True}}}
CHANNEL = {"Type": "AWS::Config::DeliveryChannel", "Properties": {"S3BucketName": {"Ref": "Logs"}}}
HUB = {"Type": "AWS::SecurityHub::Hub", "Properties": {"EnableDefaultStandards": False, "ControlFindingGenerator": "SECURITY_CONTROL"}}
SCP = {"Version": "2012-10-17", "Statement": [{"Sid": "DenyLeaveOrg", "Effect": "Deny", "Action": "organizations:LeaveOrganization", "Resource": "*"}]}


def case(rtype: str, subject: dict[str, Any], attrs: list[str], support: dict[str, Any] | None = None,
         label: str = "", blueprint: str = "") -> dict[str, Any]:
    return {"type": rtype, "label": label or rtype, "blueprint": blueprint, "attrs": attrs,
            "resources": {**(support or {}), "Subject": {"Type": rtype, **subject}}}


def cases() -> list[dict[str, Any]]:
    p = lambda **props: {"Properties": props}  # noqa: E731
    dep = lambda on, **props: {"DependsOn": on, "Properties": props}  # noqa: E731
    net = vpc()
    web = {**net, "Alb": ALB, "Tg": TARGET_GROUP}
    return [
        # network
        case("AWS::EC2::VPC", p(CidrBlock="10.71.0.0/16"), ["CidrBlock", "DefaultSecurityGroup"], blueprint="network"),
        case("AWS::EC2::SecurityGroup", p(GroupDescription="web tier", VpcId={"Ref": "Vpc"},
             SecurityGroupIngress=[{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "10.70.0.0/16", "Description": "https"}],
             SecurityGroupEgress=[{"IpProtocol": "tcp", "FromPort": 5432, "ToPort": 5432, "CidrIp": "10.70.0.0/16", "Description": "db"}]),
             ["GroupId", "VpcId"], net, blueprint="network"),
        case("AWS::EC2::SecurityGroupIngress", p(GroupId={"Ref": "Sg"}, IpProtocol="tcp", FromPort=5432, ToPort=5432,
             SourceSecurityGroupId={"Ref": "Sg"}, Description="from app"), [], net, blueprint="network"),
        case("AWS::EC2::SecurityGroupEgress", p(GroupId={"Ref": "Sg"}, IpProtocol="tcp", FromPort=443, ToPort=443,
             CidrIp="0.0.0.0/0", Description="https out"), [], net, blueprint="network"),
        case("AWS::EC2::VPCEndpoint", p(VpcEndpointType="Gateway", VpcId={"Ref": "Vpc"}, ServiceName="com.amazonaws.eu-west-1.s3",
             RouteTableIds=[{"Ref": "Rt"}]), [], {**net, "Rt": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}}},
             label="AWS::EC2::VPCEndpoint (Gateway, S3)", blueprint="network"),
        case("AWS::EC2::VPCEndpoint", p(VpcEndpointType="Interface", VpcId={"Ref": "Vpc"}, ServiceName="com.amazonaws.eu-west-1.ssm",
             SubnetIds=[{"Ref": "SubnetA"}, {"Ref": "SubnetB"}], SecurityGroupIds=[{"Ref": "Sg"}], PrivateDnsEnabled=True),
             ["DnsEntries", "NetworkInterfaceIds"], net, label="AWS::EC2::VPCEndpoint (Interface, SSM)", blueprint="network"),
        case("AWS::EC2::TransitGatewayAttachment", p(TransitGatewayId="tgw-0a1b2c3d4e5f60718", VpcId={"Ref": "Vpc"},
             SubnetIds=[{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]), ["Id"], net, blueprint="network"),
        case("AWS::EC2::TransitGatewayVpcAttachment", p(TransitGatewayId="tgw-0a1b2c3d4e5f60718", VpcId={"Ref": "Vpc"},
             SubnetIds=[{"Ref": "SubnetA"}, {"Ref": "SubnetB"}]), ["Id"], net, blueprint="network"),
        case("AWS::SNS::Topic", p(TopicName="probe-alerts", KmsMasterKeyId={"Ref": "Key"}), ["TopicArn", "TopicName"], {"Key": KEY},
             blueprint="network"),
        # web-app
        case("AWS::ElasticLoadBalancingV2::LoadBalancer", {"Properties": ALB["Properties"]},
             ["DNSName", "LoadBalancerArn", "CanonicalHostedZoneID", "LoadBalancerFullName"], net, blueprint="web-app"),
        case("AWS::ElasticLoadBalancingV2::TargetGroup", {"Properties": TARGET_GROUP["Properties"]},
             ["TargetGroupArn", "TargetGroupFullName", "TargetGroupName"], net, blueprint="web-app"),
        case("AWS::ElasticLoadBalancingV2::Listener", p(LoadBalancerArn={"Ref": "Alb"}, Port=443, Protocol="HTTPS",
             SslPolicy="ELBSecurityPolicy-TLS13-1-2-2021-06", Certificates=[{"CertificateArn": {"Ref": "CertArn"}}],
             DefaultActions=[{"Type": "forward", "TargetGroupArn": {"Ref": "Tg"}}]), ["ListenerArn"], web,
             label="AWS::ElasticLoadBalancingV2::Listener (HTTPS, ACM certificate)", blueprint="web-app"),
        case("AWS::ElasticLoadBalancingV2::Listener", p(LoadBalancerArn={"Ref": "Alb"}, Port=443, Protocol="HTTPS",
             Certificates=[{"CertificateArn": {"Ref": "OtherAccountCertArn"}}], DefaultActions=[{"Type": "forward", "TargetGroupArn": {"Ref": "Tg"}}]),
             [], web, label="AWS::ElasticLoadBalancingV2::Listener (HTTPS, a certificate of another account)", blueprint="web-app"),
        case("AWS::ElasticLoadBalancingV2::Listener", p(LoadBalancerArn={"Ref": "Alb"}, Port=80, Protocol="HTTP",
             DefaultActions=[{"Type": "redirect", "RedirectConfig": {"Protocol": "HTTPS", "Port": "443", "StatusCode": "HTTP_301"}}]),
             ["ListenerArn"], web, label="AWS::ElasticLoadBalancingV2::Listener (HTTP redirect)", blueprint="web-app"),
        case("AWS::WAFv2::WebACL", {"Properties": WEB_ACL["Properties"]}, ["Arn", "Id", "LabelNamespace"], blueprint="web-app"),
        case("AWS::WAFv2::WebACLAssociation", p(ResourceArn={"Ref": "Alb"}, WebACLArn={"Fn::GetAtt": ["Acl", "Arn"]}), [],
             {**net, "Alb": ALB, "Acl": WEB_ACL}, blueprint="web-app"),
        case("AWS::WAFv2::LoggingConfiguration", p(ResourceArn={"Fn::GetAtt": ["Acl", "Arn"]},
             LogDestinationConfigs=[{"Fn::GetAtt": ["WafLogs", "Arn"]}]), [],
             {"Acl": WEB_ACL, "WafLogs": {"Type": "AWS::Logs::LogGroup", "Properties": {"LogGroupName": "aws-waf-logs-probe", "RetentionInDays": 365}}},
             blueprint="web-app"),
        case("AWS::EC2::LaunchTemplate", {"Properties": LAUNCH_TEMPLATE["Properties"]}, ["LatestVersionNumber", "DefaultVersionNumber"],
             net, blueprint="web-app"),
        case("AWS::AutoScaling::AutoScalingGroup", {"Properties": {**ASG["Properties"], "TargetGroupARNs": [{"Ref": "Tg"}]}}, [],
             {**net, "Tg": TARGET_GROUP, "Lt": LAUNCH_TEMPLATE}, blueprint="web-app"),
        case("AWS::AutoScaling::ScalingPolicy", p(AutoScalingGroupName={"Ref": "Asg"}, PolicyType="TargetTrackingScaling",
             TargetTrackingConfiguration={"PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 50}),
             ["Arn", "PolicyName"], {**net, "Lt": LAUNCH_TEMPLATE, "Asg": ASG}, blueprint="web-app"),
        case("AWS::IAM::Role", p(AssumeRolePolicyDocument=EC2_TRUST, Policies=[{"PolicyName": "read", "PolicyDocument": {
             "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"}]}}]),
             ["Arn", "RoleId"], blueprint="web-app, serverless, account-bootstrap"),
        case("AWS::IAM::InstanceProfile", p(Roles=[{"Ref": "Role"}]), ["Arn"],
             {"Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": EC2_TRUST}}}, blueprint="web-app"),
        case("AWS::EC2::Instance", p(ImageId="ami-12c6146b", InstanceType="t3.micro", SubnetId={"Ref": "SubnetA"},
             SecurityGroupIds=[{"Ref": "Sg"}], IamInstanceProfile={"Ref": "Profile"}),
             ["PrivateIp", "AvailabilityZone", "PrivateDnsName"],
             {**net, "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": EC2_TRUST}},
              "Profile": {"Type": "AWS::IAM::InstanceProfile", "Properties": {"Roles": [{"Ref": "Role"}]}}}, blueprint="web-app"),
        case("AWS::S3::Bucket", dep("LogsPolicy", BucketEncryption={"ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {
             "SSEAlgorithm": "aws:kms", "KMSMasterKeyID": {"Fn::GetAtt": ["Key", "Arn"]}}, "BucketKeyEnabled": True}]},
             VersioningConfiguration={"Status": "Enabled"},
             PublicAccessBlockConfiguration={"BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True},
             LoggingConfiguration={"DestinationBucketName": {"Ref": "Logs"}, "LogFilePrefix": "access/"},
             LifecycleConfiguration={"Rules": [{"Id": "expire", "Status": "Enabled", "ExpirationInDays": 365,
                                                "NoncurrentVersionExpiration": {"NoncurrentDays": 30}}]},
             OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}),
             ["Arn", "DomainName", "RegionalDomainName"],
             {"Key": KEY, "Logs": bucket(), "LogsPolicy": {"Type": "AWS::S3::BucketPolicy", "Properties": {"Bucket": {"Ref": "Logs"},
              "PolicyDocument": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "logging.s3.amazonaws.com"},
                                 "Action": "s3:PutObject", "Resource": {"Fn::Sub": "${Logs.Arn}/*"}}]}}}},
             label="AWS::S3::Bucket (KMS, versioning, logging, lifecycle)", blueprint="web-app, storage"),
        case("AWS::S3::BucketPolicy", p(Bucket={"Ref": "Data"}, PolicyDocument={"Version": "2012-10-17", "Statement": [{
             "Sid": "TlsOnly", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
             "Resource": [{"Fn::GetAtt": ["Data", "Arn"]}, {"Fn::Sub": "${Data.Arn}/*"}], "Condition": {"Bool": {"aws:SecureTransport": "false"}}}]}),
             [], {"Data": bucket()}, blueprint="web-app, storage"),
        case("AWS::KMS::Key", p(EnableKeyRotation=True, Tags=[{"Key": "Name", "Value": "probe"}]), ["Arn", "KeyId"],
             blueprint="every blueprint"),
        case("AWS::KMS::Alias", p(AliasName="alias/probe", TargetKeyId={"Ref": "Key"}), [], {"Key": KEY}, blueprint="every blueprint"),
        case("AWS::CloudWatch::Alarm", p(AlarmDescription="cpu", Namespace="AWS/EC2", MetricName="CPUUtilization", Statistic="Average",
             Period=300, EvaluationPeriods=2, Threshold=80, ComparisonOperator="GreaterThanThreshold", TreatMissingData="notBreaching",
             AlarmActions=[{"Ref": "Topic"}], Dimensions=[{"Name": "AutoScalingGroupName", "Value": "probe"}]), ["Arn"],
             {"Topic": {"Type": "AWS::SNS::Topic", "Properties": {}}}, blueprint="web-app, serverless, data"),
        case("AWS::Logs::LogGroup", p(LogGroupName="/stackgate/probe", RetentionInDays=365, KmsKeyId={"Fn::GetAtt": ["Key", "Arn"]}),
             ["Arn"], {"Key": KEY}, blueprint="every blueprint"),
        # serverless
        case("AWS::Lambda::Function", p(Runtime="python3.12", Handler="index.handler", Role={"Fn::GetAtt": ["Role", "Arn"]},
             Code={"ZipFile": "def handler(event, context):\n    return {'ok': True}\n"}, MemorySize=256, Timeout=10,
             VpcConfig={"SubnetIds": [{"Ref": "SubnetA"}, {"Ref": "SubnetB"}], "SecurityGroupIds": [{"Ref": "Sg"}]},
             KmsKeyArn={"Fn::GetAtt": ["Key", "Arn"]}, DeadLetterConfig={"TargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}},
             TracingConfig={"Mode": "Active"}, ReservedConcurrentExecutions=5, Environment={"Variables": {"STAGE": "dev"}}),
             ["Arn"], {**net, "Key": KEY, "Role": ROLE, "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {}}}, blueprint="serverless"),
        case("AWS::SQS::Queue", p(KmsMasterKeyId={"Ref": "Key"}, MessageRetentionPeriod=1209600, VisibilityTimeout=60,
             RedrivePolicy={"deadLetterTargetArn": {"Fn::GetAtt": ["Dlq", "Arn"]}, "maxReceiveCount": 5}),
             ["Arn", "QueueName", "QueueUrl"], {"Key": KEY, "Dlq": {"Type": "AWS::SQS::Queue", "Properties": {}}}, blueprint="serverless"),
        # data
        case("AWS::RDS::DBSubnetGroup", {"Properties": DB_SUBNETS["Properties"]}, [], net, blueprint="data"),
        case("AWS::RDS::DBInstance", {"Properties": PRIMARY_DB["Properties"]},
             ["Endpoint.Address", "Endpoint.Port", "DBInstanceArn", "MasterUserSecret.SecretArn"],
             {**net, "Key": KEY, "DbSubnets": DB_SUBNETS, "MonitoringRole": MONITORING_ROLE},
             label="AWS::RDS::DBInstance (ManageMasterUserPassword)", blueprint="data"),
        case("AWS::RDS::DBInstance", p(SourceDBInstanceIdentifier={"Ref": "Primary"}, DBInstanceClass="db.t3.micro",
             StorageEncrypted=True, KmsKeyId={"Ref": "Key"}, PubliclyAccessible=False), ["Endpoint.Address", "Endpoint.Port"],
             {**net, "Key": KEY, "DbSubnets": DB_SUBNETS, "MonitoringRole": MONITORING_ROLE, "Primary": PRIMARY_DB},
             label="AWS::RDS::DBInstance (read replica)", blueprint="data"),
        case("AWS::ElastiCache::SubnetGroup", {"Properties": CACHE_SUBNETS["Properties"]}, [], net, blueprint="data"),
        case("AWS::SecretsManager::Secret", {"Properties": SECRET["Properties"]}, ["Id"], {"Key": KEY}, blueprint="data"),
        case("AWS::ElastiCache::ReplicationGroup", p(ReplicationGroupDescription="cache", Engine="redis", EngineVersion="7.1",
             CacheNodeType="cache.t3.micro", NumCacheClusters=2, AutomaticFailoverEnabled=True, MultiAZEnabled=True,
             AtRestEncryptionEnabled=True, TransitEncryptionEnabled=True, KmsKeyId={"Ref": "Key"},
             AuthToken={"Fn::Sub": "{{resolve:secretsmanager:${Secret}:SecretString:password}}"},
             CacheSubnetGroupName={"Ref": "CacheSubnets"}, SecurityGroupIds=[{"Ref": "Sg"}]),
             ["PrimaryEndPoint.Address", "PrimaryEndPoint.Port", "ReaderEndPoint.Address"],
             {**net, "Key": KEY, "Secret": SECRET, "CacheSubnets": CACHE_SUBNETS},
             label="AWS::ElastiCache::ReplicationGroup (AuthToken from {{resolve:secretsmanager}})", blueprint="data"),
        case("AWS::RDS::DBInstance", p(Engine="postgres", DBInstanceClass="db.t3.micro", AllocatedStorage="20", MasterUsername="app",
             MasterUserPassword={"Fn::Sub": "{{resolve:secretsmanager:${Secret}:SecretString:password}}"},
             DBSubnetGroupName={"Ref": "DbSubnets"}, StorageEncrypted=True), ["Endpoint.Address"],
             {**net, "Key": KEY, "Secret": SECRET, "DbSubnets": DB_SUBNETS},
             label="AWS::RDS::DBInstance (MasterUserPassword from {{resolve:secretsmanager}})", blueprint="data"),
        # account-baseline
        case("AWS::CloudTrail::Trail", dep("LogsPolicy", S3BucketName={"Ref": "Logs"}, IsLogging=True, IsMultiRegionTrail=True,
             EnableLogFileValidation=True, IncludeGlobalServiceEvents=True, KMSKeyId={"Ref": "Key"}), ["Arn"],
             {"Key": KEY, "Logs": bucket(), "LogsPolicy": TRAIL_BUCKET_POLICY}, blueprint="account-baseline"),
        case("AWS::GuardDuty::Detector", p(Enable=True, FindingPublishingFrequency="FIFTEEN_MINUTES"), [], blueprint="account-baseline"),
        case("AWS::Config::ConfigurationRecorder", {"Properties": RECORDER["Properties"]}, [], {"ConfigRole": CONFIG_ROLE},
             blueprint="account-baseline"),
        case("AWS::Config::DeliveryChannel", {"Properties": CHANNEL["Properties"]}, [],
             {"ConfigRole": CONFIG_ROLE, "Recorder": RECORDER, "Logs": bucket()}, blueprint="account-baseline"),
        case("AWS::Config::ConfigRule", dep(["Recorder", "Channel"], ConfigRuleName="s3-versioning", Source={"Owner": "AWS",
             "SourceIdentifier": "S3_BUCKET_VERSIONING_ENABLED"}, Scope={"ComplianceResourceTypes": ["AWS::S3::Bucket"]}),
             ["Arn", "ConfigRuleId"], {"ConfigRole": CONFIG_ROLE, "Recorder": RECORDER, "Channel": CHANNEL, "Logs": bucket()},
             blueprint="account-baseline"),
        case("AWS::SecurityHub::Hub", {"Properties": HUB["Properties"]}, ["ARN"], blueprint="account-baseline"),
        case("AWS::SecurityHub::Standard", dep("Hub", StandardsArn="arn:aws:securityhub:eu-west-1::standards/aws-foundational-security-best-practices/v/1.0.0"),
             ["StandardsSubscriptionArn"], {"Hub": HUB}, blueprint="account-baseline"),
        case("AWS::AccessAnalyzer::Analyzer", p(AnalyzerName="probe-account", Type="ACCOUNT"), ["Arn"], blueprint="account-baseline"),
        # log-archive
        case("AWS::S3::Bucket", p(ObjectLockEnabled=True, VersioningConfiguration={"Status": "Enabled"},
             ObjectLockConfiguration={"ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 365}}}),
             ["Arn"], label="AWS::S3::Bucket (ObjectLockEnabled + ObjectLockConfiguration)", blueprint="log-archive"),
        # organization
        case("AWS::Organizations::Policy", p(Name="deny-leave", Type="SERVICE_CONTROL_POLICY", Description="probe", Content=SCP,
             TargetIds=[{"Ref": "RootId"}]), ["Arn", "Id", "AwsManaged"], label="AWS::Organizations::Policy (in an organization)",
             blueprint="organization"),
        # account-bootstrap
        case("AWS::IAM::ManagedPolicy", p(Description="deploy", PolicyDocument={"Version": "2012-10-17", "Statement": [
             {"Effect": "Allow", "Action": "cloudformation:DescribeStacks", "Resource": "*"}]}, Roles=[{"Ref": "Role"}]),
             ["PolicyArn"], {"Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": EC2_TRUST}}},
             blueprint="account-bootstrap"),
    ]
