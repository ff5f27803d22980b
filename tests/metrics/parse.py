"""Parses a Prometheus text exposition from stdin with the official Python client's parser and
prints every sample as one JSON object: {"name{label=value,...}": value}. Any syntax error the
parser finds makes it exit non-zero with the error on stderr."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    if not family.documentation:
        sys.exit(f"family {family.name} has no HELP text")
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
json.dump(samples, sys.stdout, sort_keys=True)
