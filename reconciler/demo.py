"""The README's main job: sample media -> manifests -> plan -> apply -> plan, on a local store.

Everything lands under one folder; the store there has the exact S3 key layout, and the
invalidation CloudFront would get is recorded in store/.cdn/invalidations.jsonl.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import engine, samples
from .errors import UsageError
from .render import outcome_text, plan_text

MANIFEST = """\
# Sample section made by `reconcile demo`.
sectionId: {sid}
video: ../media/lecture-{sid}.mp4
languages:
  - code: ko
    audio: source
    default: true
  - code: en
    audio: ../media/dub-{sid}-en.mp3
  - code: ja
    name: Japanese
    audio: ../media/dub-{sid}-ja.m4a
"""


def prepare(root: Path, sections: tuple[int, ...] = (11, 12)) -> Path:
    """Sample media and manifests (made once; re-runs reuse them). Returns the manifests dir."""
    media_dir, manifests = root / "media", root / "manifests"
    try:
        manifests.mkdir(parents=True, exist_ok=True)
        (root / ".git").mkdir(exist_ok=True)  # bounds relative paths, as a repository would
    except OSError as err:
        raise UsageError(f"--dir {root}: cannot be written ({err.strerror or err})") from None
    for sid in sections:
        video = media_dir / f"lecture-{sid}.mp4"
        if not video.exists():
            samples.make_video(video, seconds=12, tone_hz=330)
            samples.make_tone(media_dir / f"dub-{sid}-en.mp3", hz=550, seconds=12.5)
            samples.make_tone(media_dir / f"dub-{sid}-ja.m4a", hz=770, seconds=11.5)
        (manifests / f"section-{sid}.yaml").write_text(MANIFEST.format(sid=sid))
    return manifests


def run_demo(root: Path, echo: Callable[..., None] = print, program: str = "reconcile") -> int:
    """Runs the demo; `program` is how the user calls the CLI, for the closing hint."""
    root = root.resolve()
    echo(f"Preparing sample media and manifests in {root} …")
    manifests = prepare(root)
    settings = engine.Settings.from_env(f"file://{root / 'store'}", distribution_id="")
    rec = engine.Reconciler(settings)
    sections = engine.load([manifests])

    echo("\n$ reconcile --plan   (first run: everything is missing)")
    plan, _ = rec.plan(sections)
    echo(plan_text(plan), nl=False)

    echo("\n$ reconcile --apply")
    outcome = rec.apply(sections)
    echo(outcome_text(outcome), nl=False)

    echo("\n$ reconcile --plan   (again: nothing left to do)")
    again, _ = rec.plan(sections)
    echo(plan_text(again), nl=False)

    master = root / "store" / "assets" / "curriculumsection" / "11" / "master.m3u8"
    if master.exists():
        echo(f"\n{master}:\n{master.read_text()}")
    echo(f"Store: {root / 'store'}  (preview it with: {program} preview --store "
         f"file://{root / 'store'})")
    return 0 if outcome.ok and not again.has_changes and not again.has_errors else 1
