"""S3 Object Lock retention holds as in S3: no shortening or loosening compliance-mode retention.

Real S3 refuses, with 403 AccessDenied, to delete a locked object version, to shorten a
COMPLIANCE-mode retention or change its mode (for anyone, x-amz-bypass-governance-retention or
not), and to shorten, loosen or remove a GOVERNANCE-mode retention without that bypass; extending
is always allowed. A retention date must lie in the future and comes with a mode ("InvalidArgument"
otherwise), on PutObject and PutObjectRetention. GetObjectRetention answers the version's
Retention (NoSuchObjectLockConfiguration when it has none). Stock moto 5.2.5 refuses the delete
(and applies a bucket's default retention) but accepts any PutObjectRetention, so a COMPLIANCE
retention can be shortened to the past or turned into GOVERNANCE and the version then deleted; it
accepts a lock mode without a date and a date in the past; and answers GetObjectRetention with the
object's body (the SDK sees HTTP 500). This checks PutObjectRetention and the PutObject lock
headers against the version's current retention and implements GetObjectRetention.
"""

from __future__ import annotations

import datetime
from typing import Any

from ..proof import ProofContext, require, unique

NAME = "s3_object_lock"


def parse_date(value: str) -> datetime.datetime:
    text = value.strip().replace("Z", "+00:00")
    parsed = datetime.datetime.fromisoformat(text)
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.timezone.utc)).astimezone(datetime.timezone.utc)


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def check_new_retention(key: Any, mode: str | None, until: str | None, bypass: bool) -> None:
    """Raise as S3 does when `key`'s current retention forbids setting (mode, until)."""
    from moto.s3.exceptions import AccessDeniedByLock, InvalidArgumentError, MalformedXML

    if mode is not None and mode not in ("GOVERNANCE", "COMPLIANCE"):
        raise MalformedXML()
    if bool(mode) != bool(until):
        raise InvalidArgumentError("x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied", "", "")
    if until is not None and parse_date(until) <= _now():
        raise InvalidArgumentError("The retain until date must be in the future!", "RetainUntilDate", until)
    current_mode, current_until = getattr(key, "lock_mode", None), getattr(key, "lock_until", None)
    if key is None or not current_mode or not current_until or parse_date(current_until) <= _now():
        return  # no retention in force
    shorter = until is None or parse_date(until) < parse_date(current_until)
    if current_mode == "COMPLIANCE" and (mode != "COMPLIANCE" or shorter):
        raise AccessDeniedByLock()
    if current_mode == "GOVERNANCE" and (shorter or mode != current_mode) and mode != "COMPLIANCE" and not bypass:
        raise AccessDeniedByLock()


def apply() -> None:
    from moto.core.responses import ActionResult
    from moto.s3.exceptions import S3ClientError
    from moto.s3.responses import S3Response

    original_put_retention = S3Response.put_object_retention
    original_get = S3Response._key_response_get
    original_lock_details = S3Response._get_lock_details

    def put_object_retention(self: S3Response) -> Any:
        key = self.backend.get_object(self.bucket_name, self.parse_key_name(), version_id=self._get_param("versionId"))
        if self.backend.get_bucket(self.bucket_name).object_lock_enabled:
            mode, until = self._mode_until_from_body()
            bypass = self.headers.get("x-amz-bypass-governance-retention", "").lower() == "true"
            check_new_retention(key, mode, until, bypass)
        return original_put_retention(self)

    def get_lock_details(self: S3Response, bucket: Any, lock_enabled: bool) -> Any:
        mode, until = self.headers.get("x-amz-object-lock-mode"), self.headers.get("x-amz-object-lock-retain-until-date")
        if mode or until:
            check_new_retention(None, mode, until, False)
        return original_lock_details(self, bucket, lock_enabled)

    def key_response_get(self: S3Response, query: dict[str, Any], key_name: str) -> Any:
        if "retention" not in query:
            return original_get(self, query, key_name)
        if not self.backend.get_bucket(self.bucket_name).object_lock_enabled:
            raise S3ClientError("InvalidRequest", "Bucket is missing Object Lock Configuration")
        key, _ = self._get_key()
        if not key.lock_mode or not key.lock_until:
            error = S3ClientError("NoSuchObjectLockConfiguration", "The specified object does not have a ObjectLock configuration")
            _, headers, body = self.serialized(ActionResult(error))
            return 404, headers, body  # S3's model declares no such error shape: moto would say 400
        self.data["Action"] = "GetObjectRetention"
        status, headers, body = self.serialized(ActionResult({"Retention": {"Mode": key.lock_mode, "RetainUntilDate": parse_date(key.lock_until)}}))
        return status, headers, body

    S3Response.put_object_retention = put_object_retention
    S3Response._get_lock_details = get_lock_details
    S3Response._key_response_get = key_response_get


