"""JSON Schemas of the files a sweep reads back: results records, baselines, suites.

One treatment for all of them: a document is checked against its schema
before any code uses it, and the first problem becomes one line naming the
field path (``points[2].runs[0].samples_ms[5]``) and what is wrong there.
Numbers must be finite (TOML admits ``inf`` and ``nan``; JSON files are read
without them), and booleans are not integers.
"""

from __future__ import annotations

import math
from functools import lru_cache

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mobexport.errors import BenchmarkError

from .records import RECORD_SCHEMA_VERSION


def _finite_number(checker, instance) -> bool:
    return Draft202012Validator.TYPE_CHECKER.is_type(instance, "number") and math.isfinite(instance)


def _finite_integer(checker, instance) -> bool:
    return Draft202012Validator.TYPE_CHECKER.is_type(instance, "integer") and math.isfinite(instance)


_TYPES = Draft202012Validator.TYPE_CHECKER.redefine_many({"number": _finite_number, "integer": _finite_integer})
Validator = jsonschema.validators.extend(Draft202012Validator, type_checker=_TYPES)

# Names end up in messages, file paths and tables: printable text only (no control or line-break characters).
NAME = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"}
POSITIVE_MS = {"type": "number", "exclusiveMinimum": 0}
COUNT = {"type": ["integer", "null"], "minimum": 0}
TEXT_OR_NULL = {"type": ["string", "null"]}

# A square size (224) or HEIGHTxWIDTH ("256x320").
RESOLUTION = {"type": ["integer", "string"], "minimum": 1, "maximum": 65536,
              "pattern": "^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$", "description": "an integer or HEIGHTxWIDTH"}

# One instruction count (devices/instructions.py: InstructionCount.to_dict), per inference.
INSTRUCTION_COUNT = {
    "type": "object",
    "required": ["median", "samples"],
    "properties": {
        "median": {"type": "integer", "minimum": 1},
        "samples": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "startup": COUNT,
        "warmup": {"type": "integer", "minimum": 0},
        "counter": {"type": "string"},
        "spread": {"type": "number", "minimum": 0},
        "tool_versions": {"type": "object"},
    },
}

CASE = {
    "type": "object",
    "required": ["model", "target"],
    "additionalProperties": False,
    "properties": {
        "model": NAME, "target": NAME, "quantization": NAME, "passes": NAME, "device": NAME,
        "resolution": RESOLUTION,
        "batch": {"type": "integer", "minimum": 1},
        "threads": {"type": "integer", "minimum": 0},
    },
}

RECORD = {
    "type": "object",
    "required": ["case", "schema_version"],
    "properties": {
        "case": {**CASE, "required": ["model", "target", "resolution"]},
        "schema_version": {"const": RECORD_SCHEMA_VERSION},
        "status": {"enum": ["ok", "failed"]},
        "error": TEXT_OR_NULL,
        "latency_ms": {"type": "object", "additionalProperties": {"type": ["number", "integer", "null"]}},
        "samples_ms": {"type": "array", "items": POSITIVE_MS},
        "throughput_ips": {"type": ["number", "null"]},
        "init_ms": {"type": ["number", "null"]},
        "peak_memory_bytes": COUNT,
        "macs": COUNT,
        "params": COUNT,
        "artifact": {"type": "object"},
        "warmup": {"type": "integer", "minimum": 0},
        "iters": {"type": "integer", "minimum": 0},
        "device_info": {"type": "object"},
        "conditions": {"type": "object"},
        "tool_versions": {"type": "object"},
        "timestamp": {"type": "string"},
        "instructions": {"anyOf": [{"type": "null"}, INSTRUCTION_COUNT]},
    },
    # A measured case must carry its raw samples (intervals are recomputed from them), or its instruction count.
    "if": {"properties": {"status": {"const": "ok"}, "instructions": {"type": "null"}}},
    "then": {"properties": {"samples_ms": {"minItems": 1}}},
}

BASELINE_POINT = {
    "type": "object",
    "required": ["case", "runs"],
    "properties": {
        "case": {**CASE, "required": ["model", "target", "resolution"]},
        "runs": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "required": ["run", "samples_ms"],
                "properties": {"run": {"type": "integer", "minimum": 0},
                               "samples_ms": {"type": "array", "minItems": 1, "items": POSITIVE_MS}},
            },
        },
        "macs": COUNT,
        "params": COUNT,
        "timestamp": TEXT_OR_NULL,
        "latency_ms": {"type": "object"},
    },
}


def baseline_schema(kind: str, version: int) -> dict:
    return {
        "type": "object",
        "required": ["kind", "schema_version", "points"],
        "properties": {
            "kind": {"const": kind},
            "schema_version": {"const": version},
            "name": {"type": "string"},
            "created": {"type": "string"},
            "mobexport_version": {"type": "string"},
            "metric": {"const": "latency"},
            "provenance": {"type": "object"},
            "points": {"type": "array", "minItems": 1, "items": BASELINE_POINT},
        },
    }


INSTRUCTION_BASELINE_POINT = {
    "type": "object",
    "required": ["case", "runs"],
    "properties": {
        "case": {**CASE, "required": ["model", "target", "resolution"]},
        # Each run's per-inference counts, kept apart: run-to-run spread is part of the noise model.
        "runs": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object", "required": ["run", "samples"],
                "properties": {"run": {"type": "integer", "minimum": 0},
                               "samples": {"type": "array", "minItems": 1,
                                           "items": {"type": "integer", "minimum": 1}}},
            },
        },
        "instructions": {"type": "integer", "minimum": 1},
        "macs": COUNT,
        "params": COUNT,
        "timestamp": TEXT_OR_NULL,
    },
}


