"""Real multi-language CMAF HLS sections for tests, made by the reconciler's own pipeline, and
the preview server run in a thread.

`make_section(store, 101, {"ko": 440, "en": 880})` publishes a complete section whose audio
renditions are pure tones of the given frequencies (so a test can hear which one plays). The
section is built once per (languages, duration) with `reconcile --apply` on a local store and
copied object by object (headers included) into each test's store, so tests stay fast and
independent.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

from reconciler import engine, layout, samples
from reconciler.store import open_store

TEMPLATE_ID = 1
_cache_dir: Path | None = None
_cache: dict[tuple, Path] = {}
_cache_lock = threading.Lock()


def _cache_root() -> Path:
    global _cache_dir
    if _cache_dir is None:
        _cache_dir = Path(tempfile.mkdtemp(prefix="reconciler-media-"))
        atexit.register(shutil.rmtree, _cache_dir, True)
    return _cache_dir


def _template(langs: dict[str, int], seconds: int, texts: dict[str, str] | None = None) -> Path:
    """A local store holding section TEMPLATE_ID, applied by the real engine (cached)."""
    key = (tuple(langs.items()), seconds, tuple((texts or {}).items()))
    with _cache_lock:
        if key in _cache:
            return _cache[key]
        root = _cache_root() / f"t{len(_cache)}"
        (root / ".git").mkdir(parents=True)
        samples.make_video(root / "video.mp4", seconds=seconds, size="320x180", tone_hz=None)
        languages = []
        for i, (code, hz) in enumerate(langs.items()):
            samples.make_tone(root / f"{code}.m4a", hz=hz, seconds=seconds)
            languages.append({"code": code, "audio": f"{code}.m4a", "default": i == 0})
            if code in (texts or {}):
                (root / f"{code}.vtt").write_text(texts[code], encoding="utf-8")
                languages[-1]["subtitles"] = f"{code}.vtt"
        manifest = {"sectionId": TEMPLATE_ID, "video": "video.mp4", "languages": languages}
        (root / "section.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
        settings = engine.Settings(store_url=f"file://{root / 'store'}", tmp_dir=root)
        outcome = engine.Reconciler(settings).apply(engine.load([root / "section.yaml"]))
        if not outcome.ok:
            raise RuntimeError(f"could not build a test section: {outcome.results}")
        _cache[key] = root / "store"
        return _cache[key]


def make_section(store, section_id: int, langs: dict[str, int], seconds: int = 8,
                 texts: dict[str, str] | None = None) -> None:
    """Publish a complete section: video plus one tone rendition per language (the first is
    DEFAULT=YES) and a subtitle rendition per WebVTT text in `texts` (language -> file), with
    the metadata table's headers, as `reconcile --apply` writes it."""
    template = open_store(f"file://{_template(langs, seconds, texts)}")
    source_prefix = layout.section_prefix(TEMPLATE_ID)
    target_prefix = layout.section_prefix(section_id)
    master = layout.master_key(TEMPLATE_ID)
    keys = sorted(template.list(source_prefix), key=lambda k: k == master)  # master last
    for key in keys:
        body, info = template.get(key)
        store.put_bytes(target_prefix + key[len(source_prefix):], body,
                        layout.meta_for(key), info.metadata)


@contextmanager
def running(server) -> Iterator[str]:
    """Serve a preview server (from `reconciler.preview.make_server`) in a thread; yield its
    base URL (no trailing slash) and shut it down afterwards."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
