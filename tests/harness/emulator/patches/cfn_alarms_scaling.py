"""AWS::CloudWatch::Alarm and AWS::AutoScaling::ScalingPolicy, created in moto's backends.

Real CloudFormation puts the alarm (Ref: its name; GetAtt Arn) and the scaling policy (Ref: its
ARN; GetAtt Arn, PolicyName; the name generated as `<stack>-<logical id>-<suffix>`, the Auto
Scaling group required to exist), and removes them on delete. Stock moto 5.2.5 has both services
but no template model for either: the stack completes with nothing created, the resources are
listed without logical ids, a Ref resolves to nothing and a GetAtt fails, in an output with HTTP
500. This creates and deletes them through moto's CloudWatch and Auto Scaling backends, so
DescribeAlarms and DescribePolicies show them. (Metric-math alarms, `Metrics`, are not mapped.)
"""

from __future__ import annotations

from typing import Any

from ..cfn_types import Created, Request, TypeSpec, call, define_type
from ..proof import ProofContext, delete_ok, deploy_ok, describe, outputs, require, run_change_set

NAME = "cfn_alarms_scaling"
# What this patch does to each resource type (emulator.probe_table reads it for README.md).
TYPES = {
    'AWS::CloudWatch::Alarm': "created in moto's CloudWatch backend",
    'AWS::AutoScaling::ScalingPolicy': "created in moto's Auto Scaling backend",
}


def create_alarm(req: Request) -> Created:
    from moto.cloudwatch.models import cloudwatch_backends

    p = req.props
    name = req.short(255)
    alarm = call(cloudwatch_backends[req.account_id][req.region].put_metric_alarm, name=name, namespace=p.get("Namespace"),
                 metric_name=p.get("MetricName"), comparison_operator=p["ComparisonOperator"],
                 evaluation_periods=int(p["EvaluationPeriods"]), period=int(p["Period"]) if p.get("Period") else None,
                 threshold=float(p["Threshold"]) if p.get("Threshold") is not None else None, statistic=p.get("Statistic"),
                 extended_statistic=p.get("ExtendedStatistic"), description=p.get("AlarmDescription"),
                 dimensions=p.get("Dimensions") or [],
                 alarm_actions=p.get("AlarmActions") or [], ok_actions=p.get("OKActions") or [],
                 insufficient_data_actions=p.get("InsufficientDataActions") or [], unit=p.get("Unit"),
                 actions_enabled=str(p.get("ActionsEnabled", True)).lower() == "true", treat_missing_data=p.get("TreatMissingData"),
                 datapoints_to_alarm=int(p["DatapointsToAlarm"]) if p.get("DatapointsToAlarm") else None, tags=p.get("Tags") or [])
    return Created(name, {"Arn": alarm.alarm_arn})


def delete_alarm(resource: Any) -> None:
    from moto.cloudwatch.models import cloudwatch_backends

    cloudwatch_backends[resource.account_id][resource.region_name].delete_alarms([resource.physical_resource_id])


def create_policy(req: Request) -> Created:
    from moto.autoscaling.models import autoscaling_backends
    from moto.autoscaling.exceptions import ValidationError

    p = req.props
    backend = autoscaling_backends[req.account_id][req.region]
    group = p["AutoScalingGroupName"]
    if group not in backend.autoscaling_groups:
        raise ValidationError(f"Group {group} not found")
    name = req.short(255)
    policy = call(backend.put_scaling_policy, name=name, policy_type=p.get("PolicyType", "SimpleScaling"),
                  metric_aggregation_type=p.get("MetricAggregationType"), adjustment_type=p.get("AdjustmentType"), as_name=group,
                  min_adjustment_magnitude=p.get("MinAdjustmentMagnitude"),
                  scaling_adjustment=int(p["ScalingAdjustment"]) if p.get("ScalingAdjustment") is not None else None,
                  cooldown=int(p["Cooldown"]) if p.get("Cooldown") else None,
                  target_tracking_config=p.get("TargetTrackingConfiguration"), step_adjustments=p.get("StepAdjustments"),
                  estimated_instance_warmup=p.get("EstimatedInstanceWarmup"),
                  predictive_scaling_configuration=p.get("PredictiveScalingConfiguration"))
    return Created(policy.arn, {"Arn": policy.arn, "PolicyName": name}, name)


def delete_policy(resource: Any) -> None:
    from moto.autoscaling.models import autoscaling_backends

    autoscaling_backends[resource.account_id][resource.region_name].delete_policy(resource.state)


