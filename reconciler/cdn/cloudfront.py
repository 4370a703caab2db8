"""CloudFront: CreateInvalidation on one distribution, and its invalidations in progress.

TooManyInvalidationsInProgress is not retried here: it is CdnBusy, and the caller (delivery.py)
decides, with the run's clock and deadline, whether to wait for capacity or keep the paths
pending. botocore retries what is transient (3 attempts, standard mode) with the same
CallerReference, so a lost answer cannot create a second invalidation.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .. import aws
from ..logs import watch_aws
from . import CdnBusy, CdnError, Invalidation, Usage

TOO_MANY = "TooManyInvalidationsInProgress"
IN_PROGRESS = "InProgress"


class CloudFront:
    """One distribution, through boto3's CloudFront client (us-east-1, the API's region)."""

    sends = True

    def __init__(self, distribution_id: str) -> None:
        self.distribution_id = distribution_id
        self.description = f"CloudFront distribution {distribution_id}"
        # Made in the background (botocore loads the service model: a few hundred ms that
        # overlap observing and packaging instead of delaying them); needed only at the end.
        maker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloudfront-client")
        self._client = maker.submit(lambda: watch_aws(aws.session().client(
            "cloudfront",
            region_name="us-east-1",  # CloudFront is global; its API lives in us-east-1
            config=Config(retries={"total_max_attempts": 3, "mode": "standard"}),
        )))
        maker.shutdown(wait=False)  # the one task still runs; the thread ends with it

    @property
    def client(self):
        return self._client.result()

    def _error(self, operation: str, err: ClientError | BotoCoreError) -> CdnError:
        code = (err.response["Error"]["Code"] if isinstance(err, ClientError)
                else type(err).__name__)
        kind = CdnBusy if code == TOO_MANY else CdnError
        return kind(f"{operation} on {self.distribution_id}: {code}")

    def invalidate(self, paths: list[str], caller_reference: str) -> Invalidation:
        batch = {
            "CallerReference": caller_reference,
            "Paths": {"Quantity": len(paths), "Items": list(paths)},
        }
        try:
            resp = self.client.create_invalidation(DistributionId=self.distribution_id,
                                                   InvalidationBatch=batch)
        except (ClientError, BotoCoreError) as err:
            raise self._error("CreateInvalidation", err) from err
        return Invalidation(resp["Invalidation"]["Id"], tuple(paths))

    def in_progress(self) -> Usage:
        """ListInvalidations (every page), then GetInvalidation of each one InProgress: the
        list gives only ids and status, the paths are what the quotas count."""
        try:
            pages = self.client.get_paginator("list_invalidations").paginate(
                DistributionId=self.distribution_id)
            busy = [item["Id"] for page in pages
                    for item in page["InvalidationList"].get("Items", [])
                    if item["Status"] == IN_PROGRESS]
            used = Usage()
            for ident in busy:
                got = self.client.get_invalidation(DistributionId=self.distribution_id, Id=ident)
                used += Usage.of(got["Invalidation"]["InvalidationBatch"]["Paths"].get("Items", []))
        except (ClientError, BotoCoreError) as err:
            raise self._error("ListInvalidations", err) from err
        return used
