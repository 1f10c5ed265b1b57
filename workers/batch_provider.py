"""The interface every batch provider implements (issue 24, item 2): upload a part's rows, find its
job after a crash, create it, poll it, download its files, read answers and failed rows from them,
cancel it (``producer stop --cancel-batches``) and say what it billed (``usage``). Fireworks is one (``workers/fireworks/provider.py``); a second provider is one module plus
one row in ``config/engines.py`` (``BATCH_BACKENDS``, ``target``).

Why a protocol: the part runner (``workers/batch/runner.py``: the ledger, the run folder, the
idempotent steps) is the same for any service that takes a JSONL file of requests and returns
one of answers; only the calls and the file formats differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any, Protocol

from config.engines import BATCH_BACKENDS, batch_backend_of
from config.schema import EvalConfig


@dataclass(frozen=True)
class BatchJob:
    """A provider's job as the runner needs it; ``raw`` keeps the provider's own record."""

    state: str  # the provider's state word, recorded as the part's job_state
    progress: dict[str, Any]  # processed / total / failed ... (the part's progress)
    terminal: bool  # no further change will come
    failed: bool = False  # ended without usable output
    complete: bool = False  # ended with every row's output (terminal, not failed, not partial)
    message: str = ""  # why it failed (the provider's words)
    output_id: str | None = None  # where its output lives; None: the planned output dataset
    created_at: float | None = None  # Unix time the service created it (the poll deadline counts from it)
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchUsage:
    """The tokens a service reports it processed for one job (what it bills), beside the per-row usage."""

    input_tokens: int = 0  # every prompt token, cached ones included
    cached_input_tokens: int = 0  # prompt tokens read from the provider's cache (billed at its cached price)
    output_tokens: int = 0
    cache_write_tokens: int = 0  # prompt tokens written to the cache (Anthropic bills them above input)

    def as_dict(self) -> dict[str, int]:
        return {"input_tokens": self.input_tokens, "cached_input_tokens": self.cached_input_tokens,
                "output_tokens": self.output_tokens, "cache_write_tokens": self.cache_write_tokens}


class BatchProvider(Protocol):
    """Each step is idempotent under deterministic ids: a retried or resumed step repeats no paid work."""

    def upload(self, dataset_id: str, filename: str, data: bytes, rows: int, display_name: str) -> None:
        """Make ``dataset_id`` hold ``data`` (JSONL, ``rows`` requests) and be ready for a job."""

    def find_job(self, job_id: str) -> BatchJob | None:
        """The job under this id, or None when none exists (looked up before any create)."""

    def create_job(self, job_id: str, model: str, input_id: str, output_id: str, params: dict[str, Any],
                   display_name: str) -> BatchJob:
        """Create the job (an existing one with this id is returned, never a second)."""

    def download(self, output_id: str) -> dict[str, bytes]:
        """Every file of the job's output, by a safe file name."""

    def read_rows(self, files: dict[str, bytes]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """(answers by custom_id as ``normalise_raw_row`` rows, error text by custom_id of failed rows)."""

    def cancel(self, job_id: str) -> BatchJob | None:
        """Ask the service to stop the job (None: no such job). Rows it already answered stay downloadable
        where the service keeps them; the others fail and ``run --resume --retry-failed`` sends them again."""

    def usage(self, job: BatchJob, files: dict[str, bytes] | None = None) -> BatchUsage | None:
        """The tokens the service reports for this (terminal) job, from the job record or its downloaded
        files; None when it reports none (costs then come from the rows' own usage alone)."""


def provider_for(cfg: EvalConfig, engine: str) -> BatchProvider:
    """The provider of a run's recorded engine (``fireworks`` or its dry run), ready to call."""
    backend = batch_backend_of(engine)
    if backend is None:
        raise ValueError(f"engine {engine!r} is not a batch provider's")
    module, _, attr = BATCH_BACKENDS[backend].target.partition(":")
    return getattr(import_module(module), attr).for_run(cfg, engine)
