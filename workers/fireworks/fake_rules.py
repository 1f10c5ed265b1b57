"""What the fake Fireworks server checks in a request, as the documented API does (docs.fireworks.ai,
api-reference: create-dataset, upload-dataset-files, create-batch-inference-job).

Why a module of its own: the fake must refuse what the real server refuses, or a client bug passes
every test and fails on the first paid run. Each check returns None or the 400 message.
"""

from __future__ import annotations

import re
from typing import Any

# Resource ids (datasets, batch inference jobs): lowercase letters, digits and hyphens, 1-63
# characters, no hyphen at either end.
RESOURCE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# Request fields of the create calls; output-only fields (name, createTime, state ...) are accepted and
# ignored as a proto3 JSON parser does, anything else is an unknown field.
DATASET_REQUEST = {"dataset", "datasetId", "sourceDatasetId", "filter"}
DATASET_FIELDS = {"displayName", "exampleCount", "userUploaded", "evaluationResult", "transformed", "splitted",
                  "evalProtocol", "externalUrl", "format", "sourceJobName"}
DATASET_OUTPUT_ONLY = {"name", "createTime", "state", "status", "createdBy", "updateTime", "estimatedTokenCount",
                       "averageTurnCount"}
JOB_FIELDS = {"displayName", "model", "inputDatasetId", "outputDatasetId", "inferenceParameters", "precision",
              "continuedFromJobName"}
JOB_OUTPUT_ONLY = {"name", "createTime", "createdBy", "state", "status", "updateTime", "jobProgress"}
INFERENCE_PARAMETERS = {"maxTokens": int, "temperature": float, "topP": float, "n": int, "extraBody": str,
                        "topK": int}
INT64_MAX = 2**63 - 1


def bad_id(value: Any, what: str) -> str | None:
    if not isinstance(value, str) or not RESOURCE_ID.match(value):
        return (f"invalid {what} {value!r}: use 1-63 lowercase letters, digits and hyphens, starting and ending"
                " with a letter or digit")
    return None


def unknown_field(obj: dict[str, Any], allowed: set[str], where: str) -> str | None:
    extra = sorted(set(obj) - allowed)
    return f'invalid JSON payload: unknown field "{extra[0]}" in {where}' if extra else None


def parse_int64(value: Any) -> int | None:
    """proto3 JSON int64: a decimal string (or a JSON integer); None when it is neither."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if -INT64_MAX - 1 <= value <= INT64_MAX else None
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,19}", value):
        n = int(value)
        return n if -INT64_MAX - 1 <= n <= INT64_MAX else None
    return None


def check_create_dataset(req: Any) -> str | None:
    if not isinstance(req, dict):
        return "invalid JSON payload: expected an object"
    problem = unknown_field(req, DATASET_REQUEST, "CreateDatasetRequest")
    if problem:
        return problem
    if not req.get("datasetId"):
        return "dataset_id is required"
    problem = bad_id(req["datasetId"], "dataset_id")
    if problem:
        return problem
    ds = req.get("dataset")
    if not isinstance(ds, dict):
        return "dataset is required"
    problem = unknown_field(ds, DATASET_FIELDS | DATASET_OUTPUT_ONLY, "Dataset")
    if problem:
        return problem
    if "exampleCount" not in ds:
        return "example_count is required for uploaded datasets"
    count = parse_int64(ds["exampleCount"])
    if count is None:
        return f"invalid value for int64 field exampleCount: {ds['exampleCount']!r}"
    if count < 1:
        return "example_count must be positive"
    return None


def check_create_job(req: Any, job_id: str | None) -> str | None:
    if not isinstance(req, dict):
        return "invalid JSON payload: expected an object"
    problem = unknown_field(req, JOB_FIELDS | JOB_OUTPUT_ONLY, "BatchInferenceJob")
    if problem:
        return problem
    if job_id is not None:
        problem = bad_id(job_id, "batch_inference_job_id")
        if problem:
            return problem
    if not req.get("model") or not req.get("inputDatasetId"):
        return "model and input_dataset_id are required"
    for key in ("inputDatasetId", "outputDatasetId"):
        name = req.get(key)
        if name is None:
            continue
        m = re.fullmatch(r"accounts/[^/]+/datasets/([^/]+)", str(name))
        if not m or bad_id(m.group(1), "dataset_id"):
            return f"invalid {key} {name!r}: expected accounts/<account>/datasets/<dataset_id>"
    params = req.get("inferenceParameters") or {}
    if not isinstance(params, dict):
        return "invalid JSON payload: inferenceParameters must be an object"
    problem = unknown_field(params, set(INFERENCE_PARAMETERS), "BatchInferenceJob.InferenceParameters")
    if problem:
        return problem
    for key, kind in INFERENCE_PARAMETERS.items():
        if key not in params:
            continue
        value = params[key]
        ok = (isinstance(value, str) if kind is str else
              isinstance(value, int) and not isinstance(value, bool) if kind is int else
              isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok:
            return f"invalid value for {kind.__name__} field inferenceParameters.{key}: {value!r}"
    return None
