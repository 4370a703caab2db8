"""A section's dubs during an apply: each paid at most once, verified before it is cached, its
transcripts kept beside it.

The protocol (pay_once.py has the vendor-facing half): the job record is written *before* the
paid create, with the dub's unique name, and completed with its id right after, so a run that
dies anywhere resumes that dub instead of creating another; a download that is not usable audio
is fetched once more (free) and never cached; a cached dub that no longer is usable audio is set
aside, and with its id on record the next apply downloads it again, unpaid. ElevenLabs is asked
in its own language codes (`pt` for `pt-BR`).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path

from . import layout
from .dubbing import Dubber, DubbingError
from .dubbing_languages import elevenlabs_code
from .manifest import DUB_TRANSCRIPT, Language, Section
from .packager import Examined, MediaError, Packager
from .pay_once import SlotHeartbeat, Spend, create_or_adopt, verify_dub
from .plan import REPLACEMENT, Action, Change
from .progress import Tracker
from .store import ObjectInfo, Store, StoreError

DUB_META = {".mp3": layout.ObjectMeta("audio/mpeg", "no-store"),
            ".mp4": layout.ObjectMeta("audio/mp4", "no-store")}
JOB_META = layout.ObjectMeta("application/json", "no-store")
TRANSCRIPT_META = layout.ObjectMeta("text/vtt; charset=utf-8", "no-store")


def _dub_meta(audio: Path, dubbing_id: str | None) -> layout.ObjectMeta:
    """A cached dub's metadata: its type by its suffix, stamped with its dub's id when known."""
    meta = DUB_META.get(audio.suffix, DUB_META[".mp3"])
    return meta.stamped({layout.DUBBING_ID: dubbing_id} if dubbing_id else {})


def _dubbing_id(info: ObjectInfo | None) -> str | None:
    """The dub a cached object (HEADed) came from, when its metadata names one."""
    return info.user_metadata.get(layout.DUBBING_ID) if info else None


def elevenlabs(tag: str) -> str:
    """ElevenLabs' code for a manifest's tag (validated when the manifest was loaded)."""
    code = elevenlabs_code(tag)
    if code is None:
        raise DubbingError(f"ElevenLabs does not dub {tag!r}", language=tag)
    return code


class SectionDubs:
    """One section's dubs: new ones paid once and downloaded, cached ones checked, and the
    transcripts the manifest wants from them. Errors are raised to the section's apply, which
    records them against the language; warnings go to `warn`."""

    def __init__(self, section: Section, store: Store, work: Path, dub_cache: Collection[str], *,
                 dubber: Callable[[], Dubber] | None, packager: Packager,
                 cpu: threading.Semaphore, spend: Spend, tracker: Tracker,
                 speech: Callable[[], Path], video_duration: Callable[[], float | None],
                 say: Callable[[str], None], warn: Callable[[str], None]) -> None:
        self.section = section
        self.store = store
        self.work = work
        self.dub_cache = dub_cache  # the cache's keys as observed before the apply
        self.dubber = dubber
        self.packager = packager
        self.cpu = cpu
        self.spend = spend
        self.tracker = tracker
        self.speech = speech
        self.video_duration = video_duration
        self.say = say
        self.warn = warn
        self.files: dict[str, Examined] = {}  # language -> its dub, downloaded and checked
        self.transcripts: dict[str, bytes] = {}  # cache key -> a dub's WebVTT transcript
        self._lock = threading.Lock()

    def dub(self, action: Action) -> None:
        """Dub one language (paying at most once), cache the verified audio, then fetch the
        transcripts the manifest wants from this dub while its id is at hand."""
        code = action.language or ""
        section_id = self.section.section_id
        audio_prefix, job_key = layout.dub_cache_keys(section_id, code, action.source_id or "")
        self.tracker.dub_status(section_id, code, "creating")
        try:
            if self.dubber is None:
                raise DubbingError("no dubbing service was given to this apply",
                                   language=code)
            client = self.dubber()
            dubbing_id = self._resume_or_create(client, action, job_key)
            expected = client.expected_seconds(dubbing_id)
            if expected:
                self.tracker.dub_expected(section_id, code, expected)
            try:
                client.wait(dubbing_id, language=code, on_status=lambda state:
                            self.tracker.dub_status(section_id, code, state))
            except DubbingError as err:
                if err.final:  # ElevenLabs gave up on it (or forgot it): the next apply pays anew
                    self.store.delete([job_key])
                else:  # still working, maybe: keep the record, the next apply resumes polling
                    err.reason += "; the dub is kept and the next apply resumes it unpaid"
                raise
            examined = self._download_checked(client, dubbing_id, code)
            path = examined.source
            cached = audio_prefix + path.suffix.lstrip(".")
            self.store.put_file(cached, path, _dub_meta(path, dubbing_id))
            # A replacement (verified above) takes the old dub's place in the cache.
            self.store.delete([k for k in self.dub_cache
                               if k.startswith(audio_prefix) and k not in (cached, job_key)]
                              + [job_key])
            with self._lock:
                self.files[code] = examined
        finally:
            self.tracker.dub_done(section_id, code)
        for lang in self.section.languages:
            if lang.subtitles != DUB_TRANSCRIPT or self.section.transcript_of(lang)[0] != code:
                continue
            spoken = self.section.transcript_of(lang)[1]
            cache_key = layout.transcript_key(section_id, code, action.source_id or "", spoken)
            try:
                self._fetch_transcript(client, dubbing_id, cache_key, spoken)
            except (DubbingError, StoreError) as err:  # the subtitles step tries again later
                self.warn(f"{lang.code}: transcript not fetched yet: {err}")

    def _download_checked(self, client: Dubber, dubbing_id: str, code: str) -> Examined:
        """The dub's audio, downloaded and verified (pay_once.verify_dub); a broken download is
        fetched once more from the same dub (free), then left to the next apply (its job record
        keeps the id, so that apply downloads again, unpaid)."""
        problem: MediaError | None = None
        for attempt in (1, 2):
            path = client.download(dubbing_id, elevenlabs(code),
                                   self.work / f"dub-{code}-{attempt}")
            try:
                with self.cpu:
                    return verify_dub(self.packager, path, self.video_duration())
            except MediaError as err:
                problem = err
                self.say(f"{code}: downloaded dub {dubbing_id} is not usable audio ({err}); "
                         + ("downloading it again" if attempt == 1 else "not cached"))
        raise DubbingError(f"downloaded dub is not usable audio ({problem}); not cached: the "
                           "next apply downloads it again, unpaid", language=code,
                           dubbing_id=dubbing_id)

    def _fetch_transcript(self, client: Dubber, dubbing_id: str, cache_key: str,
                          spoken: str) -> bytes:
        """Fetch a dub's transcript (free with the paid dub) and keep it in the dub cache."""
        text = client.transcript(dubbing_id, spoken if spoken == "source" else elevenlabs(spoken))
        self.store.put_bytes(cache_key, text,
                             TRANSCRIPT_META.stamped({layout.DUBBING_ID: dubbing_id}))
        with self._lock:
            self.transcripts[cache_key] = text
        return text

    def transcript(self, lang: Language, cache_key: str) -> bytes:
        """A dub's transcript: fetched in this apply, else cached, else fetched once (no new dub)
        with the id recorded on the cached dub."""
        with self._lock:
            if cache_key in self.transcripts:
                return self.transcripts[cache_key]
        got = self.store.get(cache_key)
        if got is not None:
            return got[0]
        dubbed, spoken = self.section.transcript_of(lang)
        key = layout.dub_key_of_transcript(cache_key)
        prefix, job = layout.dub_cache_keys(self.section.section_id, dubbed, key)
        audio = sorted(k for k in self.store.list(prefix) if k != job)
        info = self.store.head(audio[0]) if audio else None
        dubbing_id = _dubbing_id(info)
        if not dubbing_id or self.dubber is None:
            raise DubbingError("no transcript of the dub is cached and "
                               + ("no dub id is recorded" if self.dubber else
                                  "no dubbing service was given to this apply"),
                               language=lang.code)
        return self._fetch_transcript(self.dubber(), dubbing_id, cache_key, spoken)

    def _resume_or_create(self, client: Dubber, action: Action, job_key: str) -> str:
        code, key = action.language or "", action.source_id or ""
        section = self.section
        got = self.store.get(job_key)
        record = json.loads(got[0]) if got else {}
        anew = action.change == Change.REPLACE
        if anew and not record.get(REPLACEMENT):
            record = {}  # the record of the dub being replaced is not resumed
        if record.get("dubbing_id"):
            self.say(f"{code}: resuming dub {record['dubbing_id']}")
            return str(record["dubbing_id"])
        name = record.get("name")
        if name:  # a run died around the create: did it go through?
            found = client.find(name)
            if found:
                self._complete_record(job_key, {**record, "dubbing_id": found})
                return found
        else:
            name = f"section-{section.section_id}-{code}-{key[:10]}-{uuid.uuid4().hex[:8]}"
            record = {"name": name, "language": code, "created": time.time()}
            if anew:
                record[REPLACEMENT] = True
            self.store.put_bytes(job_key, json.dumps(record).encode(), JOB_META)  # before paying
        self.say(f"{code}: dubbing")
        heartbeat = SlotHeartbeat(code, self.say)

        def on_wait(waited: float) -> None:  # the periodic progress line shows it as the status
            self.tracker.dub_status(section.section_id, code,
                                    "no free ElevenLabs slot: waiting (nothing paid)")
            heartbeat(waited)

        dubbing_id = create_or_adopt(
            client, self.speech(), target_lang=elevenlabs(code),
            source_lang=elevenlabs(section.source_language), name=name,
            num_speakers=section.dubbing.num_speakers, watermark=section.dubbing.watermark,
            minutes=action.minutes or 0.0, spend=self.spend, say=self.say, on_wait=on_wait,
        )
        self._complete_record(job_key, {**record, "dubbing_id": dubbing_id})
        return dubbing_id

    def _complete_record(self, job_key: str, record: dict) -> None:
        """Complete the job record; best effort (the name already finds the dub again)."""
        try:
            self.store.put_bytes(job_key, json.dumps(record).encode(), JOB_META)
        except StoreError as err:
            self.warn(f"{record['language']}: dub {record['dubbing_id']} not recorded ({err}); "
                      "found by name on resume")

    def cached(self, code: str, key: str) -> Examined:
        """A dub cached by an earlier apply, downloaded and verified; one that is not usable
        audio is set aside."""
        prefix, job = layout.dub_cache_keys(self.section.section_id, code, key)
        cached = sorted(k for k in self.dub_cache if k.startswith(prefix) and k != job)
        if not cached:
            raise DubbingError("cached dub vanished; re-run to dub again", language=code)
        dest = self.work / f"cached-{code}.{cached[0].rsplit('.', 1)[-1]}"
        info = self.store.download(cached[0], dest)
        try:
            with self.cpu:
                return verify_dub(self.packager, dest, self.video_duration())
        except MediaError as err:
            raise DubbingError(self._set_aside(cached[0], dest, job, code,
                                               _dubbing_id(info)) + f" ({err})",
                               language=code) from err

    def _set_aside(self, key: str, local: Path, job_key: str, code: str,
                   dubbing_id: str | None) -> str:
        """Move a cached dub that is not usable audio out of the cache (kept beside it for a
        look) and say how it gets dubbed again; with its dub id on record, the next apply
        downloads that dub again, unpaid."""
        aside = layout.set_aside_key(key)
        self.store.put_file(aside, local, _dub_meta(local, dubbing_id))
        if dubbing_id:
            record = {"name": None, "language": code, "created": time.time(),
                      "dubbing_id": dubbing_id}
            self.store.put_bytes(job_key, json.dumps(record).encode(), JOB_META)
        self.store.delete([key])
        then = (f"the next apply downloads dub {dubbing_id} again, unpaid" if dubbing_id else
                "no dub id is recorded: the next apply dubs it again (billed; see its plan)")
        return f"cached dub {key} is not usable audio; set aside as {aside}: {then}"
