# msxai BIDS App image. A builder stage installs msxai (not editable) and its pinned dependencies
# (pyproject.toml, the same ones CI installs) into a virtual environment and fills the
# TemplateFlow cache; the runtime stage holds that environment, Debian's Python and the data
# files, and nothing for development.
#   docker build -t msxai/msxai:0.1.0 .
# pip's index settings are build arguments, not kept in the image. PyPI's torch wheels are CUDA
# builds (they also run on CPUs); a smaller CPU-only torch comes from PyTorch's own index:
#   docker build --build-arg PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu -t msxai/msxai:0.1.0-cpu .
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS builder
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
    && rm -rf /var/lib/apt/lists/*
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=
ARG PIP_CERT=
WORKDIR /src
COPY pyproject.toml README.md ./
COPY msxai_bids ./msxai_bids
RUN python3 -m venv /opt/msxai \
    && /opt/msxai/bin/pip install --no-cache-dir . \
    && /opt/msxai/bin/pip uninstall --yes pip
# Templates live outside $HOME, so that Apptainer's home binding does not hide them, and are
# made at build time, so that the container never needs the network.
ENV TEMPLATEFLOW_HOME=/opt/templateflow
RUN /opt/msxai/bin/python -m msxai_bids.templates

FROM ${BASE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="msxai" \
      org.opencontainers.image.description="Transparent MS diagnosis from FLAIR MRI (3D CNN + LRP) as a BIDS App" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.url="https://github.com/msxai/msxai" \
      org.opencontainers.image.source="https://github.com/msxai/msxai" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.authors="The msxai developers"
# tcmalloc halves the CNN's CPU time (benchmarks/bench_explain.py); mricron-data ships the JHU
# white-matter atlas.
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 \
        libtcmalloc-minimal4=2.10-1 mricron-data=1.2.20211006+dfsg-4 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=builder /opt/msxai /opt/msxai
COPY --from=builder /opt/templateflow /opt/templateflow
# Any user id may run the image (Apptainer runs it as the caller): caches and settings go to
# /tmp, which every user can write.
ENV PATH=/opt/msxai/bin:$PATH \
    TEMPLATEFLOW_HOME=/opt/templateflow \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    MSXAI_CONTAINER=docker \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
USER 1000:1000
WORKDIR /tmp
ENTRYPOINT ["msxai"]