def prove(ctx: ProofContext) -> None:
    from botocore.exceptions import ClientError

    s3 = ctx.client("s3", "999999999999", "eu-west-2")
    bucket = unique("proof-lock")
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-west-2"}, ObjectLockEnabledForBucket=True)
    s3.put_object_lock_configuration(Bucket=bucket, ObjectLockConfiguration={
        "ObjectLockEnabled": "Enabled", "Rule": {"DefaultRetention": {"Mode": "COMPLIANCE", "Days": 1}}})
    later = lambda days: _now() + datetime.timedelta(days=days)  # noqa: E731

    def refused(code: str, what: str, call: Any, **kwargs: Any) -> None:
        try:
            call(Bucket=bucket, **kwargs)
        except ClientError as exc:
            require(exc.response["Error"]["Code"] == code, f"{what} gave {exc.response['Error']}, not {code}")
            return
        require(False, f"{what} was accepted")

    version = s3.put_object(Bucket=bucket, Key="audit.json", Body=b"{}", ObjectLockMode="COMPLIANCE",
                            ObjectLockRetainUntilDate=later(2))["VersionId"]
    kept = s3.get_object_retention(Bucket=bucket, Key="audit.json", VersionId=version)["Retention"]
    require(kept["Mode"] == "COMPLIANCE" and kept["RetainUntilDate"] > later(1.9), f"GetObjectRetention {kept}")
    refused("AccessDenied", "deleting a compliance-locked version", s3.delete_object, Key="audit.json", VersionId=version)
    for what, retention, bypass in [("shortening compliance retention", {"Mode": "COMPLIANCE", "RetainUntilDate": later(1)}, False),
                                    ("shortening it with the governance bypass", {"Mode": "COMPLIANCE", "RetainUntilDate": later(1)}, True),
                                    ("turning compliance into governance", {"Mode": "GOVERNANCE", "RetainUntilDate": later(3)}, True)]:
        refused("AccessDenied", what, s3.put_object_retention, Key="audit.json", VersionId=version, Retention=retention,
                BypassGovernanceRetention=bypass)
    s3.put_object_retention(Bucket=bucket, Key="audit.json", VersionId=version, Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(3)})
    refused("InvalidArgument", "a retention date in the past", s3.put_object_retention, Key="audit.json", VersionId=version,
            Retention={"Mode": "COMPLIANCE", "RetainUntilDate": later(-1)})
    refused("InvalidArgument", "a lock mode without a date", s3.put_object, Key="x.json", Body=b"{}", ObjectLockMode="COMPLIANCE")
    plain = s3.put_object(Bucket=bucket, Key="default.json", Body=b"{}")["VersionId"]
    require(s3.get_object_retention(Bucket=bucket, Key="default.json", VersionId=plain)["Retention"]["Mode"] == "COMPLIANCE",
            "the bucket's default retention was not applied")
    governed = s3.put_object(Bucket=bucket, Key="g.json", Body=b"{}", ObjectLockMode="GOVERNANCE", ObjectLockRetainUntilDate=later(2))["VersionId"]
    refused("AccessDenied", "shortening governance retention without the bypass", s3.put_object_retention, Key="g.json", VersionId=governed,
            Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(1)})
    s3.put_object_retention(Bucket=bucket, Key="g.json", VersionId=governed, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": later(1)},
                            BypassGovernanceRetention=True)
