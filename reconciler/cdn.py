"""The CDN seam: CloudFront invalidations, or a recorded log beside a local store.

Exactly one invalidation per apply. The CallerReference is fixed for the run, so a retried
CreateInvalidation (after a timeout, or TooManyInvalidationsInProgress) cannot create a second.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random,
)

TOO_MANY = "TooManyInvalidationsInProgress"


class CdnError(Exception):
    """The invalidation could not be created; the message names the distribution."""


@dataclass(frozen=True)
class Invalidation:
    id: str
    paths: tuple[str, ...]


class Cdn(Protocol):
    description: str

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        """Create one invalidation for all paths."""


def _too_many(err: BaseException) -> bool:
    return isinstance(err, ClientError) and err.response.get("Error", {}).get("Code") == TOO_MANY


class CloudFront:
    """CreateInvalidation on one distribution; TooManyInvalidationsInProgress is retried every
    2-5 s, at most `attempts` times."""

    def __init__(self, distribution_id: str, *, attempts: int = 10,
                 wait_min: float = 2.0, wait_max: float = 5.0) -> None:
        self.distribution_id = distribution_id
        self.description = f"CloudFront distribution {distribution_id}"
        # Made in the background (botocore loads the service model: a few hundred ms that
        # overlap observing and packaging instead of delaying them); needed only at the end.
        maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudfront-client")
        self._client = maker.submit(lambda: boto3.session.Session().client(
            "cloudfront",
            region_name="us-east-1",  # CloudFront is global; its API lives in us-east-1
            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
        ))
        maker.shutdown(wait=False)  # the one task still runs; the thread ends with it
        self.retrying = Retrying(
            retry=retry_if_exception(_too_many),
            wait=wait_random(wait_min, wait_max),
            stop=stop_after_attempt(attempts),
            reraise=True,
        )

    @property
    def client(self):
        return self._client.result()

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        batch = {
            "CallerReference": caller_reference,
            "Paths": {"Quantity": len(paths), "Items": list(paths)},
        }
        try:
            resp = self.retrying(
                self.client.create_invalidation,
                DistributionId=self.distribution_id,
                InvalidationBatch=batch,
            )
        except (ClientError, BotoCoreError) as err:
            code = err.response["Error"]["Code"] if isinstance(err, ClientError) else type(
                err
            ).__name__
            raise CdnError(f"CreateInvalidation on {self.distribution_id}: {code}") from err
        return Invalidation(resp["Invalidation"]["Id"], tuple(paths))


class RecordedCdn:
    """Appends each invalidation to a JSON-lines file: the local store's stand-in for CloudFront."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.description = f"recorded in {log}"

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        existing = self.read()
        for entry in existing:
            if entry["caller_reference"] == caller_reference:  # same semantics as CloudFront
                return Invalidation(entry["id"], tuple(entry["paths"]))
        inv_id = f"LOCAL{len(existing) + 1:06d}"
        entry = {
            "id": inv_id,
            "caller_reference": caller_reference,
            "paths": list(paths),
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        with self.log.open("a") as fh:
            fh.write(json.dumps(entry) + "\n")
        return Invalidation(inv_id, tuple(paths))

    def read(self) -> list[dict]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


class NoCdn:
    """No distribution configured: paths are reported, nothing is sent."""

    description = "CLOUDFRONT_DISTRIBUTION_ID not set"

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        return Invalidation("", tuple(paths))


def open_cdn(store_url: str, distribution_id: str | None = None) -> Cdn:
    """CloudFront when a distribution is configured; a recorded log for a local store."""
    distribution_id = distribution_id or os.environ.get("CLOUDFRONT_DISTRIBUTION_ID")
    if distribution_id:
        return CloudFront(distribution_id)
    if store_url.startswith("file://"):
        return RecordedCdn(Path(store_url[len("file://"):]) / ".cdn" / "invalidations.jsonl")
    return NoCdn()
