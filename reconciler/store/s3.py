"""S3 through boto3: default credential chain, AWS_REGION, AWS_ENDPOINT_URL (boto3 reads it)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .. import aws
from ..layout import ObjectMeta
from ..logs import watch_aws
from . import ObjectInfo, PreconditionFailed, StoreError

DEFAULT_MULTIPART_THRESHOLD = 8 * 1024 * 1024
# Each request is tried at most 3 times (botocore "standard" mode: exponential backoff with jitter
# on throttling, 5xx and connection errors).
RETRIES = {"total_max_attempts": 3, "mode": "standard"}
T = TypeVar("T")
# Each of ObjectMeta's headers as boto3 names it, the same in a write's arguments and in a
# HEAD/GET's answer.
_S3_HEADERS = {"content_type": "ContentType", "cache_control": "CacheControl",
               "sse": "ServerSideEncryption"}


@lru_cache(maxsize=8)
def s3_client(workers: int = 8):
    """One client per pool size; boto3 clients are thread-safe and share their connection pool.

    The region is boto3's own chain (AWS_DEFAULT_REGION, the profile in ~/.aws/config, ...),
    with AWS_REGION first as the other AWS SDKs read it; none is forced, so a bucket in Seoul
    is addressed in Seoul without a redirect."""
    session = aws.session()
    return watch_aws(session.client(
        "s3",
        region_name=os.environ.get("AWS_REGION") or session.region_name,
        config=Config(
            max_pool_connections=max(10, workers * 2),
            retries=RETRIES,
            connect_timeout=10,
            read_timeout=60,
        ),
    ))


def _etag(raw: str) -> str:
    return raw.strip('"')


def _code(err: ClientError) -> str:
    return str(err.response.get("Error", {}).get("Code", ""))


def _missing(err: ClientError) -> bool:
    return _code(err) in {"404", "NoSuchKey", "NotFound"}


class S3Store:
    """A bucket. Errors surface as StoreError naming the key (never a URL or a credential)."""

    timestamp_resolution = 1.0  # S3 lists and returns LastModified in whole seconds

    def __init__(self, bucket: str, *, workers: int = 8, prefix: str = "") -> None:
        self.bucket = bucket
        # Every key lives under this folder of the bucket ("" or "some/folder/").
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.url = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.client = s3_client(workers)
        threshold = int(
            os.environ.get("RECONCILER_MULTIPART_THRESHOLD", DEFAULT_MULTIPART_THRESHOLD)
        )
        self.transfer = TransferConfig(
            multipart_threshold=threshold,
            multipart_chunksize=max(5 * 1024 * 1024, threshold),
            max_concurrency=4,
        )

    def _fail(self, op: str, key: str, err: Exception) -> StoreError:
        if isinstance(err, ClientError):
            if _code(err) in {"PreconditionFailed", "412", "ConditionalRequestConflict"}:
                return PreconditionFailed(f"{op} {self.url}/{key}: precondition failed")
            return StoreError(f"{op} {self.url}/{key}: {_code(err)}")
        return StoreError(f"{op} {self.url}/{key}: {type(err).__name__}: {err}")

    def list(self, prefix: str) -> dict[str, ObjectInfo]:
        out: dict[str, ObjectInfo] = {}
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix + prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    key = item["Key"][len(self.prefix):]
                    out[key] = ObjectInfo(
                        key=key,
                        size=item["Size"],
                        etag=_etag(item["ETag"]),
                        last_modified=item["LastModified"],
                    )
        except (ClientError, BotoCoreError) as err:
            raise self._fail("LIST", prefix, err) from err
        return out

    def _info(self, key: str, resp: dict) -> ObjectInfo:
        last: datetime = resp["LastModified"]
        return ObjectInfo(
            key=key,
            size=resp["ContentLength"],
            etag=_etag(resp["ETag"]),
            last_modified=last,
            meta=ObjectMeta(**{name: resp.get(_S3_HEADERS[name]) or ""
                               for name in ObjectMeta.header_fields()},
                            user_metadata=resp.get("Metadata") or {}),
        )

    def _read(self, verb: str, key: str, call: Callable[[], T]) -> T | None:
        """One read request: None when the object is not there, StoreError for anything else."""
        try:
            return call()
        except ClientError as err:
            if _missing(err):
                return None
            raise self._fail(verb, key, err) from err
        except BotoCoreError as err:
            raise self._fail(verb, key, err) from err

    def head(self, key: str) -> ObjectInfo | None:
        resp = self._read("HEAD", key, lambda: self.client.head_object(
            Bucket=self.bucket, Key=self.prefix + key))
        return None if resp is None else self._info(key, resp)

    def get(self, key: str) -> tuple[bytes, ObjectInfo] | None:
        def call() -> tuple[bytes, dict]:
            resp = self.client.get_object(Bucket=self.bucket, Key=self.prefix + key)
            return resp["Body"].read(), resp

        got = self._read("GET", key, call)
        return None if got is None else (got[0], self._info(key, got[1]))

    def download(self, key: str, dest: Path) -> ObjectInfo:
        info = self.head(key)
        if info is None:
            raise StoreError(f"GET {self.url}/{key}: no such object")
        try:
            self.client.download_file(self.bucket, self.prefix + key, str(dest),
                                      Config=self.transfer)
        except (ClientError, BotoCoreError) as err:
            raise self._fail("GET", key, err) from err
        return info

    @staticmethod
    def _headers(meta: ObjectMeta) -> dict:
        """A write's arguments for `meta`; an empty header is left out (absent reads as "")."""
        args: dict = {_S3_HEADERS[name]: getattr(meta, name)
                      for name in ObjectMeta.header_fields() if getattr(meta, name)}
        return {**args, "Metadata": dict(meta.user_metadata)}

    def put_file(
        self, key: str, path: Path, meta: ObjectMeta, *,
        on_bytes: Callable[[int], None] | None = None,
    ) -> str:
        try:
            size = path.stat().st_size
            if size < self.transfer.multipart_threshold:
                # One PutObject streamed from the file: s3transfer's machinery costs about as
                # much CPU again per small object (segments are small and many).
                with path.open("rb") as body:
                    resp = self.client.put_object(Bucket=self.bucket, Key=self.prefix + key,
                                                  Body=body, **self._headers(meta))
                if on_bytes is not None:
                    on_bytes(size)
                return _etag(resp["ETag"])
            # s3transfer calls Callback with each chunk's bytes as they are sent.
            self.client.upload_file(
                str(path), self.bucket, self.prefix + key,
                ExtraArgs=self._headers(meta), Config=self.transfer,
                Callback=on_bytes,
            )
        except (ClientError, BotoCoreError) as err:
            raise self._fail("PUT", key, err) from err
        except Exception as err:  # s3transfer wraps failures in its own exception types
            raise self._fail("PUT", key, err) from err
        # s3transfer does not hand back CompleteMultipartUpload's answer, and a multipart ETag
        # is not the body's MD5 (it is the MD5 of the parts' MD5s, "-N"): ask S3. Another
        # writer's change between the upload and this HEAD is then taken for ours; the state
        # index still HEADs every written object again before recording it.
        info = self.head(key)
        if info is None:
            raise StoreError(f"PUT {self.url}/{key}: gone right after its upload")
        return info.etag

    def put_bytes(
        self,
        key: str,
        body: bytes,
        meta: ObjectMeta,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        args = self._headers(meta)
        if if_match:
            args["IfMatch"] = f'"{if_match}"'
        if if_none_match:
            args["IfNoneMatch"] = "*"
        try:
            resp = self.client.put_object(Bucket=self.bucket, Key=self.prefix + key, Body=body,
                                          **args)
        except ClientError as err:
            if if_match and _missing(err):  # the object we matched against is gone
                raise PreconditionFailed(f"PUT {self.url}/{key}: object vanished") from err
            raise self._fail("PUT", key, err) from err
        except BotoCoreError as err:
            raise self._fail("PUT", key, err) from err
        return _etag(resp["ETag"])

    def set_meta(self, key: str, meta: ObjectMeta) -> str:
        try:
            resp = self.client.copy_object(
                Bucket=self.bucket,
                Key=self.prefix + key,
                CopySource={"Bucket": self.bucket, "Key": self.prefix + key},
                MetadataDirective="REPLACE",
                **self._headers(meta),
            )
        except (ClientError, BotoCoreError) as err:
            raise self._fail("COPY", key, err) from err
        return _etag(resp["CopyObjectResult"]["ETag"])

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            batch = [{"Key": self.prefix + k} for k in keys[start : start + 1000]]
            try:
                resp = self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
                )
            except (ClientError, BotoCoreError) as err:
                raise self._fail("DELETE", keys[start], err) from err
            if resp.get("Errors"):
                first = resp["Errors"][0]
                raise StoreError(
                    f"DELETE s3://{self.bucket}/{first.get('Key')}: {first.get('Code')}"
                )
