#!/usr/bin/env python3
"""Scrapes a Prometheus endpoint and prints its samples as JSON, parsed by the official
Python client's text parser (prometheus-client): what a Prometheus server would read.

    prometheus_samples.py http://127.0.0.1:51050/metrics

Prints [{"family", "type", "name", "labels", "value"}, ...]; fails on a response that is
not the Prometheus text format.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main() -> None:
    # A scrape waits for its answer as Prometheus would on a busy host (its default
    # scrape timeout is 10 s); a loaded test machine can take that long.
    with urllib.request.urlopen(sys.argv[1], timeout=30) as response:
        content_type = response.headers.get("Content-Type", "")
        if not content_type.startswith("text/plain"):
            sys.exit(f"unexpected Content-Type {content_type!r}")
        text = response.read().decode("utf-8")
    samples = [
        {
            "family": family.name,
            "type": family.type,
            "name": sample.name,
            "labels": sample.labels,
            "value": sample.value,
        }
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]
    json.dump(samples, sys.stdout)


if __name__ == "__main__":
    main()
