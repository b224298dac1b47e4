"""What the start-up proofs share: boto3 clients for an assumed account and a change-set runner.

A proof talks to the running server through the public API, as the portal does, so it proves the
patch as the tests will meet it. Clients for another account come from a real AssumeRole of a role
this module creates in that account first (straight in the IAM backend: nobody can call IAM in an
account before assuming a role into it).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

PORTAL_ACCOUNT = "123456789012"  # what moto maps any static key to
PROOF_ROLE = "emulator-proof"
PROOF_SESSION = "emulator-proof"


class ProofFailed(Exception):
    """A patch does not hold against the running server."""


def require(condition: object, what: str) -> None:
    if not condition:
        raise ProofFailed(what)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class ProofContext:
    """The endpoint, plus clients for the portal's own account or an assumed one."""

    def __init__(self, endpoint: str) -> None:
        import boto3
        from botocore.config import Config

        self.endpoint = endpoint
        # One botocore session for every client: service models are loaded once.
        self._session = boto3.session.Session()
        self._config = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
        self._clients: dict[tuple[str, str | None, str], Any] = {}
        self._credentials: dict[str, dict[str, str]] = {}

    def portal_client(self, service: str, region: str = "us-east-1", key: str = "proof") -> Any:
        """A client with a static key: the caller is account 123456789012."""
        return self._session.client(
            service, endpoint_url=self.endpoint, region_name=region, aws_access_key_id=key,
            aws_secret_access_key=key, config=self._config,
        )

    def credentials(self, account: str) -> dict[str, str]:
        """Credentials of the proof role in `account` (created on first use), from a real AssumeRole."""
        if account not in self._credentials:
            from .roles import RoleSpec, create_role

            arn = f"arn:aws:iam::{account}:role/{PROOF_ROLE}"
            create_role(RoleSpec(arn=arn), exist_ok=True)
            sts = self.client("sts")
            self._credentials[account] = sts.assume_role(
                RoleArn=arn, RoleSessionName=PROOF_SESSION, SourceIdentity="emulator-proof",
                ExternalId="emulator-proof",
            )["Credentials"]
        return self._credentials[account]

    def credentials_client(self, service: str, creds: dict[str, str], region: str = "us-east-1") -> Any:
        """A client using AssumeRole's `Credentials`."""
        return self._session.client(
            service, endpoint_url=self.endpoint, region_name=region, aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"], aws_session_token=creds["SessionToken"],
            config=self._config,
        )

    def client(self, service: str, account: str | None = None, region: str = "us-east-1") -> Any:
        """A (cached) client acting in `account` (None: the portal's own account) and `region`."""
        cache_key = (service, account, region)
        if cache_key not in self._clients:
            if account is None:
                self._clients[cache_key] = self.portal_client(service, region)
            else:
                self._clients[cache_key] = self.credentials_client(service, self.credentials(account), region)
        return self._clients[cache_key]


def run_change_set(cfn: Any, stack: str, template: dict[str, Any], kind: str = "CREATE",
                   parameters: dict[str, str] | None = None) -> str:
    """CreateChangeSet + ExecuteChangeSet (answer 200 required); returns the execution's token."""
    name = unique("cs")
    kwargs: dict[str, Any] = dict(
        StackName=stack, ChangeSetName=name, TemplateBody=json.dumps(template), ChangeSetType=kind,
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"],
    )
    if parameters:
        kwargs["Parameters"] = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
    arn = cfn.create_change_set(**kwargs)["Id"]
    status = cfn.describe_change_set(ChangeSetName=arn)["Status"]
    require(status == "CREATE_COMPLETE", f"change set for {stack} is {status}, not CREATE_COMPLETE")
    token = f"proof-{uuid.uuid4().hex}"
    resp = cfn.execute_change_set(ChangeSetName=arn, ClientRequestToken=token)
    require(resp["ResponseMetadata"]["HTTPStatusCode"] == 200, "ExecuteChangeSet did not answer 200")
    return token


def describe(cfn: Any, stack: str) -> dict[str, Any]:
    return cfn.describe_stacks(StackName=stack)["Stacks"][0]


def outputs(described: dict[str, Any]) -> dict[str, str]:
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs") or []}


def failure_reason(cfn: Any, stack: str) -> str:
    """The first *_FAILED event's reason of a stack, for proof messages."""
    for event in cfn.describe_stack_events(StackName=stack)["StackEvents"]:
        if event["ResourceStatus"].endswith("_FAILED"):
            return f"{event['LogicalResourceId']}: {event.get('ResourceStatusReason')}"
    return "no *_FAILED event"


def deploy_ok(cfn: Any, template: dict[str, Any], what: str, prefix: str = "proof") -> tuple[str, dict[str, str]]:
    """Deploy `template` as a new stack; require CREATE_COMPLETE; return (stack name, outputs)."""
    stack = unique(prefix)
    run_change_set(cfn, stack, template)
    described = describe(cfn, stack)
    require(
        described["StackStatus"] == "CREATE_COMPLETE",
        f"{what}: stack ends {described['StackStatus']} ({failure_reason(cfn, stack)})",
    )
    return stack, outputs(described)


def delete_ok(cfn: Any, stack: str, what: str) -> None:
    """DeleteStack; require the stack to be gone (DELETE_COMPLETE)."""
    stack_id = describe(cfn, stack)["StackId"]
    cfn.delete_stack(StackName=stack)
    status = describe(cfn, stack_id)["StackStatus"]
    require(status == "DELETE_COMPLETE", f"{what}: delete ends {status} ({failure_reason(cfn, stack_id)})")
