#!/usr/bin/env python3
"""Run the AWS emulator (moto server) for stackgate's integration tests.

    python3 -m venv .venv-moto && .venv-moto/bin/pip install -r tests/harness/requirements-moto.txt
    .venv-moto/bin/python tests/harness/moto_launcher.py --port 0 --port-file /tmp/moto.port \
        --roles tests/harness/roles.json &
    # wait for the port file, then:
    STACKGATE_TEST_AWS_ENDPOINT=http://127.0.0.1:$(cat /tmp/moto.port) cargo test --test it aws::

Starts `moto.server.ThreadedMotoServer` on 127.0.0.1, applies the patches below, *proves* each
patch against the running server with boto3 (refusing to start if one does not hold), wipes the
state the proof left behind, creates the IAM roles listed in --roles, writes the bound port to
--port-file, prints one `ready` line and runs until SIGTERM or SIGINT.

AssumeRole is enforced (patch_assume_role_enforces_roles): only roles that exist can be assumed,
with the ExternalId their trust policy demands. `--roles tests/harness/roles.json` creates the
deploy roles the tests use; without --roles every AssumeRole is refused.

Every patch fixes one measured bug of stock moto 5.2.5 (numbered as in
shared/reference/test-harness-facts.md; the AssumeRole one is the facts' "ExternalId and trust
policies are not enforced") so that the emulator behaves like real AWS where stackgate depends
on it; two more serve the harness (serialised requests, a filtered
/moto-api/data.json). `--without-patch NAME` leaves one out to watch the self-check catch it. Patches reach into moto internals; that is why each one is
re-proven at every start-up: an upgrade that silently breaks one makes the launcher exit non-zero
instead of letting tests fail for the emulator's sake.

MOTO_ACCOUNT_ID is never set (and is refused if present): it would force every request, assumed
roles included, into one account and hide cross-account bugs.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import urllib.request
import uuid
import warnings
from typing import Any, Callable

MOTO_VERSION = "5.2.5"

# --------------------------------------------------------------------------------------------
# Patches
# --------------------------------------------------------------------------------------------

# Attribute set on an exception raised while creating/updating a resource, naming the resource.
_FAILED_RESOURCE_ATTR = "_stackgate_failed_resource"


def patch_resource_failure_attribution() -> None:
    """Name the resource that failed when a stack operation raises (supports stock bug 6).

    Stock moto creates resources lazily and lets the first exception escape with no record of
    which logical resource raised it. Real CloudFormation emits a `CREATE_FAILED` (or
    `UPDATE_FAILED`) event for that logical resource with the service's error message. This
    wraps `parse_and_create_resource` / `parse_and_update_resource` so the innermost failing
    resource's logical id and type ride along on the exception, for the execution patch below.
    """
    from moto.cloudformation import parsing

    def wrap(original: Callable[..., Any], failed_status: str) -> Callable[..., Any]:
        def wrapper(logical_id: str, resource_json: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
            try:
                return original(logical_id, resource_json, *args, **kwargs)
            except Exception as exc:
                # Nested creation (a Ref to a not-yet-created resource) re-raises through the
                # outer resource: keep the innermost, which is the one that really failed.
                if not hasattr(exc, _FAILED_RESOURCE_ATTR):
                    rtype = resource_json.get("Type", "") if isinstance(resource_json, dict) else ""
                    setattr(exc, _FAILED_RESOURCE_ATTR, (logical_id, rtype, failed_status))
                raise

        wrapper.__wrapped__ = original  # type: ignore[attr-defined]
        return wrapper

    parsing.parse_and_create_resource = wrap(parsing.parse_and_create_resource, "CREATE_FAILED")
    parsing.parse_and_update_resource = wrap(parsing.parse_and_update_resource, "UPDATE_FAILED")


def _error_text(exc: BaseException) -> str:
    """The message real CloudFormation would surface: `Code: message` when moto gives both."""
    code = getattr(exc, "code", None) or getattr(exc, "error_type", None)
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(code, str) and code and code not in message:
        return f"{code}: {message}"
    return message


def patch_execute_change_set() -> None:
    """ExecuteChangeSet that sets outputs/exports and rolls back on failure (stock bugs 1 and 6).

    Stock moto applies the change set but (bug 1) never rebuilds the stack's output map, so a
    stack created by change set has no Outputs and registers no exports; and (bug 6) lets any
    resource error escape, so ExecuteChangeSet answers HTTP 400 and the stack is left in
    REVIEW_IN_PROGRESS with half its resources created.

    Real CloudFormation answers ExecuteChangeSet with 200 as soon as the execution starts; the
    outcome shows up on the stack: CREATE_COMPLETE / UPDATE_COMPLETE with Outputs and exports, or,
    on a failed create, a `CREATE_FAILED` event for the resource (ResourceStatusReason = the
    service's error), `ROLLBACK_IN_PROGRESS`, deletion of what was created, and
    `ROLLBACK_COMPLETE`; on a failed update, `UPDATE_ROLLBACK_IN_PROGRESS` back to the previous
    template and `UPDATE_ROLLBACK_COMPLETE` (or `*_ROLLBACK_FAILED` if the rollback itself fails).
    It also refuses to execute a change set whose ExecutionStatus is not AVAILABLE
    (`InvalidChangeSetStatus`), so an executed change set cannot be executed twice. Events of the
    execution carry its ClientRequestToken (stock bug 9 ignores it).
    """
    from moto.cloudformation.exceptions import CloudFormationError, ValidationError
    from moto.cloudformation.models import CloudFormationBackend, Event, Stack
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import EmptyResult

    class ChangeSetNotFoundError(CloudFormationError):
        code = "ChangeSetNotFound"

    class InvalidChangeSetStatusError(CloudFormationError):
        code = "InvalidChangeSetStatus"

    def add_event(
        stack: Stack,
        status: str,
        reason: str | None,
        token: str | None,
        logical_id: str | None = None,
        resource_type: str = "AWS::CloudFormation::Stack",
    ) -> None:
        event = Event(
            stack_id=stack.stack_id,
            stack_name=stack.name,
            logical_resource_id=logical_id or stack.name,
            physical_resource_id=stack.stack_id if logical_id is None else "",
            resource_type=resource_type,
            resource_status=status,
            resource_status_reason=reason,
            resource_properties=None,
        )
        event.client_request_token = token
        stack.events.append(event)

    def find_change_set(backend: CloudFormationBackend, name_or_arn: str) -> Any:
        if name_or_arn in backend.change_sets:
            return backend.change_sets[name_or_arn]
        for change_set in backend.change_sets.values():
            if change_set.change_set_name == name_or_arn:
                return change_set
        raise ChangeSetNotFoundError(f"ChangeSet [{name_or_arn}] does not exist")

    def set_status(stack: Stack, status: str, reason: str | None = None) -> None:
        stack.status = status
        stack.stack_status_reason = reason

    def refresh_outputs_and_exports(backend: CloudFormationBackend, stack: Stack) -> None:
        """Rebuild outputs from the stack's current template and (re)register its exports."""
        stack.output_map = stack._create_output_map()
        stack.outputs  # evaluate now: an output that cannot be resolved fails the execution
        for name in [n for n, e in backend.exports.items() if e.exporting_stack_id == stack.stack_id]:
            backend.exports.pop(name)
        backend._validate_export_uniqueness(stack)
        for export in stack.exports:
            backend.exports[export.name] = export

    def execute_change_set(
        self: CloudFormationBackend,
        change_set_name: str,
        stack_name: str | None = None,
        client_request_token: str | None = None,
    ) -> None:
        change_set = find_change_set(self, change_set_name)
        if change_set.execution_status != "AVAILABLE":
            raise InvalidChangeSetStatusError(
                f"ChangeSet [{change_set.change_set_id}] cannot be executed in its current "
                f"execution status of [{change_set.execution_status}]"
            )
        stack = self.stacks.get(change_set.stack_id)
        if stack is None:
            raise ValidationError(stack_name or change_set.stack_name)
        token = client_request_token
        creating = change_set.change_set_type == "CREATE"
        op = "CREATE" if creating else "UPDATE"
        old_template = stack.template
        old_parameters = stack.parameters

        add_event(stack, f"{op}_IN_PROGRESS", "User Initiated", token)
        set_status(stack, f"{op}_IN_PROGRESS")
        change_set.execution_status = "EXECUTE_IN_PROGRESS"
        try:
            change_set.apply()
            stack.template = change_set.template
            stack._parse_template()
            stack.description = stack.template_dict.get("Description")
            if change_set.parameters:
                stack.parameters = change_set.parameters
            refresh_outputs_and_exports(self, stack)
        except Exception as exc:  # any resource error: roll back like CloudFormation does
            reason = _error_text(exc)
            logical_id, rtype, failed_status = getattr(
                exc, _FAILED_RESOURCE_ATTR, (None, "AWS::CloudFormation::Stack", f"{op}_FAILED")
            )
            if logical_id is not None:
                add_event(stack, failed_status, reason, token, logical_id, rtype)
                verb = "create" if failed_status == "CREATE_FAILED" else "update"
                summary = f"The following resource(s) failed to {verb}: [{logical_id}]. "
            else:
                add_event(stack, f"{op}_FAILED", reason, token)
                summary = f"{reason}. "
            change_set.execution_status = "EXECUTE_FAILED"
            rollback = "ROLLBACK" if creating else "UPDATE_ROLLBACK"
            in_progress_reason = summary + ("Rollback requested by user." if creating else "")
            add_event(stack, f"{rollback}_IN_PROGRESS", in_progress_reason.strip(), token)
            set_status(stack, f"{rollback}_IN_PROGRESS", in_progress_reason.strip())
            try:
                if creating:
                    stack.resource_map.delete()
                    stack.output_map = stack._create_output_map()
                else:
                    stack.template = old_template
                    stack._parse_template()
                    stack.parameters = old_parameters
                    stack.resource_map.update(stack.template_dict, old_parameters)
                    refresh_outputs_and_exports(self, stack)
            except Exception as rollback_exc:
                rb_reason = _error_text(rollback_exc)
                add_event(stack, f"{rollback}_FAILED", rb_reason, token)
                set_status(stack, f"{rollback}_FAILED", rb_reason)
                return
            add_event(stack, f"{rollback}_COMPLETE", None, token)
            set_status(stack, f"{rollback}_COMPLETE", in_progress_reason.strip())
            return

        change_set.execution_status = "EXECUTE_COMPLETE"
        add_event(stack, f"{op}_COMPLETE", None, token)
        set_status(stack, f"{op}_COMPLETE")

    def execute_change_set_response(self: CloudFormationResponse) -> Any:
        self.cloudformation_backend.execute_change_set(
            stack_name=self._get_param("StackName"),
            change_set_name=self._get_param("ChangeSetName"),
            client_request_token=self._get_param("ClientRequestToken"),
        )
        return EmptyResult()

    CloudFormationBackend.execute_change_set = execute_change_set
    CloudFormationResponse.execute_change_set = execute_change_set_response
    # Stacks start without a reason attribute; give every stack one so DescribeStacks can show it.
    Stack.stack_status_reason = None


def patch_route_table_delete() -> None:
    """Give AWS::EC2::RouteTable and SubnetRouteTableAssociation a CloudFormation delete (bug 2).

    Stock moto has no CloudFormation delete for either, so DeleteStack of a stack with a route
    table leaves the table (and its subnet associations) behind, then fails deleting the VPC with
    DependencyViolation. Real CloudFormation deletes the association, then the route table
    (its routes go with it), then the VPC.
    """
    from moto.ec2.exceptions import InvalidAssociationIdError, InvalidRouteTableIdError
    from moto.ec2.models import ec2_backends
    from moto.ec2.models.route_tables import RouteTable
    from moto.ec2.models.subnets import SubnetRouteTableAssociation

    def route_table_delete(self: RouteTable, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        # Associations a template did not declare (or whose delete already ran) must not block.
        for association_id in list(self._associations):
            try:
                backend.disassociate_route_table(association_id)
            except InvalidAssociationIdError:
                pass
        try:
            backend.delete_route_table(self.id)
        except InvalidRouteTableIdError:
            pass  # already gone: deleting is idempotent, as in CloudFormation

    def association_delete(self: SubnetRouteTableAssociation, account_id: str, region_name: str) -> None:
        backend = ec2_backends[account_id][region_name]
        try:
            backend.disassociate_route_table(self.id)
        except InvalidAssociationIdError:
            pass

    RouteTable.delete = route_table_delete
    SubnetRouteTableAssociation.delete = association_delete


def patch_delete_stack_failure() -> None:
    """A DeleteStack that fails leaves the stack in DELETE_FAILED (second half of bug 2).

    Stock moto removes the stack record before deleting its resources, so when a resource
    delete raises, the stack vanishes from DescribeStacks while its resources leak, and the
    call answers 400. Real CloudFormation answers 200, keeps the stack, emits a DELETE_FAILED
    event with the reason and leaves the stack in DELETE_FAILED for a human to resolve. The
    DeleteStack ClientRequestToken is recorded on the stack's delete events.
    """
    from moto.cloudformation.models import CloudFormationBackend, Stack
    from moto.cloudformation.responses import CloudFormationResponse
    from moto.core.responses import EmptyResult

    def delete_stack(
        self: CloudFormationBackend, name_or_stack_id: str, client_request_token: str | None = None
    ) -> None:
        stack: Stack | None = self.stacks.get(name_or_stack_id)
        if stack is None:
            for candidate in self.stacks.values():
                if candidate.name == name_or_stack_id:
                    stack = candidate
                    break
        if stack is None:
            return  # real CloudFormation: deleting a stack that does not exist succeeds
        first_event = len(stack.events)
        try:
            stack.delete()
        except Exception as exc:
            reason = _error_text(exc)
            stack._add_stack_event("DELETE_FAILED", resource_status_reason=reason)
            stack.status = "DELETE_FAILED"
            stack.stack_status_reason = reason
            for event in stack.events[first_event:]:
                event.client_request_token = client_request_token
            return
        for event in stack.events[first_event:]:
            event.client_request_token = client_request_token
        self.stacks.pop(stack.stack_id, None)
        self.deleted_stacks[stack.stack_id] = stack
        for name in [n for n, e in self.exports.items() if e.exporting_stack_id == stack.stack_id]:
            self.exports.pop(name)

    def delete_stack_response(self: CloudFormationResponse) -> Any:
        self.cloudformation_backend.delete_stack(
            self._get_param("StackName"), self._get_param("ClientRequestToken")
        )
        return EmptyResult()

    CloudFormationBackend.delete_stack = delete_stack
    CloudFormationResponse.delete_stack = delete_stack_response


def _rewrite_kms_key_properties(rewrite: Callable[[dict[str, Any]], None]) -> None:
    """Wrap AWS::KMS::Key creation so `rewrite` can correct the template's Properties first."""
    from moto.kms.models import Key

    original = Key.create_from_cloudformation_json.__func__  # type: ignore[attr-defined]

    def create_from_cloudformation_json(
        cls: type, resource_name: str, cloudformation_json: Any, account_id: str, region_name: str, **kwargs: Any
    ) -> Any:
        cfn = dict(cloudformation_json)
        props = dict(cfn.get("Properties") or {})
        rewrite(props)
        cfn["Properties"] = props
        return original(cls, resource_name, cfn, account_id, region_name, **kwargs)

    Key.create_from_cloudformation_json = classmethod(create_from_cloudformation_json)  # type: ignore[assignment]


def patch_kms_key_policy() -> None:
    """AWS::KMS::Key keeps its KeyPolicy as a JSON string, as KMS does (stock bug 3).

    A CloudFormation template gives KeyPolicy as a JSON object; stock moto stores that dict as
    the key's policy, after which DescribeKey (and GetKeyPolicy) answer 500. KMS itself only
    ever holds a policy document string. This serialises an object policy to JSON before the key
    is created, and lets KeyPolicy be omitted (real CloudFormation then applies the default key
    policy; stock moto raises KeyError).
    """

    def rewrite(props: dict[str, Any]) -> None:
        policy = props.get("KeyPolicy")
        if isinstance(policy, (dict, list)):
            props["KeyPolicy"] = json.dumps(policy)
        elif policy is None:
            props["KeyPolicy"] = None

    _rewrite_kms_key_properties(rewrite)


def patch_kms_key_tags() -> None:
    """AWS::KMS::Key accepts CloudFormation's `Tags: [{Key, Value}]` (a bug the facts file misses).

    CloudFormation spells every resource's tags `{"Key": .., "Value": ..}`; the KMS API spells
    them `{"TagKey": .., "TagValue": ..}`. Stock moto hands the template's list straight to the KMS
    backend, which looks up `TagKey` and fails the whole stack with `KeyError: 'TagKey'`, so any
    tagged key (every stackgate blueprint tags every resource) rolls back. Real CloudFormation
    creates the key with its tags. This translates the spelling before the key is created.
    """

    def rewrite(props: dict[str, Any]) -> None:
        tags = props.get("Tags")
        if isinstance(tags, list):
            props["Tags"] = [
                {"TagKey": t.get("Key", t.get("TagKey")), "TagValue": t.get("Value", t.get("TagValue"))}
                for t in tags
                if isinstance(t, dict)
            ]

    _rewrite_kms_key_properties(rewrite)


def patch_template_format_errors() -> None:
    """A malformed TemplateBody gets `ValidationError: Template format error` (stock: HTTP 500).

    Stock moto answers CreateChangeSet with a 500 HTML page when the TemplateBody is not JSON or
    YAML, is not an object, has no Resources, or has a resource without a Type: the SDK sees an
    unparseable response and retries it as a transient failure. Real CloudFormation answers 400
    `ValidationError` with a "Template format error: ..." message, which stackgate must classify
    as a rejected template, not a retryable one. This validates the body's structure before
    stock moto sees it (CreateChangeSet and CreateStack).
    """
    from moto.cloudformation.exceptions import ValidationError
    from moto.cloudformation.models import Stack
    from moto.cloudformation.responses import CloudFormationResponse

    def check(body: Any) -> None:
        if not body:
            return  # TemplateURL / UsePreviousTemplate: stock handling
        try:
            template = Stack.parse_template(body)
        except Exception:
            raise ValidationError(message="Template format error: JSON not well-formed.") from None
        if not isinstance(template, dict):
            raise ValidationError(message="Template format error: template must be a JSON or YAML object")
        resources = template.get("Resources")
        if not isinstance(resources, dict) or not resources:
            raise ValidationError(message="Template format error: At least one Resources member must be defined.")
        bad = sorted(
            name
            for name, res in resources.items()
            if not isinstance(res, dict) or not isinstance(res.get("Type"), str) or "::" not in res["Type"]
        )
        if bad:
            raise ValidationError(
                message=f"Template format error: [/Resources/{bad[0]}] Every Resources object must contain a Type member."
            )

    for action in ("create_change_set", "create_stack"):
        original = getattr(CloudFormationResponse, action)

        def validated(self: CloudFormationResponse, _original: Callable[..., Any] = original) -> Any:
            check(self._get_param("TemplateBody"))
            return _original(self)

        setattr(CloudFormationResponse, action, validated)


def patch_model_data_filter() -> None:
    """`GET /moto-api/data.json?service=sts&model=AssumedRole` returns only that slice.

    Not a correctness bug but a speed one: the stock endpoint serialises every tracked model of
    every service (default VPCs, subnets, … of every account and region touched), megabytes that
    grow with every test, seconds per call. The tests only read `sts` → `AssumedRole`. Without
    the query parameters the answer is the stock one, so a test asking with them also works
    against a stock server.
    """
    from urllib.parse import parse_qs, urlparse

    from moto.moto_api._internal.responses import MotoAPIResponse

    original = MotoAPIResponse.model_data

    def model_data(self: Any, request: Any, full_url: str, headers: Any) -> Any:
        query = parse_qs(urlparse(full_url).query)
        services, models = set(query.get("service", [])), set(query.get("model", []))
        if not services and not models:
            return original(self, request, full_url, headers)
        from moto.core.model_instances import model_data as tracked

        results: dict[str, dict[str, list[Any]]] = {}
        for service in sorted(tracked):
            if services and service not in services:
                continue
            results[service] = {}
            for name in sorted(tracked[service]):
                if models and name not in models:
                    continue
                rows = []
                for instance in tracked[service][name].instances_tracked:  # type: ignore[attr-defined]
                    row = {}
                    for attr in dir(instance):
                        if attr.startswith("_"):
                            continue
                        try:
                            value = getattr(instance, attr)
                            json.dumps(value)
                        except (TypeError, AttributeError, ValueError):
                            continue
                        row[attr] = value
                    rows.append(row)
                results[service][name] = rows
        return 200, {"Content-Type": "application/javascript"}, json.dumps(results)

    MotoAPIResponse.model_data = model_data


# Requests served through the serialising wrapper (proves patch_serialize_requests is in effect).
_SERVED = [0]


def patch_serialize_requests() -> None:
    """Serve one request at a time (moto's backends are not thread-safe).

    ThreadedMotoServer handles each request on its own thread, and moto's backends mutate plain
    dicts without locks: parallel tests (cargo runs them concurrently) can hit "dictionary changed
    size during iteration" and get a 500 that real AWS would never send. AWS itself is
    linearizable per resource. This wraps the WSGI application the server builds in one lock.
    """
    from moto.moto_server import threaded_moto_server

    lock = threading.Lock()
    original = threaded_moto_server.DomainDispatcherApplication

    def serialized(*args: Any, **kwargs: Any) -> Callable[..., Any]:
        app = original(*args, **kwargs)

        def wsgi(environ: Any, start_response: Any) -> list[bytes]:
            with lock:
                _SERVED[0] += 1
                return list(app(environ, start_response))

        return wsgi

    threaded_moto_server.DomainDispatcherApplication = serialized


# Refusals are logged to stderr once the self-check (which provokes some on purpose) is over.
_LOG_REFUSALS = [False]

# `arn:<partition>:iam::<account>:role/<optional/path/>name`
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role(/(?:[\x21-\x7e]+/)?)([\w+=,.@-]{1,64})$")


def _trust_statements(document: Any) -> list[dict[str, Any]]:
    """The statements of a trust policy (a JSON string, as IAM stores it, or already a dict)."""
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return []
    statements = document.get("Statement", []) if isinstance(document, dict) else []
    if isinstance(statements, dict):
        statements = [statements]
    return [s for s in statements if isinstance(s, dict)]


def _allows_assume_role(statement: dict[str, Any]) -> bool:
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return statement.get("Effect") == "Allow" and any(
        isinstance(a, str) and a.lower() in ("sts:assumerole", "sts:*", "*") for a in actions
    )


def _external_id_condition(statement: dict[str, Any]) -> list[str] | None:
    """The ExternalIds a statement's `StringEquals` `sts:ExternalId` condition allows, or None."""
    condition = statement.get("Condition")
    string_equals = condition.get("StringEquals") if isinstance(condition, dict) else None
    if not isinstance(string_equals, dict):
        return None
    for key, value in string_equals.items():
        if key.lower() == "sts:externalid":  # condition keys are case-insensitive in IAM
            return [value] if isinstance(value, str) else [v for v in value if isinstance(v, str)]
    return None


def assume_role_refusal(role_arn: str | None, external_id: str | None) -> str | None:
    """Why AssumeRole of `role_arn` with `external_id` is refused, or None when it is allowed."""
    from moto.iam.models import iam_backends

    match = _ROLE_ARN.match(role_arn or "")
    if match is None:
        return "not a role ARN"
    partition, account, path, name = match.groups()
    role = next((r for r in iam_backends[account][partition].get_roles() if r.name == name), None)
    if role is None or (path != "/" and role.path != path):
        return f"role {name} does not exist in account {account}"
    allowing = [s for s in _trust_statements(role.assume_role_policy_document) if _allows_assume_role(s)]
    if not allowing:
        return "the role's trust policy allows no sts:AssumeRole"
    for statement in allowing:
        expected = _external_id_condition(statement)
        if expected is None or (external_id is not None and external_id in expected):
            return None
    return "missing ExternalId" if external_id is None else "ExternalId does not match the trust policy"


def patch_assume_role_enforces_roles() -> None:
    """AssumeRole needs an existing role and the ExternalId its trust policy demands (stock: anything goes).

    Stock moto hands out credentials for any role ARN in any account, whether or not the role
    exists, with any ExternalId or none, so a portal that assumes the wrong role, or sends the
    wrong ExternalId, is never caught. Real STS refuses with HTTP 403 `AccessDenied` (`User:
    <caller> is not authorized to perform: sts:AssumeRole on resource: <role ARN>`, the same
    answer whatever the reason, so it does not reveal whether the role exists) unless the role
    exists in the ARN's account and its trust policy allows the caller; a `StringEquals`
    `sts:ExternalId` condition (a string or a list) must be met by the request's ExternalId.

    This refuses AssumeRole, before stock moto records anything, unless a role of that name (and
    path, when the ARN has one) exists in that account's IAM backend with an Allow statement for
    sts:AssumeRole whose `StringEquals` `sts:ExternalId` condition, if any, contains the request's
    ExternalId. The caller's own account gets no special treatment. Principals and other condition
    keys are not evaluated: every caller counts as trusted. `--roles` creates the roles the tests
    need; without it every AssumeRole is refused.
    """
    from moto.core.exceptions import ServiceException
    from moto.core.responses import ActionResult
    from moto.sts.responses import TokenResponse

    class AccessDenied(ServiceException):
        code = "AccessDenied"

    original = TokenResponse.assume_role

    def assume_role(self: TokenResponse) -> Any:
        role_arn = self._get_param("RoleArn")
        refusal = assume_role_refusal(role_arn, self._get_param("ExternalId"))
        if refusal is None:
            return original(self)
        _, caller, _ = self.backend.get_caller_identity(self.get_access_key(), self.region)
        error = AccessDenied(f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}")
        with warnings.catch_warnings():  # moto warns that STS's model declares no AccessDenied
            warnings.simplefilter("ignore")
            _, headers, body = self.serialized(ActionResult(error))
        if _LOG_REFUSALS[0]:  # the reason real STS keeps to itself, for whoever debugs a test
            print(f"moto_launcher: AssumeRole {role_arn} refused: {refusal}", file=sys.stderr, flush=True)
        headers["status"] = 403  # STS's model declares no AccessDenied shape: moto would say 400
        return 403, headers, body

    TokenResponse.assume_role = assume_role


def create_role(role_arn: str, external_id: str | None, trusted_account: str = "123456789012") -> None:
    """Create `role_arn` in its account, trusting `trusted_account`, requiring `external_id` if given.

    Goes straight to the account's IAM backend: putting a role into another account through the
    API would need an AssumeRole into that account first, which the patch above refuses.
    """
    from moto.iam.models import iam_backends

    match = _ROLE_ARN.match(role_arn)
    if match is None:
        raise ValueError(f"not a role ARN: {role_arn!r}")
    partition, account, path, name = match.groups()
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:{partition}:iam::{trusted_account}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    iam_backends[account][partition].create_role(
        role_name=name,
        assume_role_policy_document=json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
        path=path,
        permissions_boundary=None,
        description="created by moto_launcher",
        tags=[],
        max_session_duration=None,
    )


def load_roles(path: str) -> list[tuple[str, str | None]]:
    """Read and validate a `--roles` file: `{"roles": [{"arn": ..., "external_id": null | str}]}`."""
    with open(path) as fh:
        data = json.load(fh)
    entries = data.get("roles") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ValueError('expected {"roles": [...]}')
    roles: list[tuple[str, str | None]] = []
    for entry in entries:
        arn = entry.get("arn") if isinstance(entry, dict) else None
        external_id = entry.get("external_id") if isinstance(entry, dict) else None
        if not isinstance(arn, str) or _ROLE_ARN.match(arn) is None:
            raise ValueError(f"not a role ARN: {entry!r}")
        if external_id is not None and not (isinstance(external_id, str) and 2 <= len(external_id) <= 1224):
            raise ValueError(f"external_id must be null or a 2-1224 character string: {entry!r}")
        if arn in {a for a, _ in roles}:
            raise ValueError(f"duplicate role: {arn}")
        roles.append((arn, external_id))
    return roles


PATCHES: list[Callable[[], None]] = [
    patch_serialize_requests,
    patch_assume_role_enforces_roles,
    patch_resource_failure_attribution,
    patch_execute_change_set,
    patch_route_table_delete,
    patch_delete_stack_failure,
    patch_kms_key_policy,
    patch_kms_key_tags,
    patch_template_format_errors,
    patch_model_data_filter,
]

# --------------------------------------------------------------------------------------------
# Start-up proof: each patch is exercised against the running server through the real API.
# --------------------------------------------------------------------------------------------


class SelfCheckFailed(Exception):
    pass


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise SelfCheckFailed(what)


VPC_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Description": "launcher self-check: VPC, subnet, route table",
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.20.0.0/16"}},
        "Subnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.20.1.0/24", "AvailabilityZone": "us-east-1a"},
        },
        "Igw": {"Type": "AWS::EC2::InternetGateway", "Properties": {}},
        "IgwAttach": {
            "Type": "AWS::EC2::VPCGatewayAttachment",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "InternetGatewayId": {"Ref": "Igw"}},
        },
        "RouteTable": {"Type": "AWS::EC2::RouteTable", "Properties": {"VpcId": {"Ref": "Vpc"}}},
        "DefaultRoute": {
            "Type": "AWS::EC2::Route",
            "DependsOn": "IgwAttach",
            "Properties": {
                "RouteTableId": {"Ref": "RouteTable"},
                "DestinationCidrBlock": "0.0.0.0/0",
                "GatewayId": {"Ref": "Igw"},
            },
        },
        "Assoc": {
            "Type": "AWS::EC2::SubnetRouteTableAssociation",
            "Properties": {"SubnetId": {"Ref": "Subnet"}, "RouteTableId": {"Ref": "RouteTable"}},
        },
    },
    "Outputs": {
        "VpcId": {"Value": {"Ref": "Vpc"}, "Description": "the VPC", "Export": {"Name": "selfcheck-vpc-id"}},
        "RouteTableId": {"Value": {"Ref": "RouteTable"}},
    },
}

