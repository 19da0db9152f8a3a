#!/usr/bin/env python3
"""Times `coding-job import compose` on a Compose file the size of getsentry/self-hosted's
(60 services sharing anchored defaults, with interpolation, healthchecks, dependencies, named
volumes and addresses of each other), and on the largest file of the import corpus when it is
present, against the baseline of Compose itself reading the same file (`docker-compose config`,
which parses, interpolates and validates it). Prints the median of the runs.

    python3 bench/import_large_compose.py --binary target/release/coding-job [--runs 20]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time

SERVICES = 60


def large_compose() -> str:
    lines = [
        "x-restart-policy: &restart_policy",
        "  restart: unless-stopped",
        "x-defaults: &defaults",
        "  <<: *restart_policy",
        "  image: ${SENTRY_IMAGE:-getsentry/sentry:nightly}",
        "  environment: &env",
        "    SENTRY_CONF: /etc/sentry",
        "    SNUBA: http://snuba-api:1218",
        "    REDIS_URL: redis://redis:6379/0",
        "    DATABASE_URL: postgres://postgres:${POSTGRES_PASSWORD}@postgres:5432/sentry",
        "    KAFKA_BROKERS: kafka:9092",
        "  depends_on:",
        "    redis: {condition: service_healthy}",
        "    postgres: {condition: service_healthy}",
        "    kafka: {condition: service_healthy}",
        "  volumes:",
        "    - sentry-data:/data",
        "    - ./sentry:/etc/sentry",
        "services:",
        "  redis:",
        "    <<: *restart_policy",
        "    image: redis:6.2",
        "    healthcheck: {test: redis-cli ping, interval: 10s, timeout: 5s, retries: 3}",
        "    volumes: [sentry-redis:/data]",
        "  postgres:",
        "    <<: *restart_policy",
        "    image: postgres:14",
        "    environment: {POSTGRES_HOST_AUTH_METHOD: trust, POSTGRES_PASSWORD: '${POSTGRES_PASSWORD}'}",
        "    healthcheck: {test: [CMD-SHELL, pg_isready -U postgres], interval: 5s}",
        "    volumes: [sentry-postgres:/var/lib/postgresql/data]",
        "  kafka:",
        "    <<: *restart_policy",
        "    image: confluentinc/cp-kafka:7.6.1",
        "    environment: {KAFKA_ZOOKEEPER_CONNECT: 'zookeeper:2181', KAFKA_ADVERTISED_LISTENERS: 'PLAINTEXT://kafka:9092'}",
        "    healthcheck: {test: [CMD-SHELL, 'nc -z localhost 9092'], interval: 10s}",
        "    depends_on: [zookeeper]",
        "  zookeeper:",
        "    image: confluentinc/cp-zookeeper:7.6.1",
        "    expose: ['2181']",
        "  snuba-api:",
        "    <<: *defaults",
        "    image: getsentry/snuba:${SNUBA_VERSION:-nightly}",
        "    expose: ['1218']",
        "    healthcheck: {test: [CMD, curl, -f, 'http://localhost:1218/health'], interval: 5s}",
        "  web:",
        "    <<: *defaults",
        "    ports: ['${SENTRY_BIND:-9000}:9000/tcp']",
        "    healthcheck: {test: ['CMD-SHELL', 'curl -f http://localhost:9000/_health/ || exit 1'], interval: 10s}",
    ]
    for index in range(SERVICES - 6):
        lines += [
            f"  worker-{index}:",
            "    <<: *defaults",
            f"    command: run consumer topic-{index} --consumer-group group-{index} --broker kafka:9092",
            "    environment:",
            "      <<: *env",
            f"      WORKER_INDEX: '{index}'",
            "    deploy: {resources: {limits: {memory: 512M, cpus: '0.5'}}}",
        ]
    lines += ["volumes:", "  sentry-data:", "  sentry-redis:", "  sentry-postgres:"]
    return "\n".join(lines) + "\n"


def median_seconds(command: list, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default="target/release/coding-job")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "../../shared/import-corpus"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "docker-compose.yml")
        with open(path, "w") as file:
            file.write(large_compose())
        out = os.path.join(scratch, "out")
        command = [args.binary, "import", "compose", path, "-o", out]
        seconds = median_seconds(command, args.runs)
        print(f"{SERVICES} services ({os.path.getsize(path)} bytes): median {seconds * 1000:.1f} ms over {args.runs} runs")
        baseline = median_seconds([args.binary, "--version"], args.runs)
        print(f"the same binary printing its version: median {baseline * 1000:.1f} ms")
        if shutil.which("docker-compose"):
            compose_config = ["docker-compose", "-f", path, "config", "-q"]
            seconds = median_seconds(compose_config, args.runs)
            print(f"baseline: docker-compose config of the same file: median {seconds * 1000:.1f} ms")
        compose = os.path.join(args.corpus, "compose")
        if os.path.isdir(compose):
            largest = max((os.path.join(compose, name) for name in os.listdir(compose)), key=os.path.getsize)
            seconds = median_seconds([args.binary, "import", "compose", largest, "-o", out], args.runs)
            print(f"largest corpus file {os.path.basename(largest)} ({os.path.getsize(largest)} bytes): median {seconds * 1000:.1f} ms")


if __name__ == "__main__":
    main()
