#!/usr/bin/env python3
"""Derive a JSON Schema for OCSF class API Activity (class_uid 6003) from
the OCSF schema sources (github.com/ocsf/ocsf-schema).

Usage: gen_schema.py OCSF_SCHEMA_DIR > api_activity.schema.json

OCSF_SCHEMA_DIR is a checkout of ocsf-schema at the pinned release (see
README.md). The class is base_event + application + api_activity, without
the optional profiles (the mapping applies none). Every object the class
reaches is a $def with its attributes typed from dictionary.json (arrays,
enums of *_id attributes, the regex of ip_t and the other string types,
port_t's range), its required attributes, its at_least_one / just_one
constraints, and no other properties; a property not in the schema is an
error. Attributes inherited through "extends" are merged, the subclass
overriding. Enum values of a class or object override add to the
dictionary's, as the OCSF server does.
"""
import json
import os
import sys

root = sys.argv[1]
load = lambda *p: json.load(open(os.path.join(root, *p)))
dictionary = load("dictionary.json")
types = dictionary["types"]["attributes"]
attrdict = dictionary["attributes"]
objects = {}
for dirpath, _, files in os.walk(os.path.join(root, "objects")):
    for f in files:
        if f.endswith(".json"):
            d = json.load(open(os.path.join(dirpath, f)))
            objects[d["name"]] = d
events = {}
for dirpath, _, files in os.walk(os.path.join(root, "events")):
    for f in files:
        if f.endswith(".json"):
            d = json.load(open(os.path.join(dirpath, f)))
            events[d["name"]] = d


def merged(defs, name):
    d = defs[name]
    out, constraints = {}, {}
    if d.get("extends") and d["extends"] in defs:
        out, constraints = merged(defs, d["extends"])
    for k, v in d.get("attributes", {}).items():
        if k.startswith("$"):
            continue  # $include: profiles, not applied
        out[k] = {**out.get(k, {}), **v}
    constraints = d.get("constraints", constraints) or constraints
    return out, constraints


def base_type(t):
    while t in types and "type" in types[t]:
        t = types[t]["type"]
    return t


def type_schema(t):
    s = {}
    bt = base_type(t)
    if bt == "string_t":
        s["type"] = "string"
    elif bt in ("integer_t", "long_t"):
        s["type"] = "integer"
    elif bt == "float_t":
        s["type"] = "number"
    elif bt == "boolean_t":
        s["type"] = "boolean"
    elif bt == "json_t":
        pass
    cur = t
    while cur in types:
        td = types[cur]
        if "regex" in td and "pattern" not in s:
            s["pattern"] = td["regex"]
        if "max_len" in td and "maxLength" not in s:
            s["maxLength"] = td["max_len"]
        if "range" in td and "minimum" not in s:
            s["minimum"], s["maximum"] = td["range"]
        cur = td.get("type")
    return s


needed = []


def attr_schema(name, over):
    d = {**attrdict.get(name, {}), **{k: v for k, v in over.items() if k in ("type", "is_array")}}
    t = d.get("type", "string_t")
    if t == "object":
        s = {"type": "object"}
    elif t in objects:
        if t not in needed:
            needed.append(t)
        s = {"$ref": "#/$defs/" + t}
    else:
        s = type_schema(t)
    enum = {}
    enum.update(attrdict.get(name, {}).get("enum", {}))
    enum.update(over.get("enum", {}))
    if enum and name.endswith("_id"):
        s["enum"] = sorted(int(k) for k in enum)
    if d.get("is_array"):
        s = {"type": "array", "items": s}
    return s


def object_schema(attrs, constraints):
    s = {"type": "object", "properties": {}, "additionalProperties": False}
    req = []
    for k, v in sorted(attrs.items()):
        s["properties"][k] = attr_schema(k, v)
        if v.get("requirement") == "required":
            req.append(k)
    if req:
        s["required"] = req
    if constraints.get("at_least_one"):
        s["anyOf"] = [{"required": [k]} for k in constraints["at_least_one"]]
    if constraints.get("just_one"):
        s["oneOf"] = [{"required": [k]} for k in constraints["just_one"]]
    return s


attrs, constraints = merged(events, "api_activity")
schema = object_schema(attrs, constraints)
category = load("categories.json")["attributes"][events["application"]["category"]]["uid"]
class_uid = category * 1000 + events["api_activity"]["uid"]
activities = schema["properties"]["activity_id"]["enum"]
schema["properties"]["class_uid"] = {"const": class_uid}
schema["properties"]["category_uid"] = {"const": category}
schema["properties"]["type_uid"] = {"enum": [class_uid * 100 + a for a in activities]}
defs = {}
while len(defs) < len(needed):
    for name in list(needed):
        if name not in defs:
            defs[name] = object_schema(*merged(objects, name))
out = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$comment": "Derived by gen_schema.py from ocsf-schema %s; see README.md." % load("version.json")["version"],
    "title": "OCSF API Activity (class_uid %d)" % class_uid,
    **schema,
    "$defs": dict(sorted(defs.items())),
}
json.dump(out, sys.stdout, indent=1, sort_keys=False)
sys.stdout.write("\n")