KMS_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Key": {
            "Type": "AWS::KMS::Key",
            "Properties": {
                "EnableKeyRotation": True,
                "Tags": [{"Key": "Name", "Value": "selfcheck"}],
                "KeyPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "root",
                            "Effect": "Allow",
                            "Principal": {"AWS": "arn:aws:iam::999999999999:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        }
                    ],
                },
            },
        }
    },
    "Outputs": {"KeyId": {"Value": {"Ref": "Key"}}},
}

# The subnet's CIDR lies outside the VPC's: CreateChangeSet accepts it, execution fails on the
# subnet after the VPC was created, so the rollback has something to delete.
FAILING_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": "10.30.0.0/16"}},
        "BadSubnet": {
            "Type": "AWS::EC2::Subnet",
            "Properties": {"VpcId": {"Ref": "Vpc"}, "CidrBlock": "10.99.0.0/24", "AvailabilityZone": "us-east-1a"},
        },
    },
}


def _run_change_set(cfn: Any, stack: str, template: dict[str, Any], kind: str) -> str:
    name = f"cs-{uuid.uuid4().hex[:12]}"
    arn = cfn.create_change_set(
        StackName=stack, ChangeSetName=name, TemplateBody=json.dumps(template), ChangeSetType=kind
    )["Id"]
    status = cfn.describe_change_set(ChangeSetName=arn)["Status"]
    _require(status == "CREATE_COMPLETE", f"change set for {stack} is {status}, not CREATE_COMPLETE")
    token = f"selfcheck-{uuid.uuid4().hex}"
    resp = cfn.execute_change_set(ChangeSetName=arn, ClientRequestToken=token)
    _require(resp["ResponseMetadata"]["HTTPStatusCode"] == 200, "ExecuteChangeSet did not answer 200")
    return token


