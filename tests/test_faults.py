"""Break things on purpose: S3 answering 500 / 503 SlowDown / connection resets, CloudFront saying
TooManyInvalidationsInProgress, ElevenLabs throttling, answers lost after the write took effect.

Every request goes through the fault proxy (tests/faultproxy.py) in front of moto; faults are
seeded per request, so each seed below always produces the same faults.
"""

from __future__ import annotations

import re

import boto3
import httpx
import pytest
from cli_helpers import reconcile
from conftest import KO_EN, master_languages
from faultproxy import FaultProxy, Rule, reachable_from_master

from reconciler.store.s3 import s3_client

PREFIX = "assets/curriculumsection"
THREE = KO_EN + [{"code": "ja", "name": "Japanese", "audio": "../media/ja.m4a"}]
DUBBED = [{"code": "ko", "audio": "source", "default": True}, {"code": "en"}]
# Seeds found once, and stable (faults depend on the seed and the request only):
SEED_THREE = 1  # 15 %: the 1st apply loses video/init.mp4 (3 faulted attempts), the 2nd converges
SEED_DUB = 3  # 15 %: the 1st apply loses a DeleteObjects after the dub is cached; the 2nd converges
MAX_ATTEMPTS = 3  # botocore standard mode, total_max_attempts=3 (reconciler.store.s3.RETRIES)
S3_ERRORS = ("InternalError", "SlowDown", "ConnectionClosedError", "500", "503")


@pytest.fixture
def proxy(moto_server, s3, monkeypatch):
    """The fault proxy, no faults yet; the store and CloudFront clients go through it."""
    fp = FaultProxy(moto_server).start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", fp.url)
    s3_client.cache_clear()  # the S3 client is cached per process with its endpoint
    yield fp
    fp.stop()
    s3_client.cache_clear()





def assert_published(s3, bucket: str, sid: int = 11) -> dict[str, dict]:
    heads, problems = reachable_from_master(s3, bucket, sid)
    assert not problems, problems
    return heads


def apply_until_converged(proxy: FaultProxy, repo, applies: int = 3) -> list:
    """Apply at most `applies` times; after each, the retry bound holds and a failed apply
    names a request that really lost all its attempts. Returns the results."""
    results = []
    for _ in range(applies):
        proxy.reset_observations()
        res = reconcile("--apply", repo.manifests)
        results.append(res)
        output = res.stdout + res.stderr
        tries = proxy.invocations()
        assert tries and max(len(t) for t in tries.values()) <= MAX_ATTEMPTS
        per_put = {k: n for (m, k), n in proxy.attempts.items()
                   if m == "PUT" and k.startswith(PREFIX + "/")}
        assert max(per_put.values(), default=0) <= MAX_ATTEMPTS, per_put
        lost = proxy.exhausted()
        if res.code == 0:
            assert not lost, "converged although a request lost all its attempts?"
            return results
        assert res.code == 1, output
        assert lost, f"apply failed, yet every request got through:\n{output}"
        assert all(len(t) == MAX_ATTEMPTS for t in lost)
        named = [k for t in lost for k in [t[0].key, *t[0].deleting] if k]
        assert any(k in output for k in named), (named, output)
        assert any(code in output for code in S3_ERRORS), output
    raise AssertionError(f"not converged after {applies} applies:\n{results[-1].stdout}")


def test_store_faults_at_15_percent_converge_with_at_most_3_attempts_per_request(
    repo, bucket, s3, proxy
):
    repo.write(11, THREE)
    proxy.rate, proxy.seed = 0.15, SEED_THREE
    results = apply_until_converged(proxy, repo)
    # The seed makes the first apply lose a request (and fail, naming it); the next converges.
    assert [r.code for r in results] == [1, 0]
    assert "video/init.mp4" in results[0].stdout and "FAILED" in results[0].stdout
    kinds = {f.kind for f in proxy.faults}  # the last apply's faults
    assert kinds, "the converging apply met no fault at all: the test proves nothing"

    proxy.rate = 0
    assert reconcile("--plan", repo.manifests).code == 0
    assert master_languages(s3, bucket) == ["ko", "en", "ja"]
    heads = assert_published(s3, bucket)
    assert len(heads) >= 1 + 4 * 3  # master, then playlist + init + segments per rendition


