"""boto3 sessions that share one reader of AWS's service models.

Each client still gets a session of its own (credentials, profile, region and endpoint are read
afresh, as boto3.session.Session() reads them), but botocore's model loader, which parses the
service's JSON description and the endpoint rules on first use, is made once per process: a
fresh session parsed them again for every client (~80 ms of CPU for S3 or CloudFront, against
~16 ms with the models already read), and the API's jobs and the engine's runs make a
CloudFront client each.
"""

from __future__ import annotations

from functools import cache

import boto3
import botocore.loaders
import botocore.session


class _SearchPaths(list):
    """The loader's folders. boto3 appends its own data folder each time a session is made on
    a loader; on the shared one that would grow the list (and every lookup) without end."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@cache
def _loader() -> botocore.loaders.Loader:
    """botocore's loader as a session makes it (its data_path setting first, then botocore's
    and boto3's model folders), with the folder list kept free of repeats."""
    made = botocore.loaders.create_loader(
        botocore.session.get_session().get_config_variable("data_path"))
    return botocore.loaders.Loader(extra_search_paths=_SearchPaths(made.search_paths),
                                   include_default_search_paths=False)


def session() -> boto3.session.Session:
    """A new boto3 session on the process's shared model loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _loader())
    return boto3.session.Session(botocore_session=core)