def self_check(endpoint: str) -> None:
    """Prove every patch through the API; raise SelfCheckFailed naming the one that does not hold."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    cfg = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)
    base = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="selfcheck",
        aws_secret_access_key="selfcheck",
        config=cfg,
    )
    sts = boto3.client("sts", **base)

    # patch_assume_role_enforces_roles: no role, no credentials; an ExternalId condition holds.
    def refused(role_arn: str, external_id: str | None, what: str) -> None:
        kwargs = {"RoleArn": role_arn, "RoleSessionName": "launcher-selfcheck-denied"}
        if external_id is not None:
            kwargs["ExternalId"] = external_id
        try:
            sts.assume_role(**kwargs)
        except ClientError as exc:
            err, status = exc.response["Error"], exc.response["ResponseMetadata"]["HTTPStatusCode"]
            _require(
                status == 403 and err.get("Code") == "AccessDenied" and err.get("Type") == "Sender"
                and f"sts:AssumeRole on resource: {role_arn}" in err.get("Message", ""),
                f"patch_assume_role_enforces_roles: {what} gave HTTP {status} {err}",
            )
            return
        raise SelfCheckFailed(f"patch_assume_role_enforces_roles: {what} was allowed")

    def allowed(role_arn: str, external_id: str | None, what: str) -> dict[str, Any]:
        kwargs = {"RoleArn": role_arn, "RoleSessionName": "launcher-selfcheck"}
        if external_id is not None:
            kwargs["ExternalId"] = external_id
        try:
            return sts.assume_role(**kwargs)["Credentials"]
        except ClientError as exc:
            raise SelfCheckFailed(f"patch_assume_role_enforces_roles: {what} was refused: {exc}") from None

    selfcheck_role = "arn:aws:iam::999999999999:role/launcher-selfcheck"
    refused(selfcheck_role, None, "AssumeRole of a role that does not exist (other account)")
    refused("arn:aws:iam::123456789012:role/launcher-selfcheck-own", "x1",
            "AssumeRole of a role that does not exist (caller's own account)")
    # A role of that name in another account does not count.
    create_role("arn:aws:iam::999999999998:role/launcher-selfcheck", None)
    refused(selfcheck_role, "any-id", "AssumeRole of a role that exists only in another account")
    # A role without an ExternalId condition takes any ExternalId, or none.
    create_role(selfcheck_role, None)
    allowed(selfcheck_role, f"any-{uuid.uuid4()}", "a role without ExternalId condition, any ExternalId")
    creds = allowed(selfcheck_role, None, "a role without ExternalId condition, no ExternalId")
    # An ExternalId condition as a string (made like --roles does) and as a list (through the IAM
    # API, in the caller's own account).
    pinned = "arn:aws:iam::999999999999:role/launcher-selfcheck-pinned"
    create_role(pinned, "selfcheck-expected-id")
    boto3.client("iam", **base).create_role(
        RoleName="launcher-selfcheck-own",
        AssumeRolePolicyDocument=json.dumps({
            "Version": "2012-10-17",
            "Statement": [{
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
                "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"sts:ExternalId": ["selfcheck-a", "selfcheck-b"]}},
            }],
        }),
    )
    own = "arn:aws:iam::123456789012:role/launcher-selfcheck-own"
    for role_arn, right in [(pinned, "selfcheck-expected-id"), (own, "selfcheck-b")]:
        refused(role_arn, "selfcheck-wrong-id", f"{role_arn} with a wrong ExternalId")
        refused(role_arn, None, f"{role_arn} without ExternalId")
        allowed(role_arn, right, f"{role_arn} with the right ExternalId")
    session = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
        config=cfg,
    )
    # The filtered data.json shows this very AssumeRole, and nothing of other services.
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json?service=sts&model=AssumedRole", timeout=10) as resp:
        data = json.loads(resp.read())
    _require(
        list(data) == ["sts"]
        and any(r.get("session_name") == "launcher-selfcheck" and r.get("account_id") == "999999999999"
                for r in data["sts"].get("AssumedRole", [])),
        f"patch_model_data_filter: filtered data.json is {str(data)[:300]}",
    )
    _require(
        not any(r.get("session_name") == "launcher-selfcheck-denied" for r in data["sts"].get("AssumedRole", [])),
        "patch_assume_role_enforces_roles: a refused AssumeRole was recorded as an assumed role",
    )
    cfn = boto3.client("cloudformation", **session)
    ec2 = boto3.client("ec2", **session)
    kms = boto3.client("kms", **session)

    # Bug 1: outputs and exports after ExecuteChangeSet.  Bug 2: delete with a route table.
    stack = f"selfcheck-vpc-{uuid.uuid4().hex[:8]}"
    _run_change_set(cfn, stack, VPC_TEMPLATE, "CREATE")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    _require(described["StackStatus"] == "CREATE_COMPLETE", f"VPC stack is {described['StackStatus']}")
    outputs = {o["OutputKey"]: o for o in described.get("Outputs", [])}
    _require(
        set(outputs) == {"VpcId", "RouteTableId"},
        f"patch_execute_change_set (bug 1): outputs after ExecuteChangeSet are {sorted(outputs)}",
    )
    vpc_id = outputs["VpcId"]["OutputValue"]
    rt_id = outputs["RouteTableId"]["OutputValue"]
    _require(vpc_id.startswith("vpc-") and outputs["VpcId"].get("Description") == "the VPC", "bug 1: VpcId output")
    exports = {e["Name"]: e["Value"] for e in cfn.list_exports().get("Exports", [])}
    _require(exports.get("selfcheck-vpc-id") == vpc_id, f"bug 1: exports after ExecuteChangeSet are {exports}")
    _require(len(ec2.describe_route_tables(RouteTableIds=[rt_id])["RouteTables"]) == 1, "route table not created")

    cfn.delete_stack(StackName=stack, ClientRequestToken="selfcheck-delete")
    remaining = [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == stack]
    _require(not remaining, f"patch_route_table_delete (bug 2): stack still present after delete: {remaining}")
    _require(
        not ec2.describe_vpcs(Filters=[{"Name": "vpc-id", "Values": [vpc_id]}])["Vpcs"],
        "patch_route_table_delete (bug 2): the VPC leaked after DeleteStack",
    )
    _require(
        not ec2.describe_route_tables(Filters=[{"Name": "route-table-id", "Values": [rt_id]}])["RouteTables"],
        "patch_route_table_delete (bug 2): the route table leaked after DeleteStack",
    )
    _require("selfcheck-vpc-id" not in {e["Name"] for e in cfn.list_exports().get("Exports", [])}, "export leaked")
    stack_id = described["StackId"]
    deleted = cfn.describe_stacks(StackName=stack_id)["Stacks"][0]
    _require(deleted["StackStatus"] == "DELETE_COMPLETE", f"deleted stack is {deleted['StackStatus']}")

    # Bug 2, second half: a delete that fails keeps the stack, in DELETE_FAILED, with the reason.
    stack = f"selfcheck-delfail-{uuid.uuid4().hex[:8]}"
    _run_change_set(cfn, stack, {"Resources": {"Vpc": VPC_TEMPLATE["Resources"]["Vpc"]}}, "CREATE")
    vpc_id = cfn.describe_stack_resources(StackName=stack)["StackResources"][0]["PhysicalResourceId"]
    # A subnet created outside the stack blocks the VPC's deletion, in AWS as in moto.
    stray = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.20.9.0/24")["Subnet"]["SubnetId"]
    cfn.delete_stack(StackName=stack)
    remaining = [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == stack]
    _require(
        len(remaining) == 1 and remaining[0]["StackStatus"] == "DELETE_FAILED",
        f"patch_delete_stack_failure: a failed delete left {remaining}, not one DELETE_FAILED stack",
    )
    newest = cfn.describe_stack_events(StackName=stack)["StackEvents"][0]
    _require(
        newest["ResourceStatus"] == "DELETE_FAILED" and "DependencyViolation" in newest.get("ResourceStatusReason", ""),
        f"patch_delete_stack_failure: newest event is {newest}",
    )
    ec2.delete_subnet(SubnetId=stray)
    cfn.delete_stack(StackName=stack)
    _require(
        not [s for s in cfn.describe_stacks()["Stacks"] if s["StackName"] == stack],
        "patch_delete_stack_failure: retried delete did not remove the stack",
    )

    # Bug 3: a CloudFormation-created KMS key with a KeyPolicy.
    stack = f"selfcheck-kms-{uuid.uuid4().hex[:8]}"
    _run_change_set(cfn, stack, KMS_TEMPLATE, "CREATE")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    _require(described["StackStatus"] == "CREATE_COMPLETE", f"patch_kms_key_policy or patch_kms_key_tags: the KMS stack is {described['StackStatus']}")
    key_id = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}.get("KeyId", "")
    try:
        meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        policy = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    except (ClientError, TypeError, ValueError) as exc:
        raise SelfCheckFailed(f"patch_kms_key_policy (bug 3): DescribeKey/GetKeyPolicy failed: {exc}") from exc
    _require(meta["KeyId"] == key_id, "bug 3: DescribeKey returned another key")
    _require(policy["Statement"][0]["Sid"] == "root", f"bug 3: key policy round trip gave {policy}")
    tags = kms.list_resource_tags(KeyId=key_id).get("Tags", [])
    _require(
        {"TagKey": "Name", "TagValue": "selfcheck"} in tags,
        f"patch_kms_key_tags: the key's CloudFormation tags were not applied ({tags})",
    )
    cfn.delete_stack(StackName=stack)

    # Bug 6: a failing create rolls back; ExecuteChangeSet answered 200 (checked in _run_change_set).
    stack = f"selfcheck-fail-{uuid.uuid4().hex[:8]}"
    vpcs_before = {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]}
    token = _run_change_set(cfn, stack, FAILING_TEMPLATE, "CREATE")
    described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    _require(
        described["StackStatus"] == "ROLLBACK_COMPLETE",
        f"patch_execute_change_set (bug 6): failed create ends {described['StackStatus']}, not ROLLBACK_COMPLETE",
    )
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    failed = [e for e in events if e["ResourceStatus"].endswith("_FAILED")]
    _require(
        bool(failed)
        and failed[0]["LogicalResourceId"] == "BadSubnet"
        and "10.99.0.0/24" in failed[0].get("ResourceStatusReason", ""),
        f"patch_execute_change_set (bug 6): no CREATE_FAILED event with the reason: {failed}",
    )
    _require(events[0]["ResourceStatus"] == "ROLLBACK_COMPLETE", "bug 6: newest event is not ROLLBACK_COMPLETE")
    _require(all(e.get("ClientRequestToken") == token for e in events[:4]), "bug 6: events lack the token")
    _require(
        {v["VpcId"] for v in ec2.describe_vpcs()["Vpcs"]} == vpcs_before,
        "patch_execute_change_set (bug 6): the rollback leaked the VPC",
    )

    # Bug 6, update flavour: an update that fails rolls back to the previous template.
    stack = f"selfcheck-upd-{uuid.uuid4().hex[:8]}"
    base_template = {"Resources": {"Vpc": FAILING_TEMPLATE["Resources"]["Vpc"]}, "Outputs": {"V": {"Value": {"Ref": "Vpc"}}}}
    _run_change_set(cfn, stack, base_template, "CREATE")
    before = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    _require(before["StackStatus"] == "CREATE_COMPLETE", f"update base stack is {before['StackStatus']}")
    bad_update = {"Resources": FAILING_TEMPLATE["Resources"], "Outputs": base_template["Outputs"]}
    _run_change_set(cfn, stack, bad_update, "UPDATE")
    after = cfn.describe_stacks(StackName=stack)["Stacks"][0]
    _require(
        after["StackStatus"] == "UPDATE_ROLLBACK_COMPLETE",
        f"patch_execute_change_set (bug 6): failed update ends {after['StackStatus']}, not UPDATE_ROLLBACK_COMPLETE",
    )
    _require(after.get("Outputs") == before.get("Outputs"), "bug 6: outputs changed by a rolled-back update")
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    _require(
        any(e["ResourceStatus"] == "CREATE_FAILED" and e["LogicalResourceId"] == "BadSubnet" for e in events),
        "bug 6: failed update has no CREATE_FAILED event for the new resource",
    )
    # And an executed change set cannot be executed again.
    arn = cfn.list_change_sets(StackName=stack)["Summaries"][-1]["ChangeSetId"]
    try:
        cfn.execute_change_set(ChangeSetName=arn)
        raise SelfCheckFailed("patch_execute_change_set: a change set was executed twice")
    except ClientError as exc:
        _require(exc.response["Error"]["Code"] == "InvalidChangeSetStatus", f"re-execute gave {exc}")
    cfn.delete_stack(StackName=stack)

    # Malformed templates are a 400 ValidationError, not a 500.
    for body in ["{ not json", json.dumps({"Description": "no resources"}), json.dumps({"Resources": {"X": {}}})]:
        try:
            cfn.create_change_set(StackName=f"selfcheck-bad-{uuid.uuid4().hex[:8]}", ChangeSetName=f"cs-{uuid.uuid4().hex[:12]}",
                                  TemplateBody=body, ChangeSetType="CREATE")
            raise SelfCheckFailed(f"patch_template_format_errors: template {body!r} was accepted")
        except ClientError as exc:
            err = exc.response["Error"]
            _require(
                err.get("Code") == "ValidationError" and "Template format error" in err.get("Message", ""),
                f"patch_template_format_errors: template {body!r} gave {err}",
            )
        except SelfCheckFailed:
            raise
        except Exception as exc:
            raise SelfCheckFailed(f"patch_template_format_errors: template {body!r} gave {exc!r}") from None


# --------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick a free one)")
    parser.add_argument("--port-file", help="write the bound port here once ready")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    parser.add_argument(
        "--roles",
        metavar="FILE",
        help='JSON {"roles": [{"arn": "arn:aws:iam::ACCOUNT:role/NAME", "external_id": null | "ID"}]}: '
        "roles to create (trusting 123456789012, with an sts:ExternalId condition when external_id is "
        "a string) once the self-check is done; without it every AssumeRole is refused",
    )
    parser.add_argument(
        "--without-patch",
        action="append",
        default=[],
        metavar="NAME",
        help="leave a patch out, to see the self-check catch the stock bug (the launcher then refuses to start)",
    )
    args = parser.parse_args()
    unknown = set(args.without_patch) - {p.__name__ for p in PATCHES}
    if unknown:
        parser.error(f"unknown patch(es): {sorted(unknown)}")
    roles: list[tuple[str, str | None]] = []
    if args.roles:
        try:
            roles = load_roles(args.roles)
        except (OSError, ValueError) as exc:
            parser.error(f"--roles {args.roles}: {exc}")

    if os.environ.get("MOTO_ACCOUNT_ID"):
        print("moto_launcher: refusing to start: MOTO_ACCOUNT_ID is set; it forces every request "
              "into one account and breaks cross-account tests", file=sys.stderr)
        return 2

    import moto

    if moto.__version__ != MOTO_VERSION:
        print(f"moto_launcher: warning: patches were written for moto {MOTO_VERSION}, found "
              f"{moto.__version__}; the self-check decides", file=sys.stderr)

    if not args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto warns when a rollback finds a resource that was never created: expected, not news.
    warnings.filterwarnings("ignore", category=UserWarning)

    started = time.monotonic()
    for patch in PATCHES:
        if patch.__name__ in args.without_patch:
            print(f"moto_launcher: leaving out {patch.__name__}", file=sys.stderr)
            continue
        try:
            patch()
        except Exception as exc:  # an internal moved: refuse to run with an unpatched emulator
            print(f"moto_launcher: cannot apply {patch.__name__}: {exc!r}", file=sys.stderr)
            return 3

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=args.port, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    try:
        self_check(endpoint)
    except Exception as exc:
        print(f"moto_launcher: self-check failed, refusing to start: {exc}", file=sys.stderr)
        server.stop()
        return 4
    if "patch_serialize_requests" not in args.without_patch and _SERVED[0] == 0:
        print("moto_launcher: self-check failed, refusing to start: patch_serialize_requests: "
              "requests did not go through the serialising wrapper", file=sys.stderr)
        server.stop()
        return 4
    # Leave no trace of the proof: tests start from an empty emulator.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10).read()
    # Nobody else knows the port yet: the backends are ours alone.
    _LOG_REFUSALS[0] = True
    for role_arn, external_id in roles:
        create_role(role_arn, external_id)

    if args.port_file:
        tmp = f"{args.port_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{port}\n")
        os.replace(tmp, args.port_file)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"moto_launcher: ready on {endpoint} (moto {moto.__version__}, {len(PATCHES)} patches proven "
          f"in {time.monotonic() - started:.1f}s, {len(roles)} roles)", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
