"""The HTTP API's request and response bodies (pydantic) and its one error shape."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlsplit

import langcodes
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from ..manifest import shown
from .config import CODE_PATTERN, MAX_LANGUAGES, MAX_SECTION_ID, URL_PATTERN

# -- models -------------------------------------------------------------------------------------


def _check_code(code: str) -> str:
    if not re.fullmatch(CODE_PATTERN, code) or not langcodes.tag_is_valid(code):
        raise ValueError(f"{shown(code)} is not a valid BCP 47 language tag")
    return code


def _check_url_shape(url: str) -> str:
    """What needs no configuration: scheme, no credentials, no whitespace. The allow-list and
    address checks come later (they need the config and, for https, DNS)."""
    if any(c.isspace() for c in url) or any(ord(c) < 32 or ord(c) == 127 for c in url):
        raise ValueError("URL must not contain whitespace or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("s3", "https"):
        raise ValueError("only s3://BUCKET/KEY or https://HOST/PATH URLs are accepted")
    if "@" in parts.netloc:
        raise ValueError("URL must not embed credentials (user:password@)")
    return url


LanguageCode = Annotated[
    str,
    Field(min_length=1, max_length=35, json_schema_extra={"pattern": CODE_PATTERN},
          description="BCP 47 language tag (ko, en, ja, zh-Hans, pt-BR)."),
    AfterValidator(_check_code),
]


class DubbingRequest(BaseModel):
    """Serve this section's lecture in these languages (missing ones are dubbed)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{
        "inputVideoUrl": "s3://uploads-bucket/lectures/11/source.mp4",
        "targetLanguages": ["ko", "en", "ja"],
        "curriculumSectionId": 11,
    }]})

    inputVideoUrl: Annotated[str, AfterValidator(_check_url_shape)] = Field(
        min_length=1, max_length=2048, json_schema_extra={"pattern": URL_PATTERN},
        description="The lecture video: s3://BUCKET/KEY or https://HOST/PATH from an allowed "
                    "source.")
    targetLanguages: list[LanguageCode] = Field(
        min_length=1, max_length=MAX_LANGUAGES,
        description="Languages to serve; ones the manifest lacks are added (without audio, so "
                    "they are dubbed). Languages are never removed.")
    curriculumSectionId: int = Field(gt=0, le=MAX_SECTION_ID, strict=True)
    replaceVideo: bool = Field(
        False, strict=True,
        description="Allow replacing the video of a section that already has another one.")
    sourceLanguage: LanguageCode | None = Field(
        None, description="The language spoken in the video (default: the manifest's, else the "
                          "server's RECONCILER_SOURCE_LANGUAGE). A target language equal to it "
                          "is served from the video's own audio track, not dubbed.")
    replace: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(
        default_factory=list, max_length=MAX_LANGUAGES + 1,
        description="Renditions of this section to rebuild although they are up to date, as "
                    "`reconcile apply --replace`: `video` (and with it every language), a "
                    "language code (a dubbed language is dubbed anew: billed, under the "
                    "server's --max-dub-minutes) or `subtitles/LANG`. Each must be declared "
                    "once the request is merged into the manifest (422 otherwise).")


class JobAccepted(BaseModel):
    jobId: str
    statusUrl: str


class LanguageFailure(BaseModel):
    code: str
    reason: str


class DubbingResult(BaseModel):
    """The web app's answer: which languages the section's master.m3u8 lists now."""

    ok: bool = Field(description="Every requested language is served.")
    sectionId: int
    languagesReady: list[str] = Field(description="Languages master.m3u8 lists, in its order.")
    masterUrl: str
    jobId: str | None = Field(None, description="The job that ran; null when nothing was to do.")
    languagesFailed: list[LanguageFailure] = Field(default_factory=list)


class WebhookDelivery(BaseModel):
    """How the job-finished callback went (RECONCILER_WEBHOOK_URL)."""

    state: Literal["pending", "delivered", "failed"]
    attempts: int
    httpStatus: int | None = None
    error: str | None = None
    deliveredAt: datetime | None = None


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobStatus(BaseModel):
    jobId: str
    status: JobState
    sectionId: int
    languagesRequested: list[str]
    languagesReady: list[str]
    languagesFailed: list[LanguageFailure]
    masterUrl: str
    ok: bool
    errors: list[str] = Field(default_factory=list)
    createdAt: datetime
    startedAt: datetime | None
    finishedAt: datetime | None
    webhook: WebhookDelivery | None = Field(
        None, description="The job-finished callback's delivery; null without a webhook.")


class JobList(BaseModel):
    jobs: list[JobStatus] = Field(description="Newest first.")


class PlannedAction(BaseModel):
    type: str
    change: str
    language: str | None
    reason: str


class DryRunResult(BaseModel):
    """What a request would do (POST /api/dubbing?dryRun=true); nothing was stored."""

    dryRun: Literal[True] = True
    sectionId: int
    languagesToAdd: list[str] = Field(description="Entries the manifest would gain.")
    videoReplaced: bool
    changes: dict[str, int] = Field(description="The plan's actions counted by change.")
    actions: list[PlannedAction]
    billableMinutes: float = Field(description="New ElevenLabs dubbing minutes it would bill.")
    unpricedLanguages: list[str] = Field(
        description="Languages to dub whose minutes are unknown (the video's duration is).")
    errors: list[str] = Field(description="Problems the plan found (it would not converge).")


class DeclaredLanguage(BaseModel):
    code: str
    name: str
    default: bool
    dubbed: bool = Field(description="No audio given: the language is dubbed by ElevenLabs.")


class SectionStatus(BaseModel):
    sectionId: int
    manifest: str | None = Field(description="The manifest file declaring the section.")
    video: str | None
    declaredLanguages: list[DeclaredLanguage]
    observedLanguages: list[str] = Field(description="Languages master.m3u8 lists now.")
    masterUrl: str


class ErrorBody(BaseModel):
    error: str
    message: str
    field: str | None = None


class InvalidManifest(BaseModel):
    file: str = Field(description="Relative to the manifests folder.")
    problems: list[str]


class ManifestsHealth(BaseModel):
    valid: int = Field(description="Manifest files served.")
    invalid: list[InvalidManifest] = Field(
        description="Files set aside: their sections are refused (409) until they are fixed.")


class Health(BaseModel):
    ok: bool = Field(description="The server is up (true even with invalid manifests).")
    manifests: ManifestsHealth

