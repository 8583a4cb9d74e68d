# msxai BIDS App image: Debian's Python, msxai (not editable) and its pinned dependencies
# (pyproject.toml, the same ones CI installs) in a virtual environment, the TemplateFlow cache
# filled at build time, the data files, and nothing for development.
#   docker build -t msxai/msxai:0.1.0 .
# One stage and one large layer: with PyTorch's CUDA wheels the environment is about 6.5 GB, and
# copying it from a builder stage needed twice the disk during the build.
# pip's settings for the build (a CA bundle, a local index) are mounted, never kept in the image:
#   buildah bud -v "$PWD/pip.conf:/etc/pip.conf:ro" ...
# PyPI's torch wheels are CUDA builds (they also run on CPUs); a smaller CPU-only torch comes
# from PyTorch's own index (extra-index-url = https://download.pytorch.org/whl/cpu in pip.conf).
ARG BASE=debian:bookworm-slim

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="msxai" \
      org.opencontainers.image.description="Transparent MS diagnosis from FLAIR MRI (3D CNN + LRP) as a BIDS App" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.url="https://github.com/msxai/msxai" \
      org.opencontainers.image.source="https://github.com/msxai/msxai" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.authors="The msxai developers"
# Templates live outside $HOME, so that Apptainer's home binding does not hide them, and are
# made at build time, so that the container never needs the network.
ENV TEMPLATEFLOW_HOME=/opt/templateflow
WORKDIR /src
COPY pyproject.toml README.md ./
COPY msxai_bids ./msxai_bids
# tcmalloc halves the CNN's CPU time (benchmarks/bench_explain.py); mricron-data ships the JHU
# white-matter atlas. python3-venv, pip and the sources leave in the step that used them.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
        libtcmalloc-minimal4=2.10-1 mricron-data=1.2.20211006+dfsg-4 \
    && python3 -m venv /opt/msxai \
    && /opt/msxai/bin/pip install --no-cache-dir . \
    && /opt/msxai/bin/pip uninstall --yes pip \
    && /opt/msxai/bin/python -m msxai_bids.templates \
    && apt-get purge -y python3-venv \
    && apt-get autoremove -y \
    && rm -rf /var/lib/apt/lists/* /src
# Any user id may run the image (Apptainer runs it as the caller): caches and settings go to
# /tmp, which every user can write.
ENV PATH=/opt/msxai/bin:$PATH \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    MSXAI_CONTAINER=docker \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["msxai"]
