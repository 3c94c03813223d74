"""Validates SBOM files against the schemas beside this script.

Usage: validate.py cyclonedx|spdx FILE...  Prints one line per invalid file and exits 1.
"""
import json
import pathlib
import sys

import urllib.parse

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

HERE = pathlib.Path(__file__).parent


def load(name):
    return json.loads((HERE / name).read_text())


def validator(kind):
    if kind == "cyclonedx":
        schema = load("bom-1.6.SNAPSHOT.schema.json")
        base = schema.get("$id", "")
        resources = []
        for name in ["spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json"]:
            res = Resource.from_contents(load(name), default_specification=DRAFT7)
            for uri in {name, urllib.parse.urljoin(base, name), res.id() or name}:
                resources.append((uri, res))
        registry = Registry().with_resources(resources)
        return jsonschema.Draft7Validator(schema, registry=registry, format_checker=jsonschema.FormatChecker())
    schema = load("spdx-2.3.schema.json")
    return jsonschema.Draft201909Validator(schema, format_checker=jsonschema.FormatChecker())


def main():
    kind, files = sys.argv[1], sys.argv[2:]
    v = validator(kind)
    bad = 0
    for f in files:
        errors = sorted(v.iter_errors(json.loads(pathlib.Path(f).read_text())), key=str)
        for e in errors[:3]:
            print(f"{f}: {'/'.join(map(str, e.absolute_path))}: {e.message}")
        bad += bool(errors)
    sys.exit(1 if bad else 0)


main()