def test_proxy_injects_each_fault_kind_and_relays_moto_untouched(bucket, s3, proxy, tmp_path,
                                                                  monkeypatch):
    """The proxy itself: with retries off, the client sees exactly the faults injected;
    moto's own 404 is relayed and not counted; bodies arrive intact however they are sent."""
    from botocore.config import Config
    from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

    raw = boto3.client("s3", region_name="us-east-1", endpoint_url=proxy.url,
                       config=Config(retries={"total_max_attempts": 1}))
    proxy.rate, proxy.seed = 0.5, 11
    seen_by_client = []
    for i in range(40):
        try:
            raw.put_object(Bucket=bucket, Key=f"probe/{i}", Body=b"x" * i)
            seen_by_client.append("ok")
        except ClientError as err:
            seen_by_client.append(str(err.response["ResponseMetadata"]["HTTPStatusCode"]))
            assert err.response["Error"]["Code"] in ("InternalError", "SlowDown")
        except (ConnectionClosedError, EndpointConnectionError):
            seen_by_client.append("reset")
    assert [k for k in seen_by_client if k != "ok"] == [f.kind for f in proxy.faults]
    assert {"500", "503", "reset"} <= set(seen_by_client)
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="probe/")["Contents"]}
    assert stored == {f"probe/{i}" for i, k in enumerate(seen_by_client) if k == "ok"}

    # The health check is the proxy's own, never faulted, never forwarded.
    proxy.rate = 1.0
    proxy.rules.append(Rule("*", ".*", 500))
    assert httpx.get(f"{proxy.url}/__faultproxy__/health", timeout=5).text == "ok"
    proxy.rules.clear()
    proxy.rate = 0
    proxy.reset_observations()
    with pytest.raises(ClientError) as err:
        raw.head_object(Bucket=bucket, Key="no/such/key")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    assert proxy.faults == [] and [s.outcome for s in proxy.seen] == ["forwarded 404"]

    # Multipart (three parts) through the proxy, and a chunked body.
    monkeypatch.setenv("RECONCILER_MULTIPART_THRESHOLD", str(5 * 1024 * 1024))
    from reconciler import layout
    from reconciler.store.s3 import S3Store

    big = tmp_path / "v_000.m4s"
    big.write_bytes(bytes(range(256)) * (11 * 4096))
    key = f"{PREFIX}/99/video/v_000.m4s"
    S3Store(bucket).put_file(key, big, layout.meta_for(key))
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == big.read_bytes()
    assert sum("partNumber=" in s.query for s in proxy.seen if s.method == "PUT") == 3
    chunks = [b"a" * 70000, b"b" * 3, b"c" * 100000]
    put = httpx.put(f"{proxy.url}/{bucket}/chunked", content=iter(chunks), timeout=10)
    assert put.status_code == 200 and proxy.seen[-1].headers["transfer-encoding"] == "chunked"
    assert s3.get_object(Bucket=bucket, Key="chunked")["Body"].read() == b"".join(chunks)


def test_apply_waits_2_to_5_s_after_too_many_invalidations_and_sends_one(
    repo, bucket, distribution, moto_server, proxy, s3
):
    repo.write(11, KO_EN)
    proxy.too_many_invalidations = 1
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    (first, ref1), (second, ref2) = proxy.invalidation_refs
    assert ref1 == ref2 and ref1.startswith("reconciler-")
    assert 2.0 <= second - first <= 5.0 + 1.0, second - first  # wait_random(2, 5) + a request
    assert proxy.invalidations_forwarded == 1
    cf = boto3.client("cloudfront", region_name="us-east-1", endpoint_url=moto_server)
    assert len(cf.list_invalidations(DistributionId=distribution)["InvalidationList"]["Items"]) == 1
    line = (rf"^Invalidation \S+ \(CloudFront distribution {distribution}\): "
            r"/assets/curriculumsection/11/master.m3u8$")
    assert re.search(line, res.stdout, re.M), res.stdout


def test_dub_throttled_and_store_faults_converge_and_pay_once(repo, bucket, s3, proxy, eleven):
    repo.write(11, DUBBED)
    eleven.fail_next = [429, 500, 503]
    proxy.rate, proxy.seed = 0.15, SEED_DUB
    results = apply_until_converged(proxy, repo)
    assert results[-1].code == 0
    # A 500 on a create may hide an accepted dub: its name is looked up (that lookup met the 503,
    # retried: listing is free) before the create is sent again.
    assert [s for m, p, s in eleven.responses if m == "POST"] == [429, 500, 200]
    assert [s for m, p, s in eleven.responses if (m, p) == ("GET", "/v1/dubbing")][:2] == [
        503, 200]
    assert len(eleven.creates) == 1  # no dub created twice
    proxy.rate = 0
    assert reconcile("--plan", repo.manifests).code == 0
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert_published(s3, bucket)


