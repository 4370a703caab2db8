# The reconciler as an image: Debian 12 (bookworm) slim Python, Debian's ffmpeg and git, and the
# package's wheel with [api], every Python dependency pinned by requirements-constraints.txt. Non-root user.
#   docker build -t reconciler .
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/work" reconciler --plan
# Published to ghcr.io by .github/workflows/image.yml, which release.yml runs on vX.Y.Z tags;
# docs/github.md shows how the workflows and the action run from it.

FROM python:3.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY schemas ./schemas
COPY reconciler ./reconciler
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# ffmpeg/ffprobe package the media; git serves --changed-since. Debian's own versions are not
# pinned (bookworm's archive drops superseded security builds); the base image tag fixes them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg git \
    && rm -rf /var/lib/apt/lists/*
COPY requirements-constraints.txt /tmp/requirements-constraints.txt
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir --find-links /wheels -c /tmp/requirements-constraints.txt \
        "lingoost-reconciler[api]" \
    && rm /tmp/requirements-constraints.txt
RUN useradd --create-home --uid 10001 --user-group reconciler
USER 10001:10001
WORKDIR /work
ENTRYPOINT ["reconcile"]
CMD ["--help"]
