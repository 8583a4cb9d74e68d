# msxai BIDS App image. Install steps are the ones CI runs (`make install`), so CI tests this image's
# Python environment. Build: docker build -t msxai/msxai:0.1.0 .
FROM python:3.11.7-slim-bookworm

# tcmalloc halves the CNN's CPU time (benchmarks/bench_explain.py); mricron-data ships the JHU white-matter atlas.
RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 libtcmalloc-minimal4=2.10-1 mricron-data=1.2.20211006+dfsg-4 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/msxai
COPY pyproject.toml Makefile README.md ./
COPY msxai_bids ./msxai_bids
RUN make install && rm -rf /root/.cache/pip

# Templates live outside $HOME so Apptainer's home binding does not hide them; they are
# populated here, at build time, so the container never needs the network.
ENV TEMPLATEFLOW_HOME=/opt/templateflow \
    PATH=/opt/msxai/.venv/bin:$PATH \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4 \
    MSXAI_CONTAINER=docker \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONUNBUFFERED=1
RUN python -m msxai_bids.templates \
    && useradd --create-home --uid 1000 msxai
USER 1000
WORKDIR /work
ENTRYPOINT ["msxai"]