def apply() -> None:
    define_type(TypeSpec("AWS::CloudWatch::Alarm", create_alarm, delete_alarm, ("Arn",), "AlarmName"))
    define_type(TypeSpec("AWS::AutoScaling::ScalingPolicy", create_policy, delete_policy, ("Arn", "PolicyName")))


def prove(ctx: ProofContext) -> None:
    account = "999999999999"
    cfn, cw, asg = ctx.client("cloudformation", account), ctx.client("cloudwatch", account), ctx.client("autoscaling", account)
    ref, att = (lambda r: {"Ref": r}), (lambda r, a: {"Fn::GetAtt": [r, a]})
    template = {
        "Resources": {
            "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.28.0.0/16"}},
            "Subnet": {"Type": "AWS::EC2::Subnet", "Properties": {"VpcId": ref("Vpc"), "CidrBlock": "10.28.1.0/24", "AvailabilityZone": "us-east-1a"}},
            "Lt": {"Type": "AWS::EC2::LaunchTemplate", "Properties": {"LaunchTemplateData": {"ImageId": "ami-12c6146b", "InstanceType": "t3.micro"}}},
            "Group": {"Type": "AWS::AutoScaling::AutoScalingGroup", "Properties": {"MinSize": "0", "MaxSize": "2", "VPCZoneIdentifier": [ref("Subnet")],
                      "LaunchTemplate": {"LaunchTemplateId": ref("Lt"), "Version": att("Lt", "LatestVersionNumber")}}},
            "Policy": {"Type": "AWS::AutoScaling::ScalingPolicy", "Properties": {"AutoScalingGroupName": ref("Group"),
                       "PolicyType": "TargetTrackingScaling", "TargetTrackingConfiguration": {
                           "PredefinedMetricSpecification": {"PredefinedMetricType": "ASGAverageCPUUtilization"}, "TargetValue": 50}}},
            "Topic": {"Type": "AWS::SNS::Topic", "Properties": {}},
            "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Namespace": "AWS/EC2", "MetricName": "CPUUtilization",
                      "Statistic": "Average", "Period": 300, "EvaluationPeriods": 2, "Threshold": 80, "ComparisonOperator": "GreaterThanThreshold",
                      "AlarmActions": [ref("Topic")], "Dimensions": [{"Name": "AutoScalingGroupName", "Value": ref("Group")}]}},
        },
        "Outputs": {"Policy": {"Value": ref("Policy")}, "PolicyArn": {"Value": att("Policy", "Arn")}, "PolicyName": {"Value": att("Policy", "PolicyName")},
                    "Alarm": {"Value": ref("Alarm")}, "AlarmArn": {"Value": att("Alarm", "Arn")}, "Group": {"Value": ref("Group")}},
    }
    stack, out = deploy_ok(cfn, template, "a scaling policy and an alarm")
    policies = asg.describe_policies(AutoScalingGroupName=out["Group"])["ScalingPolicies"]
    require(policies and policies[0]["PolicyARN"] == out["Policy"] == out["PolicyArn"] and policies[0]["PolicyName"] == out["PolicyName"]
            and policies[0]["PolicyType"] == "TargetTrackingScaling", f"DescribePolicies {policies} vs {out}")
    alarms = cw.describe_alarms(AlarmNames=[out["Alarm"]])["MetricAlarms"]
    require(alarms and alarms[0]["AlarmArn"] == out["AlarmArn"] and alarms[0]["Threshold"] == 80.0, f"DescribeAlarms {alarms}")
    # An update keeps the alarm's (generated) name and changes it in place, as in CloudFormation.
    template["Resources"]["Alarm"]["Properties"]["Threshold"] = 90
    run_change_set(cfn, stack, template, "UPDATE")
    updated = describe(cfn, stack)
    alarms = cw.describe_alarms(AlarmNames=[out["Alarm"]])["MetricAlarms"]
    require(updated["StackStatus"] == "UPDATE_COMPLETE" and outputs(updated)["Alarm"] == out["Alarm"] and alarms[0]["Threshold"] == 90.0,
            f"an updated alarm reads {updated['StackStatus']} {outputs(updated)} {alarms}")
    delete_ok(cfn, stack, "the alarm and scaling stack")
    require(not cw.describe_alarms(AlarmNames=[out["Alarm"]])["MetricAlarms"], "the alarm outlived its stack")