def test_upload_failing_after_the_dub_was_paid_reuses_the_cached_dub(
    repo, bucket, s3, proxy, eleven
):
    repo.write(11, DUBBED)
    proxy.rules.append(Rule("PUT", rf"/{PREFIX}/11/audio/en/", 500))
    res = reconcile("--apply", repo.manifests)
    assert res.code == 1
    assert re.search(r"! en: package audio: .*audio/en/.*InternalError", res.stdout), res.stdout
    assert master_languages(s3, bucket) == ["ko"]
    assert len(eleven.creates) == 1

    proxy.rules.clear()
    res = reconcile("--apply", repo.manifests)
    assert res.code == 0, res.stdout + res.stderr
    assert len(eleven.creates) == 1  # the paid dub came from the cache
    assert reconcile("--plan", repo.manifests).code == 0
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert_published(s3, bucket)


# -- answers lost after the write took effect, and retries exhausted on the lock ------------

def test_lost_answer_to_the_master_write_is_not_a_conflict(repo, bucket, s3, proxy):
    """S3 stored master, the answer was lost, botocore's retry of the conditional PUT gets 412:
    master already says what we wrote, so the apply has converged."""
    repo.write(11, KO_EN)
    proxy.rules.append(Rule("PUT", r"/master\.m3u8$", "drop", times=1))
    res = reconcile("--apply", repo.manifests)
    puts = [s.outcome for s in proxy.seen if s.method == "PUT" and s.key.endswith("master.m3u8")]
    assert puts[:2] == ["fault drop", "forwarded 412"]
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert "kept changing" not in res.stdout, res.stdout
    assert res.code == 0, res.stdout


def test_lost_answer_to_the_lock_write_is_our_own_lease(repo, bucket, s3, proxy):
    """The lease was created but the answer lost; the retry's 412 must not make the run wait
    for (and fail on) its own lease, leaving it behind for the full TTL."""
    repo.write(11, KO_EN)
    proxy.rules.append(Rule("PUT", r"/locks/section-11\.json$", "drop", times=1))
    res = reconcile("--apply", repo.manifests, "--lock-timeout", "2")
    puts = [s.outcome for s in proxy.seen if s.method == "PUT" and s.key.startswith("locks/")]
    assert puts[:2] == ["fault drop", "forwarded 412"]
    assert res.code == 0, res.stderr
    assert master_languages(s3, bucket) == ["ko", "en"]


def test_lost_answer_to_a_lease_renewal_is_not_a_takeover(repo, bucket, s3, proxy):
    repo.write(11, KO_EN)
    proxy.rules += [
        Rule("PUT", r"/locks/section-11\.json$", "drop", skip=1, times=1),  # the 1st renewal
        Rule("PUT", r"/master\.m3u8$", "pass", delay=2.5),  # keep the run past ttl/3
    ]
    res = reconcile("--apply", repo.manifests, "--lock-ttl", "5")
    puts = [s.outcome for s in proxy.seen if s.method == "PUT" and s.key.startswith("locks/")]
    assert puts[:3] == ["forwarded 200", "fault drop", "forwarded 412"]
    assert "taken over" not in res.stdout, res.stdout
    assert res.code == 0, res.stdout


@pytest.mark.parametrize(("method", "status", "code"), [
    ("PUT", 503, "SlowDown"),  # taking the lease
    ("GET", 500, "InternalError"),  # reading it back to release it
])
def test_lock_request_out_of_retries_exits_1_naming_it(repo, bucket, s3, proxy, method, status,
                                                       code):
    repo.write(11, KO_EN)
    proxy.rules.append(Rule(method, r"/locks/section-11\.json$", status, times=MAX_ATTEMPTS))
    res = reconcile("--apply", repo.manifests)  # an escaping exception fails the test here
    assert res.code == 1
    assert "locks/section-11.json" in res.stdout + res.stderr and code in res.stdout + res.stderr


def test_job_record_out_of_retries_does_not_pay_for_the_dub_again(
    repo, bucket, s3, proxy, eleven
):
    """The dub is created (billed) and its record cannot be written: the run still has the
    dubbing_id in hand, so the paid dub must not be thrown away and created again."""
    repo.write(11, DUBBED)
    # The first record write (before paying) goes through; the one after the create, with the
    # dubbing_id, loses all its attempts.
    rule = Rule("PUT", r"/dubbing-cache/11/en/[^/]+\.job\.json$", 500, skip=1,
                times=MAX_ATTEMPTS)
    proxy.rules.append(rule)
    res = reconcile("--apply", repo.manifests)
    assert rule.fired == MAX_ATTEMPTS  # the write after the create really failed
    assert res.code == 0, res.stdout + res.stderr
    assert re.search(r"en: dub \w+ not recorded \(.*InternalError.*\); found by name on "
                     r"resume", res.stdout), res.stdout
    assert len(eleven.creates) == 1, [c["dubbing_id"] for c in eleven.creates]
    assert reconcile("--plan", repo.manifests).code == 0
    assert master_languages(s3, bucket) == ["ko", "en"]
    assert len(eleven.creates) == 1