def instruction_baseline_schema(kind: str, version: int) -> dict:
    return {
        "type": "object",
        "required": ["kind", "schema_version", "metric", "tool_versions", "points"],
        "properties": {
            "kind": {"const": kind},
            "schema_version": {"const": version},
            "metric": {"const": "instructions"},
            "name": {"type": "string"},
            "created": {"type": "string"},
            "mobexport_version": {"type": "string"},
            # What decides a count: valgrind's version and each runtime's.
            "tool_versions": {"type": "object", "required": ["valgrind"],
                              "additionalProperties": {"type": ["string", "null"]}},
            "provenance": {"type": "object"},
            "points": {"type": "array", "minItems": 1, "items": INSTRUCTION_BASELINE_POINT},
        },
    }


def _positive_number(maximum: float | None = None) -> dict:
    schema = {"type": "number", "exclusiveMinimum": 0}
    if maximum is not None:
        schema["maximum"] = maximum
    return schema


def _list_of(items: dict) -> dict:
    return {"type": "array", "minItems": 1, "items": items}


SUITE = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "description": {"type": "string"},
        "models": _list_of(NAME),
        "targets": _list_of(NAME),
        "resolutions": _list_of(RESOLUTION),
        "baseline": NAME,
        "device": NAME,
        "threads": {"oneOf": [{"type": "integer", "minimum": 0},
                              _list_of({"type": "integer", "minimum": 0})]},
        "batch": {"type": "integer", "minimum": 1},
        "quantize": NAME,
        "passes": NAME,
        "min_time": _positive_number(86400),
        "min_iters": {"type": "integer", "minimum": 1},
        "max_iters": {"type": "integer", "minimum": 1},
        "warmup_time": {"type": "number", "minimum": 0, "maximum": 86400},
        "cpus": _list_of({"type": "integer", "minimum": 0}),
        "android": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "adb": NAME, "executor_runner": NAME, "ort_perf_test": NAME, "benchmark_model": NAME,
                "cooldown_c": {"type": "number", "minimum": 0, "maximum": 150},
                "cooldown_max_s": {"type": "number", "minimum": 0},
                "cooldown_poll_s": _positive_number(),
            },
        },
    },
}


@lru_cache(maxsize=None)
def _validator(key: str) -> Validator:
    from mobexport.benchmarks.regress.baseline import BASELINE_KIND, BASELINE_SCHEMA_VERSION

    schemas = {"record": RECORD, "suite": SUITE, "baseline": baseline_schema(BASELINE_KIND, BASELINE_SCHEMA_VERSION),
               "instruction_baseline": instruction_baseline_schema(BASELINE_KIND, BASELINE_SCHEMA_VERSION)}
    Validator.check_schema(schemas[key])
    return Validator(schemas[key])


def field_path(parts) -> str:
    """('points', 2, 'runs', 0) -> 'points[2].runs[0]'."""
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif str(part).isidentifier() and str(part).isascii():
            text += f".{part}" if text else str(part)
        else:  # an untrusted key: quoted and escaped, so that it cannot break the line
            text += f"[{ascii(str(part))}]"
    return text or "the top level"


def _describe(error: jsonschema.ValidationError) -> str:
    """What is wrong at the error's place, short (the instance is untrusted and may be huge)."""
    instance = error.instance
    shown = ascii(instance)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    if error.validator == "type":
        expected = error.validator_value if isinstance(error.validator_value, str) else " or ".join(error.validator_value)
        if isinstance(instance, float) and not math.isfinite(instance):
            return f"must be a finite {expected}, not {shown}"
        return f"must be {expected}, not {type(instance).__name__} {shown}"
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in instance]
        return f"lacks {missing[0]!r}" if missing else "lacks a required field"
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(k for k in instance if k not in error.schema.get("properties", {}))
        return f"has an unknown key {ascii(extra[0]) if extra else '?'} (known: {', '.join(allowed)})"
    if error.validator == "const":
        return f"must be {error.validator_value!r}, not {shown}"
    if error.validator == "enum":
        return f"must be one of {', '.join(map(repr, error.validator_value))}, not {shown}"
    if error.validator in ("minItems", "maxItems"):
        return f"must have at least {error.validator_value} item(s)" if error.validator == "minItems" else \
            f"must have at most {error.validator_value} item(s)"
    if error.validator in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        relation = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}[error.validator]
        return f"must be {relation} {error.validator_value}, not {shown}"
    if error.validator == "pattern":
        return f"must be {error.schema.get('description', 'printable text')}, not {shown}"
    if error.validator in ("minLength", "maxLength"):
        return "must not be empty" if error.validator == "minLength" else \
            f"is longer than {error.validator_value} characters"
    return ascii(error.message[:120])[1:-1]


def check(data, key: str, where: str, hint: str) -> None:
    """Raise a one-line :class:`BenchmarkError` naming the field path of the first schema violation."""
    error = best_match(_validator(key).iter_errors(data))
    if error is not None:
        raise BenchmarkError(f"{where}: {field_path(error.absolute_path)} {_describe(error)}", hint)
